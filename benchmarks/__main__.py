"""Run the benchmarks and print a table of figures and ratios.

    python -m benchmarks            # full sizes (about 10 minutes on 2 cores)
    python -m benchmarks --quick    # small sizes, a smoke run

Every figure is a ratio to a baseline measured in the same run, because these machines are
noisy. Results are written to benchmarks/results/<date>.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import resource
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks import widepath
from benchmarks.data import big_refs, big_seed, bills_for_seed, charge_csv
from benchmarks.report import bench_period, bench_report
from pipelines.core.config import Secret, load_settings
from pipelines.core.kind import KindContext
from pipelines.kinds import registered
from pipelines.kinds.charge.transform import transform_charges
from pipelines.ledger import Ledger
from pipelines.posting.load import post_ready, wait_for_jobs
from pipelines.posting.propexo import make_client
from pipelines.reading.extract import extract_file
from pipelines.reading.grids import Limits, fingerprint
from pipelines.reading.profiles import profiles_for
from pipelines.reconciling.proof import sync_verdicts, write_ended
from pipelines.reconciling.sync import reconcile
from pipelines.resolving.refs import RefData
from pipelines.runs.files import process_file

ROOT = Path(__file__).resolve().parent.parent
RESULTS: list[dict[str, Any]] = []


def record(
    name: str,
    figure: float,
    baseline: float,
    unit: str,
    target: str,
    met: bool | None,
    **extra: Any,
) -> None:
    RESULTS.append(
        {
            "benchmark": name,
            "figure": round(figure, 3),
            "baseline": round(baseline, 3),
            "ratio": round(figure / baseline, 2) if baseline else None,
            "unit": unit,
            "target": target,
            "met": None if met is None else bool(met),
            **extra,
        }
    )
    print(
        f"  {name}: {figure:.3f} {unit} vs baseline {baseline:.3f} -> ratio "
        f"{figure / baseline if baseline else float('nan'):.2f} ({target})",
        flush=True,
    )


def stage_pipeline(rows: int, work: Path, refs: RefData | None = None) -> tuple[float, float, int]:
    """(pipeline seconds, bare read_csv seconds, peak RSS MiB of this process so far)."""
    lists = big_seed()
    refs = refs or big_refs(lists)
    path = work / f"charges_{rows}.csv"
    total = charge_csv(path, rows, lists)
    start = time.perf_counter()
    pd.read_csv(path, skiprows=2)
    base = time.perf_counter() - start
    settings = load_settings(env={})
    start = time.perf_counter()
    result = process_file(fingerprint(path), profiles_for(settings, registered()), refs, settings)
    took = time.perf_counter() - start
    assert result.outcome.source_total_cents == total and result.outcome.rows_rejected == 0
    assert len(result.records) == rows
    return took, base, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def stage_breakdown(rows: int, work: Path, refs: RefData) -> dict[str, float]:
    """Seconds per stage for the same file, each stage run on its own (the same calls
    process_file makes)."""
    path = work / f"charges_{rows}.csv"
    settings = load_settings(env={})
    limits = Limits(max_file_bytes=int(settings.max_file_mb * 2**20), max_rows=settings.max_rows)
    times: dict[str, float] = {}
    start = time.perf_counter()
    extracted = extract_file(fingerprint(path), profiles_for(settings, registered()), limits=limits)
    times["extract_s"] = time.perf_counter() - start
    start = time.perf_counter()
    validated = registered().validate(extracted, extracted.period)
    times["validate_s"] = time.perf_counter() - start
    start = time.perf_counter()
    transform_charges(validated, refs, KindContext.of(settings, registered()), path.name, None)
    times["transform_s"] = time.perf_counter() - start
    return {k: round(v, 3) for k, v in times.items()}


def bench_stage(rows: int, work: Path) -> None:
    refs = big_refs(big_seed())
    took, base, rss = stage_pipeline(rows, work, refs)
    parts = stage_breakdown(rows, work, refs)
    record(
        f"extract+validate+transform {rows:,} charge rows",
        took,
        base,
        "s",
        "≤ 3× read_csv",
        took <= 3 * base,
        peak_rss_mib=rss,
        **parts,
    )
    print(
        "    by stage: "
        + ", ".join(f"{k[:-2]} {v:.2f} s ({v / base:.1f}× read_csv)" for k, v in parts.items()),
        flush=True,
    )


def bench_xlsx(rows: int, work: Path) -> None:
    from openpyxl import Workbook, load_workbook
    from python_calamine import CalamineWorkbook

    path = work / f"appfolio_{rows}.xlsx"
    wb = Workbook(write_only=True)
    ws = wb.create_sheet("Rent Roll")
    ws.append(["Rent Roll"])
    ws.append(["As of: 12/01/2026"])
    ws.append(
        [
            "Unit",
            "Tenant",
            "Status",
            "Sqft",
            "Market Rent",
            "Rent",
            "Deposit",
            "Lease From",
            "Lease To",
            "Move-in",
            "Move-out",
            "Past Due",
        ]
    )
    for i in range(rows):
        if i % 500 == 0:
            ws.append([f"-> Property {i // 500} - 1 Main St"])
        ws.append(
            [
                str(100 + i % 500),
                f"Tenant{i}, Pat",
                "Current",
                850,
                1900.0,
                1200.0 + i % 97,
                500.0,
                "06/01/2025",
                "05/31/2027",
                "06/01/2025",
                None,
                0.0,
            ]
        )
    wb.save(path)
    start = time.perf_counter()
    sheet = CalamineWorkbook.from_path(str(path)).get_sheet_by_name("Rent Roll")
    fast_rows = len(sheet.to_python(skip_empty_area=False))
    fast = time.perf_counter() - start
    start = time.perf_counter()
    slow_rows = sum(
        1 for _ in load_workbook(path, read_only=True)["Rent Roll"].iter_rows(values_only=True)
    )
    slow = time.perf_counter() - start
    assert fast_rows == slow_rows
    record(
        f"XLSX read {rows:,} rows (calamine vs openpyxl read-only)",
        fast,
        slow,
        "s",
        "several times faster",
        slow / fast >= 3,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_sandbox(*options: str) -> tuple[int, subprocess.Popen[bytes]]:
    """`tieout sandbox OPTIONS` on a free port, once it accepts connections."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "pipelines", "sandbox", "--port", str(port), *options],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return port, server
        except OSError:
            if time.monotonic() > deadline:
                server.kill()
                raise RuntimeError("the sandbox did not start") from None
            time.sleep(0.1)


