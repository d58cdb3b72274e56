"""How far Propexo's data clock is from ours, measured on its data, not on its Date header.

A server's ``Date`` header and the timestamps in its data may come from different clocks (a
web tier in step, a database or PMS connector that is not). The data's own clock is what
"a sync no longer saw this record" rests on (``last_seen`` against the time the sync started),
so it is measured on records tieout wrote: Propexo stamped each one's ``created_at`` between
tieout's intent (``sent_at``) and the moment tieout learnt it was written (``confirmed_at``).
So ``offset`` (Propexo's clock minus ours) lies in ``[created − confirmed, created − sent]`` for
every such record, and in the intersection of them all.

:func:`measure` is pure: frames in, bounds out. The caller widens every comparison of
Propexo's timestamps with ours by the measured offset, so skew can never turn a record into
"not seen" (then missing); :func:`data_clock` also keeps the newest measurement in the ledger
for `tieout doctor`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import pandas as pd

from pipelines.ledger import Ledger, utcnow

DATA_CLOCK_META = "data clock"  # the ledger's meta key of the newest measurement
# How a record of ours is tied to Propexo's copy: the id Propexo gave it (from write-status or
# a reconcile), its whole reference number, or an invoice number no other invoice shares.
IDENTITIES = (
    ("created_record_id", "id"),
    ("propexo_id", "id"),
    ("reference_number", "reference_number"),
    ("invoice_number", "invoice_number"),
)
WITNESSES_MAX = 1000  # the newest writes say what the clock is now; older ones add nothing


@dataclass(frozen=True)
class DataClock:
    """Bounds on Propexo's data clock minus ours, in seconds, and how many records say so."""

    low_s: float
    high_s: float
    witnesses: int

    @property
    def worst_s(self) -> float:
        """The largest difference the bounds allow, either way (what a comparison must allow)."""
        return max(abs(self.low_s), abs(self.high_s))

    @property
    def estimate_s(self) -> float:
        """The offset nearest to zero that the bounds allow (0 when they allow in step)."""
        if self.low_s > 0:
            return self.low_s
        if self.high_s < 0:
            return self.high_s
        return 0.0

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @staticmethod
    def from_json(text: str | None) -> DataClock | None:
        try:
            data = json.loads(text or "")
            return DataClock(float(data["low_s"]), float(data["high_s"]), int(data["witnesses"]))
        except (ValueError, KeyError, TypeError):
            return None


def measure(ours: pd.DataFrame, theirs: pd.DataFrame) -> DataClock | None:
    """The data clock's offset from records in both frames, tied by identity only
    (:data:`IDENTITIES`).

    ``ours``: the ledger's records (the identities, ``sent_at``, ``confirmed_at``);
    ``theirs``: Propexo's (``id``, ``reference_number``, ``invoice_number``, ``created_at``).
    None when no record is in both with its times.
    """
    if ours.empty or theirs.empty or "created_at" not in theirs:
        return None
    keys = [left for left, _ in IDENTITIES]
    mine = ours.reindex(columns=[*dict.fromkeys(keys), "sent_at", "confirmed_at"])
    mine = mine[mine["sent_at"].notna()]
    mine = mine.sort_values("sent_at").tail(WITNESSES_MAX)
    created = theirs.reindex(columns=[*dict.fromkeys(r for _, r in IDENTITIES), "created_at"])
    pairs = []
    for left, right in IDENTITIES:
        keyed_ours = mine[mine[left].notna() & mine[left].astype(str).ne("")]
        keyed_theirs = created[created[right].notna() & created[right].astype(str).ne("")]
        if keyed_ours.empty or keyed_theirs.empty:
            continue
        # A key held twice (a number two vendors share) says nothing certain of which it was.
        keyed_ours = keyed_ours.drop_duplicates(left, keep=False)
        keyed_theirs = keyed_theirs.drop_duplicates(right, keep=False)
        pairs.append(
            keyed_ours[[left, "sent_at", "confirmed_at"]]
            .astype({left: str})
            .merge(
                keyed_theirs[[right, "created_at"]].astype({right: str}),
                left_on=left,
                right_on=right,
            )[["sent_at", "confirmed_at", "created_at"]]
        )
    if not pairs:
        return None
    joined = pd.concat(pairs, ignore_index=True)
    stamp = {c: pd.to_datetime(joined[c], utc=True, errors="coerce") for c in joined.columns}
    high = (stamp["created_at"] - stamp["sent_at"]).dt.total_seconds().dropna()
    low = (stamp["created_at"] - stamp["confirmed_at"]).dt.total_seconds().dropna()
    if high.empty:
        return None
    high_s = float(high.min())
    low_s = float(low.max()) if not low.empty else min(high_s, 0.0)
    if low_s > high_s:  # the bounds disagree (a clock stepped between writes): take both
        low_s, high_s = high_s, low_s
    return DataClock(low_s, high_s, len(high))


def allowance_s(configured_s: float, measured: DataClock | None) -> float:
    """How far apart a timestamp of Propexo's and one of ours may be from skew alone: the
    configured allowance, widened by the measured offset either way."""
    return configured_s + (measured.worst_s if measured is not None else 0.0)


def data_clock(ledger: Ledger, ours: pd.DataFrame, theirs: pd.DataFrame) -> DataClock | None:
    """:func:`measure`, remembered in the ledger (with when); when nothing in these frames can
    be measured (no record of ours among them), the last measurement the ledger kept."""
    measured = measure(ours, theirs)
    if measured is None:
        kept = last_measured(ledger)
        return kept[0] if kept is not None else None
    ledger.set_meta(DATA_CLOCK_META, json.dumps({**json.loads(measured.to_json()), "at": utcnow()}))
    return measured


def last_measured(ledger: Ledger) -> tuple[DataClock, str] | None:
    """The newest measurement kept in the ledger, and when it was taken."""
    text = ledger.get_meta(DATA_CLOCK_META)
    measured = DataClock.from_json(text)
    if measured is None or text is None:
        return None
    return measured, str(json.loads(text).get("at") or "")
