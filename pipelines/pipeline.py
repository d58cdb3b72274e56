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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines import publish
from pipelines import report as reporting
from pipelines.budget import turn
from pipelines.check import dry_run_plan
from pipelines.config import Settings
from pipelines.errors import InputError, TieoutError
from pipelines.files import (
    LayoutDecision,
    accept_command,
    account_rows,
    amounts_as_shown,
    decide_layout,
    errors_file_bytes,
    layout_preview,
    preview_lines,
    process_file,
    profiles_for,
    write_atomically,
)
from pipelines.grids import fingerprint
from pipelines.inbox import (
    archive_folder,
    archive_taken,
    changed_since,
    complete_files,
    is_taken,
    links_outside,
    move_file,
    put_back,
    refused_link_text,
    release,
    take_file,
    taken_files,
)
from pipelines.ledger import Ledger
from pipelines.load import load
from pipelines.logs import run_log
from pipelines.models import (
    UNFINISHED,
    FileResult,
    Issue,
    RunOutcome,
    Say,
    SourceFile,
    printable,
)
from pipelines.profiles import (
    Profile,
)
from pipelines.propexo import PropexoClient, make_client
from pipelines.rebuild import backup_ledger
from pipelines.references import Unmatched, unmatched_text
from pipelines.refs import (
    RefData,
)
from pipelines.sync import (
    adopt_already_posted,
    adopt_from_write_log,
    conflict_issues,
    describe_doubt,
    reconcile_ledger,
    reference_data,
    refuse_if_posted_before,
    settle_in_doubt,
    vendor_x_ids,
)

log = logging.getLogger("tieout")


def new_run_id() -> str:
    """Sortable and unique: ``20261121T031500Z-1a2b``."""
    return datetime.now(tz=UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(2)


# --- one file ------------------------------------------------------------------------------------


# --- check ---------------------------------------------------------------------------------------


# --- run -----------------------------------------------------------------------------------------


@contextmanager
def _claimed(path: Path, ledger: Ledger, say: Say) -> Iterator[SourceFile | None]:
    """The dropped file at ``path``, taken out of the inbox (:func:`inbox.take_file`) and held
    for this worker during the block; None when it is not this worker's to take in. Workers
    sharing an inbox (PostgreSQL) each take the files they claim; a file another worker has,
    or has already moved away, is left to it. A file whose processing stops on an error goes
    back to the inbox; one whose process dies stays taken, and the next run finishes it."""
    recovered = is_taken(path)
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
        if (mine or not recovered) and taken.exists():
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
) -> tuple[bool, bool]:
    """A claimed file into the ledger, then moved. On a ledger that holds no records yet, the
    file's records are first looked up in Propexo: if any is there, the ledger was lost (or
    this is the wrong data folder), and the run stops before anything is staged, leaving the
    file in the inbox."""
    path = source.path
    first = ledger.file_run(source.sha256)
    if first is not None:
        target = move_file(path, archive_folder(settings.archive_dir))
        release(path)
        ledger.record_drop(run_id, source.name, source.sha256, "duplicate drop", first)
        say(
            f"{source.name}: already processed in run {first}; archived as a duplicate drop, "
            "nothing posted"
        )
        log.info(
            "duplicate drop", extra={"run_id": run_id, "file": source.name, "path": str(target)}
        )
        return False, False
    try:
        result = process_file(source, profiles, refs, settings, ledger.confirmed_profiles())
    except InputError as exc:
        target = move_file(path, settings.rejected_dir)
        release(path)
        write_atomically(
            target.with_name(target.name + ".errors.csv"), errors_file_bytes(None, [], str(exc))
        )
        ledger.record_drop(run_id, source.name, source.sha256, str(exc), None)
        say(f"{source.name}: {exc} → moved to {target.parent}")
        return False, True
    if changed_since(source):
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
        return True, True
    if client is not None and not result.records.empty and ledger.is_empty():
        with turn(ledger, client, settings.integration_id, say):
            refuse_if_posted_before(ledger, client, settings, vendor_x_ids(refs), result.records)
    staged, conflict_keys, issues = _stage(ledger, run_id, source, result, say)
    staged_set = set(staged)
    previous = (
        result.records[~result.records["record_key"].isin(staged_set | conflict_keys)]
        if not result.records.empty
        else result.records
    )
    outcome = account_rows(
        result.extract,
        result.validated,
        issues,
        int(previous["amount_cents"].sum()) if not previous.empty else 0,
    )
    ledger.add_rejects(run_id, source.sha256, issues, amounts_as_shown(result.extract, issues))
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
    nothing_usable = outcome.rows_used == 0
    folder = settings.rejected_dir if nothing_usable else archive_folder(settings.archive_dir)
    target = _archive(source, folder, run_id, say)
    if issues:
        write_atomically(
            target.with_name(target.name + ".errors.csv"),
            errors_file_bytes(result, issues, path=target),
        )
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
    say(
        f"{source.name}: {outcome.rows_read} rows read, {outcome.rows_used} used, "
        f"{outcome.rows_rejected} rejected, {outcome.rows_skipped} skipped; "
        f"{len(staged)} new records ({reporting.dollars(outcome.source_total_cents)})"
    )
    return True, bool(issues)


