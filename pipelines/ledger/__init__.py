"""The ledger: tieout's own memory of every record.

Propexo has no idempotency keys, so the ledger is what makes posting exactly-once: a record's
*intent* (state ``sending``) is committed before its POST and its *outcome* after. After a crash,
``sending`` means *in doubt*: the record is looked up in Propexo before it may be sent again.
States are :class:`pipelines.core.models.RecordState`; every change is also written to ``events``.

The ledger is split by concern (records; runs and files; Propexo's cache, cursors and syncs)
over a small database seam (:mod:`pipelines.ledger.database`), SQLite by default.
"""

from __future__ import annotations

import threading
from contextlib import AbstractContextManager
from pathlib import Path

from pipelines.core.errors import LedgerError
from pipelines.core.models import utcnow
from pipelines.core.record_columns import RECORD
from pipelines.ledger import schema
from pipelines.ledger.cache import CacheStore, SyncCursor
from pipelines.ledger.database import Database, connect
from pipelines.ledger.items import ItemStore
from pipelines.ledger.layouts import LayoutStore
from pipelines.ledger.records import ADOPTED, STAGE_SLICE, Conflict, RecordStore
from pipelines.ledger.runs import RunStore

__all__ = [
    "ADOPTED",
    "RECORD_SCHEME",
    "STAGE_SLICE",
    "Conflict",
    "Ledger",
    "SyncCursor",
    "utcnow",
]

_CREATING = threading.Lock()

# Bumped when record keys or content digests are derived differently (2: column-wise
# fingerprints, tieout 2026-11-21; 3: charge numbers from identity, not amount, 2026-11-23).
RECORD_SCHEME = "3"


class Ledger(RecordStore, RunStore, CacheStore, LayoutStore, ItemStore):
    """The ledger at a URL (``sqlite:///data/ledger.sqlite``) or SQLite file path; every
    method commits before it returns. Use it as a context manager: closed however the block
    ends."""

    def __init__(self, target: str | Path, *, readonly: bool = False) -> None:
        """Open (creating when needed) the ledger; ``readonly`` never writes a byte to disk."""
        self.db: Database = connect(target, readonly=readonly)
        try:
            self._check_schema(readonly)
            schema.add_kind_columns(self.db)
            if not readonly:
                self._check_record_scheme()
        except Exception:
            self.db.close()
            raise

    @property
    def description(self) -> str:
        """The ledger in messages: its file, or its server (never a password)."""
        return self.db.description

    def lock(self, command: str, *, shared: bool = False) -> AbstractContextManager[None]:
        """Keep other commands off this ledger (:class:`LockHeldError` when taken). ``shared``:
        workers that may run side by side, on PostgreSQL (a SQLite ledger takes one at a time)."""
        return self.db.lock(command, shared=shared)

    def turn(self, integration_id: str) -> AbstractContextManager[None]:
        """Wait for this worker's turn to talk to Propexo for ``integration_id``, and hold it
        for the block: one worker at a time spends an integration's request budget and settles
        its records in doubt (none other can have a write in flight)."""
        return self.db.turn("propexo " + integration_id)

    def claim(self, sha256: str, name: str) -> AbstractContextManager[bool]:
        """Hold a dropped file for this worker during the block (False: another has it)."""
        return self.db.claim(sha256, name)

    def belongs_to(self, integration_id: str) -> None:
        """A ledger keeps one Propexo integration's records: its cache of Propexo's records,
        its syncs and its files are that integration's. Another integration is refused."""
        # A ledger from before this check names its integration in its records.
        first = self.db.execute("SELECT integration_id FROM records LIMIT 1").fetchone()
        self.db.execute(
            "INSERT INTO meta(key, value) VALUES ('integration_id', ?) ON CONFLICT(key) DO NOTHING",
            (first[0] if first else integration_id,),
        )
        owner = self.get_meta("integration_id")
        if owner != integration_id:
            raise LedgerError(
                f"the ledger {self.description} keeps the records of integration {owner}, not "
                f"{integration_id}: give each integration its own ledger_url (a database of "
                "its own on the same server)"
            )

    def _check_schema(self, readonly: bool) -> None:
        """A new ledger is created at the newest revision; an existing one opens only at
        exactly the revision this tieout knows, else one line says what to do."""
        from pipelines.ledger import migrations

        current, newest = schema.revision_of(self.db), migrations.head()
        if current is None:
            # Threads of one process (the webhook receiver, say) wait for each other here,
            # processes on the database's own lock: Alembic runs one migration at a time. Both
            # reads are made again under it: another worker may have just created the ledger
            # between them (its tables and revision appear at once, at its commit).
            with _CREATING, self.db.schema_lock():
                current = schema.revision_of(self.db)
                if current is None and schema.is_new(self.db):
                    if readonly:  # an in-memory copy, or a transaction rolled back at close
                        schema.create(self.db)
                    else:
                        migrations.upgrade(self.db.url)
                    return
        if current == newest:
            return
        if current is None or migrations.known(current):
            raise LedgerError(
                f"the ledger {self.description} has schema {current or 'from before migrations'}"
                f", older than this tieout's {newest}: back it up, then run "
                "`tieout ledger migrate`"
            )
        raise LedgerError(
            f"the ledger {self.description} has schema {current}, written by a newer tieout "
            f"than this one (which knows up to {newest}): use that tieout, or a newer one"
        )

    def _check_record_scheme(self) -> None:
        """Refuse a ledger whose records carry reference numbers derived the old way (those
        of the kinds whose numbers tieout derives, ``Kind.derived_numbers``: the charges):
        their files, dropped again, would get new numbers and be posted a second time."""
        scheme = self.get_meta("record_scheme")
        if scheme == RECORD_SCHEME:
            return
        derived = RECORD.derived()
        old_records = (
            derived
            and self.db.execute(
                f"SELECT COUNT(*) FROM records WHERE kind IN ({','.join('?' * len(derived))})",
                derived,
            ).fetchone()[0]
        )
        if scheme is None and not old_records:
            self.set_meta("record_scheme", RECORD_SCHEME)
            return
        raise LedgerError(
            f"the ledger {self.description} was written by an earlier tieout that derived charge "
            "reference numbers differently; its files dropped again could be posted twice. "
            "Finish its reconciliation with that version, then start a new ledger (move "
            "the file aside)"
        )

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
