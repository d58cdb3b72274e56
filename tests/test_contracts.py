"""The schemas as the contract between stages (#17): the resolved, payload and synced models
run where frames cross a boundary, and a frame that breaks one stops there, saying so."""

from __future__ import annotations

import pandas as pd
import pytest

from pipelines.core.errors import ApiError
from pipelines.kinds.charge.schemas import ChargePayload
from schemas import SAMPLE_ROWS, ContractError, conforms


def _charges(n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "record_key": [f"charge:i:TO{k:010d}" for k in range(n)],
            "kind": "charge",
            "integration_id": "i",
            "location_id": "L",
            "reference_number": [f"TO{k:010d}" for k in range(n)],
            "amount_cents": 100,
            "content_hash": "0123456789abcdef",
            "source_file": "roll.csv",
            "resident_id": "r",
            "charge_code_id": "c",
            "transaction_date": "2026-12-01",
            "charge_notes": "Rent 2026-12",
        }
    )


def test_records_to_post_are_checked_against_their_payload_model() -> None:
    conforms(ChargePayload, _charges(3), "records")
    broken = _charges(3).assign(transaction_date=["2026-12-01", "12/1/2026", "2026-12-01"])
    with pytest.raises(
        ContractError, match=r"records do not match ChargePayload: transaction_date"
    ):
        conforms(ChargePayload, broken, "records")


def test_a_large_frame_is_checked_on_a_sample_that_still_catches_a_broken_column() -> None:
    big = _charges(SAMPLE_ROWS * 5).assign(amount_cents=0)  # every row breaks it
    with pytest.raises(ContractError, match="amount_cents"):
        conforms(ChargePayload, big, "records")


def test_propexo_records_unlike_their_documented_shape_stop_with_one_message() -> None:
    """An invoice without an id cannot be matched to anything: said once, as an API error,
    before any state changes (what every fetch of Propexo's records goes through)."""
    from pipelines.kinds.invoice.schemas import SyncedInvoice
    from pipelines.kinds.invoice.synced import INVOICE_FIELDS
    from pipelines.resolving.refs import synced_frame

    good = [{"id": "inv1", "invoice_number": "A-1", "total_amount_in_cents": 100}]
    assert synced_frame(good, INVOICE_FIELDS, SyncedInvoice)["id"].tolist() == ["inv1"]
    with pytest.raises(ApiError, match="records Propexo returned do not match SyncedInvoice: id"):
        synced_frame([{"id": None, "invoice_number": "A-1"}], INVOICE_FIELDS, SyncedInvoice)
