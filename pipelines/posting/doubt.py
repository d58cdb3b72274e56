"""Records in doubt settled on evidence: found in Propexo's data, or a job in its write log that
carried them (:func:`resolve_in_doubt`); never re-sent on a guess."""

from __future__ import annotations

import math

import pandas as pd

from pipelines.core.errors import ApiError
from pipelines.core.kind import KindContext, Kinds
from pipelines.core.models import IN_DOUBT
from pipelines.ledger import Ledger, utcnow
from pipelines.posting import writelog
from pipelines.posting.propexo import PropexoClient


def resolve_in_doubt(
    ledger: Ledger,
    client: PropexoClient,
    *,
    run_id: str,
    ctx: KindContext,
    resend_unlogged_after_s: float | None = None,
) -> dict[str, int]:
    """Settle records in doubt on evidence: found in Propexo's data, or Propexo's write log.

    Found needs the record itself: an invoice by (vendor, invoice number), at once; a charge or
    credit by its whole reference number, once a sync has brought it. Else the write log is
    searched (:mod:`pipelines.posting.writelog`) for the job that carried it: SUCCESS → confirmed;
    FAILURE → ``failed``, still looked for in synced data by reconcile (a PMS can apply a write
    Propexo marks failed). No job carrying it proves nothing (a job still pending looks the
    same): it stays in doubt, each search recorded as an event, until a person settles it
    (`tieout resolve`), or, when a team opts in with ``resend_unlogged_after_s``, that long
    after its POST with the log read at least twice since then. No sync, webhook or clock
    comparison ever sends money again.
    """
    doubt = ledger.records(states=list(IN_DOUBT))
    counts = {"found": 0, "logged": 0, "failed": 0, "absent": 0, "waiting": 0, "ambiguous": 0}
    if doubt.empty:
        return counts
    found: dict[str, str | None] = {}
    ambiguous: set[str] = set()
    for kind in ctx.kinds:
        mine = ctx.kinds.of(doubt, kind)
        if not mine.empty:
            hits, unsure = kind.find_in_doubt(ctx, mine)
            found |= hits
            ambiguous |= unsure
    now = utcnow()
    for key, propexo_id in found.items():
        ledger.transition(
            [key],
            "confirmed",
            run_id=run_id,
            confirmed_at=now,
            **({"created_record_id": propexo_id} if propexo_id else {}),
            detail="in doubt → found in Propexo",
        )
    counts["found"] = len(found)
    # A PARTIAL_SUCCESS's own job is known: the log adds nothing to it (and lists it as a
    # FAILURE); only an unanswered write is looked for there.
    rest = doubt[~doubt["record_key"].isin(list(found)) & doubt["state"].eq("sending")]
    for key in doubt.loc[doubt["state"].ne("sending"), "record_key"].astype(str):
        if key not in found:
            _note(
                ledger,
                key,
                "in doubt: a PARTIAL_SUCCESS whose errors name no record; "
                "waiting for it in Propexo's data, or `tieout resolve`",
            )
            counts["waiting"] += 1
    if rest.empty:
        return counts
    posted, searchable, evidence = _search_log(ledger, client, rest, now, ctx.kinds)
    searched = evidence.describe()
    too_old = writelog.LogSearch(None).describe()
    absent: list[str] = []
    with ledger.together():  # every record's outcome and evidence: one commit
        for key, sent, is_ambiguous, can_search in zip(
            rest["record_key"].astype(str),
            posted,
            rest["record_key"].isin(list(ambiguous)),
            searchable,
            strict=True,
        ):
            if not can_search:
                _note(
                    ledger, key, f"in doubt: {too_old}; look in Rent Manager, then `tieout resolve`"
                )
                counts["waiting"] += 1
                continue
            job = evidence.carried.get(key)
            named = evidence.another.get(key)
            if job is None and named is not None:
                # The job its answer named is in the log, for other records: not its own.
                text = (
                    f"{writelog.ANOTHER_WRITE}: the answer to its POST named job {named.job_id}, "
                    "whose request in Propexo's write log carries other records"
                )
                ledger.transition(
                    [key], "sending", run_id=run_id, job_id=None, errors=[text], detail=text
                )
            if job is not None:
                confirmed = writelog.record_verdict(
                    ledger,
                    key,
                    job,
                    run_id=run_id,
                    now=now,
                    said=f"in doubt → {searched}",
                    note=f"write log: job {job.job_id} {job.status}; reconcile still looks for it "
                    "in Propexo's data before anything is sent again",
                )
                counts["logged" if confirmed else "failed"] += 1
            elif _resend_due(ledger, key, sent, evidence, resend_unlogged_after_s, now):
                absent.append(key)
            else:
                # The evidence, as an event: what a person is shown, and what the opt-in counts.
                ledger.transition([key], "sending", run_id=run_id, detail=f"{searched}: {NO_JOB}")
                _note(
                    ledger,
                    key,
                    (
                        "in doubt: a charge with the same resident, code, amount and date is in "
                        "Propexo without our reference; "
                        if is_ambiguous
                        else "in doubt: "
                    )
                    + f"no job in Propexo's write log carries it yet ({searched}); it may still "
                    "be pending. Look in Rent Manager, then `tieout resolve`",
                )
                counts["ambiguous" if is_ambiguous else "waiting"] += 1
    if absent:
        ledger.transition(
            absent,
            "ready",
            run_id=run_id,
            detail=f"in doubt → {searched}: no job carries it, the log read at least twice "
            "since resend_unlogged_after_s had passed; will re-send",
        )
        counts["absent"] = len(absent)
    return counts


