"""The stages composed: `run`, `check`, `reconcile_ledger` and report writing.

Each file goes extract → validate → transform (pure after extract) and its records are staged in
the ledger; then everything ready is posted and followed to its outcome; then whatever is due is
reconciled; then the run's report is written from the ledger.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.core.config import Settings
from pipelines.core.disk import write_atomically
from pipelines.core.errors import InputError, TieoutError
from pipelines.core.kind import KindContext
from pipelines.core.logs import run_log
from pipelines.core.models import (
    UNFINISHED,
    FileOutcome,
    FileResult,
    Issue,
    IssueCode,
    OpenItem,
    RunOutcome,
    Say,
    SourceFile,
    printable,
    whole,
)
from pipelines.core.parsing import dollars
from pipelines.core.versions import locate, original_name
from pipelines.kinds import registered
from pipelines.ledger import Ledger
from pipelines.posting.budget import turn
from pipelines.posting.load import load
from pipelines.posting.propexo import PropexoClient, make_client
from pipelines.reading.grids import fingerprint
from pipelines.reading.profiles import (
    Profile,
    profiles_for,
)
from pipelines.reading.propose import LayoutHeld
from pipelines.reconciling import recovery
from pipelines.reconciling.before_send import (
    adopt_already_posted,
    conflict_issues,
    describe_doubt,
    refuse_if_posted_before,
    settle_in_doubt,
)
from pipelines.reconciling.rebuild import backup_ledger
from pipelines.reconciling.writeback import reconcile_ledger
from pipelines.reporting import publish
from pipelines.reporting import report as reporting
from pipelines.resolving.refcache import reference_data
from pipelines.resolving.refs import (
    RefData,
)
from pipelines.runs.check import dry_run_plan
from pipelines.runs.files import (
    LayoutDecision,
    accept_command,
    account_rows,
    amounts_as_shown,
    decide_layout,
    errors_file_bytes,
    layout_preview,
    preview_lines,
    process_file,
    proposal_preview,
    rejected_cents,
)
from pipelines.runs.inbox import (
    archive_folder,
    archive_taken,
    changed_since,
    complete_files,
    inbox_of,
    is_taken,
    keep_version,
    links_outside,
    put_back,
    recover_kept,
    refused_link_text,
    release,
    take_file,
    taken_files,
)
from pipelines.runs.intake import inbox_items, stated_of
from pipelines.runs.items import (
    FILE_CAUSES,
    IN_INBOX,
    INBOX_CAUSES,
    RETRYABLE,
    file_items,
    implied_amounts,
    new_item,
)

log = logging.getLogger("tieout")


def new_run_id() -> str:
    """Sortable and unique: ``20261121T031500Z-1a2b``."""
    return datetime.now(tz=UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(2)


# --- one file ------------------------------------------------------------------------------------


# --- check ---------------------------------------------------------------------------------------


# --- run -----------------------------------------------------------------------------------------


@contextmanager
def _claimed(
    path: Path, ledger: Ledger, say: Say, in_place: bool = False
) -> Iterator[SourceFile | None]:
    """The dropped file at ``path``, taken out of the inbox (:func:`inbox.take_file`) and held
    for this worker during the block; None when it is not this worker's to take in. Workers
    sharing an inbox (PostgreSQL) each take the files they claim; a file another worker has,
    or has already moved away, is left to it. A file whose processing stops on an error goes
    back to the inbox; one whose process dies stays taken, and the next run finishes it.
    ``in_place``: an archived version read again (`tieout retry`) is read where it is kept,
    never taken into a hidden folder, so it stays at the path every report gives for it."""
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


def _take_file(
    source: SourceFile,
    ledger: Ledger,
    run_id: str,
    profiles: list[Profile],
    refs: RefData,
    settings: Settings,
    say: Say,
    client: PropexoClient | None,
    *,
    in_place: bool = False,
) -> tuple[bool, bool]:
    """A claimed file into the ledger, then moved. On a ledger that holds no records yet, the
    file's records are first looked up in Propexo: if any is there, the ledger was lost (or
    this is the wrong data folder), and the run stops before anything is staged, leaving the
    file in the inbox.

    A file taken in before is read again while it has open items (a retry: rows already in the
    ledger are recognised by their keys and never staged twice); only a file whose every item
    is settled is a duplicate drop. ``in_place``: the file is an archived copy (`tieout retry`),
    read where it lies."""
    path = source.path
    first = ledger.file_run(source.sha256)
    again = first is not None
    if again and not _still_open(source, ledger, run_id, first, settings, say, in_place):
        return False, False
    try:
        result = process_file(source, profiles, refs, settings, ledger.confirmed_profiles())
    except LayoutHeld as exc:
        return _hold_proposal(exc, source, ledger, run_id, settings, say, in_place)
    except InputError as exc:
        _refuse(source, ledger, run_id, settings, say, exc, in_place, profiles)
        return False, True
    if changed_since(source) and not in_place:
        put_back(path)
        say(
            f"{source.name}: the file changed while it was being read (still being written?); "
            "put back in the inbox, and read again once it stops changing"
        )
        log.warning("file changed while read", extra={"run_id": run_id, "file": source.name})
        return False, True
    decision = decide_layout(result.extract, _confirmation(ledger, result))
    if not decision.confirmed:
        _hold(result, decision, ledger, run_id, settings, say)
        return _left_in_inbox(path, in_place)
    _settle_held(ledger, run_id, source, decision)
    if _held_for_approval(source, result, ledger, run_id, refs, settings, say):
        return _left_in_inbox(path, in_place)
    if client is not None and not result.records.empty and ledger.is_empty():
        with turn(ledger, client, settings.integration_id, say):
            ctx = _context(settings, refs, ledger, client)
            refuse_if_posted_before(ledger, client, settings, ctx, result.records)
    staged, conflict_keys, questions, issues = _stage(ledger, run_id, source, result, say)
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
    _observe_file(ledger, run_id, source, result, issues, known, again=again, say=say)
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
    ledger: Ledger, run_id: str, source: SourceFile, result: FileResult, say: Say
) -> tuple[list[str], set[str], set[str], list[Issue]]:
    """A read file's records into the ledger: (keys staged, keys in conflict, those of them
    that are only a question (a line identical to one another file posted), the file's issues
    with its conflicts). Posted records of the file's charge identities that no line matched
    are said."""
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


def _hold(
    result: FileResult,
    decision: LayoutDecision,
    ledger: Ledger,
    run_id: str,
    settings: Settings,
    say: Say,
) -> None:
    """Nothing moves on a guess: the file stays in the inbox until a person confirms its
    layout; what it would do is said once, and recorded for the run's report."""
    source = result.source
    preview = layout_preview(result, decision, accept_command(_dropped_path(source.path), settings))
    # An open item until the layout is confirmed and the file taken in (its pass settles it),
    # at what the file states (its own total row), else what its lines would post.
    stated = reporting.stated_total(list(result.extract.file_totals))
    amount = result.outcome.source_total_cents if stated is None else stated
    _held_preview(preview, source, ledger, run_id, say, amount, result.extract.sheet)


