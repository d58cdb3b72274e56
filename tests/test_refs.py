"""Reference data: staff alias files, and the columns read back from Propexo."""

from __future__ import annotations

from pipelines.kinds.charge.synced import CHARGE_FIELDS
from pipelines.kinds.invoice.synced import INVOICE_FIELDS


def test_the_columns_read_back_hold_what_matching_and_proof_of_absence_need() -> None:
    """One list, from the synced models (refs.py kept a second copy that could drift)."""
    for needed in (
        ["id", "x_vendor_id", "invoice_number", "total_amount_in_cents"],
        ["id", "reference_number", "amount_in_cents", "transaction_date"],
    ):
        fields = INVOICE_FIELDS if "x_vendor_id" in needed else CHARGE_FIELDS
        assert set(needed) | {"created_at", "updated_at", "last_seen"} <= set(fields)
