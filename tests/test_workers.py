"""#18: several workers on two hosts share one inbox and one PostgreSQL ledger.

Four `tieout run` processes (two per "host": a data folder each) take files from one shared
inbox, against one sandbox with faults on and a tight rate limit. The worker whose turn it is
with Propexo is killed with SIGKILL while it posts. Afterwards every source line is in Rent
Manager exactly once, every file was taken in once, and Propexo never had to say 429.

`make test` runs it with 8 files; `make soak` (TIEOUT_SOAK=1) with 26, under load (a busy loop
per core), where unique temporaries for shared files (the run index) matter (#30).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from pipelines.core.errors import LedgerError
from pipelines.ledger import Ledger
from sandbox.faults import SandboxConfig, parse_faults
from sandbox.server import running_sandbox
from tests.conftest import ROOT, SAMPLES, past_in_doubt_grace, receiving, run_cli
from tests.test_load import env_for

SOAK = bool(os.environ.get("TIEOUT_SOAK"))
BILL_FILES = 24 if SOAK else 6
# #30: under load (as under coverage) two workers rewrote the run index through one fixed
# temporary name. `make soak` runs the workers beside a busy loop per core.
LOAD_PROCESSES = (os.cpu_count() or 2) if SOAK else 0
SAMPLE_INVOICES, SAMPLE_CHARGES = 12, 129  # the sample bill export's and rent roll's records
WORKERS = 4
INTEGRATION = "int_rm_demo"

# Which worker holds the turn with the integration: the advisory lock's holder (a bigint key is
# split into classid and objid), named by the session name every tieout connection carries.
TURN_HOLDER = """
WITH k AS (SELECT hashtextextended(%s::text || '@' || current_schema(), 0) AS key)
SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid, k
WHERE l.locktype = 'advisory' AND l.granted
  AND l.classid::bigint = ((k.key >> 32) & 4294967295) AND l.objid::bigint = (k.key & 4294967295)
