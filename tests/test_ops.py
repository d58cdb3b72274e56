"""Operations: the drop folder, the lock, watch mode, logs, and secrets kept out of everything."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from sandbox.faults import SandboxConfig
from sandbox.server import RunningSandbox, running_sandbox
from tests.conftest import ROOT, SAMPLES, TEST_DATA, run_cli


def test_a_stale_lock_from_a_dead_process_is_taken_over(sandbox, workspace: Path) -> None:  # type: ignore[no-untyped-def]
    (workspace / "tieout.lock").write_text(
        json.dumps({"pid": 999999, "command": "run", "started_at": "2026-01-01T00:00:00+00:00"})
    )
    env = {"PROPEXO_BASE_URL": sandbox.base_url}
    result = run_cli("--data-dir", str(workspace), "run", env=env)
    assert result.returncode == 0, result.stderr


def start_watch(data: Path, box: RunningSandbox) -> subprocess.Popen[str]:
    """`tieout watch` against ``box`` in a child process, looking every 0.3 s."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("PROPEXO_", "TIEOUT_"))}
    return subprocess.Popen(
        [sys.executable, "-m", "pipelines", "--data-dir", str(data), "watch", "--interval", "0.3"],
        env={
            **inherited,
            "PROPEXO_BASE_URL": box.base_url,
            "TIEOUT_CONFIG": str(TEST_DATA / "tieout-test.toml"),
        },
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # Ctrl-C as in a terminal: a suite started in the background by a shell (`make test &`)
        # runs with SIGINT ignored, which every child inherits, and the watch never stops.
        preexec_fn=_interruptible,  # noqa: PLW1509 - signal disposition only, before exec
    )


def _interruptible() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_watch_picks_up_drops_and_survives_a_bad_file(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "inbox").mkdir(parents=True)
    with running_sandbox(SandboxConfig(job_delay_s=0.05, rate_limit=1000)) as box:
        watcher = start_watch(data, box)
        failure: AssertionError | None = None
        try:
            time.sleep(1)  # the scenario: a file dropped while the watch runs (no sandbox wait)
            (data / "inbox" / "garbage.xlsx").write_bytes(b"PK\x03\x04 not a workbook")
            deadline = (
                time.monotonic() + 180
            )  # a hang guard: a run under a loaded suite takes a while
            while not list((data / "rejected").glob("*-garbage.xlsx")):
                assert time.monotonic() < deadline, "the bad file was never handled"
                time.sleep(0.2)  # the watch's work shows in the data folder, not the sandbox
            assert watcher.poll() is None, "the watch stopped after a failing file"
            shutil.copy2(SAMPLES / "vendor_bills.csv", data / "inbox" / "vendor_bills.csv")
            while not list((data / "archive").rglob("*-vendor_bills.csv")):
                assert time.monotonic() < deadline, "the dropped file was never processed"
                time.sleep(0.2)  # the watch's work shows in the data folder, not the sandbox
            assert watcher.poll() is None, "the watch stopped after a run"
            with httpx.Client(
                base_url=box.base_url, headers={"Authorization": "Bearer sandbox-token"}
            ) as api:
                # The file is archived once its records are staged; posting may still be going.
                box.wait_for("written", count=12, timeout=max(deadline - time.monotonic(), 1))
                records = api.get("/_sandbox/records").json()["results"]
                assert len(records) == 12
        except AssertionError as exc:
            failure = exc
        finally:
            watcher.send_signal(signal.SIGINT)
            out, err = watcher.communicate(timeout=120)
        if failure is not None:
            raise AssertionError(f"{failure}\n--- watch stdout:\n{out}\n--- stderr:\n{err}")
        assert watcher.returncode == 0, err
        assert "stopped" in out
        assert "Traceback" not in err


