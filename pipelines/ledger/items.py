"""Open items and their events (append-only), and the passes of files read again (#27)."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Collection, Iterable, Mapping
from typing import Any

import pandas as pd

from pipelines.core.models import OPEN, SEEN, SETTLED, SUPERSEDED, FileOutcome, OpenItem, utcnow
from pipelines.ledger.database import Database
from pipelines.ledger.runs import FILE_COLUMNS, insert_file_row

# A record's state → its item's cause (any other state that is an item: in doubt).
RECORD_CAUSES = {"refused": "write_refused", "failed": "write_failed", "held": "held"}
ANOTHER_WRITE = "answer for another write"  # posting.load's words for such an answer


def item_id(cause: str, file_sha256: str | None, what: object) -> str:
    """Stable: the same exception met again (a retry, the same file dropped again) is the same
    item. ``what`` is the row number, the name, or the record key."""
    text = f"{cause}|{file_sha256 or ''}|{what}"
    return "it-" + hashlib.sha256(text.encode()).hexdigest()[:12]


def record_items(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Records in doubt and writes Propexo refused, as items. Their state is the record's
    own (its events are the ledger's events): settled when `reconcile` or `resolve` settles
    the record. (A refused write made re-sendable is `tieout retry`'s to send: the hook.)"""
    out = []
    for record in records:
        state = str(record["state"])
        cause = RECORD_CAUSES.get(state, "in_doubt")
        another = [e for e in _errors(record.get("errors")) if e.startswith(ANOTHER_WRITE)]
        if cause == "in_doubt" and another:
            cause = "answer_for_another_write"
        rows = record.get("source_rows") or []
        if isinstance(rows, str):
            rows = json.loads(rows or "[]")
        out.append(
            {
                "item_id": item_id(cause, record.get("file_sha256"), record["record_key"]),
                "cause": cause,
                "file_sha256": record.get("file_sha256"),
                "file_name": record.get("source_file"),
                "rows": [int(r) for r in rows],
                "amount_cents": int(record.get("amount_cents") or 0),
                "amount_text": None,
                "detail": {
                    "record_key": record["record_key"],
                    "state": state,
                    "reasons": [str(record.get("note") or state), *another],
                },
                "first_seen": record.get("sent_at"),
                "last_seen": record.get("updated_at"),
                "state": OPEN,
            }
        )
    return out


def _errors(value: Any) -> list[str]:
    """A record's ``errors`` as read from the ledger (a list, or its JSON text)."""
    if isinstance(value, str):
        try:
            value = json.loads(value or "[]")
        except ValueError:
            return [value]
    return [str(e) for e in value] if isinstance(value, list) else []


# Every item with its current state: the item's newest event, and when it was last met.
_CURRENT = (
    "SELECT i.item_id, i.cause, i.file_sha256, i.file_name, i.sheet, i.source_rows, "
    "i.amount_cents, i.amount_text, i.detail, i.first_run_id, i.first_seen, "
    "e.state, e.at AS state_at, e.run_id AS state_run_id, e.decided_by, e.note, "
    "(SELECT max(s.at) FROM item_events s WHERE s.item_id = i.item_id "
    "AND s.state IN ('open', 'seen')) AS last_seen "
    "FROM open_items i JOIN item_events e ON e.id = "
    "(SELECT max(x.id) FROM item_events x WHERE x.item_id = i.item_id)"
)


