"""What the person at the terminal sees: one readable line per failure (never a traceback),
progress while posting, the run's summary and verdict. Shared by every command."""

from __future__ import annotations

import errno
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from pipelines.core.config import Settings
from pipelines.core.errors import DiskFullError, LedgerBusyError, TieoutError
from pipelines.core.models import printable

# soft_wrap: a path or a message is never broken over lines, so logs and scripts can use it.
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 120)


err = Console(stderr=True, highlight=False, soft_wrap=True)


REPO_ROOT = Path(__file__).resolve().parents[2]


def say(text: str) -> None:
    """Pipeline messages hold file names and cells: printed as they are, never as markup, and
    never a control character (a name's ESC would reach the terminal)."""
    out.print(printable(text, keep="\n\t"), markup=False)


def stamped(text: str) -> None:
    """A watch line: when it happened (local time), then what."""
    from datetime import datetime

    line = printable(text, keep="\n\t")
    out.print(f"{datetime.now().astimezone():%Y-%m-%d %H:%M:%S} {line}", markup=False)


def settings_of(ctx: click.Context, **overrides: Any) -> Settings:
    base: Settings = ctx.obj["settings"]
    values = {k: v for k, v in overrides.items() if v is not None}
    return replace(base, **values) if values else base


@contextmanager
def friendly() -> Iterator[None]:
    """Turn every expected failure into one readable line and its exit code; no tracebacks."""
    try:
        yield
    except TieoutError as exc:
        known = environment_error(exc) or exc  # a ledger that cannot be opened: full? held?
        err.print(f"[bold red]tieout:[/] {escape(printable(str(known), keep=chr(10)))}")
        sys.exit(known.exit_code)
    except KeyboardInterrupt:
        err.print(
            "[yellow]interrupted[/]: nothing half-done is lost; records in flight are "
            "marked in doubt and settled by the next run"
        )
        sys.exit(130)
    except Exception as exc:  # the one place a bug becomes a message instead of a traceback
        said = environment_error(exc)
        if said is not None:
            err.print(f"[bold red]tieout:[/] {escape(str(said))}")
            sys.exit(said.exit_code)
        crash = write_crash_report(exc)
        details = (
            f"Details for support: {crash}" if crash else "(no crash report: none could be written)"
        )
        err.print(
            f"[bold red]tieout: internal error[/] ({type(exc).__name__}: "
            f"{escape(printable(str(exc), keep=chr(10)))}). "
            "Nothing was "
            f"lost: the ledger keeps every record's state. {escape(details)}"
        )
        sys.exit(2)


CRASH_DIR = [Path("data") / "logs"]  # the configured data dir's logs/, once settings are read
LEDGER_NAME = ["the ledger"]  # the configured ledger, once settings are read


def environment_error(exc: BaseException) -> TieoutError | None:
    """A full disk, or a ledger another process holds, anywhere in ``exc``'s chain (SQLite's
    and pandas' wrappers included): said as what it is, with its next step, not as a bug."""
    from pipelines.ledger.database import BUSY_TIMEOUT_S

    data_dir = CRASH_DIR[0].parent
    for link in _chain(exc):
        text = str(link).lower()
        if (isinstance(link, OSError) and link.errno in _DISK_FULL) or (
            "database or disk is full" in text
        ):
            return DiskFullError(
                f"the disk holding {data_dir} is full ({_free_kb(data_dir)} KB free): nothing "
                "was lost (the ledger keeps every record's state, and what did not fit was not "
                f"written); free some space on it (old reports, archive, logs or backups under "
                f"{data_dir}), then run the same command again"
            )
        if "database is locked" in text or "database is busy" in text:
            return LedgerBusyError(
                f"another process holds the ledger ({LEDGER_NAME[0]}) and did not let go in "
                f"{BUSY_TIMEOUT_S:.0f} s: what this command had not committed was not written. "
                "Run it again when the other one has finished (a `tieout webhooks serve` busy "
                "for long, or another program that has the file open: `fuser` names it)"
            )
    return None


_DISK_FULL = {errno.ENOSPC, errno.EDQUOT}


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        yield link
        link = link.__cause__ or link.__context__


def _free_kb(folder: Path) -> str:
    import shutil

    for place in (folder, *folder.parents):
        try:
            return f"{shutil.disk_usage(place).free // 1024:,}"
        except OSError:
            continue
    return "?"


def write_crash_report(exc: BaseException) -> Path | None:
    """The traceback goes to a file for the developers, not onto an accountant's screen (None
    when no file can be written: the message still goes out)."""
    import tempfile
    import traceback
    from datetime import UTC, datetime

    text = "".join(traceback.format_exception(exc))
    name = f"crash-{datetime.now(tz=UTC).strftime('%Y%m%dT%H%M%SZ')}.txt"
    for folder in (CRASH_DIR[0], Path(tempfile.gettempdir())):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text(text, encoding="utf-8")
        except OSError:
            continue
        return folder / name
    return None


def progress(
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


def print_summary(summary: dict[str, Any]) -> None:
    from pipelines.core.parsing import dollars
    from pipelines.reading.totals import is_tied, total_text

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
    for f in summary["files"]:
        # A file's own total row that its lines do not tie is said, never passed over.
        for total in f.get("file_totals", []):
            if not is_tied(total):
                out.print(f"  {f['name']}: {total_text(total, dollars)}", markup=False)
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
    print_verdict(summary)


VERDICT_STYLE = {"complete": "green", "waiting for sync": "yellow", "needs attention": "red"}


def print_verdict(summary: dict[str, Any]) -> None:
    """The run's verdict on a line of its own, then each reason with its count and amount."""
    from pipelines.core.parsing import dollars

    verdict = summary.get("verdict", "needs attention")
    out.print(f"[bold {VERDICT_STYLE.get(verdict, 'red')}]{verdict.capitalize()}[/]")
    for reason in summary.get("verdict_reasons", []):
        amount = f", {dollars(reason['amount_cents'])}" if reason["amount_cents"] else ""
        out.print(f"  {reason['count']:,} {escape(reason['reason'])}{amount}")


def age_text(seconds: float | None) -> str:
    if seconds is None:
        return "an unknown time"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def report_cycle_error(exc: BaseException) -> None:
    if isinstance(exc, TieoutError):
        err.print(f"[bold red]tieout:[/] {escape(printable(str(exc), keep=chr(10)))}")
    else:
        err.print(
            f"[bold red]tieout: internal error[/] ({type(exc).__name__}: "
            f"{escape(printable(str(exc), keep=chr(10)))}); "
            f"details: {write_crash_report(exc)}; still watching"
        )


class ChoiceOf(click.Choice[str]):
    """A choice among names read when they are asked for (the help, the check of a value), not
    when the command is declared: a kind registered after import brings its own (its reference
    lists, its kinds of names)."""

    def __init__(self, read: Callable[[], Iterable[str]]) -> None:
        self._read = read
        super().__init__(())

    @property
    def choices(self) -> tuple[str, ...]:
        return tuple(self._read())

    @choices.setter
    def choices(self, value: Any) -> None:
        """Click sets them when declared: they are read instead."""
