"""#41: a report reads each archived file once, and the next report (the period's workpaper, a
report refreshed after a sync, a sign-off) reads what the first kept of it, not the file again;
what it says is the same, and a copy no longer archived is still said to be missing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from benchmarks.report import report_workspace
from pipelines.kinds import registered
from pipelines.ledger import Ledger
from pipelines.reporting import publish, trace


def _lineage(settings: Any, period: bool) -> list[dict[str, Any]]:
    with Ledger(settings.ledger) as ledger:
        built = (
            publish.build_period(ledger, settings, "2026-12", registered())
            if period
            else publish.build(ledger, settings, "bench-run", registered())
        )
    return list(built.summary["lineage"])


def test_the_period_workpaper_reads_no_file_the_run_report_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = report_workspace(tmp_path, [25, 30])
    reads: list[str] = []
    real = trace.extract_file

    def counted(source: Any, *args: Any, **kwargs: Any) -> Any:
        reads.append(source.name)
        return real(source, *args, **kwargs)

    monkeypatch.setattr(trace, "extract_file", counted)
    run = _lineage(settings, period=False)
    assert len(reads) == 2 and len(run) == 55  # each file read once
    assert len(list((settings.data_dir / "cache" / "files").glob("*.json"))) == 2
    reads.clear()
    period = _lineage(settings, period=True)
    assert reads == []  # every file's cells from the cache
    assert {t["record_key"]: t for t in period} == {t["record_key"]: t for t in run}
    assert all(t["values_as_read"] and t["note"] is None for t in period)
    # What the cache says is what the file says: read again without it, the same lineage.
    shutil.rmtree(settings.data_dir / "cache")
    assert _lineage(settings, period=True) == period and len(reads) == 2

    # A file no longer archived is said to be missing, its cache entry notwithstanding.
    reads.clear()
    with Ledger(settings.ledger) as ledger:
        gone = str(ledger.db.read_frame("SELECT moved_to FROM files")["moved_to"].iloc[0])
    Path(gone).unlink()
    after = _lineage(settings, period=True)
    missing = [t for t in after if t["archived"] == gone]
    assert missing and all(
        t["note"] == f"the archived copy is not at {gone}" and not t["cells"] for t in missing
    )
    assert reads == []  # the other file still from the cache; the missing one has no bytes


def test_a_kept_view_holds_nothing_where_the_file_holds_nothing() -> None:
    """A wide roll's empty amount is pandas' NA: kept as nothing, not the text "<NA>" (which a
    later report could not read as an amount)."""
    import pandas as pd

    from pipelines.reporting.views import FileView

    view = FileView(None, None)
    view.extract = type(
        "Extract",
        (),
        {"cells": {"rent": ("Rent", "F")}, "charge_columns": ["rent"], "header_rows": [5]},
    )()
    view.by_row = {6: {"rent": float("nan")}, 7: {"rent": "1,825.00"}}
    view.cents = {6: {"rent": pd.NA}, 7: {"rent": 182500}}
    again = FileView.of(json.loads(json.dumps(view.data())))
    assert again.cents == {6: {"rent": None}, 7: {"rent": 182500}}
    assert again.by_row == {6: {"rent": None}, 7: {"rent": "1,825.00"}}
    assert again.extract.cells == {"rent": ("Rent", "F")} and again.extract.header_rows == [5]
