"""The emulator behaves as Propexo's documentation says Propexo does (and ARCHITECTURE.md's
"Sandbox" table decides)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from jsonschema import Draft202012Validator

from pipelines.kinds import registered
from sandbox.faults import SandboxConfig, parse_faults
from sandbox.server import RunningSandbox, read_seed, running_sandbox
from tests.conftest import sandbox_wait

SHARED = Path(__file__).resolve().parents[2] / "shared" / "propexo-endpoints.json"
VENDORED = Path(__file__).resolve().parents[1] / "sandbox" / "propexo-endpoints.json"
SPEC = json.loads((SHARED if SHARED.exists() else VENDORED).read_text())
ENDPOINTS = {(e["method"], e["path"]): e for e in SPEC["endpoints"]}
SEED = read_seed(None)
INTEGRATION = "int_rm_demo"


def nullable_enums(node: Any) -> Any:
    """OpenAPI's nullable enums: a type list with 'null' admits null even when the enum omits it."""
    if isinstance(node, dict):
        node = {k: nullable_enums(v) for k, v in node.items()}
        types = node.get("type")
        if (
            isinstance(types, list)
            and "null" in types
            and "enum" in node
            and None not in node["enum"]
        ):
            node["enum"] = [*node["enum"], None]
        return node
    if isinstance(node, list):
        return [nullable_enums(v) for v in node]
    return node


def conforms(method: str, path: str, response: httpx.Response) -> None:
    """The response body validates against the published schema for its status."""
    schema = ENDPOINTS[(method, path)]["responses"].get(str(response.status_code))
    if schema is None:  # only 200 and 400 are published; other errors use errorResponse
        schema = SPEC["common"]["errorResponse"]
    Draft202012Validator(nullable_enums(schema)).validate(response.json())


@pytest.fixture
def box() -> Iterator[RunningSandbox]:
    """Contract tests of reads and writes: syncs complete before manual-sync answers."""
    config = SandboxConfig(job_delay_s=0.05, rate_limit=1000, sync_mode="instant")
    with running_sandbox(config) as running:
        yield running


@pytest.fixture
def client(box: RunningSandbox) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=box.base_url, headers={"Authorization": "Bearer sandbox-token"}
    ) as c:
        yield c


def seeded(kind: str, **where: Any) -> list[dict[str, Any]]:
    return [r for r in SEED[kind] if all(r.get(k) == v for k, v in where.items())]


def resident_in(location_index: int) -> dict[str, Any]:
    location = SEED["locations"][location_index]["id"]
    props = {p["id"] for p in seeded("properties", _location_id=location)}
    return next(r for r in SEED["residents"] if r["property_id"] in props)


def charge_code_in(location_index: int, name: str = "Rent") -> dict[str, Any]:
    return seeded("charge_codes", _location_id=SEED["locations"][location_index]["id"], name=name)[
        0
    ]


def charge(
    resident: dict[str, Any], code: dict[str, Any], ref: str, cents: int = 1000
) -> dict[str, Any]:
    return {
        "resident_id": resident["id"],
        "charge_code_id": code["id"],
        "transaction_date": "2026-12-01T00:00:00.000Z",
        "notes": "Rent 2026-12",
        "amount_in_cents": cents,
        "reference_number": ref,
    }


def settle(client: httpx.Client, job_id: str) -> dict[str, Any]:
    """The job's final write status, read once the sandbox says every job has finished."""
    sandbox_wait(client, "jobs", timeout=10)
    response = client.get(f"/v1/admin/write-status/{job_id}")
    conforms("GET", "/v1/admin/write-status/{root_job_id}", response)
    assert response.json()["write_status"] != "PENDING", "job never finished"
    return response.json()  # type: ignore[no-any-return]


