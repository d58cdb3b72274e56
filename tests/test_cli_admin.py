"""The administrative commands: reference data shown as alias files need it, the ledger
brought to this tieout's schema."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipelines.cli.admin import refs_show
from pipelines.cli.main import cli
from sandbox.server import RunningSandbox


@pytest.fixture
def against(sandbox: RunningSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.setenv("TIEOUT_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.setenv("PROPEXO_BASE_URL", sandbox.base_url)
    monkeypatch.setenv("PROPEXO_API_TOKEN", sandbox.config.token)
    return ["--data-dir", str(tmp_path / "data")]


def test_refs_show_prints_names_beside_ids_and_only_the_rows_searched_for(
    against: list[str],
) -> None:
    assert refs_show.name == "show"
    shown = CliRunner().invoke(cli, [*against, "refs", "show", "vendors", "--search", "acme"])
    assert shown.exit_code == 0, shown.output
    assert re.search(r"^\d+ vendors holding 'acme'$", shown.output, re.MULTILINE)

    as_csv = CliRunner().invoke(
        cli, [*against, "refs", "show", "vendors", "--search", "ACME", "--csv"]
    )
    assert as_csv.exit_code == 0, as_csv.output
    rows = list(csv.DictReader(io.StringIO(as_csv.output)))
    assert rows and all("acme" in " ".join(r.values()).lower() for r in rows)
    # The location's name beside its id: what an alias file is written with.
    header = next(csv.reader(io.StringIO(as_csv.output)))
    assert header.index("location") == header.index("location_id") + 1
    assert all(r["location"] for r in rows)

    refreshed = CliRunner().invoke(cli, [*against, "refs", "refresh"])
    assert refreshed.exit_code == 0, refreshed.output
    assert re.search(r"^vendors: [1-9]\d*$", refreshed.output, re.MULTILINE)


def test_ledger_migrate_brings_a_ledger_to_this_tieouts_schema_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIEOUT_CONFIG", str(tmp_path / "none.toml"))
    args = ["--data-dir", str(tmp_path), "ledger", "migrate"]
    first = CliRunner().invoke(cli, args)
    assert first.exit_code == 0, first.output
    found = re.search(r"is at schema (\S+) \(was from before migrations\)", first.output)
    assert found, first.output
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0, again.output
    assert f"is at schema {found[1]}" in again.output
    assert "(was" not in again.output  # nothing to do the second time
