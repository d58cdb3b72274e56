"""The perimeter (#37): plain HTTP refused, files owner-only, secrets never printed even in
part, the config file's mode checked, hard links in the inbox refused."""

from __future__ import annotations

import grp
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from pipelines.cli.doctor import FAIL, config_checks, run_doctor
from pipelines.cli.main import cli
from pipelines.core.config import is_loopback, load_settings
from pipelines.core.errors import ConfigError
from sandbox.server import RunningSandbox
from tests.conftest import ROOT, SAMPLES, run_cli, settings_for, write_bills

TOKEN = "sk-live-abcdefgh12345678WXYZ"
SECRET = "whsec-0123456789-QRST"


def _env(**more: str) -> dict[str, str]:
    return {"TIEOUT_CONFIG": "/nonexistent/tieout.toml", **more}


# --- 6: plain http:// only to this machine ------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://propexo.example.com",
        "http://10.0.0.8:8765",
        "http://[2001:db8::1]:80",
        "http://sandbox.internal",
    ],
)
def test_plain_http_to_another_machine_is_refused_at_load(url: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(env={"PROPEXO_BASE_URL": url}, config_path=None)
    message = str(raised.value)
    assert "plain http://" in message and "allow_insecure_http = true" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8765",
        "http://127.8.9.10",
        "http://localhost:1",
        "http://[::1]:8765",
        "https://api.propexo.com",
    ],
)
def test_loopback_and_https_are_accepted(url: str) -> None:
    assert load_settings(env={"PROPEXO_BASE_URL": url}).base_url == url
    assert is_loopback(url) == url.startswith("http://")


