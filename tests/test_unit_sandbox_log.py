"""The sandbox's write log, its events and its rate limit, in process: a job shows in the log
only once it has finished and ``--write-log-delay`` has passed; what an entry holds and which
filters narrow the log; what :meth:`Events.wait_for` waits for (jobs, logged, written) without a
clock; and the rate-limit headers and 429 a client meets."""

from __future__ import annotations

from typing import Any

import pytest

from sandbox.events import EVENTS, Mark
from tests.test_sandbox import INTEGRATION, charge, charge_code_in, invoice_body, resident_in
from tests.test_unit_sandbox_writes import BATCH, HOUR, INVOICE, SINGLE, InProcess, in_process

LOG = "/v1/admin/logs/writes/"


@pytest.fixture
def box() -> Any:
    with in_process() as running:
        yield running


def logs(box: InProcess, **params: Any) -> list[dict[str, Any]]:
    response = box.client.get(LOG, params=params)
    assert response.status_code == 200, response.text
    return response.json()["results"]["logs"]  # type: ignore[no-any-return]


def bad_charge(ref: str) -> dict[str, Any]:
    return {**charge(resident_in(0), charge_code_in(0), ref), "resident_id": "cres_gone"}


def charges(*items: dict[str, Any]) -> dict[str, Any]:
    return {"integration_id": INTEGRATION, "charges": list(items)}


# -- the delay ---------------------------------------------------------------------------------


def test_a_job_shows_only_once_finished_and_the_log_s_delay_has_passed(box: InProcess) -> None:
    job_id = box.job(INVOICE, invoice_body())
    assert logs(box) == []  # still running
    box.later(HOUR)
    assert box.status(job_id)["write_status"] == "SUCCESS"
    assert logs(box) == []  # finished, but the log is an hour behind
    box.later(HOUR)
    assert [entry["job_id"] for entry in logs(box)] == [job_id]


def test_with_no_log_delay_a_finished_job_shows_at_once() -> None:
    with in_process(write_log_delay_s=0.0) as box:
        job_id = box.job(INVOICE, invoice_body())
        assert logs(box) == []
        box.later(HOUR)
        assert [entry["job_id"] for entry in logs(box)] == [job_id]


# -- what an entry holds --------------------------------------------------------------------------


def test_an_entry_holds_the_job_and_no_parameters_by_default(box: InProcess) -> None:
    job_id = box.job(INVOICE, invoice_body())
    box.later(2 * HOUR)
    (entry,) = logs(box)
    assert entry["id"] == entry["job_log_id"] == job_id + "-log"
    assert entry["status"] == "SUCCESS"
    assert entry["job_type"] == entry["name"] == "CREATE_INVOICE"
    assert entry["integration_id"] == INTEGRATION
    assert entry["vendor"] == "RENTMANAGER"
    assert entry["parameters"] is None  # the request is read through the job log's data
    assert entry["error"] is None
    assert entry["created_at"] == box.store.job(job_id).created_at  # type: ignore[union-attr]


def test_the_parameters_are_the_request_s_body_when_so_configured() -> None:
    with in_process(log_parameters="body") as box:
        body = invoice_body()
        box.job(INVOICE, body)
        box.later(2 * HOUR)
        assert logs(box)[0]["parameters"] == body


def test_a_partial_success_is_logged_as_a_failure_with_its_errors_joined(box: InProcess) -> None:
    good = charge(resident_in(0), charge_code_in(0), "L-1")
    job_id = box.job(BATCH, charges(good, bad_charge("L-2"), bad_charge("L-3")))
    box.later(2 * HOUR)
    assert box.status(job_id)["write_status"] == "PARTIAL_SUCCESS"
    (entry,) = logs(box)
    assert entry["status"] == "FAILURE"  # the log's status knows two values
    assert entry["error"].count("resident cres_gone was not found") == 2
    assert "; " in entry["error"]
    assert logs(box, status="SUCCESS") == []
    assert [e["job_id"] for e in logs(box, status="FAILURE")] == [job_id]


