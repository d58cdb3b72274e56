"""What tieout remembers of Propexo: reference data, fetched records, read cursors, and what
it can prove about Propexo's syncs. Also the ledger's own settings (``meta``)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from pipelines.core.models import utcnow
from pipelines.ledger.database import Database


@dataclass(frozen=True)
class SyncCursor:
    """Where reading one kind of Propexo's records got to: the newest ``updated_at`` seen, and
    the transaction-date window fetched whole (charges are read by date)."""

    newest: str | None = None
    window: tuple[str, str] | None = None

    def covers(self, start: str, end: str) -> bool:
        return self.window is not None and self.window[0] <= start and end <= self.window[1]


class CacheStore:
    """The ``meta``, ``refs``, ``synced``, ``cursors``, ``syncs`` and ``webhook_events`` tables."""

    db: Database

    # -- meta -----------------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row else None

    def set_meta(self, key: str, value: str) -> None:
        self.db.upsert("meta", ("key",), ("key", "value"), [(key, value)])

    def erase_meta(self, key: str) -> None:
        """Remove a setting so that its text is gone from the file too: SQLite overwrites
        what it deletes (``secure_delete``) and the WAL is checkpointed into the file."""
        sqlite = self.db.dialect == "sqlite"
        if sqlite:
            self.db.execute("PRAGMA secure_delete = ON")
        self.db.execute("DELETE FROM meta WHERE key = ?", (key,))
        if sqlite:
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    # -- read cursors ---------------------------------------------------------------------------

    def cursor(self, integration_id: str, kind: str) -> SyncCursor:
        row = self.db.execute(
            "SELECT newest, window_start, window_end FROM cursors "
            "WHERE integration_id = ? AND kind = ?",
            (integration_id, kind),
        ).fetchone()
        if row is None:
            return SyncCursor()
        window = (str(row[1]), str(row[2])) if row[1] is not None else None
        return SyncCursor(row[0], window)

    def save_cursor(self, integration_id: str, kind: str, cursor: SyncCursor) -> None:
        start, end = cursor.window or (None, None)
        self.db.upsert(
            "cursors",
            ("integration_id", "kind"),
            ("integration_id", "kind", "newest", "window_start", "window_end"),
            [(integration_id, kind, cursor.newest, start, end)],
        )

    # -- webhook deliveries -----------------------------------------------------------------------

    def record_delivery(self, digest: str, redelivery_s: float) -> bool:
        """A webhook delivery whose raw body has sha256 ``digest``: True when it is to be
        recorded, False when it is a redelivery of one recorded less than ``redelivery_s``
        ago with no sync asked of Propexo since (then only counted). Run inside the
        transaction that records it, so two deliveries at once are told apart."""
        self.db.serialize("tieout webhook deliveries")
        now = utcnow()
        row = self.db.execute(
            "SELECT recorded_at FROM webhook_deliveries WHERE digest = ?", (digest,)
        ).fetchone()
        if row is not None:
            asked = self.db.execute("SELECT max(requested_at) FROM syncs").fetchone()[0]
            recent = _seconds_between(str(row[0]), now) < redelivery_s
            if recent and (asked is None or str(asked) <= str(row[0])):
                self.db.execute(
                    "UPDATE webhook_deliveries SET deliveries = deliveries + 1, last_at = ? "
                    "WHERE digest = ?",
                    (now, digest),
                )
                return False
        self.db.upsert(
            "webhook_deliveries",
            ("digest",),
            ("digest", "recorded_at", "last_at", "deliveries"),
            [(digest, now, now, 1)],
        )
        return True

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
        with self.db.transaction():
            if schedule_id is None:
                row = self.db.execute(
                    "SELECT id, requested_at FROM syncs WHERE integration_id = ? "
                    "AND schedule_id IS NULL AND completed_at IS NULL AND requested_at <= ? "
                    "ORDER BY id LIMIT 1",
                    (integration_id, at),
                ).fetchone()
                if row is not None:
                    self.db.execute(
                        "UPDATE syncs SET completed_at = ?, finished = ?, models = ?, "
                        "started_after = requested_at WHERE id = ?",
                        (at, int(finished), models_text, row[0]),
                    )
                    return
                started_after = None
            else:
                started_after = self.db.execute(
                    "SELECT MAX(completed_at) FROM syncs WHERE integration_id = ? "
                    "AND schedule_id = ?",
                    (integration_id, schedule_id),
                ).fetchone()[0]
            self.db.execute(
                "INSERT INTO syncs(integration_id, schedule_id, completed_at, finished, models, "
                "started_after) VALUES (?, ?, ?, ?, ?, ?)",
                (integration_id, schedule_id, at, int(finished), models_text, started_after),
            )

    def proven_syncs(self, integration_id: str) -> pd.DataFrame:
        """Syncs known complete with a known earliest start: (started_after, completed_at,
        models as a list)."""
        frame = self.db.read_frame(
            "SELECT started_after, completed_at, models FROM syncs WHERE integration_id = ? "
            "AND finished = 1 AND started_after IS NOT NULL AND completed_at IS NOT NULL "
            "ORDER BY completed_at",
            (integration_id,),
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

    def last_webhook_at(self) -> str | None:
        """When the receiver last recorded a delivery (None: never)."""
        row = self.db.execute("SELECT MAX(at) FROM webhook_events").fetchone()
        return None if row is None or row[0] is None else str(row[0])

    def record_webhook(self, trigger: str, body: str) -> None:
        self.db.execute(
            "INSERT INTO webhook_events(at, trigger, body) VALUES (?, ?, ?)",
            (utcnow(), trigger, body),
        )

    # -- reference data cache --------------------------------------------------------------------

    def save_refs(self, integration_id: str, lists: dict[str, list[dict[str, Any]]]) -> None:
        self.db.upsert(
            "refs",
            ("integration_id",),
            ("integration_id", "fetched_at", "data"),
            [(integration_id, utcnow(), json.dumps(lists))],
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
        with self.db.transaction():
            self.db.upsert("synced", ("kind", "id"), ("kind", "id", "data"), rows)

    def mark_stale(self, kind: str, ids: Iterable[str]) -> None:
        """The records a recent sync no longer saw (deleted in the PMS); all others are fresh."""
        rows = [(kind, i) for i in ids]
        with self.db.transaction():
            self.db.execute("UPDATE synced SET stale = 0 WHERE kind = ?", (kind,))
            self.db.executemany("UPDATE synced SET stale = 1 WHERE kind = ? AND id = ?", rows)

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


def _seconds_between(earlier: str, later: str) -> float:
    """Seconds between two ledger timestamps (:func:`utcnow`'s text)."""
    from datetime import datetime

    def parse(text: str) -> datetime:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))

    return (parse(later) - parse(earlier)).total_seconds()
