"""`tieout run`, composed: the inbox listed, each file taken in (:mod:`pipelines.runs.take`),
everything ready posted and followed to its outcome, whatever is due reconciled, and the run's
report written from the ledger. Every step is handed the run's :class:`RunContext`.

Each file goes extract → validate → transform (pure after extract) and its records are staged in
the ledger; files held for a person are :mod:`pipelines.runs.holding`'s; `tieout retry`'s files
are chosen by :mod:`pipelines.runs.retry`.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from pipelines.core.config import Settings
from pipelines.core.errors import TieoutError
from pipelines.core.logs import run_log
from pipelines.core.models import (
    UNFINISHED,
    OpenItem,
    RunOutcome,
    Say,
    printable,
)
from pipelines.kinds import registered
from pipelines.ledger import Ledger
from pipelines.posting.budget import turn
from pipelines.posting.load import load
from pipelines.posting.propexo import PropexoClient, make_client
from pipelines.reading.profiles import profiles_for
from pipelines.reconciling import recovery
from pipelines.reconciling.before_send import (
    adopt_already_posted,
    describe_doubt,
    settle_in_doubt,
)
from pipelines.reconciling.rebuild import backup_ledger
from pipelines.reconciling.writeback import reconcile_ledger
from pipelines.reporting import publish
from pipelines.reporting import report as reporting
from pipelines.resolving.refcache import reference_data
from pipelines.resolving.refs import RefData
from pipelines.runs.check import dry_run_plan
from pipelines.runs.context import RunContext
from pipelines.runs.inbox import (
    complete_files,
    links_outside,
    recover_kept,
    refused_link_text,
    taken_files,
)
from pipelines.runs.intake import inbox_items
from pipelines.runs.items import INBOX_CAUSES
from pipelines.runs.retry import retry_files
from pipelines.runs.take import claimed, take_in

__all__ = ["RunContext", "new_run_id", "retry_files", "run"]

log = logging.getLogger("tieout")


def new_run_id() -> str:
    """Sortable and unique: ``20261121T031500Z-1a2b``."""
    return datetime.now(tz=UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(2)


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
        this = RunContext(settings, ledger, run_id, profiles, say, on_progress, in_place)
        with run_log(settings.data_dir / "logs", run_id, settings.log_files_kept):
            outcome, stopped = _run_locked(this, files, intake)
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
    run: RunContext, files: list[Path], intake: list[OpenItem] | None = None
) -> tuple[RunOutcome, TieoutError | None]:
    """The run, and what stopped it early (a refused token, Propexo unreachable, …): a run
    that stops still records its end and writes its report, with the reason, when it had
    anything to do. ``intake``: the inbox's items (refused links, empty files) when the run
    looked at the inbox: open while they are there (the run exits 1), settled once gone; a
    run that opens one writes its report."""
    ledger, settings, run_id = run.ledger, run.settings, run.run_id
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
            found, processed = _post_and_follow(run, client, files)
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


def _post_and_follow(run: RunContext, client: PropexoClient, files: list[Path]) -> tuple[bool, int]:
    """Take every file in, post what is ready, follow it, reconcile: (problems, files taken)."""
    ledger, settings, say = run.ledger, run.settings, run.say
    problems = False
    processed = 0
    with turn(ledger, client, settings.integration_id, say):
        refs = reference_data(ledger, client, settings)
        ledger.set_meta(
            "locations",
            json.dumps(dict(zip(refs.locations["id"], refs.locations["name"], strict=True))),
        )
        doubt = settle_in_doubt(
            ledger, client, settings, run.kind_context(refs, client), run.run_id
        )
    if any(doubt.values()):
        say("in doubt from earlier runs: " + describe_doubt(doubt))
    for path in files:
        with claimed(path, run) as source:
            if source is None:
                continue
            done, had_problems = take_in(source, run, refs, client)
        processed += int(done)
        problems |= had_problems
    # Posting, following and reconciling are this worker's turn with the integration: its
    # request budget is spent by one worker at a time, and no other has a write in flight.
    with turn(ledger, client, settings.integration_id, say):
        _post(run, client, refs)
    return problems, processed


def _post(run: RunContext, client: PropexoClient, refs: RefData) -> None:
    """Adopt what Propexo already holds, hold what a recovering ledger cannot prove absent,
    post what is ready, follow it, reconcile."""
    ledger, settings, run_id, say = run.ledger, run.settings, run.run_id, run.say
    ctx = run.kind_context(refs, client)
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
        on_progress=run.on_progress,
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
