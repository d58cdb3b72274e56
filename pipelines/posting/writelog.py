"""Propexo's own record of writes, read as evidence: which job, if any, carried a record.

The write log (``GET /v1/admin/logs/writes/``) lists a job only once it has finished, by time
range (hour, day, week, month), newest first, and often without its request (``parameters``
null): each candidate job's request is then read from its job log (a 302 to a presigned URL).
What it proves about a record:

* a job carrying it (what its kind says identifies it: a charge's reference number, an
  invoice's vendor and number), SUCCESS: it landed;
* FAILURE: Propexo says nothing landed, but a PMS can apply a write Propexo marks failed, so
  Propexo's synced data is still looked at before anything is sent again;
* no job carrying it proves nothing on its own: a job still pending (for as long as Propexo
  lets one be), or finished but not logged yet, looks the same. Only a person (`tieout
  resolve`), or a team's opt-in ``resend_unlogged_after_s``, decides to send it again.

No webhook, sync time or clock comparison enters here: the time range only has to reach back
past the POST, with a margin for the two clocks.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import pandas as pd

from pipelines.core.errors import ApiError
from pipelines.core.kind import Kind, Kinds
from pipelines.ledger import Ledger
from pipelines.posting.propexo import PropexoClient

# Propexo's time ranges, each with how far back it certainly reaches (a month: 28 days).
SPANS = (("hour", 3600.0), ("day", 86400.0), ("week", 7 * 86400.0), ("month", 28 * 86400.0))
REACH_S = 900.0  # the range reaches this much further back than the POST: clocks differ
PAGE = 100
ANOTHER_WRITE = "answer for another write"  # an answer, or a job, that is not the record's own
MAX_PAGES = 1000
_BODIES: dict[
    str, frozenset[str]
] = {}  # job log id → identities of its request (jobs never change)


def time_range_for(age_s: float) -> str | None:
    """The smallest time range that reaches back ``age_s`` seconds and a margin; None past a
    month (the log cannot be searched so far back: a person decides)."""
    for name, span in SPANS:
        if age_s + REACH_S <= span:
            return name
    return None


@dataclass(frozen=True)
class LoggedJob:
    job_id: str
    status: str
    created_at: str
    error: str | None


@dataclass
class LogSearch:
    """One search of the write log: what was searched, read and found (a person is shown it)."""

    time_range: str | None
    listed: int = 0  # log entries read
    read: list[str] = field(default_factory=list)  # jobs whose request was read
    unread: list[str] = field(default_factory=list)  # jobs whose request could not be read
    carried: dict[str, LoggedJob] = field(default_factory=dict)  # record key → its job
    # record key → the job its answer named, whose request (read) carried other records
    another: dict[str, LoggedJob] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        """Every candidate job's request was read: a record in none of them is in no
        finished job of the range (which still says nothing of a job not finished)."""
        return self.time_range is not None and not self.unread

    def describe(self) -> str:
        if self.time_range is None and self.unread:
            return self.unread[0]
        if self.time_range is None:
            return "the write log cannot be searched back to this POST (older than a month)"
        text = (
            f"write log searched (time_range={self.time_range}, {self.listed} jobs listed, "
            f"{len(self.read)} requests read"
        )
        if self.unread:
            text += f", {len(self.unread)} unreadable: {', '.join(self.unread[:3])}"
        return text + ")"


def request_identities(body: Any, kind: Kind) -> frozenset[str]:
    """Every record identity one request of ``kind`` carries (a batch's items, or the one
    body), as the kind tells them (:attr:`Kind.identity`)."""
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except ValueError:
            return frozenset()
    if not isinstance(body, dict):
        return frozenset()
    items = kind.written_items(body)
    return frozenset(i for i in (kind.identity(x) for x in items if isinstance(x, Mapping)) if i)


def record_identities(records: pd.DataFrame, kinds: Kinds) -> dict[str, list[str]]:
    """identity → the ledger's record keys that carry it."""
    out: dict[str, list[str]] = {}
    for row in cast(list[dict[str, Any]], records.to_dict("records")):
        found = kinds.record(str(row["kind"])).identity(row)
        if found:
            out.setdefault(found, []).append(str(row["record_key"]))
    return out


def entries(
    client: PropexoClient, integration_id: str, time_range: str, category: str
) -> Iterator[dict[str, Any]]:
    """Every entry of the log in a range and write category, every status, page by page."""
    for page in range(MAX_PAGES):
        logs = client.write_logs(
            integration_id,
            offset=page * PAGE,
            limit=PAGE,
            time_range=time_range,
            write_category=category,
            evidence=True,
        )
        yield from logs
        if len(logs) < PAGE:
            return


def _identities_of(
    client: PropexoClient, entry: dict[str, Any], search: LogSearch, kind: Kind
) -> frozenset[str]:
    parameters = entry.get("parameters")
    if isinstance(parameters, dict) and parameters:
        return request_identities(parameters, kind)
    log_id = str(entry.get("job_log_id") or "")
    if log_id in _BODIES:
        return _BODIES[log_id]
    try:
        data = client.job_log_data(log_id)
    except ApiError:
        search.unread.append(str(entry.get("job_id")))
        return frozenset()
    request = data.get("request")
    body = request.get("body") if isinstance(request, dict) else None
    found = request_identities(body, kind)
    search.read.append(str(entry.get("job_id")))
    if len(_BODIES) < 100_000:
        _BODIES[log_id] = found
    return found


