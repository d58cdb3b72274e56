"""Records read back from Propexo after a sync, flattened for matching."""

from __future__ import annotations

import pandera.pandas as pa
from pandera.typing import Series


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


class SyncedCharge(pa.DataFrameModel):
    """A resident charge (credits are negative) as Propexo's read model shows it."""

    id: Series[str]
    x_id: Series[str] = pa.Field(nullable=True)  # the Rent Manager record's own id
    resident_id: Series[str] = pa.Field(nullable=True)
    charge_code_id: Series[str] = pa.Field(nullable=True)
    reference_number: Series[str] = pa.Field(nullable=True)
    transaction_date: Series[str] = pa.Field(nullable=True)
    amount_in_cents: Series[float] = pa.Field(nullable=True)
    created_at: Series[str] = pa.Field(nullable=True)
    updated_at: Series[str] = pa.Field(nullable=True)
    last_seen: Series[str] = pa.Field(nullable=True)

    class Config:
        coerce = True
