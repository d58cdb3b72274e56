"""The `tieout` commands for setting up and looking around: webhooks, profiles, the ledger's
rebuild, reference data and the config. Registered on the main group in
:mod:`pipelines.cli.main`. The sandbox and the demo are :mod:`pipelines.cli.rehearse`'s (their
names re-exported here for code written against this module)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from pipelines.cli.console import ChoiceOf, friendly, out, say, settings_of
from pipelines.cli.rehearse import demo, require_sandbox, sandbox
from pipelines.core.config import Settings, load_settings
from pipelines.kinds import registered
from pipelines.resolving.refs import REF_KINDS

__all__ = [
    "config",
    "demo",
    "ledger",
    "profile",
    "refs",
    "refs_show",
    "require_sandbox",
    "sandbox",
    "webhooks",
]


@click.group()
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
    from pipelines.reconciling.webhooks import serve

    with friendly():
        out.print(f"receiving Propexo webhooks on http://{host}:{port}/ ; Ctrl-C stops")
        serve(settings_of(ctx), host, port)


@webhooks.command("register")
@click.argument("url")
@click.pass_context
def webhooks_register(ctx: click.Context, url: str) -> None:
    """Subscribe URL (where `tieout webhooks serve` is reachable) through Propexo's webhook API."""
    from pipelines.ledger import Ledger
    from pipelines.posting.propexo import make_client
    from pipelines.reconciling.webhooks import register

    with friendly():
        settings = settings_of(ctx)
        with Ledger(settings.ledger) as ledger, make_client(settings) as client:
            result = register(client, settings, ledger, url)
        out.print(f"subscribed {result['url']} (webhook {result['id']}, active {result['active']})")


class _DraftedKinds(click.Choice):  # type: ignore[type-arg]
    """The registered kinds `profile init` drafts for, asked when the command line is read
    (the registry loads the kinds only then)."""

    name = "kind"

    def __init__(self) -> None:
        super().__init__([])

    @property  # type: ignore[override]
    def choices(self) -> list[str]:
        return [kind.source_kind for kind in registered() if kind.draft is not None]

    @choices.setter
    def choices(self, _: object) -> None:
        pass


@click.group()
def profile() -> None:
    """Teach tieout a new export format."""


@profile.command("init")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option(
    "--kind",
    type=_DraftedKinds(),
    default="charge",
    show_default=True,
    help="What the file holds (a registered kind tieout drafts profiles for): resident "
    "charges (a rent roll), vendor bills, ...",
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
    from pipelines.core.disk import write_atomically
    from pipelines.reading.profile_init import draft_profile

    with friendly():
        target = out_path or Path(re.sub(r"[^\w.-]+", "_", file.stem) + ".profile.toml")
        text = draft_profile(file, registered().source(kind))
        write_atomically(target, text.encode("utf-8"))
        for line in text.splitlines():
            if line.startswith("#"):
                out.print(line, markup=False)
        out.print(f"draft written to {target}", markup=False)


@click.group()
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
    from pipelines.kinds import registered
    from pipelines.reconciling.rebuild import rebuild_ledger

    with friendly():
        rebuild_ledger(
            settings_of(ctx),
            registered(),
            start=start.date() if start else None,
            end=end.date() if end else None,
            say=say,
        )


@ledger.command("migrate")
@click.pass_context
def ledger_migrate(ctx: click.Context) -> None:
    """Bring the ledger's schema to this tieout's (back it up first; one transaction).

    A ledger opens only at exactly the schema this tieout knows: after an upgrade of tieout,
    every command says so once and points here.
    """
    from pipelines.ledger import migrations, schema
    from pipelines.ledger.database import connect

    with friendly():
        settings = settings_of(ctx)
        db = connect(settings.ledger)
        try:
            with db.lock("ledger migrate"), db.schema_lock():
                before = schema.revision_of(db)
                migrations.upgrade(settings.ledger)
                after = schema.revision_of(db)
        finally:
            db.close()
        out.print(
            f"the ledger {db.description} is at schema {after}"
            + (f" (was {before or 'from before migrations'})" if before != after else "")
        )


@ledger.command("copy")
@click.option(
    "--to",
    "target",
    required=True,
    metavar="URL",
    help="The new ledger: postgresql://user@host/db (empty), or sqlite:///path.",
)
@click.pass_context
def ledger_copy(ctx: click.Context, target: str) -> None:
    """Copy this ledger into a new one on another engine, verified by counts and sums.

    Every table is copied in one transaction on the target; the copy is verified by rows per
    table and by records' counts and amounts per state, or nothing is kept. Then set
    ledger_url (TIEOUT_LEDGER_URL) to the new one; the old file stays as it was.
    """
    from pipelines.ledger import Ledger
    from pipelines.ledger.copy import copy_ledger

    with friendly():
        settings = settings_of(ctx)
        url = load_settings(env={}, overrides={"ledger_url": target}).ledger
        with (
            Ledger(settings.ledger) as source,
            source.lock("ledger copy"),
            Ledger(url) as new,
        ):
            copied = copy_ledger(source, new, say=say)
            out.print(
                f"copied {copied:,} records from {source.description} to {new.description}, "
                "verified; now set ledger_url (TIEOUT_LEDGER_URL) to it"
            )


@click.group()
def refs() -> None:
    """Propexo's reference data (vendors, properties, residents, ...) that names resolve to.

    It is cached in the ledger and refreshed when older than refs_max_age_s (default 1 hour).
    """


def _reference_data(ctx: click.Context, *, refresh: bool) -> Any:
    from pipelines.ledger import Ledger
    from pipelines.posting.propexo import make_client
    from pipelines.resolving.refcache import reference_data

    settings = settings_of(ctx)
    with Ledger(settings.ledger) as ledger, make_client(settings) as client:
        return reference_data(ledger, client, settings, refresh=refresh, aliases=False)


@refs.command("refresh")
@click.pass_context
def refs_refresh(ctx: click.Context) -> None:
    """Fetch every reference list from Propexo now."""
    with friendly():
        data = _reference_data(ctx, refresh=True)
        for kind in REF_KINDS:
            out.print(f"{kind}: {len(getattr(data, kind))}")


@refs.command("show")
@click.argument("kind", type=ChoiceOf(lambda: REF_KINDS))
@click.option("--search", default=None, metavar="TEXT", help="Only rows holding TEXT (any case).")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV, to start an alias file from.")
@click.pass_context
def refs_show(ctx: click.Context, kind: str, search: str | None, as_csv: bool) -> None:
    """Print what Propexo knows of one kind (from the cache, fetched if needed), with location
    and property names beside their ids: the names `tieout alias add` takes.

    \b
    Example: which Rent Manager name has the vendor a bill calls "Greenway"?
      tieout refs show vendors --search greenway
    """
    with friendly():
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


@click.group()
def config() -> None:
    """Inspect the configuration."""


@config.command("show")
@click.pass_context
def config_show(ctx: click.Context) -> None:
    """Print the effective settings (secrets as `set (from …)` or `not set`, never shown)."""
    from pipelines.cli.doctor import webhook_secret_state
    from pipelines.core.config import setting_sources

    settings: Settings = ctx.obj["settings"]
    sources = setting_sources(
        config_path=ctx.obj.get("config_path"), overrides=ctx.obj.get("overrides")
    )
    described = settings.describe(sources)
    described["webhook_secret"] = webhook_secret_state(settings, sources)
    table = Table("setting", "value", header_style="bold")
    for key, value in described.items():
        table.add_row(key, value)
    out.print(table)
