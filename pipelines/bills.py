"""Vendor bills → invoices: what is particular to them at every stage (see :mod:`flows`).

An invoice is one request of its own, read back from Propexo at once (Rent Manager invoices
are readable right after the write), and known by (vendor, invoice number).
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date
from typing import Any

import pandas as pd

from pipelines.config import Settings
from pipelines.extract import own_period
from pipelines.ledger import Conflict, Ledger, SyncCursor
from pipelines.models import (
    ExtractResult,
    Issue,
    IssueCode,
    PostRequest,
    ValidateResult,
    whole,
)
from pipelines.parsing import format_cents
from pipelines.payloads import request_body
from pipelines.propexo import PropexoClient
from pipelines.reconcile import match_invoices
from pipelines.refs import INVOICE_FIELDS, RefData, fetch_synced_invoices, newest_stamp
from pipelines.transform import transform_bills
from pipelines.validate import validate_bills
from schemas.vendor_bill import InvoicePayload

PAYLOAD_SCHEMA = InvoicePayload
SYNCED_FIELDS = INVOICE_FIELDS
WRITE_PATH = "/v1/invoices/rentmanager/"
READ_PATH = "/v1/invoices/"


def prepare(
    extract: ExtractResult, settings: Settings, refs: RefData | None
) -> tuple[ExtractResult, list[Issue]]:
    """Bills carry their own dates: the file's own period is only reported."""
    period, source = own_period(extract)
    return replace(extract, period=period, period_source=source if period else None), []


def validate(extract: ExtractResult, period: date | None) -> ValidateResult:
    return validate_bills(extract)


def transform(
    validated: ValidateResult,
    refs: RefData,
    settings: Settings,
    source_file: str,
    period: date | None,
) -> tuple[pd.DataFrame, list[Issue]]:
    result = transform_bills(
        validated,
        refs,
        integration_id=settings.integration_id,
        source_file=source_file,
        due_days_default=settings.due_days_default,
    )
    return result.invoices, result.issues


def plan_requests(ready: pd.DataFrame, batch_size: int) -> list[PostRequest]:
    """One request per invoice."""
    return [
        PostRequest(
            WRITE_PATH,
            request_body(record),
            [str(record.record_key)],
            "invoice",
            str(record.location_id),
            whole(record.amount_cents),
        )
        for record in ready.itertuples(index=False)
    ]


def refresh(
    ledger: Ledger, client: PropexoClient, settings: Settings, records: pd.DataFrame
) -> None:
    """Propexo's invoices changed since the newest one seen (all of them the first time)."""
    integration = settings.integration_id
    cursor = ledger.cursor(integration, "invoice")
    fetched = fetch_synced_invoices(
        client, integration, **({"updated_at_gte": cursor.newest} if cursor.newest else {})
    )
    ledger.upsert_synced("invoice", fetched)
    newest = newest_stamp(fetched, "updated_at")
    if newest and newest > (cursor.newest or ""):
        ledger.save_cursor(integration, "invoice", SyncCursor(newest))


def gone(
    ledger: Ledger, client: PropexoClient, settings: Settings, latest: pd.Series, cutoff: str
) -> pd.DataFrame:
    """Invoices the latest proven sync did not see."""
    return fetch_synced_invoices(client, settings.integration_id, last_seen_lte=cutoff)


def found(
    records: pd.DataFrame, synced: pd.DataFrame, vendor_x_ids: dict[str, str]
) -> dict[str, str]:
    """Which invoices Propexo holds, by (vendor, invoice number): record key → Propexo id."""
    if records.empty or synced.empty:
        return {}
    by_number = dict(
        zip(
            zip(
                synced["x_vendor_id"].astype(str),
                synced["invoice_number"].astype(str),
                strict=True,
            ),
            synced["id"].astype(str),
            strict=True,
        )
    )
    hits: dict[str, str] = {}
    for key, vendor_id, number in zip(
        records["record_key"], records["vendor_id"], records["invoice_number"], strict=True
    ):
        hit = by_number.get((vendor_x_ids.get(str(vendor_id), ""), str(number)))
        if hit is not None:
            hits[str(key)] = hit
    return hits


