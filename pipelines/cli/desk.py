"""`tieout serve` (the clerk's desk, #39) and `tieout users` (who may sign in there).
Registered on the main group in :mod:`pipelines.cli.main`; the desk is :mod:`pipelines.desk`."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click
from rich.table import Table

from pipelines.cli.alias import on_terminal
from pipelines.cli.console import friendly, out, settings_of
from pipelines.core.config import Settings, is_loopback_host
from pipelines.core.errors import ConfigError, InputError
from pipelines.ledger.desk import ROLES

MIN_PASSWORD = 12


def _word(path: Path) -> str:
    return shlex.quote(str(path))


def serve_desk(settings: Settings, host: str, port: int, trusted_proxy: str | None) -> None:
    """The desk in the foreground until interrupted. Plain HTTP only on loopback: a team
    reaches it through a reverse proxy with TLS (``trusted_proxy``: its address, whose
    X-Forwarded-For and X-Forwarded-Proto are believed)."""
    import uvicorn

    from pipelines.desk.app import create_app
    from pipelines.ledger import Ledger
    from pipelines.ledger.desk import users

    if not is_loopback_host(host) and not trusted_proxy:
        raise ConfigError(
            f"--host {host}: the desk speaks plain HTTP, so it listens on loopback only; put a "
            "reverse proxy with TLS in front (README, The desk) and pass --trusted-proxy ADDRESS"
        )
    with Ledger(settings.ledger) as ledger:
        nobody = not users(ledger)
    out.print(f"desk: http://{host}:{port}/ (Ctrl-C stops it)", markup=False, highlight=False)
    if nobody:
        where = (
            "" if settings.data_dir == Path("data") else f"--data-dir {_word(settings.data_dir)} "
        )
        out.print(
            f"no users yet: `tieout {where}users add NAME --role clerk` makes one",
            markup=False,
            highlight=False,
        )
    sys.stdout.flush()
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_level="warning",
        proxy_headers=bool(trusted_proxy),
        forwarded_allow_ips=trusted_proxy or "",
        server_header=False,
    )


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8800, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--trusted-proxy",
    default=None,
    metavar="ADDRESS",
    help="The reverse proxy's address: its X-Forwarded-For/-Proto are believed (TLS there "
    "makes the session cookie Secure).",
)
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, trusted_proxy: str | None) -> None:
    """The clerk's desk: a web page over the same data folder, ledger and settings.

    Drop files, clear open items, confirm layouts, read runs and reports, trace a record,
    approve files and sign runs and periods off, as named users (`tieout users add`).
    """
    with friendly():
        serve_desk(settings_of(ctx), host, port, trusted_proxy)


@click.group()
def users() -> None:
    """Who may sign in at the desk (`tieout serve`), and in which role.

    \b
    clerk     drops files and clears open items
    approver  also approves files and settles conflicts
    auditor   reads everything and signs runs and periods off
    """


def _password() -> str:
    """From a prompt (asked twice), or one line on standard input when it is not a terminal."""
    if on_terminal():
        return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))
    return sys.stdin.readline().rstrip("\r\n")


@users.command("add")
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(ROLES), help="What the user may do.")
@click.pass_context
def users_add(ctx: click.Context, name: str, role: str) -> None:
    """Add a user, or give an existing one a new password and role. The password is asked
    for (or read as one line from standard input) and kept only as an Argon2 hash."""
    from pipelines.desk.auth import hash_password
    from pipelines.ledger import Ledger
    from pipelines.ledger.desk import add_user

    with friendly():
        name = name.strip()
        if not name or len(name) > 100 or not name.isprintable():
            raise InputError("NAME: a printable name of at most 100 characters")
        password = _password()
        if len(password) < MIN_PASSWORD:
            raise InputError(f"the password must be at least {MIN_PASSWORD} characters")
        settings = settings_of(ctx)
        with Ledger(settings.ledger) as ledger:
            new = add_user(ledger, name, role, hash_password(password))
        out.print(f"{'added' if new else 'updated'} {name} ({role})", markup=False, highlight=False)


@users.command("list")
@click.pass_context
def users_list(ctx: click.Context) -> None:
    """Every user and role (never a password or its hash)."""
    from pipelines.ledger import Ledger
    from pipelines.ledger.desk import users as all_users

    with friendly():
        settings = settings_of(ctx)
        with Ledger(settings.ledger) as ledger:
            found = all_users(ledger)
        if not found:
            out.print("no users yet: `tieout users add NAME --role clerk` makes one")
            return
        table = Table("name", "role", "added", header_style="bold")
        for u in found:
            table.add_row(u["name"], u["role"], str(u["created_at"])[:19].replace("T", " "))
        out.print(table)


@users.command("remove")
@click.argument("name")
@click.pass_context
def users_remove(ctx: click.Context, name: str) -> None:
    """Remove a user: they can no longer sign in (what they did stays in the ledger).
    A running desk ends their sessions within a request."""
    from pipelines.ledger import Ledger
    from pipelines.ledger.desk import remove_user

    with friendly():
        settings = settings_of(ctx)
        with Ledger(settings.ledger) as ledger:
            if not remove_user(ledger, name):
                raise InputError(f"no user {name!r}: `tieout users list` shows them")
        out.print(f"removed {name}", markup=False, highlight=False)


COMMANDS = (serve, users)
