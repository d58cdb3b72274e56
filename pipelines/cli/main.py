"""The `tieout` command line: it parses and prints; the work is :mod:`pipelines.runs`'s
(`run` in :mod:`pipelines.runs.pipeline`, `check` in :mod:`pipelines.runs.check`, `reconcile`
in :mod:`pipelines.runs.reconcile`). The other commands are registered here from their modules
(:mod:`pipelines.cli.reports`, :mod:`pipelines.cli.admin`, :mod:`pipelines.cli.rehearse`, …).

Settings are built here, once; errors become one clear line and an exit code (ARCHITECTURE.md,
"CLI"):
0 all good, 1 finished with rejected rows or failed writes, 2 unusable input or config,
3 another run holds the lock.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import click
from rich.markup import escape

from pipelines import __version__
from pipelines.cli.admin import config, ledger, profile, refs, webhooks
from pipelines.cli.alias import alias
from pipelines.cli.console import (
    CRASH_DIR,
    LEDGER_NAME,
    err,
    friendly,
    out,
    print_verdict,
    progress,
    report_cycle_error,
    say,
    settings_of,
    stamped,
)
from pipelines.cli.desk import COMMANDS as DESK_COMMANDS
from pipelines.cli.items import COMMANDS as ITEM_COMMANDS
from pipelines.cli.items import finish_run, open_items, print_todo
from pipelines.cli.layout import layout, print_layout
from pipelines.cli.rehearse import demo, sandbox
from pipelines.cli.reports import COMMANDS as REPORT_COMMANDS
from pipelines.core.config import Settings, load_settings
from pipelines.core.disk import owner_only
from pipelines.core.errors import UnreachableError
from pipelines.core.hints import AliasHints


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="tieout")
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Path to tieout.toml (default: $TIEOUT_CONFIG or ./tieout.toml).",
)
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder with inbox/, archive/, reports/ and the ledger (default: ./data).",
)
@click.option("-v", "--verbose", is_flag=True, help="Log what happens, step by step, to stderr.")
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None, data_dir: Path | None, verbose: bool) -> None:
    """tieout: spreadsheets into Rent Manager through Propexo, exactly once, provably.

    \b
    Typical day:
      tieout check bills.csv --offline   is this file readable? which rows are bad, and why?
      tieout run                         post everything in data/inbox/ (what cron calls)
      tieout reconcile                   after Propexo's next sync: did every record land?
      tieout status                      what is pending, in doubt or failed
      tieout report                      open data/reports/<run_id>/report.html

    Rehearse without Propexo: `tieout demo`, or `tieout sandbox` in one terminal and
    PROPEXO_BASE_URL=http://127.0.0.1:8765 in another.
    """
    level = logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:  # run logs go to files; the screen gets -v only
        handler.setLevel(level)
    # Everything a command writes is its user's only (reports hold residents' names, logs and
    # archived files their charges); put back afterwards for a caller in the same process.
    previous = owner_only()
    ctx.call_on_close(lambda: os.umask(previous))
    with friendly():
        overrides = {"data_dir": data_dir} if data_dir else None
        settings = load_settings(config_path=config_path, overrides=overrides)
        ctx.obj = {"settings": settings, "config_path": config_path, "overrides": overrides}
        CRASH_DIR[0] = settings.data_dir / "logs"
        LEDGER_NAME[0] = str(settings.ledger_path) if settings.ledger_is_file else "the ledger"


def _reading_options(command: Callable[..., None]) -> Callable[..., None]:
    """How files are read, shared by `run` and `check`: period, profile, property."""
    options = [
        click.option(
            "--period",
            default=None,
            metavar="YYYY-MM",
            help="Billing period for rent rolls that do not say it themselves.",
        ),
        click.option(
            "--period-override",
            is_flag=True,
            help="Use --period even for a file whose own title or name states another month.",
        ),
        click.option(
            "--profile",
            default=None,
            metavar="NAME|PATH",
            help="Read the files with this profile (a name, or a .toml file); it always wins.",
        ),
        click.option(
            "--property",
            "property_name",
            default=None,
            metavar="NAME",
            help="The property of a rent roll whose rows name none (a single-property export).",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _reading_settings(
    ctx: click.Context,
    period: str | None,
    period_override: bool,
    profile: str | None,
    property_name: str | None,
) -> Settings:
    settings = settings_of(ctx, profile=profile, property_name=property_name)
    if period:
        settings = replace(
            settings,
            period=load_settings(env={}, overrides={"period": period}).period,
            period_override=period_override,
        )
    return settings


@cli.command()
@click.option(
    "--inbox",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Folder to take files from (default: data/inbox).",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Show what would be posted (requests, batches per location, amounts, time) "
    "and write nothing anywhere.",
)
@_reading_options
@click.pass_context
def run(
    ctx: click.Context,
    inbox: Path | None,
    dry_run: bool,
    period: str | None,
    period_override: bool,
    profile: str | None,
    property_name: str | None,
) -> None:
    """Process every ready file in the inbox end to end.

    Each file is read, checked and resolved; its records are posted to Propexo (never twice),
    followed to their write-status, reconciled where Propexo already has them, and the run's
    report is written to data/reports/<run_id>/. Files move to data/archive/<date>/ (or to
    data/rejected/ when nothing in them was usable), with <name>.errors.csv beside any file
    that had rejected rows.
    """
    from pipelines.runs.pipeline import run as run_pipeline

    with friendly():
        settings = _reading_settings(ctx, period, period_override, profile, property_name)
        on_progress, stop = progress()
        try:
            outcome = run_pipeline(
                settings, inbox=inbox, dry_run=dry_run, say=say, on_progress=on_progress
            )
        finally:
            stop()
        if outcome.report_dir:
            finish_run(settings, outcome.summary, outcome.report_dir)
        elif not dry_run:
            out.print("nothing to do: the inbox has no ready files")
            items = open_items(settings)
            if items:
                print_todo(settings, items)
        sys.exit(outcome.exit_code)


@cli.command()
@click.option(
    "--interval",
    default=10.0,
    show_default=True,
    type=click.FloatRange(0.1),
    help="Seconds between looks at the inbox.",
)
@click.option(
    "--reconcile-every",
    default=60.0,
    show_default=True,
    type=click.FloatRange(1),
    help="Seconds between reconciles of what is posted.",
)
@click.pass_context
def watch(ctx: click.Context, interval: float, reconcile_every: float) -> None:
    """Watch the inbox and run whenever a complete file arrives; Ctrl-C stops.

    A file is taken once its size and modification time are unchanged between two looks
    (Excel lock files ~$*, dotfiles, .tmp, .part and .crdownload are ignored). A file or run
    that fails is reported and the watch goes on. Posted records are reconciled every
    --reconcile-every seconds, and at once when `tieout webhooks serve` records a SYNC_COMPLETE.
    """
    from pipelines.runs.watch import watch_inbox

    with friendly():
        out.print(f"watching {settings_of(ctx).inbox_dir} every {interval:g}s; Ctrl-C stops")
        try:
            watch_inbox(
                settings_of(ctx),
                interval_s=interval,
                reconcile_every_s=reconcile_every,
                say=stamped,
                on_error=report_cycle_error,
            )
        except KeyboardInterrupt:
            out.print("stopped")


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False))
@click.option("--offline", is_flag=True, help="Skip name → Propexo ID resolution (no network).")
@click.option(
    "--json",
    "json_out",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Write the full result (rows, rejects, counts) as JSON to this file.",
)
@_reading_options
@click.pass_context
def check(
    ctx: click.Context,
    files: tuple[Path, ...],
    offline: bool,
    json_out: Path | None,
    period: str | None,
    period_override: bool,
    profile: str | None,
    property_name: str | None,
) -> None:
    """Read, validate and resolve files without posting anything.

    Prints each file's row accounting (read = used + rejected + skipped) and writes
    <name>.errors.csv beside any file with rejected rows: the row number you see in Excel,
    the reasons, and the original cells. Exit code 0 when every data row is usable.
    """
    from pipelines.core.disk import write_atomically
    from pipelines.posting.propexo import unreachable_hint
    from pipelines.runs.check import check_files

    def read_offline(exc: UnreachableError) -> None:
        # Say what can be said without Propexo, then the next step.
        err.print(f"[bold red]tieout:[/] {escape(str(exc))}; the file is read offline")

    with friendly():
        settings = _reading_settings(ctx, period, period_override, profile, property_name)
        checked = check_files(settings, files, offline=offline, on_unreachable=read_offline)
        for r in checked.files:
            _print_checked(r, settings)
        if json_out:
            write_atomically(
                json_out, json.dumps({"files": checked.files}, indent=2, default=str).encode()
            )
        if checked.unreachable is not None:
            err.print(
                "names were not checked against Propexo (offline findings above); "
                + unreachable_hint(settings.base_url)
            )
        sys.exit(checked.exit_code)


def _print_checked(r: dict[str, Any], settings: Settings) -> None:
    """One checked file as `tieout check` prints it: its row accounting, what is to
    confirm online, and each cause once with its rows."""
    from pipelines.core.parsing import dollars
    from pipelines.reading.totals import total_text
    from pipelines.reporting.report import not_charged_text
    from pipelines.runs.check import rows_label

    if r.get("held"):
        from pipelines.reading.propose import proposal_lines

        for line in proposal_lines(r["name"], r["layout"]["proposal"], r["layout"]["command"]):
            out.print(line, markup=False)
        return
    skipped = ", ".join(f"{k} {v}" for k, v in r["skipped_by_kind"].items()) or "none"
    used = f"{r['rows_to_confirm']} to confirm online" if r["offline"] else f"{r['rows_used']} used"
    out.print(
        f"[bold]{escape(r['name'])}[/] ({r['profile']}): {r['rows_read']} rows read = "
        f"{used} + {r['rows_rejected']} rejected + "
        f"{r['rows_skipped']} skipped ({skipped}); total "
        f"{dollars(r['source_total_cents'])}"
    )
    if r["offline"] and r["rows_to_confirm"]:
        names = r["names"]
        out.print(
            f"  to confirm online: every {names} is checked against Propexo's; run "
            "without --offline",
            markup=False,
        )
    for confirm in r["to_confirm"]:
        out.print(
            f"  {rows_label(confirm['rows'])}, to confirm online: {confirm['reason']}",
            markup=False,
        )
    for total in r["file_totals"]:
        out.print(f"  {total_text(total, dollars)}", markup=False)
    print_layout(r["layout"])
    if r["period"]:
        out.print(f"  period: {r['period'][:7]} (from the {r['period_source']})")
    for notice in r["notices"]:
        out.print(f"  note: {notice}", markup=False)
    for column in r["columns_not_charged"]:
        if r["offline"] and not column.get("by_layout"):
            out.print(
                f'  to confirm online: column "{column["header"]}" holds amounts '
                f"({column['cells']} cells, {dollars(column['total_cents'])}): a charge "
                "only if Propexo knows a charge code by that name",
                markup=False,
            )
        else:
            text = not_charged_text(column, AliasHints(settings.data_dir))
            out.print(f"  not charged: {text}", markup=False)
    for cause in r["causes"][:50]:
        out.print(f"  {rows_label(cause['rows'])}, {cause['reason']}", markup=False)
    if len(r["causes"]) > 50:
        out.print(f"  … and {len(r['causes']) - 50} more: see {r['errors_file']}")
    if r["errors_file"]:
        out.print(f"  rejects written to {r['errors_file']}")
    if r["removed"]:
        out.print(f"  the file checks clean: removed the old {r['removed']}")


@cli.command()
@click.option(
    "--sync",
    is_flag=True,
    help="First ask Propexo for a manual sync (sandbox and rehearsal use; Propexo "
    "advises against routine manual syncs).",
)
@click.option(
    "--wait",
    "wait_s",
    default=0.0,
    type=click.FloatRange(0),
    metavar="SECONDS",
    help="Wait up to this long for the SYNC_COMPLETE of a sync tieout asked for (received by "
    "`tieout webhooks serve`).",
)
@click.pass_context
def reconcile(ctx: click.Context, sync: bool, wait_s: float) -> None:
    """Match posted records against Propexo's synced data and update the reports.

    Charges and credits only appear in Propexo after its next data sync, so run this after a
    sync (Propexo syncs every 12 hours by default). Records left in doubt by a crash or a lost
    answer are looked up here, and marked to be sent again only when provably absent.
    """
    from pipelines.kinds import registered
    from pipelines.runs.reconcile import after_reconcile, reconcile_command

    with friendly():
        settings = settings_of(ctx)
        result, reports = reconcile_command(
            settings, registered(), sync=sync, wait_s=wait_s, say=say
        )
        left = after_reconcile(settings, result)
        waiting, in_doubt, past_grace, step = (
            left.waiting,
            left.in_doubt,
            left.past_grace,
            left.step,
        )
        if result is None:
            out.print(
                f"nothing to match yet: {waiting} records still wait for Propexo's write-status "
                "(asked again now and at the next run)"
                if waiting
                else f"nothing to match: no record is known to be posted; {in_doubt:,} are in doubt"
                if in_doubt
                else "nothing to reconcile: no posted records in the ledger"
            )
            out.print(step, markup=False)
            if past_grace:
                sys.exit(1)
            return
        out.print(
            f"matched {result.matched}, awaiting sync {result.awaiting_sync}, missing "
            f"{result.missing}, mismatched {result.mismatched}, duplicated "
            f"{result.duplicated}, not verifiable by sync {result.unverifiable}, unexpected "
            f"{result.unexpected}"
        )
        # What is open now decides: a past run whose items were settled later is not.
        attention = False
        for folder in reports:
            summary = json.loads((folder / "summary.json").read_text())
            now = summary.get("verdict_now", summary.get("verdict"))
            if now == summary.get("verdict"):
                print_verdict(summary)
            else:
                out.print(
                    f"{summary['run_id']}: {summary.get('verdict')} then, {now} now",
                    markup=False,
                )
            attention |= now == "needs attention"
            out.print(f"report: {folder / 'report.html'}")
        # Records in doubt within their grace are not a failure; past it, they are a
        # person's to settle (exit 1), whatever the reports of their runs say.
        items = open_items(settings_of(ctx), records=False)
        if items:
            print_todo(settings_of(ctx), items)
        out.print(step, markup=False)
        if attention or items or past_grace:
            sys.exit(1)
        if result.missing or result.mismatched or result.duplicated:
            sys.exit(1)


@cli.command()
@click.argument("keys", nargs=-1)
@click.option("--present", "present", is_flag=True, help="You found it in Rent Manager.")
@click.option("--rm-id", default=None, help="With --present: the Rent Manager record id.")
@click.option("--absent", "absent", is_flag=True, help="You looked: it is not in Rent Manager.")
@click.option("--all-in-doubt", is_flag=True, help="Every record in doubt (asks to confirm).")
@click.option(
    "--send-again",
    is_flag=True,
    help="Records Propexo refused (state refused), after you fixed the cause: the next run "
    "sends them.",
)
@click.option("--all-refused", is_flag=True, help="With --send-again: every refused record.")
@click.option("--reason", default=None, help="Why (kept with the settlement in the ledger).")
@click.option("--yes", is_flag=True, help="Do not ask to confirm --all-in-doubt.")
@click.pass_context
def resolve(
    ctx: click.Context,
    keys: tuple[str, ...],
    present: bool,
    rm_id: str | None,
    absent: bool,
    all_in_doubt: bool,
    send_again: bool,
    all_refused: bool,
    reason: str | None,
    yes: bool,
) -> None:
    """A person settles records in doubt after looking in Rent Manager.

    --present marks them posted (reconcile then matches them); --absent sends them again on the
    next run. --send-again sends again records Propexo refused with a reason, once the cause is
    fixed. Each settlement is an event in the ledger with its time and reason.
    """
    from pipelines.core.errors import InputError
    from pipelines.ledger import Ledger
    from pipelines.reconciling.resolve import evidence, settle_by_hand
    from pipelines.reconciling.resolve import send_again as send_refused

    with friendly():
        if send_again:
            if present or absent or all_in_doubt:
                raise InputError("--send-again is for refused records: no --present/--absent")
            if bool(keys) == all_refused:
                raise InputError("name the records (KEY…) or say --all-refused, not both")
            settings = settings_of(ctx)
            with Ledger(settings.ledger) as ledger, ledger.lock("resolve"):
                sent = send_refused(
                    ledger, list(keys) or None, reason=reason or "sent again by a person"
                )
            out.print(f"{len(sent):,} refused records made ready; the next run sends them")
            return
        if present == absent:
            raise InputError(
                "say what you found: --present or --absent (one of them), or --send-again"
            )
        if bool(keys) == all_in_doubt:
            raise InputError("name the records (KEY…) or say --all-in-doubt, not both")
        settings = settings_of(ctx)
        with Ledger(settings.ledger) as ledger, ledger.lock("resolve"):
            for line in evidence(ledger, list(keys) or None, settings.integration_id):
                out.print(line, markup=False, highlight=False, soft_wrap=True)
            if all_in_doubt and not yes:
                click.confirm(
                    "Settle every record in doubt as "
                    + ("present" if present else "absent (they will be sent again)")
                    + "?",
                    abort=True,
                )
            done = settle_by_hand(
                ledger,
                list(keys) or None,
                present=present,
                rm_id=rm_id,
                reason=reason or "settled by a person",
            )
        out.print(
            f"settled {len(done):,} records as {'present' if present else 'absent'}"
            + ("" if present else "; the next run sends them")
        )


@cli.command()
@click.pass_context
def doctor(ctx: click.Context) -> None:
    """Check this installation, like `dbt debug`: config and where each value came from,
    token, Propexo (which one, reachable, token accepted), integration, clock, reference data,
    ledger, folders, webhooks. PASS / WARN / FAIL per line; exit 1 on any FAIL."""
    from pipelines.cli.doctor import FAIL, PASS, run_doctor
    from pipelines.core.config import config_file, setting_sources

    with friendly():
        settings: Settings = ctx.obj["settings"]
        path = config_file(config_path=ctx.obj.get("config_path"))
        sources = setting_sources(
            config_path=ctx.obj.get("config_path"), overrides=ctx.obj.get("overrides")
        )
        checks = run_doctor(settings, path, sources)
        style = {PASS: "green", FAIL: "bold red"}
        for check in checks:
            out.print(
                f"[{style.get(check.status, 'yellow')}]{check.status}[/]  {check.name}: "
                f"{escape(check.detail)}"
            )
        failed = sum(c.status == FAIL for c in checks)
        warned = sum(c.status not in (PASS, FAIL) for c in checks)
        out.print(f"{failed} failed, {warned} warnings, {len(checks) - failed - warned} passed")
        sys.exit(1 if failed else 0)


for command in (
    webhooks,
    profile,
    ledger,
    sandbox,
    demo,
    refs,
    config,
    layout,
    alias,
    *REPORT_COMMANDS,
    *ITEM_COMMANDS,
    *DESK_COMMANDS,
):
    cli.add_command(command)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="tieout")
