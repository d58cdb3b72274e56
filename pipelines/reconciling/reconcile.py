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

from pipelines.core.models import ReconcileResult
from pipelines.core.record_columns import RECORD, Listed
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


def outcomes_frame(
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


def aligned_verdict(verdict: pd.Series | None, ledger: pd.DataFrame) -> np.ndarray:
    if verdict is None:
        return np.full(len(ledger), AWAITING, dtype=object)
    return verdict.reindex(ledger.index).fillna(AWAITING).to_numpy(dtype=object)


def absence_note(note: pd.Series, count: pd.Series, verdict: np.ndarray) -> pd.Series:
    absent = count.eq(0).to_numpy()
    note = note.mask(absent & (verdict == AWAITING), "no complete sync since it was posted")
    return note.mask(
        absent & (verdict == UNVERIFIABLE), "outside the date window of every sync since"
    )


# What matching reads of each ledger record (and nothing more: a million rows are read back
# through sqlite3, which pays per cell).
LEDGER_COLUMNS = Listed(RECORD.matched)  # read when used: kinds register their columns later


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
