"""Records: staged, moved through their states, written back from reconcile, read as frames.

Every state change for many keys is a few set-based statements (not one per key), with an
event per record in the same transaction, and is logged only once it has committed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import repeat
from typing import Any

import pandas as pd

from pipelines.core.columns import is_in
from pipelines.core.errors import LedgerError
from pipelines.core.kind import Kinds
from pipelines.core.logs import LOGGER
from pipelines.core.models import RecordState, utcnow
from pipelines.core.record_columns import RECORD
from pipelines.ledger.database import Database
from pipelines.ledger.rows import (
    chunks,
    db_value,
    optional_texts,
    staged_values,
    texts,
    whole_numbers,
)

log = logging.getLogger(LOGGER)
ADOPTED = "adopted"  # content_hash of a record taken over from Propexo: only its amount is known
STAGE_SLICE = 100_000  # records built into Python rows at a time while staging
KEYS_PER_STATEMENT = 500  # bound parameters per `IN (...)`, well under every engine's limit


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


class RecordStore:
    """The ``records`` and ``events`` tables."""

    db: Database
    _held: list[dict[str, Any]] | None = None  # state-change log entries awaiting a commit

    def stage_records(
        self,
        run_id: str,
        sha256: str | None,
        frame: pd.DataFrame,
        kinds: Kinds | None = None,
        said: list[str] | None = None,
    ) -> tuple[list[str], list[Conflict]]:
        """Add new records as ``ready``. A key already known with the same content is left alone
        (it was posted before); with different content it is a conflict, and never posted.

        First, in the same transaction, each kind of ``kinds`` that renumbers its records
        against the ledger's (:attr:`Kind.renumber`: a charge numbered in file order is
        matched by content, so the order of the file does not decide which line is which)
        updates ``frame``'s keys in place; what it tells a person is appended to ``said``."""
        if frame.empty:
            return [], []
        # Workers on several hosts may stage at once (PostgreSQL): which keys exist is read and
        # the new ones written in one transaction, one stager at a time.
        with self.db.transaction():
            self.db.serialize("tieout staging")
            told = self._renumber(frame, kinds)
            if said is not None:
                said += told
            keys = frame["record_key"].astype(str)
            known = self._known(keys)
            seen = is_in(keys, known)
            twins = _twins(keys) if known else keys
            twin_seen = ~seen & is_in(twins, known)
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
                        Conflict(
                            key, file, int(rows[0]), before[1], before[2], int(cents), before[3]
                        )
                    )
            seen = seen | twin_seen
            new = frame[~seen]
            if new.empty:
                return [], conflicts
            now = utcnow()
            staged = new["record_key"].astype(str).tolist()
            order = self.db.insertion_order
            last = self.db.execute(f"SELECT max({order}) FROM records").fetchone()[0]
            # Built column by column (a million records are written in seconds, not minutes),
            # a slice at a time, so only one slice's Python objects exist at once.
            for start in range(0, len(new), STAGE_SLICE):
                columns, rows = _record_rows(
                    new.iloc[start : start + STAGE_SLICE], run_id, sha256, now
                )
                self.db.insert_rows("records", columns, rows)
            # Their events are the rows just written (no other stager can write meanwhile).
            self.db.execute(
                "INSERT INTO events(at, run_id, record_key, to_state) "
                "SELECT created_at, run_id, record_key, 'ready' FROM records "
                f"WHERE {order} > ? AND run_id = ? AND created_at = ? ORDER BY {order}",
                (-1 if last is None else last, run_id, now),
            )
            return staged, conflicts

    def _renumber(self, frame: pd.DataFrame, kinds: Kinds | None) -> list[str]:
        told: list[str] = []
        if kinds is None:
            return told
        by_source = {kinds.record(str(name)).source_kind for name in frame["kind"].unique()}
        for kind in kinds:
            if kind.source_kind in by_source and kind.renumber is not None:
                told += kind.renumber(frame, self.read_where)
        return told

    def read_where(
        self, columns: Sequence[str], column: str, values: Sequence[str]
    ) -> pd.DataFrame:
        """``columns`` (and ``seq``, the order they were staged in) of every record whose
        ``column`` is one of ``values``. The names are the record model's, never a caller's
        text: an unknown one is refused."""
        known = set(RECORD.names())
        unknown = sorted({*columns, column} - known)
        if unknown:
            raise LedgerError(f"no record column {unknown}")
        order = self.db.insertion_order
        parts = [
            self.db.read_frame(
                f"SELECT {', '.join(columns)}, {order} AS seq FROM records "
                f"WHERE {column} IN ({_marks(chunk)})",
                chunk,
            )
            for chunk in chunks(sorted(values), KEYS_PER_STATEMENT)
        ]
        if not parts:
            return pd.DataFrame(columns=[*columns, "seq"])
        return pd.concat(parts, ignore_index=True)

    def _known(self, keys: pd.Series) -> dict[str, tuple[str, str, int, str]]:
        """Which of ``keys`` and their twins the ledger has: key → (content hash, first run,
        amount, payload). A ledger with fewer records than there are keys is read whole, key
        column only, and matched in bulk; a larger one is asked in chunks of keys."""
        size = self.db.execute("SELECT count(*) FROM records").fetchone()[0]
        if not size:
            return {}
        candidates = pd.concat([keys, _twins(keys)], ignore_index=True).unique()
        wanted: Sequence[str]
        if size < len(candidates):
            existing = self.db.read_frame("SELECT record_key FROM records")["record_key"]
            wanted = existing[is_in(existing, pd.Series(candidates))].tolist()
        else:
            wanted = [str(key) for key in candidates]
        known: dict[str, tuple[str, str, int, str]] = {}
        for chunk in chunks(wanted, KEYS_PER_STATEMENT):
            for key, digest, first_run, cents, payload in self.db.execute(
                "SELECT record_key, content_hash, run_id, amount_cents, payload FROM records "
                f"WHERE record_key IN ({_marks(chunk)})",
                chunk,
            ):
                known[key] = (digest, first_run, cents, payload)
        return known

    def transition(
        self,
        keys: Sequence[str],
        to_state: RecordState | str,
        *,
        run_id: str | None = None,
        detail: str | None = None,
        **fields: Any,
    ) -> None:
        """Move records to a new state, setting any settable column with it, with an event
        each, in one transaction: a few statements per 500 keys, however many keys."""
        state = _state(to_state)
        settable = RECORD.settable()
        unknown = set(fields) - set(settable)
        if unknown:
            raise LedgerError(f"a state change cannot set {sorted(unknown)}")
        names = [name for name in settable if name in fields]  # the ledger's names, in its order
        sets = ", ".join(["state = ?", "updated_at = ?", *(f"{name} = ?" for name in names)])
        now = utcnow()
        values = [state.value, now, *(db_value(fields[name]) for name in names)]
        changes: list[tuple[str, str]] = []
        with self.db.transaction():
            for chunk in chunks(list(dict.fromkeys(keys)), KEYS_PER_STATEMENT):
                marks = _marks(chunk)
                before = self.db.execute(
                    f"SELECT record_key, state FROM records WHERE record_key IN ({marks})", chunk
                ).fetchall()
                if len(before) != len(chunk):
                    missing = sorted(set(chunk) - {str(row[0]) for row in before})
                    raise LedgerError(f"no record {missing[0]!r} in the ledger")
                self.db.execute(
                    "INSERT INTO events(at, run_id, record_key, from_state, to_state, detail) "
                    "SELECT ?, ?, record_key, state, ?, ? FROM records "
                    f"WHERE record_key IN ({marks})",
                    [now, run_id, state.value, detail, *chunk],
                )
                self.db.execute(
                    f"UPDATE records SET {sets} WHERE record_key IN ({marks})", [*values, *chunk]
                )
                changes += [(str(key), str(was)) for key, was in before]
        entries = [
            {
                "run_id": run_id,
                "record_key": key,
                "from_state": was,
                "to_state": state.value,
                "job_id": fields.get("job_id"),
            }
            for key, was in changes
        ]
        if self._held is not None:
            self._held += entries  # logged when the enclosing together() block commits
            return
        for entry in entries:  # logged once committed: the log never runs ahead of the ledger
            log.info("state change", extra=entry)

    @contextmanager
    def together(self) -> Iterator[None]:
        """State changes made in the block commit as one transaction (one disk sync for many
        records, as posting's intents and outcomes are), and are logged once it has."""
        if self._held is not None:
            yield
            return
        self._held = []
        try:
            with self.db.transaction():
                yield
            held = self._held
        finally:
            self._held = None
        for entry in held:
            log.info("state change", extra=entry)

    def keys_of_job(self, job_id: str) -> list[str]:
        """The records whose write Propexo answered with this job (one request's)."""
        rows = self.db.execute(
            "SELECT record_key FROM records WHERE job_id = ?", (job_id,)
        ).fetchall()
        return [str(r[0]) for r in rows]

    def set_note(self, key: str, note: str) -> None:
        """A note on a record without a state change (what a lookup found)."""
        self.db.execute(
            "UPDATE records SET note = ?, updated_at = ? WHERE record_key = ?",
            (note, utcnow(), key),
        )

    def mark_orphans_in_doubt(self, run_id: str) -> int:
        """Records left ``sending`` by a process that is gone (the run lock is ours now): they
        are in doubt from now, the first moment anyone can know it."""
        now = utcnow()
        with self.db.transaction():
            changed = self.db.execute(
                "UPDATE records SET doubt_since = ?, updated_at = ? "
                "WHERE state = 'sending' AND doubt_since IS NULL",
                (now, now),
            ).rowcount
        return int(changed)

    def references(self, kinds: Sequence[str]) -> list[str]:
        """Every reference number tieout has ever staged for records of ``kinds`` (record
        kinds: one kind's references, ours wherever they went)."""
        if not kinds:
            return []
        rows = self.db.execute(
            "SELECT reference_number FROM records WHERE reference_number IS NOT NULL "
            f"AND kind IN ({_marks(list(kinds))})",
            list(kinds),
        ).fetchall()
        return [str(r[0]) for r in rows]

    def apply_outcomes(self, outcomes: pd.DataFrame, *, run_id: str | None = None) -> int:
        """Write reconcile's outcomes in one set-based statement: a temporary table of
        outcomes (``record_key``, ``state``, ``propexo_id``, ``found_amount_cents``, ``note``)
        joined to the records, an event for every record whose state changes, all in one
        transaction. Returns how many records changed state. An outcome for a record the
        ledger does not hold undoes the whole write-back.

        The run log gets one line per kind of change with its count; the events table keeps
        every record's change (a million log lines would cost more than the write-back)."""
        if outcomes.empty:
            return 0
        unknown = set(outcomes["state"].unique()) - set(RecordState)
        if unknown:
            raise LedgerError(f"unknown state(s) {sorted(unknown)}")
        if outcomes["record_key"].duplicated().any():
            raise LedgerError("two outcomes for one record")
        now = utcnow()
        rows = zip(
            texts(outcomes["record_key"]),
            texts(outcomes["state"]),
            optional_texts(outcomes, "propexo_id"),
            whole_numbers(outcomes.get("found_amount_cents"), len(outcomes)),
            optional_texts(outcomes, "note"),
            strict=True,
        )
        with self.db.transaction():
            # No key of its own (the outcomes are one per record, checked above): each one
            # finds its record by the records' key.
            self.db.execute(
                "CREATE TEMP TABLE IF NOT EXISTS outcome_rows (record_key TEXT NOT NULL, "
                "state TEXT NOT NULL, propexo_id TEXT, found_amount_cents INTEGER, note TEXT)"
            )
            self.db.execute("DELETE FROM outcome_rows")
            self.db.executemany("INSERT INTO outcome_rows VALUES (?, ?, ?, ?, ?)", rows)
            last = self.db.execute("SELECT max(id) FROM events").fetchone()[0]
            self.db.execute(
                "INSERT INTO events(at, run_id, record_key, from_state, to_state, detail) "
                "SELECT ?, ?, r.record_key, r.state, o.state, "
                "'reconcile: ' || coalesce(o.note, o.state) "
                "FROM outcome_rows o JOIN records r USING (record_key) "
                "WHERE r.state != o.state",
                (now, run_id),
            )
            changes = self.db.execute(
                "SELECT from_state, to_state, count(*) FROM events WHERE id > ? "
                "GROUP BY from_state, to_state",
                (-1 if last is None else last,),
            ).fetchall()
            updated = self.db.execute(
                "UPDATE records SET state = o.state, propexo_id = o.propexo_id, "
                "found_amount_cents = o.found_amount_cents, note = o.note, reconciled_at = ?, "
                "updated_at = ? FROM outcome_rows o WHERE records.record_key = o.record_key",
                (now, now),
            ).rowcount
            if updated != len(outcomes):
                raise LedgerError(
                    f"{len(outcomes) - updated} of reconcile's outcomes name no record in the "
                    "ledger: nothing was written back"
                )
            self.db.execute("DELETE FROM outcome_rows")
        for before, after, count in changes:
            log.info(
                "state change",
                extra={"run_id": run_id, "from_state": before, "to_state": after, "count": count},
            )
        return sum(int(c) for _, _, c in changes)

    def adopt(self, run_id: str, frame: pd.DataFrame) -> int:
        """Records Propexo already holds, entered as ``confirmed`` with their Propexo id and the
        content marker ADOPTED (`tieout ledger rebuild`). Into a ledger that already holds
        records, what Propexo proves is merged: a record it does not know is entered; one it
        holds never sent (``ready``, ``held``) is recorded as posted; any other is left as it
        is. Returns how many records were entered or recorded as posted."""
        if frame.empty:
            return 0
        known = self.records(states=None, columns=["record_key", "state"], bodies=False).set_index(
            "record_key"
        )["state"]
        given = frame["record_key"].astype(str)
        unsent = given[given.map(known).isin(["ready", "held"])].tolist()
        ids = dict(zip(given, optional_texts(frame, "created_record_id"), strict=True))
        for key in unsent:
            fields: dict[str, Any] = {"confirmed_at": utcnow()}
            if ids.get(key):
                fields["created_record_id"] = ids[key]
            self.transition(
                [key],
                "confirmed",
                run_id=run_id,
                detail="adopted from Propexo by ledger rebuild: it holds it; not sent",
                **fields,
            )
        frame = frame[~given.isin(set(known.index)).to_numpy()]
        if frame.empty:
            return len(unsent)
        now = utcnow()
        keys = texts(frame["record_key"])
        # Staged as any record is, less what only a file has: no file, rows, body or digest.
        columns, rows = _record_rows(
            frame,
            run_id,
            None,
            now,
            {
                "source_file": repeat("(adopted from Propexo)"),
                "source_rows": repeat("[]"),
                "content_hash": repeat(ADOPTED),
                "payload": repeat("{}"),
                "state": repeat("confirmed"),
                "created_record_id": optional_texts(frame, "created_record_id"),
                "confirmed_at": repeat(now),
            },
        )
        with self.db.transaction():
            self.db.executemany(
                f"INSERT INTO records({', '.join(columns)}) VALUES ({_marks(columns)}) "
                "ON CONFLICT(record_key) DO NOTHING",
                rows,
            )
            self.db.executemany(
                "INSERT INTO events(at, run_id, record_key, from_state, to_state, detail) "
                "VALUES (?, ?, ?, NULL, 'confirmed', 'adopted from Propexo by ledger rebuild')",
                ((now, run_id, key) for key in keys),
            )
        return len(keys) + len(unsent)

    def touched_keys(self, run_id: str) -> list[str]:
        """Records whose state a run changed, whichever run staged them (a run that only
        re-sent, followed jobs or settled doubt)."""
        rows = self.db.execute(
            "SELECT DISTINCT record_key FROM events WHERE run_id = ?", (run_id,)
        ).fetchall()
        return [str(r[0]) for r in rows]

    def newest_event_before(self, run_id: str) -> str | None:
        """When the ledger last recorded anything outside this run (None: never)."""
        row = self.db.execute(
            "SELECT MAX(at) FROM events WHERE run_id IS NULL OR run_id <> ?", (run_id,)
        ).fetchone()
        return None if row is None or row[0] is None else str(row[0])

    def is_empty(self) -> bool:
        """No record was ever staged here (a new ledger, or a lost one)."""
        return self.db.execute("SELECT 1 FROM records LIMIT 1").fetchone() is None

    def records(
        self,
        *,
        states: Iterable[RecordState | str] | None = None,
        run_id: str | None = None,
        kinds: Iterable[str] | None = None,
        bodies: bool = True,
        columns: Sequence[str] | None = None,
        files: Iterable[str] | None = None,
    ) -> pd.DataFrame:
        """Records as a frame (payload and source_rows decoded). ``bodies=False`` leaves out
        the payload, source rows and errors; ``columns`` reads only those named: what matching
        needs, read in a fraction of the time (Python's sqlite3 pays per cell)."""
        where: list[str] = []
        params: list[str] = []
        if states is not None:
            wanted = [_state(s).value for s in states]
            where.append(f"state IN ({_marks(wanted)})")
            params += wanted
        if kinds is not None:
            kinds = list(kinds)
            where.append(f"kind IN ({_marks(kinds)})")
            params += kinds
        if run_id is not None:
            where.append("run_id = ?")
            params.append(run_id)
        if files is not None:  # the records of these files (sha256), whichever run staged them
            shas = list(files)
            where.append(f"file_sha256 IN ({_marks(shas)})" if shas else "1 = 0")
            params += shas
        every = RECORD.names()
        unknown = set(columns or ()) - set(every)
        if unknown:
            raise LedgerError(f"no such record column(s): {sorted(unknown)}")
        if columns is not None:
            selected = ", ".join(columns)  # only the declared names, checked above
            bodies = bodies and "payload" in columns and "source_rows" in columns
        else:
            left_out = () if bodies else RECORD.bodies()
            selected = ", ".join(c for c in every if c not in left_out)
        sql = f"SELECT {selected} FROM records" + (f" WHERE {' AND '.join(where)}" if where else "")
        frame = self.db.read_frame(
            sql + f" ORDER BY {self.db.insertion_order}", params, integers=RECORD.integers()
        )
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

    def states_of(self, keys: Sequence[str]) -> dict[str, int]:
        """State → how many of these records are in it now."""
        counts: dict[str, int] = {}
        for chunk in chunks(list(dict.fromkeys(keys)), KEYS_PER_STATEMENT):
            for state, n in self.db.execute(
                f"SELECT state, COUNT(*) FROM records WHERE record_key IN ({_marks(chunk)}) "
                "GROUP BY state",
                chunk,
            ):
                counts[str(state)] = counts.get(str(state), 0) + int(n)
        return counts

    def events(self, record_key: str) -> list[tuple[str, str | None, str, str | None]]:
        rows = self.db.execute(
            "SELECT at, from_state, to_state, detail FROM events WHERE record_key = ? ORDER BY id",
            (record_key,),
        )
        return [(str(at), was, str(now), detail) for at, was, now, detail in rows]