def test_the_refusal_is_one_line_and_exit_2_and_the_setting_allows_it(tmp_path: Path) -> None:
    env = _env(PROPEXO_BASE_URL="http://propexo.example.com")
    result = run_cli("config", "show", env=env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert len([line for line in result.stderr.splitlines() if line.strip()]) == 1
    assert "allow_insecure_http" in result.stderr
    # Allowed in the config file, or by the environment.
    config = tmp_path / "tieout.toml"
    config.write_text('base_url = "http://propexo.example.com"\nallow_insecure_http = true\n')
    allowed = load_settings(env={}, config_path=config)
    assert allowed.allow_insecure_http and allowed.base_url == "http://propexo.example.com"
    by_env = load_settings(
        env={"PROPEXO_BASE_URL": "http://10.1.1.1", "TIEOUT_ALLOW_INSECURE_HTTP": "true"}
    )
    assert by_env.allow_insecure_http
    with pytest.raises(ConfigError, match="allow_insecure_http: expected true or false"):
        load_settings(env={"TIEOUT_ALLOW_INSECURE_HTTP": "perhaps"})


def test_doctor_fails_plain_http_to_another_machine_even_when_allowed(tmp_path: Path) -> None:
    settings = replace(
        load_settings(env={}),
        base_url="http://propexo.example.com",
        allow_insecure_http=True,
        data_dir=tmp_path,
    )
    checks = {c.name: c for c in config_checks(settings, tmp_path / "none.toml", {})}
    assert checks["base_url"].status == FAIL
    assert "clear text" in checks["base_url"].detail and "https://" in checks["base_url"].detail
    local = replace(settings, base_url="http://127.0.0.1:8765")
    assert "base_url" not in {c.name for c in config_checks(local, tmp_path / "none.toml", {})}


# --- 8: secrets as set / not set; the config file's mode ---------------------------------


def test_config_show_and_doctor_print_no_part_of_a_secret(
    sandbox: RunningSandbox, tmp_path: Path
) -> None:
    env = _env(PROPEXO_API_TOKEN=TOKEN, TIEOUT_WEBHOOK_SECRET=SECRET)
    shown = run_cli("--data-dir", str(tmp_path), "config", "show", env=env)
    assert shown.returncode == 0, shown.stderr
    assert "set (from PROPEXO_API_TOKEN)" in shown.stdout
    assert "set (from TIEOUT_WEBHOOK_SECRET)" in shown.stdout
    doctor = run_cli(
        "--data-dir", str(tmp_path), "doctor", env={**env, "PROPEXO_BASE_URL": sandbox.base_url}
    )
    for said in (shown.stdout + shown.stderr, doctor.stdout + doctor.stderr):
        for secret in (TOKEN, SECRET):
            for part in (secret[-4:], secret[:8], secret[8:16]):
                assert part not in said
    assert "token: set (from PROPEXO_API_TOKEN)" in doctor.stdout
    # Nothing set: said so; a secret `webhooks register` wrote: where it is.
    nothing = run_cli("--data-dir", str(tmp_path), "config", "show", env=_env())
    assert "not set" in nothing.stdout
    (tmp_path / ".webhook_secret").write_text(SECRET)
    (tmp_path / ".webhook_secret").chmod(0o600)
    from_file = run_cli("--data-dir", str(tmp_path), "config", "show", env=_env())
    # A long path wraps inside the table's cell: read the cell's text without its borders.
    cells = "".join(c for c in from_file.stdout if not c.isspace() and c not in "│┃")
    assert f"set(from{tmp_path / '.webhook_secret'})" in cells, from_file.stdout
    assert SECRET[-4:] not in from_file.stdout


def test_doctor_fails_a_config_file_holding_the_token_that_others_can_read(
    sandbox: RunningSandbox, tmp_path: Path
) -> None:
    config = tmp_path / "tieout.toml"
    config.write_text(f'[propexo]\ntoken = "{TOKEN}"\n')
    config.chmod(0o644)
    settings = settings_for(sandbox, tmp_path / "data")
    sources = {"token": str(config)}
    checks = {c.name.strip(): c for c in run_doctor(settings, config, sources)}
    mode = checks["config file mode"]
    assert mode.status == FAIL
    assert f"run `chmod 600 {config}`" in mode.detail and "token" in mode.detail
    assert checks["token"].detail == f"set (from {config})"
    config.chmod(0o600)
    assert "config file mode" not in {c.name for c in run_doctor(settings, config, sources)}
    # A file without a secret may be read by anyone.
    config.write_text("batch_size = 50\n")
    config.chmod(0o644)
    assert "config file mode" not in {c.name for c in run_doctor(settings, config, {})}


# --- 7: everything tieout writes is owner-only --------------------------------------------


def _readable_by_others(root: Path) -> list[str]:
    return sorted(
        f"{oct(p.lstat().st_mode & 0o777)} {p.relative_to(root)}"
        for p in [root, *root.rglob("*")]
        if not p.is_symlink() and p.lstat().st_mode & 0o077
    )


def test_a_whole_demo_leaves_nothing_others_can_read(tmp_path: Path) -> None:
    """#37: reports, summary.json, logs and archived rolls were 0644 and backups/ 0755 under
    the usual umask 022 (the demo: run, webhooks, sync, reconcile, report, backup)."""
    workdir = tmp_path / "demo"
    result = subprocess.run(  # a process of its own, to start from the usual umask
        [sys.executable, "-m", "pipelines", "demo", "--workdir", str(workdir)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if not k.startswith(("PROPEXO_", "TIEOUT_"))},
        umask=0o022,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    written = {p.relative_to(workdir).parts[0] for p in workdir.rglob("*")}
    assert {"reports", "archive", "logs", "backups", "ledger.sqlite"} <= written
    assert _readable_by_others(workdir) == []


def test_a_shared_reports_group_may_read_the_reports_and_nothing_else(
    sandbox: RunningSandbox, tmp_path: Path
) -> None:
    group = grp.getgrgid(os.getegid()).gr_name
    data = tmp_path / "data"
    (data / "inbox").mkdir(parents=True)
    (data / "inbox" / "bills.csv").write_bytes((SAMPLES / "vendor_bills.csv").read_bytes())
    env = {
        "PROPEXO_BASE_URL": sandbox.base_url,
        "PROPEXO_API_TOKEN": sandbox.config.token,
        "TIEOUT_SHARED_REPORTS_GROUP": group,
    }
    result = run_cli("--data-dir", str(data), "run", env=env)
    assert result.returncode in (0, 1), result.stdout + result.stderr
    reports = data / "reports"
    shared = [reports, *reports.rglob("*")]
    assert len(shared) >= 6
    for path in shared:
        mode = path.stat().st_mode & 0o777
        assert mode == (0o750 if path.is_dir() else 0o640), (path, oct(mode))
        assert path.stat().st_gid == os.getegid()
    assert data.stat().st_mode & 0o777 == 0o710  # passable, not listable
    others = [p for p in data.rglob("*") if reports not in (p, *p.parents)]
    others = [p for p in others if p.parent != data / "inbox" and p != data / "inbox"]
    assert [p for p in others if p.stat().st_mode & 0o077] == []


def test_a_shared_reports_group_that_is_not_ours_is_refused_at_load() -> None:
    with pytest.raises(ConfigError, match="no group named"):
        load_settings(env={"TIEOUT_SHARED_REPORTS_GROUP": "no-such-group-for-tieout"})
    if os.geteuid() != 0:
        mine = {os.getegid(), *os.getgroups()}
        foreign = next((g.gr_name for g in grp.getgrall() if g.gr_gid not in mine), None)
        assert foreign is not None
        with pytest.raises(ConfigError, match="not a member of group"):
            load_settings(env={"TIEOUT_SHARED_REPORTS_GROUP": foreign})


def test_the_command_line_puts_the_callers_umask_back() -> None:
    before = os.umask(0o022)
    try:
        CliRunner().invoke(cli, ["config", "show"], env=_env())
        assert os.umask(0o022) == 0o022
    finally:
        os.umask(before)


# --- 10: hard links in the inbox ----------------------------------------------------------


def test_a_hard_link_in_the_inbox_is_refused_left_and_never_read(
    sandbox: RunningSandbox, api: httpx.Client, tmp_path: Path
) -> None:
    """#37: a hard link in the inbox to a file outside it was read and posted."""
    (tmp_path / "elsewhere").mkdir()
    secret = write_bills(
        tmp_path / "elsewhere" / "secret.csv",
        ["ACME Plumbing LLC,TOPSECRET-7731,11/03/2026,12/03/2026,Maple Court,5100,x,50.00"],
    )
    data = tmp_path / "data"
    (data / "inbox").mkdir(parents=True)
    link = data / "inbox" / "bills.csv"
    os.link(secret, link)
    env = {"PROPEXO_BASE_URL": sandbox.base_url, "PROPEXO_API_TOKEN": sandbox.config.token}
    result = run_cli("--data-dir", str(data), "run", env=env)
    said = result.stdout + result.stderr
    assert result.returncode in (0, 1), said
    assert "bills.csv: a hard link (the same file has another name" in said
    assert "refused and left where it is" in said
    assert "TOPSECRET" not in said
    for written in data.rglob("*"):
        if written.is_file() and written != link:
            assert b"TOPSECRET" not in written.read_bytes(), written
    assert link.exists() and link.stat().st_nlink == 2
    posted = api.get("/_sandbox/records", params={"kind": "invoice"})
    assert posted.status_code == 200 and "TOPSECRET" not in posted.text
    # Said once per run; a plain file beside it is read as usual.
    assert said.count("a hard link") == 1


# --- 11: messages that say what is true ---------------------------------------------------


def test_reconcile_exits_1_with_records_in_doubt_past_their_grace_and_names_what_applies(
    sandbox: RunningSandbox, tmp_path: Path
) -> None:
    """#37: `reconcile` exited 0 with records in doubt past the grace, and advised starting a
    webhook receiver that was running."""
    from sandbox.faults import parse_faults
    from tests.conftest import past_in_doubt_grace, receiving
    from tests.test_load import env_for

    data = tmp_path / "data"
    (data / "inbox").mkdir(parents=True)
    env = env_for(sandbox, data)  # in_doubt_grace_s = 1
    write_bills(
        data / "inbox" / "a.csv", ["ACME Plumbing LLC,D-1,11/03/2026,,Maple Court,5100,x,10.00"]
    )
    sandbox.config.faults = parse_faults("post:reset=1")  # not applied; no answer either
    run_cli("--data-dir", str(data), "run", env=env)
    sandbox.config.faults = {}
    past_in_doubt_grace(data, env)
    alone = run_cli("--data-dir", str(data), "reconcile", env=env)
    said = alone.stdout + alone.stderr
    assert alone.returncode == 1, said
    step = alone.stdout.strip().splitlines()[-1]
    assert step.startswith("next: 1 records in doubt past their grace"), said
    assert "`tieout resolve KEY --present|--absent`" in step
    assert "start `tieout webhooks serve`" in step  # nothing receives webhooks here
    with receiving(sandbox, data):
        synced = run_cli("--data-dir", str(data), "reconcile", "--sync", "--wait", "20", env=env)
        assert "the sync is complete (SYNC_COMPLETE received)" in synced.stdout, synced.stdout
        assert synced.returncode == 1
        step = synced.stdout.strip().splitlines()[-1]
        assert "webhooks serve" not in step, step  # it delivers: never advised to start it
        assert "after Propexo's next sync" in step and "tieout resolve KEY" in step
        # The next sync outlasts the wait, even on a loaded machine (with 5 s, a reconcile
        # stalled that long between asking and waiting saw it done, truly, under coverage).
        sandbox.config.sync_duration_s = 60
        waited = run_cli("--data-dir", str(data), "reconcile", "--sync", "--wait", "1", env=env)
        assert "no SYNC_COMPLETE within 1s: webhooks arrive here" in waited.stdout, waited.stdout
        assert "is `tieout webhooks serve` running" not in waited.stdout


def test_a_failure_write_status_is_propexos_word_until_its_data_or_log_decides(
    refs: Any, tmp_path: Path
) -> None:
    """#37: FAILURE write-statuses that later landed were "writes Propexo refused" with a
    `settle` command."""
    from sandbox.faults import SandboxConfig
    from sandbox.server import running_sandbox
    from tests.test_intake import _line, _sheet, _tenants
    from tests.test_load import env_for

    data = tmp_path / "data"
    (data / "inbox").mkdir(parents=True)
    _sheet(data / "inbox" / "charges.csv", [_line(t, "Rent", "10.00") for t in _tenants(refs, 2)])
    config = SandboxConfig(job_delay_s=0.05, rate_limit=1000, failed_but_applied=1.0)
    with running_sandbox(config) as box:
        env = env_for(box, data)
        run = run_cli("--data-dir", str(data), "run", env=env)
        assert run.returncode == 1, run.stdout + run.stderr
        (summary,) = (data / "reports").glob("*/summary.json")
        reasons = json.dumps(json.loads(summary.read_text()))
        assert "Propexo says failed; its write log will tell" in reasons
        assert "writes Propexo refused" not in reasons
        status = run_cli("--data-dir", str(data), "status", env=env)
        assert "2 failed: Propexo says failed; its write log will tell" in status.stdout


def test_a_rate_limit_that_never_lets_up_is_said_with_its_budget_and_when_to_retry() -> None:
    """#37: a 429 storm ended "gave up after 6 attempts", not saying rate limit."""
    from pipelines.core.config import Secret
    from pipelines.core.errors import TransientApiError
    from pipelines.posting.propexo import PropexoClient, RateLimiter
    from tests.test_propexo import FakeClock

    clock = FakeClock()
    limiter = RateLimiter(window_s=60, clock=clock, sleep=clock.sleep)
    storm = httpx.MockTransport(
        lambda request: httpx.Response(
            429, headers={"x-ratelimit-limit": "150", "x-ratelimit-remaining": "0"}, json={}
        )
    )
    with (
        PropexoClient("https://propexo.test", Secret("t"), transport=storm, limiter=limiter) as c,
        pytest.raises(TransientApiError) as raised,
    ):
        c.get("/v1/vendors/")
    message = str(raised.value)
    assert "Propexo's rate limit" in message and "429" in message
    assert "the budget is 150 requests per 60 s" in message
    assert "nothing was applied; try again in 60 s" in message
    assert clock.now >= 5 * 60  # it waited out a window between attempts, as before


def test_status_shows_exit_codes_as_whole_numbers_and_a_run_without_one_as_not_finished(
    sandbox: RunningSandbox, tmp_path: Path
) -> None:
    """#37: `status` showed `exit 1.0` and `exit None`."""
    from pipelines.ledger import Ledger

    data = tmp_path / "data"
    (data / "inbox").mkdir(parents=True)
    write_bills(data / "inbox" / "a.csv", ["ACME Plumbing LLC,E-1,11/03/2026,,Nowhere,5100,x,1"])
    env = {"PROPEXO_BASE_URL": sandbox.base_url, "PROPEXO_API_TOKEN": sandbox.config.token}
    assert run_cli("--data-dir", str(data), "run", env=env).returncode == 1
    finished = run_cli("--data-dir", str(data), "status", env=env)
    assert "(exit 1)" in finished.stdout, finished.stdout
    as_json = json.loads(run_cli("--data-dir", str(data), "status", "--json", env=env).stdout)
    assert as_json["last_run"]["exit_code"] == 1
    (summary,) = (data / "reports").glob("*/summary.json")
    assert json.loads(summary.read_text())["exit_code"] == 1
    with Ledger(f"sqlite:///{data / 'ledger.sqlite'}") as ledger:
        ledger.start_run("r-died", dry_run=False, pid=2**22 + 1)  # no such process
    died = run_cli("--data-dir", str(data), "status", env=env)
    assert "last run: r-died (did not finish" in died.stdout, died.stdout
    assert "exit None" not in died.stdout and "exit nan" not in died.stdout
    assert (
        json.loads(run_cli("--data-dir", str(data), "status", "--json", env=env).stdout)[
            "last_run"
        ]["exit_code"]
        is None
    )
    with Ledger(f"sqlite:///{data / 'ledger.sqlite'}") as ledger:
        ledger.start_run("r-live", dry_run=False, pid=os.getpid())  # a process that runs
    live = run_cli("--data-dir", str(data), "status", env=env)
    assert f"last run: r-live (running, process {os.getpid()})" in live.stdout, live.stdout


def _result(**counts: int) -> Any:
    import pandas as pd

    from pipelines.core.models import ReconcileResult

    fields = dict.fromkeys(
        ("matched", "awaiting_sync", "missing", "mismatched", "duplicated", "unexpected"), 0
    )
    return ReconcileResult(**{**fields, **counts}, matched_total_cents=0, details=pd.DataFrame())


@pytest.mark.parametrize(
    ("result", "in_doubt", "receiver", "past_grace", "said", "not_said"),
    [
        (None, 2, "none", 0, "still within their grace", "webhooks serve"),
        (None, 2, "delivering", 2, "2 records in doubt past their grace", "webhooks serve"),
        (_result(matched=1), 1, "none", 0, "start `tieout webhooks serve`", "check that"),
        (
            _result(matched=1),
            1,
            "registered",
            0,
            "check that `tieout webhooks serve` runs",
            "start",
        ),
        (_result(matched=1), 1, "delivering", 0, "after Propexo's next sync", "webhooks serve"),
        (_result(awaiting_sync=1), 0, "none", 0, "start `tieout webhooks serve`", "resolve"),
        (_result(awaiting_sync=1), 0, "delivering", 0, "after Propexo's next sync", "serve"),
        (_result(matched=1, unverifiable=1), 0, "none", 0, "outside every sync window", "serve"),
        (_result(matched=1), 0, "none", 0, "nothing left to do", "serve"),
    ],
)
def test_the_next_step_after_reconcile_is_the_one_that_applies(
    tmp_path: Path,
    result: Any,
    in_doubt: int,
    receiver: str,
    past_grace: int,
    said: str,
    not_said: str,
) -> None:
    from pipelines.runs.reconcile import next_step

    settings = replace(load_settings(env={}), data_dir=tmp_path)
    step = next_step(settings, result, in_doubt, 0, receiver=receiver, past_grace=past_grace)
    assert step.startswith(("next: ", "nothing left")) and said in step, step
    assert not_said not in step, step


def test_the_receiver_is_known_by_its_deliveries_then_by_its_secret(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from pipelines.ledger import Ledger
    from pipelines.runs.reconcile import receiver_state

    settings = replace(load_settings(env={}), data_dir=tmp_path)
    with Ledger(settings.ledger) as ledger:
        assert receiver_state(settings, ledger) == "none"
        (tmp_path / ".webhook_secret").write_text(SECRET)
        assert receiver_state(settings, ledger) == "registered"
        ledger.record_webhook("SYNC_COMPLETE", "{}")
        assert receiver_state(settings, ledger) == "delivering"
        later = datetime.now(tz=UTC) + timedelta(days=8)
        assert receiver_state(settings, ledger, now=later) == "registered"
