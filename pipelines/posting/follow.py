"""Following jobs: each submitted job to its terminal write-status, through write-status or,
for many batches, Propexo's write log (:func:`wait_for_jobs`); a terminal status recorded for
each of its records (:func:`apply_write_status`, a PARTIAL_SUCCESS's errors tied to the records
they name by :func:`attribute_errors`)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

import pandas as pd

from pipelines.core.errors import ApiError, PermanentApiError
from pipelines.core.kind import Kinds
from pipelines.ledger import Ledger, utcnow
from pipelines.posting import writelog
from pipelines.posting.propexo import PropexoClient

POLL_FIRST_S = 0.25
POLL_MAX_S = 5.0


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
    ledger: Ledger,
    client: PropexoClient,
    run_id: str,
    job_id: str,
    job: pd.DataFrame,
    fresh: bool = False,
) -> None:
    """Ask write-status about one job. ``fresh``: its answer came in this run, so a job Propexo
    does not know was never its job (a misrouted or made-up answer), not one since expired."""
    try:
        status = client.write_status(job_id)
    except PermanentApiError as exc:
        if exc.status_code not in UNKNOWN_JOB_STATUSES:
            raise
        # Propexo does not know the job (expired, or never really created): whether the write
        # landed is unknown, so its records are in doubt; the other jobs are still followed.
        # A job its answer named moments ago is not theirs: dropped (only the write log's jobs
        # or Propexo's data can decide).
        fields: dict[str, Any] = {}
        note = "in doubt: Propexo does not know this job"
        if fresh:
            fields["job_id"] = None
            text = (
                f"{writelog.ANOTHER_WRITE}: the answer to its POST named job {job_id}, which "
                "Propexo does not know"
            )
            fields["errors"] = [text]
            note = f"in doubt: {text}; the write log or Propexo's data decides"
        ledger.transition(
            list(job["record_key"]),
            "sending",
            run_id=run_id,
            doubt_since=utcnow(),
            note=note,
            detail=f"job {job_id}: {exc}",
            **fields,
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
    answered: Collection[str] = (),
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
    many records are still ``submitted`` (the next run asks again). ``answered``: the jobs
    whose answers came in this run (one of them unknown to Propexo was never a job of theirs).
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
            _poll_one(ledger, client, run_id, job_id, jobs[job_id], job_id in answered)
        if last_round:
            return len(ledger.records(states=["submitted"]))
        pause = delay if direct else max(log.next_at - clock(), 0.0)
        sleep(max(min(pause, deadline - clock()), 0.0))
        if direct:
            delay = min(POLL_MAX_S, delay * 2)