# -- filters and pages ------------------------------------------------------------------------------


def test_the_log_is_filtered_by_write_category_and_integration(box: InProcess) -> None:
    invoice = box.job(INVOICE, invoice_body())
    single = box.job(
        SINGLE, {"integration_id": INTEGRATION, **charge(resident_in(0), charge_code_in(0), "W")}
    )
    box.later(2 * HOUR)
    assert [e["job_id"] for e in logs(box, write_category="invoices")] == [invoice]
    assert [e["job_id"] for e in logs(box, write_category="resident_charges")] == [single]
    assert len(logs(box, integration_id=INTEGRATION)) == 2
    assert logs(box, integration_id="int_other") == []


def test_the_log_is_newest_first_and_pages(box: InProcess) -> None:
    first = box.job(INVOICE, invoice_body(invoice_number="1"))
    box.later(HOUR)
    second = box.job(INVOICE, invoice_body(invoice_number="2"))
    box.later(2 * HOUR)
    assert [e["job_id"] for e in logs(box)] == [second, first]
    assert [e["job_id"] for e in logs(box, limit=1)] == [second]
    assert [e["job_id"] for e in logs(box, limit=1, offset=1)] == [first]
    assert logs(box, offset=2) == []


def test_the_time_range_is_a_day_unless_asked(box: InProcess) -> None:
    job_id = box.job(INVOICE, invoice_body())
    box.later(2 * 86400)  # two days ago
    assert logs(box) == []
    assert logs(box, time_range="hour") == []
    assert [e["job_id"] for e in logs(box, time_range="week")] == [job_id]
    assert [e["job_id"] for e in logs(box, time_range="month")] == [job_id]


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"limit": "ten"}, "must be integers"),
        ({"limit": "0"}, "limit must be 1..100"),
        ({"limit": "101"}, "limit must be 1..100"),
        ({"offset": "-1"}, "offset at least 0"),
        ({"time_range": "year"}, "time_range must be hour, day, week or month"),
        ({"status": "PARTIAL_SUCCESS"}, "status must be SUCCESS or FAILURE"),
    ],
)
def test_a_bad_log_query_is_400_and_says_why(
    box: InProcess, params: dict[str, str], words: str
) -> None:
    response = box.client.get(LOG, params=params)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"
    assert words in response.json()["error"]["message"]


# -- the events a test waits on ----------------------------------------------------------------------


def test_jobs_and_logged_are_waited_for_on_the_jobs_own_clock(box: InProcess) -> None:
    events = box.sandbox.events
    assert events.wait_for("jobs", 0.01)  # no job yet: nothing to wait for
    box.job(INVOICE, invoice_body())
    assert not events.wait_for("jobs", 0.01)
    box.later(HOUR)
    assert events.wait_for("jobs", 0.01)
    assert not events.wait_for("logged", 0.01)  # the log is an hour behind the job
    box.later(HOUR)
    assert events.wait_for("logged", 0.01)


def test_written_counts_accepted_writes_after_a_mark(box: InProcess) -> None:
    events = box.sandbox.events
    before = events.mark()
    assert before == Mark(0, 0, 0, 0)
    box.job(INVOICE, invoice_body())
    refused = box.post(INVOICE, invoice_body(invoice_items=[]))
    assert refused.status_code == 400
    assert events.wait_for("written", 0.01, since=before)
    assert not events.wait_for("written", 0.01, since=before, count=2)  # a 400 is no write
    after = events.mark()
    assert after.writes == 1
    assert not events.wait_for("written", 0.01, since=after)
    box.job(INVOICE, invoice_body())
    assert events.wait_for("written", 0.01, since=after)


def test_a_sync_is_counted_started_and_finished(box: InProcess) -> None:
    events = box.sandbox.events
    before = events.mark()
    assert not events.wait_for("sync", 0.01, since=before)
    response = box.client.post(f"/v1/admin/integrations/{INTEGRATION}/manual-sync", json={})
    assert response.json() == {"result": {"success": True}}
    assert events.wait_for("started", 0.01, since=before)
    assert events.wait_for("sync", 0.01, since=before)
    assert events.mark().syncs == before.syncs + 1


