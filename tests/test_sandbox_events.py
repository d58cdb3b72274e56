"""What tests wait on instead of a clock: the running sandbox's events (RunningSandbox.wait_for)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from sandbox.faults import SandboxConfig
from sandbox.server import RunningSandbox, running_sandbox
from tests.conftest import receiving
from tests.test_sandbox import invoice_body

SYNC = "/v1/admin/integrations/int_rm_demo/manual-sync"


def test_a_sync_is_waited_for_until_it_has_finished(
    sandbox: RunningSandbox, api: httpx.Client
) -> None:
    """`manual-sync` answers at once; wait_for("sync") returns once that sync has finished,
    not before (the sandbox's fixture syncs take 0.2 s)."""
    mark = sandbox.mark()
    assert api.post(SYNC, json={}).status_code == 200
    assert sandbox.app.sandbox.events.syncs_completed == mark.syncs  # still running
    sandbox.wait_for("sync", since=mark, timeout=10)
    assert sandbox.app.sandbox.events.syncs_completed == mark.syncs + 1
    # A second wait since the same mark for two syncs does not come without a second sync.
    with pytest.raises(AssertionError, match=r"'sync' did not come in 0\.3s"):
        sandbox.wait_for("sync", since=mark, count=2, timeout=0.3)


def test_jobs_are_waited_for_until_their_status_is_final() -> None:
    """A job's write status is IN_PROGRESS until its delay has passed; wait_for("jobs") returns
    when the last one is final, and "logged" when the write log shows it."""
    config = SandboxConfig(job_delay_s=0.6, rate_limit=1000, write_log_delay_s=0.4)
    with running_sandbox(config) as box, httpx.Client(base_url=box.base_url) as client:
        client.headers["Authorization"] = f"Bearer {box.config.token}"
        mark = box.mark()
        posted = client.post("/v1/invoices/rentmanager/", json=invoice_body(invoice_number="EV-1"))
        assert posted.status_code == 200, posted.text
        box.wait_for("written", since=mark, timeout=1)  # accepted as a job
        with pytest.raises(AssertionError):
            box.wait_for("written", since=mark, count=2, timeout=0.1)
        job = posted.json()["meta"]["job_id"]
        status = f"/v1/admin/write-status/{job}"
        assert client.get(status).json()["write_status"] == "PENDING"
        began = time.monotonic()
        box.wait_for("jobs", timeout=10)
        assert client.get(status).json()["write_status"] == "SUCCESS"
        assert time.monotonic() - began < 0.6 + 0.5
        logs = "/v1/admin/logs/writes/"
        assert job not in client.get(logs).text
        box.wait_for("logged", timeout=10)
        assert job in client.get(logs).text


def test_a_webhook_is_waited_for_until_it_is_delivered(tmp_path: Path) -> None:
    """A SYNC_COMPLETE reaches tieout's receiver: wait_for("webhook") says it was answered 2xx;
    then nothing is left running ("idle")."""
    config = SandboxConfig(job_delay_s=0.05, rate_limit=1000, sync_duration_s=0.1)
    with running_sandbox(config) as box, receiving(box, tmp_path / "data"):
        mark = box.mark()
        headers = {"Authorization": f"Bearer {box.config.token}"}
        assert httpx.post(f"{box.base_url}{SYNC}", json={}, headers=headers).status_code == 200
        box.wait_for("webhook", since=mark, trigger="SYNC_COMPLETE", timeout=10)
        answered = box.app.sandbox.events.deliveries[mark.deliveries :]
        assert ("SYNC_COMPLETE", 200) in answered
        box.wait_for("idle", timeout=10)
        assert box.app.sandbox.events.busy == 0
        with pytest.raises(AssertionError):
            box.wait_for("webhook", since=mark, trigger="WRITE_OPERATION_FAILURE", timeout=0.2)


def test_an_unknown_event_is_refused(sandbox: RunningSandbox) -> None:
    with pytest.raises(ValueError, match="no such sandbox event: 'tea'"):
        sandbox.wait_for("tea", timeout=1)  # type: ignore[arg-type]


def test_a_client_outside_the_process_waits_through_the_sandbox_wait_endpoint(
    api: httpx.Client,
) -> None:
    """`POST /_sandbox/wait` answers once the event has happened, 408 when it did not come
    in time, 400 for an event it does not know; `GET /_sandbox/mark` counts from now."""
    mark = api.get("/_sandbox/mark").json()
    assert api.post(SYNC, json={}).status_code == 200
    waited = api.post("/_sandbox/wait", params={"event": "sync", "syncs": mark["syncs"]})
    assert waited.status_code == 200, waited.text
    assert waited.json()["syncs"] == mark["syncs"] + 1
    late = api.post(
        "/_sandbox/wait", params={"event": "sync", "syncs": mark["syncs"] + 1, "timeout": 0.2}
    )
    assert late.status_code == 408 and "did not come in 0.2s" in late.text
    assert api.post("/_sandbox/wait", params={"event": "tea"}).status_code == 400
    assert api.post("/_sandbox/wait", params={"event": "jobs", "timeout": "x"}).status_code == 400
    assert api.post("/_sandbox/wait", params={"event": "idle"}).status_code == 200
    assert httpx.post(f"{api.base_url}/_sandbox/wait", params={"event": "idle"}).status_code == 401


def test_a_sync_start_is_waited_for_before_it_ends(
    sandbox: RunningSandbox, api: httpx.Client
) -> None:
    """wait_for("started") returns while the sync still runs: what it sees is fixed then."""
    mark = sandbox.mark()
    sandbox.config.sync_duration_s = 5.0
    assert api.post(SYNC, json={}).status_code == 200
    sandbox.wait_for("started", since=mark, timeout=5)
    events = sandbox.app.sandbox.events
    assert events.syncs_started == mark.started + 1
    assert events.syncs_completed == mark.syncs  # not finished yet
    sandbox.config.sync_duration_s = 0.0  # the sandbox reads it while the sync runs: ends it
    sandbox.wait_for("sync", since=mark, timeout=5)
    assert api.get("/_sandbox/mark").json() == {
        "syncs": mark.syncs + 1,
        "deliveries": mark.deliveries,
        "started": mark.started + 1,
        "writes": mark.writes,
    }
