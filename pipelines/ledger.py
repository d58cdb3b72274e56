"""The ledger: tieout's own memory of every record, in SQLite (WAL).

Propexo has no idempotency keys, so the ledger is what makes posting exactly-once: a record's
*intent* (state ``sending``) is committed before its POST and its *outcome* after. After a crash,
``sending`` means *in doubt*: the record is looked up in Propexo before it may be sent again.

States: ready → sending → submitted → confirmed | failed | partial → matched | missing |
mismatched | duplicated. Every change is also written to ``events`` (an audit trail).
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import repeat
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.errors import LedgerError
from pipelines.logs import LOGGER
from pipelines.models import FileOutcome, Issue

log = logging.getLogger(LOGGER)
STATES = (
    "ready",
    "sending",
    "submitted",
    "confirmed",
    "failed",
    "partial",
    "matched",
    "missing",
    "mismatched",
    "duplicated",
    "unverifiable",
)
# Written, but whether it landed is not known yet: never re-sent until its absence is proven.
IN_DOUBT_STATES = ("sending", "partial")
POSTED_STATES = ("confirmed", "matched", "mismatched", "missing", "duplicated", "unverifiable")
RECONCILABLE_STATES = (
    "confirmed",
    "matched",
    "mismatched",
    "missing",
    "duplicated",
    "unverifiable",
)

_SCHEMA = """
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
    processed_at TEXT NOT NULL
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
    value TEXT
);
CREATE INDEX IF NOT EXISTS rejects_run ON rejects(run_id);
CREATE TABLE IF NOT EXISTS records (
    record_key TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    run_id TEXT NOT NULL,
    file_sha256 TEXT,
    source_file TEXT NOT NULL,
    source_rows TEXT NOT NULL,
    integration_id TEXT NOT NULL,
    location_id TEXT,
    reference_number TEXT,
    invoice_number TEXT,
    vendor_id TEXT,
    resident_id TEXT,
    charge_code_id TEXT,
    transaction_date TEXT,
    amount_cents INTEGER NOT NULL,
    content_hash TEXT NOT NULL,
    payload TEXT NOT NULL,
    state TEXT NOT NULL,
    job_id TEXT,
    batch_index INTEGER,
    created_record_id TEXT,
    propexo_id TEXT,
    found_amount_cents INTEGER,
    errors TEXT,
    note TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    sent_at TEXT,
    doubt_since TEXT,
    confirmed_at TEXT,
    reconciled_at TEXT,
    defaulted TEXT
);
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
CREATE TABLE IF NOT EXISTS synced (
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    data TEXT NOT NULL,
    stale INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (kind, id)
);
"""

RECORD_COLUMNS = (
    "record_key",
    "kind",
    "run_id",
    "file_sha256",
    "source_file",
    "source_rows",
    "integration_id",
    "location_id",
    "reference_number",
    "invoice_number",
    "vendor_id",
    "resident_id",
    "charge_code_id",
    "transaction_date",
    "amount_cents",
    "content_hash",
    "payload",
    "state",
    "job_id",
    "batch_index",
    "created_record_id",
    "propexo_id",
    "found_amount_cents",
    "errors",
    "note",
    "attempts",
    "created_at",
    "updated_at",
    "sent_at",
    "doubt_since",
    "confirmed_at",
    "reconciled_at",
    "defaulted",
    "charge_notes",
)
BODIES = ("payload", "source_rows", "errors")  # the bulk of a record's bytes


def utcnow() -> str:
    """Ledger timestamps: ISO 8601 UTC with microseconds (they sort as text)."""
    return datetime.now(tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


ADOPTED = "adopted"  # content_hash of a record taken over from Propexo: only its amount is known


def _none(value: Any) -> str | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


@dataclass(frozen=True)
class Conflict:
    """A record key already in the ledger with different content: reported, never posted."""

    record_key: str
    source_file: str
    source_row: int
    first_run_id: str
    previous_cents: int = 0
    cents: int = 0
    previous_payload: str = ""


# Bumped when record keys or content digests are derived differently (2: column-wise
# fingerprints, tieout 2026-11-21; 3: charge numbers from identity, not amount, 2026-11-23).
RECORD_SCHEME = "3"


class Ledger:
    """One SQLite database; every method commits before it returns."""

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        """Open (creating when needed) the ledger; ``readonly`` never writes a byte to disk."""
        self.path = path
        try:
            if readonly:
                self.db = sqlite3.connect(":memory:", isolation_level=None)
                if path.exists():
                    source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
                    source.backup(self.db)
                    source.close()
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                self.db = sqlite3.connect(str(path), timeout=30, isolation_level=None)
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute("PRAGMA synchronous=FULL")
                # 64 MB of page cache: staging a million records keeps its indexes in memory.
                self.db.execute("PRAGMA cache_size=-65536")
            self.db.executescript(_SCHEMA)
            self._add_columns()
            if not readonly:
                self._check_record_scheme()
        except sqlite3.DatabaseError as exc:
            raise LedgerError(f"the ledger {path} cannot be opened: {exc}") from exc

    def _add_columns(self) -> None:
        """Columns added after a ledger was created (SQLite adds a nullable column in place)."""
        have = {row[1] for row in self.db.execute("PRAGMA table_info(records)")}
        if "doubt_since" not in have:  # 2026-11-23: when a record went in doubt
            self.db.execute("ALTER TABLE records ADD COLUMN doubt_since TEXT")
        if "charge_notes" not in have:  # 2026-11-23: a charge's body is built from columns
            self.db.execute("ALTER TABLE records ADD COLUMN charge_notes TEXT")
        reject_columns = {row[1] for row in self.db.execute("PRAGMA table_info(rejects)")}
        if "amount_text" not in reject_columns:  # 2026-11-23: the row's amount as the file shows it
            self.db.execute("ALTER TABLE rejects ADD COLUMN amount_text TEXT")
        file_columns = {row[1] for row in self.db.execute("PRAGMA table_info(files)")}
        for column in ("columns_not_charged", "file_totals", "period", "period_source", "sheet"):
            if column not in file_columns:
                self.db.execute(f"ALTER TABLE files ADD COLUMN {column} TEXT")

    def mark_orphans_in_doubt(self, run_id: str) -> int:
        """Records left ``sending`` by a process that is gone (the run lock is ours now): they
        are in doubt from now, the first moment anyone can know it."""
        now = utcnow()
        with self.transaction() as db:
            changed = db.execute(
                "UPDATE records SET doubt_since = ?, updated_at = ? "
                "WHERE state = 'sending' AND doubt_since IS NULL",
                (now, now),
            ).rowcount
        return int(changed)

    def _check_record_scheme(self) -> None:
        """Refuse a ledger whose charges carry reference numbers derived the old way: their
        files, dropped again, would get new numbers and be posted a second time."""
        scheme = self.get_meta("record_scheme")
        if scheme == RECORD_SCHEME:
            return
        old_charges = self.db.execute(
            "SELECT COUNT(*) FROM records WHERE kind IN ('charge', 'credit')"
        ).fetchone()[0]
        if scheme is None and not old_charges:
            self.set_meta("record_scheme", RECORD_SCHEME)
            return
        raise LedgerError(
            f"the ledger {self.path} was written by an earlier tieout that derived charge "
            "reference numbers differently; its files dropped again could be posted twice. "
            "Finish its reconciliation with that version, then start a new ledger (move "
            "the file aside)"
        )

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        """Closed however the block ends: ``with Ledger(path) as ledger: ...``."""
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # -- meta -----------------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row else None

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    # -- syncs: what tieout can prove about Propexo's syncs ------------------------------------

    def request_sync(self, integration_id: str, at: str) -> None:
        """tieout asked for a manual sync at ``at``: the sync it starts began no earlier."""
        self.db.execute(
            "INSERT INTO syncs(integration_id, requested_at) VALUES (?, ?)", (integration_id, at)
        )

    def record_sync_complete(
        self,
        integration_id: str,
        *,
        schedule_id: str | None,
        finished: bool,
        models: list[str] | None,
        at: str,
    ) -> None:
        """A SYNC_COMPLETE webhook, with the earliest moment its sync can have started.

        A manual one (no schedule id) completes the oldest manual request still open: that sync
        started after the request. A scheduled one started after the previous completion of the
        same schedule (syncs of one integration run one at a time). Anything else proves no
        start time and is kept only as a record.
        """
        models_text = json.dumps(models) if models is not None else None
        with self.transaction() as db:
            if schedule_id is None:
                row = db.execute(
                    "SELECT id, requested_at FROM syncs WHERE integration_id = ? "
                    "AND schedule_id IS NULL AND completed_at IS NULL AND requested_at <= ? "
                    "ORDER BY id LIMIT 1",
                    (integration_id, at),
                ).fetchone()
                if row is not None:
                    db.execute(
                        "UPDATE syncs SET completed_at = ?, finished = ?, models = ?, "
                        "started_after = requested_at WHERE id = ?",
                        (at, int(finished), models_text, row[0]),
                    )
                    return
                started_after = None
            else:
                previous = db.execute(
                    "SELECT MAX(completed_at) FROM syncs WHERE integration_id = ? "
                    "AND schedule_id = ?",
                    (integration_id, schedule_id),
                ).fetchone()[0]
                started_after = previous
            db.execute(
                "INSERT INTO syncs(integration_id, schedule_id, completed_at, finished, models, "
                "started_after) VALUES (?, ?, ?, ?, ?, ?)",
                (integration_id, schedule_id, at, int(finished), models_text, started_after),
            )

    def proven_syncs(self, integration_id: str) -> pd.DataFrame:
        """Syncs known complete with a known earliest start: (started_after, completed_at,
        models as a list)."""
        frame = pd.read_sql_query(
            "SELECT started_after, completed_at, models FROM syncs WHERE integration_id = ? "
            "AND finished = 1 AND started_after IS NOT NULL AND completed_at IS NOT NULL "
            "ORDER BY completed_at",
            self.db,
            params=(integration_id,),
        )
        frame["models"] = frame["models"].map(lambda m: json.loads(m) if m else [])
        return frame

    def open_sync_requests(self, integration_id: str) -> int:
        return int(
            self.db.execute(
                "SELECT COUNT(*) FROM syncs WHERE integration_id = ? AND schedule_id IS NULL "
                "AND requested_at IS NOT NULL AND completed_at IS NULL",
                (integration_id,),
            ).fetchone()[0]
        )

    def record_webhook(self, trigger: str, body: str) -> None:
        self.db.execute(
            "INSERT INTO webhook_events(at, trigger, body) VALUES (?, ?, ?)",
            (utcnow(), trigger, body),
        )

    # -- reference data cache --------------------------------------------------------------------

    def save_refs(self, integration_id: str, lists: dict[str, list[dict[str, Any]]]) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO refs VALUES (?, ?, ?)",
            (integration_id, utcnow(), json.dumps(lists)),
        )

    def cached_refs(
        self, integration_id: str
    ) -> tuple[str, dict[str, list[dict[str, Any]]]] | None:
        """(fetched_at, lists) of the cached reference data, if any."""
        row = self.db.execute(
            "SELECT fetched_at, data FROM refs WHERE integration_id = ?", (integration_id,)
        ).fetchone()
        return (str(row[0]), json.loads(row[1])) if row else None

    # -- Propexo's records, as last fetched -----------------------------------------------------

    def upsert_synced(self, kind: str, frame: pd.DataFrame) -> None:
        """Remember records fetched from Propexo (newer copies replace older ones)."""
        if frame.empty:
            return
        rows = [(kind, str(r["id"]), json.dumps(r, default=str)) for r in frame.to_dict("records")]
        with self.transaction() as db:
            db.executemany(
                "INSERT INTO synced(kind, id, data, stale) VALUES (?, ?, ?, 0) "
                "ON CONFLICT(kind, id) DO UPDATE SET data = excluded.data",
                rows,
            )

    def mark_stale(self, kind: str, ids: Iterable[str]) -> None:
        """The records a recent sync no longer saw (deleted in the PMS); all others are fresh."""
        ids = list(ids)
        with self.transaction() as db:
            db.execute("UPDATE synced SET stale = 0 WHERE kind = ?", (kind,))
            db.executemany(
                "UPDATE synced SET stale = 1 WHERE kind = ? AND id = ?", [(kind, i) for i in ids]
            )

    def synced(self, kind: str, columns: list[str]) -> pd.DataFrame:
        """The cached records of one kind that Propexo still sees."""
        rows = self.db.execute(
            "SELECT data FROM synced WHERE kind = ? AND stale = 0", (kind,)
        ).fetchall()
        frame = pd.DataFrame([json.loads(r[0]) for r in rows])
        for column in columns:
            if column not in frame:
                frame[column] = None
        return frame[columns]

    # -- runs and files -------------------------------------------------------------------------

    def start_run(self, run_id: str, *, dry_run: bool, pid: int) -> None:
        self.db.execute(
            "INSERT INTO runs(run_id, started_at, dry_run, pid) VALUES (?, ?, ?, ?)",
            (run_id, utcnow(), int(dry_run), pid),
        )

    def finish_run(self, run_id: str, exit_code: int) -> None:
        self.db.execute(
            "UPDATE runs SET finished_at = ?, exit_code = ? WHERE run_id = ?",
            (utcnow(), exit_code, run_id),
        )

    def runs(self) -> pd.DataFrame:
        return pd.read_sql_query("SELECT * FROM runs ORDER BY started_at", self.db)

    def last_run_id(self) -> str | None:
        row = self.db.execute(
            "SELECT run_id FROM runs WHERE dry_run = 0 ORDER BY started_at DESC LIMIT 1"
        ).fetchone()
        return str(row[0]) if row else None

    def file_run(self, sha256: str) -> str | None:
        """The run that already processed a file with this content, if any."""
        row = self.db.execute("SELECT run_id FROM files WHERE sha256 = ?", (sha256,)).fetchone()
        return str(row[0]) if row else None

    def record_file(self, run_id: str, outcome: FileOutcome, moved_to: str | None) -> None:
        self.db.execute(
            "INSERT INTO files(sha256, name, run_id, profile, kind, rows_read, rows_used, "
            "rows_rejected, rows_skipped, skipped_by_kind, source_total_cents, "
            "rejected_total_cents, previously_posted_cents, moved_to, processed_at, "
            "columns_not_charged, file_totals, period, period_source, sheet) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                outcome.sha256,
                outcome.name,
                run_id,
                outcome.profile,
                outcome.kind,
                outcome.rows_read,
                outcome.rows_used,
                outcome.rows_rejected,
                outcome.rows_skipped,
                json.dumps(outcome.skipped_by_kind),
                outcome.source_total_cents,
                outcome.rejected_total_cents,
                outcome.previously_posted_cents,
                moved_to,
                utcnow(),
                json.dumps(list(outcome.columns_not_charged)),
                json.dumps(list(outcome.file_totals)),
                outcome.period,
                outcome.period_source,
                outcome.sheet,
            ),
        )

    def record_drop(
        self, run_id: str, name: str, sha256: str | None, reason: str, first_run_id: str | None
    ) -> None:
        self.db.execute(
            "INSERT INTO drops(run_id, name, sha256, reason, first_run_id, at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (run_id, name, sha256, reason, first_run_id, utcnow()),
        )

    def files(self, run_id: str) -> pd.DataFrame:
        return pd.read_sql_query(
            "SELECT * FROM files WHERE run_id = ? ORDER BY processed_at", self.db, params=(run_id,)
        )

    def drops(self, run_id: str) -> pd.DataFrame:
        return pd.read_sql_query(
            "SELECT * FROM drops WHERE run_id = ? ORDER BY id", self.db, params=(run_id,)
        )

    def add_rejects(
        self,
        run_id: str,
        sha256: str | None,
        issues: Iterable[Issue],
        amounts: dict[int, str] | None = None,
    ) -> None:
        """Rejected rows' reasons; ``amounts``: each row's amount as the file shows it."""
        amounts = amounts or {}
        rows = [
            (
                run_id,
                sha256,
                i.source_file,
                i.source_row,
                i.code.value,
                i.message,
                i.column,
                i.value,
                amounts.get(i.source_row),
            )
            for i in issues
        ]
        with self.transaction() as db:
            db.executemany(
                "INSERT INTO rejects(run_id, file_sha256, source_file, source_row, code, message, "
                "column_name, value, amount_text) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )

    def rejects(self, run_id: str) -> pd.DataFrame:
        return pd.read_sql_query(
            "SELECT source_file, source_row, code, message, column_name, value, amount_text "
            "FROM rejects "
            "WHERE run_id = ? ORDER BY source_file, source_row, id",
            self.db,
            params=(run_id,),
        )

    # -- records --------------------------------------------------------------------------------

    def stage_records(
        self, run_id: str, sha256: str | None, frame: pd.DataFrame
    ) -> tuple[list[str], list[Conflict]]:
        """Add new records as ``ready``. A key already known with the same content is left alone
        (it was posted before); with different content it is a conflict, and never posted."""
        if frame.empty:
            return [], []
        keys = frame["record_key"].astype(str)
        # A charge whose amount changed sign is a credit now (and the reverse): same number,
        # other kind, so it is looked up under its twin key too.
        rest = keys.str.slice(len("charge:"))  # "charge:" and "credit:" are the same length
        twins = keys.mask(keys.str.startswith("charge:"), "credit:" + rest).mask(
            keys.str.startswith("credit:"), "charge:" + rest
        )
        known: dict[str, tuple[str, str, int, str]] = {}
        for chunk in _chunks(sorted(set(keys) | set(twins)), 500):
            marks = ",".join("?" * len(chunk))
            for key, digest, first_run, cents, payload in self.db.execute(
                "SELECT record_key, content_hash, run_id, amount_cents, payload FROM records "
                f"WHERE record_key IN ({marks})",
                chunk,
            ):
                known[key] = (digest, first_run, cents, payload)
        seen = keys.isin(list(known)).to_numpy()
        twin_seen = ~seen & twins.isin(list(known)).to_numpy()
        conflicts = []
        for key, twin, digest, file, rows, cents in zip(
            keys[seen | twin_seen],
            twins[seen | twin_seen],
            frame.loc[seen | twin_seen, "content_hash"],
            frame.loc[seen | twin_seen, "source_file"],
            frame.loc[seen | twin_seen, "source_rows"],
            frame.loc[seen | twin_seen, "amount_cents"],
            strict=True,
        ):
            before = known.get(key) or known[twin]
            adopted_same = before[0] == ADOPTED and before[2] == int(cents) and key in known
            if key not in known or (digest != before[0] and not adopted_same):
                conflicts.append(
                    Conflict(key, file, int(rows[0]), before[1], before[2], int(cents), before[3])
                )
        seen = seen | twin_seen
        new = frame[~seen]
        if new.empty:
            return [], conflicts
        now = utcnow()
        staged = new["record_key"].astype(str).tolist()
        with self.transaction() as db:
            # Built column by column (a million records are written in seconds, not minutes),
            # a slice at a time, so only one slice's Python objects exist at once.
            for start in range(0, len(new), STAGE_SLICE):
                db.executemany(
                    "INSERT INTO records(record_key, kind, run_id, file_sha256, source_file, "
                    "source_rows, integration_id, location_id, reference_number, "
                    "invoice_number, vendor_id, resident_id, charge_code_id, transaction_date, "
                    "amount_cents, content_hash, payload, state, created_at, updated_at, "
                    "defaulted, charge_notes) VALUES "
                    "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'ready', ?, ?, ?, ?)",
                    _record_rows(new.iloc[start : start + STAGE_SLICE], run_id, sha256, now),
                )
            db.executemany(
                "INSERT INTO events(at, run_id, record_key, from_state, to_state) "
                "VALUES (?, ?, ?, NULL, 'ready')",
                ((now, run_id, key) for key in staged),
            )
        return staged, conflicts

    def transition(
        self,
        keys: Sequence[str],
        to_state: str,
        *,
        run_id: str | None = None,
        detail: str | None = None,
        **fields: Any,
    ) -> None:
        """Move records to a new state (and set fields), with an event each, in one transaction."""
        if to_state not in STATES:
            raise LedgerError(f"unknown state {to_state!r}")
        now = utcnow()
        sets = ["state = ?", "updated_at = ?"] + [f"{name} = ?" for name in fields]
        values = [to_state, now, *(_db_value(v) for v in fields.values())]
        changes: list[tuple[str, str]] = []
        with self.transaction() as db:
            for key in keys:
                row = db.execute(
                    "SELECT state FROM records WHERE record_key = ?", (key,)
                ).fetchone()
                if row is None:
                    raise LedgerError(f"no record {key!r} in the ledger")
                db.execute(
                    f"UPDATE records SET {', '.join(sets)} WHERE record_key = ?", [*values, key]
                )
                db.execute(
                    "INSERT INTO events(at, run_id, record_key, from_state, to_state, detail) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (now, run_id, key, row[0], to_state, detail),
                )
                changes.append((key, row[0]))
        for key, before in changes:  # logged once committed: the log never runs ahead of the ledger
            log.info(
                "state change",
                extra={
                    "run_id": run_id,
                    "record_key": key,
                    "from_state": before,
                    "to_state": to_state,
                    "job_id": fields.get("job_id"),
                },
            )

    def references(self) -> list[str]:
        """Every charge reference number tieout has ever staged (ours, wherever they went)."""
        rows = self.db.execute(
            "SELECT reference_number FROM records WHERE reference_number IS NOT NULL"
        ).fetchall()
        return [str(r[0]) for r in rows]

    def apply_outcomes(self, outcomes: pd.DataFrame, *, run_id: str | None = None) -> int:
        """Write reconcile's outcomes in one set-based statement: a temporary table of
        outcomes (``record_key``, ``state``, ``propexo_id``, ``found_amount_cents``, ``note``)
        joined to the records, an event for every record whose state changes, all in one
        transaction. Returns how many records changed state.

        The run log gets one line per kind of change with its count; the events table keeps
        every record's change (a million log lines would cost more than the write-back)."""
        if outcomes.empty:
            return 0
        unknown = set(outcomes["state"]) - set(STATES)
        if unknown:
            raise LedgerError(f"unknown state(s) {sorted(unknown)}")
        now = utcnow()
        rows = zip(
            _texts(outcomes["record_key"]),
            _texts(outcomes["state"]),
            _optional(outcomes, "propexo_id"),
            [
                None if pd.isna(v) else int(v)
                for v in outcomes.get("found_amount_cents", pd.Series(None, index=outcomes.index))
            ],
            _optional(outcomes, "note"),
            strict=True,
        )
        with self.transaction() as db:
            db.execute(
                "CREATE TEMP TABLE IF NOT EXISTS outcomes (record_key TEXT PRIMARY KEY, "
                "state TEXT NOT NULL, propexo_id TEXT, found_amount_cents INTEGER, note TEXT)"
            )
            db.execute("DELETE FROM temp.outcomes")
            db.executemany("INSERT INTO temp.outcomes VALUES (?, ?, ?, ?, ?)", rows)
            changes = db.execute(
                "SELECT r.state, o.state, count(*) FROM records r JOIN temp.outcomes o "
                "USING (record_key) WHERE r.state != o.state GROUP BY r.state, o.state"
            ).fetchall()
            db.execute(
                "INSERT INTO events(at, run_id, record_key, from_state, to_state, detail) "
                "SELECT ?, ?, r.record_key, r.state, o.state, "
                "'reconcile: ' || coalesce(o.note, o.state) "
                "FROM records r JOIN temp.outcomes o USING (record_key) WHERE r.state != o.state",
                (now, run_id),
            )
            db.execute(
                "UPDATE records SET state = o.state, propexo_id = o.propexo_id, "
                "found_amount_cents = o.found_amount_cents, note = o.note, reconciled_at = ?, "
                "updated_at = ? FROM temp.outcomes o WHERE records.record_key = o.record_key",
                (now, now),
            )
            db.execute("DELETE FROM temp.outcomes")
        for before, after, count in changes:
            log.info(
                "state change",
                extra={"run_id": run_id, "from_state": before, "to_state": after, "count": count},
            )
        return sum(int(c) for _, _, c in changes)

    def update_fields(self, key: str, **fields: Any) -> None:
        """Set fields without a state change (e.g. what reconcile found)."""
        sets = ", ".join(f"{name} = ?" for name in fields)
        self.db.execute(
            f"UPDATE records SET {sets}, updated_at = ? WHERE record_key = ?",
            [*(_db_value(v) for v in fields.values()), utcnow(), key],
        )

    def adopt(self, run_id: str, frame: pd.DataFrame) -> int:
        """Records Propexo already holds, entered as ``confirmed`` with their Propexo id and the
        content marker ADOPTED (`tieout ledger rebuild`). Only into a ledger with no records."""
        if not self.is_empty():
            raise LedgerError(
                f"the ledger {self.path} already holds records; rebuild only into a new ledger "
                "(move the file aside first)"
            )
        now = utcnow()
        rows = [
            (
                str(r["record_key"]),
                str(r["kind"]),
                run_id,
                "(adopted from Propexo)",
                "[]",
                str(r["integration_id"]),
                _none(r.get("location_id")),
                _none(r.get("reference_number")),
                _none(r.get("invoice_number")),
                _none(r.get("vendor_id")),
                _none(r.get("resident_id")),
                _none(r.get("charge_code_id")),
                _none(r.get("transaction_date")),
                int(r["amount_cents"]),
                ADOPTED,
                "{}",
                str(r["created_record_id"]),
                now,
                now,
                now,
            )
            for r in frame.to_dict("records")
        ]
        with self.transaction() as db:
            db.executemany(
                "INSERT OR IGNORE INTO records(record_key, kind, run_id, source_file, "
                "source_rows, integration_id, location_id, reference_number, invoice_number, "
                "vendor_id, resident_id, charge_code_id, transaction_date, amount_cents, "
                "content_hash, payload, state, created_record_id, created_at, updated_at, "
                "confirmed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                "'confirmed', ?, ?, ?, ?)",
                rows,
            )
            db.executemany(
                "INSERT INTO events(at, run_id, record_key, from_state, to_state, detail) "
                "VALUES (?, ?, ?, NULL, 'confirmed', 'adopted from Propexo by ledger rebuild')",
                ((now, run_id, row[0]) for row in rows),
            )
        return len(rows)

    def touched_keys(self, run_id: str) -> list[str]:
        """Records whose state a run changed, whichever run staged them (a run that only
        re-sent, followed jobs or settled doubt)."""
        rows = self.db.execute(
            "SELECT DISTINCT record_key FROM events WHERE run_id = ?", (run_id,)
        ).fetchall()
        return [str(r[0]) for r in rows]

    def is_empty(self) -> bool:
        """No record was ever staged here (a new ledger, or a lost one)."""
        return self.db.execute("SELECT 1 FROM records LIMIT 1").fetchone() is None

    def records(
        self,
        *,
        states: Iterable[str] | None = None,
        run_id: str | None = None,
        kinds: Iterable[str] | None = None,
        bodies: bool = True,
        columns: Sequence[str] | None = None,
    ) -> pd.DataFrame:
        """Records as a frame (payload and source_rows decoded). ``bodies=False`` leaves out
        the payload, source rows and errors; ``columns`` reads only those named: what matching
        needs, read in a fraction of the time (Python's sqlite3 pays per cell)."""
        where, params = [], []
        if states is not None:
            states = list(states)
            where.append(f"state IN ({','.join('?' * len(states))})")
            params += states
        if kinds is not None:
            kinds = list(kinds)
            where.append(f"kind IN ({','.join('?' * len(kinds))})")
            params += kinds
        if run_id is not None:
            where.append("run_id = ?")
            params.append(run_id)
        unknown = set(columns or ()) - set(RECORD_COLUMNS)
        if unknown:
            raise LedgerError(f"no such record column(s): {sorted(unknown)}")
        if columns is not None:
            selected = ", ".join(columns)  # only names from RECORD_COLUMNS, checked above
            bodies = bodies and "payload" in columns and "source_rows" in columns
        else:
            selected = "*" if bodies else ", ".join(c for c in RECORD_COLUMNS if c not in BODIES)
        sql = f"SELECT {selected} FROM records" + (f" WHERE {' AND '.join(where)}" if where else "")
        frame = pd.read_sql_query(sql + " ORDER BY rowid", self.db, params=params)
        if not frame.empty and bodies:
            # Charges store no body (it is built from their columns when posted): None.
            frame["payload"] = frame["payload"].map(lambda p: json.loads(p) if p else None)
            frame["source_rows"] = frame["source_rows"].map(json.loads)
        return frame

    def by_state(self, run_id: str | None = None) -> dict[str, dict[str, int]]:
        """State → {count, amount_cents}, over all records or one run's."""
        sql = "SELECT state, COUNT(*), COALESCE(SUM(amount_cents), 0) FROM records"
        params: tuple[str, ...] = ()
        if run_id is not None:
            sql += " WHERE run_id = ?"
            params = (run_id,)
        rows = self.db.execute(sql + " GROUP BY state", params).fetchall()
        return {state: {"count": int(n), "amount_cents": int(total)} for state, n, total in rows}

    def events(self, record_key: str) -> list[tuple[str, str | None, str, str | None]]:
        return [
            tuple(r)
            for r in self.db.execute(  # type: ignore[misc]
                "SELECT at, from_state, to_state, detail FROM events "
                "WHERE record_key = ? ORDER BY id",
                (record_key,),
            )
        ]


