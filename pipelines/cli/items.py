"""The clerk's loop on the command line (#27): `tieout todo`, `retry`, `settle`, `approve`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from pipelines.cli.console import friendly, out, print_summary, progress, say, settings_of
from pipelines.core.config import Settings


def open_items(settings: Settings, *, records: bool = True) -> list[dict[str, Any]]:
    """The open items now (none before the first run); ``records``: with the records in
    doubt and the writes Propexo refused."""
    from pipelines.core.models import IN_DOUBT, SETTLED, RecordState
    from pipelines.ledger import Ledger
    from pipelines.ledger.items import record_items

    if settings.ledger_is_file and not settings.ledger_path.exists():
        return []
    with Ledger(settings.ledger, readonly=True) as ledger:
        found = ledger.items()
        if records:
            stuck = ledger.records(
                states=[*IN_DOUBT, RecordState.FAILED, RecordState.REFUSED, RecordState.HELD],
                columns=[
                    "record_key",
                    "file_sha256",
                    "source_file",
                    "source_rows",
                    "amount_cents",
                    "state",
                    "note",
                    "errors",
                    "sent_at",
                    "updated_at",
                ],
            )
            # A write reported failed that a person settled (`tieout settle`) stays settled.
            decided = {i["item_id"] for i in ledger.items(states=[SETTLED])}
            found += [
                i
                for i in record_items(
                    [{str(k): v for k, v in r.items()} for r in stuck.to_dict("records")]
                )
                if i["item_id"] not in decided
            ]
        return found


def tieout_word(settings: Settings) -> str:
    """`tieout` as the person runs it: with ``--data-dir`` when theirs is not the default, so
    every printed command works as printed (the words the alias hints use)."""
    from pipelines.core.hints import AliasHints

    return AliasHints(settings.data_dir).command


def print_todo(settings: Settings, items: list[dict[str, Any]] | None = None) -> None:
    """The open items, grouped by cause, each with the command that settles it."""
    from pipelines.runs.items import todo_lines

    found = open_items(settings) if items is None else items
    for line in todo_lines(found, str(settings.inbox_dir), tieout_word(settings)):
        out.print(line, markup=False)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.pass_context
def todo(ctx: click.Context, as_json: bool) -> None:
    """What is open: rejected rows, unknown names, conflicts, refused files, …, grouped by
    cause with their rows and amount, each with the one command that settles it."""
    from pipelines.runs.items import todo_json

    with friendly():
        settings = settings_of(ctx)
        items = open_items(settings)
        if as_json:
            listed = todo_json(items, str(settings.inbox_dir), tieout_word(settings))
            out.print_json(json.dumps(listed, default=str))
            return
        print_todo(settings, items)


@click.command()
@click.argument("target", required=False, metavar="[RUN_ID | FILE]")
@click.option("--all", "every", is_flag=True, help="Every file with open items.")
@click.pass_context
def retry(ctx: click.Context, target: str | None, every: bool) -> None:
    """Read again the archived copies of files with open items (rejected rows, unknown names)
    with today's aliases and reference data, and post the rows that now go through. Rows
    already posted are recognised by their keys in the ledger and never sent again.

    A corrected file is not retried: drop it into the inbox (it supersedes the earlier one).
    """
    from pipelines.runs.pipeline import retry_files
    from pipelines.runs.pipeline import run as run_pipeline

    with friendly():
        settings = settings_of(ctx)
        paths = retry_files(settings, target, every=every)
        if not paths:
            out.print("nothing to retry: no file has open items that a retry can settle")
            print_todo(settings)
            return
        on_progress, stop = progress()
        try:
            outcome = run_pipeline(
                settings, files=paths, say=say, on_progress=on_progress, in_place=True
            )
        finally:
            stop()
        finish_run(settings, outcome.summary, outcome.report_dir)
        sys.exit(outcome.exit_code)


def finish_run(settings: Settings, summary: dict[str, Any], report_dir: Path | None) -> None:
    """A run's summary, its report, then what is open (the same list as `tieout todo`)."""
    if report_dir:
        print_summary(summary)
        out.print(f"report: {report_dir / 'report.html'}")
    items = open_items(settings)
    if items:
        print_todo(settings, items)