def _held_preview(
    preview: dict[str, Any],
    source: SourceFile,
    ledger: Ledger,
    run_id: str,
    say: Say,
    amount: int | None = None,
    sheet: str | None = None,
) -> None:
    """A held file, said once and kept: its preview for the run's report, and an open item
    (``held_layout``) with what it would post (``amount``: what the file states, when known)
    and the command that confirms it."""
    ledger.record_layout_use(run_id, source.sha256, source.name, preview, held=True)
    item = new_item(
        "held_layout",
        source.sha256,
        source.name,
        "file",
        amount_cents=int(preview.get("source_total_cents") or 0) if amount is None else amount,
        sheet=sheet,
        detail={
            "path": str(_dropped_path(source.path)),
            "command": preview.get("command"),
            "reason": "its layout is not confirmed",
            "proposal": preview["layout"].get("proposal"),
            "fingerprint": preview["layout"].get("fingerprint"),
        },
    )
    ledger.observe_items(run_id, [item])
    for line in preview_lines(preview):
        say(line)
    log.info("layout held", extra={"run_id": run_id, "file": source.name})


def _hold_proposal(
    exc: LayoutHeld,
    source: SourceFile,
    ledger: Ledger,
    run_id: str,
    settings: Settings,
    say: Say,
    in_place: bool,
) -> tuple[bool, bool]:
    """A file of no known layout, held with tieout's proposal until a person confirms it."""
    command = accept_command(_dropped_path(source.path), settings)
    _held_preview(proposal_preview(source, exc.proposal, command), source, ledger, run_id, say)
    return _left_in_inbox(source.path, in_place)


