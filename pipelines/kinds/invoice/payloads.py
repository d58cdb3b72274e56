"""An invoice's body: a dict (its lines are few), stored as JSON text in the ledger; its
digest is the sha256 of its canonical JSON, less the notes (which name the file), with its
lines as a multiset (sorted by their own canonical JSON): the order of a file's rows is not
content, so a re-sorted export of the same bill has the same digest."""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

import pandas as pd

from pipelines.core.models import whole
from pipelines.core.record_columns import frame_of
from pipelines.kinds.invoice.columns import ATTRIBUTES
from pipelines.posting.payloads import content_hash


def encode_invoice(
    group: pd.DataFrame, integration_id: str, source_file: str, due_days_default: int
) -> dict[str, Any]:
    first = group.iloc[0]
    invoice_date = str(first["invoice_date"])
    defaulted: list[str] = []
    due = group["due_date"].dropna()
    if due.empty:
        due_date = (date.fromisoformat(invoice_date) + timedelta(days=due_days_default)).isoformat()
        defaulted.append(f"due_date = invoice date + {due_days_default} days")
    else:
        due_date = str(due.iloc[0])
    post = group["post_date"].dropna()
    if post.empty:
        post_date = invoice_date
        defaulted.append("post_date = invoice date")
    else:
        post_date = str(post.iloc[0])
    rows = [int(r) for r in group["source_row"]]
    items = [
        {
            "amount_in_cents": whole(line["amount_cents"]),
            "property_id": str(line["property_id"]),
            "financial_account_id": str(line["financial_account_id"]),
            **({"notes": str(line["description"])} if pd.notna(line["description"]) else {}),
        }
        for line in group.to_dict("records")
    ]
    total = sum(whole(item["amount_in_cents"]) for item in items)
    payload = {
        "integration_id": integration_id,
        "vendor_id": str(first["vendor_id"]),
        "location_id": str(first["location_id"]),
        "invoice_date": invoice_date,
        "due_date": due_date,
        "post_date": post_date,
        "total_amount_in_cents": total,
        "invoice_items": items,
        "invoice_number": str(first["invoice_number"]),
        "notes": f"tieout: {source_file} rows {_row_span(rows)}",
    }
    key = f"invoice:{integration_id}:{first['vendor_id']}:{first['invoice_number']}"
    return {
        "record_key": key,
        "kind": "invoice",
        "integration_id": integration_id,
        "vendor_id": str(first["vendor_id"]),
        "location_id": str(first["location_id"]),
        "invoice_number": str(first["invoice_number"]),
        # the bill's date, so an invoice shows a date and falls in its period as a charge does
        "transaction_date": invoice_date,
        "total_amount_in_cents": total,
        "amount_cents": total,
        "content_hash": invoice_digest(payload),
        "payload": payload,
        "source_rows": rows,
        "source_file": source_file,
        "defaulted": defaulted,
    }


def invoice_digest(payload: dict[str, Any]) -> str:
    """What an invoice says, order-free: its body less the notes (which name the file and its
    rows), its lines sorted. Posted bodies stored before lines were sorted give the same digest
    when read back through here (see :func:`pipelines.kinds.invoice.kind.renumber`)."""
    hashed = {k: v for k, v in payload.items() if k != "notes"}
    hashed["invoice_items"] = sorted(payload.get("invoice_items") or [], key=line_text)
    return content_hash(hashed)


def line_text(item: dict[str, Any]) -> str:
    """An invoice line as canonical JSON: what makes two lines the same line."""
    return json.dumps(item, sort_keys=True, separators=(",", ":"), default=str)


def _row_span(rows: list[int]) -> str:
    rows = sorted(rows)
    return f"{rows[0]}-{rows[-1]}" if len(rows) > 1 else str(rows[0])


# What transform yields: the kind's record frame (core/record_columns.py) plus one column
# the ledger does not keep.
INVOICE_COLUMNS = [*frame_of(ATTRIBUTES), "total_amount_in_cents"]
