"""Where Propexo's docs are silent, the sandbox takes the least convenient plausible answer.

Each test pins one named option (ARCHITECTURE.md's sandbox table) to what it promises, so that the
client's tests run against the behaviour the docs allow rather than the friendliest one.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from sandbox.events import signature
from sandbox.faults import SandboxConfig
from sandbox.server import RunningSandbox, running_sandbox
from tests.conftest import sandbox_wait
from tests.test_sandbox import INTEGRATION, charge, charge_code_in, invoice_body, resident_in


class Catcher:
    """A webhook receiver on a free loopback port that keeps what it is sent."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.arrived = threading.Condition()
        catcher = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                with catcher.arrived:
                    catcher.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                    catcher.arrived.notify_all()
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self, trigger: str) -> list[dict[str, Any]]:
        return [
            json.loads(body)["data"]
            for _, body in self.received
            if json.loads(body)["trigger"] == trigger
        ]

    def wait_for(self, trigger: str, count: int = 1, timeout: float = 10) -> list[dict[str, Any]]:
        with self.arrived:
            if not self.arrived.wait_for(lambda: len(self.events(trigger)) >= count, timeout):
                raise AssertionError(f"no {trigger} webhook after {timeout}s")
        return self.events(trigger)


@pytest.fixture
def catcher() -> Iterator[Catcher]:
    c = Catcher()
    yield c
    c.server.shutdown()
    c.server.server_close()


def client_for(box: RunningSandbox) -> httpx.Client:
    return httpx.Client(base_url=box.base_url, headers={"Authorization": "Bearer sandbox-token"})


def post_charges(c: httpx.Client, *charges: dict[str, Any]) -> str:
    body = {"integration_id": INTEGRATION, "charges": list(charges)}
    response = c.post("/v1/resident-charges/batch/rentmanager/", json=body)
    assert response.status_code == 200, response.text
    return str(response.json()["meta"]["job_id"])


def wait_terminal(c: httpx.Client, job_id: str) -> dict[str, Any]:
    """The job's final write status, read once the sandbox says every job has finished."""
    sandbox_wait(c, "jobs", timeout=10)
    status: dict[str, Any] = c.get(f"/v1/admin/write-status/{job_id}").json()
    assert status["write_status"] != "PENDING", "job never finished"
    return status


def subscribe(c: httpx.Client, url: str, secret: str = "a-long-enough-secret") -> dict[str, Any]:
    response = c.post(
        "/v1/webhooks/",
        json={
            "url": url,
            "triggers": ["SYNC_COMPLETE", "WRITE_OPERATION_FAILURE"],
            "active": True,
            "secret": secret,
        },
    )
    assert response.status_code == 200, response.text
    return dict(response.json()["result"])


def charges_listed(c: httpx.Client) -> list[dict[str, Any]]:
    return list(c.get("/v1/resident-charges/", params={"limit": 250}).json()["results"])


def test_manual_sync_answers_at_once_and_finishes_later_with_a_signed_webhook(
    catcher: Catcher,
) -> None:
    # The sync lasts 2 s, so the answer and the empty list are read well before it ends even
    # on a loaded machine (CI runs the suite twice, once under coverage).
    config = SandboxConfig(job_delay_s=0, sync_duration_s=2.0)
    with running_sandbox(config) as box, client_for(box) as c:
        webhook = subscribe(c, catcher.url)
        wait_terminal(c, post_charges(c, charge(resident_in(0), charge_code_in(0), "TOA1")))
        asked = time.monotonic()
        assert c.post(f"/v1/admin/integrations/{INTEGRATION}/manual-sync", json={}).json() == {
            "result": {"success": True}
        }
        assert time.monotonic() - asked < 1.0
        assert charges_listed(c) == []  # answered, but not synced yet
        done = catcher.wait_for("SYNC_COMPLETE")[0]  # a redelivered copy may follow
        assert done["is_sync_finished"] is True
        assert done["job_schedule_id"] is None  # a manual sync
        assert set(done["models_synced"]) >= {"resident_charges", "invoices"}
        assert [r["reference_number"] for r in charges_listed(c)] == ["TOA1"]
        headers, body = catcher.received[-1]
        assert headers["propexo-signature"] == signature(webhook["secret"], body)


def syncs_finished(box: RunningSandbox, count: int, timeout: float = 10) -> None:
    """Wait until the sandbox has finished ``count`` syncs. Its own count, not SYNC_COMPLETE
    webhooks: a webhook may be redelivered (the default), and a copy of the first sync's
    would pass for the second's."""
    box.wait_for("sync", count=count, timeout=timeout)


