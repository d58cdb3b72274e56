"""An invoice's own columns in the ledger's ``records`` (beside the core every kind shares,
:data:`pipelines.core.record_columns.CORE`), registered with its kind
(``Kind.columns``)."""

from __future__ import annotations

from pipelines.core.record_columns import Column

ATTRIBUTES = (
    Column("invoice_number", "TEXT", "optional", matched=True),
    Column("vendor_id", "TEXT", "optional", matched=True),
    Column("transaction_date", "TEXT", "optional", matched=True),  # the invoice's date
    Column("defaulted", "TEXT", "joined"),  # what tieout filled in (post date = invoice date)
)
