"""Vendor bill lines: as read, as validated, as resolved, and the invoices posted from them."""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from schemas.common import ISO_DATE, MAX_INVOICE_NUMBER, MAX_NAME, MAX_NOTES, Line, SyncedRecord

SOURCE_KIND = "vendor_bill"


class VendorBill(Line):
    """One bill line, normalized: text trimmed, dates ISO, money in integer cents."""

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


# The canonical columns a vendor-bill profile maps headers onto (see data/profiles/): its
# line's own columns, the amount as the file writes it.
SOURCE_COLUMNS = tuple(
    name.removesuffix("_cents") for name in VendorBill.to_schema().columns if name != "source_row"
)


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


class SyncedInvoice(SyncedRecord):
    """An invoice as Propexo's read model shows it."""

    x_vendor_id: Series[str] = pa.Field(nullable=True)
    x_location_id: Series[str] = pa.Field(nullable=True)
    invoice_number: Series[str] = pa.Field(nullable=True)
    total_amount_in_cents: Series[float] = pa.Field(nullable=True)
    invoice_date: Series[str] = pa.Field(nullable=True)
