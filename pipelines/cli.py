"""The `tieout` command line: a thin layer over :mod:`pipelines.pipeline`.

Settings are built here, once; errors become one clear line and an exit code (DESIGN.md):
0 all good, 1 finished with rejected rows or failed writes, 2 unusable input or config,
3 another run holds the lock.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from pipelines import __version__
from pipelines.config import Secret, Settings, load_settings
from pipelines.errors import TieoutError, UnreachableError
from pipelines.refs import REF_KINDS

F = TypeVar("F", bound=Callable[..., Any])
# soft_wrap: a path or a message is never broken over lines, so logs and scripts can use it.
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 120)
err = Console(stderr=True, highlight=False, soft_wrap=True)
REPO_ROOT = Path(__file__).resolve().parent.parent


def _say(text: str) -> None:
    """Pipeline messages hold file names and cells: printed as they are, never as markup."""
    out.print(text, markup=False)


def _stamped(text: str) -> None:
    """A watch line: when it happened (local time), then what."""
    from datetime import datetime

    out.print(f"{datetime.now().astimezone():%Y-%m-%d %H:%M:%S} {text}", markup=False)


def _settings(ctx: click.Context, **overrides: Any) -> Settings:
    base: Settings = ctx.obj["settings"]
    values = {k: v for k, v in overrides.items() if v is not None}
    return replace(base, **values) if values else base


@contextmanager
def _friendly() -> Iterator[None]:
    """Turn every expected failure into one readable line and its exit code; no tracebacks."""
    try:
        yield
    except TieoutError as exc:
        err.print(f"[bold red]tieout:[/] {escape(str(exc))}")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print(
            "[yellow]interrupted[/]: nothing half-done is lost; records in flight are "
            "marked in doubt and settled by the next run"
        )
        sys.exit(130)
    except Exception as exc:  # the one place a bug becomes a message instead of a traceback
        crash = _write_crash_report(exc)
        err.print(
            f"[bold red]tieout: internal error[/] ({type(exc).__name__}: {escape(str(exc))}). "
            "Nothing was "
            f"lost: the ledger keeps every record's state. Details for support: {crash}"
        )
        sys.exit(2)


CRASH_DIR = [Path("data") / "logs"]  # the configured data dir's logs/, once settings are read


def _write_crash_report(exc: BaseException) -> Path:
    """The traceback goes to a file for the developers, not onto an accountant's screen."""
    import tempfile
    import traceback
    from datetime import UTC, datetime

    folder = CRASH_DIR[0]
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        folder = Path(tempfile.gettempdir())
    path = folder / f"crash-{datetime.now(tz=UTC).strftime('%Y%m%dT%H%M%SZ')}.txt"
    path.write_text("".join(traceback.format_exception(exc)), encoding="utf-8")
    return path


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
    with _friendly():
        overrides = {"data_dir": data_dir} if data_dir else None
        settings = load_settings(config_path=config_path, overrides=overrides)
        ctx.obj = {"settings": settings, "config_path": config_path, "overrides": overrides}
        CRASH_DIR[0] = settings.data_dir / "logs"


