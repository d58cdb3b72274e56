"""The ledger's tables as a new ledger gets them (an existing one is brought there by the
migrations in ``migrations/versions/``, each with its own frozen DDL). ``records`` is declared
column by column in ``columns.py``; the other tables are written out here.

Every table and column name the ledger's SQL uses is written here or in the ledger's own
modules: none comes from a caller.
"""

from __future__ import annotations

import re

from pipelines.core.record_columns import RECORD
from pipelines.ledger.database import Database

# The first revision's tables (with the columns added since), before records.
BEFORE_RECORDS = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    exit_code INTEGER,
    dry_run INTEGER NOT NULL DEFAULT 0,
    pid INTEGER
);
CREATE TABLE IF NOT EXISTS files (
    sha256 TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    run_id TEXT NOT NULL,
    profile TEXT NOT NULL,
    kind TEXT NOT NULL,
    rows_read INTEGER NOT NULL,
    rows_used INTEGER NOT NULL,
    rows_rejected INTEGER NOT NULL,
    rows_skipped INTEGER NOT NULL,
    skipped_by_kind TEXT NOT NULL,
    source_total_cents INTEGER NOT NULL,
    rejected_total_cents INTEGER NOT NULL,
    previously_posted_cents INTEGER NOT NULL DEFAULT 0,
    moved_to TEXT,
    processed_at TEXT NOT NULL,
    columns_not_charged TEXT,
    file_totals TEXT,
    period TEXT,
    period_source TEXT,
    sheet TEXT
);
CREATE TABLE IF NOT EXISTS drops (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    name TEXT NOT NULL,
    sha256 TEXT,
    reason TEXT NOT NULL,
    first_run_id TEXT,
    at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS rejects (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    file_sha256 TEXT,
    source_file TEXT NOT NULL,
    source_row INTEGER NOT NULL,
    code TEXT NOT NULL,
    message TEXT NOT NULL,
    column_name TEXT,
    value TEXT,
    amount_text TEXT,
    amount_cents INTEGER
);
CREATE INDEX IF NOT EXISTS rejects_run ON rejects(run_id);
"""

# The records table's indexes, and the tables after it.
AFTER_RECORDS = """
CREATE INDEX IF NOT EXISTS records_state ON records(state);
CREATE INDEX IF NOT EXISTS records_run ON records(run_id);
CREATE INDEX IF NOT EXISTS records_job ON records(job_id);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    run_id TEXT,
    record_key TEXT NOT NULL,
    from_state TEXT,
    to_state TEXT NOT NULL,
    detail TEXT
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS refs (
    integration_id TEXT PRIMARY KEY,
    fetched_at TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS syncs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    integration_id TEXT NOT NULL,
    schedule_id TEXT,
    requested_at TEXT,
    completed_at TEXT,
    finished INTEGER NOT NULL DEFAULT 0,
    models TEXT,
    started_after TEXT
);
CREATE TABLE IF NOT EXISTS webhook_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    trigger TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS cursors (
    integration_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    newest TEXT,
    window_start TEXT,
    window_end TEXT,
    PRIMARY KEY (integration_id, kind)
);
CREATE TABLE IF NOT EXISTS synced (
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    data TEXT NOT NULL,
    stale INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (kind, id)
);
"""

# Revision 0002 (2026-11-24, #18): which worker has a dropped file. On PostgreSQL a worker holds
# its file's row with ``SELECT … FOR UPDATE SKIP LOCKED`` while it reads and stages the file; on
# SQLite the run lock already keeps workers apart, and the table only says who took what.
CLAIMS = """
CREATE TABLE IF NOT EXISTS claims (
    sha256 TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    claimed_by TEXT,
    claimed_at TEXT,
    finished_at TEXT
);
"""

# Revision 0003_signoffs (2026-12-03, #28): a person's review of a run's or a period's workpaper,
# an event (never edited): who, when, of what, with a note.
SIGNOFFS = """
CREATE TABLE IF NOT EXISTS signoffs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    subject TEXT NOT NULL,
    by_name TEXT NOT NULL,
    at TEXT NOT NULL,
    note TEXT
);
"""


# Revision 0004_intake (2026-12-03, #30): webhook deliveries by the sha256 of their raw body, so
# a delivery Propexo sends again is recorded once (its repeats are counted).
WEBHOOK_DELIVERIES = """
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    digest TEXT PRIMARY KEY,
    recorded_at TEXT NOT NULL,
    last_at TEXT NOT NULL,
    deliveries INTEGER NOT NULL DEFAULT 1
);
"""

# Revision 0005_layouts (#31): layouts a person confirmed (a file of a confirmed layout moves money
# unattended), and each file's layout in each run: used (and by whose confirmation) or held.
LAYOUTS = """
CREATE TABLE IF NOT EXISTS layouts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    fingerprint TEXT NOT NULL,
    header_key TEXT NOT NULL,
    profile TEXT NOT NULL,
    kind TEXT NOT NULL,
    facts TEXT NOT NULL,
    confirmed_by TEXT NOT NULL,
    confirmed_at TEXT NOT NULL,
    from_file TEXT NOT NULL,
    from_sha256 TEXT NOT NULL,
    forgotten_at TEXT
);
CREATE INDEX IF NOT EXISTS layouts_fingerprint ON layouts(fingerprint);
CREATE TABLE IF NOT EXISTS layout_uses (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    name TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    layout_id INTEGER,
    confirmed_by TEXT,
    held INTEGER NOT NULL,
    preview TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS layout_uses_run ON layout_uses(run_id);
"""

# Revision 0006_open_items (2026-12-03, #27): open items. Every exception (a rejected row, an
# unknown name,
# a conflict, a refused file, a held layout, a file awaiting approval) is an item until it is
# settled; its states are events (open, seen, settled, superseded), never edits. A file taken in
# again while it has open items (a retry) is a pass: one row per run that read it.
OPEN_ITEMS = """
CREATE TABLE IF NOT EXISTS open_items (
    item_id TEXT PRIMARY KEY,
    cause TEXT NOT NULL,
    file_sha256 TEXT,
    file_name TEXT,
    sheet TEXT,
    source_rows TEXT NOT NULL,
    amount_cents INTEGER NOT NULL DEFAULT 0,
    amount_text TEXT,
    detail TEXT NOT NULL,
    first_run_id TEXT,
    first_seen TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS open_items_file ON open_items(file_sha256);
CREATE TABLE IF NOT EXISTS item_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id TEXT NOT NULL,
    at TEXT NOT NULL,
    state TEXT NOT NULL,
    run_id TEXT,
    decided_by TEXT,
    note TEXT
);
CREATE INDEX IF NOT EXISTS item_events_item ON item_events(item_id);
CREATE TABLE IF NOT EXISTS file_passes (
    run_id TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    name TEXT NOT NULL,
    profile TEXT NOT NULL,
    kind TEXT NOT NULL,
    rows_read INTEGER NOT NULL,
    rows_used INTEGER NOT NULL,
    rows_rejected INTEGER NOT NULL,
    rows_skipped INTEGER NOT NULL,
    skipped_by_kind TEXT NOT NULL,
    source_total_cents INTEGER NOT NULL,
    rejected_total_cents INTEGER NOT NULL,
    previously_posted_cents INTEGER NOT NULL DEFAULT 0,
    moved_to TEXT,
    processed_at TEXT NOT NULL,
    columns_not_charged TEXT,
    file_totals TEXT,
    period TEXT,
    period_source TEXT,
    sheet TEXT,
    PRIMARY KEY (run_id, sha256)
);
"""

# Revision 0008_desk (#39): the desk's named users (an Argon2 hash of each password, never the
# password) and what each did there (an upload, a sign-in refused, …): events, never edits.
DESK = """
CREATE TABLE IF NOT EXISTS desk_users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS desk_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    by_name TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail TEXT
);
CREATE INDEX IF NOT EXISTS desk_events_subject ON desk_events(action, subject);
"""

# The tables each revision after the first added, in order (a new one is added here too).
LATER_TABLES = (CLAIMS, SIGNOFFS, WEBHOOK_DELIVERIES, LAYOUTS, OPEN_ITEMS, DESK)


def base_tables() -> str:
    """The first revision's tables as they are now, ``records`` from its declaration."""
    return BEFORE_RECORDS + RECORD.ddl() + AFTER_RECORDS


