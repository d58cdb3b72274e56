"""What tieout knows of Propexo after the fact: its reference data, its copy of Propexo's
records (refreshed as little as possible), records in doubt settled, and reconcile's outcomes
written back to the ledger in one set-based statement."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from pipelines.core.config import Settings
from pipelines.core.errors import LedgerError
from pipelines.core.hints import AliasHints
from pipelines.core.kind import KindContext, Kinds
from pipelines.core.models import (
    POSTED,
    Issue,
    ReconcileResult,
)
from pipelines.ledger import Conflict, Ledger, utcnow
from pipelines.posting.load import resolve_in_doubt
from pipelines.posting.propexo import PropexoClient
from pipelines.reconciling.proof import sync_verdicts, write_ended
from pipelines.reconciling.reconcile import LEDGER_COLUMNS, summarize
from pipelines.reconciling.skew import allowance_s, data_clock
from pipelines.resolving.aliases import raise_if_problems, read_aliases, unknown_targets
from pipelines.resolving.refs import (
    RefData,
    RefLists,
    build_reference_data,
    fetch_reference_lists,
)


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


def wait_for_syncs(ledger: Ledger, integration_id: str, wait_s: float) -> bool:
    """Wait until the webhook receiver has recorded the SYNC_COMPLETE of every sync we asked."""
    import time

    deadline = time.monotonic() + wait_s
    while ledger.open_sync_requests(integration_id):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def latest_sync(settings: Settings) -> str | None:
    """When the newest proven sync completed (None before any, or without a ledger yet)."""
    if settings.ledger_is_file and not settings.ledger_path.exists():
        return None
    with Ledger(settings.ledger) as ledger:
        proven = ledger.proven_syncs(settings.integration_id)
    return None if proven.empty else str(proven["completed_at"].iloc[-1])


def reference_lists(
    ledger: Ledger, client: PropexoClient, settings: Settings, *, refresh: bool = False
) -> RefLists:
    """Propexo's reference lists from the ledger's cache while it is younger than
    ``refs_max_age_s``, else fetched from Propexo (and cached)."""
    cached = None if refresh else ledger.cached_refs(settings.integration_id)
    if cached is not None:
        fetched_at, lists = cached
        age = datetime.now(tz=UTC) - datetime.fromisoformat(fetched_at.replace("Z", "+00:00"))
        if age.total_seconds() <= settings.refs_max_age_s:
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