def _progress(
    every_s: float = 10.0, clock: Callable[[], float] | None = None
) -> tuple[Callable[[int, int], None] | None, Callable[[], None]]:
    """A progress bar with ETA on a terminal; for cron or a pipe, a line every ``every_s``
    seconds (records posted / total, rate, ETA), so a long post is never silent."""
    if not out.is_terminal:
        import time

        now_s = clock or time.monotonic
        state = {"started": 0.0, "last": 0.0, "first": 0.0}

        def line(done: int, total: int) -> None:
            now = now_s()
            if not state["started"]:
                state["started"] = state["last"] = now
                state["first"] = done
                return
            if done >= total:
                out.print(f"posting: {done:,}/{total:,} requests, done")
                return
            if now - state["last"] < every_s:
                return
            state["last"] = now
            rate = (done - state["first"]) / max(now - state["started"], 1e-9)
            eta = f", about {(total - done) / rate:,.0f}s left" if rate > 0 else ""
            out.print(f"posting: {done:,}/{total:,} requests, {rate * 60:,.0f}/min{eta}")

        return line, lambda: None
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(
        TextColumn("posting"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeRemainingColumn(),
        console=out,
        transient=True,
    )
    task = bar.add_task("posting", total=None)
    started = [False]

    def update(done: int, total: int) -> None:
        if not started[0]:
            bar.start()
            started[0] = True
        bar.update(task, completed=done, total=total)

    return update, bar.stop


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
    settings = _settings(ctx, profile=profile, property_name=property_name)
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
    from pipelines.pipeline import run as run_pipeline

    with _friendly():
        settings = _reading_settings(ctx, period, period_override, profile, property_name)
        progress, stop = _progress()
        try:
            outcome = run_pipeline(
                settings, inbox=inbox, dry_run=dry_run, say=_say, on_progress=progress
            )
        finally:
            stop()
        if outcome.report_dir:
            _print_summary(outcome.summary)
            out.print(f"report: {outcome.report_dir / 'report.html'}")
        elif not dry_run:
            out.print("nothing to do: the inbox has no ready files")
        sys.exit(outcome.exit_code)


VERDICT_STYLE = {"complete": "green", "waiting for sync": "yellow", "needs attention": "red"}


def _print_summary(summary: dict[str, Any]) -> None:
    from pipelines.report import dollars

    totals = summary["totals"]
    table = Table(show_header=True, header_style="bold")
    for column in ("file", "read", "used", "rejected", "skipped", "source total", "posted"):
        # Amounts wrap rather than be cut ("12,473…" is not a number anyone can check).
        table.add_column(
            column,
            justify="left" if column == "file" else "right",
            overflow="fold",
            no_wrap=column != "file",
        )
    for f in summary["files"]:
        table.add_row(
            escape(f["name"]),
            f"{f['rows_read']:,}",
            f"{f['rows_used']:,}",
            f"{f['rows_rejected']:,}",
            f"{f['rows_skipped']:,}",
            dollars(f["source_total_cents"]),
            dollars(f["posted_total_cents"]),
        )
    out.print(table)
    amounts = summary["records"].get("amount_by_state", {})
    states = Table(show_header=True, header_style="bold", title="records by state")
    for column in ("state", "records", "amount"):
        states.add_column(column, justify="left" if column == "state" else "right", no_wrap=True)
    for state, count in summary["records"]["by_state"].items():
        states.add_row(state, f"{count:,}", dollars(amounts.get(state, 0)))
    if summary["records"]["by_state"]:
        out.print(states)
    out.print(
        f"source {dollars(totals['source_total_cents'])} · posted "
        f"{dollars(totals['posted_total_cents'])} · rejected "
        f"{dollars(totals['rejected_total_cents'])} · matched in Propexo "
        f"{dollars(summary['reconciliation']['matched_total_cents'])}"
    )
    _print_verdict(summary)


def _print_verdict(summary: dict[str, Any]) -> None:
    """The run's verdict on a line of its own, then each reason with its count and amount."""
    from pipelines.report import dollars

    verdict = summary.get("verdict", "needs attention")
    out.print(f"[bold {VERDICT_STYLE.get(verdict, 'red')}]{verdict.capitalize()}[/]")
    for reason in summary.get("verdict_reasons", []):
        amount = f", {dollars(reason['amount_cents'])}" if reason["amount_cents"] else ""
        out.print(f"  {reason['count']:,} {escape(reason['reason'])}{amount}")


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
    from pipelines.watch import watch_inbox

    with _friendly():
        out.print(f"watching {_settings(ctx).inbox_dir} every {interval:g}s; Ctrl-C stops")
        try:
            watch_inbox(
                _settings(ctx),
                interval_s=interval,
                reconcile_every_s=reconcile_every,
                say=_stamped,
                on_error=_report_cycle_error,
            )
        except KeyboardInterrupt:
            out.print("stopped")


def _report_cycle_error(exc: BaseException) -> None:
    if isinstance(exc, TieoutError):
        err.print(f"[bold red]tieout:[/] {exc}")
    else:
        err.print(
            f"[bold red]tieout: internal error[/] ({type(exc).__name__}: {exc}); "
            f"details: {_write_crash_report(exc)}; still watching"
        )


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
    from pipelines.check import check_file
    from pipelines.errors import InputError
    from pipelines.ledger import Ledger
    from pipelines.propexo import make_client, unreachable_hint, verify_token
    from pipelines.report import dollars, not_charged_text
    from pipelines.sync import reference_data

    with _friendly():
        settings = _reading_settings(ctx, period, period_override, profile, property_name)
        for path in files:
            if not path.exists():
                raise InputError(f"{path}: no such file")
        refs = None
        unreachable = None
        if not offline:
            try:
                with make_client(settings) as client:
                    # The token is checked even when reference data is cached: a wrong token
                    # must not pass `check` and fail at the first post.
                    verify_token(client, settings)
                    with Ledger(settings.ledger) as ledger:
                        refs = reference_data(ledger, client, settings)
            except UnreachableError as exc:
                # Say what can be said without Propexo, then the next step.
                unreachable = exc
                err.print(f"[bold red]tieout:[/] {escape(str(exc))}; the file is read offline")
        results = [check_file(path, settings, refs) for path in files]
        for r in results:
            skipped = ", ".join(f"{k} {v}" for k, v in r["skipped_by_kind"].items()) or "none"
            out.print(
                f"[bold]{escape(r['name'])}[/] ({r['profile']}): {r['rows_read']} rows read = "
                f"{r['rows_used']} used + {r['rows_rejected']} rejected + "
                f"{r['rows_skipped']} skipped ({skipped}); total "
                f"{dollars(r['source_total_cents'])}"
            )
            for total in r["file_totals"]:
                verdict = (
                    "ties out to"
                    if not total["difference_cents"]
                    else "cannot be checked (some cells are not amounts) against"
                )
                tied = total.get("rows_tied", 0)
                out.print(
                    f"  {verdict} its own {total.get('kind', 'total')} row (row "
                    f"{total['source_row']}, {total['column']}): {dollars(total['stated_cents'])}"
                    + (f"; {tied:,} subtotal rows above it tie too" if tied else "")
                )
            if r["period"]:
                out.print(f"  period: {r['period'][:7]} (from the {r['period_source']})")
            for notice in r["notices"]:
                out.print(f"  note: {notice}", markup=False)
            for column in r["columns_not_charged"]:
                out.print(f"  not charged: {not_charged_text(column)}", markup=False)
            for rej in r["rejected"][:50]:
                for reason in rej["reasons"]:
                    out.print(f"  row {rej['source_row']}, {reason}", markup=False)
            if len(r["rejected"]) > 50:
                out.print(f"  … and {len(r['rejected']) - 50} more rows: see {r['errors_file']}")
            if r["errors_file"]:
                out.print(f"  rejects written to {r['errors_file']}")
        if json_out:
            json_out.write_text(json.dumps({"files": results}, indent=2, default=str))
        if unreachable is not None:
            err.print(
                "names were not checked against Propexo (offline findings above); "
                + unreachable_hint(settings.base_url)
            )
            sys.exit(2)
        sys.exit(0 if all(r["rows_rejected"] == 0 for r in results) else 1)


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
    from pipelines.pipeline import reconcile_command

    with _friendly():
        result, reports = reconcile_command(_settings(ctx), sync=sync, wait_s=wait_s, say=_say)
        if result is None:
            from pipelines.ledger import Ledger

            with Ledger(_settings(ctx).ledger, readonly=True) as ledger:
                waiting = len(ledger.records(states=["submitted"]))
            out.print(
                f"nothing to match yet: {waiting} records still wait for Propexo's write-status "
                "(asked again now and at the next run)"
                if waiting
                else "nothing to reconcile: no posted records in the ledger"
            )
            return
        out.print(
            f"matched {result.matched}, awaiting sync {result.awaiting_sync}, missing "
            f"{result.missing}, mismatched {result.mismatched}, duplicated "
            f"{result.duplicated}, not verifiable by sync {result.unverifiable}, unexpected "
            f"{result.unexpected}"
        )
        attention = False
        for folder in reports:
            summary = json.loads((folder / "summary.json").read_text())
            _print_verdict(summary)
            attention |= summary.get("verdict") == "needs attention"
            out.print(f"report: {folder / 'report.html'}")
        if attention or result.missing or result.mismatched or result.duplicated:
            sys.exit(1)


@cli.command()
@click.argument("run_id", required=False)
@click.pass_context
def report(ctx: click.Context, run_id: str | None) -> None:
    """(Re)render a run's report from the ledger (the latest run by default)."""
    from pipelines.errors import InputError
    from pipelines.ledger import Ledger
    from pipelines.publish import write_report

    with _friendly():
        settings = _settings(ctx)
        with Ledger(settings.ledger) as ledger:
            run_id = run_id or ledger.last_run_id()
            if run_id is None:
                raise InputError("no runs in the ledger yet: run `tieout run` first")
            folder = write_report(ledger, settings, run_id)
        out.print(f"report: {folder / 'report.html'}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Ledger summary: counts and amounts by state, what is in doubt, the last run."""
    from datetime import UTC, datetime

    from pipelines.ledger import Ledger
    from pipelines.models import IN_DOUBT
    from pipelines.report import dollars

    with _friendly():
        settings = _settings(ctx)
        with Ledger(settings.ledger, readonly=True) as ledger:
            by_state = ledger.by_state()
            doubt = ledger.records(states=list(IN_DOUBT))
            runs = ledger.runs()
        now = datetime.now(tz=UTC)
        in_doubt = [
            {
                "record_key": r.record_key,
                "kind": r.kind,
                "state": r.state,
                "sent_at": r.sent_at,
                "age_s": _age_s(r.sent_at, now),
                "note": r.note,
                "amount_cents": int(r.amount_cents),
            }
            for r in doubt.itertuples()
        ]
        in_doubt.sort(key=lambda d: str(d["sent_at"]))
        last = runs.iloc[-1].to_dict() if not runs.empty else None
        if as_json:
            out.print_json(
                json.dumps(
                    {"by_state": by_state, "in_doubt": in_doubt, "last_run": last}, default=str
                )
            )
            return
        table = Table("state", "records", "amount", header_style="bold")
        for state, v in sorted(by_state.items()):
            table.add_row(state, str(v["count"]), dollars(v["amount_cents"]))
        out.print(table)
        if in_doubt:
            oldest = in_doubt[0]
            out.print(
                f"[yellow]{len(in_doubt):,} in doubt[/] (never re-sent until a complete sync "
                f"proves them absent); oldest sent {oldest['sent_at']}, "
                f"{_age_text(oldest['age_s'])} ago: {oldest['note'] or 'waiting for a sync'}"
            )
            out.print(
                "  `tieout reconcile` settles what a sync has proven; after looking in Rent "
                "Manager, `tieout resolve KEY --present|--absent`"
            )
        out.print(
            f"last run: {last['run_id']} (exit {last['exit_code']})" if last else "no runs yet"
        )


def _age_s(stamp: Any, now: Any) -> float | None:
    from datetime import datetime

    if not isinstance(stamp, str):
        return None
    return (now - datetime.fromisoformat(stamp.replace("Z", "+00:00"))).total_seconds()


def _age_text(seconds: float | None) -> str:
    if seconds is None:
        return "an unknown time"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@cli.command()
@click.argument("keys", nargs=-1)
@click.option("--present", "present", is_flag=True, help="You found it in Rent Manager.")
@click.option("--rm-id", default=None, help="With --present: the Rent Manager record id.")
@click.option("--absent", "absent", is_flag=True, help="You looked: it is not in Rent Manager.")
@click.option("--all-in-doubt", is_flag=True, help="Every record in doubt (asks to confirm).")
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
    reason: str | None,
    yes: bool,
) -> None:
    """A person settles records in doubt after looking in Rent Manager.

    --present marks them posted (reconcile then matches them); --absent sends them again on the
    next run. Each settlement is an event in the ledger with its time and reason.
    """
    from pipelines.errors import InputError
    from pipelines.ledger import Ledger
    from pipelines.lock import run_lock
    from pipelines.resolve import settle_by_hand

    with _friendly():
        if present == absent:
            raise InputError("say what you found: --present or --absent (one of them)")
        if bool(keys) == all_in_doubt:
            raise InputError("name the records (KEY…) or say --all-in-doubt, not both")
        settings = _settings(ctx)
        with run_lock(settings.lock_path, "resolve"):
            ledger = Ledger(settings.ledger)
            try:
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
            finally:
                ledger.close()
        out.print(
            f"settled {len(done):,} records as {'present' if present else 'absent'}"
            + ("" if present else "; the next run sends them")
        )


@cli.group()
def webhooks() -> None:
    """Receive Propexo's webhooks: SYNC_COMPLETE is what proves a sync finished.

    Without a receiver, records in doubt stay in doubt until a person settles them.
    """


@webhooks.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8766, show_default=True, type=int, help="Port to listen on.")
@click.pass_context
def webhooks_serve(ctx: click.Context, host: str, port: int) -> None:
    """Record SYNC_COMPLETE and WRITE_OPERATION_FAILURE deliveries in the ledger until Ctrl-C."""
    from pipelines.webhooks import serve

    with _friendly():
        out.print(f"receiving Propexo webhooks on http://{host}:{port}/ ; Ctrl-C stops")
        serve(_settings(ctx), host, port)


