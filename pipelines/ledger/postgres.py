"""The ledger on PostgreSQL (psycopg 3): one database several hosts share.

The ledger's SQL is written once with ``?`` placeholders; this engine passes it to PostgreSQL
with ``%s``. The run lock is an advisory lock named after what it guards, held by this
session: a process that dies loses it when its connection ends.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pandas as pd

from pipelines.core.errors import LedgerError, LockHeldError
from pipelines.core.models import utcnow
from pipelines.ledger.database import Rows, typed_frame, upsert_sql, worker_name


def redact(url: str) -> str:
    """A PostgreSQL URL for messages: its password replaced by ``***``."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


def _pg(sql: str) -> str:
    """The ledger's ``?`` placeholders as psycopg's ``%s`` (a literal ``%`` doubled)."""
    return sql.replace("%", "%%").replace("?", "%s")


# An advisory lock's number: its name hashed with the schema (two ledgers may share a database).
_KEY = "hashtextextended(%s::text || '@' || current_schema(), 0)"


def _session_name() -> str:
    """How this worker's sessions show in ``pg_stat_activity``: ``tieout host:pid``."""
    return "tieout " + worker_name()


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class PostgresDatabase:
    """A PostgreSQL database, committed before every method returns (autocommit outside
    :meth:`transaction`)."""

    dialect = "postgresql"
    insertion_order = "seq"  # records keep the order they were staged in

    def __init__(self, url: str, *, readonly: bool = False) -> None:
        """``readonly``: everything happens inside one transaction that is rolled back when
        the ledger closes (a dry run stages into it and leaves nothing behind)."""
        import psycopg

        self.url = url
        self.description = redact(url)
        self.readonly = readonly
        self._claims: psycopg.Connection[tuple[Any, ...]] | None = None
        try:
            self.connection = psycopg.connect(
                url, autocommit=not readonly, connect_timeout=10, application_name=_session_name()
            )
        except psycopg.Error as exc:
            raise LedgerError(
                f"the ledger {self.description} cannot be reached: {exc}".strip()
                + "; check ledger_url (TIEOUT_LEDGER_URL) and that the server is running"
            ) from None
        if readonly:
            self.connection.execute(b"SELECT 1")  # opens the transaction the block runs in

    def script(self, sql: str) -> None:
        self.connection.execute(sql.encode())

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Rows:
        return self.connection.execute(_pg(sql).encode(), list(params))

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        with self.connection.cursor() as cursor:
            cursor.executemany(_pg(sql).encode(), rows)

    def insert_rows(
        self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
    ) -> None:
        """Many new rows at once (staging): PostgreSQL's COPY, not an INSERT per row."""
        with (
            self.connection.cursor() as cursor,
            cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN".encode()) as copy,
        ):
            for row in rows:
                copy.write_row(row)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self.connection.transaction():
            yield

    def read_frame(
        self, sql: str, params: Sequence[Any] = (), *, integers: Collection[str] | None = None
    ) -> pd.DataFrame:
        cursor = self.connection.execute(_pg(sql).encode(), list(params))
        names = [column.name for column in cursor.description or []]
        rows = cursor.fetchall()
        typed = None if integers is None else typed_frame(rows, names, integers)
        if typed is not None:
            return typed
        frame = pd.DataFrame(rows, columns=names)
        # Whole-number columns come back as Python ints (NULL as None): typed as pandas types
        # SQLite's (int64, or float64 with NaN where a value is missing).
        for name in frame.columns:
            values = frame[name]
            present = values.dropna()
            if present.empty or not present.map(_is_int).all():
                continue
            frame[name] = values.astype("int64" if len(present) == len(values) else "float64")
        return frame

    def upsert(
        self, table: str, keys: Sequence[str], columns: Sequence[str], rows: Iterable[Sequence[Any]]
    ) -> None:
        self.executemany(upsert_sql(table, keys, columns), rows)

    @contextmanager
    def lock(self, command: str, *, shared: bool = False) -> Iterator[None]:
        """Runs on this ledger, across hosts: a session advisory lock, ``shared`` by workers
        that may run side by side (``tieout run``, ``watch``), exclusive for a command that
        needs the ledger to itself (``ledger rebuild``, ``reconcile``, ``resolve``)."""
        take = "pg_try_advisory_lock_shared" if shared else "pg_try_advisory_lock"
        row = self.connection.execute(
            f"SELECT {take}({_KEY})".encode(), ["tieout run lock"]
        ).fetchone()
        if not row or not row[0]:
            raise LockHeldError(
                f"another tieout is running on the ledger {self.description} and needs it to "
                f"itself (or this {command} does); try again when it has finished"
            )
        release = "pg_advisory_unlock_shared" if shared else "pg_advisory_unlock"
        try:
            yield
        finally:
            if not self.connection.closed:
                self.connection.execute(f"SELECT {release}({_KEY})".encode(), ["tieout run lock"])

    @contextmanager
    def turn(self, name: str) -> Iterator[None]:
        """Wait for, then hold, the session advisory lock ``name``: one worker at a time talks
        to one Propexo integration, on every host. A worker that dies loses it with its
        connection."""
        self.connection.execute(f"SELECT pg_advisory_lock({_KEY})".encode(), ["turn " + name])
        try:
            yield
        finally:
            if not self.connection.closed:
                self.connection.execute(
                    f"SELECT pg_advisory_unlock({_KEY})".encode(), ["turn " + name]
                )

    def serialize(self, name: str) -> None:
        """Inside a transaction: wait until no other transaction holds ``name`` (released at
        commit or rollback). Staging reads which keys exist, then writes: two workers must not
        interleave."""
        self.connection.execute(f"SELECT pg_advisory_xact_lock({_KEY})".encode(), [name])

    @contextmanager
    def claim(self, sha256: str, name: str) -> Iterator[bool]:
        """Claim a dropped file for this worker while the block runs: its ``claims`` row is
        held with ``SELECT … FOR UPDATE SKIP LOCKED`` in a transaction of a second connection.
        Yields False when another worker holds it. A worker that dies loses its claim when its
        connection ends; the file, still in the inbox, is then taken by the next."""
        import psycopg

        if self._claims is None or self._claims.closed:
            self._claims = psycopg.connect(
                self.url, autocommit=True, connect_timeout=10, application_name=_session_name()
            )
        claims = self._claims
        # The row is made outside the transaction, and only when missing: an INSERT meeting a
        # row another worker's open transaction has changed would wait for it, not skip it.
        if claims.execute(b"SELECT 1 FROM claims WHERE sha256 = %s", [sha256]).fetchone() is None:
            claims.execute(
                b"INSERT INTO claims (sha256, name) VALUES (%s, %s) "
                b"ON CONFLICT (sha256) DO NOTHING",
                [sha256, name],
            )
        with claims.transaction():
            row = claims.execute(
                b"SELECT sha256 FROM claims WHERE sha256 = %s FOR UPDATE SKIP LOCKED", [sha256]
            ).fetchone()
            if row is None:
                yield False
                return
            claimed_at = utcnow()
            yield True
        # Who took it, noted once it is done: an UPDATE inside the claim would make another
        # worker's INSERT of the same new row wait for this one rather than skip it.
        claims.execute(
            b"UPDATE claims SET claimed_by = %s, claimed_at = %s, finished_at = %s "
            b"WHERE sha256 = %s",
            [worker_name(), claimed_at, utcnow(), sha256],
        )

    @contextmanager
    def schema_lock(self) -> Iterator[None]:
        """Whoever creates or migrates the tables does it alone: two processes opening a new
        ledger at once would otherwise collide in PostgreSQL's catalog."""
        self.connection.execute(f"SELECT pg_advisory_lock({_KEY})".encode(), ["tieout schema"])
        try:
            yield
        finally:
            if not self.connection.closed:
                self.connection.execute(
                    f"SELECT pg_advisory_unlock({_KEY})".encode(), ["tieout schema"]
                )

    def columns(self, table: str) -> set[str]:
        rows = self.connection.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = %s",
            [table],
        ).fetchall()
        return {str(r[0]) for r in rows}

    def reset_identity(self, table: str, column: str) -> None:
        """After rows were inserted with their own ids, new ones continue after the largest."""
        self.connection.execute(
            f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), "
            f"COALESCE((SELECT MAX({column}) FROM {table}), 0) + 1, false)".encode()
        )

    def close(self) -> None:
        if self._claims is not None:
            self._claims.close()
        if self.readonly and not self.connection.closed:
            self.connection.rollback()
        self.connection.close()