def _stage(
    ledger: Ledger, run_id: str, source: SourceFile, result: FileResult, say: Say
) -> tuple[list[str], set[str], list[Issue]]:
    """A read file's records into the ledger: (keys staged, keys in conflict, the file's
    issues with its conflicts). Posted records of the file's charge identities that no line
    matched are said."""
    unmatched: list[Unmatched] = []
    staged, conflicts = ledger.stage_records(run_id, source.sha256, result.records, unmatched)
    for gone in unmatched:
        say(f"{source.name}: {unmatched_text(gone)}")
        log.info("posted record not in file", extra={"run_id": run_id, "file": source.name})
    issues = list(result.issues)
    if conflicts:
        by_key = result.records.set_index("record_key")
        for conflict in conflicts:
            record = by_key.loc[conflict.record_key]
            if isinstance(record, pd.DataFrame):  # keys are unique: one row
                record = record.iloc[0]
            issues += conflict_issues(conflict, record, source.name)
    return staged, {c.record_key for c in conflicts}, issues


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
    preview = layout_preview(result, decision, accept_command(source.path, settings))
    ledger.record_layout_use(run_id, source.sha256, source.name, preview, held=True)
    for line in preview_lines(preview):
        say(line)
    log.info("layout held", extra={"run_id": run_id, "file": source.name})


def _confirmation(ledger: Ledger, result: FileResult) -> dict[str, Any] | None:
    facts = result.extract.layout
    return ledger.confirmed_layout(facts.fingerprint) if facts is not None else None


def run(
    settings: Settings,
    *,
    inbox: Path | None = None,
    files: list[Path] | None = None,
    dry_run: bool = False,
    say: Say = print,
    on_progress: Callable[[int, int], None] | None = None,
) -> RunOutcome:
    """Process the inbox end to end; returns the exit code the CLI should use.

    Only complete files are taken (size and mtime unchanged across ``settle_s``), unless the
    caller has already decided which ``files`` are complete (watch mode).
    """
    inbox = inbox or settings.inbox_dir
    profiles = profiles_for(settings)
    if dry_run:
        return dry_run_plan(settings, inbox, profiles, say)
    # Workers may run side by side on a PostgreSQL ledger; they take turns with Propexo.
    with Ledger(settings.ledger) as ledger, ledger.lock("run", shared=True):
        ledger.belongs_to(settings.integration_id)
        if files is None:
            files, busy = complete_files(inbox, settings.settle_s)
            for path in busy:
                say(f"{printable(path.name)}: still being written; left for the next run")
            for path in links_outside(inbox):
                say(refused_link_text(path))
                log.warning("link refused", extra={"file": printable(path.name)})
        # Files an earlier run took out of the inbox and did not finish (it died) come first.
        files = [*taken_files(inbox), *files]
        run_id = new_run_id()
        with run_log(settings.data_dir / "logs", run_id, settings.log_files_kept):
            outcome, stopped = _run_locked(
                ledger, settings, run_id, files, profiles, say, on_progress
            )
        if outcome.report_dir is not None:
            backup_ledger(settings, run_id)
        if stopped is not None:
            # The report and the backup are written; the reason is the command's one line.
            if outcome.report_dir is not None:
                say(f"the run stopped early; its report: {outcome.report_dir / 'report.html'}")
            raise stopped
        return outcome