@webhooks.command("register")
@click.argument("url")
@click.pass_context
def webhooks_register(ctx: click.Context, url: str) -> None:
    """Subscribe URL (where `tieout webhooks serve` is reachable) through Propexo's webhook API."""
    from pipelines.ledger import Ledger
    from pipelines.propexo import make_client
    from pipelines.webhooks import register

    with _friendly():
        settings = _settings(ctx)
        with Ledger(settings.ledger) as ledger, make_client(settings) as client:
            result = register(client, settings, ledger, url)
        out.print(f"subscribed {result['url']} (webhook {result['id']}, active {result['active']})")


@cli.group()
def profile() -> None:
    """Teach tieout a new export format."""


@profile.command("init")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option(
    "--kind",
    type=click.Choice(["charge", "vendor_bill"]),
    default="charge",
    show_default=True,
    help="What the file holds: resident charges (a rent roll) or vendor bills.",
)
@click.option(
    "--out",
    "out_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Where to write the draft (default: <file name>.profile.toml in this folder).",
)
def profile_init(file: Path, kind: str, out_path: Path | None) -> None:
    """Write a draft profile for FILE: header row, columns, charge columns, row patterns, and
    what the draft yields on FILE. Review it, then `tieout check --profile DRAFT FILE`."""
    from pipelines.profile_init import draft_profile

    with _friendly():
        target = out_path or Path(re.sub(r"[^\w.-]+", "_", file.stem) + ".profile.toml")
        text = draft_profile(file, kind)  # type: ignore[arg-type]
        target.write_text(text, encoding="utf-8")
        for line in text.splitlines():
            if line.startswith("#"):
                out.print(line, markup=False)
        out.print(f"draft written to {target}", markup=False)


