"""A lost ledger, rebuilt from what Propexo holds (`tieout ledger rebuild`), and the ledger
backups that make a rebuild rarely needed.

A rebuilt ledger knows every invoice Propexo holds for the integration, keyed by (vendor,
invoice number), and every resident charge and credit with a reference number in the date
range asked for, keyed by that number. Files dropped again then find their records already
posted (same amount) or in conflict (another amount); nothing is posted a second time.
What Propexo does not show yet (charges not synced since they were written) cannot be
adopted: the README says to wait for a sync before rebuilding.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd

from pipelines.config import Settings
from pipelines.errors import LedgerError
from pipelines.ledger import Ledger
from pipelines.lock import run_lock
from pipelines.propexo import make_client
from pipelines.refs import fetch_synced_charges, fetch_synced_invoices

Say = Callable[[str], None]


def adoptable(
    invoices: pd.DataFrame,
    charges: pd.DataFrame,
    integration_id: str,
    vendor_ids_by_x_id: dict[str, str],
) -> tuple[pd.DataFrame, int]:
    """Ledger rows for Propexo's records, keyed as tieout keys its own; and how many could not be
    keyed (an invoice of an unknown vendor, a charge without a reference number)."""
    rows = []
    skipped = 0
    for invoice in invoices.to_dict("records"):
        vendor_id = vendor_ids_by_x_id.get(str(invoice.get("x_vendor_id")))
        number = invoice.get("invoice_number")
        if vendor_id is None or not number:
            skipped += 1
            continue
        rows.append(
            {
                "record_key": f"invoice:{integration_id}:{vendor_id}:{number}",
                "kind": "invoice",
                "integration_id": integration_id,
                "invoice_number": str(number),
                "vendor_id": vendor_id,
                "amount_cents": int(invoice.get("total_amount_in_cents") or 0),
                "created_record_id": str(invoice["id"]),
            }
        )
    for charge in charges.to_dict("records"):
        reference = charge.get("reference_number")
        if not reference or pd.isna(reference):
            skipped += 1
            continue
        amount = int(charge.get("amount_in_cents") or 0)
        kind = "credit" if amount < 0 else "charge"
        rows.append(
            {
                "record_key": f"{kind}:{integration_id}:{reference}",
                "kind": kind,
                "integration_id": integration_id,
                "reference_number": str(reference),
                "resident_id": charge.get("resident_id"),
                "charge_code_id": charge.get("charge_code_id"),
                "transaction_date": str(charge.get("transaction_date") or "")[:10] or None,
                "amount_cents": amount,
                "created_record_id": str(charge["id"]),
            }
        )
    return pd.DataFrame(rows), skipped


def rebuild_ledger(
    settings: Settings, *, start: date | None = None, end: date | None = None, say: Say = print
) -> int:
    """Adopt Propexo's records into a new, empty ledger. Returns how many were adopted."""
    from pipelines.sync import reference_data, vendor_x_ids

    today = datetime.now(tz=UTC).date()
    reach = timedelta(days=settings.sync_window_days)
    start, end = start or today - reach, end or today + reach
    with run_lock(settings.lock_path, "ledger rebuild"):
        ledger = Ledger(settings.ledger)
        try:
            if not ledger.is_empty():
                raise LedgerError(
                    f"the ledger {settings.ledger_path} already holds records; rebuild only "
                    "into a new ledger (move the old file aside first)"
                )
            with make_client(settings) as client:
                refs = reference_data(ledger, client, settings)
                integration = settings.integration_id
                invoices = fetch_synced_invoices(client, integration)
                charges = fetch_synced_charges(
                    client, integration, start.isoformat(), end.isoformat()
                )
            by_x_id = {x: v for v, x in vendor_x_ids(refs).items()}
            frame, skipped = adoptable(invoices, charges, integration, by_x_id)
            run_id = "rebuild-" + datetime.now(tz=UTC).strftime("%Y%m%dT%H%M%SZ")
            adopted = ledger.adopt(run_id, frame) if not frame.empty else 0
        finally:
            ledger.close()
    say(
        f"adopted {adopted} records from Propexo ({len(invoices)} invoices; charges and "
        f"credits dated {start} to {end}); {skipped} could not be keyed (no reference number, "
        "or a vendor Propexo does not list) and were left out"
    )
    return adopted


def backup_ledger(settings: Settings, run_id: str) -> Path | None:
    """An online backup of the ledger after a run (SQLite's backup API: consistent while other
    readers work); the newest ``backups_kept`` are kept."""
    if settings.backups_kept <= 0 or not settings.ledger_path.exists():
        return None
    folder = settings.backups_dir
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"ledger-{run_id}.sqlite"
    source = sqlite3.connect(f"file:{settings.ledger_path}?mode=ro", uri=True)
    copy = sqlite3.connect(str(target))
    try:
        source.backup(copy)
    finally:
        copy.close()
        source.close()
    for old in sorted(folder.glob("ledger-*.sqlite"))[: -settings.backups_kept]:
        old.unlink()
    return target
