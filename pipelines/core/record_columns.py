"""The ledger's record model, declared once: every column of ``records``, its SQL declaration and
what it is for. The table's DDL, what staging writes (and how it fills each column), what a read
of every column returns, what reconcile's matching reads, the whole-number columns, what a state
change may set and the columns of each kind's record frame are derived from it.

The core every kind shares is :data:`CORE` (a new core column is one entry here plus a
migration revision). Each record kind declares its own attributes in its package
(``Kind.columns``); registering the kind registers them with its kind tags
(:meth:`RecordModel.register_attributes`), and the ledger adds a registered kind's column that
its table lacks when it is opened (``ledger.schema.add_kind_columns``): no shared migration.
Nothing here names a kind: the first read of the model has the registry discover every kind
(:data:`DISCOVER`), and every read lists the columns as registered then (nothing keeps a list
taken at import). Column order carries no meaning: every read and write names its columns.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
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


# What a kind's own column may be: one a table that has rows can be given later (nullable, no
# key), in a type both engines share.
_KIND_TYPES = ("TEXT", "INTEGER")
_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")  # a name both engines take unquoted


class Listed(Sequence[str]):
    """A list of the model's column names read afresh each time it is used, never when it is
    made: a module may keep one (reconcile's read list, say) from import on and still see
    the columns of a kind registered later."""

    def __init__(self, read: Callable[[], tuple[str, ...]]) -> None:
        self._read = read

    def __getitem__(self, index: int) -> str:  # type: ignore[override]
        return self._read()[index]

    def __len__(self) -> int:
        return len(self._read())

    def __iter__(self) -> Iterator[str]:
        return iter(self._read())

    def __repr__(self) -> str:
        return f"Listed({list(self)!r})"


def frame_of(attributes: Iterable[Column]) -> list[str]:
    """The record frame of a kind whose own columns are ``attributes``: the core's framed
    columns, then its own (what its transform yields), read from no registry."""
    return [*(c.name for c in CORE if c.framed), *(c.name for c in attributes)]


class RecordModel:
    """The columns of ``records``: the core, then each kind's attributes as registered.
    ``discover`` (a module path) is imported, and its ``discover()`` called, on the first
    read: the registry, which registers every kind it finds (and with it their columns)."""

    def __init__(self, core: Iterable[Column], discover: str | None = None) -> None:
        self._columns = list(core)
        self._discover = discover
        # What the ledger's keys need to know of the kinds (registered with them): record
        # kind → its twin, and the record kinds whose numbers tieout derives.
        self._twins: dict[str, str] = {}
        self._derived: list[str] = []

    def register_keys(
        self, kinds: Iterable[str], twins: Iterable[tuple[str, str]], derived: bool
    ) -> None:
        """Declare what staging and the ledger's opening ask of record kinds' keys: ``twins``,
        pairs of record kinds that are one record under either sign (each key is looked up as
        its twin too), and ``derived``, whether their reference numbers are tieout's own
        (``Kind.derived_numbers``)."""
        tags = tuple(kinds)
        pairs = list(twins)
        for one, other in pairs:
            if one not in tags or other not in tags or one == other:
                raise LedgerError(
                    f"twins ({one!r}, {other!r}) must be two of the kind's own record kinds "
                    f"{list(tags)}"
                )
        for one, other in pairs:
            self._twins[one], self._twins[other] = other, one
        if derived:
            self._derived += [k for k in tags if k not in self._derived]

    def twins(self) -> dict[str, str]:
        """Record kind → its twin (both ways), for every registered kind that has twins."""
        self.columns()  # the kinds discovered
        return dict(self._twins)

    def derived(self) -> tuple[str, ...]:
        """The record kinds whose reference numbers tieout derives (``RECORD_SCHEME``)."""
        self.columns()  # the kinds discovered
        return tuple(self._derived)

    def register_attributes(self, kinds: Iterable[str], columns: Iterable[Column]) -> None:
        """Declare record kinds' own columns. A column two kinds share (a date, say) is declared
        by each, alike. A kind's column is nullable TEXT or INTEGER: the ledger adds it to a
        table that already has rows (``ledger.schema.add_kind_columns``)."""
        tags = tuple(kinds)
        if not tags:
            raise LedgerError("a kind's attributes need the kinds they belong to")
        for column in columns:
            names = [c.name for c in self._columns]
            if column.name not in names:
                if (
                    not _NAME.fullmatch(column.name)
                    or column.sql.upper() not in _KIND_TYPES
                    or column.staged
                    not in (
                        None,
                        "optional",
                        "joined",
                    )
                ):
                    raise LedgerError(
                        f"record column {column.name!r}: a kind's own column is named in lower "
                        "case letters, digits and _, TEXT or INTEGER, nothing more (nullable: "
                        "the ledger adds it to a table that has rows), staged 'optional' or "
                        "'joined', or not staged"
                    )
                self._columns.append(replace(column, kinds=tags))
                continue
            at = names.index(column.name)
            known = self._columns[at]
            if not known.kinds or replace(known, kinds=()) != replace(column, kinds=()):
                raise LedgerError(f"record column {column.name!r} is declared twice, unalike")
            more = tuple(k for k in tags if k not in known.kinds)
            if more:
                self._columns[at] = replace(known, kinds=(*known.kinds, *more))

    def unregister_attributes(self, kinds: Iterable[str]) -> None:
        """Forget record kinds' own columns (a kind unregistered): a column no other kind
        declares leaves the model (a ledger that has it keeps it, unread)."""
        gone = set(kinds)
        self._twins = {k: v for k, v in self._twins.items() if k not in gone}
        self._derived = [k for k in self._derived if k not in gone]
        kept = []
        for column in self._columns:
            left = tuple(k for k in column.kinds if k not in gone)
            if column.kinds and not left:
                continue
            kept.append(replace(column, kinds=left) if column.kinds else column)
        self._columns = kept

    def columns(self) -> tuple[Column, ...]:
        """Every column, in the table's order: the core, then every registered kind's."""
        if self._discover is not None:
            # Cleared first: the registry's discovery imports kinds, which may read the model.
            module, self._discover = self._discover, None
            importlib.import_module(module).discover()
        return tuple(self._columns)

    def attributes(self) -> tuple[Column, ...]:
        """The kinds' own columns (what the ledger adds to a table that lacks them)."""
        return tuple(c for c in self.columns() if c.kinds)

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


# The registry, named by its path (core imports no layer above it): its ``discover()`` finds the
# built-in kinds' packages and the ``tieout.kinds`` entry points, and registering each kind
# registers its columns; so a ledger opened before any kind was used still has every column.
DISCOVER = "pipelines.kinds"

RECORD = RecordModel(CORE, discover=DISCOVER)
