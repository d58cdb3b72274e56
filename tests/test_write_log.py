"""Exactly once on evidence, not timing (#30): Propexo's write log decides whether a record in
doubt landed; no webhook, sync time or clock comparison ever sends money again. Every count is
taken from the sandbox's PMS side (``/_sandbox/records``)."""

from __future__ import annotations

import hashlib
import hmac
import json
import shutil
import sqlite3
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from pipelines.core.config import Secret
from pipelines.ledger import Ledger
from pipelines.posting.propexo import PropexoClient
from sandbox.faults import SandboxConfig
from sandbox.server import RunningSandbox, running_sandbox
from tests.conftest import (
    WEBHOOK_SECRET,
    ledger_at,
    past_in_doubt_grace,
    receiving,
    run_cli,
    sandbox_wait,
)
from tests.test_load import env_for
from tests.test_lost_ledger import drop, lose_ledger

CHARGES = 129  # the rent roll sample's charges and credits


def in_rm(api: httpx.Client) -> Counter[str]:
    """Each record on the PMS side by its identity: how many times it is in Rent Manager."""
    records = api.get("/_sandbox/records").json()["results"]
    return Counter(r.get("invoice_number") or r["reference_sent"] for r in records)


def states(workspace: Path, ledger_url: str | None = None) -> Counter[str]:
    with Ledger(ledger_at(workspace, ledger_url), readonly=True) as ledger:
        return Counter(ledger.records(columns=["state"])["state"])


def sync_complete(schedule_id: str | None = None) -> bytes:
    """The SYNC_COMPLETE body the sandbox sends (every manual one is the same, byte for byte)."""
    data = {
        "event": "SYNC_COMPLETE",
        "integration_id": "int_rm_demo",
        "vendor": "RENTMANAGER",
        "is_backsync": False,
        "successful_job_count": 2,
        "failed_job_count": 0,
        "is_sync_finished": True,
        "job_schedule_id": schedule_id,
        "models_synced": ["invoices", "resident_charges"],
    }
    return json.dumps({"trigger": "SYNC_COMPLETE", "data": data}).encode()


def deliver(url: str, body: bytes) -> None:
    mac = hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
    answer = httpx.post(url, content=body, headers={"propexo-signature": mac})
    assert answer.status_code == 200, answer.text


def post_with_answers_lost(box: RunningSandbox, workspace: Path, env: dict[str, str]) -> None:
    """A run whose every write lands but whose every answer is lost: all in doubt."""
    box.config.faults = {"post": {"lost": 1.0}}
    try:
        run_cli("--data-dir", str(workspace), "run", env=env)
    finally:
        box.config.faults = {}
    now = states(workspace)
    # All in doubt, but for what this run's own search of the log may already have found.
    assert set(now) <= {"sending", "confirmed"} and now["sending"] > CHARGES // 2, now


def settle_by_evidence(workspace: Path, env: dict[str, str], rounds: int = 20) -> Counter[str]:
    """`reconcile` until nothing is in doubt: the write log shows each job once it has finished
    and the sandbox's --write-log-delay has passed."""
    auth = {"Authorization": f"Bearer {env['PROPEXO_API_TOKEN']}"}
    with httpx.Client(base_url=env["PROPEXO_BASE_URL"], headers=auth) as api:
        for _ in range(rounds):
            now = states(workspace)
            if not {"sending", "partial", "ready", "submitted"} & set(now):
                return now
            sandbox_wait(api, "logged")  # every job made so far shows in the write log
            run_cli("--data-dir", str(workspace), "reconcile", env=env)
    return states(workspace)


def rent_roll_only(workspace: Path) -> None:
    (workspace / "inbox" / "vendor_bills.csv").unlink()


SCENARIOS = ["redelivered", "foreign manual sync", "replayed", "forged scheduled"]


def wait_for(box: RunningSandbox, condition: Any, what: str, timeout_s: float = 120) -> None:
    """Until ``condition`` holds, woken by the sandbox's events (each sync, each delivery)."""
    events = box.app.sandbox.events
    with events.changed:
        assert events.changed.wait_for(condition, timeout_s), f"the sandbox never {what}"


