"""`tieout status` composed in runs/ (#40: the CLI only parses and prints): the last run's
state read from the ledger and its process, and the same facts as the CLI prints them."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from click.testing import CliRunner

from pipelines.cli.main import cli
from pipelines.core.config import Settings, load_settings
from pipelines.ledger import Ledger
from pipelines.runs.status import ledger_status, process_alive


def _settings(data: Path) -> Settings:
    return replace(load_settings(env={}), data_dir=data)


def _dead_pid() -> int:
    """The id of a process that has ended (and been waited for)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_process_is_alive_only_when_it_runs_on_this_machine() -> None:
    assert process_alive(os.getpid())
    assert not process_alive(_dead_pid())
    for nothing in (None, float("nan"), 0, -1, "not a pid"):
        assert not process_alive(nothing)


def test_status_says_which_run_is_running_stopped_or_finished(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    assert ledger_status(settings).last_run is None  # a new data folder
    with Ledger(settings.ledger) as ledger:
        ledger.start_run("20261206T000000Z-dead", dry_run=False, pid=_dead_pid())
    stopped = ledger_status(settings)
    assert stopped.last_run is not None and stopped.last_run["exit_code"] is None
    assert not stopped.last_run_alive
    said = CliRunner().invoke(cli, ["--data-dir", str(tmp_path), "status"])
    assert "(did not finish: it stopped before its end" in said.output, said.output

    with Ledger(settings.ledger) as ledger:
        ledger.start_run("20261206T000001Z-live", dry_run=False, pid=os.getpid())
    running = ledger_status(settings)
    assert running.last_run is not None and running.last_run_alive
    said = CliRunner().invoke(cli, ["--data-dir", str(tmp_path), "status"])
    assert f"20261206T000001Z-live (running, process {os.getpid()})" in said.output

    with Ledger(settings.ledger) as ledger:
        ledger.finish_run("20261206T000001Z-live", 1)
    finished = ledger_status(settings)
    assert finished.last_run is not None and finished.last_run["exit_code"] == 1
    assert not finished.last_run_alive
    assert finished.as_json()["open_items"] == {"count": 0, "amount_cents": 0}
    said = CliRunner().invoke(cli, ["--data-dir", str(tmp_path), "status"])
    assert "20261206T000001Z-live (exit 1)" in said.output
