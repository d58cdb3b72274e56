"""A PostgreSQL server for the tests, started on a free loopback port in a temporary folder.

Debian's ``postgresql`` package provides the server (``.ci/run`` installs it when missing);
without it the tests that need it fail saying so, never skip. As root, the server runs as the
package's ``postgres`` user (PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

MISSING = (
    "PostgreSQL is not installed (no initdb on PATH or in /usr/lib/postgresql/*/bin): "
    "`.ci/run` installs Debian's postgresql package; on your machine: apt-get install postgresql"
)


def server_bin() -> Path:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    for folder in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (folder / "initdb").exists():
            return folder
    raise RuntimeError(MISSING)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_postgres() -> Iterator[str]:
    """A server for the duration of a block; yields its URL (user ``tieout``, trust auth)."""
    binaries = server_bin()
    folder = Path(tempfile.mkdtemp(prefix="tieout-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = folder / "data", _free_port()
    subprocess.run(
        [
            *as_user,
            str(binaries / "initdb"),
            "-D",
            str(data),
            "-U",
            "tieout",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
        ],
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(
        [
            *as_user,
            str(binaries / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            options,
            "-w",
            "-l",
            str(folder / "log"),
            "start",
        ],
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql://tieout@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*as_user, str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
            check=False,
        )
        shutil.rmtree(folder, ignore_errors=True)


def fresh_database(server_url: str) -> str:
    """A new, empty database on the server: its URL."""
    import psycopg

    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}".encode())
    return server_url.rsplit("/", 1)[0] + "/" + name


def drop_database(url: str) -> None:
    """Drop a database ``fresh_database`` made, with whatever sessions a killed worker left."""
    import psycopg

    server_url, name = url.rsplit("/", 1)
    with psycopg.connect(server_url + "/postgres", autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)".encode())


def copy_database(source_url: str, target_url: str) -> None:
    """``target_url``'s database made anew as a copy of ``source_url``'s (a backup, a restore;
    none: an empty one), with whatever sessions either had ended first."""
    import psycopg

    server_url, target = target_url.rsplit("/", 1)
    template = f" TEMPLATE {source_url.rsplit('/', 1)[1]}" if source_url else ""
    with psycopg.connect(server_url + "/postgres", autocommit=True) as admin:
        if source_url:
            admin.execute(
                b"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                [source_url.rsplit("/", 1)[1]],
            )
        admin.execute(f"DROP DATABASE IF EXISTS {target} WITH (FORCE)".encode())
        admin.execute(f"CREATE DATABASE {target}{template}".encode())
