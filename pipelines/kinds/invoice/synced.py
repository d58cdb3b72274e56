"""Propexo's invoices, read back."""

from __future__ import annotations

from pipelines.kinds.invoice.schemas import SyncedInvoice

# The columns of Propexo's records that are read back: the synced models' own columns.
INVOICE_FIELDS = list(SyncedInvoice.to_schema().columns)