@cli.group()
def ledger() -> None:
    """The ledger itself: rebuild a lost one from Propexo."""


@ledger.command("rebuild")
@click.option(
    "--from",
    "start",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="Earliest charge date to adopt (default: today less sync_window_days).",
)
@click.option(
    "--to",
    "end",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="Latest charge date to adopt (default: today plus sync_window_days).",
)
@click.pass_context
def ledger_rebuild(ctx: click.Context, start: Any, end: Any) -> None:
    """Adopt what Propexo holds into a new, empty ledger, so re-dropped files post nothing twice.

    Every invoice of the integration (keyed by vendor and invoice number) and every charge
    and credit with a reference number in the date range (keyed by that number) is entered
    as posted. Wait for a sync first: charges Propexo has not synced yet cannot be adopted.
    """
    from pipelines.rebuild import rebuild_ledger

    with _friendly():
        rebuild_ledger(
            _settings(ctx),
            start=start.date() if start else None,
            end=end.date() if end else None,
            say=_say,
        )


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8765, show_default=True, type=int, help="Port to listen on.")
@click.option(
    "--seed",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Seed JSON with integrations, locations, properties, units, residents, leases, "
    "vendors, charge codes and financial accounts [default: data/sandbox/seed.json].",
)
@click.option(
    "--db",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="SQLite file for the sandbox's state, kept across restarts [default: memory].",
)
@click.option(
    "--token",
    default="sandbox-token",
    show_default=True,
    help="The Bearer token the sandbox accepts.",
)
@click.option(
    "--rate-limit",
    default=150,
    show_default=True,
    type=click.IntRange(1),
    help="Requests per window per token.",
)
@click.option(
    "--rate-window",
    default=60.0,
    show_default=True,
    type=click.FloatRange(0.1),
    help="Rate-limit window in seconds.",
)
@click.option(
    "--job-delay",
    default=1.0,
    show_default=True,
    type=click.FloatRange(0),
    help="Seconds a write stays PENDING before its outcome shows.",
)
@click.option(
    "--sync-interval",
    default=None,
    type=click.FloatRange(0.1),
    help="Run a data sync every S seconds (default: only on manual-sync).",
)
@click.option(
    "--faults",
    default=None,
    metavar="SPEC",
    help="Comma list of ROUTE:KIND=P; ROUTE post|get|*, KIND 500|502|503|reset|lost "
    "(lost: the write commits but the answer never arrives). "
    "Example: post:500=0.1,post:lost=0.05,*:reset=0.02",
)
@click.option("--fault-seed", default=None, type=int, help="Seed for repeatable faults.")
@click.option(
    "--sync-mode",
    type=click.Choice(["async", "instant"]),
    default="async",
    show_default=True,
    help="async: manual-sync answers at once and finishes --sync-duration later (as documented); "
    "instant: finishes before answering (quick rehearsals).",
)
@click.option("--sync-duration", default=3.0, show_default=True, type=click.FloatRange(0))
@click.option(
    "--sync-window-days",
    default=90.0,
    show_default=True,
    type=click.FloatRange(0),
    help="A sync sees resident charges dated within N days of it.",
)
@click.option(
    "--batch-errors",
    type=click.Choice(["opaque", "indexed"]),
    default="opaque",
    show_default=True,
    help="opaque: PMS strings with no index or reference; indexed: charges[i] …",
)
@click.option("--batch-atomic", is_flag=True, help="One bad charge fails the whole batch.")
@click.option(
    "--unknown-job",
    type=click.Choice(["400", "404"]),
    default="400",
    show_default=True,
    help="write-status answer for a job Propexo does not know.",
)
@click.option(
    "--reference-readback",
    type=click.Choice(["echo", "null"]),
    default="echo",
    show_default=True,
    help="Whether synced charges carry the reference_number that was sent.",
)
def sandbox(
    host: str,
    port: int,
    seed: Path | None,
    db: Path | None,
    token: str,
    rate_limit: int,
    rate_window: float,
    job_delay: float,
    sync_interval: float | None,
    faults: str | None,
    fault_seed: int | None,
    sync_mode: str,
    sync_duration: float,
    sync_window_days: float,
    batch_errors: str,
    batch_atomic: bool,
    unknown_job: str,
    reference_readback: str,
) -> None:
    """Run the local Propexo emulator (a real HTTP server) until Ctrl-C.

    It follows Propexo's documented API: Bearer auth, paged lists, RM invoice and batch charge
    writes as async jobs with write-status, charges visible only after a sync, rate-limit
    headers with the slowdown past 80% and 429 at 100%. Extra test hooks:
    GET /_sandbox/records?kind=invoice|charge|credit and POST /_sandbox/reset.
    """
    from sandbox.app import SandboxConfig, parse_faults
    from sandbox.server import open_store, read_seed, serve

    try:
        fault_table = parse_faults(faults)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--faults") from None
    with _friendly():
        seed_data = read_seed(seed)
        store = open_store(db, seed_data)
        config = SandboxConfig(
            token=token,
            rate_limit=rate_limit,
            rate_window_s=rate_window,
            job_delay_s=job_delay,
            sync_interval_s=sync_interval,
            faults=fault_table,
            fault_seed=fault_seed,
            sync_mode=sync_mode,
            sync_duration_s=sync_duration,
            sync_window_days=sync_window_days,
            batch_errors=batch_errors,
            batch_atomic=batch_atomic,
            unknown_job=int(unknown_job),
            reference_readback=reference_readback,
        )
        out.print(
            f"Propexo sandbox on http://{host}:{port} (token {Secret(token).masked()}, "
            f"{rate_limit} requests / {rate_window:g}s); Ctrl-C stops it"
        )
        if rate_window != 60:
            # Propexo says how much is left of a window, never when it resets: the client
            # paces by the window it is told (60 s, Propexo's documented one, by default).
            out.print(
                f"clients: set rate_window_s = {rate_window:g} in tieout.toml, or tieout paces "
                "by Propexo's 60 s window and posts far below this limit"
            )
        table = Table(
            "where Propexo's docs are silent", "this sandbox answers", header_style="bold"
        )
        for question, answer in config.semantics().items():
            table.add_row(question, answer)
        out.print(table)
        serve(host, port, store, config, seed_data)


