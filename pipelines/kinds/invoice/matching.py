"""Invoices matched to Propexo's: by created_record_id, else by (x_vendor_id, invoice number)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipelines.reconciling.reconcile import (
    DETAIL_COLUMNS,
    absence_note,
    aligned_verdict,
    outcomes_frame,
)


def match_invoices(
    ledger: pd.DataFrame,
    synced: pd.DataFrame,
    vendor_x_ids: dict[str, str],
    verdict: pd.Series | None = None,
) -> pd.DataFrame:
    """Invoices by created_record_id, else by (x_vendor_id, invoice_number)."""
    if ledger.empty:
        return pd.DataFrame(columns=DETAIL_COLUMNS)
    synced = synced.assign(
        invoice_number=synced["invoice_number"].astype(str),
        x_vendor_id=synced["x_vendor_id"].astype(str),
    )
    by_key = (
        synced.groupby(["x_vendor_id", "invoice_number"])
        .agg(n=("id", "size"), id=("id", "first"), amount=("total_amount_in_cents", "first"))
        .reset_index()
    )
    left = ledger.assign(
        x_vendor_id=ledger["vendor_id"].map(vendor_x_ids).fillna("").astype(str),
        invoice_number=ledger["invoice_number"].astype(str),
    )
    merged = left.merge(
        by_key, on=["x_vendor_id", "invoice_number"], how="left", validate="many_to_one"
    )
    by_id = synced.set_index("id")["total_amount_in_cents"]
    known_id = merged["created_record_id"].isin(by_id.index)
    merged.loc[known_id & merged["n"].isna(), "n"] = 1
    merged["id"] = merged["id"].where(~known_id | merged["id"].notna(), merged["created_record_id"])
    merged["amount"] = merged["amount"].fillna(merged["created_record_id"].map(by_id))
    count = merged["n"].fillna(0).astype(int)
    amount = pd.to_numeric(merged["amount"], errors="coerce")
    same = amount.eq(merged["amount_cents"]).fillna(False)
    note: pd.Series = pd.Series(
        np.where(
            count.eq(1) & ~same,
            "total in Propexo "
            + amount.fillna(-1).astype(int).astype(str)
            + " ≠ posted "
            + merged["amount_cents"].astype(str),
            "",
        )
    )
    note = note.where(~count.gt(1), "found " + count.astype(str) + " times in Propexo")
    proven = aligned_verdict(verdict, ledger)
    note = absence_note(note, count, proven)
    return outcomes_frame(merged, merged, count, same, proven, note)
