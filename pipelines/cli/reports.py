"""What the ledger says, for people: `tieout status`, `runs`, `report`, `trace` and `signoff`.
Registered on the main group in :mod:`pipelines.cli.main`; the work is
:mod:`pipelines.runs.status`, :mod:`pipelines.reporting`'s and the ledger's."""

from __future__ import annotations

import json
import sys

import click
from rich.markup import escape
from rich.table import Table

from pipelines.cli.console import (
    VERDICT_STYLE,
    age_text,
    friendly,
    out,
    settings_of,
)
from pipelines.core.config import Settings


@click.command()
@click.argument("run_id", required=False)
@click.option(
    "--period",
    metavar="YYYY-MM",
    help="The period's workpaper instead: every file of the period, across all runs.",
)
@click.pass_context
def report(ctx: click.Context, run_id: str | None, period: str | None) -> None:
    """(Re)render a run's report from the ledger (the latest run by default), or with
    --period the workpaper of a billing period (data/reports/period-YYYY-MM/)."""
    from pipelines.core.errors import InputError
    from pipelines.kinds import registered
    from pipelines.ledger import Ledger
    from pipelines.reporting.publish import period_of, write_period_report, write_report

    with friendly():
        settings = settings_of(ctx)
        with Ledger(settings.ledger) as ledger:
            if period is not None:
                month = period_of(period)
                if month is None:
                    raise InputError(f"--period {period}: expected a month as YYYY-MM")
                folder = write_period_report(ledger, settings, month, registered())
            else:
                run_id = run_id or ledger.last_run_id()
                if run_id is None:
                    raise InputError("no runs in the ledger yet: run `tieout run` first")
                folder = write_report(ledger, settings, run_id, registered())
        out.print(f"report: {folder / 'report.html'}")


@click.command()
@click.argument("query", metavar="KEY|REFERENCE|FILE:ROW")
@click.option("--json", "as_json", is_flag=True, help="Print the lineage as JSON.")
@click.pass_context
def trace(ctx: click.Context, query: str, as_json: bool) -> None:
    """A record's lineage: the file and its cells as the file has them, the aliases applied,
    Propexo's ids, the job, the state and the Rent Manager id once synced."""
    from pipelines.core.parsing import dollars
    from pipelines.kinds import registered
    from pipelines.ledger import Ledger
    from pipelines.reporting.trace import trace as lineage

    with friendly():
        settings = settings_of(ctx)
        with Ledger(settings.ledger, readonly=True) as ledger:
            found = lineage(ledger, settings, query, registered())
        if as_json:
            click.echo(json.dumps(found, indent=2, default=str))
            return
        for r in found:
            out.print(
                f"[bold]{escape(str(r['reference_number'] or r['invoice_number'] or ''))}[/] "
                f"{r['kind']} {dollars(r['amount_cents'])} · {r['state']} "
                f"[dim]({escape(str(r['record_key']))})[/]"
            )
            out.print(
                f"  file     {escape(str(r['file']))}"
                f"{', sheet ' + escape(str(r['sheet'])) if r['sheet'] else ''}"
                f", rows {', '.join(map(str, r['rows']))}"
                f" [dim](sha256 {str(r['file_sha256'])[:12]}…, archived "
                f"{escape(str(r['archived']))})[/]"
            )
            for field, cell in r["fields"].items():
                out.print(
                    f"  cell     {cell['cell']}  {escape(str(cell['header']))}: "
                    f"{escape(repr(cell['value']))}  [dim]({field})[/]"
                )
            for a in r["aliases"]:
                out.print(
                    f"  alias    {escape(a['as_read'])!r} → {escape(a['propexo_name'])} "
                    f"[dim]({escape(a['file'])}, line {a['line']})[/]"
                )
            for line in r["lines"]:
                read = line["as_read"]
                out.print(
                    f"  line     row {line['row']}: {dollars(line['amount_cents'])} "
                    f"({escape(repr(read.get('amount')))} in {line['cells'].get('amount', '-')})"
                    f" to GL {escape(str(read.get('gl_account')))} "
                    f"[dim]{line['financial_account_id']}[/] at "
                    f"{escape(str(read.get('property_name')))} [dim]{line['property_id']}[/]"
                )
            ids = ", ".join(f"{k} {v}" for k, v in r["propexo_ids"].items())
            out.print(f"  Propexo  {escape(ids)}")
            out.print(
                f"  posted   job {r['job_id'] or '-'} → {r['state']}; Propexo id "
                f"{r['propexo_id'] or '-'}; Rent Manager id "
                f"{r['rent_manager_id'] or 'not yet (after the next sync)'}"
            )
            if r["note"]:
                out.print(f"  [yellow]note[/]     {escape(str(r['note']))}")


