"""The checks before anything is sent: a record Propexo already holds is recorded, not sent;
a lost ledger is refused; records in doubt are settled; a staging conflict becomes the issues a
person settles."""

from __future__ import annotations

import pandas as pd

from pipelines.core.config import Settings
from pipelines.core.errors import LedgerError
from pipelines.core.kind import KindContext, Kinds
from pipelines.core.models import (
    Issue,
)
from pipelines.ledger import Conflict, Ledger, utcnow
from pipelines.posting.load import resolve_in_doubt
from pipelines.posting.propexo import PropexoClient
from pipelines.reconciling.refresh import refresh_synced


def found_in_propexo(
    ledger: Ledger,
    client: PropexoClient,
    settings: Settings,
    ctx: KindContext,
    records: pd.DataFrame,
) -> dict[str, str]:
    """Which of ``records`` Propexo already holds (record key → Propexo id), each kind by its
    own key, looked up in the ledger's copy of Propexo's records after an incremental refresh."""
    synced = refresh_synced(ledger, client, settings, ctx, records)
    found: dict[str, str] = {}
    for kind in ctx.kinds:
        found |= kind.found(ctx.kinds.of(records, kind), synced[kind.source_kind], ctx)
    return found


def adopt_already_posted(
    ledger: Ledger,
    client: PropexoClient,
    settings: Settings,
    ctx: KindContext,
    run_id: str,
) -> int:
    """Propexo is the second witness: a record about to be sent that Propexo already holds is
    recorded as posted (with its Propexo id) and never sent. Returns how many."""
    ready = ledger.records(states=["ready"])
    if ready.empty:
        return 0
    found = found_in_propexo(ledger, client, settings, ctx, ready)
    now = utcnow()
    for key, propexo_id in found.items():
        ledger.transition(
            [key],
            "confirmed",
            run_id=run_id,
            confirmed_at=now,
            created_record_id=propexo_id,
            detail="already in Propexo before it was sent: recorded, not sent again",
        )
    return len(found)


def refuse_if_posted_before(
    ledger: Ledger,
    client: PropexoClient,
    settings: Settings,
    ctx: KindContext,
    records: pd.DataFrame,
) -> None:
    found = found_in_propexo(ledger, client, settings, ctx, records)
    if not found:
        return
    example = next(iter(found))
    raise LedgerError(
        f"the ledger {ledger.description} holds no records, but Propexo already holds "
        f"{len(found)} of this file's records (e.g. {example}): a ledger was lost, restored "
        "from an old backup, or this is the wrong data folder. Posting now could post what "
        "Propexo does not show yet a second time, so nothing was posted and the file stays "
        "in the inbox. Restore the newest backup from data/backups/ (see the README), or "
        "rebuild the ledger from Propexo with `tieout ledger rebuild`, then run again"
    )


def settle_in_doubt(
    ledger: Ledger, client: PropexoClient, settings: Settings, ctx: KindContext, run_id: str
) -> dict[str, int]:
    """Look up every record in doubt; re-send only what a proven sync says is absent."""
    ledger.mark_orphans_in_doubt(run_id)
    return resolve_in_doubt(
        ledger,
        client,
        run_id=run_id,
        ctx=ctx,
        resend_unlogged_after_s=settings.resend_unlogged_after_s,
    )


def describe_doubt(counts: dict[str, int]) -> str:
    return (
        f"{counts['found']} found in Propexo's data, {counts['logged']} landed by Propexo's "
        f"write log, {counts['failed']} failed by it (still looked for in synced data), "
        f"{counts['absent']} in no logged job past resend_unlogged_after_s (will be sent), "
        f"{counts['waiting']} in no logged job yet and {counts['ambiguous']} ambiguous (a "
        "person settles these with `tieout resolve`)"
    )


def conflict_issues(
    kinds: Kinds, conflict: Conflict, record: pd.Series, file_name: str
) -> list[Issue]:
    """What a person needs to settle a conflict, in the words of the record's kind."""
    return kinds.record(str(record["kind"])).conflict_issues(conflict, record, file_name)


def issues_for_conflicts(
    kinds: Kinds, conflicts: list[Conflict], records: pd.DataFrame, file_name: str
) -> list[Issue]:
    """The issues of every conflict staging found among ``records`` (keyed by record key)."""
    if not conflicts:
        return []
    by_key = records.set_index("record_key")
    issues: list[Issue] = []
    for conflict in conflicts:
        record = by_key.loc[conflict.record_key]
        if isinstance(record, pd.DataFrame):  # keys are unique: one row
            record = record.iloc[0]
        issues += conflict_issues(kinds, conflict, record, file_name)
    return issues
