"""Vendor bills → invoices: what is particular to them at every stage, as the
:class:`~pipelines.core.kind.Kind` it registers (posting one request per invoice, its read
cursor, what a sync no longer sees and `ledger rebuild`'s read are the common case's:
:mod:`pipelines.kinds.common`).

An invoice is one request of its own, read back from Propexo at once (Rent Manager invoices
are readable right after the write), and known by (vendor, invoice number).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

import pandas as pd

from pipelines.core.hints import CORRECT_INVOICE
from pipelines.core.kind import Draft, KindContext, ReadWhere
from pipelines.core.models import Issue, IssueCode
from pipelines.core.parsing import format_cents
from pipelines.core.references import NameKind, RefList
from pipelines.kinds import register
from pipelines.kinds.common import define
from pipelines.kinds.invoice.columns import ATTRIBUTES
from pipelines.kinds.invoice.matching import match_invoices
from pipelines.kinds.invoice.payloads import INVOICE_COLUMNS, invoice_digest, line_text
from pipelines.kinds.invoice.schemas import (
    SOURCE_COLUMNS,
    SOURCE_KIND,
    InvoicePayload,
    SyncedInvoice,
    VendorBill,
)
from pipelines.kinds.invoice.transform import transform_bills
from pipelines.kinds.invoice.validate import validate_bills
from pipelines.ledger import Conflict
from pipelines.posting.payloads import stored_body

WRITE_PATH = "/v1/invoices/rentmanager/"
READ_PATH = "/v1/invoices/"


# Its validating and transform, under the names `define` takes them by.
validate = validate_bills
transform = transform_bills


def lines(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """An invoice's lines, as the report and trace show them."""
    return [
        {
            "amount_cents": item.get("amount_in_cents"),
            "property_id": item.get("property_id"),
            "account_id": item.get("financial_account_id"),
        }
        for item in body.get("invoice_items") or []
    ]


def vendor_x_ids(ctx: KindContext) -> dict[str, str]:
    """Propexo vendor id → the vendor's Rent Manager id (what Propexo's invoices carry), from
    the context's reference data (none without it)."""

    def build() -> dict[str, str]:
        vendors = ctx.refs.vendors if ctx.refs is not None else None
        if vendors is None:
            return {}
        return dict(zip(vendors["id"].astype(str), vendors["x_id"].astype(str), strict=True))

    found: dict[str, str] = ctx.remembered("invoice vendor_x_ids", build)
    return found


def found(records: pd.DataFrame, synced: pd.DataFrame, ctx: KindContext) -> dict[str, str]:
    """Which invoices Propexo holds, by (vendor, invoice number): record key → Propexo id."""
    if records.empty or synced.empty:
        return {}
    x_ids = vendor_x_ids(ctx)
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
        hit = by_number.get((x_ids.get(str(vendor_id), ""), str(number)))
        if hit is not None:
            hits[str(key)] = hit
    return hits


def find_in_doubt(ctx: KindContext, doubt: pd.DataFrame) -> tuple[dict[str, str | None], set[str]]:
    """Invoices in doubt looked up at once, by (vendor, invoice number), per location."""
    client, x_ids = ctx.needs_client(), vendor_x_ids(ctx)
    hits: dict[str, str | None] = {}
    for location_id, group in doubt.groupby("location_id"):
        listed = client.list_all(
            READ_PATH,
            {"integration_id": group["integration_id"].iloc[0], "location_id": location_id},
        )
        by_key = {(str(i.get("x_vendor_id")), str(i.get("invoice_number"))): i for i in listed}
        for record in group.itertuples(index=False):
            hit = by_key.get((x_ids.get(str(record.vendor_id), ""), str(record.invoice_number)))
            if hit is not None:
                hits[str(record.record_key)] = str(hit["id"])
    return hits, set()


def match(
    records: pd.DataFrame, synced: pd.DataFrame, ctx: KindContext, verdict: pd.Series | None
) -> pd.DataFrame:
    return match_invoices(records, synced, vendor_x_ids(ctx), verdict)


