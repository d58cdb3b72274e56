"""Propexo's reference data as tieout uses it: the lists cached in the ledger while they are
young enough, else fetched (and cached); with the alias files, read fresh and checked."""

from __future__ import annotations

from datetime import UTC, datetime

from pipelines.core.config import Settings
from pipelines.core.hints import AliasHints
from pipelines.ledger import Ledger
from pipelines.posting.propexo import PropexoClient
from pipelines.resolving.aliases import raise_if_problems, read_aliases, unknown_targets
from pipelines.resolving.refs import (
    RefData,
    RefLists,
    build_reference_data,
    fetch_reference_lists,
    missing_lists,
)


def reference_lists(
    ledger: Ledger, client: PropexoClient, settings: Settings, *, refresh: bool = False
) -> RefLists:
    """Propexo's reference lists from the ledger's cache while it is younger than
    ``refs_max_age_s``, else fetched from Propexo (and cached)."""
    cached = None if refresh else ledger.cached_refs(settings.integration_id)
    if cached is not None:
        fetched_at, lists = cached
        age = datetime.now(tz=UTC) - datetime.fromisoformat(fetched_at.replace("Z", "+00:00"))
        # A kind installed since they were cached reads a list they lack: fetched anew.
        if age.total_seconds() <= settings.refs_max_age_s and not missing_lists(lists):
            return lists
    lists = fetch_reference_lists(client, settings.integration_id)
    ledger.save_refs(settings.integration_id, lists)
    return lists


def reference_data(
    ledger: Ledger,
    client: PropexoClient,
    settings: Settings,
    *,
    refresh: bool = False,
    aliases: bool = True,
) -> RefData:
    """Reference data (cached, see :func:`reference_lists`) with the alias files, which are
    read fresh and checked: a problem in them stops here, naming its file and line.
    ``aliases=False``: Propexo's lists only (reconcile, which resolves no names)."""
    lists = reference_lists(ledger, client, settings, refresh=refresh)
    if not aliases:
        return build_reference_data(lists, {}, AliasHints(settings.data_dir))
    files = read_aliases(settings.mappings_dir)
    hints = AliasHints(settings.data_dir)
    plain = build_reference_data(lists, {}, hints)
    raise_if_problems([*files.problems, *unknown_targets(plain, files)])
    return build_reference_data(lists, files.frames, hints)
