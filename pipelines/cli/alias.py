"""`tieout alias`: fix a name Propexo does not know with one command. Registered on the main
group in :mod:`pipelines.cli.main`; the work is :mod:`pipelines.resolving.aliases`."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click
from rich.markup import escape
from rich.table import Table

from pipelines.cli.console import ChoiceOf, err, friendly, out, settings_of
from pipelines.core.hints import ALIAS_FILES, REFS_KINDS, AliasHints, shell_word

if TYPE_CHECKING:
    import pandas as pd

    from pipelines.core.config import Settings
    from pipelines.resolving.aliases import AliasFiles, Place
    from pipelines.resolving.refs import RefData


def on_terminal() -> bool:
    """A person can answer questions here (tests stand in for one)."""
    return sys.stdin.isatty()


def _next_step(ctx: click.Context, hints: AliasHints) -> str:
    """What posts the rows an alias settles, with the commands this tieout has."""
    root = ctx.find_root().command
    if isinstance(root, click.Group) and "retry" in root.commands:
        return f"next: {hints.command} retry posts them"
    return "they are posted when their file is processed again"


def _propexo(
    ctx: click.Context,
) -> tuple[RefData, AliasFiles, pd.DataFrame, dict[str, list[Place]]]:
    return alias_context(settings_of(ctx))


def alias_context(
    settings: Settings,
) -> tuple[RefData, AliasFiles, pd.DataFrame, dict[str, list[Place]]]:
    """Reference data without aliases, the alias files as read, the open unknown names, and
    the places of the open rows of each unknown resident name (`tieout alias`, the desk)."""
    from pipelines.ledger import Ledger
    from pipelines.posting.propexo import make_client
    from pipelines.resolving.aliases import open_unknown_names, read_aliases, resident_places
    from pipelines.resolving.refcache import reference_lists
    from pipelines.resolving.refs import build_reference_data

    with Ledger(settings.ledger) as ledger:
        with make_client(settings) as client:
            lists = reference_lists(ledger, client, settings)
        unknown = open_unknown_names(ledger)
        places = resident_places(ledger)
    refs = build_reference_data(lists, {}, AliasHints(settings.data_dir))
    return refs, read_aliases(settings.mappings_dir), unknown, places


@click.group()
def alias() -> None:
    """Aliases: the spreadsheet's spelling of a name, and the name Propexo knows.

    \b
    Kinds: vendor, property, gl_account, charge_code, resident (a resident's Propexo name is
    "First Last", as `tieout refs show residents` lists it). Each kind is one CSV file in
    <data_dir>/mappings/, checked every time it is read.
    """


@alias.command("add")
@click.argument("kind", type=ChoiceOf(lambda: ALIAS_FILES))
@click.argument("spreadsheet_name")
@click.argument("propexo_name")
@click.pass_context
def alias_add(ctx: click.Context, kind: str, spreadsheet_name: str, propexo_name: str) -> None:
    """Read SPREADSHEET_NAME as PROPEXO_NAME from now on (checked against Propexo's names).

    \b
    Example: tieout alias add resident "Jesup, Morgan" "Morgan Jessup"
    """
    from pipelines.resolving.aliases import (
        closest,
        known_target,
        misplaced_resident,
        places_named,
        residents_at,
        rows_named,
        rows_text,
        write_alias,
    )

    with friendly():
        settings = settings_of(ctx)
        hints = AliasHints(settings.data_dir)
        refs, _, unknown, places = _propexo(ctx)
        label = known_target(refs, kind, propexo_name)
        where = places_named(places, spreadsheet_name) if kind == "resident" else []
        wrong = misplaced_resident(refs, label, where) if label is not None else None
        if wrong is not None:
            present = residents_at(refs, where)
            command = hints.add(kind, spreadsheet_name, present[0]) if len(present) == 1 else None
            err.print(
                f"[bold red]tieout:[/] {escape(wrong)}; nothing was written."
                + (f" If it is {escape(present[0])}: {escape(command)}." if command else ""),
            )
            sys.exit(1)
        if label is None:
            options = closest(refs, kind, propexo_name)
            nearest = (
                "; closest: " + ", ".join(f'"{name}"' for name, _ in options) if options else ""
            )
            command = hints.add(kind, spreadsheet_name, options[0][0]) if options else None
            err.print(
                f"[bold red]tieout:[/] Propexo knows no {kind.replace('_', ' ')} "
                f'"{escape(propexo_name)}"{escape(nearest)}; nothing was written.'
                + (
                    f' If you meant "{escape(options[0][0])}": {escape(command)}.'
                    if command
                    else ""
                )
                + f" Propexo's names: {hints.command} refs show {REFS_KINDS[kind]}"
            )
            sys.exit(1)
        written = write_alias(settings.mappings_dir, kind, spreadsheet_name, label)
        said = f'"{spreadsheet_name}" → "{label}"'
        if written.added:
            out.print(f"{written.path}, line {written.line}: {said}", markup=False)
        else:
            out.print(f"{written.path}, line {written.line} already says {said}", markup=False)
        rows = rows_named(unknown, kind, spreadsheet_name)
        if rows.empty:
            out.print("no open rejected row names it")
            return
        out.print(
            f"it settles {len(rows)} rejected row{'s' if len(rows) != 1 else ''}: "
            f"{rows_text(rows)}; {_next_step(ctx, hints)}",
            markup=False,
        )


@alias.command("accept")
@click.option("--yes", is_flag=True, help="Take every sure suggestion without asking.")
@click.pass_context
def alias_accept(ctx: click.Context, yes: bool) -> None:
    """Offer Propexo's closest name for each open unknown name of the rejected rows.

    On a terminal, asks for each; with --yes, takes only the suggestions whose match is
    unambiguous (close, and no other Propexo name nearly as close) and lists the rest.
    """
    from pipelines.core.errors import InputError
    from pipelines.resolving.aliases import raise_if_problems, rows_text, suggestions, write_alias

    with friendly():
        settings = settings_of(ctx)
        hints = AliasHints(settings.data_dir)
        refs, files, unknown, places = _propexo(ctx)
        raise_if_problems(files.problems)
        offered = suggestions(refs, unknown, files, places)
        if not offered:
            out.print("no open rejected row names an unknown name: nothing to accept")
            return
        if not yes and not on_terminal():
            raise InputError(
                "not on a terminal, so nothing is asked: "
                f"`{hints.command} alias accept --yes` takes the sure suggestions"
            )
        taken = 0
        for offer in offered:
            what = f'{offer.kind.replace("_", " ")} "{offer.name}" ({rows_text(offer.rows)})'
            if offer.target is None:
                out.print(
                    f"{what}: no Propexo name is close; {hints.add(offer.kind, offer.name)}",
                    markup=False,
                )
                continue
            if yes and not offer.sure:
                also = (
                    f" (also close: {', '.join(shell_word(o) for o in offer.others)})"
                    if offer.others
                    else ""
                )
                out.print(
                    f'{what}: "{offer.target}" is not a sure match{also}; if it is: '
                    f"{hints.add(offer.kind, offer.name, offer.target)}",
                    markup=False,
                )
                continue
            if not yes and not click.confirm(
                f'{what}: is it "{offer.target}"?', default=offer.sure
            ):
                continue
            written = write_alias(settings.mappings_dir, offer.kind, offer.name, offer.target)
            taken += 1
            out.print(
                f'{written.path}, line {written.line}: "{offer.name}" → "{offer.target}"',
                markup=False,
            )
        out.print(
            f"{taken} of {len(offered)} names aliased"
            + (f"; {_next_step(ctx, hints)}" if taken else "")
        )


@alias.command("list")
@click.pass_context
def alias_list(ctx: click.Context) -> None:
    """Every alias, with its file and line, and every problem in the files (exit 1 if any)."""
    from pipelines.core.errors import UnreachableError
    from pipelines.resolving.aliases import read_aliases, unknown_targets

    with friendly():
        settings = settings_of(ctx)
        files = read_aliases(settings.mappings_dir)
        table = Table("kind", "spreadsheet name", "Propexo name", "where", header_style="bold")
        count = 0
        for kind, stem in ALIAS_FILES.items():
            frame = files.frames.get(stem)
            if frame is None:
                continue
            for name, target, line in zip(
                frame["spreadsheet_name"], frame["propexo_name"], frame["line"], strict=True
            ):
                count += 1
                table.add_row(kind, escape(str(name)), escape(str(target)), f"{stem}.csv:{line}")
        if count:
            out.print(table)
        out.print(f"{count} aliases in {settings.mappings_dir}")
        problems = [str(p) for p in files.problems]
        try:
            refs, _, _, _ = _propexo(ctx)
            problems += [str(p) for p in unknown_targets(refs, files)]
        except UnreachableError as exc:
            err.print(f"targets not checked against Propexo: {escape(str(exc))}")
        for problem in problems:
            err.print(f"[bold red]problem:[/] {escape(problem)}")
        sys.exit(1 if problems else 0)