@cli.command()
@click.option(
    "--workdir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("data/demo"),
    show_default=True,
    help="Private workspace for the demo (wiped at the start).",
)
def demo(workdir: Path) -> None:
    """Rehearse the whole pipeline on the sample files against an embedded sandbox.

    Starts the sandbox on a free loopback port, copies data/samples/ into a fresh inbox, runs,
    asks for a sync, reconciles, prints the report's path and stops the sandbox. Your own
    ledger, inbox and reports are not touched.
    """
    from pipelines.ledger import Ledger
    from pipelines.pipeline import reconcile_command
    from pipelines.pipeline import run as run_pipeline
    from pipelines.propexo import make_client
    from pipelines.webhooks import ReceiverThread, register
    from sandbox.app import SandboxConfig
    from sandbox.server import running_sandbox

    with _friendly():
        if workdir.exists():
            shutil.rmtree(workdir)
        inbox = workdir / "inbox"
        inbox.mkdir(parents=True)
        samples = REPO_ROOT / "data" / "samples"
        for sample in sorted(samples.iterdir()):
            if sample.is_file() and not sample.name.startswith("."):
                shutil.copy2(sample, inbox / sample.name)
        # Syncs finish after manual-sync answers, as Propexo documents; a webhook says when.
        config = SandboxConfig(job_delay_s=0.2, sync_duration_s=1.0)
        with running_sandbox(config) as box:
            settings = replace(
                load_settings(env={}),
                base_url=box.base_url,
                token=Secret(config.token),
                data_dir=workdir,
                status_timeout_s=30,
            )
            out.print(f"[bold]sandbox[/] on {box.base_url}; inbox {inbox}")
            with ReceiverThread(settings) as receiver:
                with Ledger(settings.ledger) as ledger, make_client(settings) as client:
                    register(client, settings, ledger, receiver.url)
                out.print(f"[bold]webhooks[/] received on {receiver.url}")
                outcome = run_pipeline(settings, say=_say)
                out.print("[bold]sync + reconcile[/]")
                result, reports = reconcile_command(settings, sync=True, wait_s=30, say=_say)
        summary = (
            json.loads((reports[-1] / "summary.json").read_text()) if reports else outcome.summary
        )
        _print_summary(summary)
        folder = reports[-1] if reports else outcome.report_dir
        out.print(f"report: {folder / 'report.html' if folder else '(none)'}")
        ok = result is not None and summary.get("verdict") == "complete"
        sys.exit(0 if ok else 1)


