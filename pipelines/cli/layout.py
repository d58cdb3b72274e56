"""`tieout layout`: a person confirms a file's layout once; later files of that layout run
unattended. Registered on the main group in :mod:`pipelines.cli.main`."""

from __future__ import annotations

import getpass
import shutil
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from pipelines.cli.console import friendly, out, settings_of
from pipelines.core.config import Settings
from pipelines.kinds import registered


def print_layout(layout: dict[str, Any]) -> None:
    """`tieout check`'s line on a file's layout: confirmed (by whom), or what a run would
    hold and the command that confirms it."""

    def listed(key: str) -> str:
        return ", ".join(layout.get(key) or []) or "none"

    if layout.get("confirmed"):
        out.print(
            f"  layout {layout['fingerprint']}: confirmed ({layout['confirmed_by']})", markup=False
        )
        return
    out.print(
        f"  layout {layout['fingerprint']}: not confirmed; a run would hold the file: "
        + ("; ".join(layout.get("why_held") or []) or "not a strict match"),
        markup=False,
    )
    out.print(
        f"    would charge: {listed('charged')}; not charged: {listed('not_charged')}; "
        f"unknown: {listed('unknown')}",
        markup=False,
    )
    if layout.get("command"):
        out.print(f"    to confirm it: {layout['command']}", markup=False)


@click.group()
def layout() -> None:
    """Confirm a file's layout once, so that files of that layout move money unattended.

    A file moves money only in a layout a person has confirmed, or one its profile reads
    strictly (its own header names, 80% of the columns, grain checks passing). Any other file
    is held in the inbox, and `tieout run` says what it would do and how to confirm it.
    """


@layout.command("accept")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--profile",
    default=None,
    metavar="NAME|PATH",
    help="Read the file with this profile (a name, or a .toml file, copied into the data "
    "folder's profiles/ so that runs use it).",
)
@click.option("--by", default=None, help="Who confirms it (default: your user name).")
@click.pass_context
def layout_accept(ctx: click.Context, file: Path, profile: str | None, by: str | None) -> None:
    """Confirm FILE's layout: later files with the same layout run unattended.

    Shows what the layout does (columns charged, not charged and unknown; lines; total), then
    keeps the confirmation in the ledger with who confirmed it, when, and from which file.
    """
    from pipelines.runs.files import preview_lines

    with friendly():
        settings = settings_of(ctx, profile=profile)
        who = by or _user()
        accepted = accept_layout(settings, file, who)
        preview, copied, new = accepted["preview"], accepted["copied"], accepted["new"]
        layout_id, facts = accepted["layout_id"], accepted["facts"]
        for line in preview_lines(preview)[1:]:
            out.print(line, markup=False)
        if copied is not None:
            out.print(f"profile copied to {copied} so that runs read this layout with it")
        if new:
            out.print(
                f"layout {layout_id} ({facts.fingerprint}, {facts.profile}) confirmed by {who}: "
                "files of this layout now run unattended",
                markup=False,
            )
        else:
            out.print(f"layout {layout_id} ({facts.fingerprint}) was already confirmed")


def accept_layout(settings: Settings, file: Path, who: str) -> dict[str, Any]:
    """Confirm ``file``'s layout (`tieout layout accept`, the desk): its ``preview``, the
    ``layout_id``, whether it is ``new``, its ``facts`` and the profile ``copied`` (or None)."""
    from pipelines.core.errors import InputError
    from pipelines.ledger import Ledger
    from pipelines.posting.propexo import make_client
    from pipelines.reading.grids import fingerprint
    from pipelines.reading.profiles import profiles_for
    from pipelines.reconciling.sync import reference_data
    from pipelines.runs.files import decide_layout, layout_preview, process_file

    if not file.is_file():
        raise InputError(f"{file}: no such file")
    source = fingerprint(file)
    # A file refused as a whole (a directory, an event log, totals that do not tie) is
    # said so before anything else: no confirmation makes it a charge roll.
    process_file(source, profiles_for(settings, registered()), None, settings)
    copied = _keep_profile_file(settings.profile, settings.profiles_dir)
    with Ledger(settings.ledger) as ledger:
        # The charge codes a run reads columns by: from the ledger's cache (fetched again
        # only when it is old), so the layout confirmed is the one a run will see.
        with make_client(settings) as client:
            refs = reference_data(ledger, client, settings)
        result = process_file(
            source,
            profiles_for(settings, registered()),
            refs,
            settings,
            ledger.confirmed_profiles(),
        )
        facts = result.extract.layout
        if facts is None:
            raise InputError(f"{file.name}: its layout cannot be told")
        before = decide_layout(result.extract, ledger.confirmed_layout(facts.fingerprint))
        preview = layout_preview(result, before)
        layout_id, new = ledger.confirm_layout(
            preview["layout"], facts.header_key, who, str(file), source.sha256
        )
    return {
        "preview": preview,
        "layout_id": layout_id,
        "new": new,
        "facts": facts,
        "copied": copied,
    }


def _user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no user name in the environment or the password database
        return "unknown"


def _keep_profile_file(value: str | None, profiles_dir: Path) -> Path | None:
    """A profile named by PATH is copied into the data folder's profiles, where runs find it.
    A different profile already there under that name is never overwritten."""
    from pipelines.core.errors import InputError
    from pipelines.reading.profiles import load_profile

    if not value or not (value.endswith(".toml") or "/" in value):
        return None
    source = Path(value)
    if not source.is_file():
        raise InputError(f"profile {value}: no such file")
    name = load_profile(source, registered()).name
    target = profiles_dir / f"{name}.toml"
    if target.exists():
        if target.read_bytes() == source.read_bytes():
            return None
        raise InputError(
            f"{target} already holds a profile called {name!r}, different from {source}: "
            "rename one (its name = ...), or replace the file by hand"
        )
    profiles_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return target


@layout.command("list")
@click.pass_context
def layout_list(ctx: click.Context) -> None:
    """The layouts a person confirmed (forgotten ones are not shown)."""
    from pipelines.ledger import Ledger

    with friendly():
        settings = settings_of(ctx)
        with Ledger(settings.ledger, readonly=True) as ledger:
            rows = ledger.confirmed_layouts()
        if rows.empty:
            out.print("no confirmed layouts yet: `tieout layout accept FILE` confirms one")
            return
        table = Table("id", "fingerprint", "profile", "confirmed by", "at", "from file")
        for r in rows.to_dict("records"):
            table.add_row(
                str(r["id"]),
                str(r["fingerprint"]),
                str(r["profile"]),
                str(r["confirmed_by"]),
                str(r["confirmed_at"])[:19].replace("T", " "),
                Path(str(r["from_file"])).name,
            )
        out.print(table)


@layout.command("forget")
@click.argument("layout_id", metavar="ID", type=int)
@click.pass_context
def layout_forget(ctx: click.Context, layout_id: int) -> None:
    """Withdraw a confirmation: files of that layout are held again until confirmed."""
    from pipelines.core.errors import InputError
    from pipelines.ledger import Ledger

    with friendly():
        settings = settings_of(ctx)
        with Ledger(settings.ledger) as ledger:
            if not ledger.forget_layout(layout_id):
                raise InputError(
                    f"no confirmed layout {layout_id}: `tieout layout list` shows them"
                )
        out.print(f"layout {layout_id} forgotten: files of its layout are held again")
