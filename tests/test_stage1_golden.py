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

