"""#30: a full disk and a ledger held by another process are said as what they are.

Before: at 450 KB free a raw traceback (the crash-report writer itself failed), and a held
ledger was `internal error (OperationalError: database is locked)`, exit 2.
"""

from __future__ import annotations

import errno
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipelines.cli import console
from pipelines.cli import main as cli
from pipelines.ledger import Ledger
from sandbox.server import RunningSandbox
from tests.conftest import ROOT, SAMPLES
from tests.test_load import env_for

FREE_KB = 450


def test_a_full_disk_is_said_with_what_is_free_and_the_next_step(
    sandbox: RunningSandbox, tmp_path: Path
) -> None:
    """A real full disk: the data folder is a tmpfs of its own (in a private mount namespace,
    so no privileges are needed on the host) holding the samples, with 450 KB left."""
    data = tmp_path / "data"
    data.mkdir()
    env = env_for(sandbox, data)
    inbox = data / "inbox"
    script = (
        f"mount -t tmpfs -o size={FREE_KB + 48}k tmpfs {data} && mkdir {inbox} && "
        f"cp {SAMPLES / 'vendor_bills.csv'} {SAMPLES / 'rent_roll.xlsx'} {inbox}/ && "
        f'exec "$0" -m pipelines --data-dir {data} run'
    )
    result = subprocess.run(
        ["unshare", "--map-root-user", "--mount", "sh", "-c", script, sys.executable],
        capture_output=True,
        text=True,
        env={**env, "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        cwd=ROOT,
        timeout=180,
        check=False,
    )
    said = result.stdout + result.stderr
    assert "Traceback" not in said, said
    assert result.returncode == 2, said
    assert f"the disk holding {data} is full (" in result.stderr, said
    assert "KB free)" in result.stderr and "then run the same command again" in result.stderr


def test_a_full_disk_met_anywhere_is_said_even_when_no_crash_report_can_be_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through SQLite's, pandas' or our own wrappers; and the crash-report writer itself no
    longer fails when nothing can be written."""
    monkeypatch.setattr(console, "CRASH_DIR", [tmp_path / "logs"])
    for failure in (
        OSError(errno.ENOSPC, "No space left on device"),
        sqlite3.OperationalError("database or disk is full"),
    ):
        try:
            try:
                raise failure
            except Exception as inner:
                raise RuntimeError("while writing the report") from inner
        except RuntimeError as outer:
            said = console.environment_error(outer)
        assert said is not None and said.exit_code == 2
        assert f"the disk holding {tmp_path} is full (" in str(said)
    monkeypatch.setattr(console, "CRASH_DIR", [Path("/dev/full/logs")])
    monkeypatch.setattr("tempfile.gettempdir", lambda: "/dev/full")
    assert console.write_crash_report(RuntimeError("boom")) is None


def test_a_ledger_held_by_another_process_is_said_with_exit_3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("pipelines.ledger.database.BUSY_TIMEOUT_S", 0.3)
    data = tmp_path / "data"
    with Ledger(data / "ledger.sqlite"):
        pass
    other = sqlite3.connect(data / "ledger.sqlite", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another program writing, and taking its time
    try:
        result = CliRunner().invoke(cli.cli, ["--data-dir", str(data), "run"])
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert result.exit_code == 3, result.output
    assert "another process holds the ledger" in result.stderr
    assert str(data / "ledger.sqlite") in result.stderr
    assert "internal error" not in result.stderr and "Traceback" not in result.output