def sync_completes_delivered(box: RunningSandbox) -> int:
    return sum(
        1 for t, code in box.app.sandbox.events.deliveries if t == "SYNC_COMPLETE" and code == 200
    )


def _said_of_the_cell(before: dict[str, int], after: dict[str, int], held: dict[str, int]) -> int:
    """The restored-backup cell's line (as the soak prints its cells); how many records are
    left for a person."""
    left = sum(n for s, n in held.items() if s in ("sending", "partial", "failed", "refused"))
    print(
        f"\ncell restored backup: expected {12 + CHARGES}, {sum(after.values())} in RM, "
        f"{sum(n - 1 for n in after.values())} duplicates, "
        f"{sum(1 for k in before if k not in after)} losses, {left} left for a person"
    )
    return left


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_no_sync_complete_sends_a_record_in_doubt_again(scenario: str, workspace: Path) -> None:
    """Table rows (a)-(d) of #30, each played as the table tells it. Every write lands, every
    answer is lost (all in doubt), then tieout asks for a sync (`reconcile --sync`) after the
    in-doubt grace, and a SYNC_COMPLETE arrives that says nothing of the writes:

    (a) Propexo delivers again a SYNC_COMPLETE of a sync that ran before the writes (the
        sandbox's at-least-once delivery, no attacker); (b) a manual sync another client started
        before the writes completes after tieout asked for one; (c) an old signed manual
        SYNC_COMPLETE is replayed; (d) two scheduled ones are forged. Then `reconcile` and `run`.

    Before #30 (40db228) each became a sync "started" after the writes (matched first in, first
    out to tieout's request, or after the previous scheduled one) that proved the charges absent,
    and `run` sent all 129 again. Now only the write log settles them: 129 once."""
    config = SandboxConfig(
        job_delay_s=0.05,
        rate_limit=1000,
        # The sync before the writes finishes at once; the foreign one runs until tieout has
        # asked for one; tieout's own (queued behind it, or alone) does not finish here.
        sync_duration_s=600.0 if scenario == "foreign manual sync" else 0.3,
        webhook_redeliver=1.0 if scenario == "redelivered" else 0.0,
        webhook_late_s=2.0,
        write_log_delay_s=8.0,  # the jobs show in the log only after the attacks below
    )
    rent_roll_only(workspace)
    with (
        running_sandbox(config) as box,
        httpx.Client(
            base_url=box.base_url, headers={"Authorization": "Bearer sandbox-token"}
        ) as api,
        receiving(box, workspace) as url,
    ):
        env = env_for(box, workspace, batch_size=10)
        # A sync started before the writes: it cannot see them.
        started = time.time()
        api.post("/v1/admin/integrations/int_rm_demo/manual-sync", json={})
        if scenario != "foreign manual sync":
            wait_for(box, lambda: sync_completes_delivered(box) >= 1, "delivered the first sync")
        post_with_answers_lost(box, workspace, env)
        box.config.sync_duration_s = 600.0  # tieout's own sync never brings the charges here
        past_in_doubt_grace(workspace, env)  # on main, what a sync after it "proved"
        run_cli("--data-dir", str(workspace), "reconcile", "--sync", env=env)
        delivered = sync_completes_delivered(box)
        if scenario == "redelivered":
            # Propexo delivers the same SYNC_COMPLETE again, after tieout asked for a sync.
            wait_for(box, lambda: sync_completes_delivered(box) > delivered, "delivered it again")
            box.config.webhook_redeliver = 0.0
        elif scenario == "foreign manual sync":
            events = box.app.sandbox.events
            assert events.syncs_completed == 0, "the foreign sync ended too early"
            # It ends now; tieout's own, queued behind it, would take as long: it is made long
            # again at once, so it never brings the charges here.
            box.config.sync_duration_s = time.time() - started
            wait_for(box, lambda: events.syncs_completed > 0, "ended the foreign sync")
            box.config.sync_duration_s = 600.0
            wait_for(box, lambda: sync_completes_delivered(box) > delivered, "delivered its end")
        elif scenario == "replayed":
            deliver(url, sync_complete())  # byte for byte the first sync's
        else:
            deliver(url, sync_complete("sched_int_rm_demo"))
            deliver(url, sync_complete("sched_int_rm_demo"))
        run_cli("--data-dir", str(workspace), "reconcile", env=env)
        run_cli("--data-dir", str(workspace), "run", env=env)
        final = settle_by_evidence(workspace, env)
        counts = in_rm(api)
    twice = [k for k, n in counts.items() if n > 1]
    print(
        f"\nrow {scenario}: expected {CHARGES} in RM, {sum(counts.values())} in RM, "
        f"{len(twice)} twice, {CHARGES - len(counts)} lost"
    )
    assert not twice, f"{len(twice)} charges posted twice"
    assert len(counts) == CHARGES  # none lost
    # None left in doubt, to send, or failed. (A forged or replayed SYNC_COMPLETE can still
    # make a report call them "missing" until a real sync brings them: words, not money.)
    assert not {"sending", "partial", "ready", "submitted", "failed"} & set(final), final


