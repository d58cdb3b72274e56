"""Reconcile with write-back: posted records matched against Propexo's, each kind by its own
rules, and the outcomes that change something written back to the ledger in one set-based
statement."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from pipelines.core.config import Settings
from pipelines.core.kind import KindContext
from pipelines.core.models import (
    POSTED,
    ReconcileResult,
)
from pipelines.ledger import Ledger, utcnow
from pipelines.posting.propexo import PropexoClient
from pipelines.reconciling.proof import sync_verdicts, write_ended
from pipelines.reconciling.reconcile import LEDGER_COLUMNS, summarize
from pipelines.reconciling.refresh import refresh_synced


def reconcile(
    records: pd.DataFrame,
    synced: Mapping[str, pd.DataFrame],
    *,
    ctx: KindContext,
    verdict: pd.Series | None = None,
) -> ReconcileResult:
    """Match every posted record to what Propexo holds, each kind by its own rules.

    ``synced``: Propexo's records by source kind; ``verdict`` (index of ``records``): what
    the syncs prove for each record (:func:`pipelines.reconciling.proof.sync_verdicts`); without it
    nothing is called missing.
    """
    details = []
    unexpected = 0
    for kind in ctx.kinds:
        mine = ctx.kinds.of(records, kind)
        theirs = synced.get(kind.source_kind, pd.DataFrame(columns=kind.synced_fields))
        if not mine.empty:
            part = verdict[mine.index] if verdict is not None else None
            details.append(kind.match(mine, theirs, ctx, part))
        unexpected += kind.unexpected(mine, theirs)
    return summarize(details, unexpected)


def reconcile_ledger(
    ledger: Ledger,
    client: PropexoClient,
    settings: Settings,
    ctx: KindContext,
    *,
    run_id: str | None = None,
) -> ReconcileResult | None:
    """Match posted records against what Propexo holds now; update the ledger's states.

    Records a write-status or the write log called failed are looked for too: a PMS can apply
    a write Propexo marks failed, and one found in Propexo's data is posted, not failed."""
    records = ledger.records(states=list(POSTED), columns=LEDGER_COLUMNS)
    failed = ledger.records(states=["failed"], columns=LEDGER_COLUMNS)
    if records.empty and failed.empty:
        return None
    synced = refresh_synced(ledger, client, settings, ctx, pd.concat([records, failed]))
    landed: dict[str, str] = {}
    for kind in ctx.kinds:
        landed |= kind.found(ctx.kinds.of(failed, kind), synced[kind.source_kind], ctx)
    now = utcnow()
    for key, propexo_id in landed.items():
        ledger.transition(
            [key],
            "confirmed",
            run_id=run_id,
            confirmed_at=now,
            created_record_id=propexo_id,
            note=None,
            detail="reported failed, but found in Propexo's data: it landed",
        )
    if landed:
        records = ledger.records(states=list(POSTED), columns=LEDGER_COLUMNS)
    if records.empty:
        return None
    return settle_reconcile(ledger, settings, records, synced, ctx, run_id=run_id)


def settle_reconcile(
    ledger: Ledger,
    settings: Settings,
    records: pd.DataFrame,
    synced: Mapping[str, pd.DataFrame],
    ctx: KindContext,
    *,
    run_id: str | None = None,
) -> ReconcileResult:
    """Match the ledger's posted records against Propexo's (already fetched) and write every
    outcome back in one set-based statement: what `tieout reconcile` does after its fetch."""
    verdict = sync_verdicts(
        records,
        ledger.proven_syncs(settings.integration_id),
        since=write_ended(records, settings.in_doubt_grace_s)
        + pd.Timedelta(seconds=settings.reconcile_grace_s),
        window_days=settings.sync_window_days,
        scope=ctx.kinds.sync_scope,
    )
    result = reconcile(records, synced, ctx=ctx, verdict=verdict)
    # One set-based write-back (awaiting ones keep their state and fields), of the outcomes
    # that change something: a ledger of a million matched records is not rewritten by every
    # reconcile.
    decided = result.details[result.details["outcome"].ne("awaiting_sync")]
    outcomes = pd.DataFrame(
        {
            "record_key": decided["record_key"].to_numpy(),
            "state": decided["outcome"].astype(str).to_numpy(),
            "propexo_id": decided["propexo_id"].to_numpy(),
            "found_amount_cents": decided["found_amount_cents"].to_numpy(),
            "note": decided["note"].where(decided["note"].astype(bool), None).to_numpy(),
        }
    )
    ledger.apply_outcomes(changed_outcomes(outcomes, records), run_id=run_id)
    now = utcnow()
    ledger.set_meta("last_reconcile_at", now)
    ledger.set_meta("unexpected", str(result.unexpected))
    return result


OUTCOME_FIELDS = ["state", "propexo_id", "found_amount_cents", "note"]


def changed_outcomes(outcomes: pd.DataFrame, records: pd.DataFrame) -> pd.DataFrame:
    """The outcomes whose state or fields differ from what the ledger holds (blank equals
    blank; an amount compares as a whole number)."""
    if outcomes.empty:
        return outcomes
    now = records.reindex(columns=["record_key", *OUTCOME_FIELDS]).set_index("record_key")
    now = now.reindex(outcomes["record_key"])

    def text(values: pd.Series) -> np.ndarray:
        return values.reset_index(drop=True).astype("string").fillna("").to_numpy()

    def number(values: pd.Series) -> np.ndarray:
        return pd.to_numeric(values.reset_index(drop=True), errors="coerce").to_numpy(float)

    ours, theirs = number(outcomes["found_amount_cents"]), number(now["found_amount_cents"])
    same = (ours == theirs) | (np.isnan(ours) & np.isnan(theirs))
    for field in ("state", "propexo_id", "note"):
        same &= text(outcomes[field]) == text(now[field])
    changed: pd.DataFrame = outcomes[~same]
    return changed