@click.command()
@click.argument("subject", metavar="RUN_ID|PERIOD")
@click.option("--by", "by", required=True, help="Who reviewed the workpaper (a name).")
@click.option("--note", default=None, help="What the review found, in a line.")
@click.option(
    "--with-open-items",
    is_flag=True,
    help="Sign although items are open or a check does not hold (needs --note: why).",
)
@click.pass_context
def signoff(
    ctx: click.Context, subject: str, by: str, note: str | None, with_open_items: bool
) -> None:
    """Record a person's review of a run's or a period's (YYYY-MM) workpaper in the ledger,
    and show it in that report (Reviewed by / on). Refused (exit 1) while an item is open or a
    check does not hold, unless --with-open-items --note "why". The sign-off keeps the
    workpaper's hashes: a later change to its figures shows "changed since sign-off"."""
    from pipelines.kinds import registered
    from pipelines.reporting.publish import NotSigned, sign_off

    with friendly():
        try:
            key, review, folder, left_open = sign_off(
                settings_of(ctx), subject, by, note, registered(), with_open_items=with_open_items
            )
        except NotSigned as refused:
            out.print(str(refused), markup=False)
            sys.exit(1)
        out.print(f"{key}: reviewed by {review['by']} at {review['at']}")
        if left_open:
            out.print(f"signed with open items: {', '.join(left_open)}")
        out.print(f"report: {folder / 'report.html'}")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Ledger summary: counts and amounts by state, what is in doubt, the last run."""
    from pipelines.core.models import exit_code_of
    from pipelines.core.parsing import dollars
    from pipelines.reporting.report import FAILED_WORDS
    from pipelines.runs.status import ledger_status

    with friendly():
        found = ledger_status(settings_of(ctx))
        if as_json:
            out.print_json(json.dumps(found.as_json(), default=str))
            return
        by_state, in_doubt, refused, last = (
            found.by_state,
            found.in_doubt,
            found.refused,
            found.last_run,
        )
        table = Table("state", "records", "amount", header_style="bold")
        for state, v in sorted(by_state.items()):
            table.add_row(state, str(v["count"]), dollars(v["amount_cents"]))
        out.print(table)
        if in_doubt:
            oldest = in_doubt[0]
            out.print(
                f"[yellow]{len(in_doubt):,} in doubt[/] (never re-sent while no evidence "
                f"says it did not land); oldest sent {oldest['sent_at']}, "
                f"{age_text(oldest['age_s'])} ago: {oldest['note'] or 'not looked for yet'}"
            )
            out.print(
                "  `tieout reconcile` settles what Propexo's data or write log shows; after "
                "looking in Rent Manager, `tieout resolve KEY --present|--absent`"
            )
        failed = by_state.get("failed", {}).get("count", 0)
        if failed:
            out.print(f"[yellow]{failed:,} failed[/]: {escape(FAILED_WORDS)}")
        if refused:
            out.print(
                f"[red]{len(refused):,} refused by Propexo[/] (not written), e.g. "
                f"{refused[0]['record_key']}: {refused[0]['note']}"
            )
            out.print(
                "  fix the cause, then `tieout resolve KEY --send-again` (or --send-again "
                "--all-refused): the next run sends them"
            )
        if last is None:
            out.print("no runs yet")
        elif found.last_run_alive:
            out.print(f"last run: {last['run_id']} (running, process {exit_code_of(last['pid'])})")
        elif last["exit_code"] is None:
            out.print(
                f"last run: {last['run_id']} (did not finish: it stopped before its end; the "
                "next run takes up the files it had taken)"
            )
        else:
            out.print(f"last run: {last['run_id']} (exit {last['exit_code']})")
        if found.open_items:
            out.print(
                f"[yellow]{found.open_items:,} open items[/] ({dollars(found.open_cents)} at "
                "stake): `tieout todo`"
            )


@click.command()
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1), help="How many.")
@click.pass_context
def runs(ctx: click.Context, limit: int) -> None:
    """Past runs, newest first, with their verdict and totals (also data/reports/index.html)."""
    from pipelines.core.parsing import dollars
    from pipelines.reporting.publish import run_summaries
    from pipelines.reporting.render import run_rows

    with friendly():
        settings: Settings = ctx.obj["settings"]
        rows = run_rows(run_summaries(settings.reports_dir))
        if not rows:
            out.print(f"no runs with a report yet in {settings.reports_dir}")
            return
        table = Table(show_header=True, header_style="bold")
        for column in ("run", "started", "verdict", "now", "source", "posted", "rejected"):
            right = column in {"source", "posted", "rejected"}
            table.add_column(column, justify="right" if right else "left", no_wrap=True)
        for r in rows[:limit]:
            style = VERDICT_STYLE.get(r["verdict"], "red")
            table.add_row(
                str(r["run_id"]),
                r["started_at"][:19].replace("T", " "),
                f"[{style}]{r['verdict']}[/]",
                f"[{VERDICT_STYLE.get(r['verdict_now'], 'red')}]{r['verdict_now']}[/]",
                dollars(r["source_total_cents"]),
                dollars(r["posted_total_cents"]),
                dollars(r["rejected_total_cents"]),
            )
        out.print(table)
        out.print(f"index: {settings.reports_dir / 'index.html'}")


COMMANDS = (report, trace, signoff, status, runs)
