"""A lost or restored ledger never posts twice: Propexo is the second witness (#20 item 1)."""

from __future__ import annotations

import shutil
import sqlite3
from collections import Counter
from pathlib import Path

import httpx

from sandbox.server import RunningSandbox
from tests.conftest import SAMPLES, run_cli, server_ledger
from tests.postgres import copy_database
from tests.test_load import env_for


def pms_counts(api: httpx.Client) -> Counter[str]:
    records = api.get("/_sandbox/records").json()["results"]
    return Counter(r.get("invoice_number") or r["reference_sent"] for r in records)


def drop(workspace: Path, *names: str) -> None:
    for name in names:
        shutil.copy2(SAMPLES / name, workspace / "inbox" / name)


def lose_ledger(workspace: Path, ledger_url: str | None = None) -> None:
    """The ledger gone: its SQLite file, or its server database made empty."""
    if server_ledger(ledger_url):
        copy_database("", str(ledger_url))
        return
    for suffix in ("", "-wal", "-shm"):
        (workspace / f"ledger.sqlite{suffix}").unlink(missing_ok=True)


def test_a_lost_ledger_stops_the_run_and_a_rebuild_adopts_what_propexo_holds(
    sandbox: RunningSandbox, api: httpx.Client, workspace: Path, ledger_url: str
) -> None:
    env = env_for(sandbox, workspace, ledger_url)
    assert run_cli("--data-dir", str(workspace), "run", env=env).returncode == 0
    if not server_ledger(ledger_url):  # a server's backups are the server's own
        assert list((workspace / "backups").glob("ledger-*.sqlite")), "no backup after the run"
    api.post("/_sandbox/sync")  # the charges reach Propexo's cache
    before = pms_counts(api)
    assert sum(before.values()) == 141

    lose_ledger(workspace, ledger_url)
    drop(workspace, "vendor_bills.csv", "rent_roll.xlsx")
    refused = run_cli("--data-dir", str(workspace), "run", env=env)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "Propexo already holds" in refused.stderr and "ledger rebuild" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in (workspace / "inbox").iterdir()) == [
        "rent_roll.xlsx",
        "vendor_bills.csv",
    ]
    assert pms_counts(api) == before

    rebuilt = run_cli("--data-dir", str(workspace), "ledger", "rebuild", env=env)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "adopted 141 records" in rebuilt.stdout
    # A rebuild into a ledger that holds records merges what Propexo proves: nothing new.
    again = run_cli("--data-dir", str(workspace), "ledger", "rebuild", env=env)
    assert again.returncode == 0, again.stderr
    assert "adopted 0 records" in again.stdout, again.stdout

    rerun = run_cli("--data-dir", str(workspace), "run", env=env)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert pms_counts(api) == before  # nothing posted twice
    assert not list((workspace / "inbox").iterdir())


def test_a_ledger_restored_from_an_old_backup_posts_nothing_twice(
    sandbox: RunningSandbox, api: httpx.Client, workspace: Path, ledger_url: str
) -> None:
    env = env_for(sandbox, workspace, ledger_url)
    server = server_ledger(ledger_url)
    (workspace / "inbox" / "rent_roll.xlsx").unlink()
    assert run_cli("--data-dir", str(workspace), "run", env=env).returncode == 0
    backup = workspace.parent / "old-ledger.sqlite"
    if server:  # the server's own copy of the database
        copy_database(server, server + "_old")
    else:
        with sqlite3.connect(workspace / "ledger.sqlite") as live, sqlite3.connect(backup) as copy:
            live.backup(copy)
    drop(workspace, "rent_roll.xlsx")
    assert run_cli("--data-dir", str(workspace), "run", env=env).returncode == 0
    api.post("/_sandbox/sync")
    before = pms_counts(api)
    assert sum(before.values()) == 141

    # The restore: the ledger from before the rent roll was posted; the rent roll dropped again.
    lose_ledger(workspace, ledger_url)
    if server:
        copy_database(server + "_old", server)
    else:
        shutil.copy2(backup, workspace / "ledger.sqlite")
    drop(workspace, "rent_roll.xlsx")
    rerun = run_cli("--data-dir", str(workspace), "run", env=env)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    # Propexo's write log knows them, and a sync has brought them: either witness will do.
    assert (
        "129 records new to the ledger were already carried" in rerun.stdout
        or "129 records were already in Propexo" in rerun.stdout
    ), rerun.stdout
    assert pms_counts(api) == before
