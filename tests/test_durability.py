"""The process dies at the worst moments; the ledger still opens, passes its integrity check,
and the next runs finish with nothing lost and nothing doubled."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

import httpx
import pytest

from pipelines.ledger import Ledger
from sandbox.faults import SandboxConfig
from sandbox.server import running_sandbox
from tests.conftest import ROOT, receiving, run_cli, sandbox_wait
from tests.test_load import assert_exactly_once, env_for, settle

WRITE_LOG_DELAY_S = 1.0  # a finished job shows in Propexo's write log this long after

# Run the real CLI, with one function patched to kill the process (os._exit: no cleanup, no
# flush, like SIGKILL) at the chosen moment.
CRASHER = """
import os, sys
from pipelines import ledger
from pipelines.posting import propexo
point, nth = sys.argv[1], int(sys.argv[2])
seen = {"n": 0}

def hit():
    seen["n"] += 1
    return seen["n"] == nth

if point == "after_intent":          # intent committed, POST never sent
    original = propexo.PropexoClient.post_write
    def post_write(self, path, body):
        if hit():
            os._exit(137)
        return original(self, path, body)
    propexo.PropexoClient.post_write = post_write
elif point == "after_post":          # POST applied by Propexo, outcome never recorded
    original = propexo.PropexoClient.post_write
    def post_write(self, path, body):
        job = original(self, path, body)
        if hit():
            os._exit(137)
        return job
    propexo.PropexoClient.post_write = post_write
elif point == "mid_transaction":     # inside a ledger write, before COMMIT
    from pipelines.ledger import database
    original = database.SqliteDatabase.transaction
    import contextlib
    @contextlib.contextmanager
    def transaction(self):
        with original(self):
            yield
            if hit():
                os._exit(137)
    database.SqliteDatabase.transaction = transaction
sys.argv = ["tieout"] + sys.argv[3:]
from pipelines.cli.main import main
main()
"""


@pytest.mark.parametrize(
    ("point", "nth"), [("after_intent", 3), ("after_post", 4), ("mid_transaction", 60)]
)
def test_a_crash_at_any_point_loses_and_doubles_nothing(
    point: str, nth: int, workspace: Path
) -> None:
    with (
        # A short rate-limit window: after a crash the next run waits one out (#18).
        running_sandbox(
            SandboxConfig(
                job_delay_s=0.05,
                rate_limit=1000,
                rate_window_s=2,
                write_log_delay_s=WRITE_LOG_DELAY_S,
            )
        ) as box,
        httpx.Client(
            base_url=box.base_url, headers={"Authorization": "Bearer sandbox-token"}
        ) as api,
        receiving(box, workspace),
    ):
        env = env_for(box, workspace, batch_size=10, concurrency=1)
        inherited = {
            k: v for k, v in os.environ.items() if not k.startswith(("PROPEXO_", "TIEOUT_"))
        }
        crashed = subprocess.run(
            [sys.executable, "-c", CRASHER, point, str(nth), "--data-dir", str(workspace), "run"],
            env={**inherited, **env},
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert crashed.returncode == 137, crashed.stdout + crashed.stderr
        with sqlite3.connect(workspace / "ledger.sqlite") as db:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            sending = db.execute("SELECT count(*) FROM records WHERE state = 'sending'")
            if point == "after_intent":  # the intent of the POST about to go was committed
                assert sending.fetchone()[0] >= 1
        if point != "mid_transaction":  # it died talking to Propexo: its budget is unknown
            after = run_cli("--data-dir", str(workspace), "run", env=env)
            assert "stopped mid-run without handing on the rate-limit budget" in after.stdout
            assert box.app.rate_limited == 0
            held_by_a_person = settles_on_evidence_alone(api, workspace, env)
            if point == "after_post":  # the POST that killed it had reached Propexo
                assert held_by_a_person < 12 + 129
            # What never left the machine is in no job: the team's opt-in sends it again once
            # that long has passed with the log read twice since (else `tieout resolve`).
            env = env_for(box, workspace, batch_size=10, concurrency=1, resend_unlogged_after_s=3)
        settle(workspace, env)
        assert_exactly_once(api, workspace)


def settles_on_evidence_alone(api: httpx.Client, workspace: Path, env: dict[str, str]) -> int:
    """With no person and no opt-in: every record whose POST reached Propexo settles from
    Propexo's own evidence (an invoice read back, the write log's job once it shows it); a
    record whose request never left stays in doubt and is not sent again. Returns how many
    are left for a person."""
    sandbox_wait(api, "logged")  # the jobs of the POSTs that landed are logged
    run_cli("--data-dir", str(workspace), "reconcile", env=env)
    pms = api.get("/_sandbox/records").json()["results"]
    invoices = Counter(r["invoice_number"] for r in pms if r["kind"] == "invoice")
    charges = Counter(r["reference_number"] for r in pms if r["kind"] != "invoice")
    assert set((invoices + charges).values()) <= {1}, "posted twice"
    with Ledger(workspace / "ledger.sqlite", readonly=True) as ledger:
        records = ledger.records()
    landed = records["invoice_number"].isin(list(invoices)) & records["kind"].eq("invoice")
    landed |= records["reference_number"].isin(list(charges)) & records["kind"].ne("invoice")
    assert not records.loc[landed, "state"].eq("sending").any(), records.loc[
        landed & records["state"].eq("sending"), ["record_key", "state"]
    ].to_string()
    assert set(records.loc[~landed, "state"]) <= {"sending"}
    return int((~landed).sum())
