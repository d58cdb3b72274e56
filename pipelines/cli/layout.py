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
@click.option(
    "--charge", multiple=True, metavar="HEADER", help="Charge this column (corrects a proposal)."
)
@click.option(
    "--not-charge",
    "not_charge",
    multiple=True,
    metavar="HEADER",
    help="Do not charge this column (corrects a proposal).",
)
@click.option("--unit", default=None, metavar="HEADER", help="The unit is this column.")
@click.option("--resident", default=None, metavar="HEADER", help="The resident is this column.")
@click.option(
    "--property", "property_header", default=None, metavar="HEADER", help="The property column."
)
@click.option("--sheet", default=None, metavar="NAME", help="Read this sheet of a workbook.")
@click.pass_context
def layout_accept(
    ctx: click.Context,
    file: Path,
    profile: str | None,
    by: str | None,
    charge: tuple[str, ...],
    not_charge: tuple[str, ...],
    unit: str | None,
    resident: str | None,
    property_header: str | None,
    sheet: str | None,
) -> None:
    """Confirm FILE's layout: later files with the same layout run unattended.

    Shows what the layout does (columns charged, not charged and unknown; lines; total), then
    keeps the confirmation in the ledger with who confirmed it, when, and from which file. A
    file of no known layout is confirmed as tieout proposed it, corrected by the options given
    (each HEADER a column's header as the file writes it); the confirmed layout becomes a
    profile in the data folder's profiles/ (`tieout layout export ID` writes it anywhere).
    """
    from pipelines.runs.files import preview_lines

    with friendly():
        settings = settings_of(ctx, profile=profile)
        who = by or _user()
        corrections = _corrections(charge, not_charge, unit, resident, property_header)
        accepted = accept_layout(settings, file, who, corrections, sheet)
    preview, facts = accepted["preview"], accepted["facts"]
    layout_id, made = accepted["layout_id"], accepted["made"]
    for line in preview_lines(preview)[1:]:
        out.print(line, markup=False)
    if accepted["copied"] is not None:
        out.print(f"profile copied to {accepted['copied']} so that runs read this layout with it")
    if made is not None:
        out.print(f"profile written to {made.path} so that runs read this layout with it")
    if accepted["new"]:
        out.print(
            f"layout {layout_id} ({facts.fingerprint}, {facts.profile}) confirmed by {who}: "
            f"files of this layout now run unattended (`tieout layout export {layout_id}` "
            "writes it as a profile)",
            markup=False,
        )
    else:
        out.print(f"layout {layout_id} ({facts.fingerprint}) was already confirmed")


def accept_layout(
    settings: Settings,
    file: Path,
    who: str,
    corrections: dict[str, str] | None = None,
    sheet: str | None = None,
) -> dict[str, Any]:
    """Confirm ``file``'s layout (`tieout layout accept`, the desk): a file of no known layout
    as tieout proposed it, with ``corrections`` (header → role) and ``sheet``, becomes a
    profile in the data folder's profiles/. Returns its ``preview``, the ``layout_id``, whether
    it is ``new``, its ``facts``, the profile ``copied`` and the profile ``made`` (or None)."""
    from pipelines.core.errors import InputError
    from pipelines.reading.grids import fingerprint
    from pipelines.reading.profiles import profiles_for
    from pipelines.reading.propose import LayoutHeld
    from pipelines.runs.files import process_file

    if not file.is_file():
        raise InputError(f"{file}: no such file")
    source = fingerprint(file)
    corrections = corrections or {}
    # A file refused as a whole (a directory, an event log, totals that do not tie) is
    # said so before anything else: no confirmation makes it a charge roll.
    try:
        read_as = process_file(source, profiles_for(settings, registered()), None, settings)
        read_as_profile: str | None = read_as.extract.profile
    except LayoutHeld:
        read_as_profile = None
    proposed = read_as_profile is None or read_as_profile.startswith(PROPOSED_PREFIX)
    if (corrections or sheet) and not proposed:
        raise InputError(
            f"{file.name} is read by the profile {read_as_profile}: the corrections --charge, "
            "--not-charge, --unit, --resident, --property and --sheet apply to a file no "
            "profile reads; change the profile instead (or name another with --profile)"
        )
    made = _from_proposal(file, settings, who, corrections, sheet) if proposed else None
    try:
        confirmed = _confirm(file, source, settings, who, made)
    except BaseException:
        if made is not None:
            made.undo()
        raise
    return {**confirmed, "made": made}


# A profile tieout writes for a layout a person confirmed from its proposal is named so.
PROPOSED_PREFIX = "layout_"