def bench_posting(invoices: int, limit: int, window: float, work: Path) -> None:
    seed = json.loads((ROOT / "data" / "sandbox" / "seed.json").read_text())
    port, server = start_sandbox(
        "--rate-limit", str(limit), "--rate-window", str(window), "--job-delay", "0.5"
    )
    try:
        settings = replace(
            load_settings(env={}),
            base_url=f"http://127.0.0.1:{port}",
            token=Secret("sandbox-token"),
            data_dir=work / f"posting_{invoices}_{limit}",  # a fresh ledger per case
            rate_window_s=window,
            status_timeout_s=120,
        )
        bills = work / "bench_bills.csv"
        bills_for_seed(bills, seed, invoices)
        ledger = Ledger(settings.ledger_path)
        with make_client(settings) as client:
            from pipelines.reconciling.sync import reference_data

            refs = reference_data(ledger, client, settings)
            result = process_file(
                fingerprint(bills), profiles_for(settings, registered()), refs, settings
            )
            ledger.stage_records("bench", None, result.records)
            minimum = len(
                registered().plan_requests(ledger.records(states=["ready"]), settings.batch_size)
            )
            before = dict(
                requests=client.stats.requests,
                writes=client.stats.writes,
                polls=client.stats.status_polls,
            )
            time.sleep(window + 1)  # start posting in a fresh window (the lookups used some budget)
            start = time.perf_counter()
            post_ready(
                ledger,
                client,
                run_id="bench",
                kinds=registered(),
                batch_size=settings.batch_size,
                concurrency=settings.concurrency,
            )
            posting = time.perf_counter() - start
            wait_for_jobs(ledger, client, run_id="bench", timeout_s=120, kinds=registered())
            writes = client.stats.writes - before["writes"]
            polls = client.stats.status_polls - before["polls"]
            # An invoice's own id is in its write-status answer only (Propexo's evidence; the
            # write log has no ids): one poll per such record is the least that proves it.
            own_ids = len(ledger.records(kinds=registered().id_from_write_status, bodies=False))
            limited = client.stats.by_status.get(429, 0)
        ledger.close()
    finally:
        server.terminate()
        server.wait(timeout=10)
    # The first window's budget is there at once; every further `limit` requests need one more
    # window. N = k x limit at the full rate therefore takes k - 1 windows: efficiency is that
    # ideal time over the time taken (ten windows, so the last window's tail weighs little).
    efficiency = ((writes - limit) / limit * window) / posting
    record(
        f"posting {writes} writes, limit {limit}/{window:g}s: achieved ÷ allowed rate",
        efficiency,
        1.0,
        "ratio",
        "≥ 0.98, zero 429s",
        efficiency >= 0.98 and not limited,
        http_429=limited,
        seconds=round(posting, 2),
    )
    record(
        "posting: write requests ÷ minimum possible",
        writes / minimum,
        1.0,
        "ratio",
        "= 1.0",
        writes == minimum,
    )
    record(
        "posting: status polls beyond one per invoice ÷ write requests",
        (polls - own_ids) / max(writes, 1),
        1.0,
        "ratio",
        "≤ 0.1",
        polls - own_ids <= 0.1 * writes,
        status_polls=polls,
        invoices=own_ids,
    )