def conflict_issues(conflict: Conflict, record: pd.Series, file_name: str) -> list[Issue]:
    """A corrected bill, compared with what was posted line by line, its lines a multiset: a
    line found in both (wherever it is in the file) is unchanged and silent; each line that
    differs is one issue, on its own row, with that line's old and new amount."""
    rows = [int(r) for r in record["source_rows"]]
    try:
        before = list(json.loads(conflict.previous_payload)["invoice_items"])
    except (ValueError, KeyError, TypeError):
        before = []
    after = list(zip(rows, record["payload"]["invoice_items"], strict=True))
    head = f"invoice {record['invoice_number']} was posted in run {conflict.first_run_id}"
    changed = line_changes(before, after) or [
        (
            rows[0],
            "its dates or location changed (total "
            f"{format_cents(conflict.previous_cents, 'dollar')}, "
            f"now {format_cents(conflict.cents, 'dollar')})",
        )
    ]
    return [
        Issue(
            IssueCode.CONFLICT,
            f"{head}; {change}. Not posted: {CORRECT_INVOICE}",
            file_name,
            row,
            None,
            None,
        )
        for row, change in changed
    ]


def line_changes(
    before: list[dict[str, Any]], after: list[tuple[int, dict[str, Any]]]
) -> list[tuple[int, str]]:
    """(row, what changed) for each line of ``after`` (row, line) that ``before`` (the posted
    lines) does not hold, as multisets: a changed line is paired with a posted line of the
    same property, account and description (else the next one left) to show its old amount;
    a posted line no line of the file pairs with is said on the bill's first row."""
    left = Counter(line_text(line) for line in before)
    added: list[tuple[int, dict[str, Any]]] = []
    for row, line in after:
        text = line_text(line)
        if left[text] > 0:
            left[text] -= 1
        else:
            added.append((row, line))
    removed = [line for line in before if _take(left, line_text(line))]
    changes: list[tuple[int, str]] = []
    for row, line in added:
        partner = next((old for old in removed if _same_place(old, line)), None)
        if partner is None and removed:
            partner = removed[0]
        if partner is None:
            changes.append((row, f"this line ({_amount(line)}) is new on the bill"))
            continue
        removed.remove(partner)
        changes.append((row, _line_change(partner, line)))
    first = min((row for row, _ in after), default=0)
    changes += [(first, f"a posted line of {_amount(old)} is not in this file") for old in removed]
    return sorted(changes)


def _take(left: Counter[str], text: str) -> bool:
    if left[text] > 0:
        left[text] -= 1
        return True
    return False


def _same_place(old: dict[str, Any], new: dict[str, Any]) -> bool:
    return all(old.get(k) == new.get(k) for k in ("property_id", "financial_account_id", "notes"))


def _amount(line: dict[str, Any]) -> str:
    cents = line.get("amount_in_cents")
    return format_cents(cents, "dollar") if isinstance(cents, int) else "an unknown amount"


def _line_change(old: dict[str, Any], new: dict[str, Any]) -> str:
    was, now = old.get("amount_in_cents"), new.get("amount_in_cents")
    if was != now and isinstance(was, int) and isinstance(now, int):
        return f"this line was {format_cents(was, 'dollar')}, now {format_cents(now, 'dollar')}"
    return f"this line's ({_amount(new)}) property, GL account or description changed"


# What staging reads of the invoices posted before (:func:`renumber`).
POSTED_COLUMNS = ("record_key", "content_hash", "payload")


