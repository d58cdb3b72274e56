"""Vendor bill lines: as read, as validated, as resolved, and the invoices posted from them."""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from schemas.common import ISO_DATE, MAX_INVOICE_NUMBER, MAX_NAME, MAX_NOTES

SOURCE_KIND = "vendor_bill"
# The canonical columns a vendor-bill profile maps headers onto (see data/profiles/).
SOURCE_COLUMNS = (
    "vendor_name",
    "invoice_number",
    "invoice_date",
    "due_date",
    "post_date",
    "property_name",
    "gl_account",
    "description",
    "amount",
)


class VendorBill(pa.DataFrameModel):
    """One bill line, normalized: text trimmed, dates ISO, money in integer cents."""

    source_row: Series[int] = pa.Field(ge=1, title="row")
    vendor_name: Series[str] = pa.Field(
        str_length={"min_value": 1, "max_value": MAX_NAME}, title="vendor"
    )
    invoice_number: Series[str] = pa.Field(
        str_length={"min_value": 1, "max_value": MAX_INVOICE_NUMBER}, title="invoice number"
    )
    invoice_date: Series[str] = pa.Field(str_matches=ISO_DATE, title="invoice date")
    due_date: Series[str] = pa.Field(nullable=True, str_matches=ISO_DATE, title="due date")
    post_date: Series[str] = pa.Field(nullable=True, str_matches=ISO_DATE, title="post date")
    property_name: Series[str] = pa.Field(
        str_length={"min_value": 1, "max_value": MAX_NAME}, title="property"
    )
    gl_account: Series[str] = pa.Field(
        str_length={"min_value": 1, "max_value": MAX_NAME}, title="GL account"
    )
    description: Series[str] = pa.Field(
        nullable=True, str_length={"max_value": MAX_NOTES}, title="description"
    )
    amount_cents: Series[pd.Int64Dtype] = pa.Field(title="amount")

    class Config:
        coerce = True
        strict = "filter"


class ResolvedBillLine(VendorBill):
    """A bill line whose names have become Propexo IDs."""

    vendor_id: Series[str]
    property_id: Series[str]
    location_id: Series[str]
    financial_account_id: Series[str]


class InvoicePayload(pa.DataFrameModel):
    """One invoice, ready for ``POST /v1/invoices/rentmanager/``."""

    record_key: Series[str] = pa.Field(unique=True)
    integration_id: Series[str]
    vendor_id: Series[str]
    location_id: Series[str]
    invoice_number: Series[str]
    total_amount_in_cents: Series[int] = pa.Field(ge=0)
    content_hash: Series[str] = pa.Field(str_matches=r"^[0-9a-f]{64}$")
    payload: Series[object]
    source_rows: Series[object]
    source_file: Series[str]


class SyncedInvoice(pa.DataFrameModel):
    """An invoice as Propexo's read model shows it."""

    id: Series[str]
    x_id: Series[str] = pa.Field(nullable=True)  # the Rent Manager record's own id
    x_vendor_id: Series[str] = pa.Field(nullable=True)
    x_location_id: Series[str] = pa.Field(nullable=True)
    invoice_number: Series[str] = pa.Field(nullable=True)
    total_amount_in_cents: Series[float] = pa.Field(nullable=True)
    invoice_date: Series[str] = pa.Field(nullable=True)
    created_at: Series[str] = pa.Field(nullable=True)
    updated_at: Series[str] = pa.Field(nullable=True)
    last_seen: Series[str] = pa.Field(nullable=True)

    class Config:
        coerce = True
