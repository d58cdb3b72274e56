"""What is posted: a record's stored body, and the digest that says whether it changed.

Each kind encodes its own records (``pipelines/kinds/<kind>/payloads.py``): an invoice's body
is stored as JSON text in the ledger; a charge's is built from its ledger columns when it is
posted. A record's digest is compared with the one staged before, so a kind that changes its
scheme must read earlier records back through the new one before comparing (the invoice kind
does, through its ``renumber``: its lines became a multiset); otherwise every earlier record
would be a conflict (and the ledger's ``record_scheme`` would have to be bumped, refusing
every existing ledger).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def content_hash(payload: dict[str, Any]) -> str:
    """A stable digest of what is posted: the same key with a different digest is a conflict."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _as_dict(payload: Any) -> dict[str, Any]:
    """Payloads arrive as dicts (from the ledger) or JSON text (straight from transform)."""
    return json.loads(payload) if isinstance(payload, str) else dict(payload)


def stored_body(record: Any) -> dict[str, Any] | None:
    """The body stored with a record (its ``payload``), or None when it has none: what is
    posted then is its kind's to build."""
    payload = record.payload
    if isinstance(payload, dict) or (isinstance(payload, str) and payload):
        return _as_dict(payload)
    return None
