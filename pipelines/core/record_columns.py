"""The ledger's record model, declared once: every column of ``records``, its SQL declaration and
what it is for. The table's DDL, what staging writes (and how it fills each column), what a read
of every column returns, what reconcile's matching reads, the whole-number columns, what a state
change may set and the columns of each kind's record frame are derived from it.

The core every kind shares is :data:`CORE`; each record kind registers its own attributes with
its kind tags (:meth:`RecordModel.register_attributes`), before the ledger is used. A new column
is one entry here (or in its kind's registration) plus a migration revision that adds it to the
ledgers that exist. Column order carries no meaning: every read and write names its columns.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Literal

from pipelines.core.errors import LedgerError

# How staging fills a column, for each new record:
Fill = Literal[
    "text",  # the record frame's column, as text (every record has it)
    "optional",  # the frame's column as text; NULL where missing, or where the frame has none
    "cents",  # the frame's column, a whole number
    "rows",  # the frame's source rows (lists of row numbers), as JSON text
    "body",  # the frame's payload as JSON text ("" where the body is built from columns)
    "joined",  # the frame's list of names, joined by "; " (NULL where empty or absent)
    "run",  # the run that staged it
    "file",  # the sha256 of the file it came from
    "now",  # the moment it was staged
    "ready",  # the state every staged record starts in
]


@dataclass(frozen=True)
class Column:
    """One column of ``records``."""

    name: str
    sql: str  # its declaration after the name: type, then constraints and default
    staged: Fill | None = None  # how staging fills it (None: not written when staged)
    kinds: tuple[str, ...] = ()  # the record kinds it is an attribute of; (): every kind's
    framed: bool = False  # in the record frame every kind's transform yields
    matched: bool = False  # read back by reconcile's matching
    body: bool = False  # the bulk of a record's bytes: left out of a read without bodies
    settable: bool = False  # may be set along with a state change (`Ledger.transition`)

    @property
    def integer(self) -> bool:
        """A whole number (every other column is text)."""
        return self.sql.split()[0] == "INTEGER"


CORE = (
    Column("record_key", "TEXT PRIMARY KEY", "text", framed=True, matched=True),
    Column("kind", "TEXT NOT NULL", "text", framed=True, matched=True),
    Column("run_id", "TEXT NOT NULL", "run"),
    Column("file_sha256", "TEXT", "file"),
    Column("source_file", "TEXT NOT NULL", "text", framed=True),
    Column("source_rows", "TEXT NOT NULL", "rows", framed=True, body=True),
    Column("integration_id", "TEXT NOT NULL", "text", framed=True),
    Column("location_id", "TEXT", "optional", framed=True),
    Column("amount_cents", "INTEGER NOT NULL", "cents", framed=True, matched=True),
    Column("content_hash", "TEXT NOT NULL", "text", framed=True),
    Column("payload", "TEXT NOT NULL", "body", framed=True, body=True),
    Column("state", "TEXT NOT NULL", "ready", matched=True),
    Column("job_id", "TEXT", settable=True),
    Column("batch_index", "INTEGER", settable=True),
    Column("created_record_id", "TEXT", matched=True, settable=True),
    Column("propexo_id", "TEXT", matched=True),
    Column("found_amount_cents", "INTEGER", matched=True),
    Column("errors", "TEXT", body=True, settable=True),
    Column("note", "TEXT", matched=True, settable=True),
    Column("attempts", "INTEGER NOT NULL DEFAULT 0"),
    Column("created_at", "TEXT NOT NULL", "now"),
    Column("updated_at", "TEXT NOT NULL", "now"),
    Column("sent_at", "TEXT", matched=True, settable=True),
    Column("doubt_since", "TEXT", matched=True, settable=True),
    Column("confirmed_at", "TEXT", matched=True, settable=True),
    Column("reconciled_at", "TEXT"),
)


class RecordModel:
    """The columns of ``records``: the core, then each kind's attributes as registered."""

    def __init__(self, core: Iterable[Column], declared_in: Iterable[str] = ()) -> None:
        self._columns = list(core)
        self._read = False  # a list with kind attributes in it was handed out
        self._declared_in = tuple(declared_in)  # modules registering attributes, on first read

    def register_attributes(self, kinds: Iterable[str], columns: Iterable[Column]) -> None:
        """Declare record kinds' own columns. A column two kinds share (a date, say) is declared
        by each, alike; registering after the model was read is refused, since what was read
        (a read list taken at import, say) would miss the new columns."""
        tags = tuple(kinds)
        if not tags:
            raise LedgerError("a kind's attributes need the kinds they belong to")
        for column in columns:
            names = [c.name for c in self._columns]
            if column.name not in names:
                self._refuse_if_read(column.name)
                self._columns.append(replace(column, kinds=tags))
                continue
            at = names.index(column.name)
            known = self._columns[at]
            if not known.kinds or replace(known, kinds=()) != replace(column, kinds=()):
                raise LedgerError(f"record column {column.name!r} is declared twice, unalike")
            more = tuple(k for k in tags if k not in known.kinds)
            if more:
                self._refuse_if_read(column.name)
                self._columns[at] = replace(known, kinds=(*known.kinds, *more))

    def _refuse_if_read(self, name: str) -> None:
        if self._read:
            raise LedgerError(
                f"record column {name!r} registered after the ledger's columns were read: "
                "register a kind's attributes when its package is imported"
            )

    def columns(self) -> tuple[Column, ...]:
        """Every column, in the table's order."""
        if not self._read and self._declared_in:
            modules, self._declared_in = self._declared_in, ()
            for module in modules:  # each registers its kind's attributes as it is imported
                importlib.import_module(module)
        self._read = True
        return tuple(self._columns)

    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns())

    def integers(self) -> frozenset[str]:
        """The whole-number columns: what lets a million records be read back column-wise."""
        return frozenset(c.name for c in self.columns() if c.integer)

    def staged(self) -> tuple[Column, ...]:
        """What staging writes of a new record."""
        return tuple(c for c in self.columns() if c.staged is not None)

    def matched(self) -> tuple[str, ...]:
        """What reconcile's matching reads of each record (and nothing more: a million rows are
        read back through sqlite3, which pays per cell)."""
        return tuple(c.name for c in self.columns() if c.matched)

    def bodies(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns() if c.body)

    def settable(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns() if c.settable)

    def framed(self, kind: str | None = None) -> list[str]:
        """The record frame's columns: every kind's (the core), and with ``kind`` its own
        attributes too."""
        if kind is None:
            return [c.name for c in CORE if c.framed]
        return [c.name for c in self.columns() if (c.framed and not c.kinds) or kind in c.kinds]

    def ddl(self) -> str:
        """``CREATE TABLE`` for ``records``, in SQLite's types (``ledger.schema.dialect_ddl``
        turns them into PostgreSQL's)."""
        lines = ",\n".join(f"    {c.name} {c.sql}" for c in self.columns())
        return f"CREATE TABLE IF NOT EXISTS records (\n{lines}\n);\n"


# Each kind's own attributes are declared in its package (``pipelines/kinds/<kind>/columns.py``),
# which registers them when imported; the built-in kinds' are imported on the model's first
# read, so a ledger read before any kind was used still has every column. A kind from outside
# registers its attributes before it is used (it cannot be read before it is registered).
BUILT_IN_ATTRIBUTES = ("pipelines.kinds.invoice.columns", "pipelines.kinds.charge.columns")

RECORD = RecordModel(CORE, declared_in=BUILT_IN_ATTRIBUTES)
