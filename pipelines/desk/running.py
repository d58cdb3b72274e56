"""A run of the inbox started on the desk (`tieout run`), in a thread of its own: the inbox
page shows its progress while it lasts (the page refreshes itself; no script needed), and the
one who started it reads its outcome there when it ends. One run at a time from the desk (the
ledger's own lock keeps a run from the command line apart)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pipelines.core.errors import TieoutError

log = logging.getLogger(__name__)
STOPPED = (
    "the run stopped on an unexpected error (the desk's log says which); what it had taken in "
    "is taken up by the next run"
)


@dataclass
class Progress:
    """What a run in progress has said so far, and how far its posting is."""

    by: str
    started: float
    lines: list[str] = field(default_factory=list)
    posted: int = 0
    to_post: int = 0

    def say(self, line: str) -> None:
        self.lines.append(line)

    def posting(self, done: int, total: int) -> None:
        self.posted, self.to_post = done, total

    def seconds(self) -> int:
        return int(time.monotonic() - self.started)


class Runner:
    """The desk's run in progress, if any."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.current: Progress | None = None
        self.thread: threading.Thread | None = None

    def start(
        self,
        by: str,
        work: Callable[[Progress], list[str]],
        tell: Callable[[list[str]], None],
    ) -> bool:
        """Start ``work`` unless a run is in progress (False); ``tell`` gets its lines."""
        with self._lock:
            if self.current is not None:
                return False
            progress = self.current = Progress(by, time.monotonic())

        def body() -> None:
            try:
                lines = work(progress)
            except TieoutError as exc:
                lines = [str(exc)]
            except Exception:
                log.exception("the desk's run stopped")
                lines = [STOPPED]
            try:
                tell(lines)
            finally:
                with self._lock:
                    self.current = None

        self.thread = threading.Thread(target=body, name="desk-run")
        self.thread.start()
        return True