def _settle_held(ledger: Ledger, run_id: str, source: SourceFile, decision: LayoutDecision) -> None:
    """A file held before whose layout a person has confirmed since: its item is settled."""
    ledger.observe_items(
        run_id,
        [],
        file_sha256=source.sha256,
        decides={"held_layout"},
        note=f"its layout was confirmed ({decision.confirmed_by})",
    )


def _left_in_inbox(path: Path, in_place: bool) -> tuple[bool, bool]:
    """A held file stays where the clerk dropped it (an archived copy, where it lies)."""
    if not in_place:
        put_back(path)
    return True, True


def _dropped_path(path: Path) -> Path:
    """Where a held file lies for the clerk: back in the inbox it was taken from."""
    return inbox_of(path) / path.name if is_taken(path) else path


def _confirmation(ledger: Ledger, result: FileResult) -> dict[str, Any] | None:
    facts = result.extract.layout
    return ledger.confirmed_layout(facts.fingerprint) if facts is not None else None


def _still_open(
    source: SourceFile,
    ledger: Ledger,
    run_id: str,
    first: str | None,
    settings: Settings,
    say: Say,
    in_place: bool,
) -> bool:
    """A file taken in before: read again while it has open items; else a duplicate drop."""
    still_open = ledger.open_count(source.sha256, RETRYABLE)
    if still_open:
        say(
            f"{source.name}: taken in before (run {first}) and {still_open} of its items are "
            "open: read again with today's aliases and reference data; rows already posted "
            "are not sent again"
        )
        return True
    if in_place:
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


def _refuse(
    source: SourceFile,
    ledger: Ledger,
    run_id: str,
    settings: Settings,
    say: Say,
    exc: InputError,
    in_place: bool,
    profiles: list[Profile],
) -> None:
    """A file nothing of which can be read: moved to rejected/ beside its reason, an item at
    the amount the file states for itself (its own total row, when it has one)."""
    stated = stated_of(source, profiles, settings)
    target = source.path
    if not in_place:
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


def _held_for_approval(
    source: SourceFile,
    result: FileResult,
    ledger: Ledger,
    run_id: str,
    refs: RefData,
    settings: Settings,
    say: Say,
) -> bool:
    """Maker and checker (``approve_each_file``): a file whose rows are ready stays in the inbox,
    an open item with its preview, until a person approves it; then it is taken in as any."""
    if not settings.approve_each_file or result.records.empty:
        return False
    if ledger.approved(source.sha256) is not None:
        return False
    records = result.records
    names = dict(zip(refs.locations["id"], refs.locations["name"], strict=True))
    by_location = records.groupby(records["location_id"].astype(str))["amount_cents"].sum()
    preview = {
        "lines": int(records["source_rows"].map(len).sum()),
        "records": len(records),
        "total_cents": int(records["amount_cents"].sum()),
        "by_location": {names.get(k, k): int(v) for k, v in by_location.items()},
        "file_totals": [
            {k: t.get(k) for k in ("column", "stated_cents", "computed_cents", "difference_cents")}
            for t in result.extract.file_totals
        ],
        "rows_rejected": result.outcome.rows_rejected,
    }
    ledger.observe_items(
        run_id,
        [
            new_item(
                "awaiting_approval",
                source.sha256,
                source.name,
                "file",
                amount_cents=preview["total_cents"],
                detail={"preview": preview, "path": str(_dropped_path(source.path))},
            )
        ],
    )
    say(
        f"{source.name}: held for approval, {preview['records']} records "
        f"({dollars(preview['total_cents'])}); it stays in the inbox until "
        f'`tieout approve "{source.name}" --by NAME`'
    )
    return True


