"""When a sync proves that a record is absent: the one rule every "missing" and re-send rests on.

Propexo's cache of Rent Manager is refreshed by syncs that can run for hours, see each model only
inside a date window, and say they are done only through a SYNC_COMPLETE webhook. A record that
is not in the cache is therefore *proven* absent only by a sync that

1. synced the record's model (``invoices`` or ``resident_charges``),
2. started after the record's write had certainly ended (``since``),
3. is known complete (SYNC_COMPLETE with ``is_sync_finished``, recorded by the webhook
   receiver), and
4. whose date window covers the record's date (resident charges only).

Pure: frames in, a verdict per record out. The ledger knows the syncs; the caller decides.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

PROVEN = "proven"
AWAITING = "awaiting"  # no complete sync has started since the write ended
UNVERIFIABLE = "unverifiable"  # synced since, but outside every such sync's window

# record kind → (the Propexo model a sync reports it under, whether syncs read it by date
# window): each kind says it (``Kinds.sync_scope``, handed in by the caller).
SyncScope = Mapping[str, tuple[str, bool]]
EDGE_DAYS = 1.0  # a window is measured from a moment tieout only knows to within a day


def write_ended(records: pd.DataFrame, grace_s: float) -> pd.Series:
    """The moment after which each record's write is certainly over.

    A terminal write-status seen at ``confirmed_at`` ends it then. A write with no answer
    (``sending``) may still be running as a job Propexo accepted, started whenever Propexo got
    round to the request (tieout's pacing and Propexo's slowdown can hold a POST for seconds
    after its intent was written): it is over only ``grace_s`` after the moment it went in
    doubt (``doubt_since``: the failed answer, the unknown job, or, for a process that died
    mid-POST, the next run's start). Without that moment it is not over yet (NaT).
    """
    confirmed = pd.to_datetime(records["confirmed_at"], utc=True, errors="coerce")
    doubt = pd.to_datetime(
        records["doubt_since"]
        if "doubt_since" in records
        else pd.Series(None, index=records.index),
        utc=True,
        errors="coerce",
    )
    in_flight = records["state"].eq("sending")
    grace = pd.Timedelta(seconds=grace_s)
    return (doubt + grace).where(in_flight, confirmed)


def sync_verdicts(
    records: pd.DataFrame,
    syncs: pd.DataFrame,
    *,
    since: pd.Series,
    window_days: float | None,
    scope: SyncScope,
) -> pd.Series:
    """``proven`` / ``awaiting`` / ``unverifiable`` for each record (index kept).

    ``syncs``: ``started_after``, ``completed_at``, ``models`` (list) of syncs known complete.
    ``window_days``: how far either side of a sync's own time it sees resident charges
    (``None``: no window); ``scope``: each record kind's model and whether it is read by date.
    """
    verdict = pd.Series(AWAITING, index=records.index, dtype=object)
    if records.empty or syncs.empty:
        return verdict
    since_ns = pd.to_datetime(since, utc=True, errors="coerce").to_numpy(dtype="datetime64[ns]")
    model = records["kind"].map({k: m for k, (m, _) in scope.items()}).fillna("").to_numpy()
    day = pd.to_datetime(
        records["transaction_date"].astype(str).str.slice(0, 10), errors="coerce", utc=True
    ).to_numpy(dtype="datetime64[ns]")
    # A kind no sync reports on maps to NaN (float64 when every record is of one): not dated.
    dated = records["kind"].map({k: d for k, (_, d) in scope.items()}).eq(True)
    undated = ~dated.to_numpy(dtype=bool)
    any_after = np.zeros(len(records), dtype=bool)
    covered = np.zeros(len(records), dtype=bool)
    for started_text, completed_text, models in zip(
        syncs["started_after"].astype(str),
        syncs["completed_at"].astype(str),
        syncs["models"],
        strict=True,
    ):
        started = pd.Timestamp(started_text).to_datetime64()
        completed = pd.Timestamp(completed_text).to_datetime64()
        after = (started >= since_ns) & np.isin(model, [str(m) for m in models])
        any_after |= after
        if window_days is None:
            inside = np.ones(len(records), dtype=bool)
        else:
            reach = np.timedelta64(int((window_days - EDGE_DAYS) * 86400), "s")
            inside = (day >= completed - reach) & (day <= started + reach)
        covered |= after & (undated | inside)
    verdict[any_after] = UNVERIFIABLE
    verdict[covered] = PROVEN
    return verdict
