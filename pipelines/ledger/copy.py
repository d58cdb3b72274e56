"""`tieout ledger copy --to URL`: move a ledger to another engine (SQLite to PostgreSQL, when
one machine is no longer enough), verified by counts per table and counts and sums per state.
"""

from __future__ import annotations

from collections.abc import Callable

from pipelines.core.errors import LedgerError
from pipelines.ledger import Ledger

# Every table, parents first; rows keep their ids (events stay in order).
TABLES = (
    "meta",
    "runs",
    "files",
    "drops",
    "rejects",
    "records",
    "events",
    "refs",
    "syncs",
    "webhook_events",
    "synced",
    "cursors",
    "claims",
    "signoffs",
    "webhook_deliveries",
    "layouts",
    "layout_uses",
    "open_items",
    "item_events",
    "file_passes",
    "desk_users",
    "desk_events",
)
KEYS = {"meta": ("key",)}  # the target's own meta (its record scheme) is replaced
IDENTITY = (
    "drops",
    "rejects",
    "events",
    "syncs",
    "webhook_events",
    "signoffs",
    "layouts",
    "layout_uses",
    "item_events",
    "desk_events",
)  # numbered by the engine
SLICE = 50_000


def copy_ledger(source: Ledger, target: Ledger, say: Callable[[str], None] = print) -> int:
    """Copy every row of ``source`` into ``target`` (which must hold no records), then verify.
    Returns how many records were copied."""
    if not target.is_empty():
        raise LedgerError(
            f"the ledger {target.description} already holds records; copy only into a new one"
        )
    counted: dict[str, int] = {}
    with target.db.transaction():
        for table in TABLES:
            # the columns both have, in the source's order; the target's own `seq` is its own
            columns = [c for c in _ordered(source, table) if c in target.db.columns(table)]
            names = ", ".join(columns)
            order = f" ORDER BY {source.db.insertion_order}" if table == "records" else ""
            rows = source.db.execute(f"SELECT {names} FROM {table}{order}")
            insert = f"INSERT INTO {table}({names}) VALUES ({', '.join('?' * len(columns))})" + (
                f" ON CONFLICT({', '.join(KEYS[table])}) DO UPDATE SET value = excluded.value"
                if table in KEYS
                else ""
            )
            counted[table] = 0
            while batch := rows.fetchmany(SLICE):
                target.db.executemany(insert, batch)
                counted[table] += len(batch)
            if table in IDENTITY:
                target.db.reset_identity(table, "id")
    _verify(source, target, counted)
    for table in TABLES:
        say(f"  {table}: {counted[table]:,} rows")
    return counted["records"]


def _ordered(ledger: Ledger, table: str) -> list[str]:
    """A table's columns, in a stable order (sorted: the engines list them differently)."""
    return sorted(ledger.db.columns(table) - {"seq"})


def _verify(source: Ledger, target: Ledger, counted: dict[str, int]) -> None:
    """Counts per table, and records' counts and amounts per state, must be equal."""
    for table, rows in counted.items():
        there = int(target.db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
        if table != "meta" and there != rows:
            raise LedgerError(f"copy not verified: {table} has {there:,} rows, expected {rows:,}")
    before, after = source.by_state(), target.by_state()
    if before != after:
        raise LedgerError(f"copy not verified: by state {after} ≠ {before}")