def postgres_schema() -> str:
    """The same tables on PostgreSQL: 64-bit integers (cents can pass 2^31), identity columns
    for SQLite's autoincrement, and ``seq`` to keep records in the order they were staged."""
    return dialect_ddl("postgresql", base_tables()).replace(
        "    record_key TEXT PRIMARY KEY,",
        "    seq BIGINT GENERATED BY DEFAULT AS IDENTITY,\n    record_key TEXT PRIMARY KEY,",
        1,
    )


def dialect_ddl(dialect: str, ddl: str) -> str:
    """A table's DDL on ``dialect``: on PostgreSQL, 64-bit integers and identity columns."""
    if dialect != "postgresql":
        return ddl
    ddl = ddl.replace(
        "INTEGER PRIMARY KEY AUTOINCREMENT", "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"
    )
    return re.sub(r"\bINTEGER\b", "BIGINT", ddl)


def revision_of(db: Database) -> str | None:
    """The schema revision recorded in the ledger (None: before migrations, or new)."""
    if "version_num" not in db.columns("alembic_version"):
        return None
    row = db.execute("SELECT version_num FROM alembic_version").fetchone()
    return str(row[0]) if row else None


def is_new(db: Database) -> bool:
    """No tieout table yet: a new ledger."""
    return not db.columns("records")


def create(db: Database) -> None:
    """Create every table and index of a new ledger, as the newest revision leaves them."""
    db.script(postgres_schema() if db.dialect == "postgresql" else base_tables())
    for ddl in LATER_TABLES:
        db.script(dialect_ddl(db.dialect, ddl))


def add_kind_columns(db: Database) -> list[str]:
    """Give ``records`` every registered kind's own column it lacks (a kind's column is
    nullable TEXT or INTEGER: ``record_columns.RecordModel.register_attributes``), so a kind's
    column reaches a ledger with no migration revision; returns the names added. Run when a
    ledger is opened (a read-only one changes only its copy, or a transaction rolled back)."""
    have = db.columns("records")
    missing = [c for c in RECORD.attributes() if c.name not in have]
    if not missing:
        return []
    with db.schema_lock():
        have = db.columns("records")  # another worker may have added them meanwhile
        added = [c for c in missing if c.name not in have]
        for column in added:
            # The names are the kinds' declared ones (checked as identifiers when declared).
            declared = dialect_ddl(db.dialect, f"{column.name} {column.sql}")
            exists = " IF NOT EXISTS" if db.dialect == "postgresql" else ""
            db.execute(f"ALTER TABLE records ADD COLUMN{exists} {declared}")
    return [c.name for c in added]