@cli.group()
def refs() -> None:
    """Propexo's reference data (vendors, properties, residents, ...) that names resolve to.

    It is cached in the ledger and refreshed when older than refs_max_age_s (default 1 hour).
    """


def _reference_data(ctx: click.Context, *, refresh: bool) -> Any:
    from pipelines.ledger import Ledger
    from pipelines.propexo import make_client
    from pipelines.sync import reference_data

    settings = _settings(ctx)
    with Ledger(settings.ledger) as ledger, make_client(settings) as client:
        return reference_data(ledger, client, settings, refresh=refresh)


@refs.command("refresh")
@click.pass_context
def refs_refresh(ctx: click.Context) -> None:
    """Fetch every reference list from Propexo now."""
    with _friendly():
        data = _reference_data(ctx, refresh=True)
        for kind in REF_KINDS:
            out.print(f"{kind}: {len(getattr(data, kind))}")


@refs.command("show")
@click.argument("kind", type=click.Choice(REF_KINDS))
@click.option("--search", default=None, metavar="TEXT", help="Only rows holding TEXT (any case).")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV, to start an alias file from.")
@click.pass_context
def refs_show(ctx: click.Context, kind: str, search: str | None, as_csv: bool) -> None:
    """Print what Propexo knows of one kind (from the cache, fetched if needed), with location
    and property names beside their ids: the names to put in data/mappings/*.csv.

    \b
    Example: which Rent Manager name has the vendor a bill calls "Greenway"?
      tieout refs show vendors --search greenway
    """
    with _friendly():
        data = _reference_data(ctx, refresh=False)
        frame = getattr(data, kind).copy()
        names = {
            "location_id": ("location", data.locations.set_index("id")["name"]),
            "property_id": ("property", data.properties.set_index("id")["name"]),
        }
        for column, (label, lookup) in names.items():
            if column in frame and label not in frame and kind != label + "s":
                frame.insert(frame.columns.get_loc(column) + 1, label, frame[column].map(lookup))
        if search:
            text = frame.astype(str)
            hit = text.apply(lambda col: col.str.contains(search, case=False, regex=False))
            frame = frame[hit.any(axis=1)]
        if as_csv:
            click.echo(frame.to_csv(index=False), nl=False)
            return
        table = Table(*[str(c) for c in frame.columns], header_style="bold")
        cells = frame.astype(object).where(frame.notna(), "")
        for row in cells.itertuples(index=False):
            table.add_row(*[escape(str(v)) for v in row])
        out.print(table)
        out.print(f"{len(frame):,} {kind}" + (f" holding {search!r}" if search else ""))


