"""One dropped file taken in: claimed for this worker, read through its kind's stages, held
for a person when its layout or its rows need one, its records staged, its exceptions observed
as open items, and the file moved to the archive (or rejected/) beside its errors file."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pandas as pd

from pipelines.core.config import Settings
from pipelines.core.disk import write_atomically
from pipelines.core.errors import InputError
from pipelines.core.models import (
    FileOutcome,
    FileResult,
    Issue,
    IssueCode,
    Say,
    SourceFile,
    whole,
)
from pipelines.core.parsing import dollars
from pipelines.core.versions import original_name
from pipelines.kinds import registered
from pipelines.ledger import Ledger
from pipelines.posting.budget import turn
from pipelines.posting.propexo import PropexoClient
from pipelines.reading.grids import fingerprint
from pipelines.reading.propose import LayoutHeld
from pipelines.reconciling.before_send import (
    conflict_issues,
    refuse_if_posted_before,
)
from pipelines.reporting import publish
from pipelines.reporting import report as reporting
from pipelines.resolving.refs import RefData
from pipelines.runs.context import RunContext
from pipelines.runs.files import (
    account_rows,
    amounts_as_shown,
    decide_layout,
    errors_file_bytes,
    layout_preview,
    process_file,
    rejected_cents,
)
from pipelines.runs.holding import (
    confirmation,
    held_for_approval,
    hold,
    hold_proposal,
    left_in_inbox,
    settle_held,
)
from pipelines.runs.inbox import (
    archive_folder,
    archive_taken,
    changed_since,
    is_taken,
    keep_version,
    put_back,
    release,
    take_file,
)
from pipelines.runs.intake import stated_of
from pipelines.runs.items import (
    FILE_CAUSES,
    RETRYABLE,
    file_items,
    implied_amounts,
    new_item,
)

log = logging.getLogger("tieout")


@contextmanager
def claimed(path: Path, run: RunContext) -> Iterator[SourceFile | None]:
    """The dropped file at ``path``, taken out of the inbox (:func:`inbox.take_file`) and held
    for this worker during the block; None when it is not this worker's to take in. Workers
    sharing an inbox (PostgreSQL) each take the files they claim; a file another worker has,
    or has already moved away, is left to it. A file whose processing stops on an error goes
    back to the inbox; one whose process dies stays taken, and the next run finishes it.
    ``run.in_place``: an archived version read again (`tieout retry`) is read where it is kept,
    never taken into a hidden folder, so it stays at the path every report gives for it."""
    ledger, say, in_place = run.ledger, run.say, run.in_place
    recovered = is_taken(path) or in_place
    taken = path if recovered else take_file(path)
    if taken is None:
        yield None  # another worker took it in since the inbox was listed
        return
    mine = False
    try:
        with _claimed_taken(taken, ledger, say) as source:
            mine = source is not None
            yield source
    except BaseException:
        # What stopped the run is said, and the file goes back where it was dropped (one
        # another worker holds, it leaves alone).
        if (mine or not recovered) and not in_place and taken.exists():
            put_back(taken)
        raise


@contextmanager
def _claimed_taken(path: Path, ledger: Ledger, say: Say) -> Iterator[SourceFile | None]:
    source: SourceFile | None
    try:
        source = fingerprint(path)
    except InputError:
        if path.exists():
            raise
        source = None  # another worker took it in since the inbox was listed
    if source is not None:  # a kept version read again shows the name it was dropped under
        source = replace(source, name=original_name(source.name, source.sha256))
    if source is None:
        yield None
        return
    with ledger.claim(source.sha256, source.name) as mine:
        if not mine:
            say(f"{source.name}: another worker is taking it in; left to it")
            yield None
        elif not path.exists():
            yield None  # another worker took it in and moved it meanwhile
        else:
            yield source


def take_in(
    source: SourceFile, run: RunContext, refs: RefData, client: PropexoClient | None
) -> tuple[bool, bool]:
    """A claimed file into the ledger, then moved. On a ledger that holds no records yet, the
    file's records are first looked up in Propexo: if any is there, the ledger was lost (or
    this is the wrong data folder), and the run stops before anything is staged, leaving the
    file in the inbox.

    A file taken in before is read again while it has open items (a retry: rows already in the
    ledger are recognised by their keys and never staged twice); only a file whose every item
    is settled is a duplicate drop. ``run.in_place``: the file is an archived copy (`tieout
    retry`), read where it lies. Returns (taken in, with problems)."""
    ledger, settings, run_id, say, in_place = (
        run.ledger,
        run.settings,
        run.run_id,
        run.say,
        run.in_place,
    )
    path = source.path
    first = ledger.file_run(source.sha256)
    again = first is not None
    if again and not _still_open(source, run, first):
        return False, False
    try:
        result = process_file(source, run.profiles, refs, settings, ledger.confirmed_profiles())
    except LayoutHeld as exc:
        return hold_proposal(exc, source, run)
    except InputError as exc:
        _refuse(source, run, exc)
        return False, True
    if changed_since(source) and not in_place:
        put_back(path)
        say(
            f"{source.name}: the file changed while it was being read (still being written?); "
            "put back in the inbox, and read again once it stops changing"
        )
        log.warning("file changed while read", extra={"run_id": run_id, "file": source.name})
        return False, True
    decision = decide_layout(result.extract, confirmation(ledger, result))
    if not decision.confirmed:
        hold(result, decision, run)
        return left_in_inbox(path, in_place)
    settle_held(ledger, run_id, source, decision)
    if held_for_approval(source, result, run, refs):
        return left_in_inbox(path, in_place)
    if client is not None and not result.records.empty and ledger.is_empty():
        with turn(ledger, client, settings.integration_id, say):
            ctx = run.kind_context(refs, client)
            refuse_if_posted_before(ledger, client, settings, ctx, result.records)
    staged, conflict_keys, questions, issues = _stage(run, source, result)
    staged_set = set(staged)
    outcome = _dated_by_its_lines(
        account_rows(
            result.extract,
            result.validated,
            issues,
            _previously_posted(result, issues, staged_set, conflict_keys),
        ),
        result.records,
    )
    ledger.add_rejects(
        run_id,
        source.sha256,
        issues,
        amounts_as_shown(result.extract, issues),
        rejected_cents(result.validated, issues),
    )
    for issue in issues:
        log.info(
            "row rejected",
            extra={
                "run_id": run_id,
                "file": source.name,
                "row": issue.source_row,
                "code": issue.code.value,
            },
        )
    # Keys the ledger held before this file: the records of the file it may correct (a line
    # that is only identical to another file's record is a question, not a correction).
    known = sorted(set(result.records["record_key"].astype(str)) - staged_set - questions)
    _observe_file(run, source, result, issues, known, again=again)
    nothing_usable = outcome.rows_used == 0
    folder = settings.rejected_dir if nothing_usable else archive_folder(settings.archive_dir)
    target = (
        _kept_in_place(path, folder, settings)
        if in_place
        else _archive(source, folder, run_id, say)
    )
    errors_csv = target.with_name(target.name + ".errors.csv")
    if issues:
        write_atomically(errors_csv, errors_file_bytes(result, issues, path=target))
    elif in_place and errors_csv.exists():
        errors_csv.unlink()  # the archived copy's old rejects: none is left
    if again:
        ledger.record_pass(run_id, outcome, str(target))
    else:
        ledger.record_file(run_id, outcome, str(target))
    ledger.record_layout_use(
        run_id,
        source.sha256,
        source.name,
        layout_preview(result, decision),
        held=False,
        layout_id=decision.layout_id,
        confirmed_by=decision.confirmed_by,
    )
    log.info(
        "file processed",
        extra={
            "run_id": run_id,
            "file": source.name,
            "path": str(target),
            "count": outcome.rows_used,
        },
    )
    for notice in result.extract.notices:
        say(f"{source.name}: {notice}")
    for column in result.extract.columns_not_charged:
        say(f"{source.name}: {reporting.not_charged_text(column, refs.hints)}")
    say(f"{source.name}: {_rows_and_records(outcome, result.records, staged_set)}")
    return True, bool(issues)


def _previously_posted(
    result: FileResult, issues: list[Issue], staged: set[str], conflicts: set[str]
) -> int:
    """What of a file's lines was posted before (by an earlier version of it, or a run that
    read it): its records the ledger knew unchanged, and of a record in conflict (an invoice
    with one line changed) its lines that are not in conflict, so that a file's source is its
    posted, rejected and previously posted lines, each once."""
    records = result.records
    if records.empty:
        return 0
    keys = records["record_key"]
    known = int(records.loc[~keys.isin(staged | conflicts), "amount_cents"].sum())
    held = records[keys.isin(conflicts)]
    if held.empty:
        return known
    lines = result.validated.lines.dropna(subset=["amount_cents"])
    rows = {i.source_row for i in issues if i.code in (IssueCode.CONFLICT, IssueCode.SECOND_CHARGE)}
    in_question = int(lines.loc[lines["source_row"].isin(rows), "amount_cents"].sum())
    return known + max(int(held["amount_cents"].sum()) - in_question, 0)


def _dated_by_its_lines(outcome: FileOutcome, records: pd.DataFrame) -> FileOutcome:
    """A file that states no period (a bill export) is of the month all its lines are dated
    in: said in the ledger, so a version of it whose lines were all posted before (a
    re-export, a correction) is of that month too, not of the month it was processed."""
    if outcome.period is not None or records.empty or "transaction_date" not in records:
        return outcome
    months = {str(d)[:7] for d in records["transaction_date"].dropna()}
    if len(months) != 1:
        return outcome  # lines of several months: each period finds it by its records
    return replace(outcome, period=f"{months.pop()}-01", period_source="its lines' dates")


def _rows_and_records(outcome: FileOutcome, records: pd.DataFrame, staged: set[str]) -> str:
    """The row accounting, and what is new: the records staged and their own amount (not the
    file's, which is said beside it when it differs)."""
    new = records[records["record_key"].isin(staged)] if not records.empty else records
    cents = int(new["amount_cents"].sum()) if not new.empty else 0
    whole = outcome.source_total_cents
    word = "record" if len(staged) == 1 else "records"
    return (
        f"{outcome.rows_read} rows read, {outcome.rows_used} used, "
        f"{outcome.rows_rejected} rejected, {outcome.rows_skipped} skipped; "
        f"{len(staged)} new {word} ({dollars(cents)}"
        + (f" of the file's {dollars(whole)}" if whole != cents else "")
        + ")"
    )


def _stage(
    run: RunContext, source: SourceFile, result: FileResult
) -> tuple[list[str], set[str], set[str], list[Issue]]:
    """A read file's records into the ledger: (keys staged, keys in conflict, those of them
    that are only a question (a line identical to one another file posted), the file's issues
    with its conflicts). Posted records of the file's charge identities that no line matched
    are said."""
    ledger, run_id, say = run.ledger, run.run_id, run.say
    told: list[str] = []
    staged, conflicts = ledger.stage_records(
        run_id, source.sha256, result.records, registered(), told
    )
    for line in told:
        say(f"{source.name}: {line}")
        log.info("posted record not in file", extra={"run_id": run_id, "file": source.name})
    issues = list(result.issues)
    questions: set[str] = set()
    if conflicts:
        by_key = result.records.set_index("record_key")
        for conflict in conflicts:
            record = by_key.loc[conflict.record_key]
            if isinstance(record, pd.DataFrame):  # keys are unique: one row
                record = record.iloc[0]
            found = conflict_issues(registered(), conflict, record, source.name)
            if found and all(i.code is IssueCode.SECOND_CHARGE for i in found):
                questions.add(conflict.record_key)
            issues += found
    return staged, {c.record_key for c in conflicts}, questions, issues


def _kept_in_place(path: Path, folder: Path, settings: Settings) -> Path:
    """Where a version read again in place (`tieout retry`) is kept for this pass: where it
    lies; but a refused version that is usable now is kept in the archive too (a copy: the
    refused one stays where the earlier run's report points), so a file that posted is never
    found only among the rejected."""
    if folder == settings.rejected_dir or not path.is_relative_to(settings.rejected_dir):
        return path
    return keep_version(path, folder, copy=True)


def _archive(source: SourceFile, folder: Path, run_id: str, say: Say) -> Path:
    """The taken file that was read, moved into ``folder`` (see :func:`inbox.archive_taken`)."""
    target, again = archive_taken(source, folder)
    if again is not None:
        say(
            f"{source.name}: changed after it was read; what was read is staged, and the file "
            f"as it is now is back in the inbox as {again.name}, to be read again"
        )
        log.warning("file changed after read", extra={"run_id": run_id, "file": source.name})
    return target


def _still_open(source: SourceFile, run: RunContext, first: str | None) -> bool:
    """A file taken in before: read again while it has open items; else a duplicate drop."""
    ledger, settings, run_id, say = run.ledger, run.settings, run.run_id, run.say
    still_open = ledger.open_count(source.sha256, RETRYABLE)
    if still_open:
        say(
            f"{source.name}: taken in before (run {first}) and {still_open} of its items are "
            "open: read again with today's aliases and reference data; rows already posted "
            "are not sent again"
        )
        return True
    if run.in_place:
        say(f"{source.name}: nothing open to retry (every row is settled)")
        return False
    target = keep_version(source.path, archive_folder(settings.archive_dir))
    release(source.path)
    ledger.record_drop(run_id, source.name, source.sha256, "duplicate drop", first)
    say(
        f"{source.name}: already processed in run {first}, and every row of it is settled; "
        "archived as a duplicate drop, nothing posted"
    )
    log.info("duplicate drop", extra={"run_id": run_id, "file": source.name, "path": str(target)})
    return False


def _refuse(source: SourceFile, run: RunContext, exc: InputError) -> None:
    """A file nothing of which can be read: moved to rejected/ beside its reason, an item at
    the amount the file states for itself (its own total row, when it has one)."""
    ledger, settings, run_id, say = run.ledger, run.settings, run.run_id, run.say
    stated = stated_of(source, run.profiles, settings)
    target = source.path
    if not run.in_place:
        target = keep_version(source.path, settings.rejected_dir)
        release(source.path)
    write_atomically(
        target.with_name(target.name + ".errors.csv"), errors_file_bytes(None, [], str(exc))
    )
    ledger.record_drop(run_id, source.name, source.sha256, str(exc), None)
    refused = new_item(
        "refused_file",
        source.sha256,
        source.name,
        "file",
        amount_cents=stated or 0,
        amount_text=None if stated is not None else "the file states no total",
        detail={
            "reason": str(exc),
            "path": str(target),
            "stated_cents": stated,
            **({"fix": exc.fix} if exc.fix else {}),
        },
    )
    ledger.observe_items(run_id, [refused])
    say(f"{source.name}: {exc} → moved to {target.parent}")


def _observe_file(
    run: RunContext,
    source: SourceFile,
    result: FileResult,
    issues: list[Issue],
    known_keys: list[str],
    *,
    again: bool,
) -> None:
    """The file's exceptions as open items: met again, still open; no longer met, settled by
    this run (its rows went through). A new file that corrects an earlier one (records of the
    same keys, or the same name and period) supersedes the earlier file's open items."""
    ledger, run_id, say = run.ledger, run.run_id, run.say
    lines = result.validated.lines
    cents = (
        lines.dropna(subset=["amount_cents"]).groupby("source_row")["amount_cents"].sum()
        if not lines.empty
        else pd.Series(dtype="int64")
    )
    wanted = {i.source_row for i in issues}
    rows = result.extract.rows
    cells = {
        whole(row["source_row"]): {
            str(k): v
            for k, v in row.items()
            if k != "source_row"
            and not str(k).startswith("_")
            and reporting.blank(v, None) is not None
        }
        for row in rows[rows["source_row"].isin(wanted)].to_dict("records")
    }
    items = file_items(
        source.name,
        source.sha256,
        issues,
        sheet=result.extract.sheet,
        cents_by_row={whole(k): whole(v) for k, v in cents.items()},
        amounts_as_shown=amounts_as_shown(result.extract, issues),
        cells_by_row=cells,
        implied_by_row=implied_amounts(result.extract.file_totals),
    )
    counts = ledger.observe_items(
        run_id,
        items,
        file_sha256=source.sha256,
        decides=FILE_CAUSES,
        note=f"its rows went through in run {run_id}",
    )
    if counts["settled"]:
        say(f"{source.name}: {counts['settled']} open items settled by this run")
    if again:
        return
    earlier = set(ledger.files_restated(known_keys, source.sha256))
    # A file of the same name is the same file only for the same period: this month's
    # rent_roll.xlsx does not correct last month's.
    named = ledger.files_named(source.name)
    period = result.outcome.period
    same = named["period"].isna() if period is None else named["period"].eq(period)
    earlier |= set(named.loc[same, "sha256"].astype(str)) - {source.sha256}
    if earlier:
        # The file is a later version of these (the period's workpaper counts it alone).
        ledger.set_meta(publish.supersedes_key(source.sha256), json.dumps(sorted(earlier)))
    superseded = ledger.supersede_items(
        sorted(earlier),
        run_id,
        f"superseded by the corrected file {source.name} ({source.sha256[:12]}) in run {run_id}",
    )
    if superseded:
        say(f"{source.name}: corrects an earlier file; {superseded} of its open items superseded")