def test_a_restored_ledger_adopts_what_the_write_log_shows_before_any_sync(
    workspace: Path,
) -> None:
    """Row (e): a file posted after the backup, dropped again before Propexo's next sync."""
    config = SandboxConfig(job_delay_s=0.05, rate_limit=1000, write_log_delay_s=0.2)
    with (
        running_sandbox(config) as box,
        httpx.Client(
            base_url=box.base_url, headers={"Authorization": "Bearer sandbox-token"}
        ) as api,
    ):
        env = env_for(box, workspace)
        (workspace / "inbox" / "rent_roll.xlsx").unlink()
        assert run_cli("--data-dir", str(workspace), "run", env=env).returncode == 0
        backup = workspace.parent / "old-ledger.sqlite"
        with sqlite3.connect(workspace / "ledger.sqlite") as live, sqlite3.connect(backup) as copy:
            live.backup(copy)
        drop(workspace, "rent_roll.xlsx")
        assert run_cli("--data-dir", str(workspace), "run", env=env).returncode == 0
        before = in_rm(api)
        assert sum(before.values()) == 12 + CHARGES

        lose_ledger(workspace)
        shutil.copy2(backup, workspace / "ledger.sqlite")
        drop(workspace, "rent_roll.xlsx")  # no sync since it was posted
        rerun = run_cli("--data-dir", str(workspace), "run", env=env)
        assert rerun.returncode == 0, rerun.stdout + rerun.stderr
        after = in_rm(api)
        held = states(workspace)
    left = _said_of_the_cell(before, after, held)
    assert after == before
    assert not left, held
    assert f"{CHARGES} records new to the ledger were already carried" in rerun.stdout


def test_a_write_reported_failed_that_landed_is_found_not_failed_forever(
    workspace: Path,
    ledger_url: str,
) -> None:
    """Row (f): write-status FAILURE although the charges landed."""
    config = SandboxConfig(
        job_delay_s=0.05, rate_limit=1000, failed_but_applied=1.0, sync_mode="instant"
    )
    rent_roll_only(workspace)
    with (
        running_sandbox(config) as box,
        httpx.Client(
            base_url=box.base_url, headers={"Authorization": "Bearer sandbox-token"}
        ) as api,
    ):
        env = env_for(box, workspace, ledger_url, batch_size=10)
        run_cli("--data-dir", str(workspace), "run", env=env)
        assert states(workspace, ledger_url) == {"failed": CHARGES}
        api.post("/_sandbox/sync")
        run_cli("--data-dir", str(workspace), "reconcile", env=env)
        counts = in_rm(api)
    final = states(workspace, ledger_url)
    assert "failed" not in final, final
    assert sum(final.values()) == CHARGES
    assert len(counts) == CHARGES and set(counts.values()) == {1}