def reconcile_frames(n: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(1)
    refs = pd.Series([f"TO{i:010d}" for i in range(n)])
    amounts = rng.integers(100, 200000, n)
    residents = "r" + pd.Series(rng.integers(0, 50000, n)).astype(str)
    ledger = pd.DataFrame(
        {
            "record_key": "charge:i:" + refs,
            "kind": "charge",
            "reference_number": refs,
            "amount_cents": amounts,
            "transaction_date": "2026-12-01",
            "charge_code_id": "c1",
            "resident_id": residents,
            "confirmed_at": "2026-11-20T10:00:00Z",
            "sent_at": "2026-11-20T10:00:00Z",
            "updated_at": "2026-11-20T10:00:00Z",
            "state": "confirmed",
            "vendor_id": None,
            "invoice_number": None,
            "created_record_id": None,
        }
    )
    synced = pd.DataFrame(
        {
            "id": "p" + refs,
            "reference_number": refs,
            "amount_in_cents": amounts,
            "transaction_date": "2026-12-01T00:00:00.000Z",
            "charge_code_id": "c1",
            "resident_id": residents,
        }
    ).sample(frac=1, random_state=1)
    return ledger, synced


def time_reconcile(n: int) -> tuple[float, float]:
    ledger, synced = reconcile_frames(n)
    empty = pd.DataFrame(columns=["id", "x_vendor_id", "invoice_number", "total_amount_in_cents"])
    syncs = pd.DataFrame(
        {
            "started_after": ["2026-11-21T00:00:00Z"],
            "completed_at": ["2026-11-21T00:05:00Z"],
            "models": [["invoices", "resident_charges"]],
        }
    )
    start = time.perf_counter()
    since = write_ended(ledger, 120.0)
    verdict = sync_verdicts(
        ledger, syncs, since=since, window_days=90.0, scope=registered().sync_scope
    )
    result = reconcile(
        ledger,
        {"vendor_bill": empty, "charge": synced},
        ctx=KindContext(registered(), "bench"),
        verdict=verdict,
    )
    took = time.perf_counter() - start
    assert result.matched == n
    start = time.perf_counter()
    ledger.merge(synced, on="reference_number", how="left")
    return took, time.perf_counter() - start


def bench_reconcile(n: int) -> None:
    took, merge = time_reconcile(n)
    record(
        f"reconcile {n:,} ledger rows vs {n:,} synced",
        took,
        merge,
        "s",
        "seconds; ratio to a plain merge",
        took < 60,
    )


def _bare_executemany(rows: list[tuple[Any, ...]], work: Path, name: str) -> float:
    """Seconds to insert ``rows`` into an empty SQLite table of as many text columns, in one
    transaction, with nothing else: the floor of writing them at all."""
    path = work / f"{name}.sqlite"
    path.unlink(missing_ok=True)
    db = sqlite3.connect(str(path), isolation_level=None)
    width = len(rows[0])
    db.execute(f"CREATE TABLE t ({', '.join(f'c{i}' for i in range(width))})")
    start = time.perf_counter()
    db.execute("BEGIN")
    db.executemany(f"INSERT INTO t VALUES ({', '.join('?' * width)})", rows)
    db.execute("COMMIT")
    took = time.perf_counter() - start
    db.close()
    path.unlink(missing_ok=True)
    return took


def staging_child(path: str) -> None:
    """In a fresh process: the drop-to-staged path of one file, then this process's peak RSS
    (MiB) on stdout. Run by bench_staging, so the figure is not the benchmark process's own."""
    settings = load_settings(env={})
    refs = big_refs(big_seed())
    result = process_file(
        fingerprint(Path(path)), profiles_for(settings, registered()), refs, settings
    )
    ledger = Ledger(Path(path).with_suffix(".ledger.sqlite"))
    ledger.stage_records("bench", result.source.sha256, result.records)
    ledger.close()
    # VmHWM is this program's own peak: getrusage's maxrss would carry the benchmark
    # process's size over from the fork that started this one.
    status = Path("/proc/self/status").read_text()
    peak_kib = next(
        int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM")
    )
    print(peak_kib // 1024)


def bench_staging(rows: int, work: Path) -> None:
    """Drop to staged: read, check, resolve and write every record to the ledger (what `tieout
    run` does before it posts), against read_csv plus a bare executemany of as many rows of
    the same size; and the peak memory of that path against the read_csv frame."""
    lists = big_seed()
    refs = big_refs(lists)
    path = work / f"staging_{rows}.csv"
    charge_csv(path, rows, lists)
    start = time.perf_counter()
    frame = pd.read_csv(path, skiprows=2)
    read = time.perf_counter() - start
    frame_mib = frame.memory_usage(deep=True).sum() / 2**20
    del frame
    settings = load_settings(env={})
    ledger_path = work / "staging.ledger.sqlite"
    ledger_path.unlink(missing_ok=True)
    start = time.perf_counter()
    result = process_file(fingerprint(path), profiles_for(settings, registered()), refs, settings)
    ledger = Ledger(ledger_path)
    staged, _ = ledger.stage_records("bench", result.source.sha256, result.records)
    took = time.perf_counter() - start
    assert len(staged) == rows
    same_rows = ledger.db.execute("SELECT * FROM records").fetchall()
    ledger.close()
    del result
    bare = _bare_executemany(same_rows, work, "bare_staging")
    del same_rows
    record(
        f"staging {rows:,} charge rows: drop to records staged in the ledger",
        took,
        read + bare,
        "s",
        "≤ 2× (read_csv + bare executemany)",
        took <= 2 * (read + bare),
        read_csv_s=round(read, 3),
        bare_executemany_s=round(bare, 3),
    )
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            f"from benchmarks.__main__ import staging_child; staging_child({str(path)!r})",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    rss = float(child.stdout.strip().splitlines()[-1])
    record(
        f"staging {rows:,} charge rows: peak RSS vs the read_csv frame",
        rss,
        frame_mib,
        "MiB",
        "≤ 3× the frame",
        rss <= 3 * frame_mib,
    )


def bench_staging_engines(rows: int, work: Path) -> None:
    """The ledger's staging of the same records on PostgreSQL (COPY, a server on loopback
    that the benchmark starts) against SQLite (executemany into a file)."""
    from tests.postgres import fresh_database, running_postgres

    lists = big_seed()
    refs = big_refs(lists)
    path = work / f"staging_{rows}.csv"  # the file bench_staging wrote, when it ran first
    if not path.exists():
        charge_csv(path, rows, lists)
    settings = load_settings(env={})
    records = process_file(
        fingerprint(path), profiles_for(settings, registered()), refs, settings
    ).records
    timings: dict[str, float] = {}
    with running_postgres() as server:
        targets = {"sqlite": work / "engines.ledger.sqlite", "postgresql": fresh_database(server)}
        for engine, target in targets.items():
            with Ledger(target) as ledger:
                start = time.perf_counter()
                staged, _ = ledger.stage_records("bench", "sha", records)
                timings[engine] = time.perf_counter() - start
                assert len(staged) == rows
    record(
        f"staging {rows:,} charge records: PostgreSQL ledger vs SQLite ledger",
        timings["postgresql"],
        timings["sqlite"],
        "s",
        "reported (several hosts share PostgreSQL; one machine has SQLite)",
        True,
    )


def _timed_runs(workers: list[dict[str, str]], work: Path) -> tuple[float, list[str]]:
    """Start one `tieout run` per environment at once; (seconds until the last ends, outputs)."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("PROPEXO_", "TIEOUT_"))}
    start = time.perf_counter()
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "pipelines", "--data-dir", env["DATA_DIR"], "run"],
            env={**inherited, **env},
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for env in workers
    ]
    outputs = [child.communicate(timeout=900)[0] for child in children]
    seconds = time.perf_counter() - start
    for child, output in zip(children, outputs, strict=True):
        if child.returncode != 0:
            raise RuntimeError(f"a worker failed ({child.returncode}):\n{output}")
    return seconds, outputs


def bench_workers(invoices: int, limit: int, window: float, work: Path) -> None:
    """`tieout run` end to end (reference data, staging, posting, following, reconcile) on a
    PostgreSQL ledger: one worker on one integration, then two workers at once on two
    integrations (each its own customer token, so its own rate-limit budget, and its own
    ledger database on the same server)."""
    from tests.postgres import fresh_database, running_postgres

    seed = json.loads((ROOT / "data" / "sandbox" / "seed.json").read_text())
    config = work / "workers.toml"
    config.write_text(f"rate_window_s = {window}\nsettle_s = 0\nstatus_timeout_s = 300\n")
    throughput: dict[int, float] = {}
    seconds: dict[int, float] = {}
    limited = 0
    with running_postgres() as pg:
        for count in (1, 2):
            port, server = start_sandbox(
                "--integrations",
                "2",
                "--rate-limit",
                str(limit),
                "--rate-window",
                str(window),
                "--job-delay",
                "0.5",
            )
            try:
                envs = []
                for n in range(1, count + 1):
                    data = work / f"workers_{count}_{n}"
                    (data / "inbox").mkdir(parents=True)
                    bills_for_seed(data / "inbox" / "bills.csv", seed, invoices, f"W{n}")
                    envs.append(
                        {
                            "DATA_DIR": str(data),
                            "TIEOUT_CONFIG": str(config),
                            "TIEOUT_LEDGER_URL": fresh_database(pg),
                            "PROPEXO_BASE_URL": f"http://127.0.0.1:{port}",
                            "PROPEXO_API_TOKEN": "sandbox-token" + ("" if n == 1 else f"-{n}"),
                            "PROPEXO_INTEGRATION_ID": "int_rm_demo" + ("" if n == 1 else f"-{n}"),
                        }
                    )
                seconds[count], outputs = _timed_runs(envs, work)
            finally:
                server.terminate()
                server.wait(timeout=10)
            for output in outputs:
                found = re.search(r"(\d+) rate-limited", output)
                if found is None:
                    raise RuntimeError(f"a worker posted nothing:\n{output}")
                limited += int(found.group(1))
            throughput[count] = count * invoices / seconds[count]
    record(
        f"posting with 2 workers on 2 integrations vs 1 ({invoices:,} invoices each, "
        f"limit {limit}/{window:g}s, PostgreSQL ledger): records per second, whole run",
        round(throughput[2], 1),
        round(throughput[1], 1),
        "records/s",
        "≈ 2× (each integration's budget is its own), zero 429s",
        throughput[2] >= 1.8 * throughput[1] and not limited,
        http_429=limited,
        seconds_1=round(seconds[1], 1),
        seconds_2=round(seconds[2], 1),
    )


def bench_reconcile_command(n: int, work: Path) -> None:
    """`tieout reconcile` after its fetch: read the posted records from the ledger, match
    them and write every outcome back (settle_reconcile, the code the command runs), against
    a plain merge plus a bare executemany of the outcomes."""
    from pipelines.core.models import POSTED
    from pipelines.reconciling.reconcile import LEDGER_COLUMNS
    from pipelines.reconciling.sync import settle_reconcile

    frame, synced = reconcile_frames(n)
    path = work / "reconcile.ledger.sqlite"
    path.unlink(missing_ok=True)
    ledger = Ledger(path)
    staged = frame.assign(
        integration_id="int_rm_demo",
        location_id="L",
        content_hash="h",
        payload="{}",
        source_rows=[[2]] * n,
        source_file="f.csv",
    )
    ledger.stage_records("bench", None, staged)
    ledger.db.execute(
        "UPDATE records SET state = 'confirmed', sent_at = '2026-11-20T10:00:00Z', "
        "confirmed_at = '2026-11-20T10:00:00Z', updated_at = '2026-11-20T10:00:00Z'"
    )
    ledger.request_sync("int_rm_demo", "2026-11-21T00:00:00Z")
    ledger.record_sync_complete(
        "int_rm_demo",
        schedule_id=None,
        finished=True,
        models=["invoices", "resident_charges"],
        at="2026-11-21T00:05:00Z",
    )
    settings = load_settings(env={})
    empty = pd.DataFrame(columns=["id", "x_vendor_id", "invoice_number", "total_amount_in_cents"])
    theirs = {"vendor_bill": empty, "charge": synced}
    start = time.perf_counter()
    records = ledger.records(states=list(POSTED), columns=LEDGER_COLUMNS)
    ctx = KindContext(registered(), settings.integration_id)
    result = settle_reconcile(ledger, settings, records, theirs, ctx)
    took = time.perf_counter() - start
    assert result.matched == n
    matched = ledger.db.execute("SELECT count(*) FROM records WHERE state = 'matched'").fetchone()
    assert matched[0] == n
    # The next reconcile finds everything as it was: nothing to write back.
    start = time.perf_counter()
    records = ledger.records(states=list(POSTED), columns=LEDGER_COLUMNS)
    again = settle_reconcile(ledger, settings, records, theirs, ctx)
    again_s = time.perf_counter() - start
    assert again.matched == n
    ledger.close()
    start = time.perf_counter()
    merged = frame.merge(synced, on="reference_number", how="left")
    merge = time.perf_counter() - start
    outcomes = list(
        zip(
            merged["record_key"].tolist(),
            ["matched"] * n,
            merged["id"].tolist(),
            merged["amount_in_cents"].tolist(),
            [None] * n,
            strict=True,
        )
    )
    bare = _bare_executemany(outcomes, work, "bare_outcomes")
    record(
        f"reconcile command {n:,} records: read, match and write back every outcome",
        took,
        merge + bare,
        "s",
        "≤ 3× (merge + bare executemany of the outcomes)",
        took <= 3 * (merge + bare),
        merge_s=round(merge, 3),
        bare_executemany_s=round(bare, 3),
    )
    record(
        f"reconcile command again, {n:,} records already matched (nothing to write)",
        again_s,
        merge + bare,
        "s",
        "≤ 3× (merge + bare executemany of the outcomes)",
        again_s <= 3 * (merge + bare),
    )


def bench_growth(sizes: list[int], work: Path) -> None:
    stage = [stage_pipeline(n, work)[0] / n * 1e6 for n in sizes]
    rec = [time_reconcile(n)[0] / n * 1e6 for n in sizes]
    for name, per_row in (("extract+validate+transform", stage), ("reconcile", rec)):
        growth = per_row[-1] / per_row[0]
        exponent = 1 + math.log(growth) / math.log(sizes[-1] / sizes[0])
        record(
            f"growth of {name}: µs per row at {sizes[-1]:,} ÷ at {sizes[0]:,}",
            per_row[-1],
            per_row[0],
            "µs/row",
            "linear or n log n (exponent ≤ 1.2)",
            exponent <= 1.2,
            per_row_us=[round(x, 2) for x in per_row],
            exponent=round(exponent, 3),
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    args = parser.parse_args()
    quick = args.quick
    work = Path(tempfile.mkdtemp(prefix="tieout-bench-"))
    started = time.perf_counter()
    try:
        print("1. extract + validate + transform vs bare pandas.read_csv")
        bench_stage(20_000 if quick else 1_000_000, work)
        print("2. XLSX read: calamine vs openpyxl read-only iteration")
        bench_xlsx(5_000 if quick else 200_000, work)
        print("3. posting against the sandbox")
        if quick:
            bench_posting(invoices=90, limit=30, window=2, work=work)
        else:
            bench_posting(invoices=3000, limit=300, window=5, work=work)
            # A short window with a small budget: the hold-back and the margin weigh most here.
            bench_posting(invoices=60, limit=10, window=5, work=work)
        if quick:
            bench_workers(invoices=60, limit=30, window=2, work=work)
        else:
            bench_workers(invoices=1_500, limit=300, window=5, work=work)
        print("4. reconcile")
        bench_reconcile(50_000 if quick else 1_000_000)
        bench_reconcile_command(50_000 if quick else 1_000_000, work)
        print("4b. staging: drop to records in the ledger")
        bench_staging(20_000 if quick else 1_000_000, work)
        bench_staging_engines(20_000 if quick else 1_000_000, work)
        print("5. growth")
        bench_growth([2_000, 20_000] if quick else [10_000, 100_000, 1_000_000], work)
        print("6. the wide path (#41): stage 1 in CPU seconds, staging's peak memory")
        widepath.run([20_000] if quick else [10_000, 1_000_000], work, record)
        print("7. the report and the period's workpaper")
        for records in (1_000,) if quick else (5_000, 50_000):
            bench_report(records, work, record)
        bench_period(30, 30 if quick else 1_667, work, record)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out = (
        ROOT
        / "benchmarks"
        / "results"
        / f"{datetime.now(tz=UTC):%Y-%m-%d}{'-quick' if quick else ''}.json"
    )
    out.write_text(
        json.dumps(
            {
                "quick": quick,
                "seconds": round(time.perf_counter() - started, 1),
                "results": RESULTS,
            },
            indent=2,
        )
    )
    print(f"\n{'benchmark':<72} {'figure':>10} {'baseline':>10} {'ratio':>7}  met")
    for r in RESULTS:
        print(
            f"{r['benchmark'][:72]:<72} {r['figure']:>10} {r['baseline']:>10} "
            f"{r['ratio']!s:>7}  {'yes' if r['met'] else 'no'}"
        )
    print(f"written to {out} in {time.perf_counter() - started:.0f}s")


if __name__ == "__main__":
    main()
