"""A run's verdict: complete, needs attention or waiting for sync, with each reason (its count
and amount), then and now; pure functions over the report's rows and the ledger's frames."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd

from pipelines.core.models import IN_DOUBT
from pipelines.ledger.items import ANOTHER_WRITE

# A FAILURE write-status is Propexo's word, not proof: a PMS may apply a write Propexo marks
# failed, and reconcile looks for it in Propexo's data before anything is sent again.
FAILED_WORDS = (
    "Propexo says failed; its write log will tell: `tieout reconcile` looks for them in "
    "Propexo's data, and nothing is sent again meanwhile"
)


COMPLETE, ATTENTION, WAITING = "complete", "needs attention", "waiting for sync"
HOLDING = ("awaiting_approval", "held_layout")  # items that hold a whole file back
# Items the run's figures do not show otherwise: the inbox's, each with its own reason.
INBOX_REASONS = {
    "refused_link": "links in the inbox refused: what they point at is not read",
    "empty_file": "empty files left in the inbox",
}


def _reason(text: str, count: int, amount_cents: int) -> dict[str, Any]:
    return {"reason": text, "count": int(count), "amount_cents": int(amount_cents)}


def decide_verdict(
    files: list[dict[str, Any]],
    drops: pd.DataFrame,
    records: pd.DataFrame,
    unexpected: int,
    now: datetime,
    grace_s: float,
    held: list[dict[str, Any]] | None = None,
    stopped: str | None = None,
) -> tuple[str, list[dict[str, Any]]]:
    """One verdict for a run, and each reason for it with its count and amount.

    **complete**: every line posted and matched, nothing rejected, every file's own totals
    tie. **needs attention**: anything rejected, refused, failed, missing, mismatched,
    duplicated, unverifiable, unexpected, not sent, in doubt past its grace, or a run that
    ``stopped`` early (its reason first).
    **waiting for sync**: nothing wrong yet, but some records await Propexo's next sync or are
    in doubt within their grace."""
    attention: list[dict[str, Any]] = []
    waiting: list[dict[str, Any]] = []
    if stopped:
        attention.append(_reason(f"the run stopped early: {stopped}", 0, 0))
    rejected = sum(int(f["rows_rejected"]) for f in files)
    if rejected:
        attention.append(
            _reason(
                "rows rejected (see Rejected rows)",
                rejected,
                sum(int(f["rejected_total_cents"]) for f in files),
            )
        )
    differ = [
        t
        for f in files
        for t in f.get("file_totals", [])
        if t.get("difference_cents") and t.get("checked", True)
    ]
    # A total that cannot be tied (some of its lines' amounts cannot be read): its rest is
    # those rows', rejected already, but the total is not called tied.
    untied = [t for f in files for t in f.get("file_totals", []) if not t.get("checked", True)]
    if untied:
        attention.append(
            _reason(
                "file totals that cannot be tied (a line's amount cannot be read)",
                len(untied),
                sum(int(t["stated_cents"]) - int(t["computed_cents"]) for t in untied),
            )
        )
    if differ:
        attention.append(
            _reason(
                "file totals that differ from the file's own total rows",
                len(differ),
                sum(int(t["difference_cents"]) for t in differ),
            )
        )
    if held:
        attention.append(
            _reason(
                "files held in the inbox: their layout is not confirmed "
                "(`tieout layout accept FILE`)",
                len(held),
                sum(int(h.get("source_total_cents") or 0) for h in held),
            )
        )
    refused = drops[drops["first_run_id"].isna()] if not drops.empty else pd.DataFrame()
    if len(refused):
        attention.append(
            _reason("files refused as a whole (nothing in them posted)", len(refused), 0)
        )
    state = records["state"] if not records.empty else pd.Series(dtype=object)
    amount = records["amount_cents"] if not records.empty else pd.Series(dtype="int64")

    def tally(mask: pd.Series, text: str, into: list[dict[str, Any]]) -> None:
        if mask.any():
            into.append(_reason(text, int(mask.sum()), int(amount[mask].sum())))

    tally(state.eq("failed"), f"{FAILED_WORDS} (failed)", attention)
    tally(
        state.eq("refused"),
        "requests Propexo refused with a reason (refused): fix the cause, then "
        "`tieout resolve --send-again`",
        attention,
    )
    tally(state.eq("missing"), "missing from Propexo after its sync", attention)
    tally(state.eq("mismatched"), "in Propexo with different fields (mismatched)", attention)
    tally(state.eq("duplicated"), "in Propexo more than once (duplicated)", attention)
    tally(
        state.eq("unverifiable"),
        "outside every sync's date window: check in Rent Manager (unverifiable)",
        attention,
    )
    tally(state.isin(["ready", "submitted"]), "not sent or not answered yet", attention)
    tally(
        state.eq("held"),
        "held, never sent: their absence from Propexo is not proven (`tieout todo`)",
        attention,
    )
    doubt = state.isin(IN_DOUBT)
    # An answer that was another write's is never waited out: only the write log or a person
    # decides which write its job carried (`tieout todo` lists it), whatever its age.
    errors = records["errors"] if "errors" in records else pd.Series("", index=records.index)
    another = doubt & errors.astype(str).str.contains(ANOTHER_WRITE, regex=False)
    tally(
        another,
        f"in doubt: {ANOTHER_WRITE}, never confirmed; its write log or a person decides "
        "(`tieout todo`)",
        attention,
    )
    doubt &= ~another
    if doubt.any():
        since = pd.to_datetime(
            records.get("doubt_since", pd.Series(pd.NA, index=records.index)),
            utc=True,
            errors="coerce",
        )
        age = (pd.Timestamp(now) - since).dt.total_seconds()
        old = doubt & (age.isna() | (age > grace_s))
        tally(old, "in doubt past their grace: settle with `tieout resolve`", attention)
        tally(doubt & ~old, "in doubt, within their grace", waiting)
    if unexpected:
        attention.append(_reason("records in Propexo that tieout did not post", unexpected, 0))
    tally(state.eq("confirmed"), "posted, awaiting Propexo's next sync", waiting)
    if attention:
        return ATTENTION, attention
    if waiting:
        return WAITING, waiting
    return COMPLETE, []


def _with_items(
    verdict: str,
    reasons: list[dict[str, Any]],
    met: list[dict[str, Any]],
    raw: list[dict[str, Any]],
) -> tuple[str, list[dict[str, Any]]]:
    """A run is never complete while it met an open item: the inbox's items are reasons of
    their own, a refused file counts at what it states, and any other item the run met makes
    it need attention (the verdict it had; its verdict now follows the items)."""
    mine = [i for i, r in zip(met, raw, strict=True) if r.get("met", True)]
    if not mine:
        return verdict, reasons
    refused = sum(int(i["amount_cents"]) for i in mine if i["cause"] == "refused_file")
    reasons = [
        {**r, "amount_cents": refused} if r["reason"].startswith("files refused as a whole") else r
        for r in reasons
    ]
    if verdict != ATTENTION:
        reasons = []
    for cause, words in INBOX_REASONS.items():
        found = [i for i in mine if i["cause"] == cause]
        if found:
            reasons.append(_reason(f"{words} (`tieout todo`)", len(found), 0))
    if not reasons:
        reasons = [
            _reason(
                "open items (see `tieout todo`)",
                len(mine),
                sum(int(i["amount_cents"]) for i in mine),
            )
        ]
    return ATTENTION, reasons


def verdict_now(
    items: list[dict[str, Any]],
    files: list[dict[str, Any]],
    drops: pd.DataFrame,
    records: pd.DataFrame,
    unexpected: int,
    now: datetime,
    grace_s: float,
) -> tuple[str, list[dict[str, Any]]]:
    """A run's verdict as things stand now: its rejected rows and refused files count only
    while their items are open (a later run or a person settles them); its records count in
    their states now. A run whose every item was settled later never needs attention for it."""
    tracked = {str(i["sha256"]) for i in items}
    still = [i for i in items if i["state"] == "open"]
    # A file's rejected rows, and a total that could not be tied because of them (its rest
    # is theirs), count now only through their items: open ones say so below.
    rest = [
        {
            **f,
            "rows_rejected": 0,
            "rejected_total_cents": 0,
            "file_totals": [
                t
                for t in f.get("file_totals", [])
                if t.get("checked", True) or not t.get("unreadable")
            ],
        }
        if str(f["sha256"]) in tracked
        else f
        for f in files
    ]
    refused = drops
    if not drops.empty:
        refused = drops[~drops["sha256"].astype(str).isin(tracked)]
    verdict, reasons = decide_verdict(rest, refused, records, unexpected, now, grace_s)
    if still:
        reasons = [
            _reason(
                "open items (see `tieout todo`)",
                len(still),
                sum(int(i["amount_cents"]) for i in still),
            ),
            *(r for r in reasons if verdict == ATTENTION),
        ]
        verdict = ATTENTION
    return verdict, reasons