def settle_items(settings: Settings, item_ids: list[str], *, by: str, note: str) -> None:
    """A person's decision on open items (`tieout settle`, the desk): each an event with who,
    when and the note; the reports of the runs that met them are refreshed. Writes Propexo
    reported failed are items of their records: the settlement is kept as the item's event."""
    from pipelines.core.errors import InputError
    from pipelines.kinds import registered
    from pipelines.ledger import Ledger
    from pipelines.reporting.publish import refresh_settled
    from pipelines.runs.items import new_item

    records = {i["item_id"]: i for i in open_items(settings) if i["cause"] == "write_failed"}
    with Ledger(settings.ledger) as ledger:
        known = {i["item_id"] for i in ledger.items()} | set(records)
        unknown = [i for i in item_ids if i not in known]
        if unknown:
            raise InputError(
                f"{unknown[0]} is not an open item; `{tieout_word(settings)} todo` lists "
                "them with their ids"
            )
        kept = [records[i] for i in item_ids if i in records]
        if kept:
            ledger.observe_items(
                "settle",
                [
                    new_item(
                        str(i["cause"]),
                        i["file_sha256"],
                        i["file_name"],
                        i["detail"]["record_key"],
                        rows=tuple(i["rows"]),
                        amount_cents=int(i["amount_cents"]),
                        detail=i["detail"],
                    )
                    for i in kept
                ],
            )
        for item_id in item_ids:
            ledger.settle_item(item_id, by=by, note=note)
        refresh_settled(ledger, settings, None, registered(), list(item_ids))


@click.command()
@click.argument("item_ids", nargs=-1, required=True, metavar="ITEM_ID…")
@click.option("--by", "by", required=True, help="Who decided (kept in the ledger and report).")
@click.option("--note", required=True, help="What was done, or why it is closed.")
@click.pass_context
def settle(ctx: click.Context, item_ids: tuple[str, ...], by: str, note: str) -> None:
    """A person settles open items (a conflict corrected in Rent Manager, a row that is not to
    be posted): an event in the ledger with who, when and the note; shown in the reports."""
    with friendly():
        settle_items(settings_of(ctx), list(item_ids), by=by, note=note)
        out.print(f"settled {len(item_ids)} items (by {by})")


def approve_held(settings: Settings, file: str, *, by: str, note: str) -> list[Path]:
    """Approve a file held for approval (by name, sha256 or path): its items settled by ``by``,
    who must not be the one who dropped it on the desk (maker-checker). Returns the held
    files' paths, for the run that takes them in."""
    from pipelines.core.errors import InputError
    from pipelines.ledger import Ledger
    from pipelines.ledger.desk import dropped_by

    with Ledger(settings.ledger) as ledger:
        held = [
            i
            for i in ledger.items()
            if i["cause"] == "awaiting_approval"
            and (file in (i["file_name"], i["file_sha256"]) or file == i["detail"].get("path"))
        ]
        if not held:
            raise InputError(f"{file}: no file of that name awaits approval (`tieout todo`)")
        makers = {m for i in held for m in dropped_by(ledger, str(i["file_sha256"]))}
        if by in makers:
            raise InputError(
                f"{file}: {by} dropped this file, so {by} cannot approve it; another person "
                "approves it (maker and checker)"
            )
        paths = [Path(str(i["detail"].get("path"))) for i in held]
        missing = [p for p in paths if not p.is_file()]
        if missing:
            raise InputError(
                f"{missing[0]}: the held file is no longer there; drop it into "
                f"{settings.inbox_dir} again (it is held again, with its preview)"
            )
        for item in held:
            ledger.settle_item(item["item_id"], by=by, note=note)
    return paths


@click.command()
@click.argument("file")
@click.option("--by", "by", required=True, help="Who approves (the checker).")
@click.option("--note", default="approved for posting", help="Kept with the approval.")
@click.pass_context
def approve(ctx: click.Context, file: str, by: str, note: str) -> None:
    """Approve a held file for posting (with `approve_each_file = true`), then post it: the
    report names who approved what and when."""
    from pipelines.runs.pipeline import run as run_pipeline

    with friendly():
        settings = settings_of(ctx)
        paths = approve_held(settings, file, by=by, note=note)
        out.print(f"{file}: approved by {by}; taking it in now")
        outcome = run_pipeline(settings, files=paths, say=say)
        finish_run(settings, outcome.summary, outcome.report_dir)
        sys.exit(outcome.exit_code)


COMMANDS = (todo, retry, settle, approve)