def _state(value: RecordState | str) -> RecordState:
    try:
        return RecordState(value)
    except ValueError:
        raise LedgerError(f"unknown state {value!r}") from None


def _marks(values: Sequence[Any]) -> str:
    return ",".join("?" * len(values))


def _twins(keys: pd.Series) -> pd.Series:
    """Each key as its twin's (``Kind.twins``: a charge whose amount changed sign is a credit
    now, and the reverse: same number, other kind), so each key is also looked up as its
    twin; a key of a kind with no twin is itself."""
    twins = keys
    for kind, twin in RECORD.twins().items():
        prefix = f"{kind}:"
        twins = twins.mask(keys.str.startswith(prefix), twin + ":" + keys.str.slice(len(prefix)))
    return twins


def _record_rows(
    new: pd.DataFrame,
    run_id: str,
    sha256: str | None,
    now: str,
    given: dict[str, Iterable[Any]] | None = None,
) -> tuple[list[str], Iterator[tuple[Any, ...]]]:
    """The records table's rows for a frame of new records, built column by column: every
    column staging writes (as the declaration says it fills it), and ``given`` (values of
    columns by name, in place of or besides those). Returns the columns and the rows."""
    given = given or {}
    values = {
        column.name: (
            given[column.name]
            if column.name in given
            else staged_values(column, new, run_id, sha256, now)
        )
        for column in RECORD.staged()
    } | given
    return list(values), zip(*values.values(), strict=False)