def test_auth_is_required(box: RunningSandbox) -> None:
    assert httpx.get(box.base_url + "/v1/vendors/").status_code == 401
    wrong = httpx.get(box.base_url + "/v1/vendors/", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "unauthorized"


@pytest.mark.parametrize(
    "path",
    [
        "/v1/vendors/",
        "/v1/properties/",
        "/v1/units/",
        "/v1/residents/",
        "/v1/leases/",
        "/v1/charge-codes/",
        "/v1/financial-accounts/",
        "/v1/locations/rentmanager/",
    ],
)
def test_reference_lists_conform_and_page_to_the_end(client: httpx.Client, path: str) -> None:
    seen: list[str] = []
    offset = 0
    while True:
        response = client.get(path, params={"offset": offset, "limit": 7})
        conforms("GET", path, response)
        body = response.json()
        seen += [r["id"] for r in body["results"]]
        offset += len(body["results"])
        if not body["meta"]["hasMore"]:
            break
    assert len(seen) == len(set(seen)) == body["meta"]["total"] > 0
    assert not any(k.startswith("_") for r in body["results"] for k in r)


@pytest.mark.parametrize("limit", [0, 251, -1])
def test_limit_out_of_range_is_400(client: httpx.Client, limit: int) -> None:
    response = client.get("/v1/vendors/", params={"limit": limit})
    assert response.status_code == 400
    conforms("GET", "/v1/vendors/", response)


def test_by_id_and_unknown_id(client: httpx.Client) -> None:
    vendor = SEED["vendors"][0]
    response = client.get(f"/v1/vendors/{vendor['id']}")
    assert response.json()["results"]["name"] == vendor["name"]
    assert client.get("/v1/vendors/nope").status_code == 404


def test_properties_filter_by_location(client: httpx.Client) -> None:
    location = SEED["locations"][0]["id"]
    body = client.get("/v1/properties/", params={"location_id": location}).json()
    assert {p["id"] for p in body["results"]} == {
        p["id"] for p in seeded("properties", _location_id=location)
    }


def invoice_body(location_index: int = 0, **changes: Any) -> dict[str, Any]:
    location = SEED["locations"][location_index]
    vendor = seeded("vendors", _location_id=location["id"])[0]
    prop = seeded("properties", _location_id=location["id"])[0]
    account = seeded("financial_accounts", _location_id=location["id"])[0]
    body = {
        "integration_id": INTEGRATION,
        "vendor_id": vendor["id"],
        "location_id": location["id"],
        "invoice_date": "2026-11-03",
        "due_date": "2026-12-03",
        "post_date": "2026-11-03",
        "total_amount_in_cents": 1500,
        "invoice_number": "T-1",
        "notes": "n",
        "invoice_items": [
            {
                "amount_in_cents": 1000,
                "property_id": prop["id"],
                "financial_account_id": account["id"],
                "notes": "a",
            },
            {
                "amount_in_cents": 500,
                "property_id": prop["id"],
                "financial_account_id": account["id"],
            },
        ],
    }
    return {**body, **changes}


def test_invoice_is_readable_right_after_success(client: httpx.Client) -> None:
    body = invoice_body()
    response = client.post("/v1/invoices/rentmanager/", json=body)
    conforms("POST", "/v1/invoices/rentmanager/", response)
    status = settle(client, response.json()["meta"]["job_id"])
    assert status["write_status"] == "SUCCESS" and status["created_record_id"]
    record = client.get(f"/v1/invoices/{status['created_record_id']}")
    conforms("GET", "/v1/invoices/{invoice_id}", record)
    invoice = record.json()["results"]
    vendor = next(v for v in SEED["vendors"] if v["id"] == body["vendor_id"])
    assert invoice["x_vendor_id"] == vendor["x_id"]
    assert [i["total_amount_in_cents"] for i in invoice["invoice_items"]] == [1000, 500]
    listed = client.get("/v1/invoices/", params={"integration_id": INTEGRATION})
    conforms("GET", "/v1/invoices/", listed)
    assert listed.json()["meta"]["total"] == 1


def test_invoice_pms_faults_show_later_as_failure(client: httpx.Client) -> None:
    bad_sum = client.post(
        "/v1/invoices/rentmanager/", json=invoice_body(total_amount_in_cents=1499)
    )
    status = settle(client, bad_sum.json()["meta"]["job_id"])
    assert status["write_status"] == "FAILURE"
    assert "does not equal the sum" in status["errors"][0]
    unknown = client.post("/v1/invoices/rentmanager/", json=invoice_body(vendor_id="nope"))
    assert settle(client, unknown.json()["meta"]["job_id"])["write_status"] == "FAILURE"


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"foo": 1}, "unrecognized_keys"),
        ({"total_amount_in_cents": -5}, "too_small"),
        ({"total_amount_in_cents": "15.00"}, "invalid_type"),
        ({"invoice_date": "11/03/2026"}, "invalid_string"),
    ],
)
def test_schema_faults_are_400_at_once(
    client: httpx.Client, change: dict[str, Any], code: str
) -> None:
    response = client.post("/v1/invoices/rentmanager/", json=invoice_body(**change))
    assert response.status_code == 400
    conforms("POST", "/v1/invoices/rentmanager/", response)
    issues = response.json()["error"]["details"]["issues"]
    assert code in {i["code"] for i in issues}


