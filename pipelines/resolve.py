"""A person settles records in doubt after looking in Rent Manager (`tieout resolve`).

Only records whose fate tieout cannot prove may be settled by hand: in doubt (``sending``,
``partial``) or outside every sync window (``unverifiable``). Each settlement is a ledger event
with its time and the reason given, so an auditor can see who decided what, and when.
"""

from __future__ import annotations

from pipelines.errors import InputError
from pipelines.ledger import Ledger, utcnow
from pipelines.models import IN_DOUBT

SETTLEABLE = (*IN_DOUBT, "unverifiable")


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
