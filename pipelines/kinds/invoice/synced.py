"""Propexo's invoices, read back."""

from __future__ import annotations

import pandas as pd

from pipelines.kinds.invoice.schemas import SyncedInvoice
from pipelines.posting.propexo import PropexoClient
from pipelines.resolving.refs import fetch_synced

# The columns of Propexo's records that are read back: the synced models' own columns.
INVOICE_FIELDS = list(SyncedInvoice.to_schema().columns)


def fetch_synced_invoices(
    client: PropexoClient, integration_id: str, **filters: str
) -> pd.DataFrame:
    """Invoices in Propexo's cache for one integration; ``filters`` narrow it
    (``updated_at_gte`` for what changed, ``last_seen_lte`` for what a sync no longer sees)."""
    return fetch_synced(client, "/v1/invoices/", SyncedInvoice, integration_id, **filters)
