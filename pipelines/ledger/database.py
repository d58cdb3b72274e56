"""The database seam under the ledger: the few operations the ledger needs, one engine each.

The ledger's SQL is written once, with ``?`` placeholders and syntax both SQLite and PostgreSQL
accept (``ON CONFLICT``, ``UPDATE … FROM``, ``RETURNING``-free). An engine supplies connection,
transactions, bulk writes, frames and the lock that keeps two runs off one ledger; nothing above
this module knows which engine it is talking to.
"""

from __future__ import annotations

import os
import socket
import sqlite3
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import pyarrow as pa

from pipelines.core.config import POSTGRES_PREFIXES, SQLITE_PREFIX, sqlite_path
from pipelines.core.errors import ConfigError, LedgerError
from pipelines.core.lock import run_lock
from pipelines.core.models import utcnow


class Rows(Protocol):
    """What a statement returns: the DB-API cursor subset the ledger reads."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def fetchmany(self, size: int) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Database(Protocol):
    """The engine behind a ledger (SQLite now; PostgreSQL plugs in here)."""

    url: str
    description: str  # for messages: a file path, or a server without its password
    dialect: str  # "sqlite" or "postgresql": which DDL creates the tables
    insertion_order: str  # the column that keeps records in the order they were staged

    def script(self, sql: str) -> None: ...

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Rows: ...

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None: ...

    def insert_rows(
        self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
    ) -> None: ...

    def transaction(self) -> AbstractContextManager[None]: ...

    def read_frame(
        self, sql: str, params: Sequence[Any] = (), *, integers: Collection[str] | None = None
    ) -> pd.DataFrame: ...

    def upsert(
        self, table: str, keys: Sequence[str], columns: Sequence[str], rows: Iterable[Sequence[Any]]
    ) -> None: ...

    def lock(self, command: str, *, shared: bool = False) -> AbstractContextManager[None]: ...

    def turn(self, name: str) -> AbstractContextManager[None]: ...

    def serialize(self, name: str) -> None: ...

    def claim(self, sha256: str, name: str) -> AbstractContextManager[bool]: ...

    def schema_lock(self) -> AbstractContextManager[None]: ...

    def columns(self, table: str) -> set[str]: ...

    def reset_identity(self, table: str, column: str) -> None: ...

    def close(self) -> None: ...


def typed_frame(
    rows: Sequence[Sequence[Any]], names: Sequence[str], integers: Collection[str]
) -> pd.DataFrame | None:
    """Rows whose column types are known, as the frame pandas would make of them (text as str,
    whole numbers as int64, or float64 where some are missing, a column of nothing but NULLs as
    None), converted by Arrow in one pass: a million ledger records in about a second, where
    pandas looks at every cell as a Python object for several. None when there are no rows or
    a value is not of its column's type; the caller then reads them the usual way. (A BLOB in
    a text column, which tieout never writes, would read as its text.)"""
    if not rows:
        return None
    for position, name in enumerate(names):
        # Arrow would cut a fraction to a whole number without a word: a SQLite column
        # declared INTEGER can still hold one, and then pandas reads it as it is.
        if name in integers and float in {type(row[position]) for row in rows}:
            return None
    kind = pa.struct([(name, pa.int64() if name in integers else pa.string()) for name in names])
    try:
        table = pa.Table.from_struct_array(pa.array(rows, type=kind))
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return None
    frame: pd.DataFrame = table.to_pandas()
    for name, column in zip(names, table.columns, strict=True):
        if column.null_count == len(rows):
            frame[name] = np.full(len(rows), None, dtype=object)
    return frame


def worker_name() -> str:
    """This process, as claims and messages name it: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def upsert_sql(table: str, keys: Sequence[str], columns: Sequence[str]) -> str:
    """``INSERT … ON CONFLICT`` as both engines take it: a row whose ``keys`` exist replaces
    the other columns' values. Table and column names come from the ledger's own code."""
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in keys)
    action = f"DO UPDATE SET {updates}" if updates else "DO NOTHING"
    return (
        f"INSERT INTO {table}({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
        f"ON CONFLICT({', '.join(keys)}) {action}"
    )


def connect(target: str | Path, *, readonly: bool = False) -> Database:
    """The database a ledger URL (or a plain SQLite file path) names."""
    if isinstance(target, Path):
        return SqliteDatabase(target, readonly=readonly)
    if target.startswith(SQLITE_PREFIX):
        return SqliteDatabase(sqlite_path(target), readonly=readonly)
    if target.startswith(POSTGRES_PREFIXES):
        from pipelines.ledger.postgres import PostgresDatabase

        return PostgresDatabase(target, readonly=readonly)
    raise ConfigError(
        f"ledger_url: {target.split('://', 1)[0]}:// is not a ledger engine tieout knows; "
        "use sqlite:///<path> or postgresql://…"
    )


BUSY_TIMEOUT_S = 30.0  # how long a write waits for another process's hold on a SQLite ledger
OWNER_ONLY = 0o600  # the ledger, its WAL and SHM files and its backups: read by no one else


