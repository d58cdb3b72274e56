"""Propexo's resident charges (credits negative), read back."""

from __future__ import annotations

import pandas as pd

from pipelines.kinds.charge.schemas import SyncedCharge
from pipelines.posting.propexo import PropexoClient
from pipelines.resolving.refs import fetch_synced

CHARGE_FIELDS = list(SyncedCharge.to_schema().columns)


def fetch_synced_charges(
    client: PropexoClient, integration_id: str, date_start: str, date_end: str, **filters: str
) -> pd.DataFrame:
    """Resident charges (credits negative) in a transaction-date window, both ends inclusive."""
    return fetch_synced(
        client,
        "/v1/resident-charges/",
        SyncedCharge,
        integration_id,
        transaction_date_start=date_start,
        transaction_date_end=date_end,
        **filters,
    )