def _defaulted(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


STAGE_SLICE = 100_000


def _record_rows(
    new: pd.DataFrame, run_id: str, sha256: str | None, now: str
) -> Iterator[tuple[Any, ...]]:
    """The records table's rows for a frame of new records, built column by column."""
    payloads = new["payload"] if "payload" in new else pd.Series(None, index=new.index)
    # A charge's body is its columns (built when posted): no JSON text is stored for it.
    bodies = (
        _texts(payloads)
        if _all_text(payloads)
        else [
            p if isinstance(p, str) else "" if _opt(p) is None else json.dumps(p) for p in payloads
        ]
    )
    return zip(
        _texts(new["record_key"]),
        _texts(new["kind"]),
        repeat(run_id),
        repeat(sha256),
        _texts(new["source_file"]),
        _json_lists(new["source_rows"]),
        _texts(new["integration_id"]),
        _optional(new, "location_id"),
        _optional(new, "reference_number"),
        _optional(new, "invoice_number"),
        _optional(new, "vendor_id"),
        _optional(new, "resident_id"),
        _optional(new, "charge_code_id"),
        _optional(new, "transaction_date"),
        new["amount_cents"].astype("int64").tolist(),
        _texts(new["content_hash"]),
        bodies,
        repeat(now),
        repeat(now),
        (
            new["defaulted"].map(lambda v: "; ".join(_defaulted(v)) or None)
            if "defaulted" in new
            else repeat(None)
        ),
        _optional(new, "charge_notes"),
        strict=False,
    )


def _optional(frame: pd.DataFrame, column: str) -> list[str | None]:
    """A column as text, None where missing (or where the frame has no such column)."""
    if column not in frame:
        return [None] * len(frame)
    values = frame[column]
    if isinstance(values.dtype, pd.StringDtype):
        return _texts(values)
    return values.astype(object).where(values.notna(), None).map(_opt).tolist()


def _texts(values: pd.Series) -> list[Any]:
    """A column as a list of str (None where missing), converted in bulk."""
    if isinstance(values.dtype, pd.StringDtype):
        return pa.array(values.array).to_pylist()  # type: ignore[no-any-return]
    return values.astype(str).tolist()


def _json_lists(values: pd.Series) -> list[str]:
    """Lists of row numbers as JSON text (one-row lists, the common case, column-wise)."""
    if isinstance(values.dtype, pd.ArrowDtype):
        lengths = pc.list_value_length(pa.array(values.array))
        if pc.all(pc.equal(lengths, 1)).as_py():
            flat = pc.list_flatten(pa.array(values.array)).to_numpy()
            return ("[" + pd.Series(flat).astype(str) + "]").tolist()
    return [json.dumps([int(r) for r in rows]) for rows in values]


def _all_text(values: pd.Series) -> bool:
    return isinstance(values.dtype, pd.StringDtype) or all(isinstance(v, str) for v in values)


def _opt(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value)


def _db_value(value: Any) -> Any:
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return value


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