def _corrections(
    charge: tuple[str, ...],
    not_charge: tuple[str, ...],
    unit: str | None,
    resident: str | None,
    property_header: str | None,
) -> dict[str, str]:
    """The options of `layout accept` as header → role; a header given two roles is refused."""
    from pipelines.core.errors import InputError
    from pipelines.reading.profiles import normalize_header

    said: list[tuple[str, str]] = [(h, "charge") for h in charge]
    said += [(h, "not_charged") for h in not_charge]
    said += [(h, r) for h, r in ((unit, "unit"), (resident, "resident")) if h]
    said += [(property_header, "property")] if property_header else []
    roles: dict[str, str] = {}
    seen: dict[str, str] = {}
    for header, role in said:
        key = normalize_header(header)
        if key in seen and seen[key] != role:
            raise InputError(f"{header!r} is given two roles: {seen[key]} and {role}")
        seen[key] = role
        roles[header] = role
    return roles


class _Made:
    """A profile written from a confirmed proposal, and how to take it back."""

    def __init__(self, path: Path, text: str, previous: bytes | None, proposal: Any) -> None:
        self.path, self.text, self.previous, self.proposal = path, text, previous, proposal

    def undo(self) -> None:
        from pipelines.core.disk import write_atomically

        if self.previous is None:
            self.path.unlink(missing_ok=True)
        else:
            write_atomically(self.path, self.previous, mode=0o600)


def _from_proposal(
    file: Path, settings: Any, who: str, corrections: dict[str, str], sheet: str | None
) -> _Made:
    """The file's proposal, corrected, written as a profile in the data folder's profiles/
    (replacing the one an earlier confirmation of the same headers wrote)."""
    from pipelines.core.disk import write_atomically
    from pipelines.core.errors import InputError
    from pipelines.reading.propose import proposal_profile, propose_layout

    proposal = propose_layout(file, sheet=sheet, roles=corrections)
    if proposal is None or not proposal.usable:
        raise InputError(
            f"{file.name}: tieout finds no unit, resident and money columns in it to propose a "
            "layout; name them with --unit, --resident and --charge"
        )
    name = f"{PROPOSED_PREFIX}{proposal.key}"
    text = proposal_profile(proposal, name, who)
    target = Path(settings.profiles_dir) / f"{name}.toml"
    previous = target.read_bytes() if target.exists() else None
    write_atomically(target, text.encode("utf-8"), mode=0o600)
    return _Made(target, text, previous, proposal)


def _confirm(
    file: Path, source: Any, settings: Any, who: str, made: _Made | None
) -> dict[str, Any]:
    """Read the file as a run will and keep the confirmation: what its layout does."""
    from pipelines.core.errors import InputError
    from pipelines.ledger import Ledger
    from pipelines.posting.propexo import make_client
    from pipelines.reading.profiles import profiles_for
    from pipelines.resolving.refcache import reference_data
    from pipelines.runs.files import decide_layout, layout_preview, process_file

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
        kept = dict(preview["layout"])
        if made is not None:
            kept |= {"profile_toml": made.text, "proposal": made.proposal.as_dict()}
        layout_id, new = ledger.confirm_layout(
            kept, facts.header_key, who, str(file), source.sha256
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


@layout.command("export")
@click.argument("layout_id", metavar="ID", type=int)
@click.option(
    "--out",
    "out_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Where to write the profile (default: NAME.toml in the current folder).",
)
@click.pass_context
def layout_export(ctx: click.Context, layout_id: int, out_path: Path | None) -> None:
    """Write confirmed layout ID as a profile TOML (it loads as any profile)."""
    from pipelines.core.disk import write_atomically
    from pipelines.core.errors import InputError
    from pipelines.ledger import Ledger

    with friendly():
        settings = settings_of(ctx)
        with Ledger(settings.ledger, readonly=True) as ledger:
            row = ledger.layout_by_id(layout_id)
        if row is None:
            raise InputError(f"no confirmed layout {layout_id}: `tieout layout list` shows them")
        name = str(row["profile"])
        text = row["facts"].get("profile_toml") or _profile_text(name, settings.profiles_dir)
        target = out_path or Path(f"{name}.toml")
        if target.exists() and target.read_text(encoding="utf-8") != text:
            raise InputError(f"{target} already exists: name another file with --out")
        write_atomically(target, text.encode("utf-8"))
        out.print(f"layout {layout_id} written as the profile {name!r} to {target}", markup=False)


def _profile_text(name: str, profiles_dir: Path) -> str:
    """The text of the profile file called ``name`` (the data folder's first, then tieout's)."""
    from pipelines.core.errors import InputError
    from pipelines.reading.profiles import BUILTIN_PROFILES_DIR, profile_name

    for folder in (profiles_dir, BUILTIN_PROFILES_DIR):
        for path in sorted(folder.glob("*.toml")) if folder.is_dir() else []:
            if profile_name(path) == name:
                return path.read_text(encoding="utf-8")
    raise InputError(f"the profile {name!r} of this layout is no longer in {profiles_dir}")
