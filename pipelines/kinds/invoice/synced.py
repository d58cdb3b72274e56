"""Propexo's invoices, read back."""

from __future__ import annotations

from typing import Any

import pandas as pd

from pipelines.kinds.invoice.schemas import SyncedInvoice
from pipelines.posting.propexo import PropexoClient
from pipelines.resolving.refs import _synced

# The columns of Propexo's records that are read back: the synced models' own columns.
INVOICE_FIELDS = list(SyncedInvoice.to_schema().columns)


def fetch_synced_invoices(
    client: PropexoClient, integration_id: str, **filters: str
) -> pd.DataFrame:
    """Invoices in Propexo's cache for one integration; ``filters`` narrow it
    (``updated_at_gte`` for what changed, ``last_seen_lte`` for what a sync no longer sees)."""
    params: dict[str, Any] = {
        "integration_id": integration_id,
        "order-by": "created_at:asc",
        **filters,
    }
    return _synced(client.list_all("/v1/invoices/", params), INVOICE_FIELDS, SyncedInvoice)
