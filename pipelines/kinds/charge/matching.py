"""Charges and credits matched to Propexo's: by reference number, else by content."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipelines.core.columns import is_in
from pipelines.reconciling.reconcile import (
    DETAIL_COLUMNS,
    absence_note,
    aligned_verdict,
    outcomes_frame,
)


def match_charges(
    ledger: pd.DataFrame, synced: pd.DataFrame, verdict: pd.Series | None = None
) -> pd.DataFrame:
    """Charges and credits by reference_number (credits read back negative)."""
    if ledger.empty:
        return pd.DataFrame(columns=DETAIL_COLUMNS)
    synced = synced.assign(reference_number=synced["reference_number"].astype(str))
    by_ref = by_reference(synced)
    merged = ledger.assign(reference_number=ledger["reference_number"].astype(str)).merge(
        by_ref, on="reference_number", how="left", validate="many_to_one"
    )
    count = merged["n"].fillna(0).astype(int)
    amount = pd.to_numeric(merged["amount"], errors="coerce")
    same_amount = amount.eq(merged["amount_cents"]).fillna(False)
    same_date = (
        merged["date"]
        .astype(str)
        .str.slice(0, 10)
        .eq(merged["transaction_date"].astype(str).str.slice(0, 10))
    )
    same_code = merged["code"].astype(str).eq(merged["charge_code_id"].astype(str))
    same = same_amount & same_date & same_code
    note = pd.Series("", index=merged.index, dtype=object)
    note = note.mask(
        count.eq(1) & ~same_amount,
        "amount in Propexo "
        + amount.fillna(0).astype(int).astype(str)
        + " ≠ posted "
        + merged["amount_cents"].astype(str),
    )
    note = note.mask(
        count.eq(1) & same_amount & ~same_date,
        "transaction date in Propexo "
        + merged["date"].astype(str)
        + " ≠ posted "
        + merged["transaction_date"].astype(str),
    )
    note = note.mask(count.eq(1) & same_amount & same_date & ~same_code, "charge code differs")
    note = note.mask(count.gt(1), "found " + count.astype(str) + " times in Propexo")
    # Not found by reference number: the same content (resident, code, amount, date) under
    # another reference, one for one (two identical lines need two records).
    ours = ledger["reference_number"].astype(str)
    by_content = _match_by_content(merged[count.eq(0)], synced, ours)
    if not by_content.empty:
        hit = merged.index.isin(by_content.index)
        merged.loc[by_content.index, "id"] = by_content
        merged.loc[by_content.index, "amount"] = merged.loc[by_content.index, "amount_cents"]
        count = count.where(~hit, 1)
        same = same | hit
        note = note.mask(
            hit, "matched by content: the reference number was changed in Rent Manager"
        )
    proven = aligned_verdict(verdict, ledger)
    note = absence_note(note, count, proven)
    return outcomes_frame(merged, merged, count, same, proven, note)


def by_reference(synced: pd.DataFrame, *, grouped: bool = False) -> pd.DataFrame:
    """Propexo's charges per reference number: how many, and the first one's id, amount, date
    and code. When every reference is there once (the usual case) each row is its own group,
    and grouping a million rows is skipped (``grouped`` forces it, for the test that holds the
    two to the same answer)."""
    if grouped or synced["reference_number"].duplicated().any():
        return (
            synced.groupby("reference_number")
            .agg(
                n=("id", "size"),
                id=("id", "first"),
                amount=("amount_in_cents", "first"),
                date=("transaction_date", "first"),
                code=("charge_code_id", "first"),
            )
            .reset_index()
        )
    names = {"amount_in_cents": "amount", "transaction_date": "date", "charge_code_id": "code"}
    rows = synced.loc[synced["reference_number"].notna(), ["reference_number", "id", *names]]
    rows = rows.rename(columns=names)  # a charge without a reference is in no group, as above
    return rows.assign(n=np.ones(len(rows), dtype=np.int64)).reset_index(drop=True)[
        ["reference_number", "n", "id", "amount", "date", "code"]
    ]


def _match_by_content(unmatched: pd.DataFrame, synced: pd.DataFrame, ours: pd.Series) -> pd.Series:
    """Propexo ids for ledger charges found by content alone, respecting multiplicity."""
    if unmatched.empty or synced.empty:
        return pd.Series(dtype=object)
    keys = ["resident_id", "charge_code_id", "amount", "day"]
    left = pd.DataFrame(
        {
            "resident_id": unmatched["resident_id"].astype(str),
            "charge_code_id": unmatched["charge_code_id"].astype(str),
            "amount": unmatched["amount_cents"].astype("int64"),
            "day": unmatched["transaction_date"].astype(str).str.slice(0, 10),
        },
        index=unmatched.index,
    )
    pool = synced[~is_in(synced["reference_number"].astype(str), ours)]
    right = pd.DataFrame(
        {
            "resident_id": pool["resident_id"].astype(str),
            "charge_code_id": pool["charge_code_id"].astype(str),
            "amount": pd.to_numeric(pool["amount_in_cents"], errors="coerce")
            .fillna(0)
            .astype("int64"),
            "day": pool["transaction_date"].astype(str).str.slice(0, 10),
            "propexo_id": pool["id"],
        }
    )
    left["n"] = left.groupby(keys).cumcount()
    right["n"] = right.groupby(keys).cumcount()
    joined = left.reset_index(names="_row").merge(right, on=[*keys, "n"], how="inner")
    return joined.set_index("_row")["propexo_id"]
