"""A record kind registered from a test is served as the built-in ones are (sandbox/kinds.py).

The kind here, meter readings, is declared in this file only: no file under sandbox/ names it.
Its writes go through the same machinery as invoices and charges (schema check, job,
write-status, write log, webhooks, faults, retry-write), its records show on the PMS side at
once and at its list route after a sync, and its model is synced and reported like theirs.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from sandbox.app import Sandbox, create_app
from sandbox.builtin_kinds import BUILT_IN_KINDS
from sandbox.faults import SandboxConfig, parse_fault_spec
from sandbox.kinds import Kinds, SandboxKind, Write, Written, new_record, pms_error, store_each
from sandbox.server import RunningSandbox, read_seed, running_sandbox
from sandbox.store import Store
from tests.test_sandbox_semantics import Catcher, client_for, subscribe, wait_terminal

INTEGRATION = "int_rm_demo"
UNIT = read_seed(None)["units"][0]
FIELDS = {
    "unit_id": {"type": "string"},
    "reading_date": {"type": "string", "format": "date"},
    "value": {"type": "integer"},
    "reference_number": {"type": "string"},
}
ROW = ["unit_id", "reading_date", "value"]
READING = {
    "type": "object",
    "required": ["integration_id", *ROW],
    "properties": {"integration_id": {"type": "string"}, **FIELDS},
}
BATCH = {
    "type": "object",
    "required": ["integration_id", "readings"],
    "properties": {
        "integration_id": {"type": "string"},
        "readings": {
            "type": "array",
            "minItems": 1,
            "items": {"type": "object", "required": ROW, "properties": FIELDS},
        },
    },
}


def read_meter(sandbox: Sandbox, body: dict[str, Any]) -> Written:
    """The PMS knows the unit, or fails the job (seen later, through write-status)."""
    unit = sandbox.store.record("unit", body["unit_id"])
    if unit is None:
        return Written("FAILURE", [pms_error(f"Unit {body['unit_id']} was not found")])
    record = new_record({**body, "property_id": unit["property_id"]}, body["integration_id"])
    return Written("SUCCESS", records=[record])


def not_negative(body: Any) -> list[dict[str, Any]]:
    if body["value"] >= 0:
        return []
    return [{"code": "too_small", "path": ["value"], "message": "a meter does not run back"}]


METER_READINGS = SandboxKind(
    name="meter_reading",
    sync_model="meter_readings",
    list_route="/v1/meter-readings/",
    writes=(
        Write(
            "/v1/meter-readings/rentmanager/",
            "CREATE_METER_READING",
            read_meter,
            schema=READING,
            check=not_negative,
        ),
        Write(
            "/v1/meter-readings/batch/rentmanager/",
            "CREATE_METER_READINGS_BATCH",
            store_each("readings"),
            schema=BATCH,
        ),
    ),
    filters=("integration_id", "unit_id", "property_id"),
    dated_by="reading_date",
)


def reading(ref: str, value: int = 1234, day: str | None = None) -> dict[str, Any]:
    today = datetime.now(UTC).date().isoformat()
    return {
        "integration_id": INTEGRATION,
        "unit_id": UNIT["id"],
        "reading_date": day or today,
        "value": value,
        "reference_number": ref,
    }


def config(**changes: Any) -> SandboxConfig:
    base: dict[str, Any] = {
        "job_delay_s": 0.05,
        "rate_limit": 1000,
        "sync_mode": "instant",
        "write_log_delay_s": 0,
        "webhook_redeliver": 0,
        "webhook_late_s": 0,
        "kinds": (METER_READINGS,),
    }
    return SandboxConfig(**{**base, **changes})


@pytest.fixture
def catcher() -> Iterator[Catcher]:
    c = Catcher()
    yield c
    c.server.shutdown()
    c.server.server_close()


@pytest.fixture
def box() -> Iterator[RunningSandbox]:
    with running_sandbox(config()) as running:
        yield running


@pytest.fixture
def client(box: RunningSandbox) -> Iterator[httpx.Client]:
    with client_for(box) as c:
        yield c


def post(
    c: httpx.Client, body: dict[str, Any], path: str = "/v1/meter-readings/rentmanager/"
) -> str:
    response = c.post(path, json=body)
    assert response.status_code == 200, response.text
    assert response.json()["result"] == body
    return str(response.json()["meta"]["job_id"])


def pms_side(c: httpx.Client) -> list[dict[str, Any]]:
    answer = c.get("/_sandbox/records", params={"kind": "meter_reading"})
    assert answer.status_code == 200, answer.text
    return list(answer.json()["results"])


def listed(c: httpx.Client, **params: str) -> list[dict[str, Any]]:
    answer = c.get("/v1/meter-readings/", params=params)
    assert answer.status_code == 200, answer.text
    return list(answer.json()["results"])


def sync(c: httpx.Client, **body: Any) -> None:
    answer = c.post(f"/v1/admin/integrations/{INTEGRATION}/manual-sync", json=body)
    assert answer.status_code == 200, answer.text


def test_a_kind_from_a_test_is_written_logged_synced_and_listed(catcher: Catcher) -> None:
    box_config = config(job_delay_s=1.5, log_parameters="body")
    with running_sandbox(box_config) as box, client_for(box) as c:
        subscribe(c, catcher.url)
        body = reading("MR-1")
        job_id = post(c, body)
        assert c.get(f"/v1/admin/write-status/{job_id}").json()["write_status"] == "PENDING"
        status = wait_terminal(c, job_id)
        assert status == {"write_status": "SUCCESS", "errors": [], "created_record_id": None}

        (stored,) = pms_side(c)
        assert stored["kind"] == "meter_reading"
        assert stored["job_id"] == job_id
        assert stored["synced"] is False
        assert listed(c) == []  # written, not yet in Propexo's cache

        logs = c.get("/v1/admin/logs/writes/", params={"write_category": "meter_readings"})
        (entry,) = logs.json()["results"]["logs"]
        assert (entry["job_id"], entry["status"]) == (job_id, "SUCCESS")
        assert entry["job_type"] == "CREATE_METER_READING"
        assert entry["parameters"] == body
        redirect = c.get(f"/v1/admin/job-logs/{entry['job_log_id']}/data")
        assert redirect.status_code == 302
        raw = httpx.get(redirect.headers["location"]).json()
        assert raw["request"] == {
            "method": "POST",
            "path": "/v1/meter-readings/rentmanager/",
            "body": body,
        }

        sync(c)
        (done,) = catcher.wait_for("SYNC_COMPLETE")
        assert set(done["models_synced"]) == {"invoices", "resident_charges", "meter_readings"}
        (record,) = listed(c)
        assert {k: record[k] for k in body} == body
        assert record["property_id"] == UNIT["property_id"]
        assert record["last_seen"] is not None
        assert c.get(f"/v1/meter-readings/{record['id']}").json()["results"] == record
        assert listed(c, unit_id=UNIT["id"]) == [record]
        assert listed(c, unit_id="another-unit") == []


def test_a_sync_of_only_the_new_model_reports_only_it(
    catcher: Catcher, box: RunningSandbox
) -> None:
    with client_for(box) as c:
        subscribe(c, catcher.url)
        wait_terminal(c, post(c, reading("MR-2")))
        sync(c, models_to_sync=["meter_readings"])
        (done,) = catcher.wait_for("SYNC_COMPLETE")
        assert done["models_synced"] == ["meter_readings"]
        assert [r["reference_number"] for r in listed(c)] == ["MR-2"]


def test_a_dated_batch_kind_is_synced_inside_the_window_only(client: httpx.Client) -> None:
    old = (datetime.now(UTC) - timedelta(days=400)).date().isoformat()
    rows = [reading("MR-NEW"), reading("MR-OLD", day=old)]
    body = {"integration_id": INTEGRATION, "readings": [dict(r) for r in rows]}
    for row in body["readings"]:
        del row["integration_id"]
    job_id = post(client, body, "/v1/meter-readings/batch/rentmanager/")
    assert wait_terminal(client, job_id)["write_status"] == "SUCCESS"
    assert sorted(r["reference_number"] for r in pms_side(client)) == ["MR-NEW", "MR-OLD"]
    sync(client)
    assert [r["reference_number"] for r in listed(client)] == ["MR-NEW"]  # 90-day window


def test_schema_faults_of_the_new_kind_are_400_at_once(client: httpx.Client) -> None:
    unknown_key = client.post("/v1/meter-readings/rentmanager/", json={**reading("X"), "x": 1})
    assert unknown_key.status_code == 400
    (issue,) = unknown_key.json()["error"]["details"]["issues"]
    assert issue["code"] == "unrecognized_keys"
    missing = client.post("/v1/meter-readings/rentmanager/", json={"integration_id": INTEGRATION})
    assert missing.status_code == 400
    assert {i["path"][0] for i in missing.json()["error"]["details"]["issues"]} == {
        "unit_id",
        "reading_date",
        "value",
    }
    negative = client.post("/v1/meter-readings/rentmanager/", json=reading("X", value=-1))
    assert negative.status_code == 400
    assert negative.json()["error"]["details"]["issues"][0]["path"] == ["value"]
    stranger = client.post(
        "/v1/meter-readings/rentmanager/", json={**reading("X"), "integration_id": "int_nobody"}
    )
    assert stranger.status_code == 400
    assert pms_side(client) == []


def test_the_pms_fails_a_new_kind_later_and_says_so_by_webhook(catcher: Catcher) -> None:
    with running_sandbox(config()) as box, client_for(box) as c:
        subscribe(c, catcher.url)
        job_id = post(c, {**reading("MR-3"), "unit_id": "cuni-nowhere"})
        status = wait_terminal(c, job_id)
        assert status["write_status"] == "FAILURE"
        assert status["errors"] == [pms_error("Unit cuni-nowhere was not found")]
        (failed,) = catcher.wait_for("WRITE_OPERATION_FAILURE")
        assert failed["root_job_id"] == job_id
        retried = c.post(f"/v1/admin/retry-write/{job_id}")
        assert retried.status_code == 200, retried.text
        assert wait_terminal(c, retried.json()["job_id"])["write_status"] == "FAILURE"
        assert pms_side(c) == []


def test_faults_apply_to_the_new_kind() -> None:
    faults, faults_at = parse_fault_spec("post:500@1,post:lost@2")
    with (
        running_sandbox(config(faults=faults, faults_at=faults_at)) as box,
        client_for(box) as c,
    ):
        refused = c.post("/v1/meter-readings/rentmanager/", json=reading("MR-4"))
        assert refused.status_code == 500
        assert pms_side(c) == []  # answered 500: nothing applied
        with pytest.raises(httpx.TransportError):
            c.post("/v1/meter-readings/rentmanager/", json=reading("MR-5"))
        (lost,) = pms_side(c)  # applied, the answer lost
        assert lost["reference_number"] == "MR-5"
        wait_terminal(c, post(c, reading("MR-6")))
        assert [r["reference_number"] for r in pms_side(c)] == ["MR-5", "MR-6"]


def test_a_write_of_the_new_kind_may_land_and_be_reported_failed() -> None:
    with running_sandbox(config(failed_but_applied=1.0)) as box, client_for(box) as c:
        job_id = post(c, reading("MR-7"))
        status = wait_terminal(c, job_id)
        assert status["write_status"] == "FAILURE"
        assert status["created_record_id"] is None
        assert [r["job_id"] for r in pms_side(c)] == [job_id]  # it landed all the same


def test_a_kind_stays_with_the_sandbox_it_was_given_to(api: httpx.Client) -> None:
    """The default sandbox (conftest) knows nothing of meter readings."""
    assert api.post("/v1/meter-readings/rentmanager/", json=reading("MR-8")).status_code == 404
    assert api.get("/v1/meter-readings/").status_code == 404
    assert api.get("/_sandbox/records", params={"kind": "meter_reading"}).status_code == 400


def test_a_kind_that_clashes_or_has_no_schema_is_refused() -> None:
    clash = SandboxKind(
        name="invoice",
        sync_model="other_invoices",
        list_route="/v1/other-invoices/",
        writes=(Write("/v1/other-invoices/", "CREATE_OTHER", schema=READING),),
    )
    with pytest.raises(ValueError, match="record kind 'invoice'"):
        Kinds((*BUILT_IN_KINDS, clash))
    same_route = SandboxKind(
        name="bill",
        sync_model="bills",
        list_route="/v1/bills/",
        writes=(Write("/v1/invoices/rentmanager/", "CREATE_BILL"),),
    )
    with pytest.raises(ValueError, match="write route '/v1/invoices/rentmanager/'"):
        Kinds((*BUILT_IN_KINDS, same_route))
    schemaless = SandboxKind(
        name="note",
        sync_model="notes",
        list_route="/v1/notes/",
        writes=(Write("/v1/notes/rentmanager/", "CREATE_NOTE"),),
    )
    store = Store()
    try:
        with pytest.raises(ValueError, match="no request schema for /v1/notes/rentmanager/"):
            create_app(store, SandboxConfig(kinds=(schemaless,)))
    finally:
        store.close()


def test_the_built_in_kinds_declare_what_the_sandbox_served_before() -> None:
    """Invoices and resident charges register through sandbox.kinds with the routes, models
    and filters the sandbox named literally before."""
    kinds = Kinds(BUILT_IN_KINDS)
    assert kinds.models() == ["invoices", "resident_charges"]
    assert kinds.synced(kinds.models()) == {"invoice": None, "charge": "transaction_date"}
    assert {path: (k.name, w.job_type) for path, (k, w) in kinds.by_path.items()} == {
        "/v1/invoices/rentmanager/": ("invoice", "CREATE_INVOICE"),
        "/v1/resident-charges/batch/rentmanager/": ("charge", "CREATE_RESIDENT_CHARGES_BATCH"),
        "/v1/resident-charges/rentmanager/": ("charge", "CREATE_RESIDENT_CHARGE"),
        "/v1/resident-credits/rentmanager/": ("charge", "CREATE_RESIDENT_CREDIT"),
    }
    assert kinds.list_routes() == {
        "/v1/invoices/": ("invoice", ("integration_id", "property_id", "integration_vendor")),
        "/v1/resident-charges/": (
            "charge",
            ("integration_id", "property_id", "resident_id", "lease_id", "integration_vendor"),
        ),
    }
    assert list(kinds.by_label) == ["invoice", "charge", "credit"]