def test_missing_key_is_400(client: httpx.Client) -> None:
    body = invoice_body()
    del body["vendor_id"]
    response = client.post("/v1/invoices/rentmanager/", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["details"]["issues"][0]["path"] == ["vendor_id"]


def test_batch_charges_are_invisible_until_a_sync(client: httpx.Client) -> None:
    resident, code = resident_in(0), charge_code_in(0)
    body = {
        "integration_id": INTEGRATION,
        "charges": [charge(resident, code, "TOREF1"), charge(resident, code, "TOREF2", 2500)],
    }
    response = client.post("/v1/resident-charges/batch/rentmanager/", json=body)
    conforms("POST", "/v1/resident-charges/batch/rentmanager/", response)
    status = settle(client, response.json()["meta"]["job_id"])
    assert status == {"write_status": "SUCCESS", "errors": [], "created_record_id": None}
    assert client.get("/v1/resident-charges/").json()["meta"]["total"] == 0
    assert len(client.get("/_sandbox/records", params={"kind": "charge"}).json()["results"]) == 2
    sync = client.post(f"/v1/admin/integrations/{INTEGRATION}/manual-sync", json={})
    conforms("POST", "/v1/admin/integrations/{integration_id}/manual-sync", sync)
    listed = client.get("/v1/resident-charges/", params={"resident_id": resident["id"]})
    conforms("GET", "/v1/resident-charges/", listed)
    rows = listed.json()["results"]
    assert sorted(r["reference_number"] for r in rows) == ["TOREF1", "TOREF2"]
    assert {r["description"] for r in rows} == {"Rent 2026-12"}


def test_mixed_location_batch_fails_whole(client: httpx.Client) -> None:
    body = {
        "integration_id": INTEGRATION,
        "charges": [
            charge(resident_in(0), charge_code_in(0), "TOA"),
            charge(resident_in(1), charge_code_in(1), "TOB"),
        ],
    }
    status = settle(
        client,
        client.post("/v1/resident-charges/batch/rentmanager/", json=body).json()["meta"]["job_id"],
    )
    assert status["write_status"] == "FAILURE"
    assert "same location" in status["errors"][0]
    assert client.get("/_sandbox/records").json()["total"] == 0


def test_partly_bad_batch_is_partial_success_and_creates_the_good_ones(
    client: httpx.Client,
) -> None:
    resident, code = resident_in(0), charge_code_in(0)
    bad = {**charge(resident, code, "TOBAD"), "resident_id": "no-such-resident"}
    body = {"integration_id": INTEGRATION, "charges": [charge(resident, code, "TOGOOD"), bad]}
    status = settle(
        client,
        client.post("/v1/resident-charges/batch/rentmanager/", json=body).json()["meta"]["job_id"],
    )
    assert status["write_status"] == "PARTIAL_SUCCESS"
    assert len(status["errors"]) == 1
    # By default the error is a PMS string as Rent Manager writes it: no index, no reference.
    assert "charges[" not in status["errors"][0] and "TOBAD" not in status["errors"][0]
    assert "no-such-resident" in status["errors"][0]
    records = client.get("/_sandbox/records", params={"kind": "charge"}).json()["results"]
    assert [r["reference_number"] for r in records] == ["TOGOOD"]


def test_credits_read_back_negative(client: httpx.Client) -> None:
    body = {
        "integration_id": INTEGRATION,
        **charge(resident_in(0), charge_code_in(0, "Concession"), "TOCR", 5000),
    }
    response = client.post("/v1/resident-credits/rentmanager/", json=body)
    conforms("POST", "/v1/resident-credits/rentmanager/", response)
    settle(client, response.json()["meta"]["job_id"])
    client.post(f"/v1/admin/integrations/{INTEGRATION}/manual-sync", json={})
    rows = client.get("/v1/resident-charges/").json()["results"]
    assert [r["amount_in_cents"] for r in rows] == [-5000]


@pytest.mark.parametrize(("option", "status"), [(None, 400), (400, 400), (404, 404)])
def test_unknown_job_is_an_error_response(option: int | None, status: int) -> None:
    config = SandboxConfig(**({"unknown_job": option} if option else {}))
    with (
        running_sandbox(config) as running,
        httpx.Client(
            base_url=running.base_url, headers={"Authorization": "Bearer sandbox-token"}
        ) as c,
    ):
        response = c.get("/v1/admin/write-status/nope")
        assert response.status_code == status
        conforms("GET", "/v1/admin/write-status/{root_job_id}", response)


def test_write_logs(box: RunningSandbox, client: httpx.Client) -> None:
    box.config.write_log_delay_s = 0  # a finished job is logged at once (default: later)
    job = client.post("/v1/invoices/rentmanager/", json=invoice_body()).json()["meta"]["job_id"]
    settle(client, job)
    response = client.get("/v1/admin/logs/writes/", params={"write_category": "invoices"})
    conforms("GET", "/v1/admin/logs/writes/", response)
    assert [log["job_id"] for log in response.json()["results"]["logs"]] == [job]


def test_transaction_date_filter_is_inclusive(client: httpx.Client) -> None:
    resident, code = resident_in(0), charge_code_in(0)
    body = {"integration_id": INTEGRATION, "charges": [charge(resident, code, "TOD1")]}
    settle(
        client,
        client.post("/v1/resident-charges/batch/rentmanager/", json=body).json()["meta"]["job_id"],
    )
    client.post(f"/v1/admin/integrations/{INTEGRATION}/manual-sync", json={})
    for start, end, n in [
        ("2026-12-01", "2026-12-01", 1),
        ("2026-12-02", "2026-12-31", 0),
        ("2026-11-01", "2026-11-30", 0),
    ]:
        rows = client.get(
            "/v1/resident-charges/",
            params={"transaction_date_start": start, "transaction_date_end": end},
        ).json()
        assert rows["meta"]["total"] == n


def test_rate_limit_headers_slowdown_and_429() -> None:
    config = SandboxConfig(rate_limit=10, rate_window_s=1.5)
    with (
        running_sandbox(config) as box,
        httpx.Client(base_url=box.base_url, headers={"Authorization": "Bearer sandbox-token"}) as c,
    ):
        remaining = []
        started = time.monotonic()
        for _ in range(10):
            response = c.get("/v1/locations/rentmanager/")
            assert response.headers["x-ratelimit-limit"] == "10"
            remaining.append(int(response.headers["x-ratelimit-remaining"]))
        slow = time.monotonic() - started
        assert remaining == list(range(9, -1, -1))
        assert slow >= 2 * config.slowdown_s  # requests 9 and 10 are past 80%
        limited = c.get("/v1/locations/rentmanager/")
        assert limited.status_code == 429
        assert limited.headers["x-ratelimit-remaining"] == "0"
        assert limited.json()["error"]["code"] == "rate_limit_exceeded"
        time.sleep(config.rate_window_s)  # the scenario: the window's time passes
        assert c.get("/v1/locations/rentmanager/").status_code == 200


def test_fault_spec_parsing() -> None:
    assert parse_faults("post:500=0.1,post:lost=0.05,*:reset=0.02") == {
        "post": {"500": 0.1, "lost": 0.05},
        "*": {"reset": 0.02},
    }
    for bad in ["post:418=0.1", "put:500=0.1", "post:500=2", "post500"]:
        with pytest.raises(ValueError):
            parse_faults(bad)


def test_each_fault_happens_at_about_its_rate() -> None:
    config = SandboxConfig(
        rate_limit=10_000,
        faults=parse_faults("post:503=0.2,post:reset=0.1,post:lost=0.1"),
        fault_seed=7,
        job_delay_s=0,
    )
    with (
        running_sandbox(config) as box,
        httpx.Client(base_url=box.base_url, headers={"Authorization": "Bearer sandbox-token"}) as c,
    ):
        outcomes = {"503": 0, "dropped": 0, "ok": 0}
        body = {
            "integration_id": INTEGRATION,
            "charges": [charge(resident_in(0), charge_code_in(0), "TOF")],
        }
        n = 400
        for _ in range(n):
            try:
                response = c.post("/v1/resident-charges/batch/rentmanager/", json=body)
            except httpx.TransportError:
                outcomes["dropped"] += 1
                continue
            outcomes["503" if response.status_code == 503 else "ok"] += 1
        created = c.get("/_sandbox/records").json()["total"]
    assert 0.14 * n < outcomes["503"] < 0.26 * n
    assert 0.13 * n < outcomes["dropped"] < 0.27 * n
    lost = created - outcomes["ok"]  # applied, but the answer never came
    assert 0.05 * n < lost < 0.15 * n
    assert box.app.fault_counts["reset"] + box.app.fault_counts["lost"] == outcomes["dropped"]


def test_state_survives_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "sandbox.sqlite"
    with (
        running_sandbox(SandboxConfig(job_delay_s=0), db=db) as box,
        httpx.Client(base_url=box.base_url, headers={"Authorization": "Bearer sandbox-token"}) as c,
    ):
        settle(c, c.post("/v1/invoices/rentmanager/", json=invoice_body()).json()["meta"]["job_id"])
    with (
        running_sandbox(SandboxConfig(), db=db) as box,
        httpx.Client(base_url=box.base_url, headers={"Authorization": "Bearer sandbox-token"}) as c,
    ):
        assert c.get("/v1/invoices/").json()["meta"]["total"] == 1
        assert c.post("/_sandbox/reset").status_code == 200
        assert c.get("/v1/invoices/").json()["meta"]["total"] == 0
        assert c.get("/v1/vendors/").json()["meta"]["total"] == len(SEED["vendors"])


def test_order_by_and_updated_at_filters(client: httpx.Client) -> None:
    asc = client.get("/v1/vendors/", params={"order-by": "name:asc,id:desc", "limit": 250}).json()
    names = [v["name"] for v in asc["results"]]
    assert names == sorted(names)
    assert asc["meta"]["orderBy"] == [
        {"field": "name", "direction": "asc"},
        {"field": "id", "direction": "desc"},
    ]
    assert client.get("/v1/vendors/", params={"order-by": "name:sideways"}).status_code == 400
    seeded_at = SEED["vendors"][0].get("updated_at", "2026-10-01T00:00:00.000Z")
    assert (
        client.get("/v1/vendors/", params={"updated_at_gte": "2030-01-01T00:00:00Z"}).json()[
            "meta"
        ]["total"]
        == 0
    )
    assert client.get("/v1/vendors/", params={"updated_at_lte": seeded_at}).json()["meta"][
        "total"
    ] == len(SEED["vendors"])
    assert client.get("/v1/vendors/", params={"updated_at_gte": "yesterday"}).status_code == 400


def test_sync_interval_makes_charges_visible_without_a_manual_sync() -> None:
    with (
        running_sandbox(
            SandboxConfig(job_delay_s=0, sync_interval_s=0.2, sync_duration_s=0.1)
        ) as box,
        httpx.Client(base_url=box.base_url, headers={"Authorization": "Bearer sandbox-token"}) as c,
    ):
        body = {
            "integration_id": INTEGRATION,
            "charges": [charge(resident_in(0), charge_code_in(0), "TOINT")],
        }
        c.post("/v1/resident-charges/batch/rentmanager/", json=body)
        # The first periodic sync may have started before the write: the next one sees it.
        for n in range(1, 4):
            box.wait_for("sync", count=n, timeout=5)
            if c.get("/v1/resident-charges/").json()["meta"]["total"] == 1:
                break
        else:
            raise AssertionError("no periodic sync saw the charge")


def test_everything_the_pipeline_posts_passes_the_request_schemas(refs) -> None:  # type: ignore[no-untyped-def]
    """Our payloads, checked against Propexo's published request schemas (unknown keys refused)."""
    from sandbox.validation import load_request_validators, zod_issues
    from tests.conftest import SAMPLES as samples
    from tests.test_transform import run_file

    validators = load_request_validators()
    bills = run_file(samples / "vendor_bills.csv", refs).records
    roll = run_file(samples / "rent_roll.xlsx", refs).records
    frame = pd.concat([bills, roll], ignore_index=True)
    for request in registered().plan_requests(frame, batch_size=50):
        assert zod_issues(validators[request.path], request.body) == [], request.path


def test_a_second_integration_has_ids_and_a_rate_budget_of_its_own() -> None:
    """#18's workers on two integrations: a copy of the seed's integration, reached with its
    own token, whose requests do not spend the first's budget (the limit is per customer)."""
    config = SandboxConfig(integrations=2, rate_limit=3, rate_window_s=30, job_delay_s=0.05)
    with running_sandbox(config) as box:
        first, second = config.tokens()
        assert second == "sandbox-token-2"

        def vendors(token: str, integration: str) -> httpx.Response:
            return httpx.get(
                f"{box.base_url}/v1/vendors/",
                params={"integration_id": integration},
                headers={"Authorization": f"Bearer {token}"},
            )

        theirs = vendors(second, "int_rm_demo-2")
        assert theirs.status_code == 200
        ids = [v["id"] for v in theirs.json()["results"]]
        assert len(ids) == len(SEED["vendors"]) and all(i.endswith("-2") for i in ids)
        assert {v["integration_id"] for v in theirs.json()["results"]} == {"int_rm_demo-2"}
        ours = [v["id"] for v in vendors(first, INTEGRATION).json()["results"]]
        assert not set(ours) & set(ids) and len(ours) == len(ids)
        assert [vendors(first, INTEGRATION).status_code for _ in range(3)] == [200, 200, 429]
        assert vendors(second, "int_rm_demo-2").status_code == 200  # 2 of the second's 3
        assert vendors("sandbox-token-3", INTEGRATION).status_code == 401