"""


@contextmanager
def under_load(processes: int) -> Iterator[None]:
    """``processes`` busy loops for the duration of the block (none: no load), a little
    nicer than the workers: they slow them down, as coverage did, without starving them."""
    burners = [
        subprocess.Popen(["nice", "-n", "5", sys.executable, "-c", "while True: pass"])
        for _ in range(processes)
    ]
    try:
        yield
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()


def _drop_files(inbox: Path) -> int:
    """The two samples, and BILL_FILES more AP bill exports shaped as the sample is (title
    block, `$1,234.56`, two date formats, a Total row that ties out), each with invoice
    numbers of its own; returns how many files."""
    inbox.mkdir(parents=True)
    for sample in ("vendor_bills.csv", "rent_roll.xlsx"):
        shutil.copy(SAMPLES / sample, inbox / sample)
    export = (SAMPLES / "vendor_bills.csv").read_text()
    for n in range(BILL_FILES):
        renumbered = re.sub(r"(?<=,)((?:W|B|INV)-\d{7})(?=,)", rf"MW{n:02d}-\1", export)
        (inbox / f"bills_{n:02d}.csv").write_text(renumbered)
    return 2 + BILL_FILES


def _turn_holder_pid(url: str) -> int | None:
    """The OS pid of the worker whose turn it is with the integration (None: nobody's)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as db:
        row = db.execute(TURN_HOLDER.encode(), ["turn propexo " + INTEGRATION]).fetchone()
    return int(row[0].rsplit(":", 1)[1]) if row else None


def _states(url: str) -> dict[str, int]:
    try:
        with Ledger(url, readonly=True) as ledger:
            return {k: v["count"] for k, v in ledger.by_state().items()}
    except LedgerError:
        return {}


def test_four_workers_on_two_hosts_post_every_line_once_even_when_one_is_killed(
    tmp_path: Path, postgresql_url: str
) -> None:
    url = postgresql_url
    shared = tmp_path / "shared-inbox"
    files = _drop_files(shared)
    hosts = [tmp_path / "host-a", tmp_path / "host-b"]
    config = SandboxConfig(
        job_delay_s=0.05,
        rate_limit=30,
        rate_window_s=2,
        sync_duration_s=0.2,
        faults=parse_faults("post:500=0.05,post:lost=0.05,*:reset=0.02"),
        fault_seed=18,
    )
    started = time.monotonic()
    with (
        under_load(LOAD_PROCESSES),
        running_sandbox(config) as box,
        httpx.Client(
            base_url=box.base_url, headers={"Authorization": "Bearer sandbox-token"}
        ) as api,
        receiving(box, hosts[0], url),
    ):
        # A request the killed worker never got out leaves no job in Propexo's write log: the
        # team's opt-in sends it again, past the sandbox's write-log delay (#30).
        env = env_for(box, hosts[0], url, batch_size=10, concurrency=2, resend_unlogged_after_s=8)
        inherited = {
            k: v for k, v in os.environ.items() if not k.startswith(("PROPEXO_", "TIEOUT_"))
        }
        logs = [tmp_path / f"worker-{n}.log" for n in range(WORKERS)]
        handles = [log.open("w") for log in logs]
        workers = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "pipelines",
                    "--data-dir",
                    str(hosts[n % 2]),
                    "run",
                    "--inbox",
                    str(shared),
                ],
                env={**inherited, **env},
                cwd=ROOT,
                stdout=handles[n],
                stderr=subprocess.STDOUT,
            )
            for n in range(WORKERS)
        ]
        killed = None
        try:
            deadline = time.monotonic() + (600 if SOAK else 120)  # slower under load
            while killed is None and time.monotonic() < deadline:
                time.sleep(0.05)  # watching the workers for the moment to kill one (scenario)
                landed = len(api.get("/_sandbox/records").json()["results"])
                if landed < 8 or not _states(url).get("ready"):
                    continue
                holder = _turn_holder_pid(url)
                by_pid = {w.pid: w for w in workers}
                if holder in by_pid:
                    by_pid[holder].send_signal(signal.SIGKILL)
                    killed = by_pid[holder]
            assert killed is not None, "no worker was seen posting with records still ready"
            for worker in workers:
                worker.wait(timeout=600 if SOAK else 180)
        finally:
            for worker, handle in zip(workers, handles, strict=True):
                worker.kill()
                worker.wait()
                handle.close()
        outputs = [log.read_text() for log in logs]
        assert killed.returncode == -signal.SIGKILL
        for worker, output in zip(workers, outputs, strict=True):
            assert "Traceback" not in output, output
            if worker is not killed:
                assert worker.returncode in (0, 1), output
        workers_done = time.monotonic() - started
        left_open = {k: v for k, v in _states(url).items() if k in ("ready", "sending")}

        # What the dead worker left in doubt is settled as any run settles it: reconcile
        # finds it in Propexo's data or write log, then a run sends what no job carried.
        for _ in range(10):
            past_in_doubt_grace(hosts[1], env)  # so a sync can prove absence
            run_cli("--data-dir", str(hosts[1]), "reconcile", "--sync", "--wait", "20", env=env)
            run_cli("--data-dir", str(hosts[1]), "run", "--inbox", str(shared), env=env)
            if not {"ready", "sending", "submitted", "partial"} & set(_states(url)):
                break
        else:
            raise AssertionError(f"still open: {_states(url)}")

        with Ledger(url, readonly=True) as ledger:
            records = ledger.records()
            taken = ledger.db.read_frame("SELECT sha256, name, moved_to FROM files")
            drops = ledger.db.read_frame("SELECT name, reason FROM drops")
            claims = ledger.db.read_frame("SELECT claimed_by FROM claims")
        pms = api.get("/_sandbox/records").json()["results"]
        rate_limited, faults = box.app.rate_limited, sum(box.app.fault_counts.values())

    expected = SAMPLE_CHARGES + (1 + BILL_FILES) * SAMPLE_INVOICES
    invoices = Counter(r["invoice_number"] for r in pms if r["kind"] == "invoice")
    charges = Counter(r["reference_number"] for r in pms if r["kind"] != "invoice")
    assert len(records) == expected
    assert set(invoices) == set(records.loc[records["kind"] == "invoice", "invoice_number"])
    assert set(charges) == set(records.loc[records["kind"] != "invoice", "reference_number"])
    duplicates = sum(n - 1 for n in (invoices + charges).values())
    assert duplicates == 0
    assert len(taken) == files and taken["sha256"].is_unique and drops.empty
    # every file was taken in (renamed into the inbox's .processing/), and moved to one archive
    assert not [p for p in shared.rglob("*") if p.is_file()]
    archived = [p for host in hosts for p in (host / "archive").rglob("*") if p.is_file()]
    assert sorted(p.name for p in archived if not p.name.endswith(".errors.csv")) == sorted(
        f"{sha[:8]}-{name}" for sha, name in zip(taken["sha256"], taken["name"], strict=True)
    )
    hosts_that_claimed = {str(by).split(":")[0] for by in claims["claimed_by"]}
    assert len(hosts_that_claimed) == 1  # one machine here, but every worker claimed its own
    assert claims["claimed_by"].nunique() >= 2
    assert rate_limited == 0 and faults > 0
    print(
        json.dumps(
            {
                "records": len(records),
                "duplicates": duplicates,
                "http_429": rate_limited,
                "faults": faults,
                "files": len(taken),
                "workers_claiming": int(claims["claimed_by"].nunique()),
                "left_by_workers": left_open,
                "workers_s": round(workers_done, 1),
                "total_s": round(time.monotonic() - started, 1),
            }
        )
    )