def _run_locked(
    ledger: Ledger,
    settings: Settings,
    run_id: str,
    files: list[Path],
    profiles: list[Profile],
    say: Say,
    on_progress: Callable[[int, int], None] | None,
) -> tuple[RunOutcome, TieoutError | None]:
    """The run, and what stopped it early (a refused token, Propexo unreachable, …): a run
    that stops still records its end and writes its report, with the reason, when it had
    anything to do."""
    log.info("run started", extra={"run_id": run_id, "count": len(files)})
    ledger.start_run(run_id, dry_run=False, pid=os.getpid())
    problems = False
    processed = 0
    stopped: TieoutError | None = None
    try:
        with make_client(settings) as client:
            problems, processed = _post_and_follow(
                ledger, client, settings, run_id, files, profiles, say, on_progress
            )
    except TieoutError as exc:
        stopped = exc
        ledger.set_meta(publish.stopped_key(run_id), str(exc))
    finally:
        states = ledger.records(run_id=run_id, columns=["state"])
        problems |= bool(states["state"].isin(list(UNFINISHED)).any())
        exit_code = stopped.exit_code if stopped else 1 if problems else 0
        ledger.finish_run(run_id, exit_code)
        log.info("run finished", extra={"run_id": run_id, "code": exit_code})
    if not (processed or not states.empty or ledger.touched_keys(run_id) or (stopped and files)):
        return RunOutcome(run_id, exit_code, None, {}), stopped
    built = publish.build(ledger, settings, run_id)
    # The verdict decides the exit code, so console, report and cron all say the same (a run
    # that stopped keeps its own code).
    verdict_code = 1 if built.summary["verdict"] == reporting.ATTENTION else 0
    if verdict_code != exit_code and stopped is None:
        exit_code = verdict_code
        ledger.finish_run(run_id, exit_code)
        built = publish.build(ledger, settings, run_id)  # the run's exit code is in it
    outcome = RunOutcome(run_id, exit_code, publish.write(built, settings, run_id), built.summary)
    return outcome, stopped


def _post_and_follow(
    ledger: Ledger,
    client: PropexoClient,
    settings: Settings,
    run_id: str,
    files: list[Path],
    profiles: list[Profile],
    say: Say,
    on_progress: Callable[[int, int], None] | None,
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
        doubt = settle_in_doubt(ledger, client, settings, refs, run_id)
    if any(doubt.values()):
        say("in doubt from earlier runs: " + describe_doubt(doubt))
    for path in files:
        with _claimed(path, ledger, say) as source:
            if source is None:
                continue
            done, had_problems = _take_file(
                source, ledger, run_id, profiles, refs, settings, say, client
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
    """Adopt what Propexo already holds, post what is ready, follow it, reconcile."""
    logged = adopt_from_write_log(ledger, client, settings, run_id)
    if logged:
        say(
            f"{logged} records new to the ledger were already carried by a job in Propexo's "
            "write log (a restored ledger?): recorded, not sent again"
        )
    witnessed = adopt_already_posted(ledger, client, settings, vendor_x_ids(refs), run_id)
    if witnessed:
        say(
            f"{witnessed} records were already in Propexo (posted before, by tieout or "
            "by hand): recorded as posted, not sent again"
        )
    result = load(
        ledger,
        client,
        run_id=run_id,
        batch_size=settings.batch_size,
        status_timeout_s=settings.status_timeout_s,
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
        settled = settle_in_doubt(ledger, client, settings, refs, run_id)
        if settled["found"]:
            say(f"{settled['found']} records in doubt were found in Propexo: confirmed")
    reconcile_ledger(ledger, client, settings, vendor_x_ids(refs), run_id=run_id)
