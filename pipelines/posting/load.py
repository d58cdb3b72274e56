"""Load: post ready records to Propexo and follow each write to its outcome.

The order of every step is what makes a crash harmless:

1. the record's intent (``sending``) is committed to the ledger;
2. the POST is sent;
3. the outcome (``submitted`` with its job id, ``refused`` with Propexo's reason for a 4xx, or
   back to ``ready`` when the request provably was not applied) is committed.

A 2xx answer is trusted only for its own write: what it echoes of the request must name the
records this request sent (:func:`_answer_unlike_request`); otherwise they are in doubt, an
"answer for another write", or (an answer that echoes nothing) until the write log's request for
its job carries them. Jobs are followed in :mod:`pipelines.posting.follow`; records in doubt are
settled in :mod:`pipelines.posting.doubt` (their public names are importable from here too).

A crash between 1 and 3, a 5xx, a lost answer or an answer that cannot be read leaves the record
``sending``: *in doubt*. It is never re-sent blindly; :func:`resolve_in_doubt` first looks for it
in Propexo. An odd answer touches only its own request's records; a refused token (401/403)
stops the posting after the answers in flight are recorded (:class:`TokenRefusedError`).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from pipelines.core.errors import PermanentApiError, TokenRefusedError, TransientApiError
from pipelines.core.kind import Kind, Kinds
from pipelines.core.models import IN_DOUBT, LoadResult, PostRequest
from pipelines.ledger import Ledger, utcnow
from pipelines.posting import writelog
from pipelines.posting.doubt import NO_JOB, resolve_in_doubt
from pipelines.posting.follow import (
    POLL_FIRST_S,
    POLL_MAX_S,
    UNKNOWN_JOB_STATUSES,
    apply_write_status,
    attribute_errors,
    finished_jobs_from_logs,
    wait_for_jobs,
)
from pipelines.posting.payloads import content_hash
from pipelines.posting.propexo import PropexoClient

# Following jobs and settling doubt live in posting.follow and posting.doubt; their public
# names stay importable from here.
__all__ = [
    "ANOTHER_WRITE",
    "NO_JOB",
    "POLL_FIRST_S",
    "POLL_MAX_S",
    "UNKNOWN_JOB_STATUSES",
    "Posting",
    "apply_write_status",
    "attribute_errors",
    "describe_plan",
    "finished_jobs_from_logs",
    "load",
    "post_ready",
    "resolve_in_doubt",
    "wait_for_jobs",
    "workers_for",
]

Progress = Callable[[int, int], None]


@dataclass
class Posting:
    """What the answers of one pass of :func:`post_ready` did to its records."""

    submitted: int = 0
    in_doubt: int = 0
    refused: int = 0
    token_refused: TokenRefusedError | None = None  # the first 401/403: posting stops
    answered: set[str] = field(default_factory=set)  # the jobs its answers named, as their own


def _record_post(
    ledger: Ledger,
    run_id: str,
    request: PostRequest,
    future: Future[str],
    tally: Posting,
    kind: Kind,
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
    unlike = _answer_unlike_request(request, job_id, kind)
    if unlike is not None:
        # An answer for other records is not followed; one that shows none keeps its job for
        # the write log to check (the log's request for it must carry these records).
        keep = str(job_id) if unlike.startswith(UNSHOWN) else None
        _answer_not_its_own(ledger, run_id, request, unlike, keep, tally)
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
    tally.answered.add(str(job_id))


ANOTHER_WRITE = writelog.ANOTHER_WRITE
UNSHOWN = "an answer that does not show which write it answers"


def _shown(items: frozenset[str], most: int = 3) -> str:
    names = sorted(i.split(":", 1)[-1] for i in items)
    return ", ".join(names[:most]) + (f" and {len(names) - most} more" if len(names) > most else "")


def _item_digests(body: Any, kind: Kind, fields: set[str]) -> list[str]:
    """Each written item's digest over ``fields`` (a field an echo leaves out counts as null)."""
    items = kind.written_items(body) if isinstance(body, dict) else []
    return sorted(
        content_hash({f: item.get(f) for f in fields}) for item in items if isinstance(item, dict)
    )


def _answer_unlike_request(request: PostRequest, job_id: str, kind: Kind) -> str | None:
    """Whether a 2xx answer is for another write: what it echoes of the request it answers
    (``result``: Propexo echoes the request with its job) names other records than the
    request sent; or it echoes none, so only Propexo's write log can tell which write its job
    carried. None: the answer is this request's own. A kind whose writes have no identity
    (:attr:`Kind.identity`) is compared by its items' digests over the fields sent; with no
    echo it cannot be checked at all (nor found in the write log) and is taken as before."""
    echo = getattr(job_id, "echo", None)
    sent = writelog.request_identities(request.body, kind)
    if not sent:
        fields = {
            f for item in kind.written_items(request.body) if isinstance(item, dict) for f in item
        }
        if not isinstance(echo, dict) or _item_digests(echo, kind, fields) == _item_digests(
            request.body, kind, fields
        ):
            return None
        return (
            f"{ANOTHER_WRITE}: Propexo's answer named job {job_id} for a request whose digest is "
            "not this request's"
        )
    shown = writelog.request_identities(echo, kind) if isinstance(echo, dict) else frozenset()
    if shown == sent:
        return None
    if not shown:
        return (
            f"{UNSHOWN}: Propexo's answer named job {job_id} but echoed no {kind.plural}; "
            "its write log decides which write that job carried"
        )
    return (
        f"{ANOTHER_WRITE}: Propexo's answer named job {job_id} for {_shown(shown)}, not for "
        f"{_shown(sent)} that this request sent"
    )


def _answer_not_its_own(
    ledger: Ledger,
    run_id: str,
    request: PostRequest,
    text: str,
    job_id: str | None,
    tally: Posting,
) -> None:
    """The records of a request whose answer is not shown to be its own: in doubt (never
    followed to a confirmation by write-status), open for the write log or Propexo's data to
    decide (`tieout todo` lists them; a person may `tieout resolve`)."""
    ledger.transition(
        list(request.keys),
        "sending",
        run_id=run_id,
        job_id=job_id,
        doubt_since=utcnow(),
        errors=[text],
        note=f"in doubt: {text}; the write log or Propexo's data decides"[:500],
        detail=text,
    )
    tally.in_doubt += len(request.keys)


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
    ready = ledger.records(states=["ready"])
    planned = [
        (request, kind)
        for kind in kinds
        for request in kind.plan_requests(kinds.of(ready, kind), batch_size)
    ]
    requests = [request for request, _ in planned]
    kind_of = {id(request): kind for request, kind in planned}  # whose answers are checked
    concurrency = workers_for(concurrency, client.limiter.limit)
    tally = Posting()
    done = sent = 0
    pending: dict[Future[str], PostRequest] = {}

    def settle(finished: set[Future[str]]) -> None:
        nonlocal done
        with ledger.together():  # every answer that is in: one commit
            for future in finished:
                request = pending.pop(future)
                _record_post(ledger, run_id, request, future, tally, kind_of[id(request)])
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
        ledger,
        client,
        run_id=run_id,
        timeout_s=status_timeout_s,
        kinds=kinds,
        sleep=sleep,
        answered=posting.answered,
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
