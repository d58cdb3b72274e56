"""The command line's own modules, in process: `tieout alias` (cli.alias), the clerk's loop
(cli.items) and the layout lines of `tieout check` (cli.layout)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipelines.cli.alias import alias, on_terminal
from pipelines.cli.items import open_items, print_todo, tieout_word
from pipelines.cli.layout import print_layout
from pipelines.cli.main import cli
from pipelines.core.config import load_settings
from sandbox.server import RunningSandbox
from tests.conftest import TEST_DATA


def test_a_confirmed_layout_says_by_whom(capsys: pytest.CaptureFixture[str]) -> None:
    print_layout({"fingerprint": "ab12", "confirmed": True, "confirmed_by": "ana"})
    assert capsys.readouterr().out == "  layout ab12: confirmed (ana)\n"


def test_a_layout_not_confirmed_says_what_a_run_would_do_and_how_to_confirm_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    print_layout(
        {
            "fingerprint": "cd34",
            "confirmed": False,
            "why_held": ["a column nobody named"],
            "charged": ["Rent", "Pet Fee"],
            "not_charged": [],
            "unknown": ["Misc"],
            "command": "tieout layout accept roll.xlsx",
        }
    )
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "  layout cd34: not confirmed; a run would hold the file: a column nobody named",
        "    would charge: Rent, Pet Fee; not charged: none; unknown: Misc",
        "    to confirm it: tieout layout accept roll.xlsx",
    ]
    print_layout({"fingerprint": "ef56"})
    assert "a run would hold the file: not a strict match" in capsys.readouterr().out


def test_before_the_first_run_nothing_is_open_and_commands_name_the_data_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = replace(load_settings(env={}), data_dir=tmp_path / "books")
    assert open_items(settings) == []
    assert tieout_word(settings) == f"tieout --data-dir {tmp_path / 'books'}"
    assert tieout_word(replace(settings, data_dir=Path("data"))) == "tieout"
    print_todo(settings)
    assert capsys.readouterr().out == "nothing open: every exception is settled\n"
    print_todo(
        settings,
        [
            {
                "item_id": "it_1",
                "cause": "empty_file",
                "file_name": "e.csv",
                "amount_cents": 0,
                "detail": {"path": str(tmp_path / "books" / "inbox" / "e.csv")},
            }
        ],
    )
    said = capsys.readouterr().out
    assert said.startswith("empty files left in the inbox: 1 (0 rows, 0.00)\n  it_1 e.csv: rm ")
    assert str(tmp_path / "books" / "inbox" / "e.csv") in said
    assert "open: 1 items, 0.00 at stake" in said
    assert f"`tieout --data-dir {tmp_path / 'books'} todo`" in said


def test_an_alias_is_added_after_checking_its_target_then_listed(
    sandbox: RunningSandbox, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    env = {
        "PROPEXO_BASE_URL": sandbox.base_url,
        "PROPEXO_API_TOKEN": sandbox.config.token,
        "TIEOUT_CONFIG": str(TEST_DATA / "tieout-test.toml"),
    }
    runner = CliRunner()
    wrong = runner.invoke(
        cli,
        ["--data-dir", str(data), "alias", "add", "vendor", "Acme Plumbng", "No Such Co"],
        env=env,
    )
    assert wrong.exit_code != 0
    assert not (data / "mappings" / "vendors.csv").exists()  # nothing written for a bad target
    added = runner.invoke(
        cli,
        ["--data-dir", str(data), "alias", "add", "vendor", "Acme Plumbng", "ACME Plumbing LLC"],
        env=env,
    )
    assert added.exit_code == 0, added.output
    assert "Acme Plumbng" in (data / "mappings" / "vendors.csv").read_text()
    listed = runner.invoke(cli, ["--data-dir", str(data), "alias", "list"], env=env)
    assert listed.exit_code == 0, listed.output
    assert "1 aliases in" in listed.output and "Acme Plumbng" in listed.output
    todo = runner.invoke(cli, ["--data-dir", str(data), "todo", "--json"], env=env)
    assert todo.exit_code == 0, todo.output
    assert json.loads(todo.output)["items"] == []


def test_the_alias_group_lists_its_commands_and_tests_have_no_terminal() -> None:
    assert set(alias.commands) >= {"add", "accept", "list"}
    assert on_terminal() is False  # pytest's stdin is no terminal: nobody to ask