def test_a_sync_sees_only_what_was_written_before_it_started() -> None:
    config = SandboxConfig(job_delay_s=0, sync_duration_s=0.5)
    with running_sandbox(config) as box, client_for(box) as c:
        c.post(f"/v1/admin/integrations/{INTEGRATION}/manual-sync", json={})
        box.wait_for("started")  # what the sync sees is fixed from here
        wait_terminal(c, post_charges(c, charge(resident_in(0), charge_code_in(0), "TOLATE")))
        syncs_finished(box, 1)
        assert charges_listed(c) == []  # written while the sync ran: the next sync sees it
        c.post(f"/v1/admin/integrations/{INTEGRATION}/manual-sync", json={})
        syncs_finished(box, 2)
        assert [r["reference_number"] for r in charges_listed(c)] == ["TOLATE"]


def test_syncs_of_one_integration_run_one_at_a_time() -> None:
    config = SandboxConfig(job_delay_s=0, sync_duration_s=0.4)
    with running_sandbox(config) as box, client_for(box) as c:
        started = time.monotonic()
        for _ in range(2):
            c.post(f"/v1/admin/integrations/{INTEGRATION}/manual-sync", json={})
        syncs_finished(box, 2)
        assert time.monotonic() - started >= 0.8


def test_a_sync_sees_charges_only_inside_its_date_window() -> None:
    config = SandboxConfig(job_delay_s=0, sync_mode="instant", sync_window_days=30)
    with running_sandbox(config) as box, client_for(box) as c:
        resident, code = resident_in(0), charge_code_in(0)
        today = time.strftime("%Y-%m-%d", time.gmtime())
        inside = {**charge(resident, code, "TOIN"), "transaction_date": f"{today}T00:00:00.000Z"}
        outside = {**charge(resident, code, "TOOLD"), "transaction_date": "2020-01-01T00:00:00Z"}
        wait_terminal(c, post_charges(c, inside, outside))
        c.post(f"/v1/admin/integrations/{INTEGRATION}/manual-sync", json={})
        assert [r["reference_number"] for r in charges_listed(c)] == ["TOIN"]
        pms = c.get("/_sandbox/records", params={"kind": "charge"}).json()["results"]
        assert len(pms) == 2  # the old one is in Rent Manager; Propexo's sync never sees it


def test_last_seen_is_stamped_only_by_a_sync() -> None:
    config = SandboxConfig(job_delay_s=0, sync_mode="instant")
    with running_sandbox(config) as box, client_for(box) as c:
        status = wait_terminal(
            c, c.post("/v1/invoices/rentmanager/", json=invoice_body()).json()["meta"]["job_id"]
        )
        invoice = c.get(f"/v1/invoices/{status['created_record_id']}").json()["results"]
        assert invoice["last_seen"] is None  # read back at once, but no sync has seen it
        c.post(
            f"/v1/admin/integrations/{INTEGRATION}/manual-sync",
            json={"models_to_sync": ["resident_charges"]},
        )
        invoice = c.get(f"/v1/invoices/{status['created_record_id']}").json()["results"]
        assert invoice["last_seen"] is None  # that sync did not sync invoices
        c.post(
            f"/v1/admin/integrations/{INTEGRATION}/manual-sync",
            json={"models_to_sync": ["invoices"]},
        )
        invoice = c.get(f"/v1/invoices/{status['created_record_id']}").json()["results"]
        assert invoice["last_seen"] is not None


@pytest.mark.parametrize("readback", ["echo", "null"])
def test_reference_readback_and_stored_date(readback: str) -> None:
    config = SandboxConfig(job_delay_s=0, sync_mode="instant", reference_readback=readback)
    with running_sandbox(config) as box, client_for(box) as c:
        wait_terminal(c, post_charges(c, charge(resident_in(0), charge_code_in(0), "TORB")))
        c.post(f"/v1/admin/integrations/{INTEGRATION}/manual-sync", json={})
        (row,) = charges_listed(c)
        assert row["reference_number"] == ("TORB" if readback == "echo" else None)
        assert row["transaction_date"] == "2026-12-01T00:00:00"  # as RM keeps a day


