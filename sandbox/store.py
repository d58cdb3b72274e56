"""The sandbox's state: Propexo's cached records, the PMS side, and write jobs, in SQLite.

One table holds every record as JSON with its kind. ``synced`` says whether Propexo's cache has
it yet: the PMS side (``/_sandbox/records``) shows everything, the ``/v1`` lists only synced
records. Writes are applied when posted (as the PMS would), but reveal their outcome only once
``ready_at`` has passed.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REF_KINDS = {
    "integrations": "integration",
    "locations": "location",
    "properties": "property",
    "units": "unit",
    "residents": "resident",
    "leases": "lease",
    "vendors": "vendor",
    "charge_codes": "charge_code",
    "financial_accounts": "financial_account",
}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    id TEXT NOT NULL UNIQUE,
    integration_id TEXT,
    data TEXT NOT NULL,
    ready_at REAL NOT NULL DEFAULT 0,
    synced INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS records_kind ON records(kind, synced);
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    integration_id TEXT,
    job_type TEXT NOT NULL,
    write_category TEXT NOT NULL,
    status TEXT NOT NULL,
    errors TEXT NOT NULL,
    created_record_id TEXT,
    body TEXT NOT NULL,
    created_at TEXT NOT NULL,
    ready_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS webhooks (id TEXT PRIMARY KEY, data TEXT NOT NULL);
"""


