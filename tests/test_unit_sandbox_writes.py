"""The sandbox's write endpoints in process (Starlette's TestClient on the app, no server, no
clock waited on): what a write is answered at once (400 with Zod's issues, 413, 415), what its
job says later (write-status PENDING, then SUCCESS, PARTIAL_SUCCESS or FAILURE in Rent Manager's
words), the batch rule that one batch is one location, credits, retry-write, and the job log's
presigned request. Time passes by ``Store.age_jobs``: every job is made an hour older."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from sandbox.app import Sandbox, create_app
from sandbox.faults import SandboxConfig
from sandbox.server import open_store
from sandbox.store import Store
from tests.test_sandbox import (
    INTEGRATION,
    SEED,
    charge,
    charge_code_in,
    invoice_body,
    resident_in,
    seeded,
)

with warnings.catch_warnings():
    # Starlette would rather drive its TestClient with `httpx2`; httpx is the one we ship.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient

HOUR = 3600.0
BATCH = "/v1/resident-charges/batch/rentmanager/"
SINGLE = "/v1/resident-charges/rentmanager/"
CREDIT = "/v1/resident-credits/rentmanager/"
INVOICE = "/v1/invoices/rentmanager/"


class InProcess:
    """A sandbox app and a client talking to it in this process; its jobs take an hour."""

    def __init__(self, client: TestClient, sandbox: Sandbox, store: Store) -> None:
        self.client = client
        self.sandbox = sandbox
        self.store = store

    def post(self, path: str, body: Any) -> httpx.Response:
        return self.client.post(path, json=body)

    def job(self, path: str, body: Any) -> str:
        response = self.post(path, body)
        assert response.status_code == 200, response.text
        return str(response.json()["meta"]["job_id"])

    def status(self, job_id: str) -> dict[str, Any]:
        response = self.client.get(f"/v1/admin/write-status/{job_id}")
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    def later(self, seconds: float = HOUR) -> None:
        """``seconds`` pass for every job written so far (and the records they made)."""
        self.store.age_jobs(seconds)

    def pms(self, kind: str | None = None) -> list[dict[str, Any]]:
        params = {"kind": kind} if kind else {}
        response = self.client.get("/_sandbox/records", params=params)
        assert response.status_code == 200, response.text
        return response.json()["results"]  # type: ignore[no-any-return]


@contextmanager
def in_process(**changes: Any) -> Iterator[InProcess]:
    """A sandbox whose jobs finish an hour after they are written and show in the write log an
    hour after that, unless ``changes`` say otherwise."""
    options: dict[str, Any] = {
        "job_delay_s": HOUR,
        "write_log_delay_s": HOUR,
        "rate_limit": 10_000,
        "sync_mode": "instant",
        "webhook_redeliver": 0.0,
        "webhook_late_s": 0.0,
        **changes,
    }
    store = open_store(None, SEED)
    app = create_app(store, SandboxConfig(**options), SEED)
    try:
        with TestClient(app, headers={"Authorization": "Bearer sandbox-token"}) as client:
            yield InProcess(client, app.sandbox, store)
    finally:
        store.close()


@pytest.fixture
def box() -> Iterator[InProcess]:
    with in_process() as running:
        yield running


def issues_of(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert error["details"]["name"] == "ZodError"
    return error["details"]["issues"]  # type: ignore[no-any-return]


def messages(errors: list[str]) -> list[str]:
    """Rent Manager's errors, which reach write-status as stringified JSON."""
    return [json.loads(e)["Message"] for e in errors]


# -- answered at once ---------------------------------------------------------------------------


def test_a_body_not_sent_as_json_is_415_and_nothing_is_written(box: InProcess) -> None:
    response = box.client.post(
        INVOICE, content=json.dumps(invoice_body()), headers={"content-type": "text/plain"}
    )
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"
    assert box.store.jobs() == []


