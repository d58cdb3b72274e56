"""#41: the wide path's rework changes how stage 1 computes, never what it makes. Every fixture
under tests/data (online and offline) and seeded property-style inputs give the same rows,
cents, cells and issues as main's code did (tests/data/stage1_golden.json, written by
``python -m tests.stage1_golden`` before the rework)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.stage1_golden import GOLDEN, TEST_DATA, fixtures, property_inputs, snapshot, with_aliases

EXPECTED = json.loads(GOLDEN.read_text(encoding="utf-8"))


def test_the_golden_file_covers_every_fixture() -> None:
    assert {n for n in EXPECTED if not n.startswith("property_")} == {
        name for f in fixtures() for name in (f, f"{f} (offline)")
    }


@pytest.mark.parametrize("name", fixtures())
def test_each_fixture_reads_as_before(name: str, refs) -> None:  # type: ignore[no-untyped-def]
    assert snapshot(TEST_DATA / name, with_aliases(refs, name)) == EXPECTED[name]
    assert snapshot(TEST_DATA / name, None) == EXPECTED[f"{name} (offline)"]


def test_property_inputs_read_as_before(refs, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    for path in property_inputs(tmp_path):
        assert snapshot(path, refs) == EXPECTED[path.name], path.name


def test_the_cells_read_one_by_one_are_counted() -> None:
    """The benchmark counts the amounts parse_money reads one by one (a number, date or
    boolean cell from XLSX); text, however written, is read column-wise."""
    import datetime as dt

    import pandas as pd

    from pipelines.core.parsing import rowwise_cells

    cells = pd.Series(["$1,234.56", 12.5, None, dt.date(2026, 12, 1), "  ", True, 7], dtype=object)
    assert rowwise_cells(cells) == 4
    assert rowwise_cells(pd.Series(["1.00", None], dtype="string")) == 0
    assert rowwise_cells(pd.Series([], dtype=object)) == 0