def test_no_token_in_any_log_report_or_ledger(tmp_path: Path) -> None:
    token = "tok-3f9c-VERY-SECRET-7781"
    data = tmp_path / "data"
    (data / "inbox").mkdir(parents=True)
    for sample in ("vendor_bills.csv", "rent_roll.xlsx"):
        shutil.copy2(SAMPLES / sample, data / "inbox" / sample)
    with running_sandbox(SandboxConfig(token=token, job_delay_s=0.05, rate_limit=1000)) as box:
        env = {"PROPEXO_BASE_URL": box.base_url, "PROPEXO_API_TOKEN": token}
        run = run_cli("--data-dir", str(data), "-v", "run", env=env)
        assert run.returncode == 0, run.stderr
        rec = run_cli("--data-dir", str(data), "-v", "reconcile", "--sync", env=env)
        shown = run_cli("--data-dir", str(data), "config", "show", env=env)
        # A fresh data folder, so the names must be resolved online (no cached reference data).
        wrong = run_cli(
            "--data-dir",
            str(data / "elsewhere"),
            "check",
            str(SAMPLES / "vendor_bills.csv"),
            env={**env, "PROPEXO_API_TOKEN": token + "-wrong"},
        )
    assert wrong.returncode == 2 and "401" in wrong.stderr
    logs = list((data / "logs").glob("*.jsonl"))
    assert logs, "every run writes a log"
    events = [json.loads(line) for line in logs[0].read_text().splitlines()]
    assert {"run started", "file processed", "state change", "run finished"} <= {
        e["event"] for e in events
    }
    for output in (run, rec, shown, wrong):
        assert token not in output.stdout + output.stderr
    for path in data.rglob("*"):
        if path.is_file():
            assert token.encode() not in path.read_bytes(), path


WRITER = """
import sys, time
path, header, first, second = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
line = "ACME Plumbing LLC,W-{},11/03/2026,,Maple Court,5100,x,10.00\\n"
with open(path, "w") as out:
    out.write(header + "\\n")
    out.writelines(line.format(i) for i in range(first))
    out.flush()
    print("paused", flush=True)
    time.sleep(float(sys.argv[5]))  # the scenario: a writer pausing mid-file
    out.writelines(line.format(i) for i in range(first, first + second))
"""


def _doctor(workspace: Path, env: dict[str, str]) -> tuple[int, dict[str, str]]:
    """Run `tieout doctor`; its exit code and each check's status by name."""
    result = run_cli("--data-dir", str(workspace), "doctor", env=env)
    lines = {}
    for line in result.stdout.splitlines():
        status, _, rest = line.partition("  ")
        if status in {"PASS", "WARN", "FAIL"}:
            lines[rest.split(":", 1)[0].strip()] = status
    return result.returncode, lines


def test_doctor_passes_a_good_setup_and_names_what_is_wrong(
    sandbox: RunningSandbox, workspace: Path
) -> None:
    """#16 item 4: setup mistakes surfaced late, or without a next step."""
    good = {"PROPEXO_BASE_URL": sandbox.base_url, "PROPEXO_API_TOKEN": sandbox.config.token}
    code, checks = _doctor(workspace, good)
    assert code == 0, checks
    assert {k for k, v in checks.items() if v == "FAIL"} == set()
    assert checks["propexo"] == checks["token accepted"] == checks["integration"] == "PASS"
    assert checks["ledger"] == checks["inbox"] == checks["clock"] == "PASS"

    code, checks = _doctor(workspace, {**good, "PROPEXO_API_TOKEN": "wrong-token-123456"})
    assert code == 1 and checks["token accepted"] == "FAIL", checks

    code, checks = _doctor(workspace, {**good, "PROPEXO_INTEGRATION_ID": "int_nobody"})
    assert code == 1 and checks["integration"] == "FAIL", checks
    assert checks["token accepted"] == "PASS"


def test_an_unreachable_propexo_says_the_next_step_and_check_still_reads_the_file(
    workspace: Path,
) -> None:
    """#16 item 4: `check` waited 16 s, said "cannot connect" without a hint, and showed
    nothing of the file."""
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {"PROPEXO_BASE_URL": f"http://127.0.0.1:{port}"}
    started = time.monotonic()
    result = run_cli(
        "--data-dir", str(workspace), "check", str(SAMPLES / "vendor_bills.csv"), env=env
    )
    assert time.monotonic() - started < 12
    assert result.returncode == 2
    assert "is the sandbox running? Start it with `tieout sandbox`" in result.stderr
    assert "vendor_bills.csv (tieout_vendor_bills): 30 rows read" in result.stdout  # offline
    code, checks = _doctor(workspace, env)
    assert code == 1 and checks["propexo"] == "FAIL"


