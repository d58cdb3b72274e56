"""Reports written from the ledger: a run's folder and the index of every run."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from pipelines.core.config import load_settings
from pipelines.core.errors import InputError
from pipelines.kinds import registered
from pipelines.ledger import Ledger
from pipelines.reporting.publish import build, period_of, run_summaries, stopped_key, write_report


def test_each_run_gets_its_folder_and_the_index_lists_every_run(tmp_path: Path) -> None:
    settings = replace(load_settings(env={}), data_dir=tmp_path)
    with Ledger(settings.ledger) as ledger:
        for run_id, code in (("run-a", 0), ("run-b", 2)):
            ledger.start_run(run_id, dry_run=False, pid=1)
            ledger.finish_run(run_id, code)
        ledger.set_meta(stopped_key("run-b"), "Propexo refused the token (401)")
        first = write_report(ledger, settings, "run-a", registered())
        second = write_report(ledger, settings, "run-b", registered())
        with pytest.raises(InputError, match="no run 'run-c' in the ledger"):
            build(ledger, settings, "run-c", registered())

    assert first == settings.reports_dir / "run-a"
    for folder in (first, second):
        assert {p.name for p in folder.iterdir()} == {
            "summary.json",
            "report.html",
            "report.xlsx",
            "rejects.csv",
        }
    stopped = json.loads((second / "summary.json").read_text())
    assert stopped["run_id"] == "run-b"
    assert stopped["stopped"] == "Propexo refused the token (401)"
    assert json.loads((first / "summary.json").read_text())["stopped"] is None

    index = (settings.reports_dir / "index.html").read_text()
    assert "run-a" in index and "run-b" in index
    # A period's workpaper and a damaged summary are not runs of the index.
    (settings.reports_dir / "period-2026-11").mkdir()
    (settings.reports_dir / "period-2026-11" / "summary.json").write_text("{}")
    (settings.reports_dir / "half-written").mkdir()
    (settings.reports_dir / "half-written" / "summary.json").write_text('{"run_id": ')
    assert set(run_summaries(settings.reports_dir)) == {"run-a", "run-b"}


def test_a_period_is_told_from_a_run_id() -> None:
    assert period_of("2026-11") == period_of(" period-2026-11 ") == "2026-11"
    assert period_of("2026-13") is None
    assert period_of("20261203T091100Z-4f2a") is None
