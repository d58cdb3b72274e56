"""The ledger's copy of Propexo's records brought up to date, fetching as little as possible;
records a proven sync no longer saw are set aside (deleted in the PMS)."""

from __future__ import annotations

import pandas as pd

from pipelines.core.config import Settings
from pipelines.core.kind import KindContext
from pipelines.ledger import Ledger
from pipelines.posting.propexo import PropexoClient
from pipelines.reconciling.skew import allowance_s, data_clock


def refresh_synced(
    ledger: Ledger,
    client: PropexoClient,
    settings: Settings,
    ctx: KindContext,
    records: pd.DataFrame,
) -> dict[str, pd.DataFrame]:
    """Bring the ledger's copy of Propexo's records up to date, fetching as little as possible,
    for the kinds ``records`` hold; returns the copy by source kind.

    Records that a recent sync no longer saw (``last_seen_lte`` the last sync, less the grace)
    were deleted in the PMS: Propexo keeps them, so they are set aside here, not matched. Only
    a sync known complete, with a known earliest start, can say a record was not seen.
    """
    proven = ledger.proven_syncs(settings.integration_id)
    synced: dict[str, pd.DataFrame] = {}
    unseen: list[tuple[str, pd.Timestamp, pd.DataFrame]] = []  # (cache, sync start, not seen)
    for kind in ctx.kinds:
        cache = kind.record_kinds[0]  # the kind Propexo's copies are kept under
        mine = ctx.kinds.of(records, kind)
        if not mine.empty:
            kind.refresh(ctx, mine)
            seen = proven[proven["models"].map(lambda models, m=kind.sync_model: m in models)]
            if not seen.empty:
                latest = seen.iloc[-1]
                started = pd.Timestamp(latest["started_after"])
                cutoff = _stamp(started - pd.Timedelta(seconds=settings.clock_skew_s))
                unseen.append((cache, started, kind.gone(ctx, latest, cutoff)))
    if unseen:
        # "Not seen" compares Propexo's data clock with ours: widened by that clock's offset,
        # measured on our own records among them, so skew never hides one of them.
        allowed = allowance_s(
            settings.clock_skew_s,
            data_clock(ledger, records, pd.concat([gone for _, _, gone in unseen])),
        )
        for cache, started, gone in unseen:
            cutoff = _stamp(started - pd.Timedelta(seconds=allowed))
            created = pd.to_datetime(gone["created_at"], utc=True, errors="coerce")
            last_seen = pd.to_datetime(gone["last_seen"], utc=True, errors="coerce")
            before = created.lt(pd.Timestamp(cutoff)) & ~last_seen.gt(pd.Timestamp(cutoff))
            ledger.mark_stale(cache, gone.loc[before, "id"].astype(str))
    for kind in ctx.kinds:
        synced[kind.source_kind] = ledger.synced(kind.record_kinds[0], kind.synced_fields)
    return synced


def _stamp(moment: pd.Timestamp) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