def _observe_file(
    ledger: Ledger,
    run_id: str,
    source: SourceFile,
    result: FileResult,
    issues: list[Issue],
    known_keys: list[str],
    *,
    again: bool,
    say: Say,
) -> None:
    """The file's exceptions as open items: met again, still open; no longer met, settled by
    this run (its rows went through). A new file that corrects an earlier one (records of the
    same keys, or the same name and period) supersedes the earlier file's open items."""
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


def run(
    settings: Settings,
    *,
    inbox: Path | None = None,
    files: list[Path] | None = None,
    dry_run: bool = False,
    say: Say = print,
    on_progress: Callable[[int, int], None] | None = None,
    in_place: bool = False,
) -> RunOutcome:
    """Process the inbox end to end; returns the exit code the CLI should use.

    Only complete files are taken (size and mtime unchanged across ``settle_s``), unless the
    caller has already decided which ``files`` are complete (watch mode). ``in_place``: the
    ``files`` are archived copies read again where they lie (`tieout retry`).
    """
    inbox = inbox or settings.inbox_dir
    profiles = profiles_for(settings, registered())
    if dry_run:
        return dry_run_plan(settings, inbox, profiles, say)
    # Workers may run side by side on a PostgreSQL ledger; they take turns with Propexo.
    with Ledger(settings.ledger) as ledger, ledger.lock("run", shared=True):
        ledger.belongs_to(settings.integration_id)
        intake: list[OpenItem] | None = None  # what the inbox holds that no run can take
        if files is None:
            files, busy = complete_files(inbox, settings.settle_s)
            links = links_outside(inbox)
            intake = inbox_items(links, busy, settings.settle_s)
            empty = {i.file_name for i in intake if i.cause == "empty_file"}
            for path in busy:
                if printable(path.name) in empty:
                    say(
                        f"{printable(path.name)}: empty, and unchanged for the settle time: "
                        "an open item (`tieout todo`)"
                    )
                else:
                    say(f"{printable(path.name)}: still being written; left for the next run")
            for path in links:
                say(refused_link_text(path))
                log.warning("link refused", extra={"file": printable(path.name)})
        # Files an earlier run took out of the inbox and did not finish (it died) come first.
        files = [*taken_files(inbox), *files]
        for kept in recover_kept(_kept_folders(settings)):
            log.info("hidden version kept", extra={"file": printable(kept.name), "path": str(kept)})
        run_id = new_run_id()
        with run_log(settings.data_dir / "logs", run_id, settings.log_files_kept):
            outcome, stopped = _run_locked(
                ledger, settings, run_id, files, profiles, say, on_progress, in_place, intake
            )
        if outcome.report_dir is not None:
            backup_ledger(settings, run_id)
        if stopped is not None:
            # The report and the backup are written; the reason is the command's one line.
            if outcome.report_dir is not None:
                say(f"the run stopped early; its report: {outcome.report_dir / 'report.html'}")
            raise stopped
        return outcome


def _kept_folders(settings: Settings) -> list[Path]:
    """The folders versions are kept in: the rejected folder and each day of the archive."""
    archive = settings.archive_dir
    days = sorted(p for p in archive.iterdir() if p.is_dir()) if archive.is_dir() else []
    return [settings.rejected_dir, *days]


