"""The wide path's benchmarks (#41): stage 1 against ``read_csv`` in wall and CPU seconds, by
stage, with the cells that took a row-wise fallback counted; and staging's peak memory against
the ``read_csv`` frame, measured three ways (RSS, ``tracemalloc``, Arrow's memory pool).

Run by ``python -m benchmarks`` (``make bench``) after its own cases, or alone:

    python -m benchmarks.widepath 200000      # one size, printed
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from benchmarks.data import big_refs, big_seed, charge_csv
from pipelines.core.config import load_settings
from pipelines.core.kind import KindContext
from pipelines.core.parsing import rowwise_cells
from pipelines.kinds import registered
from pipelines.kinds.charge.transform import transform_charges
from pipelines.ledger import Ledger
from pipelines.reading.extract import extract_file
from pipelines.reading.grids import Limits, fingerprint
from pipelines.reading.profiles import profiles_for
from pipelines.runs.files import process_file

ROOT = Path(__file__).resolve().parent.parent


def _timed(func: Any, *args: Any) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = func(*args)
    return out, time.perf_counter() - wall, time.process_time() - cpu


def stage_costs(rows: int, work: Path) -> dict[str, Any]:
    """Stage 1 of a ``rows``-line charge CSV against a bare ``read_csv`` of it, in wall and
    CPU seconds (CPU is what other work on a shared machine does not inflate), and each stage
    on its own."""
    lists = big_seed()
    refs = big_refs(lists)
    path = work / f"charges_{rows}.csv"
    if not path.exists():
        charge_csv(path, rows, lists)
    settings = load_settings(env={})
    profiles = profiles_for(settings, registered())
    _, read_wall, read_cpu = _timed(lambda: pd.read_csv(path, skiprows=2))
    result, wall, cpu = _timed(lambda: process_file(fingerprint(path), profiles, refs, settings))
    assert len(result.records) == rows
    limits = Limits(max_file_bytes=int(settings.max_file_mb * 2**20), max_rows=settings.max_rows)
    extracted, ew, ec = _timed(lambda: extract_file(fingerprint(path), profiles, limits=limits))
    validated, vw, vc = _timed(lambda: registered().validate(extracted, extracted.period))
    ctx = KindContext.of(settings, registered())
    _, tw, tc = _timed(lambda: transform_charges(validated, refs, ctx, path.name, None))
    amounts = extracted.rows.get("amount", pd.Series(dtype=object))
    ec, vc, tc, ew, vw, tw = (round(x, 3) for x in (ec, vc, tc, ew, vw, tw))
    return {
        "rows": rows,
        "read_csv_wall_s": round(read_wall, 3),
        "read_csv_cpu_s": round(read_cpu, 3),
        "stage_wall_s": round(wall, 3),
        "stage_cpu_s": round(cpu, 3),
        "wall_ratio": round(wall / read_wall, 2),
        "cpu_ratio": round(cpu / read_cpu, 2),
        "by_stage_cpu_s": {
            "extract": round(ec, 3),
            "validate": round(vc, 3),
            "transform": round(tc, 3),
        },
        "by_stage_wall_s": {
            "extract": round(ew, 3),
            "validate": round(vw, 3),
            "transform": round(tw, 3),
        },
        "rowwise_fallback_cells": rowwise_cells(amounts),
    }


def staging_memory_child(path: str) -> None:
    """In a fresh process: drop to staged for one file; prints JSON with the peak RSS above
    the process's size after its imports, the peak of Python's traced allocations
    (``tracemalloc``: numpy's arrays included) and of Arrow's memory pool, in MiB."""
    settings = load_settings(env={})
    refs = big_refs(big_seed())
    profiles = profiles_for(settings, registered())
    before = _status_kib("VmRSS")
    tracemalloc.start()
    pool = pa.default_memory_pool()
    result = process_file(fingerprint(Path(path)), profiles, refs, settings)
    ledger = Ledger(Path(path).with_suffix(".memory.ledger.sqlite"))
    ledger.stage_records("bench", result.source.sha256, result.records)
    ledger.close()
    _, traced = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    mib = 2**20
    print(
        json.dumps(
            {
                "rss_growth_mib": round((_status_kib("VmHWM") - before) / 1024, 1),
                "tracemalloc_peak_mib": round(traced / mib, 1),
                "arrow_pool_peak_mib": round(pool.max_memory() / mib, 1),
            }
        )
    )


def _status_kib(field: str) -> int:
    status = Path("/proc/self/status").read_text()
    return next(int(line.split()[1]) for line in status.splitlines() if line.startswith(field))


def staging_memory(rows: int, work: Path) -> dict[str, Any]:
    """Staging's peak memory (in a fresh process) against the ``read_csv`` frame."""
    lists = big_seed()
    path = work / f"memory_{rows}.csv"
    if not path.exists():
        charge_csv(path, rows, lists)
    frame = pd.read_csv(path, skiprows=2)
    frame_mib = frame.memory_usage(deep=True).sum() / 2**20
    del frame
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            f"from benchmarks.widepath import staging_memory_child; "
            f"staging_memory_child({str(path)!r})",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    found = json.loads(child.stdout.strip().splitlines()[-1])
    traced = found["tracemalloc_peak_mib"] + found["arrow_pool_peak_mib"]
    return {
        "rows": rows,
        "frame_mib": round(frame_mib, 1),
        **found,
        "rss_ratio": round(found["rss_growth_mib"] / frame_mib, 2),
        "traced_ratio": round(traced / frame_mib, 2),
    }


def run(sizes: list[int], work: Path, record: Any) -> None:
    """The wide path's cases at each size, through ``benchmarks.__main__.record``."""
    for rows in sizes:
        cost = stage_costs(rows, work)
        record(
            f"stage 1, CPU seconds, {rows:,} charge rows",
            cost["stage_cpu_s"],
            cost["read_csv_cpu_s"],
            "s CPU",
            "≤ 3× read_csv",
            cost["cpu_ratio"] <= 3,
            **{k: v for k, v in cost.items() if k != "rows"},
        )
        print(
            "    by stage (CPU): "
            + ", ".join(
                f"{k} {v:.2f} s ({v / cost['read_csv_cpu_s']:.1f}×)"
                for k, v in cost["by_stage_cpu_s"].items()
            )
            + f"; cells read row by row: {cost['rowwise_fallback_cells']:,}",
            flush=True,
        )
    for rows in sizes[-1:]:
        memory = staging_memory(rows, work)
        record(
            f"staging {rows:,} rows: peak RSS growth vs the read_csv frame",
            memory["rss_growth_mib"],
            memory["frame_mib"],
            "MiB",
            "≤ 3× the frame",
            memory["rss_ratio"] <= 3,
            **{k: v for k, v in memory.items() if k != "rows"},
        )
        record(
            f"staging {rows:,} rows: tracemalloc + Arrow pool peak vs the read_csv frame",
            memory["tracemalloc_peak_mib"] + memory["arrow_pool_peak_mib"],
            memory["frame_mib"],
            "MiB",
            "≤ 3× the frame",
            memory["traced_ratio"] <= 3,
        )


def main() -> None:
    import tempfile

    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    work = Path(tempfile.mkdtemp(prefix="tieout-widepath-"))
    print(json.dumps(stage_costs(rows, work)))
    print(json.dumps(staging_memory(rows, work)))


if __name__ == "__main__":
    main()
