"""What is posted, encoded once per record kind, and the digest that says whether it changed.

- An invoice's body is a dict (its lines are few), stored as JSON text in the ledger; its
  digest is the sha256 of its canonical JSON, less the notes (which name the file).
- A charge's or credit's body is *not* stored: its parts are columns of the ledger (resident,
  charge code, date, notes, amount, reference), and :func:`request_body` builds it with
  ``json.dumps`` when its batch is posted, so a newline in the notes is escaped exactly as
  ``json.dumps`` escapes it. Its digest is a 64-bit fingerprint of those columns.

The two digests are kept as they are on purpose: a record's digest is compared with the one
staged before, and changing either scheme would make every earlier record a conflict (the
ledger's ``record_scheme`` would have to be bumped, refusing every existing ledger).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pipelines.kinds.charge.payloads import charge_body


def content_hash(payload: dict[str, Any]) -> str:
    """A stable digest of what is posted: the same key with a different digest is a conflict."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _as_dict(payload: Any) -> dict[str, Any]:
    """Payloads arrive as dicts (from the ledger) or JSON text (straight from transform)."""
    return json.loads(payload) if isinstance(payload, str) else dict(payload)


def request_body(record: Any) -> dict[str, Any]:
    """The stored body (invoices, and charges staged before bodies were built from columns),
    else one built from the record's columns."""
    payload = record.payload
    if isinstance(payload, dict) or (isinstance(payload, str) and payload):
        return _as_dict(payload)
    return charge_body(record)