def test_batch_errors_indexed_and_atomic() -> None:
    resident, code = resident_in(0), charge_code_in(0)
    bad = {**charge(resident, code, "TOBAD"), "resident_id": "no-such-resident"}
    with (
        running_sandbox(SandboxConfig(job_delay_s=0, batch_errors="indexed")) as box,
        client_for(box) as c,
    ):
        status = wait_terminal(c, post_charges(c, charge(resident, code, "TOGOOD"), bad))
        assert status["write_status"] == "PARTIAL_SUCCESS"
        assert "charges[1]" in status["errors"][0] and "TOBAD" in status["errors"][0]
    with (
        running_sandbox(SandboxConfig(job_delay_s=0, batch_atomic=True)) as box,
        client_for(box) as c,
    ):
        status = wait_terminal(c, post_charges(c, charge(resident, code, "TOGOOD"), bad))
        assert status["write_status"] == "FAILURE"
        assert c.get("/_sandbox/records").json()["total"] == 0


def test_a_failed_write_is_told_to_write_operation_failure_subscribers(catcher: Catcher) -> None:
    with running_sandbox(SandboxConfig(job_delay_s=0.05)) as box, client_for(box) as c:
        subscribe(c, catcher.url)
        bad = {**charge(resident_in(0), charge_code_in(0), "TOX"), "resident_id": "nobody"}
        job_id = post_charges(c, bad)
        (event,) = catcher.wait_for("WRITE_OPERATION_FAILURE")
        assert event["root_job_id"] == job_id and event["write_status"] == "FAILURE"


def test_webhook_subscriptions_crud() -> None:
    with running_sandbox(SandboxConfig()) as box, client_for(box) as c:
        created = subscribe(c, "http://127.0.0.1:9/hook")
        assert created["system"] == "SANDBOX" and len(created["secret"]) >= 10
        listed = c.get("/v1/webhooks/").json()["results"]
        assert [w["id"] for w in listed] == [created["id"]]
        changed = c.put(f"/v1/webhooks/{created['id']}", json={"active": False}).json()["result"]
        assert changed["active"] is False and changed["triggers"] == created["triggers"]
        assert c.delete(f"/v1/webhooks/{created['id']}").status_code == 200
        assert c.get("/v1/webhooks/").json()["results"] == []
        assert c.post("/v1/webhooks/", json={"url": "x", "triggers": []}).status_code == 400


def test_validation_is_as_strict_as_zod() -> None:
    with running_sandbox(SandboxConfig(max_body_bytes=20_000)) as box, client_for(box) as c:
        no_offset = {**charge(resident_in(0), charge_code_in(0), "TOZ")}
        no_offset["transaction_date"] = "2026-12-01T00:00:00"
        body = {"integration_id": INTEGRATION, "charges": [no_offset]}
        response = c.post("/v1/resident-charges/batch/rentmanager/", json=body)
        assert response.status_code == 400
        assert response.json()["error"]["details"]["issues"][0]["path"] == [
            "charges",
            0,
            "transaction_date",
        ]
        as_text = c.post(
            "/v1/resident-charges/batch/rentmanager/",
            content=json.dumps(body),
            headers={"content-type": "text/plain"},
        )
        assert as_text.status_code == 415
        huge = {"integration_id": INTEGRATION, "charges": [no_offset] * 200}
        assert c.post("/v1/resident-charges/batch/rentmanager/", json=huge).status_code == 413
        missing = invoice_body()
        for key in ("vendor_id", "location_id", "due_date"):
            del missing[key]
        issues = c.post("/v1/invoices/rentmanager/", json=missing).json()["error"]["details"]
        assert sorted(i["path"][0] for i in issues["issues"]) == [
            "due_date",
            "location_id",
            "vendor_id",
        ]
        empty = c.post(
            "/v1/invoices/rentmanager/",
            json=invoice_body(invoice_items=[], total_amount_in_cents=0),
        )
        assert empty.status_code == 400
        assert empty.json()["error"]["details"]["issues"][0]["path"] == ["invoice_items"]


def test_write_log_entries_carry_only_documented_fields() -> None:
    documented = {
        "id",
        "created_at",
        "job_id",
        "job_log_id",
        "status",
        "integration_id",
        "job_type",
        "parameters",
        "error",
        "name",
        "vendor",
    }
    config = SandboxConfig(job_delay_s=0, write_log_delay_s=0)
    with running_sandbox(config) as box, client_for(box) as c:
        wait_terminal(c, post_charges(c, charge(resident_in(0), charge_code_in(0), "TOLOG")))
        (entry,) = c.get("/v1/admin/logs/writes/").json()["results"]["logs"]
        assert set(entry) <= documented
        assert "write_status" not in json.dumps(entry["parameters"])
