"""A person settles records in doubt after looking in Rent Manager (`tieout resolve`).

Only records whose fate tieout cannot prove may be settled by hand: in doubt (``sending``,
``partial``), outside every sync window (``unverifiable``), or held because a recovering
ledger cannot prove them absent (``held``, never sent). Each settlement is a ledger event
with its time and the reason given, so an auditor can see who decided what, and when.

Records Propexo refused with a reason (``refused``: a 400/422, nothing written) are sent again
only when a person says so, after fixing the cause (:func:`send_again`, `resolve --send-again`;
the clerk's `tieout retry` may call it too).
"""

from __future__ import annotations

import pandas as pd

from pipelines.core.errors import InputError
from pipelines.core.models import IN_DOUBT, RecordState
from pipelines.ledger import Ledger, utcnow

# In doubt, outside every sync's reach, or held because its absence is not proven (#37).
SETTLEABLE = (*IN_DOUBT, "unverifiable", "held")


def _chosen(ledger: Ledger, states: list[str], keys: list[str] | None, what: str) -> list[str]:
    """``keys`` (every one must be in ``states``), or every record in ``states``."""
    records = ledger.records(states=states, columns=["record_key"])
    known = list(records["record_key"]) if not records.empty else []
    if keys is None:
        return known
    unknown = [k for k in keys if k not in set(known)]
    if unknown:
        raise InputError(
            f"not {what}, so not settled: {', '.join(unknown[:5])}"
            + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
            + " (`tieout status` lists them)"
        )
    return keys


def send_again(ledger: Ledger, keys: list[str] | None, *, reason: str) -> list[str]:
    """Records Propexo refused (``keys``, or all of them) made ``ready``: the next run sends
    them, built from the ledger and today's reference data. Returns the keys."""
    chosen = _chosen(ledger, [RecordState.REFUSED.value], keys, "refused by Propexo")
    if chosen:
        ledger.transition(
            chosen,
            "ready",
            run_id="resolve",
            note="sent again by a person after Propexo refused it; the next run sends it",
            detail=f"resolve --send-again: {reason}",
        )
    return chosen


def settle_by_hand(
    ledger: Ledger, keys: list[str] | None, *, present: bool, rm_id: str | None, reason: str
) -> list[str]:
    """Mark ``keys`` (or every record in doubt) present or absent. Returns the keys settled."""
    records = ledger.records(states=list(SETTLEABLE))
    if keys is None:
        chosen = list(records["record_key"]) if not records.empty else []
    else:
        known = set(records["record_key"]) if not records.empty else set()
        unknown = [k for k in keys if k not in known]
        if unknown:
            raise InputError(
                f"not in doubt, so not settled: {', '.join(unknown[:5])}"
                + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
                + " (`tieout status` lists what is in doubt)"
            )
        chosen = keys
    if not chosen:
        return []
    if present:
        ledger.transition(
            chosen,
            "confirmed",
            run_id="resolve",
            confirmed_at=utcnow(),
            note=f"settled by hand: present in Rent Manager{f' (RM id {rm_id})' if rm_id else ''}",
            detail=f"resolve --present: {reason}",
        )
    else:
        ledger.transition(
            chosen,
            "ready",
            run_id="resolve",
            note="settled by hand: absent from Rent Manager; sent again by the next run",
            detail=f"resolve --absent: {reason}",
        )
    return chosen


def evidence(ledger: Ledger, keys: list[str] | None, integration_id: str) -> list[str]:
    """What tieout knows of each record a person is about to settle: its POST, every search
    of Propexo's write log (the range, the jobs listed and read), and the syncs reported
    complete since its POST that did not bring it (they prove nothing alone)."""
    records = ledger.records(states=list(SETTLEABLE))
    if records.empty:
        return []
    if keys is not None:
        records = records[records["record_key"].isin(keys)]
    syncs = ledger.proven_syncs(integration_id)
    lines: list[str] = []
    for record in records.itertuples(index=False):
        key = str(record.record_key)
        sent = record.sent_at or record.created_at
        amount = int(str(record.amount_cents)) / 100
        lines.append(f"{key} ({record.kind!s}, {amount:,.2f}): POST at {sent!s}")
        searches = [
            (at, detail)
            for at, _, _, detail in ledger.events(key)
            if detail and "write log" in detail
        ]
        for at, detail in searches[-3:]:
            lines.append(f"  {at}: {detail}")
        if not searches:
            lines.append("  the write log has not been searched for it yet")
        if not syncs.empty:
            after = syncs[
                pd.to_datetime(syncs["completed_at"], utc=True, errors="coerce")
                >= pd.Timestamp(str(sent))
            ]
            lines.append(
                f"  {len(after)} syncs reported complete since (webhooks, proving nothing "
                "alone) did not bring it"
                + (f"; the last at {after['completed_at'].iloc[-1]}" if len(after) else "")
            )
    return lines
