"""`tieout doctor`: one PASS / WARN / FAIL line per check, each FAIL with its next step."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipelines.cli.doctor import FAIL, PASS, WARN, folder_checks, run_doctor, token_checks
from pipelines.cli.main import cli
from pipelines.core.config import DEFAULT_TOKEN, Secret
from sandbox.server import RunningSandbox
from tests.conftest import settings_for


def _by_name(checks: list) -> dict[str, str]:  # type: ignore[type-arg]
    return {c.name.strip(): c.status for c in checks}


def test_doctor_on_a_good_setup_passes_and_warns_only_of_what_is_missing(
    sandbox: RunningSandbox, tmp_path: Path
) -> None:
    settings = settings_for(sandbox, tmp_path / "data")
    checks = run_doctor(settings, tmp_path / "none.toml", {"token": "environment"})
    status = _by_name(checks)
    assert status["config file"] == PASS
    assert status["propexo"] == status["token accepted"] == status["integration"] == PASS
    assert status["ledger"] == status["inbox"] == status["reports"] == PASS
    # Nothing cached, no webhook secret yet: said, not failed.
    assert status["reference data"] == status["webhooks"] == WARN
    assert [c for c in checks if c.status == FAIL] == []
    # The token is masked in every line.
    assert not any(sandbox.config.token in c.detail for c in checks)


def test_doctor_fails_each_problem_with_its_next_step(
    sandbox: RunningSandbox, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    settings = settings_for(sandbox, data)
    secret = data / ".webhook_secret"
    secret.parent.mkdir(parents=True)
    secret.write_text("a-generated-secret")
    secret.chmod(0o644)
    (data / "inbox").write_text("a file where the inbox should be")
    checks = run_doctor(settings, tmp_path / "none.toml", {})
    failed = {c.name: c.detail for c in checks if c.status == FAIL}
    assert set(failed) == {"inbox", "webhooks"}
    assert f"run `chmod 600 {secret}`" in failed["webhooks"]

    nobody = replace(settings, base_url="http://127.0.0.1:9")  # nothing listens there
    (propexo,) = [c for c in run_doctor(nobody, tmp_path / "none.toml", {}) if c.name == "propexo"]
    assert propexo.status == FAIL


def test_the_sandbox_token_against_a_production_propexo_fails(tmp_path: Path) -> None:
    settings = settings_for_production(tmp_path, DEFAULT_TOKEN)
    ((status, detail),) = [(c.status, c.detail) for c in token_checks(settings, {})]
    assert status == FAIL and "set PROPEXO_API_TOKEN" in detail
    settings = settings_for_production(tmp_path, "sk-live-0123456789abcdef")
    (check,) = token_checks(settings, {"token": "config file tieout.toml"})
    assert check.status == WARN
    assert "keep it in the environment" in check.detail
    assert "0123456789abcdef" not in check.detail
    no_token = replace(settings, token=Secret(""))
    assert token_checks(no_token, {})[0].status == FAIL


def settings_for_production(tmp_path: Path, token: str):  # type: ignore[no-untyped-def]
    from pipelines.core.config import load_settings

    return replace(
        load_settings(env={}),
        base_url="https://api.propexo.com",
        token=Secret(token),
        data_dir=tmp_path,
    )


def test_a_folder_that_cannot_be_written_fails(tmp_path: Path) -> None:
    from pipelines.core.config import load_settings

    settings = replace(load_settings(env={}), data_dir=tmp_path)
    (tmp_path / "archive").write_text("not a folder")
    status = {c.name: c.status for c in folder_checks(settings)}
    assert status == {"inbox": PASS, "archive": FAIL, "rejected": PASS, "reports": PASS}


def test_the_doctor_command_prints_a_line_per_check_and_exits_1_on_a_fail(
    sandbox: RunningSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIEOUT_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.setenv("PROPEXO_BASE_URL", sandbox.base_url)
    monkeypatch.setenv("PROPEXO_API_TOKEN", sandbox.config.token)
    data = tmp_path / "data"
    result = CliRunner().invoke(cli, ["--data-dir", str(data), "doctor"])
    lines = result.output.splitlines()
    assert result.exit_code == 0, result.output
    assert all(re.match(r"(PASS|WARN|FAIL)  +\S", line) for line in lines[:-1]), lines
    assert re.fullmatch(r"0 failed, \d+ warnings, \d+ passed", lines[-1])

    monkeypatch.setenv("PROPEXO_API_TOKEN", "wrong-token-123456")
    result = CliRunner().invoke(cli, ["--data-dir", str(data), "doctor"])
    assert result.exit_code == 1
    assert "FAIL  token accepted: Propexo refused the token (401)" in result.output
    assert re.search(r"^1 failed, ", result.output, re.MULTILINE)