@cli.group()
def config() -> None:
    """Inspect the configuration."""


@cli.command()
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1), help="How many.")
@click.pass_context
def runs(ctx: click.Context, limit: int) -> None:
    """Past runs, newest first, with their verdict and totals (also data/reports/index.html)."""
    from pipelines.publish import run_summaries
    from pipelines.render import run_rows
    from pipelines.report import dollars

    with _friendly():
        settings: Settings = ctx.obj["settings"]
        rows = run_rows(run_summaries(settings.reports_dir))
        if not rows:
            out.print(f"no runs with a report yet in {settings.reports_dir}")
            return
        table = Table(show_header=True, header_style="bold")
        for column in ("run", "started", "verdict", "source", "posted", "rejected"):
            right = column in {"source", "posted", "rejected"}
            table.add_column(column, justify="right" if right else "left", no_wrap=True)
        for r in rows[:limit]:
            style = VERDICT_STYLE.get(r["verdict"], "red")
            table.add_row(
                str(r["run_id"]),
                r["started_at"][:19].replace("T", " "),
                f"[{style}]{r['verdict']}[/]",
                dollars(r["source_total_cents"]),
                dollars(r["posted_total_cents"]),
                dollars(r["rejected_total_cents"]),
            )
        out.print(table)
        out.print(f"index: {settings.reports_dir / 'index.html'}")


@cli.command()
@click.pass_context
def doctor(ctx: click.Context) -> None:
    """Check this installation, like `dbt debug`: config and where each value came from,
    token, Propexo (which one, reachable, token accepted), integration, clock, reference data,
    ledger, folders, webhooks. PASS / WARN / FAIL per line; exit 1 on any FAIL."""
    from pipelines.config import config_file, setting_sources
    from pipelines.doctor import FAIL, PASS, run_doctor

    with _friendly():
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


@config.command("show")
@click.pass_context
def config_show(ctx: click.Context) -> None:
    """Print the effective settings (the token masked)."""
    settings: Settings = ctx.obj["settings"]
    table = Table("setting", "value", header_style="bold")
    for key, value in settings.describe().items():
        table.add_row(key, value)
    out.print(table)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="tieout")