class ItemStore:
    """The ``open_items``, ``item_events`` and ``file_passes`` tables. An item is written once;
    everything that happens to it after is an event."""

    db: Database

    def observe_items(
        self,
        run_id: str,
        items: Iterable[OpenItem],
        *,
        file_sha256: str | None = None,
        decides: Collection[str] = (),
        note: str = "",
    ) -> dict[str, int]:
        """What a run met: new items open, known open ones are seen again, settled ones met
        again open again. With ``file_sha256``, the open items of that file whose cause is in
        ``decides`` and that the run did not meet are settled by this run (their rows went
        through). Returns counts by what happened."""
        now = utcnow()
        met = {item.item_id: item for item in items}
        counts = {"opened": 0, "seen": 0, "settled": 0}
        with self.db.transaction():
            current = self._states(list(met))
            new = [item for key, item in met.items() if key not in current]
            self.db.executemany(
                "INSERT INTO open_items(item_id, cause, file_sha256, file_name, sheet, "
                "source_rows, amount_cents, amount_text, detail, first_run_id, first_seen) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(item_id) DO NOTHING",
                [
                    (
                        i.item_id,
                        i.cause,
                        i.file_sha256,
                        i.file_name,
                        i.sheet,
                        json.dumps(list(i.rows)),
                        int(i.amount_cents),
                        i.amount_text,
                        json.dumps(dict(i.detail), default=str),
                        run_id,
                        now,
                    )
                    for i in new
                ],
            )
            events: list[tuple[str, str, str, str, str | None, str | None]] = [
                (key, now, SEEN if current.get(key) == OPEN else OPEN, run_id, None, None)
                for key in met
            ]
            counts["opened"] = sum(e[2] == OPEN for e in events)
            counts["seen"] = len(events) - counts["opened"]
            if file_sha256 is not None and decides:
                gone = [
                    key for key, cause in self._open_of_file(file_sha256, decides) if key not in met
                ]
                events += [(key, now, SETTLED, run_id, None, note or None) for key in gone]
                counts["settled"] = len(gone)
            self._add_events(events)
        return counts

    def settle_item(
        self, item_id: str, *, run_id: str | None = None, by: str | None = None, note: str = ""
    ) -> None:
        """A person's decision (``by``), or a run's posting (``run_id``): settled, as an event."""
        self._add_events([(item_id, utcnow(), SETTLED, run_id, by, note or None)])

    def settle_unmet(
        self, run_id: str, causes: Collection[str], met: Collection[str], note: str
    ) -> int:
        """The open items of these causes that a run looked for and did not meet (a link gone
        from the inbox): settled by that run."""
        rows = self.db.execute(
            "SELECT i.item_id, i.cause FROM open_items i JOIN item_events e ON e.id = "
            "(SELECT max(x.id) FROM item_events x WHERE x.item_id = i.item_id) "
            "WHERE e.state IN ('open', 'seen')"
        ).fetchall()
        gone = [str(k) for k, c in rows if c in causes and str(k) not in met]
        now = utcnow()
        self._add_events([(key, now, SETTLED, run_id, None, note) for key in gone])
        return len(gone)

    def supersede_items(self, file_sha256s: Collection[str], run_id: str, note: str) -> int:
        """A corrected file replaces earlier ones: their open items are superseded."""
        now = utcnow()
        gone = [key for sha in file_sha256s for key, _ in self._open_of_file(sha, None)]
        self._add_events([(key, now, SUPERSEDED, run_id, None, note) for key in gone])
        return len(gone)

    def items(
        self,
        *,
        states: Collection[str] | None = (OPEN, SEEN),
        file_sha256: str | None = None,
        run_id: str | None = None,
    ) -> list[dict[str, Any]]:
        """Items with their current state (``open``: open or seen again), oldest first.
        ``run_id``: the items that run met (opened or saw again)."""
        sql = f"SELECT * FROM ({_CURRENT}) c"
        where: list[str] = []
        params: list[Any] = []
        if states is not None:
            where.append(f"c.state IN ({','.join('?' * len(states))})")
            params += list(states)
        if file_sha256 is not None:
            where.append("c.file_sha256 = ?")
            params.append(file_sha256)
        if run_id is not None:
            where.append(
                "c.item_id IN (SELECT item_id FROM item_events WHERE run_id = ? "
                "AND state IN ('open', 'seen'))"
            )
            params.append(run_id)
        if where:
            sql += " WHERE " + " AND ".join(where)
        frame = self.db.read_frame(sql + " ORDER BY c.first_seen, c.item_id", params)
        out = []
        for found in frame.to_dict("records"):
            row = {str(k): (None if _missing(v) else v) for k, v in found.items()}
            row["rows"] = json.loads(row.pop("source_rows") or "[]")
            row["detail"] = json.loads(row["detail"] or "{}")
            row["amount_cents"] = int(row["amount_cents"] or 0)
            row["state"] = OPEN if row["state"] == SEEN else row["state"]
            out.append(row)
        return out

    def runs_that_met(self, run_id: str | None, item_ids: list[str] | None = None) -> list[str]:
        """The other runs that met the items ``run_id`` settled or superseded (or these
        ``item_ids``): whose reports now say so."""
        if item_ids is None:
            rows = self.db.execute(
                "SELECT DISTINCT item_id FROM item_events WHERE run_id = ? "
                "AND state IN ('settled', 'superseded')",
                (run_id,),
            ).fetchall()
            item_ids = [str(r[0]) for r in rows]
        found: set[str] = set()
        for start in range(0, len(item_ids), 500):
            chunk = item_ids[start : start + 500]
            rows = self.db.execute(
                "SELECT DISTINCT run_id FROM item_events WHERE run_id IS NOT NULL "
                f"AND state IN ('open', 'seen') AND item_id IN ({','.join('?' * len(chunk))})",
                chunk,
            ).fetchall()
            found.update(str(r[0]) for r in rows)
        return sorted(found - {run_id} if run_id else found)

    def open_count(self, file_sha256: str, causes: Collection[str]) -> int:
        """How many of a file's items of these causes are open."""
        return len(self._open_of_file(file_sha256, causes))

    def approved(self, file_sha256: str) -> tuple[str, str] | None:
        """Who approved a file for posting, and when (None: nobody yet)."""
        row = self.db.execute(
            "SELECT e.decided_by, e.at FROM item_events e JOIN open_items i USING (item_id) "
            "WHERE i.file_sha256 = ? AND i.cause = 'awaiting_approval' AND e.state = ? "
            "AND e.decided_by IS NOT NULL ORDER BY e.id DESC LIMIT 1",
            (file_sha256, SETTLED),
        ).fetchone()
        return (str(row[0]), str(row[1])) if row else None

    def files_sharing_keys(self, keys: Collection[str], file_sha256: str) -> list[str]:
        """Earlier files that staged any of these record keys (a corrected file's originals)."""
        found: set[str] = set()
        listed = list(dict.fromkeys(keys))
        for start in range(0, len(listed), 500):
            chunk = listed[start : start + 500]
            rows = self.db.execute(
                "SELECT DISTINCT file_sha256 FROM records WHERE file_sha256 IS NOT NULL "
                f"AND file_sha256 != ? AND record_key IN ({','.join('?' * len(chunk))})",
                [file_sha256, *chunk],
            )
            found.update(str(r[0]) for r in rows)
        return sorted(found)

    def files_restated(self, keys: Collection[str], file_sha256: str) -> list[str]:
        """Earlier files of whose records ``keys`` restate more than half: the files a new one
        is a later version of (sharing a key or two makes another source, not a version: a
        parking sheet with one of the roll's charges does not replace the roll)."""
        wanted = set(keys)
        restated = []
        for sha in self.files_sharing_keys(wanted, file_sha256):
            theirs = {
                str(r[0])
                for r in self.db.execute(
                    "SELECT record_key FROM records WHERE file_sha256 = ?", [sha]
                )
            }
            if 2 * len(theirs & wanted) > len(theirs):
                restated.append(sha)
        return restated

    def files_named(self, name: str) -> pd.DataFrame:
        """Every file taken in under this name (or whose archived copy is this path)."""
        return self.db.read_frame(
            "SELECT * FROM files WHERE name = ? OR moved_to = ? ORDER BY processed_at",
            (name, name),
        )

    def file_of(self, sha256: str) -> dict[str, Any] | None:
        frame = self.db.read_frame("SELECT * FROM files WHERE sha256 = ?", (sha256,))
        return None if frame.empty else {str(k): v for k, v in frame.iloc[0].to_dict().items()}

    def record_pass(self, run_id: str, outcome: FileOutcome, moved_to: str | None) -> None:
        """A file read again (retried): its accounting in this run."""
        insert_file_row(self.db, "file_passes", run_id, outcome, moved_to)

    def passes_of(self, shas: Collection[str]) -> pd.DataFrame:
        """Every pass (retry) of these files, oldest first."""
        listed = list(shas) or [""]
        return self.db.read_frame(
            f"SELECT {FILE_COLUMNS} FROM file_passes WHERE sha256 IN "
            f"({','.join('?' * len(listed))}) ORDER BY processed_at",
            listed,
        )

    def passes(self, run_id: str) -> pd.DataFrame:
        return self.db.read_frame(
            f"SELECT {FILE_COLUMNS} FROM file_passes WHERE run_id = ? ORDER BY processed_at",
            (run_id,),
        )

    def _states(self, keys: list[str]) -> dict[str, str]:
        states: dict[str, str] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            rows = self.db.execute(
                "SELECT e.item_id, e.state FROM item_events e WHERE e.id IN "
                "(SELECT max(id) FROM item_events "
                f"WHERE item_id IN ({','.join('?' * len(chunk))}) GROUP BY item_id)",
                chunk,
            )
            states.update({str(k): str(s) for k, s in rows})
        return {k: OPEN if s == SEEN else s for k, s in states.items()}

    def _open_of_file(
        self, file_sha256: str, causes: Collection[str] | None
    ) -> list[tuple[str, str]]:
        rows = self.db.execute(
            "SELECT i.item_id, i.cause FROM open_items i JOIN item_events e ON e.id = "
            "(SELECT max(x.id) FROM item_events x WHERE x.item_id = i.item_id) "
            "WHERE i.file_sha256 = ? AND e.state IN ('open', 'seen')",
            (file_sha256,),
        ).fetchall()
        return [(str(k), str(c)) for k, c in rows if causes is None or c in causes]

    def _add_events(self, events: list[tuple[Any, ...]]) -> None:
        if not events:
            return
        with self.db.transaction():
            self.db.executemany(
                "INSERT INTO item_events(item_id, at, state, run_id, decided_by, note) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                events,
            )


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