def owner_only(path: Path) -> None:
    """Make the SQLite file at ``path`` owner-only before SQLite opens it: created so from its
    first byte when new, its mode narrowed when an older tieout made it readable to others.
    SQLite creates the WAL and SHM files with the database file's mode."""
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, OWNER_ONLY))
    for part in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            if part.stat().st_mode & 0o077:
                part.chmod(OWNER_ONLY)
        except OSError:
            continue  # not there (WAL, SHM), or not ours to change: SQLite says what it can


class SqliteDatabase:
    """One SQLite file in WAL mode, committed before every method returns."""

    dialect = "sqlite"
    insertion_order = "rowid"

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = path
        self.url = f"{SQLITE_PREFIX}{path}"
        self.description = str(path)
        try:
            if readonly:  # a copy in memory: a read never writes a byte (not even a WAL file)
                self.connection = sqlite3.connect(":memory:", isolation_level=None)
                if path.exists():
                    source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
                    source.backup(self.connection)
                    source.close()
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                owner_only(path)
                self.connection = sqlite3.connect(
                    str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None
                )
                self.connection.execute("PRAGMA journal_mode=WAL")
                self.connection.execute("PRAGMA synchronous=FULL")
                # 64 MB of page cache: staging a million records keeps its indexes in memory.
                self.connection.execute("PRAGMA cache_size=-65536")
        except sqlite3.DatabaseError as exc:
            raise LedgerError(f"the ledger {path} cannot be opened: {exc}") from exc

    def script(self, sql: str) -> None:
        try:
            self.connection.executescript(sql)
        except sqlite3.DatabaseError as exc:
            raise LedgerError(f"the ledger {self.path} cannot be opened: {exc}") from exc

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Rows:
        return self.connection.execute(sql, params)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self.connection.executemany(sql, rows)

    def insert_rows(
        self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
    ) -> None:
        """Many new rows at once (staging): one prepared INSERT, executed per row by SQLite."""
        marks = ", ".join("?" * len(columns))
        self.connection.executemany(
            f"INSERT INTO {table}({', '.join(columns)}) VALUES ({marks})", rows
        )

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All or nothing; ``IMMEDIATE`` takes the write lock up front, so two writers queue
        rather than one failing halfway. Inside another transaction it is a savepoint (as
        psycopg's are): its own failure undoes only its own part, and nothing is committed
        before the outermost block ends."""
        if self.connection.in_transaction:
            self.connection.execute("SAVEPOINT inner")
            try:
                yield
            except BaseException:
                self.connection.execute("ROLLBACK TO inner")
                self.connection.execute("RELEASE inner")
                raise
            self.connection.execute("RELEASE inner")
            return
        self.connection.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.connection.execute("ROLLBACK")
            raise
        self.connection.execute("COMMIT")

    def read_frame(
        self, sql: str, params: Sequence[Any] = (), *, integers: Collection[str] | None = None
    ) -> pd.DataFrame:
        """The rows as a frame. With ``integers`` (the result's whole-number columns; every
        other one text) they are converted column-wise (:func:`typed_frame`)."""
        if integers is not None:
            cursor = self.connection.execute(sql, params)
            names = [column[0] for column in cursor.description]
            frame = typed_frame(cursor.fetchall(), names, integers)
            if frame is not None:
                return frame
        return pd.read_sql_query(sql, self.connection, params=list(params))

    def upsert(
        self, table: str, keys: Sequence[str], columns: Sequence[str], rows: Iterable[Sequence[Any]]
    ) -> None:
        """Insert rows; a row whose ``keys`` exist replaces the other columns' values."""
        self.connection.executemany(upsert_sql(table, keys, columns), rows)

    def lock(self, command: str, *, shared: bool = False) -> AbstractContextManager[None]:
        """One run at a time per ledger: a kernel lock on ``tieout.lock`` beside the file. A
        SQLite ledger lives on one host, so even ``shared`` runs take it one at a time."""
        return run_lock(self.path.parent / "tieout.lock", command)

    def turn(self, name: str) -> AbstractContextManager[None]:
        """Nothing more to hold: the run lock already keeps every other process out."""
        return nullcontext()

    def serialize(self, name: str) -> None:
        """Nothing to do: a SQLite transaction (``BEGIN IMMEDIATE``) already writes alone."""

    @contextmanager
    def claim(self, sha256: str, name: str) -> Iterator[bool]:
        """Always this process's (the run lock keeps other workers out); noted in ``claims``."""
        self.upsert(
            "claims",
            ("sha256",),
            ("sha256", "name", "claimed_by", "claimed_at", "finished_at"),
            [(sha256, name, worker_name(), utcnow(), None)],
        )
        yield True
        self.execute("UPDATE claims SET finished_at = ? WHERE sha256 = ?", (utcnow(), sha256))

    def schema_lock(self) -> AbstractContextManager[None]:
        """Nothing to hold: SQLite runs one writer's DDL at a time by itself."""
        return nullcontext()

    def columns(self, table: str) -> set[str]:
        return {str(row[1]) for row in self.connection.execute(f"PRAGMA table_info({table})")}

    def reset_identity(self, table: str, column: str) -> None:
        """Nothing to do: SQLite's autoincrement continues after the largest id."""

    def close(self) -> None:
        self.connection.close()