def _run_locked(
    ledger: Ledger,
    settings: Settings,
    run_id: str,
    files: list[Path],
    profiles: list[Profile],
    say: Say,
    on_progress: Callable[[int, int], None] | None,
    in_place: bool = False,
    intake: list[OpenItem] | None = None,
) -> tuple[RunOutcome, TieoutError | None]:
    """The run, and what stopped it early (a refused token, Propexo unreachable, …): a run
    that stops still records its end and writes its report, with the reason, when it had
    anything to do. ``intake``: the inbox's items (refused links, empty files) when the run
    looked at the inbox: open while they are there (the run exits 1), settled once gone; a
    run that opens one writes its report."""
    log.info("run started", extra={"run_id": run_id, "count": len(files)})
    ledger.start_run(run_id, dry_run=False, pid=os.getpid())
    opened = 0
    if intake is not None:
        opened = ledger.observe_items(run_id, intake)["opened"]
        ledger.settle_unmet(
            run_id,
            INBOX_CAUSES,
            {i.item_id for i in intake},
            f"no longer in the inbox at run {run_id}",
        )
    problems = bool(intake)
    processed = 0
    stopped: TieoutError | None = None
    try:
        with make_client(settings) as client:
            found, processed = _post_and_follow(
                ledger, client, settings, run_id, files, profiles, say, on_progress, in_place
            )
            problems |= found
    except TieoutError as exc:
        stopped = exc
        ledger.set_meta(publish.stopped_key(run_id), str(exc))
    finally:
        states = ledger.records(run_id=run_id, columns=["state"])
        problems |= bool(states["state"].isin(list(UNFINISHED)).any())
        exit_code = stopped.exit_code if stopped else 1 if problems else 0
        ledger.finish_run(run_id, exit_code)
        log.info("run finished", extra={"run_id": run_id, "code": exit_code})
    busy = processed or opened or not states.empty
    if not (busy or ledger.touched_keys(run_id) or (stopped and files)):
        return RunOutcome(run_id, exit_code, None, {}), stopped
    built = publish.build(ledger, settings, run_id, registered())
    # The verdict decides the exit code, so console, report and cron all say the same (a run
    # that stopped keeps its own code).
    verdict_code = 1 if built.summary["verdict"] == reporting.ATTENTION else 0
    if verdict_code != exit_code and stopped is None:
        exit_code = verdict_code
        ledger.finish_run(run_id, exit_code)
        built = publish.build(
            ledger, settings, run_id, registered()
        )  # the run's exit code is in it
    folder = publish.write(built, settings, run_id)
    publish.refresh_settled(ledger, settings, run_id, registered())
    return RunOutcome(run_id, exit_code, folder, built.summary), stopped


def _post_and_follow(
    ledger: Ledger,
    client: PropexoClient,
    settings: Settings,
    run_id: str,
    files: list[Path],
    profiles: list[Profile],
    say: Say,
    on_progress: Callable[[int, int], None] | None,
    in_place: bool = False,
) -> tuple[bool, int]:
    """Take every file in, post what is ready, follow it, reconcile: (problems, files taken)."""
    problems = False
    processed = 0
    with turn(ledger, client, settings.integration_id, say):
        refs = reference_data(ledger, client, settings)
        ledger.set_meta(
            "locations",
            json.dumps(dict(zip(refs.locations["id"], refs.locations["name"], strict=True))),
        )
        doubt = settle_in_doubt(
            ledger, client, settings, _context(settings, refs, ledger, client), run_id
        )
    if any(doubt.values()):
        say("in doubt from earlier runs: " + describe_doubt(doubt))
    for path in files:
        with _claimed(path, ledger, say, in_place) as source:
            if source is None:
                continue
            done, had_problems = _take_file(
                source, ledger, run_id, profiles, refs, settings, say, client, in_place=in_place
            )
        processed += int(done)
        problems |= had_problems
    # Posting, following and reconciling are this worker's turn with the integration: its
    # request budget is spent by one worker at a time, and no other has a write in flight.
    with turn(ledger, client, settings.integration_id, say):
        _post(ledger, client, settings, run_id, refs, say, on_progress)
    return problems, processed