def test_every_event_name_is_known_and_an_unknown_one_refused(box: InProcess) -> None:
    events = box.sandbox.events
    assert set(EVENTS) == {"written", "started", "sync", "webhook", "jobs", "logged", "idle"}
    with pytest.raises(ValueError, match="no such sandbox event"):
        events.wait_for("finished", 0.01)  # type: ignore[arg-type]
    response = box.client.post("/_sandbox/wait", params={"event": "finished"})
    assert response.status_code == 400


def test_the_wait_endpoint_answers_408_when_the_event_does_not_come(box: InProcess) -> None:
    box.job(INVOICE, invoice_body())
    response = box.client.post("/_sandbox/wait", params={"event": "jobs", "timeout": "0.01"})
    assert response.status_code == 408
    assert response.json()["error"]["code"] == "timeout"
    box.later(HOUR)
    done = box.client.post("/_sandbox/wait", params={"event": "jobs", "timeout": "1"})
    assert done.status_code == 200
    assert done.json()["event"] == "jobs"
    assert done.json()["writes"] == 1
    assert box.client.get("/_sandbox/mark").json()["writes"] == 1


def test_the_wait_endpoint_refuses_counts_that_are_not_numbers(box: InProcess) -> None:
    response = box.client.post("/_sandbox/wait", params={"event": "sync", "count": "some"})
    assert response.status_code == 400


# -- the rate limit as a client meets it ------------------------------------------------------------


def test_the_rate_limit_is_told_in_headers_then_answered_429() -> None:
    # A window long enough not to reset under load; its slowdown past 80% is then 0.5 s.
    with in_process(rate_limit=3, rate_window_s=15.0) as box:
        seen = [box.client.get("/v1/vendors/") for _ in range(3)]
        assert [r.status_code for r in seen] == [200, 200, 200]
        assert [r.headers["x-ratelimit-remaining"] for r in seen] == ["2", "1", "0"]
        assert {r.headers["x-ratelimit-limit"] for r in seen} == {"3"}
        refused = box.client.get("/v1/vendors/")
        assert refused.status_code == 429
        assert refused.headers["x-ratelimit-remaining"] == "0"
        assert refused.json()["error"]["code"] == "rate_limit_exceeded"
        # A refused write is not applied; the sandbox's own hooks are not counted.
        assert box.post(INVOICE, invoice_body()).status_code == 429
        assert box.store.jobs() == []
        assert box.client.get("/_sandbox/records").status_code == 200


def test_a_token_has_its_own_budget_per_integration() -> None:
    with in_process(rate_limit=1, rate_window_s=15.0, integrations=2) as box:
        assert box.client.get("/v1/vendors/").status_code == 200
        assert box.client.get("/v1/vendors/").status_code == 429
        other = box.client.get("/v1/vendors/", headers={"Authorization": "Bearer sandbox-token-2"})
        assert other.status_code == 200


def test_a_wrong_token_is_401_even_on_the_sandbox_s_hooks(box: InProcess) -> None:
    for path in ("/v1/vendors/", "/_sandbox/records"):
        response = box.client.get(path, headers={"Authorization": "Bearer wrong"})
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthorized"
    assert box.client.get("/_sandbox/health", headers={"Authorization": ""}).json() == {"ok": True}


def test_an_injected_refusal_applies_nothing_and_a_lost_answer_applies_the_write() -> None:
    with in_process(faults_at={"post": {1: "422", 2: "lost"}}) as box:
        refused = box.post(INVOICE, invoice_body(invoice_number="R"))
        assert refused.status_code == 422
        assert refused.json()["error"]["code"] == "unprocessable_entity"
        assert box.store.jobs() == []
        lost = box.post(INVOICE, invoice_body(invoice_number="L"))
        assert b"job_id" not in lost.content  # the answer never came
        (job,) = box.store.jobs()
        assert job.body["invoice_number"] == "L"