def test_jobs_confirmed_from_the_write_log_keep_their_created_record_id(
    workspace: Path,
    ledger_url: str,
) -> None:
    """#29: with three or more open jobs the write log confirms them; an invoice keeps the id
    its job gave it (the log has none: write-status is asked for a job of one record)."""
    config = SandboxConfig(job_delay_s=0.3, rate_limit=1000, write_log_delay_s=0.0)
    (workspace / "inbox" / "rent_roll.xlsx").unlink()
    with running_sandbox(config) as box:
        env = env_for(box, workspace, ledger_url)
        assert run_cli("--data-dir", str(workspace), "run", env=env).returncode == 0
    with Ledger(ledger_at(workspace, ledger_url), readonly=True) as ledger:
        invoices = ledger.records()
    assert len(invoices) == 12
    assert invoices["created_record_id"].notna().all(), invoices[["state", "created_record_id"]]


def test_the_write_log_shows_a_job_late_and_its_request_only_without_the_token(
    sandbox: RunningSandbox, api: httpx.Client
) -> None:
    """The sandbox plays the log as documented, inconveniently: entries only once the job has
    finished and the log delay passed; parameters null; the presigned URL refuses the token."""
    sandbox.config.write_log_delay_s = 0.5
    body = {
        "integration_id": "int_rm_demo",
        "charges": [
            {
                "resident_id": "res_unknown",  # a PMS fault: the job fails, and is logged
                "charge_code_id": "cc_unknown",
                "amount_in_cents": 1234,
                "transaction_date": "2026-12-01T00:00:00Z",
                "notes": "x",
                "reference_number": "TEST-REF-1",
            }
        ],
    }
    posted = api.post("/v1/resident-charges/batch/rentmanager/", json=body)
    assert posted.status_code == 200, posted.text

    def logged() -> list[dict[str, Any]]:
        answer = api.get("/v1/admin/logs/writes/", params={"integration_id": "int_rm_demo"})
        return list(answer.json()["results"]["logs"])

    assert logged() == []  # still running, or finished too recently
    sandbox_wait(api, "logged", timeout=10)
    (entry,) = logged()
    assert entry["parameters"] is None
    redirect = api.get(f"/v1/admin/job-logs/{entry['job_log_id']}/data")
    assert redirect.status_code == 302
    location = redirect.headers["location"]
    assert api.get(location).status_code == 403  # the Authorization header is refused
    assert httpx.get(location).json()["request"]["body"] == body
    with PropexoClient(sandbox.base_url, Secret("sandbox-token")) as client:
        assert client.job_log_data(entry["job_log_id"])["request"]["body"] == body


def test_a_rebuild_adopts_what_only_the_write_log_shows(workspace: Path, ledger_url: str) -> None:
    """`ledger rebuild` before Propexo has synced the charges: the write log has them."""
    config = SandboxConfig(job_delay_s=0.05, rate_limit=1000, write_log_delay_s=0.2)
    with (
        running_sandbox(config) as box,
        httpx.Client(
            base_url=box.base_url, headers={"Authorization": "Bearer sandbox-token"}
        ) as api,
    ):
        env = env_for(box, workspace, ledger_url)
        assert run_cli("--data-dir", str(workspace), "run", env=env).returncode == 0
        before = in_rm(api)
        assert sum(before.values()) == 12 + CHARGES

        lose_ledger(workspace, ledger_url)
        rebuilt = run_cli("--data-dir", str(workspace), "ledger", "rebuild", env=env)
        assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
        assert f"adopted {12 + CHARGES} records" in rebuilt.stdout, rebuilt.stdout
        drop(workspace, "vendor_bills.csv", "rent_roll.xlsx")
        rerun = run_cli("--data-dir", str(workspace), "run", env=env)
        assert rerun.returncode == 0, rerun.stdout + rerun.stderr
        after = in_rm(api)
        held = states(workspace)
    left = _said_of_the_cell(before, after, held)
    assert after == before
    assert not left, held