def _search_log(
    ledger: Ledger, client: PropexoClient, rest: pd.DataFrame, now: str, kinds: Kinds
) -> tuple[pd.Series, pd.Series, writelog.LogSearch]:
    """Each record's POST time, whether the log reaches back to it, and one search for all
    those it does (in the range the oldest of them needs)."""
    posted = pd.to_datetime(rest["sent_at"].fillna(rest["created_at"]), utc=True, errors="coerce")
    ages = (pd.Timestamp(now) - posted).dt.total_seconds()
    # Past the log's longest range a record cannot be searched for; the rest are, at once.
    searchable = ages.notna() & ages.map(lambda age: writelog.time_range_for(age) is not None)
    age_s = float(ages[searchable].max()) if searchable.any() else math.inf
    known = ledger.records(states=None, columns=["job_id"])["job_id"].dropna().astype(str)
    integration_id = str(rest["integration_id"].iloc[0])
    try:
        evidence = writelog.search(
            client,
            integration_id,
            rest[searchable],
            age_s=age_s,
            known_jobs=set(known),
            kinds=kinds,
        )
    except ApiError as exc:
        evidence = writelog.LogSearch(None)
        evidence.unread.append(f"the write log could not be read: {exc}")
    return posted, searchable, evidence


NO_JOB = "no job carries it"


def _resend_due(
    ledger: Ledger,
    key: str,
    sent: pd.Timestamp,
    evidence: writelog.LogSearch,
    after_s: float | None,
    now: str,
) -> bool:
    """The team's opt-in: ``after_s`` since the POST, and this complete search plus at least
    one earlier one made after that moment found no job carrying it."""
    if after_s is None or not evidence.complete or pd.isna(sent):
        return False
    due = sent + pd.Timedelta(seconds=after_s)
    if pd.Timestamp(now) < due:
        return False
    earlier = [
        at
        for at, _, to_state, detail in ledger.events(key)
        if to_state == "sending" and detail and detail.endswith(NO_JOB)
    ]
    return any(pd.Timestamp(at) >= due for at in earlier)


def _note(ledger: Ledger, key: str, note: str) -> None:
    ledger.set_note(key, note)
