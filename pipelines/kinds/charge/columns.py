"""A charge's and a credit's own columns in the ledger's ``records`` (beside the core every
kind shares, :data:`pipelines.core.record_columns.CORE`), registered with its kind
(``Kind.columns``)."""

from __future__ import annotations

from pipelines.core.record_columns import Column

ATTRIBUTES = (
    Column("reference_number", "TEXT", "optional", matched=True),
    Column("resident_id", "TEXT", "optional", matched=True),
    Column("charge_code_id", "TEXT", "optional", matched=True),
    Column("transaction_date", "TEXT", "optional", matched=True),
    Column("charge_notes", "TEXT", "optional"),  # a charge's body is built from columns
)