def test_the_log_range_reaches_back_past_the_post_with_a_margin() -> None:
    from pipelines.kinds import registered
    from pipelines.posting.writelog import request_identities, time_range_for

    assert time_range_for(0) == "hour"
    assert time_range_for(3600 - 900) == "hour"
    assert time_range_for(3600 - 899) == "day"
    assert time_range_for(6 * 86400) == "week"
    assert time_range_for(27 * 86400) == "month"
    assert time_range_for(28 * 86400) is None  # a person decides
    charge, invoice = registered().record("charge"), registered().record("invoice")
    batch = {"charges": [{"reference_number": "A-1"}, {"reference_number": "A-2"}]}
    assert request_identities(batch, charge) == {"ref:A-1", "ref:A-2"}
    assert request_identities({"reference_number": "C-1"}, charge) == {"ref:C-1"}  # a credit
    bill = json.dumps({"vendor_id": "v", "invoice_number": "7"})
    assert request_identities(bill, invoice) == {"inv:v|7"}
    assert request_identities(bill, charge) == frozenset()  # each kind reads its own
    assert request_identities("not json", charge) == frozenset()


def test_the_opt_in_resends_only_after_two_searches_past_its_time(workspace: Path) -> None:
    """A 500 that did not apply leaves no job: by default a person decides; with
    `resend_unlogged_after_s` it is sent again once that long has passed since the POST and
    the log, read twice after that, shows no job for it."""
    config = SandboxConfig(job_delay_s=0.05, rate_limit=1000, write_log_delay_s=0.1)
    rent_roll_only(workspace)
    with (
        running_sandbox(config) as box,
        httpx.Client(
            base_url=box.base_url, headers={"Authorization": "Bearer sandbox-token"}
        ) as api,
    ):
        env = env_for(box, workspace, batch_size=50, resend_unlogged_after_s=3)
        box.config.faults = {"post": {"500": 1.0}}  # answered 500, never applied
        run_cli("--data-dir", str(workspace), "run", env=env)
        box.config.faults = {}
        assert states(workspace) == {"sending": CHARGES}
        for _ in range(15):  # reconcile until the setting has passed and the log says so twice
            if states(workspace) != {"sending": CHARGES}:
                break
            # Not a wait on the sandbox (these jobs never were): tieout's own setting
            # (resend_unlogged_after_s) must pass, with the log read twice since.
            time.sleep(1)  # tieout's resend_unlogged_after_s (above), not the sandbox
            run_cli("--data-dir", str(workspace), "reconcile", env=env)
        assert states(workspace) == {"ready": CHARGES}
        with Ledger(workspace / "ledger.sqlite", readonly=True) as ledger:
            record = ledger.records().iloc[0]
            events = ledger.events(str(record["record_key"]))
        due = pd.Timestamp(record["sent_at"]) + pd.Timedelta(seconds=3)
        misses = [
            pd.Timestamp(at) for at, _, _, d in events if d and d.endswith("no job carries it")
        ]
        readied = [pd.Timestamp(at) for at, _, to, _ in events if to == "ready"][-1]
        assert readied >= due and sum(m >= due for m in misses) >= 1, events
        shown = run_cli("--data-dir", str(workspace), "status", "--json", env=env)
        assert shown.returncode == 0
        run_cli("--data-dir", str(workspace), "run", env=env)
        counts = in_rm(api)
    assert len(counts) == CHARGES and set(counts.values()) == {1}


def test_resolve_shows_the_evidence(
    sandbox: RunningSandbox, workspace: Path, ledger_url: str
) -> None:
    rent_roll_only(workspace)
    env = env_for(sandbox, workspace, ledger_url, batch_size=50)
    sandbox.config.faults = {"post": {"500": 1.0}}
    run_cli("--data-dir", str(workspace), "run", env=env)
    sandbox.config.faults = {}
    run_cli("--data-dir", str(workspace), "reconcile", env=env)
    with Ledger(ledger_at(workspace, ledger_url), readonly=True) as ledger:
        key = str(ledger.records()["record_key"].iloc[0])
    shown = run_cli("--data-dir", str(workspace), "resolve", key, "--absent", env=env)
    assert shown.returncode == 0, shown.stderr
    assert "POST at" in shown.stdout
    assert "write log searched (time_range=hour" in shown.stdout
    assert "no job carries it" in shown.stdout
