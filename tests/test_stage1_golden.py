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


def test_a_schema_run_once_per_distinct_line_says_what_it_says_of_every_line(
    tmp_path: Path,
) -> None:
    """The line model runs once per distinct combination of values; its failures, spread to
    every line holding them, are those of running it on every line (cells it refuses among
    a few thousand repeated lines)."""
    import numpy as np
    import pandas as pd

    from pipelines.kinds.charge.schemas import ResidentCharge
    from pipelines.reading.validate import _failures, failures

    rng = np.random.default_rng(41)
    n = 5_000
    frame = pd.DataFrame(
        {
            "source_row": np.arange(4, n + 4, dtype=np.int64),
            "property_name": pd.array(rng.choice(["Oak Ridge", "Maple"], n), dtype="string"),
            "unit": pd.array(rng.choice(["101", "102", "U" * 60, None], n), dtype="string"),
            "resident_name": pd.array(rng.choice(["Marrow, Dakota", None], n), dtype="string"),
            "charge_code": pd.array(rng.choice(["Rent", "Parking"], n), dtype="string"),
            "transaction_date": pd.array(rng.choice(["2026-12-01", "12/01"], n), dtype="string"),
            "notes": pd.array(rng.choice([None, "n" * 3000, "ok"], n), dtype="string"),
            "reference_number": pd.array([None] * n, dtype="string"),
            "amount_cents": pd.array(rng.choice([0, 1500, -200], n), dtype="Int64"),
        },
        index=pd.RangeIndex(n) * 3,  # an index that is not the lines' positions
    )
    once = failures(ResidentCharge, frame)
    every = _failures(ResidentCharge, frame, None)
    assert len(once) == len(every) > 3
    for (error, indexes, values), (again, all_indexes, all_values) in zip(once, every, strict=True):
        assert (error.column_name, error.check) == (again.column_name, again.check)
        assert indexes == all_indexes
        assert [None if pd.isna(v) else v for v in values] == [
            None if pd.isna(v) else v for v in all_values
        ]
