"""A dry run and reconcile tell the truth: the dry run finds the conflicts a run would, and
reconcile ends with the next step, never saying records stay in doubt when none is."""

from __future__ import annotations

from pathlib import Path

import httpx

from sandbox.server import RunningSandbox
from tests.conftest import run_cli, write_bills
from tests.test_load import env_for


def test_a_dry_run_finds_the_conflict_the_run_would(
    sandbox: RunningSandbox, api: httpx.Client, tmp_path: Path
) -> None:
    """On main the dry run said "0 rejected" (exit 0) where the real run finds a conflict."""
    data = tmp_path / "data"
    (data / "inbox").mkdir(parents=True)
    env = env_for(sandbox, data)
    write_bills(
        data / "inbox" / "a.csv", ["ACME Plumbing LLC,C-1,11/03/2026,,Maple Court,5100,x,10.00"]
    )
    assert run_cli("--data-dir", str(data), "run", env=env).returncode == 0
    write_bills(
        data / "inbox" / "b.csv",
        [
            "ACME Plumbing LLC,C-1,11/03/2026,,Maple Court,5100,x,12.00",
            "ACME Plumbing LLC,C-2,11/03/2026,,Maple Court,5100,y,3.00",
        ],
    )
    dry = run_cli("--data-dir", str(data), "run", "--dry-run", env=env)
    assert dry.returncode == 1, dry.stdout + dry.stderr
    assert "b.csv: 1 rows usable, 1 rejected" in dry.stdout
    assert "invoice C-1 was posted in run" in dry.stdout
    assert "would send 1 requests carrying 1 records" in dry.stdout
    assert (data / "inbox" / "b.csv").exists()  # nothing moved, nothing posted
    assert len(api.get("/_sandbox/records").json()["results"]) == 1
    real = run_cli("--data-dir", str(data), "run", env=env)
    assert real.returncode == 1
    assert len(api.get("/_sandbox/records").json()["results"]) == 2


def test_reconcile_ends_with_the_next_step_and_no_false_doubt(
    sandbox: RunningSandbox, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    (data / "inbox").mkdir(parents=True)
    env = env_for(sandbox, data)
    empty = run_cli("--data-dir", str(data), "reconcile", env=env)
    assert empty.returncode == 0, empty.stdout + empty.stderr
    assert empty.stdout.strip().splitlines()[-1] == (
        f"next: drop files into {data / 'inbox'} and run `tieout run`"
    )
    write_bills(
        data / "inbox" / "a.csv", ["ACME Plumbing LLC,N-1,11/03/2026,,Maple Court,5100,x,10.00"]
    )
    assert run_cli("--data-dir", str(data), "run", env=env).returncode == 0
    waited = run_cli("--data-dir", str(data), "reconcile", "--sync", "--wait", "1", env=env)
    assert "no SYNC_COMPLETE within 1s" in waited.stdout, waited.stdout + waited.stderr
    assert "stay in doubt" not in waited.stdout  # no record is in doubt
    last = waited.stdout.strip().splitlines()[-1]
    assert last.startswith(("next: ", "nothing left to do")), waited.stdout