def test_a_crash_file_goes_under_the_configured_data_dir(tmp_path: Path) -> None:
    """#16 item 4: a crash file went to ./data/logs even with --data-dir elsewhere."""
    from click.testing import CliRunner

    from pipelines.cli import console
    from pipelines.cli import main as cli

    data = tmp_path / "elsewhere"
    assert CliRunner().invoke(cli.cli, ["--data-dir", str(data), "config", "show"]).exit_code == 0
    path = console.write_crash_report(RuntimeError("boom"))
    assert path.parent == data / "logs" and "RuntimeError: boom" in path.read_text()


def test_a_wrong_token_fails_check_even_with_reference_data_cached(
    sandbox: RunningSandbox, workspace: Path
) -> None:
    """#16 item 4: a wrong token passed `check` while reference data was cached."""
    good = {"PROPEXO_BASE_URL": sandbox.base_url, "PROPEXO_API_TOKEN": sandbox.config.token}
    bills = str(SAMPLES / "vendor_bills.csv")
    assert run_cli("--data-dir", str(workspace), "check", bills, env=good).returncode == 0
    wrong = {**good, "PROPEXO_API_TOKEN": "wrong-token-123456"}
    result = run_cli("--data-dir", str(workspace), "check", bills, env=wrong)
    assert result.returncode == 2
    assert "Propexo refused the token (401)" in result.stderr and "tieout doctor" in result.stderr


def test_posting_progress_is_a_line_every_few_seconds_when_no_terminal_watches(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """#16 item 5: nothing was printed for a minute of posting when output was not a
    terminal (cron)."""
    from pipelines.cli import console

    clock = iter([100.0, 105.0, 111.0, 112.0, 130.0])
    update, stop = console.progress(every_s=10, clock=lambda: next(clock))
    assert update is not None
    for done in (1, 2, 3, 4, 5):
        update(done, 5)
    stop()
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("posting")]
    assert lines == [
        "posting: 3/5 requests, 11/min, about 11s left",
        "posting: 5/5 requests, done",
    ]


def test_refs_show_finds_names_for_alias_files(sandbox: RunningSandbox, workspace: Path) -> None:
    """#16 item 6: writing an alias file meant reading ids; names and a search now help."""
    import csv as csv_module
    import io

    env = {"PROPEXO_BASE_URL": sandbox.base_url, "PROPEXO_API_TOKEN": sandbox.config.token}
    shown = run_cli(
        "--data-dir",
        str(workspace),
        "refs",
        "show",
        "vendors",
        "--search",
        "acme",
        "--csv",
        env=env,
    )
    assert shown.returncode == 0, shown.stderr
    rows = list(csv_module.DictReader(io.StringIO(shown.stdout)))
    assert rows and all("acme" in r["name"].lower() for r in rows)
    assert all(r["location"] for r in rows)  # the location's name beside its id


def test_a_file_still_being_written_is_not_taken(tmp_path: Path) -> None:
    """#20 item 3: a writer that paused mid-file lost the rest of it to the archive."""
    from tests.conftest import BILL_HEADER

    data = tmp_path / "data"
    (data / "inbox").mkdir(parents=True)
    with running_sandbox(SandboxConfig(job_delay_s=0.02, rate_limit=1000)) as box:
        watcher = start_watch(data, box)
        try:
            writer = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    WRITER,
                    str(data / "inbox" / "bills.csv"),
                    BILL_HEADER,
                    "20",
                    "21",
                    "3",
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            assert writer.stdout is not None and writer.stdout.readline().strip() == "paused"
            time.sleep(2)  # several looks of the watch while the writer holds the file open
            assert not (data / "archive").exists(), "taken while still being written"
            writer.communicate(timeout=30)
            deadline = (
                time.monotonic() + 180
            )  # a hang guard: a run under a loaded suite takes a while
            with httpx.Client(
                base_url=box.base_url, headers={"Authorization": "Bearer sandbox-token"}
            ) as api:
                box.wait_for("written", count=41, timeout=max(deadline - time.monotonic(), 1))
                time.sleep(0.5)  # the scenario: no 42nd write comes (nothing posted twice)
                records = api.get("/_sandbox/records").json()["results"]
            assert sorted(r["invoice_number"] for r in records) == sorted(
                f"W-{i}" for i in range(41)
            )
        finally:
            watcher.send_signal(signal.SIGINT)
            _out, err = watcher.communicate(timeout=120)
        assert "Traceback" not in err, err