def test_a_body_that_is_not_json_is_400_in_propexo_s_error_shape(box: InProcess) -> None:
    response = box.client.post(
        INVOICE, content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json() == {
        "error": {"code": "invalid_request", "message": "the body is not valid JSON"}
    }


def test_a_content_type_with_a_charset_is_still_json(box: InProcess) -> None:
    response = box.client.post(
        INVOICE,
        content=json.dumps(invoice_body()),
        headers={"content-type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 200, response.text


def test_a_body_over_the_limit_is_413_before_it_is_read() -> None:
    with in_process(max_body_bytes=200) as box:
        response = box.post(INVOICE, invoice_body(notes="x" * 400))
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "payload_too_large"
        assert "200 bytes" in response.json()["error"]["message"]
        assert box.store.jobs() == []


def test_every_missing_key_is_its_own_issue_in_zod_s_words(box: InProcess) -> None:
    body = invoice_body()
    del body["vendor_id"], body["due_date"]
    issues = issues_of(box.post(INVOICE, body))
    assert issues == [
        {
            "code": "invalid_type",
            "expected": "defined",
            "received": "undefined",
            "path": [key],
            "message": "Required",
        }
        for key in ("vendor_id", "due_date")
    ]


def test_an_unknown_key_is_refused_and_named_even_inside_a_line(box: InProcess) -> None:
    body = invoice_body()
    body["invoice_items"][1]["memo"] = "not Propexo's"
    body["colour"] = "blue"
    issues = issues_of(box.post(INVOICE, body))
    unknown = {tuple(i["path"]): i for i in issues if i["code"] == "unrecognized_keys"}
    assert unknown[()]["keys"] == ["colour"]
    assert unknown[("invoice_items", 1)]["keys"] == ["memo"]
    assert "'memo'" in unknown[("invoice_items", 1)]["message"]


def test_a_wrong_type_says_what_was_expected_and_received(box: InProcess) -> None:
    issues = issues_of(box.post(INVOICE, invoice_body(total_amount_in_cents="15.00")))
    assert [(i["code"], i["path"], i["received"]) for i in issues] == [
        ("invalid_type", ["total_amount_in_cents"], "str")
    ]


def test_an_invoice_without_lines_is_too_small(box: InProcess) -> None:
    issues = issues_of(box.post(INVOICE, invoice_body(invoice_items=[])))
    assert issues[0]["code"] == "too_small"
    assert issues[0]["path"] == ["invoice_items"]
    assert issues[0]["minimum"] == 1
    assert box.store.jobs() == []


@pytest.mark.parametrize("cents", [0, -500])
def test_a_credit_is_given_positive(box: InProcess, cents: int) -> None:
    body = {"integration_id": INTEGRATION, **charge(resident_in(0), charge_code_in(0), "C1", cents)}
    issues = issues_of(box.post(CREDIT, body))
    assert [(i["code"], i["path"]) for i in issues] == [("too_small", ["amount_in_cents"])]
    assert issues[0]["message"] == "Number must be greater than 0"


def test_a_date_time_needs_its_zone(box: InProcess) -> None:
    item = charge(resident_in(0), charge_code_in(0), "R1")
    item["transaction_date"] = "2026-12-01T00:00:00"
    issues = issues_of(box.post(SINGLE, {"integration_id": INTEGRATION, **item}))
    assert [i["path"] for i in issues] == [["transaction_date"]]
    assert issues[0]["code"] == "invalid_string"


def test_an_unknown_integration_is_refused_at_once(box: InProcess) -> None:
    response = box.post(INVOICE, invoice_body(integration_id="int_nobody"))
    assert response.status_code == 400
    assert "int_nobody" in response.json()["error"]["message"]
    assert box.store.jobs() == []


# -- the job: pending, then its outcome ---------------------------------------------------------


def test_a_job_is_pending_until_its_delay_has_passed(box: InProcess) -> None:
    response = box.post(INVOICE, invoice_body())
    assert response.json()["result"] == invoice_body()  # the envelope echoes the request
    job_id = response.json()["meta"]["job_id"]
    assert box.status(job_id) == {
        "write_status": "PENDING",
        "errors": [],
        "created_record_id": None,
    }
    box.later()
    final = box.status(job_id)
    assert final["write_status"] == "SUCCESS"
    assert final["errors"] == []
    assert final["created_record_id"]


def test_an_invoice_is_read_back_once_its_job_says_success(box: InProcess) -> None:
    job_id = box.job(INVOICE, invoice_body())
    pending = box.pms("invoice")
    assert len(pending) == 1 and pending[0]["synced"] is False
    box.later()
    record_id = box.status(job_id)["created_record_id"]
    response = box.client.get(f"/v1/invoices/{record_id}")
    assert response.status_code == 200, response.text
    invoice = response.json()["results"]
    assert invoice["total_amount_in_cents"] == 1500
    assert invoice["invoice_date"] == "2026-11-03T00:00:00.000Z"
    assert [i["total_amount_in_cents"] for i in invoice["invoice_items"]] == [1000, 500]
    assert all(i["invoice_id"] == record_id for i in invoice["invoice_items"])
    assert invoice["last_seen"] is None  # read at once, but only a sync stamps last_seen
    assert box.pms("invoice")[0]["synced"] is True


def test_rent_manager_s_numbers_count_up_per_sandbox(box: InProcess) -> None:
    first = box.job(INVOICE, invoice_body(invoice_number="A"))
    second = box.job(INVOICE, invoice_body(invoice_number="B"))
    box.later()
    numbers = []
    for job_id in (first, second):
        record_id = box.status(job_id)["created_record_id"]
        numbers.append(box.client.get(f"/v1/invoices/{record_id}").json()["results"]["x_id"])
    assert numbers == ["1", "2"]


def test_an_invoice_the_pms_refuses_says_every_reason_and_creates_nothing(
    box: InProcess,
) -> None:
    other = seeded("vendors", _location_id=SEED["locations"][1]["id"])[0]
    body = invoice_body(vendor_id=other["id"], total_amount_in_cents=999)
    body["invoice_items"][0]["financial_account_id"] = "cfin_nowhere"
    job_id = box.job(INVOICE, body)
    box.later()
    final = box.status(job_id)
    assert final["write_status"] == "FAILURE"
    assert final["created_record_id"] is None
    said = messages(final["errors"])
    assert "The vendor does not belong to the bill's location" in said
    assert "invoice_items[0]: GL account cfin_nowhere was not found" in said
    assert "The bill total 999 does not equal the sum of its lines 1500" in said
    assert box.pms("invoice") == []


def test_an_invoice_line_outside_the_bill_s_location_fails(box: InProcess) -> None:
    elsewhere = seeded("properties", _location_id=SEED["locations"][1]["id"])[0]
    body = invoice_body()
    body["invoice_items"][1]["property_id"] = elsewhere["id"]
    job_id = box.job(INVOICE, body)
    box.later()
    assert messages(box.status(job_id)["errors"]) == [
        "invoice_items[1]: the property is not in the bill's location"
    ]


def test_an_unknown_vendor_location_and_property_are_each_named(box: InProcess) -> None:
    body = invoice_body(vendor_id="cven_x", location_id="cloc_x")
    body["invoice_items"][0]["property_id"] = "cpro_x"
    job_id = box.job(INVOICE, body)
    box.later()
    said = messages(box.status(job_id)["errors"])
    assert said[:3] == [
        "Vendor cven_x was not found",
        "Location cloc_x was not found",
        "invoice_items[0]: property cpro_x was not found",
    ]


# -- charges: single, credit, batch ---------------------------------------------------------------


def test_a_single_charge_is_seen_only_after_a_sync(box: InProcess) -> None:
    resident, code = resident_in(0), charge_code_in(0)
    job_id = box.job(SINGLE, {"integration_id": INTEGRATION, **charge(resident, code, "S-1")})
    box.later()
    assert box.status(job_id)["write_status"] == "SUCCESS"
    assert box.client.get("/v1/resident-charges/").json()["results"] == []
    sync = box.client.post(f"/v1/admin/integrations/{INTEGRATION}/manual-sync", json={})
    assert sync.status_code == 200, sync.text
    listed = box.client.get("/v1/resident-charges/").json()["results"]
    assert [(c["reference_number"], c["amount_in_cents"]) for c in listed] == [("S-1", 1000)]
    assert listed[0]["transaction_date"] == "2026-12-01T00:00:00"  # a day, no zone
    assert listed[0]["transaction_source"] == "Charge"
    assert listed[0]["last_seen"] is not None


def test_a_credit_is_stored_negative_and_labelled_a_credit(box: InProcess) -> None:
    body = {"integration_id": INTEGRATION, **charge(resident_in(0), charge_code_in(0), "K-1", 250)}
    box.job(CREDIT, body)
    box.later()
    (credit,) = box.pms("credit")
    assert credit["amount_in_cents"] == -250
    assert credit["amount_raw"] == "-2.50"
    assert credit["transaction_source"] == "Credit"
    assert credit["kind"] == "credit"
    assert box.pms("charge") == []


def test_a_charge_whose_code_is_another_location_s_fails_later(box: InProcess) -> None:
    body = {"integration_id": INTEGRATION, **charge(resident_in(0), charge_code_in(1), "X-1")}
    job_id = box.job(SINGLE, body)
    assert box.status(job_id)["write_status"] == "PENDING"
    box.later()
    final = box.status(job_id)
    assert final["write_status"] == "FAILURE"
    assert messages(final["errors"]) == [
        "the charge code does not belong to the resident's location"
    ]
    assert box.pms() == []


def test_a_charge_for_an_unknown_resident_or_code_fails(box: InProcess) -> None:
    nobody = {**charge(resident_in(0), charge_code_in(0), "U-1"), "resident_id": "cres_nobody"}
    no_code = {**charge(resident_in(0), charge_code_in(0), "U-2"), "charge_code_id": "ccha_none"}
    jobs = [box.job(SINGLE, {"integration_id": INTEGRATION, **c}) for c in (nobody, no_code)]
    box.later()
    assert [messages(box.status(j)["errors"]) for j in jobs] == [
        ["resident cres_nobody was not found"],
        ["charge code ccha_none was not found"],
    ]


def batch(*charges: dict[str, Any]) -> dict[str, Any]:
    return {"integration_id": INTEGRATION, "charges": list(charges)}


def test_a_batch_spanning_two_locations_is_refused_whole(box: InProcess) -> None:
    here = charge(resident_in(0), charge_code_in(0), "M-1")
    there = charge(resident_in(1), charge_code_in(1), "M-2")
    job_id = box.job(BATCH, batch(here, there))
    box.later()
    final = box.status(job_id)
    assert final["write_status"] == "FAILURE"
    assert messages(final["errors"]) == [
        "All charges in a batch must belong to the same location; this batch spans 2 locations"
    ]
    assert box.pms() == []  # neither charge, though each alone is good


def test_a_batch_in_one_location_creates_every_charge_in_its_order(box: InProcess) -> None:
    resident, code = resident_in(0), charge_code_in(0)
    refs = [f"B-{n}" for n in range(5)]
    job_id = box.job(
        BATCH, batch(*(charge(resident, code, r, 100 + n) for n, r in enumerate(refs)))
    )
    box.later()
    final = box.status(job_id)
    assert final == {"write_status": "SUCCESS", "errors": [], "created_record_id": None}
    made = box.pms("charge")
    assert [c["reference_sent"] for c in made] == refs
    assert [c["amount_in_cents"] for c in made] == [100, 101, 102, 103, 104]
    assert {c["job_id"] for c in made} == {job_id}


def test_a_partly_bad_batch_is_a_partial_success_in_opaque_words(box: InProcess) -> None:
    good = charge(resident_in(0), charge_code_in(0), "P-1")
    bad = {**charge(resident_in(0), charge_code_in(0), "P-2"), "resident_id": "cres_gone"}
    job_id = box.job(BATCH, batch(good, bad))
    box.later()
    final = box.status(job_id)
    assert final["write_status"] == "PARTIAL_SUCCESS"
    # As Rent Manager says it: no index, no reference number.
    assert messages(final["errors"]) == ["resident cres_gone was not found"]
    assert [c["reference_sent"] for c in box.pms("charge")] == ["P-1"]


def test_indexed_batch_errors_name_the_charge_and_its_reference() -> None:
    with in_process(batch_errors="indexed") as box:
        good = charge(resident_in(0), charge_code_in(0), "I-1")
        bad = {**charge(resident_in(0), charge_code_in(0), "I-2"), "charge_code_id": "ccha_x"}
        job_id = box.job(BATCH, batch(good, bad))
        box.later()
        assert messages(box.status(job_id)["errors"]) == [
            "charges[1] (reference_number I-2): charge code ccha_x was not found"
        ]


def test_an_atomic_batch_with_one_bad_charge_creates_none() -> None:
    with in_process(batch_atomic=True) as box:
        good = charge(resident_in(0), charge_code_in(0), "A-1")
        bad = {**charge(resident_in(0), charge_code_in(0), "A-2"), "resident_id": "cres_gone"}
        job_id = box.job(BATCH, batch(good, bad))
        box.later()
        assert box.status(job_id)["write_status"] == "FAILURE"
        assert box.pms() == []


def test_an_all_bad_batch_is_a_failure_not_a_partial_success(box: InProcess) -> None:
    bad = {**charge(resident_in(0), charge_code_in(0), "F-1"), "resident_id": "cres_gone"}
    job_id = box.job(BATCH, batch(bad))
    box.later()
    assert box.status(job_id)["write_status"] == "FAILURE"


def test_reference_numbers_are_not_read_back_when_the_pms_drops_them() -> None:
    with in_process(reference_readback="null") as box:
        box.job(BATCH, batch(charge(resident_in(0), charge_code_in(0), "N-1")))
        box.later()
        (made,) = box.pms("charge")
        assert made["reference_number"] is None
        assert made["reference_sent"] == "N-1"  # what was sent, kept for tests only


# -- write-status, retry-write, job logs ---------------------------------------------------------


@pytest.mark.parametrize(("option", "status"), [(400, 400), (404, 404)])
def test_an_unknown_job_is_answered_as_configured(option: int, status: int) -> None:
    with in_process(unknown_job=option) as box:
        response = box.client.get("/v1/admin/write-status/cjob_nobody")
        assert response.status_code == status
        assert "cjob_nobody" in response.json()["error"]["message"]


def test_a_forgotten_job_is_unknown_but_its_records_stay(box: InProcess) -> None:
    job_id = box.job(INVOICE, invoice_body())
    box.later()
    forgot = box.client.post("/_sandbox/forget-jobs")
    assert forgot.json() == {"result": {"forgotten": 1}}
    assert box.client.get(f"/v1/admin/write-status/{job_id}").status_code == 400
    assert len(box.pms("invoice")) == 1


def test_only_a_finished_failed_write_can_be_retried(box: InProcess) -> None:
    body = {"integration_id": INTEGRATION, **charge(resident_in(0), charge_code_in(1), "T-1")}
    failed = box.job(SINGLE, body)
    early = box.client.post(f"/v1/admin/retry-write/{failed}")
    assert early.status_code == 400  # still running: its outcome is not known yet
    box.later()
    again = box.client.post(f"/v1/admin/retry-write/{failed}")
    assert again.status_code == 200, again.text
    new_job = again.json()["job_id"]
    assert again.json()["success"] is True and new_job != failed
    assert box.store.job(new_job) is not None
    assert box.store.job(new_job).body == body  # type: ignore[union-attr]


def test_a_successful_or_unknown_write_is_not_retried(box: InProcess) -> None:
    done = box.job(INVOICE, invoice_body())
    box.later()
    assert box.client.post(f"/v1/admin/retry-write/{done}").status_code == 400
    assert box.client.post("/v1/admin/retry-write/cjob_nobody").status_code == 400
    assert len(box.store.jobs()) == 1


def test_a_retried_write_is_judged_again_as_a_new_job(box: InProcess) -> None:
    resident, code = resident_in(0), charge_code_in(0)
    body = {"integration_id": INTEGRATION, **charge(resident, code, "R-9")}
    failed = box.job(SINGLE, {**body, "resident_id": "cres_later"})
    box.later()
    assert box.status(failed)["write_status"] == "FAILURE"
    new_job = box.client.post(f"/v1/admin/retry-write/{failed}").json()["job_id"]
    box.later()
    assert box.status(new_job)["write_status"] == "FAILURE"  # the same body fails the same way
    assert box.pms() == []


def test_a_job_s_request_is_read_through_a_presigned_url(box: InProcess) -> None:
    job_id = box.job(INVOICE, invoice_body())
    log_id = job_id + "-log"
    assert box.client.get(f"/v1/admin/job-logs/{log_id}/data").status_code == 404  # running
    box.later()
    redirect = box.client.get(f"/v1/admin/job-logs/{log_id}/data", follow_redirects=False)
    assert redirect.status_code == 302
    url = httpx.URL(redirect.headers["location"])
    assert url.path == f"/_presigned/job-logs/{log_id}"
    target = url.path + "?" + url.query.decode()
    # An object store refuses a second way of authenticating.
    assert box.client.get(target).status_code == 403
    fresh = TestClient(box.client.app)
    answer = fresh.get(target)
    assert answer.status_code == 200, answer.text
    assert answer.json()["request"] == {"method": "POST", "path": INVOICE, "body": invoice_body()}
    assert answer.json()["response"]["body"] == {"meta": {"job_id": job_id}}
    forged = fresh.get(target.replace("signature=", "signature=0"))
    assert forged.status_code == 403


def test_an_expired_presigned_url_is_refused(box: InProcess) -> None:
    from sandbox.writes import presigned_path

    job_id = box.job(INVOICE, invoice_body())
    box.later()
    stale = presigned_path(box.sandbox.presign_key, job_id + "-log", 1)
    assert TestClient(box.client.app).get(stale).status_code == 403
