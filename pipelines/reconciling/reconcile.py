"""Reconcile: ledger records against the records Propexo synced, matched with merges.

Pure: frames in, a :class:`ReconcileResult` out; fetching is in
:mod:`pipelines.resolving.refs`, and the ledger update is the caller's. Outcomes per record:

* ``matched``: found exactly once, with the amount (and date, charge code) we sent;
* ``mismatched``: found once, but something differs (both values are shown);
* ``duplicated``: found more than once;
* ``awaiting_sync``: not found, and no complete sync has started since its write ended;
* ``unverifiable``: not found, and every such sync's date window leaves it out;
* ``missing``: not found although a sync proves it absent (:mod:`pipelines.reconciling.proof`).

Propexo records carrying our reference prefix that the ledger does not know are ``unexpected``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipelines.core.columns import is_in
from pipelines.core.models import ReconcileResult
from pipelines.core.record_columns import RECORD
from pipelines.reconciling.proof import AWAITING, UNVERIFIABLE

DETAIL_COLUMNS = [
    "record_key",
    "kind",
    "outcome",
    "propexo_id",
    "amount_cents",
    "found_amount_cents",
    "note",
]


def _outcomes(
    ledger: pd.DataFrame,
    found: pd.DataFrame,
    count: pd.Series,
    same: pd.Series,
    proven: np.ndarray,
    note: pd.Series,
) -> pd.DataFrame:
    verdict = pd.Series(np.asarray(proven, dtype=object), index=count.index)
    outcome = np.select(
        [
            count.gt(1),
            count.eq(1) & same,
            count.eq(1) & ~same,
            verdict.eq(AWAITING),
            verdict.eq(UNVERIFIABLE),
        ],
        ["duplicated", "matched", "mismatched", "awaiting_sync", "unverifiable"],
        default="missing",
    )
    return pd.DataFrame(
        {
            "record_key": ledger["record_key"].to_numpy(),
            "kind": ledger["kind"].to_numpy(),
            "outcome": outcome,
            "propexo_id": found["id"].to_numpy(),
            "amount_cents": ledger["amount_cents"].to_numpy(),
            "found_amount_cents": found["amount"].to_numpy(),
            "note": note.to_numpy(),
        }
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
    proven = _aligned(verdict, ledger)
    note = _absence_note(note, count, proven)
    return _outcomes(merged, merged, count, same, proven, note)


def _aligned(verdict: pd.Series | None, ledger: pd.DataFrame) -> np.ndarray:
    if verdict is None:
        return np.full(len(ledger), AWAITING, dtype=object)
    return verdict.reindex(ledger.index).fillna(AWAITING).to_numpy(dtype=object)


def _absence_note(note: pd.Series, count: pd.Series, verdict: np.ndarray) -> pd.Series:
    absent = count.eq(0).to_numpy()
    note = note.mask(absent & (verdict == AWAITING), "no complete sync since it was posted")
    return note.mask(
        absent & (verdict == UNVERIFIABLE), "outside the date window of every sync since"
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
    proven = _aligned(verdict, ledger)
    note = _absence_note(note, count, proven)
    return _outcomes(merged, merged, count, same, proven, note)


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


# What matching reads of each ledger record (and nothing more: a million rows are read back
# through sqlite3, which pays per cell).
LEDGER_COLUMNS = RECORD.matched()


def summarize(details: list[pd.DataFrame], unexpected: int) -> ReconcileResult:
    """Every record's outcome (one frame per kind) counted into one result."""
    details = [d for d in details if not d.empty]
    frame = (
        pd.concat(details, ignore_index=True) if details else pd.DataFrame(columns=DETAIL_COLUMNS)
    )
    counts = frame["outcome"].value_counts()
    matched_total = int(frame.loc[frame["outcome"] == "matched", "amount_cents"].sum())
    return ReconcileResult(
        matched=int(counts.get("matched", 0)),
        awaiting_sync=int(counts.get("awaiting_sync", 0)),
        missing=int(counts.get("missing", 0)),
        mismatched=int(counts.get("mismatched", 0)),
        duplicated=int(counts.get("duplicated", 0)),
        unexpected=unexpected,
        unverifiable=int(counts.get("unverifiable", 0)),
        matched_total_cents=matched_total,
        details=frame,
    )
