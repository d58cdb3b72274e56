"""The report's benchmarks: a run's report with lineage (5,000 and 50,000 records) and a
period's workpaper over a month of files, each built from a ledger written as a run writes it
(the file read, staged, archived as its kept version; refs cached; records confirmed)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.data import big_refs, big_seed, charge_csv
from pipelines.core.config import Settings, load_settings
from pipelines.core.versions import versioned_name
from pipelines.kinds import registered
from pipelines.ledger import Ledger
from pipelines.reading.grids import fingerprint
from pipelines.reading.profiles import profiles_for
from pipelines.runs.files import process_file

Record = Callable[..., None]


def report_workspace(work: Path, files: list[int], run_id: str = "bench-run") -> Settings:
    """A data folder whose ledger holds one run of ``files`` charge sheets (rows each), as
    `tieout run` leaves it: records confirmed with their jobs and Propexo ids, each file
    archived under its kept name, the reference data cached."""
    data = work / f"data-{run_id}"
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    settings = load_settings(env={"TIEOUT_DATA_DIR": str(data)})
    lists = big_seed()
    refs = big_refs(lists)
    kinds = registered()
    archive = settings.archive_dir / "2026-12"
    archive.mkdir(parents=True, exist_ok=True)
    with Ledger(settings.ledger) as ledger:
        ledger.save_refs(settings.integration_id, lists)
        ledger.start_run(run_id, dry_run=False, pid=0)
        for n, rows in enumerate(files):
            path = work / f"charges_{run_id}_{n:02d}.csv"
            charge_csv(path, rows, lists, seed=n + 1)
            source = fingerprint(path)
            result = process_file(source, profiles_for(settings, kinds), refs, settings)
            ledger.stage_records(run_id, source.sha256, result.records, kinds)
            target = archive / versioned_name(source.sha256, path.name)
            shutil.move(str(path), target)
            ledger.record_file(run_id, result.outcome, str(target))
        ledger.db.execute(
            "UPDATE records SET state = 'confirmed', job_id = 'job-' || substr(record_key, 1, 8), "
            "created_record_id = 'pid-' || record_key, sent_at = '2026-12-01T10:00:00Z', "
            "confirmed_at = '2026-12-01T10:00:00Z'"
        )
        ledger.finish_run(run_id, 0)
    return settings


def timed(work: Callable[[], Any]) -> tuple[float, Any]:
    """(CPU seconds, what ``work`` returned): the report is one thread, and its CPU time is
    what it would take on a machine of its own (two cores shared by eight engineers make
    wall-clock figures vary five-fold)."""
    start = time.process_time()
    out = work()
    return time.process_time() - start, out


def report_seconds(settings: Settings, run_id: str = "bench-run") -> dict[str, float]:
    """Seconds to build a run's report from the ledger (lineage included) and to render it."""
    from pipelines.reporting import publish, render

    kinds = registered()
    with Ledger(settings.ledger) as ledger:
        build_s, built = timed(lambda: publish.build(ledger, settings, run_id, kinds))
    rendered: dict[str, float] = {}
    for name, render_one in (
        ("summary.json", lambda: render.render_summary_json(built)),
        ("report.html", lambda: render.render_html(built)),
        ("report.xlsx", lambda: render.render_xlsx(built)),
    ):
        rendered[name], _ = timed(render_one)
    return {"build_s": build_s, **{f"{k}_s": v for k, v in rendered.items()}}


def period_seconds(settings: Settings, period: str = "2026-12") -> dict[str, float]:
    from pipelines.reporting import publish, render

    kinds = registered()
    with Ledger(settings.ledger) as ledger:
        build_s, built = timed(lambda: publish.build_period(ledger, settings, period, kinds))
    render_s, _ = timed(lambda: render.render_all(built))
    return {"build_s": build_s, "render_s": render_s}


def bare_reads(settings: Settings) -> float:
    """CPU seconds of the least a report must do: the ledger's records read, and each archived
    file read once by pandas (the baseline the report is a ratio to)."""
    import pandas as pd

    def reads() -> None:
        with Ledger(settings.ledger) as ledger:
            ledger.records()
            for moved_to in ledger.db.read_frame("SELECT moved_to FROM files")["moved_to"]:
                pd.read_csv(moved_to, skiprows=2)

    return timed(reads)[0]


def bench_report(records: int, work: Path, record: Record) -> None:
    """`tieout report` of a run of ``records`` charges, with every record's lineage: seconds
    (CPU) and ms per record, where the time goes, against the bare reads."""
    settings = report_workspace(work, [records], run_id=f"report-{records}")
    took = report_seconds(settings, f"report-{records}")
    base = bare_reads(settings)
    total = sum(took.values())
    record(
        f"the report of {records:,} records with lineage (build, summary.json, HTML, XLSX)",
        total,
        base,
        "s",
        "≤ 1 ms per record, ≤ 15 s for 50,000 (CPU seconds)",
        total / records <= 1e-3 and (records < 50_000 or total <= 15),
        ms_per_record=round(total / records * 1e3, 3),
        **{k: round(v, 3) for k, v in took.items()},
    )
    shutil.rmtree(settings.data_dir, ignore_errors=True)


def bench_period(files: int, rows: int, work: Path, record: Record) -> None:
    """The period's workpaper over a month of ``files`` files (``rows`` charges each), after
    the run's report (which reads each file once; the workpaper reads none again)."""
    run_id = f"period-{files}x{rows}"
    settings = report_workspace(work, [rows] * files, run_id=run_id)
    # As a month goes: each run's report is written when the run ends (not timed here), and
    # the period's workpaper follows.
    run_report = sum(report_seconds(settings, run_id).values())
    took = period_seconds(settings)
    base = bare_reads(settings)
    total = sum(took.values())
    record(
        f"the period workpaper of {files} files ({files * rows:,} records), built and rendered",
        total,
        base,
        "s",
        "≤ 1 ms per record (CPU seconds)",
        total / (files * rows) <= 1e-3,
        ms_per_record=round(total / (files * rows) * 1e3, 3),
        run_report_s=round(run_report, 3),
        **{k: round(v, 3) for k, v in took.items()},
    )
    shutil.rmtree(settings.data_dir, ignore_errors=True)
