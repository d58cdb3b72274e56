"""Load: post ready records to Propexo and follow each write to its outcome.

The order of every step is what makes a crash harmless:

1. the record's intent (``sending``) is committed to the ledger;
2. the POST is sent;
3. the outcome (``submitted`` with its job id, ``refused`` with Propexo's reason for a 4xx, or
   back to ``ready`` when the request provably was not applied) is committed.

A crash between 1 and 3, a 5xx, a lost answer or an answer that cannot be read leaves the record
``sending``: *in doubt*. It is never re-sent blindly; :func:`resolve_in_doubt` first looks for it
in Propexo. An odd answer touches only its own request's records; a refused token (401/403)
stops the posting after the answers in flight are recorded (:class:`TokenRefusedError`).
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from itertools import islice
from typing import Any

import pandas as pd

from pipelines.core.errors import ApiError, PermanentApiError, TokenRefusedError, TransientApiError
from pipelines.core.kind import KindContext, Kinds
from pipelines.core.models import IN_DOUBT, LoadResult, PostRequest
from pipelines.ledger import Ledger, utcnow
from pipelines.posting import writelog
from pipelines.posting.propexo import PropexoClient

POLL_FIRST_S = 0.25
POLL_MAX_S = 5.0

Progress = Callable[[int, int], None]


@dataclass
class Posting:
    """What the answers of one pass of :func:`post_ready` did to its records."""

    submitted: int = 0
    in_doubt: int = 0
    refused: int = 0
    token_refused: TokenRefusedError | None = None  # the first 401/403: posting stops


def _record_post(
    ledger: Ledger, run_id: str, request: PostRequest, future: Future[str], tally: Posting
) -> None:
    """Commit the outcome of one POST into the ledger, and count it into ``tally``."""
    try:
        job_id = future.result()
    except TokenRefusedError as exc:
        # Propexo checks the token before anything else: this request was not applied, and
        # nothing sent with this token will be. Ready again, for a run with a good token.
        ledger.transition(
            request.keys,
            "ready",
            run_id=run_id,
            note=f"not sent: Propexo refused the token ({exc.status_code})",
            detail="not sent: " + str(exc),
        )
        tally.token_refused = tally.token_refused or exc
        return
    except TransientApiError as exc:
        if exc.maybe_applied:
            # It may have landed: leave it in doubt for resolve_in_doubt, never re-send here.
            ledger.transition(
                request.keys,
                "sending",
                run_id=run_id,
                doubt_since=utcnow(),
                note=str(exc),
                detail="in doubt: " + str(exc),
            )
            tally.in_doubt += len(request.keys)
            return
        ledger.transition(
            request.keys, "ready", run_id=run_id, note=str(exc), detail="not sent: " + str(exc)
        )
        return
    except PermanentApiError as exc:
        # A 4xx other than the token's: Propexo refused the request itself (validation), so
        # nothing of it was written. Kept with the reason, open, until a person sends it again
        # after a fix (`tieout resolve --send-again`); never dropped, never re-sent by itself.
        ledger.transition(
            request.keys,
            "refused",
            run_id=run_id,
            errors=[str(exc)],
            note=f"refused by Propexo: {exc}"[:500],
            detail="refused: " + str(exc),
        )
        tally.refused += len(request.keys)
        return
    others = [k for k in ledger.keys_of_job(job_id) if k not in set(request.keys)]
    if others:
        _answer_for_another_write(ledger, run_id, request, job_id, others, tally)
        return
    with ledger.together():
        for index, key in enumerate(request.keys):
            ledger.transition(
                [key],
                "submitted",
                run_id=run_id,
                job_id=job_id,
                batch_index=index,
                detail=f"job {job_id}",
            )
    tally.submitted += len(request.keys)


ANOTHER_WRITE = "answer for another write"


def _answer_for_another_write(
    ledger: Ledger,
    run_id: str,
    request: PostRequest,
    job_id: str,
    others: list[str],
    tally: Posting,
) -> None:
    """A 2xx answer whose job already answers another request (a replayed or misrouted
    answer): it is trusted for neither. Both requests' records are in doubt without the job,
    so only the job's own request, read in the write log, or the record found in Propexo
    decides which write it carried; the other stays open for a person, never confirmed."""
    text = (
        f"{ANOTHER_WRITE}: Propexo's answer named job {job_id}, which already answers "
        f"{others[0]}" + (f" and {len(others) - 1} more" if len(others) > 1 else "")
    )
    with ledger.together():
        ledger.transition(
            list(request.keys),
            "sending",
            run_id=run_id,
            doubt_since=utcnow(),
            errors=[text],
            note=f"in doubt: {text}; the write log or Propexo's data decides",
            detail=text,
        )
        earlier = [k for k in others if ledger.states_of([k]).get("submitted")]
        if earlier:
            # Whichever of the two came first, both carry the words: the one the answer was
            # replayed onto may be either (answers arrive in any order).
            ledger.transition(
                earlier,
                "sending",
                run_id=run_id,
                job_id=None,
                doubt_since=utcnow(),
                errors=[f"{ANOTHER_WRITE}: its job {job_id} also answered {request.keys[0]}"],
                note=f"in doubt: its job {job_id} was also given as the answer to another "
                "write; the write log or Propexo's data decides",
                detail=f"job {job_id} also answered {request.keys[0]}: in doubt",
            )
    tally.in_doubt += len(request.keys)


SLOW_SHARE = 0.2  # Propexo holds back every answer past 80% of a window's budget
MAX_WORKERS = 64


def workers_for(configured: int, limit: int | None) -> int:
    """Enough requests in flight that the 2 s hold-back past 80% is paid once per window.

    Past 80% of the budget every answer takes an extra 2 s (per 60 s of window). With all of
    a window's last 20% in flight at once (30 at Propexo's default 150/min) they are held back
    together, so a window's budget is spent in the time of one hold-back, not one per slot.
    """
    needed = math.ceil((limit or 0) * SLOW_SHARE)
    return max(1, min(MAX_WORKERS, max(configured, needed)))


def post_ready(
    ledger: Ledger,
    client: PropexoClient,
    *,
    run_id: str,
    batch_size: int,
    kinds: Kinds,
    concurrency: int = 1,
    on_progress: Progress | None = None,
) -> tuple[int, Posting]:
    """Post every ``ready`` record. Returns (requests sent, what their answers did).

    Up to ``concurrency`` requests are in flight at once (sharing the client's rate limiter),
    so Propexo's 2 s hold-back past 80% of its window does not cut the rate. Only this thread
    touches the ledger: intent before each submit, outcome as each answer comes back. Once a
    request is answered 401/403 no further request is sent; the answers in flight are still
    recorded, and the caller decides (:func:`load` stops the run).
    """
    requests = kinds.plan_requests(ledger.records(states=["ready"]), batch_size)
    concurrency = workers_for(concurrency, client.limiter.limit)
    tally = Posting()
    done = sent = 0
    pending: dict[Future[str], PostRequest] = {}

    def settle(finished: set[Future[str]]) -> None:
        nonlocal done
        with ledger.together():  # every answer that is in: one commit
            for future in finished:
                _record_post(ledger, run_id, pending.pop(future), future, tally)
                done += 1
                if on_progress:
                    on_progress(done, len(requests))

    slots = max(1, concurrency)
    queue = iter(requests)
    with ThreadPoolExecutor(max_workers=slots) as pool:
        try:
            while True:
                # The intents of as many requests as there are free slots: one commit, then
                # each is sent. The intent of every request still precedes its POST.
                free = 0 if tally.token_refused else slots - len(pending)
                group = list(islice(queue, free))
                sent += len(group)
                if group:
                    with ledger.together():
                        for path in dict.fromkeys(request.path for request in group):
                            ledger.transition(
                                [key for r in group if r.path == path for key in r.keys],
                                "sending",
                                run_id=run_id,
                                sent_at=utcnow(),
                                doubt_since=None,
                                detail=f"POST {path}",
                            )
                    for request in group:
                        pending[pool.submit(client.post_write, request.path, request.body)] = (
                            request
                        )
                if not pending:
                    break
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                settle(finished)
        except BaseException:
            # Interrupted: what is in flight stays "sending" (in doubt) in the ledger.
            for future in pending:
                future.cancel()
            raise
    return sent, tally


_INDEX = re.compile(r"(?<![\w-])charges\[(\d+)\]")


def _reference_token(reference: str) -> re.Pattern[str]:
    """A whole reference number: ``R-1`` is not found inside ``R-10``."""
    return re.compile(r"(?<![\w-])" + re.escape(reference) + r"(?![\w-])")


def attribute_errors(errors: list[str], batch: pd.DataFrame) -> tuple[set[str], bool]:
    """Which records of a batch a PARTIAL_SUCCESS's errors name, and whether every error
    named one. Only exact tokens count: an index Propexo gives (``charges[i]``) or a whole
    reference number; anything else is a PMS string that cannot be tied to a record."""
    keys: set[str] = set()
    every_error_named_one = True
    by_index = dict(zip(batch["batch_index"].astype(int), batch["record_key"], strict=True))
    references = [
        (_reference_token(str(ref)), key)
        for ref, key in zip(batch["reference_number"], batch["record_key"], strict=True)
        if isinstance(ref, str) and ref
    ]
    for error in errors:
        named = {
            by_index[int(m.group(1))] for m in _INDEX.finditer(error) if int(m.group(1)) in by_index
        }
        named |= {key for token, key in references if token.search(error)}
        every_error_named_one &= bool(named)
        keys |= named
    return keys, every_error_named_one


def apply_write_status(
    ledger: Ledger, run_id: str, job: pd.DataFrame, status: dict[str, Any]
) -> None:
    """Record a terminal write-status for every ledger record of one job."""
    outcome = status.get("write_status")
    errors = [str(e) for e in status.get("errors") or []]
    keys = list(job["record_key"])
    now = utcnow()
    if outcome == "SUCCESS":
        ledger.transition(
            keys,
            "confirmed",
            run_id=run_id,
            confirmed_at=now,
            created_record_id=status.get("created_record_id"),
            detail="SUCCESS",
        )
    elif outcome == "FAILURE":
        ledger.transition(
            keys,
            "failed",
            run_id=run_id,
            errors=errors,
            note="; ".join(errors)[:500],
            detail="FAILURE",
        )
    elif outcome == "PARTIAL_SUCCESS":
        bad, complete = attribute_errors(errors, job)
        if bad:
            ledger.transition(
                sorted(bad),
                "failed",
                run_id=run_id,
                errors=errors,
                note="; ".join(errors)[:500],
                detail="PARTIAL_SUCCESS: an error names this record",
            )
        rest = [k for k in keys if k not in bad]
        if complete:
            ledger.transition(
                rest,
                "confirmed",
                run_id=run_id,
                confirmed_at=now,
                detail="PARTIAL_SUCCESS: every error names another record; this one landed",
            )
        else:  # some error names no record: which of the rest landed is not known
            ledger.transition(
                rest,
                "partial",
                run_id=run_id,
                errors=errors,
                confirmed_at=now,
                note="in doubt: PARTIAL_SUCCESS with errors that name no record",
                detail="PARTIAL_SUCCESS: in doubt until a sync proves it present or absent",
            )


LOGS_PAGE = 100
LOGS_MAX_PAGES = 1000  # 100,000 jobs: more than a day of writes at Propexo's rate
LOGS_WORTH_IT = 3  # below this many open jobs, asking each one is as cheap as the log


def finished_jobs_from_logs(
    client: PropexoClient, integration_id: str, wanted: set[str]
) -> dict[str, str]:
    """Terminal status (SUCCESS or FAILURE) of many jobs from the write log, a page per 100."""
    found: dict[str, str] = {}
    for page in range(LOGS_MAX_PAGES):
        logs = client.write_logs(integration_id, offset=page * LOGS_PAGE, limit=LOGS_PAGE)
        for entry in logs:
            if entry.get("job_id") in wanted:
                found[str(entry["job_id"])] = str(entry.get("status"))
        if len(logs) < LOGS_PAGE or wanted <= set(found):
            break
    return found


UNKNOWN_JOB_STATUSES = (400, 404, 410, 422)


def _poll_one(
    ledger: Ledger, client: PropexoClient, run_id: str, job_id: str, job: pd.DataFrame
) -> None:
    try:
        status = client.write_status(job_id)
    except PermanentApiError as exc:
        if exc.status_code not in UNKNOWN_JOB_STATUSES:
            raise
        # Propexo no longer knows the job (expired, or never really created): whether the write
        # landed is unknown, so its records are in doubt; the other jobs are still followed.
        ledger.transition(
            list(job["record_key"]),
            "sending",
            run_id=run_id,
            doubt_since=utcnow(),
            note="in doubt: Propexo does not know this job",
            detail=str(exc),
        )
        return
    except ApiError:
        return  # transient: asked again next round
    if status.get("write_status") not in (None, "PENDING"):
        apply_write_status(ledger, run_id, job, status)


LOG_MARGIN_S = 0.5  # a log read scheduled for a job's expected entry waits this much more
LOG_FIRST_S = 1.0  # the log's backoff while it has shown none of the jobs: a read costs as
# much as one write-status, and the log lists a job only seconds after it finished


def _needs_id(job: pd.DataFrame, kinds: Kinds) -> bool:
    """A job of one record whose write-status answer carries that record's own id."""
    return len(job) == 1 and str(job["kind"].iloc[0]) in kinds.id_from_write_status


def _answered(job: pd.DataFrame) -> pd.Timestamp:
    """When Propexo's answer with this job's id was recorded (the job began about then)."""
    return pd.to_datetime(job["updated_at"], utc=True, errors="coerce").max()


@dataclass
class _LogFollow:
    """Following jobs in the write log: when it is next worth reading, and how late it is."""

    next_at: float
    delay: float = LOG_FIRST_S  # backoff while the log has shown none of the jobs yet
    newest_listed: pd.Timestamp | None = None  # the newest answer among jobs it did show

    def read(
        self,
        ledger: Ledger,
        client: PropexoClient,
        run_id: str,
        logged: dict[str, pd.DataFrame],
        *,
        last_round: bool,
        now: float,
        kinds: Kinds,
    ) -> list[str]:
        """One read of the log for ``logged``; settles the batches it shows succeeded and
        returns the jobs write-status must still be asked about."""
        integration_id = str(next(iter(logged.values()))["integration_id"].iloc[0])
        from_log = finished_jobs_from_logs(client, integration_id, set(logged))
        ask: list[str] = []
        for job_id, status in from_log.items():
            job = logged[job_id]
            if status == "SUCCESS" and not _needs_id(job, kinds):
                # A batch: created_record_id is the first id of the whole job chain, no
                # record's own (and null for RM charges and credits): nothing to keep.
                apply_write_status(ledger, run_id, job, {"write_status": "SUCCESS", "errors": []})
            else:  # a failure's errors[], or an invoice's created_record_id
                ask.append(job_id)
        unlisted = [j for j in logged if j not in from_log]
        if last_round:
            # Not in the log yet on the last round: still running, or a job Propexo no longer
            # knows; only write-status can tell which.
            return ask + unlisted
        for job_id in from_log:
            answered = _answered(logged[job_id])
            if pd.notna(answered) and (self.newest_listed is None or answered > self.newest_listed):
                self.newest_listed = answered
        wait_s = self.delay
        if unlisted and from_log and self.newest_listed is not None:
            # A job answered at t shows by about t + (now - newest shown's answer): read again
            # when the newest still missing should be there.
            gap = max(_answered(logged[j]) for j in unlisted) - self.newest_listed
            if pd.notna(gap):
                wait_s = max(gap.total_seconds(), 0.0) + LOG_MARGIN_S
        else:  # nothing new shown: how late the log is, is not known yet
            self.delay = min(POLL_MAX_S, self.delay * 2)
        self.next_at = now + wait_s
        return ask


def wait_for_jobs(
    ledger: Ledger,
    client: PropexoClient,
    *,
    run_id: str,
    timeout_s: float,
    kinds: Kinds,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Follow every submitted job to a terminal status, with backoff, until time runs out.

    Each request is spent where it answers most. A job whose write-status carries its record's
    own id (an invoice: ``kinds.id_from_write_status``) is asked write-status
    first: that answer has the ``created_record_id`` the log lacks, so the log would cost one
    request more. Batches, when there are many, are followed in the
    write log (one page answers for up to 100); only jobs it shows failed are asked about one
    by one (for the errors that name the bad records). The log shows a job only some time
    after it finished, so it is read again not on a fixed backoff but when the jobs still
    missing from it should be there: as long after their answers as the newest job it did
    show had taken. With few jobs, or no write log, write-status is asked directly. Returns how
    many records are still ``submitted`` (the next run asks again).
    """
    deadline = clock() + timeout_s
    delay = POLL_FIRST_S
    use_log = True
    log = _LogFollow(next_at=clock())
    asked: set[str] = set()  # invoices' jobs asked write-status once already
    while True:
        submitted = ledger.records(states=["submitted"])
        if submitted.empty:
            return 0
        jobs = {str(job_id): job for job_id, job in submitted.groupby("job_id", sort=False)}
        last_round = clock() >= deadline
        # An invoice's job, the first time: write-status, whose answer has its id. After that
        # (it was pending), it waits in the log with the rest, and is asked again once the log
        # shows it succeeded.
        direct = [j for j, job in jobs.items() if _needs_id(job, kinds) and j not in asked]
        logged = {j: job for j, job in jobs.items() if j not in direct}
        if not use_log or len(logged) < LOGS_WORTH_IT:
            direct, logged = list(jobs), {}
        if logged and (last_round or clock() >= log.next_at):
            try:
                direct += log.read(
                    ledger, client, run_id, logged, last_round=last_round, now=clock(), kinds=kinds
                )
            except ApiError:
                use_log = False  # no write log here: write-status from now on
                direct = list(jobs)
        for job_id in dict.fromkeys(direct):
            asked.add(job_id)
            _poll_one(ledger, client, run_id, job_id, jobs[job_id])
        if last_round:
            return len(ledger.records(states=["submitted"]))
        pause = delay if direct else max(log.next_at - clock(), 0.0)
        sleep(max(min(pause, deadline - clock()), 0.0))
        if direct:
            delay = min(POLL_MAX_S, delay * 2)


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


def load(
    ledger: Ledger,
    client: PropexoClient,
    *,
    run_id: str,
    batch_size: int,
    status_timeout_s: float,
    kinds: Kinds,
    concurrency: int = 1,
    on_progress: Progress | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> LoadResult:
    """Post what is ready, then follow every job to its outcome. The counts are of this pass:
    the records that were ready when it began."""
    started = time.monotonic()
    ready = ledger.records(states=["ready"], columns=["record_key"])["record_key"].tolist()
    requests, posting = post_ready(
        ledger,
        client,
        run_id=run_id,
        batch_size=batch_size,
        kinds=kinds,
        concurrency=concurrency,
        on_progress=on_progress,
    )
    if posting.token_refused is not None:
        left = ledger.states_of(ready).get("ready", 0)
        raise TokenRefusedError(
            f"Propexo refused the token ({posting.token_refused.status_code}) while posting: "
            "check PROPEXO_API_TOKEN (`tieout doctor` checks it), then run again; "
            f"the {left:,} records not sent stay ready and that run sends them",
            status_code=posting.token_refused.status_code,
        ) from posting.token_refused
    wait_for_jobs(
        ledger, client, run_id=run_id, timeout_s=status_timeout_s, kinds=kinds, sleep=sleep
    )
    states = ledger.states_of(ready)
    return LoadResult(
        requests=requests,
        submitted=posting.submitted,
        confirmed=states.get("confirmed", 0),
        failed=states.get("failed", 0) + states.get("refused", 0),
        in_doubt=sum(states.get(s, 0) for s in IN_DOUBT),
        rate_limited=client.limiter.rate_limited,
        seconds=time.monotonic() - started,
    )


def describe_plan(requests: list[PostRequest], rate_limit: int = 150) -> dict[str, Any]:
    """What a dry run prints: requests and amounts per location, and the time it would take."""
    per_location: dict[str, dict[str, int]] = {}
    for request in requests:
        entry = per_location.setdefault(
            request.location_id or "?", {"requests": 0, "records": 0, "amount_cents": 0}
        )
        entry["requests"] += 1
        entry["records"] += len(request.keys)
        entry["amount_cents"] += request.amount_cents
    minutes = len(requests) / max(rate_limit, 1)
    return {
        "requests": len(requests),
        "records": sum(len(r.keys) for r in requests),
        "by_location": per_location,
        "estimated_minutes": round(minutes, 2),
        "payload_bytes": sum(len(json.dumps(r.body)) for r in requests),
    }