def _post(
    ledger: Ledger,
    client: PropexoClient,
    settings: Settings,
    run_id: str,
    refs: RefData,
    say: Say,
    on_progress: Callable[[int, int], None] | None,
) -> None:
    """Adopt what Propexo already holds, hold what a recovering ledger cannot prove absent,
    post what is ready, follow it, reconcile."""
    ctx = _context(settings, refs, ledger, client)
    recovery.count_run(ledger, settings, run_id, say)
    recovery.release_held(ledger, run_id)
    logged, evidence, beyond = recovery.adopt_from_write_log(
        ledger, client, settings, ctx.kinds, run_id
    )
    if logged:
        say(
            f"{logged} records new to the ledger were already carried by a job in Propexo's "
            "write log (a restored ledger?): recorded, not sent again"
        )
    witnessed = adopt_already_posted(ledger, client, settings, ctx, run_id)
    if witnessed:
        say(
            f"{witnessed} records were already in Propexo (posted before, by tieout or "
            "by hand): recorded as posted, not sent again"
        )
    held = recovery.hold_unproven(ledger, settings, ctx, run_id, evidence, beyond)
    if held["found"]:
        say(f"{held['found']} records were read back from Propexo: recorded, not sent again")
    if held["held"]:
        say(
            f"{held['held']} records held, not sent: their absence from Propexo is not proven "
            "(`tieout todo` lists them with the reason)"
        )
    result = load(
        ledger,
        client,
        run_id=run_id,
        batch_size=settings.batch_size,
        status_timeout_s=settings.status_timeout_s,
        kinds=ctx.kinds,
        concurrency=settings.concurrency,
        on_progress=on_progress,
    )
    if result.requests:
        stats = client.stats
        rate = stats.requests / max(result.seconds, 1e-9) * 60
        say(
            f"posted {result.requests} write requests in {result.seconds:.1f}s; "
            f"{stats.requests} requests in all ({stats.status_polls} status polls), "
            f"{rate:.0f} req/min, {client.limiter.rate_limited} rate-limited"
        )
    if result.in_doubt:
        # Invoices read back at once: what this run left in doubt may be settled now.
        settled = settle_in_doubt(ledger, client, settings, ctx, run_id)
        if settled["found"]:
            say(f"{settled['found']} records in doubt were found in Propexo: confirmed")
    reconcile_ledger(ledger, client, settings, ctx, run_id=run_id)


def _context(
    settings: Settings, refs: RefData, ledger: Ledger, client: PropexoClient
) -> KindContext:
    """What every registered kind's functions are given in this run."""
    return KindContext.of(settings, registered(), refs=refs, ledger=ledger, client=client)


# --- retry ---------------------------------------------------------------------------------------


def retry_files(settings: Settings, target: str | None, *, every: bool) -> list[Path]:
    """The archived copies to read again: of the files with open items that a retry can settle
    (rejected rows, unknown names, …), those of run ``target``, or the file ``target`` (its
    name, or the path of a copy), or ``every`` one."""
    if (target is None) == (not every):
        raise InputError("say what to retry: a RUN_ID, a FILE, or --all (one of them)")
    with Ledger(settings.ledger, readonly=True) as ledger:
        if target is None:
            chosen = ledger.items()
        elif target in set(ledger.runs()["run_id"].astype(str)):
            chosen = ledger.items(run_id=target)
        else:
            # The name `tieout todo` shows (a refused file is in no run's files), a file taken
            # in under that name, or the path of a copy.
            shas = {
                str(i["file_sha256"])
                for i in ledger.items()
                if i["file_sha256"] and target in (i["file_name"], i["detail"].get("path"))
            }
            shas |= set(ledger.files_named(target)["sha256"].astype(str))
            path = Path(target)
            if path.is_file():
                shas.add(fingerprint(path).sha256)
            if not shas:
                raise InputError(
                    f"{target}: no run of that id and no file of that name or content in the "
                    "ledger; `tieout todo` lists what is open"
                )
            chosen = [i for i in ledger.items() if i["file_sha256"] in shas]
        # Each file's copy: where the run moved it (a refused file: beside its errors file).
        copies: dict[str, tuple[str, str | None]] = {}
        for item in chosen:
            sha = item["file_sha256"]
            if item["cause"] not in RETRYABLE or item["cause"] in IN_INBOX:
                continue  # a held file lies in the inbox: the next run takes it
            if not sha or sha in copies:
                continue
            known = ledger.file_of(str(sha))
            moved = known.get("moved_to") if known else item["detail"].get("path")
            copies[str(sha)] = (str(item["file_name"]), str(moved) if moved else None)
        paths: list[Path] = []
        for sha, (name, moved) in copies.items():
            where = locate(moved, sha)  # the version that run read, sha256 checked
            if where is None and moved and Path(moved).is_file():
                raise InputError(
                    f"{moved} has changed since it was archived; drop the corrected file "
                    f"into {settings.inbox_dir} instead (it supersedes the earlier one)"
                )
            if where is None:
                raise InputError(
                    f"the archived copy of {name} is not at {moved or 'a known place'}; drop "
                    f"the file into {settings.inbox_dir} instead"
                )
            paths.append(where)
    return paths
