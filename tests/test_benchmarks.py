"""`make bench --quick` as a smoke test: every benchmark runs and prints its table.

Marked `bench`: `make bench` runs it first (`pytest -m bench`); `make test` deselects it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT


@pytest.mark.bench
def test_quick_benchmarks_run_and_print_the_table() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    table = result.stdout.split("benchmark", 1)[1]
    for name in (
        "extract+validate+transform",
        "XLSX read",
        "posting",
        "reconcile",
        "growth",
        "stage 1, CPU seconds",
        "tracemalloc",
        "the report of",
        "the period workpaper",
    ):
        assert name in table