def now_iso(at: float | None = None) -> str:
    """Propexo's timestamp form: ISO 8601, UTC, milliseconds, 'Z'."""
    moment = datetime.fromtimestamp(time.time() if at is None else at, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def new_id(prefix: str = "c") -> str:
    """A cuid-like id (25 characters, lower case)."""
    return (prefix + uuid.uuid4().hex)[:25]


@dataclass(frozen=True)
class Job:
    job_id: str
    integration_id: str | None
    job_type: str
    write_category: str
    status: str
    errors: list[str]
    created_record_id: str | None
    body: dict[str, Any]
    created_at: str
    ready_at: float


class Store:
    """Thread-safe access to the sandbox database."""

    def __init__(self, path: Path | str = ":memory:") -> None:
        self._lock = threading.RLock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- setup ----------------------------------------------------------------------------------

    def is_empty(self) -> bool:
        with self._lock:
            count: int = self._db.execute("SELECT COUNT(*) FROM records").fetchone()[0]
        return count == 0

    def load_seed(self, seed: dict[str, list[dict[str, Any]]]) -> int:
        """Load reference data (integrations, locations, properties, ... as Propexo shows them)."""
        count = 0
        with self._lock:
            self._db.execute("BEGIN")
            for key, kind in REF_KINDS.items():
                for given in seed.get(key, []):
                    record = {
                        "created_at": now_iso(),
                        "updated_at": now_iso(),
                        "last_seen": now_iso(),
                        **given,
                    }
                    self._db.execute(
                        "INSERT OR REPLACE INTO records(kind, id, integration_id, data, synced) "
                        "VALUES (?, ?, ?, ?, 1)",
                        (
                            kind,
                            record["id"],
                            record.get("integration_id", record["id"]),
                            json.dumps(record),
                        ),
                    )
                    count += 1
            self._db.execute("COMMIT")
        return count

    def reset(self, seed: dict[str, list[dict[str, Any]]] | None) -> None:
        """Forget every record and job, then load the seed again."""
        with self._lock:
            self._db.execute("DELETE FROM records")
            self._db.execute("DELETE FROM jobs")
            self._db.execute("DELETE FROM meta")
            self._db.execute("DELETE FROM webhooks")
        if seed:
            self.load_seed(seed)

    # -- records --------------------------------------------------------------------------------

    def records(self, kind: str, *, synced_only: bool = True) -> list[dict[str, Any]]:
        """Records of one kind in creation order (unsynced ones only when asked)."""
        sql = "SELECT data FROM records WHERE kind = ?"
        params: tuple[Any, ...] = (kind,)
        if synced_only:
            # Propexo's cache shows a written record only once its job has finished.
            sql += " AND synced = 1 AND ready_at <= ?"
            params = (kind, time.time())
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY seq", params).fetchall()
        return [json.loads(r[0]) for r in rows]

    def record(
        self, kind: str, record_id: str, *, synced_only: bool = True
    ) -> dict[str, Any] | None:
        sql = "SELECT data FROM records WHERE kind = ? AND id = ?"
        params: tuple[Any, ...] = (kind, record_id)
        if synced_only:
            sql += " AND synced = 1 AND ready_at <= ?"
            params = (kind, record_id, time.time())
        with self._lock:
            row = self._db.execute(sql, params).fetchone()
        return json.loads(row[0]) if row else None

    def next_number(self, name: str) -> int:
        """A per-sandbox counter (Rent Manager's own record numbers)."""
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (name,)).fetchone()
            value = int(row[0]) + 1 if row else 1
            self._db.execute(
                "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (name, str(value))
            )
        return value

    def apply_write(
        self, job: Job, created: list[tuple[str, dict[str, Any]]], *, synced: bool
    ) -> None:
        """Commit a job and the records it created, atomically."""
        with self._lock:
            self._db.execute("BEGIN")
            for kind, record in created:
                self._db.execute(
                    "INSERT INTO records(kind, id, integration_id, data, ready_at, synced) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        kind,
                        record["id"],
                        record.get("integration_id"),
                        json.dumps(record),
                        job.ready_at,
                        int(synced),
                    ),
                )
            self._db.execute(
                "INSERT INTO jobs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    job.job_id,
                    job.integration_id,
                    job.job_type,
                    job.write_category,
                    job.status,
                    json.dumps(job.errors),
                    job.created_record_id,
                    json.dumps(job.body),
                    job.created_at,
                    job.ready_at,
                ),
            )
            self._db.execute("COMMIT")

    def update_record(self, kind: str, record_id: str, changes: dict[str, Any]) -> bool:
        """Change fields of a record on the PMS side (test hook: someone edited it in RM)."""
        with self._lock:
            row = self._db.execute(
                "SELECT data FROM records WHERE kind = ? AND id = ?", (kind, record_id)
            ).fetchone()
            if not row:
                return False
            data = {**json.loads(row[0]), **changes, "updated_at": now_iso()}
            self._db.execute(
                "UPDATE records SET data = ? WHERE kind = ? AND id = ?",
                (json.dumps(data), kind, record_id),
            )
        return True

    def delete_record(self, kind: str, record_id: str) -> bool:
        """Someone deleted it in Rent Manager (test hook).

        A written record that Propexo already cached stays in the cache, marked deleted on the
        PMS side, and later syncs stop stamping its last_seen; anything else is simply gone.
        """
        with self._lock:
            if kind not in REF_KINDS.values():  # a written kind
                cur = self._db.execute(
                    "UPDATE records SET data = json_set(data, '$._deleted', json('true')) "
                    "WHERE kind = ? AND id = ? AND synced = 1",
                    (kind, record_id),
                )
                if cur.rowcount:
                    return True
            cur = self._db.execute(
                "DELETE FROM records WHERE kind = ? AND id = ?", (kind, record_id)
            )
        return cur.rowcount > 0

    def sync(
        self,
        integration_id: str | None,
        at: float,
        *,
        started_at: float | None = None,
        kinds: dict[str, str | None],
        window_days: float | None = None,
    ) -> int:
        """Propexo's data sync of the PMS into its cache, as seen by a sync that *started* at
        ``started_at`` (default ``at``) and finishes at ``at``.

        It sees only what was written before it started (a job still running then is missed),
        only the ``kinds`` of the models it syncs (stored kind: the field it is dated by, or
        None), and a dated kind only with that date within ``window_days`` of ``at``. Every
        record it sees gets ``last_seen`` = ``at``; nothing else stamps ``last_seen``.
        """
        started = at if started_at is None else started_at
        stamp = now_iso(at)
        window: tuple[str, str] | None = None
        if window_days is not None:
            window = (
                now_iso(at - window_days * 86400)[:10],
                now_iso(at + window_days * 86400)[:10],
            )
        made_visible = 0
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, kind, synced, data FROM records WHERE ready_at <= ? "
                "AND (? IS NULL OR integration_id = ?) "
                f"AND kind IN ({', '.join('?' * len(kinds))})",  # placeholders, one per kind
                (started, integration_id, integration_id, *kinds),
            ).fetchall()
            self._db.execute("BEGIN")
            for seq, kind, synced, data in rows:
                record = json.loads(data)
                if record.get("_deleted"):
                    continue  # gone from the PMS (last_seen frozen)
                dated_by = kinds[kind]
                day = str(record.get(dated_by) or "")[:10] if dated_by else ""
                if dated_by and window is not None and not (window[0] <= day <= window[1]):
                    continue  # outside the model's date window: this sync does not see it
                record["last_seen"] = stamp
                if not synced:
                    record["updated_at"] = stamp
                    made_visible += 1
                self._db.execute(
                    "UPDATE records SET synced = 1, data = ? WHERE seq = ?",
                    (json.dumps(record), seq),
                )
            self._db.execute(
                "INSERT OR REPLACE INTO meta(key, value) VALUES ('last_sync_at', ?)", (stamp,)
            )
            self._db.execute("COMMIT")
        return made_visible

    # -- webhooks -------------------------------------------------------------------------------

    def webhooks(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute("SELECT data FROM webhooks ORDER BY rowid").fetchall()
        return [json.loads(r[0]) for r in rows]

    def webhook(self, webhook_id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT data FROM webhooks WHERE id = ?", (webhook_id,)
            ).fetchone()
        return json.loads(row[0]) if row else None

    def save_webhook(self, webhook: dict[str, Any]) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO webhooks(id, data) VALUES (?, ?)",
                (webhook["id"], json.dumps(webhook)),
            )

    def delete_webhook(self, webhook_id: str) -> bool:
        with self._lock:
            cur = self._db.execute("DELETE FROM webhooks WHERE id = ?", (webhook_id,))
        return cur.rowcount > 0

    # -- jobs -----------------------------------------------------------------------------------

    def job(self, job_id: str) -> Job | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        return _job(row) if row else None

    def forget_jobs(self) -> int:
        """Test hook: Propexo no longer knows these jobs (expired, or another environment)."""
        with self._lock:
            cur = self._db.execute("DELETE FROM jobs")
        return cur.rowcount

    def age_jobs(self, seconds: float) -> int:
        """Test hook: every job written this much earlier (the write log then shows them as
        that old: time passed without a test waiting for it), and the records each created
        with it, so a finished job's records are as visible as its write-status says."""
        with self._lock:
            rows = self._db.execute("SELECT job_id, created_at, ready_at FROM jobs").fetchall()
            for job_id, created_at, ready_at in rows:
                moment = datetime.fromisoformat(str(created_at).replace("Z", "+00:00"))
                self._db.execute(
                    "UPDATE jobs SET created_at = ?, ready_at = ? WHERE job_id = ?",
                    (now_iso(moment.timestamp() - seconds), float(ready_at) - seconds, job_id),
                )
                self._db.execute(
                    "UPDATE records SET ready_at = ready_at - ? "
                    "WHERE json_extract(data, '$._job_id') = ?",
                    (seconds, job_id),
                )
        return len(rows)

    def jobs(self) -> list[Job]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM jobs ORDER BY created_at DESC").fetchall()
        return [_job(r) for r in rows]


def _job(row: tuple[Any, ...]) -> Job:
    return Job(
        row[0],
        row[1],
        row[2],
        row[3],
        row[4],
        json.loads(row[5]),
        row[6],
        json.loads(row[7]),
        row[8],
        row[9],
    )