def _own_request(client: PropexoClient, entry: dict[str, Any], kind: Kind) -> frozenset[str] | None:
    """The identities the request of the job a record's answer named carries, or None when it
    cannot be read (or names no record: not a request this kind can tell)."""
    parameters = entry.get("parameters")
    if isinstance(parameters, dict) and parameters:
        shown = request_identities(parameters, kind)
        if shown:
            return shown
    log_id = str(entry.get("job_log_id") or "")
    if log_id and log_id not in _BODIES:
        try:
            data = client.job_log_data(log_id)
        except ApiError:
            return None
        request = data.get("request")
        found = request_identities(request.get("body") if isinstance(request, dict) else None, kind)
        if len(_BODIES) < 100_000:
            _BODIES[log_id] = found
    return _BODIES.get(log_id) or None


def search(
    client: PropexoClient,
    integration_id: str,
    records: pd.DataFrame,
    *,
    age_s: float,
    known_jobs: set[str],
    kinds: Kinds,
) -> LogSearch:
    """Look for the job that carried each of ``records`` in the log of the last ``age_s``
    seconds (and a margin), in the log category of each record's kind (its Propexo model),
    each request read as that kind tells its records (:attr:`Kind.identity`). A record whose
    own job id the log lists is carried by it; other jobs are candidates unless the ledger
    already knows them (their records are known), and their requests are read to find the
    records' identities."""
    result = LogSearch(time_range_for(max(age_s, 0.0)))
    if result.time_range is None or records.empty:
        return result
    wanted = record_identities(records, kinds)
    identity_of = {key: found for found, keys in wanted.items() for key in keys}
    own_jobs: dict[str, list[str]] = {}
    if "job_id" in records:
        for key, job_id in zip(records["record_key"], records["job_id"], strict=True):
            if isinstance(job_id, str) and job_id:
                own_jobs.setdefault(job_id, []).append(str(key))
    searched = {
        kinds.record(str(name)).sync_model: kinds.record(str(name))
        for name in records["kind"].unique()
    }
    for _, kind in sorted(searched.items()):
        for entry in entries(client, integration_id, result.time_range, kind.sync_model):
            result.listed += 1
            job = LoggedJob(
                str(entry.get("job_id")),
                str(entry.get("status")),
                str(entry.get("created_at")),
                entry.get("error"),
            )
            keys = list(own_jobs.get(job.job_id, []))
            if keys:
                # The job the answer named carried the record only if its request did; a
                # request that cannot be read proves nothing (the search is not complete).
                carries = _own_request(client, entry, kind)
                if carries is None:
                    result.unread.append(job.job_id)
                    keys, carries = [], frozenset()
                for key in [k for k in keys if identity_of.get(k) not in (None, *carries)]:
                    keys.remove(key)
                    result.another[key] = job
            if job.job_id not in known_jobs:
                for found in _identities_of(client, entry, result, kind) & set(wanted):
                    keys += wanted[found]
            for key in keys:
                held = result.carried.get(key)
                if held is None or (held.status != "SUCCESS" and job.status == "SUCCESS"):
                    result.carried[key] = job
    return result


def logged_posts(
    client: PropexoClient, integration_id: str, kind: Kind, known_jobs: set[str]
) -> list[dict[str, Any]]:
    """Every record the write log of the last month shows posted by a SUCCESS job of a
    kind's category, as its request wrote it (a batch's items one by one), with its job's id
    and type: what a rebuilt ledger adopts when no sync has brought it yet."""
    items: list[dict[str, Any]] = []
    for entry in entries(client, integration_id, SPANS[-1][0], kind.sync_model):
        job_id = str(entry.get("job_id"))
        if entry.get("status") != "SUCCESS" or job_id in known_jobs:
            continue
        body = entry.get("parameters")
        if not isinstance(body, dict) or not body:
            request = client.job_log_data(str(entry.get("job_log_id"))).get("request")
            body = request.get("body") if isinstance(request, dict) else None
        if isinstance(body, str):
            body = json.loads(body)
        if not isinstance(body, dict):
            continue
        for item in kind.written_items(body):
            if isinstance(item, dict):
                items.append({**item, "job_id": job_id, "job_type": entry.get("job_type")})
    return items


def record_verdict(
    ledger: Ledger, key: str, job: LoggedJob, *, run_id: str, now: str, said: str, note: str
) -> bool:
    """The write log's verdict on one record, the one rule: a job that carried it and
    succeeded makes it confirmed (never sent again); any other outcome makes it failed, with
    ``note`` (reconcile still looks for it in Propexo's data: a PMS may apply a write Propexo
    calls failed). ``said``: where the evidence came from, for the event. True when confirmed."""
    detail = f"{said}: job {job.job_id} carried it, {job.status}"
    if job.status == "SUCCESS":
        ledger.transition(
            [key], "confirmed", run_id=run_id, confirmed_at=now, job_id=job.job_id, detail=detail
        )
        return True
    ledger.transition(
        [key],
        "failed",
        run_id=run_id,
        job_id=job.job_id,
        errors=[job.error or job.status],
        note=note,
        detail=detail,
    )
    return False