def find_in_doubt(
    client: PropexoClient, ledger: Ledger, doubt: pd.DataFrame, vendor_x_ids: dict[str, str]
) -> tuple[dict[str, str | None], set[str]]:
    """Invoices in doubt looked up at once, by (vendor, invoice number), per location."""
    hits: dict[str, str | None] = {}
    for location_id, group in doubt.groupby("location_id"):
        listed = client.list_all(
            READ_PATH,
            {"integration_id": group["integration_id"].iloc[0], "location_id": location_id},
        )
        by_key = {(str(i.get("x_vendor_id")), str(i.get("invoice_number"))): i for i in listed}
        for record in group.itertuples(index=False):
            hit = by_key.get(
                (vendor_x_ids.get(str(record.vendor_id), ""), str(record.invoice_number))
            )
            if hit is not None:
                hits[str(record.record_key)] = str(hit["id"])
    return hits, set()


def match(
    records: pd.DataFrame,
    synced: pd.DataFrame,
    vendor_x_ids: dict[str, str],
    verdict: pd.Series | None,
) -> pd.DataFrame:
    return match_invoices(records, synced, vendor_x_ids, verdict)


def unexpected(records: pd.DataFrame, synced: pd.DataFrame) -> int:
    """Invoices carry no tieout reference: none can be told to be ours but unknown."""
    return 0


def conflict_issues(conflict: Conflict, record: pd.Series, file_name: str) -> list[Issue]:
    """A corrected bill: each line whose amount, property, account or note differs from what
    was posted (or every line, when lines were added or removed)."""
    was = format_cents(conflict.previous_cents, "dollar")
    now = format_cents(conflict.cents, "dollar")
    rows = [int(r) for r in record["source_rows"]]
    try:
        before = json.loads(conflict.previous_payload)["invoice_items"]
    except (ValueError, KeyError, TypeError):
        before = []
    after = record["payload"]["invoice_items"]
    head = f"invoice {record['invoice_number']} was posted in run {conflict.first_run_id}"
    advice = (
        "Not posted: correct the invoice in Rent Manager, or give the corrected bill a new number"
    )
    if len(before) != len(after):
        changed = [
            (row, f"it had {len(before)} lines ({was}), this file has {len(after)} ({now})")
            for row in rows
        ]
    else:
        changed = [
            (row, _line_change(old, new))
            for row, old, new in zip(rows, before, after, strict=True)
            if old != new
        ] or [(rows[0], f"its dates or location changed (total {was}, now {now})")]
    return [
        Issue(IssueCode.CONFLICT, f"{head}; {change}. {advice}", file_name, row, None, None)
        for row, change in changed
    ]


def _line_change(old: dict[str, Any], new: dict[str, Any]) -> str:
    was, now = old.get("amount_in_cents"), new.get("amount_in_cents")
    if was != now and isinstance(was, int) and isinstance(now, int):
        return f"this line was {format_cents(was, 'dollar')}, now {format_cents(now, 'dollar')}"
    return "this line's property, GL account or description changed"


def fetch_all(client: PropexoClient, integration_id: str, start: date, end: date) -> pd.DataFrame:
    """Every invoice Propexo holds for the integration (``tieout ledger rebuild``)."""
    return fetch_synced_invoices(client, integration_id)


def adopt(
    synced: pd.DataFrame, integration_id: str, vendor_ids_by_x_id: dict[str, str]
) -> tuple[list[dict[str, Any]], int]:
    """Ledger rows for Propexo's invoices, keyed as tieout keys its own; and how many could
    not be keyed (an invoice of a vendor Propexo does not list, or without a number)."""
    rows = []
    skipped = 0
    for invoice in synced.to_dict("records"):
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
    return rows, skipped
