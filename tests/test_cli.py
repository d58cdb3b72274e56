"""The command line in process (click's CliRunner): every command documented and helpful,
settings shown masked, offline checks, and errors as one line with an exit code."""

from __future__ import annotations

import json
import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from pipelines.cli.main import cli
from tests.conftest import ROOT, TEST_DATA


def _commands(group: click.Group, prefix: str = "") -> list[str]:
    names = []
    for name, command in sorted(group.commands.items()):
        names.append(f"{prefix}{name}")
        if isinstance(command, click.Group):
            names += _commands(command, f"{prefix}{name} ")
    return names


COMMANDS = _commands(cli)


def test_the_readme_documents_every_command() -> None:
    readme = (ROOT / "README.md").read_text()
    undocumented = [c for c in COMMANDS if not re.search(rf"tieout {re.escape(c)}\b", readme)]
    assert undocumented == []


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str) -> None:
    result = CliRunner().invoke(cli, [*command.split(), "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output and len(result.output.splitlines()) > 3


def test_config_show_masks_the_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROPEXO_API_TOKEN", "sk-live-very-secret-token-123")
    monkeypatch.setenv("TIEOUT_CONFIG", str(tmp_path / "none.toml"))
    result = CliRunner().invoke(cli, ["--data-dir", str(tmp_path), "config", "show"])
    assert result.exit_code == 0, result.output
    assert "very-secret" not in result.output
    assert f"sqlite:///{tmp_path}/ledger.sqlite" in result.output or "ledger_url" in result.output


def test_check_offline_accounts_for_every_row_and_writes_the_rejects_beside_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIEOUT_CONFIG", str(tmp_path / "none.toml"))
    source = tmp_path / "template_quirks.csv"
    source.write_bytes((TEST_DATA / "template_quirks.csv").read_bytes())
    report = tmp_path / "check.json"
    result = CliRunner().invoke(
        cli, ["--data-dir", str(tmp_path), "check", "--offline", "--json", str(report), str(source)]
    )
    assert result.exit_code == 1, result.output  # the file has rejected rows
    (checked,) = json.loads(report.read_text())["files"]
    assert checked["rows_read"] == (
        checked["rows_used"] + checked["rows_rejected"] + checked["rows_skipped"]
    )
    assert checked["errors_file"] == str(source) + ".errors.csv"
    assert Path(checked["errors_file"]).exists()
    # Offline no name is checked: the rows not rejected are to confirm online, and say so.
    assert checked["offline"] and checked["rows_to_confirm"] == checked["rows_used"]
    assert f"rows read = {checked['rows_to_confirm']} to confirm online" in result.output


def test_an_error_is_one_line_with_its_exit_code_and_no_traceback(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["--data-dir", str(tmp_path), "check", "--offline", "nope.csv"]
    )
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert "nope.csv: no such file" in result.output


def test_status_of_a_new_data_folder_says_nothing_is_pending(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--data-dir", str(tmp_path), "status", "--json"])
    assert result.exit_code == 0, result.output
    status = json.loads(result.output)
    assert status["by_state"] == {} and status["in_doubt"] == []
