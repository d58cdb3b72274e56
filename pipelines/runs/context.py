"""What every step of one run is given, once: the run's settings, its ledger, its id, the
profiles it reads with, where it speaks, and how it reads its files."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pipelines.core.config import Settings
from pipelines.core.kind import KindContext
from pipelines.core.models import Say
from pipelines.kinds import registered
from pipelines.ledger import Ledger
from pipelines.posting.propexo import PropexoClient
from pipelines.reading.profiles import Profile
from pipelines.resolving.refs import RefData


@dataclass(frozen=True)
class RunContext:
    """One run of `tieout run`, handed down whole instead of its parts one by one.

    ``on_progress``: told (done, total) as writes are posted; ``in_place``: the run's files
    are archived copies read again where they lie (`tieout retry`), never taken into the
    inbox's hidden folder."""

    settings: Settings
    ledger: Ledger
    run_id: str
    profiles: list[Profile]
    say: Say
    on_progress: Callable[[int, int], None] | None = None
    in_place: bool = False

    def kind_context(self, refs: RefData, client: PropexoClient) -> KindContext:
        """What every registered kind's functions are given in this run."""
        return KindContext.of(
            self.settings, registered(), refs=refs, ledger=self.ledger, client=client
        )
