"""Resident charge lines: as validated, as resolved, and the payloads posted from them."""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from schemas.common import ISO_DATE, MAX_NAME, MAX_NOTES, MAX_REFERENCE, Line, SyncedRecord

SOURCE_KIND = "charge"
# The canonical columns a rent-roll or charge-file profile maps headers onto.
SOURCE_COLUMNS = (
    "property_name",
    "unit",
    "resident_name",
    "charge_code",
    "amount",
    "transaction_date",
    "notes",
    "reference_number",
    "status",
)


class ResidentCharge(Line):
    """One charge line (resident, charge code, amount), normalized."""

    property_name: Series[str] = pa.Field(
        str_length={"min_value": 1, "max_value": MAX_NAME}, title="property"
    )
    unit: Series[str] = pa.Field(str_length={"min_value": 1, "max_value": 50}, title="unit")
    resident_name: Series[str] = pa.Field(
        str_length={"min_value": 1, "max_value": MAX_NAME}, title="resident"
    )
    charge_code: Series[str] = pa.Field(
        str_length={"min_value": 1, "max_value": MAX_NAME}, title="charge code"
    )
    transaction_date: Series[str] = pa.Field(str_matches=ISO_DATE, title="transaction date")
    notes: Series[str] = pa.Field(nullable=True, str_length={"max_value": MAX_NOTES}, title="notes")
    reference_number: Series[str] = pa.Field(
        nullable=True,
        str_length={"min_value": 1, "max_value": MAX_REFERENCE},
        title="reference number",
    )
    amount_cents: Series[pd.Int64Dtype] = pa.Field(ne=0, title="amount")


class ResolvedCharge(ResidentCharge):
    """A charge line with Propexo IDs, its location, and its reference number."""

    property_id: Series[str]
    location_id: Series[str]
    resident_id: Series[str]
    charge_code_id: Series[str]


class ChargePayload(pa.DataFrameModel):
    """One charge or credit, ready to post (charges go in batches per location)."""

    record_key: Series[str] = pa.Field(unique=True)
    kind: Series[str] = pa.Field(isin=["charge", "credit"])
    integration_id: Series[str]
    location_id: Series[str]
    reference_number: Series[str] = pa.Field(unique=True)
    amount_cents: Series[int] = pa.Field(ne=0)
    content_hash: Series[str] = pa.Field(str_matches=r"^[0-9a-f]{16}$")
    source_file: Series[str]
    # the body's parts, posted as JSON built from these columns (pipelines.posting.payloads)
    resident_id: Series[str]
    charge_code_id: Series[str]
    transaction_date: Series[str] = pa.Field(str_matches=ISO_DATE)
    charge_notes: Series[str] = pa.Field(str_length={"max_value": MAX_NOTES})


class SyncedCharge(SyncedRecord):
    """A resident charge (credits are negative) as Propexo's read model shows it."""

    resident_id: Series[str] = pa.Field(nullable=True)
    charge_code_id: Series[str] = pa.Field(nullable=True)
    reference_number: Series[str] = pa.Field(nullable=True, description="tieout's start TO")
    transaction_date: Series[str] = pa.Field(nullable=True)
    amount_in_cents: Series[float] = pa.Field(nullable=True)