def renumber(frame: pd.DataFrame, read_where: ReadWhere) -> list[str]:
    """The invoice kind's :attr:`Kind.renumber`: keys are final (vendor and number), but a
    posted invoice whose stored body says what a line of ``frame`` says (its lines as a
    multiset; a body digested before lines were sorted) lends ``frame`` its digest, so an
    unchanged bill is never a conflict whatever scheme digested it. Says nothing."""
    if "invoice_number" not in frame.columns or frame.empty:
        return []
    ours = frame["kind"].astype(str).eq("invoice").to_numpy(dtype=bool)
    keys = sorted(set(frame.loc[ours, "record_key"].astype(str)))
    if not keys:
        return []
    posted = read_where(POSTED_COLUMNS, "record_key", keys)
    # key → the posted digest, where it differs from the posted body's order-free digest
    lent: dict[str, tuple[str, str]] = {}
    for key, digest, payload in zip(
        posted["record_key"], posted["content_hash"], posted["payload"], strict=True
    ):
        body = stored_body(SimpleNamespace(payload=payload))
        if body is not None and invoice_digest(body) != str(digest):
            lent[str(key)] = (invoice_digest(body), str(digest))
    for index in frame.index[ours]:
        same, digest = lent.get(str(frame.at[index, "record_key"]), ("", ""))
        if same and frame.at[index, "content_hash"] == same:
            frame.at[index, "content_hash"] = digest
    return []


def as_read(item: dict[str, Any], ctx: KindContext) -> dict[str, Any]:
    """A posted invoice as Propexo's read model shows it: the vendor's PMS id, no id yet."""
    return {**item, "id": None, "x_vendor_id": vendor_x_ids(ctx).get(str(item.get("vendor_id")))}


def adopt(synced: pd.DataFrame, ctx: KindContext) -> tuple[list[dict[str, Any]], int]:
    """Ledger rows for Propexo's invoices, keyed as tieout keys its own; and how many could
    not be keyed (an invoice of a vendor Propexo does not list, or without a number)."""
    integration_id = ctx.integration_id
    vendor_ids_by_x_id = {x: v for v, x in vendor_x_ids(ctx).items()}
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


def identity(item: Mapping[str, Any]) -> str | None:
    """An invoice is known by its vendor and number (a posted body, or a ledger row)."""
    vendor, number = item.get("vendor_id"), item.get("invoice_number")
    return f"inv:{vendor}|{number}" if isinstance(vendor, str) and vendor and number else None


KIND = register(
    define(
        globals(),
        source_kind=SOURCE_KIND,
        record_kinds=("invoice",),
        plural="invoices",
        post_order=10,  # before charges, as Rent Manager's vendors' bills come first
        ref_lists=(
            RefList("vendors", "/v1/vendors/", ("id", "x_id", "name", "x_location_id")),
            RefList(
                "financial_accounts",
                "/v1/financial-accounts/",
                ("id", "account_number", "name", "x_location_id"),
            ),
        ),
        name_kinds=(
            NameKind(
                "vendor",
                refs="vendors",
                file="vendors",
                names=(("name",),),
                label="name",
                column="vendor_id",
                what="vendor",
                code=IssueCode.UNKNOWN_VENDOR,
            ),
            NameKind(
                "gl_account",
                refs="financial_accounts",
                file="gl_accounts",
                # "4000", "Repairs" or "4000 Repairs"
                names=(("account_number",), ("name",), ("account_number", "name")),
                label="name",
                column="financial_account_id",
                what="GL account",
                code=IssueCode.UNKNOWN_GL_ACCOUNT,
                compare="text",
            ),
        ),
        columns=ATTRIBUTES,
        source_columns=SOURCE_COLUMNS,
        line_schema=VendorBill,
        payload_schema=InvoicePayload,
        record_columns=tuple(INVOICE_COLUMNS),
        synced=SyncedInvoice,
        reference="invoice_number",
        amount="total_amount_in_cents",
        sync_model="invoices",
        dated_sync=False,
        write_path=WRITE_PATH,
        read_path=READ_PATH,
        id_from_write_status=True,
        renumber=renumber,
        lines=lines,
        draft=Draft(
            header_words=(
                ("due_date", ("due", "due date")),
                ("post_date", ("post date", "posting date")),
                ("invoice_date", ("invoice date", "bill date", "date")),
                ("invoice_number", ("invoice", "invoice #", "bill #", "reference", "ref")),
                ("vendor_name", ("vendor", "payee", "supplier")),
                ("property_name", ("property", "community", "site", "building")),
                ("gl_account", ("gl", "account", "expense account")),
                ("description", ("description", "memo", "notes")),
                ("amount", ("amount", "amt", "total")),
            ),
            required=("vendor_name", "invoice_number", "invoice_date", "amount"),
        ),
    )
)
