"""`check` as a function: a frozen result, every row accounted for, nothing written."""

from __future__ import annotations

import shutil
from pathlib import Path

from pipelines.core.config import load_settings
from pipelines.runs.check import CheckResult, check_file
from tests.conftest import TEST_DATA


def test_check_returns_its_findings_and_writes_nothing(tmp_path: Path) -> None:
    source = tmp_path / "bills.csv"
    shutil.copy(TEST_DATA / "template_quirks.csv", source)
    before = sorted(p.name for p in tmp_path.iterdir())
    result = check_file(source, load_settings(env={}), None)
    assert isinstance(result, CheckResult)
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    s = result.summary
    assert s["rows_read"] == s["rows_used"] + s["rows_rejected"] + s["rows_skipped"]
    assert s["rows_rejected"] == len(s["rejected"]) > 0
    assert result.errors_csv is not None and result.errors_path == Path(f"{source}.errors.csv")
    assert b"source_row" in result.errors_csv


def test_a_clean_file_has_no_rejects_file() -> None:
    result = check_file(TEST_DATA / "generic_ap_bills.csv", load_settings(env={}), None)
    assert result.summary["rows_rejected"] == 0
    assert result.errors_csv is None and result.errors_path is None
