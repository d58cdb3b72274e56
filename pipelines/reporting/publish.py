"""Reports written from the ledger: a run's folder (HTML, XLSX, JSON) and the index of runs."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.core.config import Settings, which_propexo
from pipelines.core.disk import write_atomically
from pipelines.core.errors import InputError
from pipelines.core.kind import Kinds
from pipelines.ledger import Ledger
from pipelines.reporting import render
from pipelines.reporting import report as reporting
from pipelines.reporting.report import RunReport


def _records_of_run(ledger: Ledger, run_id: str) -> pd.DataFrame:
    """The records a run staged, and those of earlier runs it re-sent, followed or settled."""
    staged = ledger.records(run_id=run_id)
    touched = set(ledger.touched_keys(run_id)) - set(staged["record_key"])
    if not touched:
        return staged
    everything = ledger.records()
    return pd.concat([staged, everything[everything["record_key"].isin(touched)]])


def provenance(settings: Settings) -> dict[str, Any]:
    """What produced a report: tieout's version, which Propexo (sandbox or production), which
    integration, and the settings that change amounts."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        tieout_version = version("tieout")
    except PackageNotFoundError:  # pragma: no cover - running from a checkout without install
        tieout_version = "unknown"
    return {
        "tieout_version": tieout_version,
        "propexo_base_url": settings.base_url,
        "propexo": which_propexo(settings.base_url),
        "integration_id": settings.integration_id,
        "due_days_default": settings.due_days_default,
        "batch_size": settings.batch_size,
        "period_setting": settings.period.isoformat() if settings.period else None,
        "in_doubt_grace_s": settings.in_doubt_grace_s,
    }


def report_names(ledger: Ledger, settings: Settings) -> dict[str, dict[str, str]]:
    """id → name per kind from the cached reference data, so the report shows who and what
    rather than ids alone (empty when nothing is cached)."""
    cached = ledger.cached_refs(settings.integration_id)
    if cached is None:
        return {}
    lists = cached[1]
    units = {str(u.get("id")): str(u.get("number") or "") for u in lists.get("units", [])}
    unit_of = {
        str(member.get("resident_id")): units.get(str(lease.get("unit_id")), "")
        for lease in lists.get("leases", [])
        for member in (lease.get("residents_meta_data") or [])
    }
    properties = {str(p.get("id")): str(p.get("name") or "") for p in lists.get("properties", [])}
    # A resident's property: their lease's, else the one the resident record names.
    property_of = {
        str(r.get("id")): properties.get(str(r.get("property_id")), "")
        for r in lists.get("residents", [])
    }
    for lease in lists.get("leases", []):
        for member in lease.get("residents_meta_data") or []:
            named = properties.get(str(lease.get("property_id")), "")
            if named:
                property_of[str(member.get("resident_id"))] = named
    return {
        "property": properties,
        "resident_property": property_of,
        "vendor": {str(v.get("id")): str(v.get("name") or "") for v in lists.get("vendors", [])},
        "resident": {
            str(r.get("id")): f"{r.get('last_name') or ''}, {r.get('first_name') or ''}".strip(", ")
            for r in lists.get("residents", [])
        },
        "charge_code": {
            str(c.get("id")): str(c.get("name") or "") for c in lists.get("charge_codes", [])
        },
        "unit": unit_of,
        "gl_account": {
            str(a.get("id")): " ".join(
                str(part) for part in (a.get("account_number"), a.get("name")) if part
            )
            for a in lists.get("financial_accounts", [])
        },
    }


def stopped_key(run_id: str) -> str:
    """The ledger meta key holding why a run stopped early (absent for a run that did not)."""
    return f"stopped {run_id}"


def build(ledger: Ledger, settings: Settings, run_id: str, kinds: Kinds) -> RunReport:
    """A run's report, built from the ledger (nothing written)."""
    runs = ledger.runs()
    row = runs[runs["run_id"] == run_id]
    if row.empty:
        raise InputError(f"no run {run_id!r} in the ledger")
    locations = json.loads(ledger.get_meta("locations") or "{}")
    unexpected = int(ledger.get_meta("unexpected") or 0)
    run = {str(k): v for k, v in row.iloc[0].to_dict().items()}
    run["stopped"] = ledger.get_meta(stopped_key(run_id))
    files = ledger.files(run_id)
    passes = ledger.passes(run_id)  # files read again by this run (retried)
    if not passes.empty:
        files = passes if files.empty else pd.concat([files, passes], ignore_index=True)
    records = _records_of_run(ledger, run_id)
    names = report_names(ledger, settings)
    return reporting.build_report(
        run,
        files,
        ledger.drops(run_id),
        records,
        ledger.rejects(run_id),
        locations,
        unexpected=unexpected,
        grace_s=settings.in_doubt_grace_s,
        provenance=provenance(settings),
        names=names,
        signoffs=ledger.signoffs(run_id),
        layout_uses=ledger.layout_uses(run_id),
        items=_items_of_run(ledger, run_id, files),
        lineage=_lineage(ledger, settings, records, kinds, names),
    )


def _lineage(
    ledger: Ledger,
    settings: Settings,
    records: pd.DataFrame,
    kinds: Kinds,
    names: dict[str, dict[str, str]],
) -> list[dict[str, Any]]:
    """Each record's lineage, as `tieout trace` gives it (its file read again once)."""
    from pipelines.reporting.trace import lineages  # trace reads names through this module

    return lineages(ledger, settings, records, kinds, names)


PERIOD = re.compile(r"(?:period-)?(\d{4})-(\d{2})")


def period_of(text: str) -> str | None:
    """``2026-12`` (or ``period-2026-12``) as a period, else None (a run id, say)."""
    found = PERIOD.fullmatch(text.strip())
    if found is None or not 1 <= int(found[2]) <= 12:
        return None
    return f"{found[1]}-{found[2]}"


def build_period(ledger: Ledger, settings: Settings, period: str, kinds: Kinds) -> RunReport:
    """The workpaper of a billing period: every file of the period, whichever run took it,
    with every record it staged in any run and the rejected rows its latest run saw. Its
    figures tie to each file's own stated totals, as a run's do."""
    files = ledger.files_of_period(period)
    if files.empty:
        raise InputError(
            f"no file of period {period} in the ledger: `tieout runs` lists what was processed"
        )
    shas = files["sha256"].astype(str).tolist()
    locations = json.loads(ledger.get_meta("locations") or "{}")
    now = datetime.now(tz=UTC).isoformat(timespec="seconds")
    subject = f"period-{period}"
    records = ledger.records(files=shas)
    names = report_names(ledger, settings)
    return reporting.build_report(
        {"run_id": subject, "started_at": str(files["processed_at"].min()), "finished_at": now},
        files,
        pd.DataFrame(),
        records,
        ledger.rejects_of_files(shas),
        locations,
        grace_s=settings.in_doubt_grace_s,
        provenance=provenance(settings),
        names=names,
        signoffs=ledger.signoffs(subject),
        # The period's open items, as they stand now (not "met" by one run: none holds it).
        items=[
            {**i, "met": False} for sha in shas for i in ledger.items(states=None, file_sha256=sha)
        ],
        lineage=_lineage(ledger, settings, records, kinds, names),
    )


def write_period_report(ledger: Ledger, settings: Settings, period: str, kinds: Kinds) -> Path:
    """A period's workpaper into ``data/reports/period-YYYY-MM/`` (not in the index of runs)."""
    folder = settings.reports_dir / f"period-{period}"
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in render.render_all(
        build_period(ledger, settings, period, kinds), folder
    ).items():
        write_atomically(folder / name, data)
    return folder


def _items_of_run(ledger: Ledger, run_id: str, files: pd.DataFrame) -> list[dict[str, Any]]:
    """The items a run met (``met``), and the approvals of the files it took in."""
    met = [{**i, "met": True} for i in ledger.items(states=None, run_id=run_id)]
    seen = {i["item_id"] for i in met}
    approvals = [
        {**i, "met": False}
        for sha in (files["sha256"].astype(str) if not files.empty else [])
        for i in ledger.items(states=None, file_sha256=sha)
        if i["cause"] == "awaiting_approval" and i["item_id"] not in seen
    ]
    return met + approvals


def write(built: RunReport, settings: Settings, run_id: str) -> Path:
    """A built report's files into ``data/reports/<run_id>/``, and the index of runs."""
    folder = settings.reports_dir / run_id
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in render.render_all(built, folder).items():
        write_atomically(folder / name, data)
    index = render.render_index(render.run_rows(run_summaries(settings.reports_dir)))
    write_atomically(settings.reports_dir / "index.html", index.encode())
    return folder


def write_report(ledger: Ledger, settings: Settings, run_id: str, kinds: Kinds) -> Path:
    """Build a run's report from the ledger and write it into ``data/reports/<run_id>/``."""
    return write(build(ledger, settings, run_id, kinds), settings, run_id)


def refresh_settled(
    ledger: Ledger,
    settings: Settings,
    run_id: str | None,
    kinds: Kinds,
    item_ids: list[str] | None = None,
) -> list[Path]:
    """Re-render the reports of earlier runs whose items this run (or a person, ``item_ids``)
    settled or superseded, so each says which run settled it (their verdict then is kept;
    their verdict now changes)."""
    return [
        write_report(ledger, settings, earlier, kinds)
        for earlier in ledger.runs_that_met(run_id, item_ids)
        if (settings.reports_dir / earlier).exists()
    ]


def run_summaries(reports_dir: Path) -> dict[str, dict[str, Any]]:
    """Every report folder's summary.json, by folder name (a report being written, or
    damaged, is left out)."""
    found = {}
    for path in reports_dir.glob("*/summary.json"):
        if path.parent.name.startswith("period-"):  # a period's workpaper, not a run
            continue
        try:
            found[path.parent.name] = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
    return found


def sign_off(
    settings: Settings, subject: str, by: str, note: str | None, kinds: Kinds
) -> tuple[str, dict[str, str | None], Path]:
    """A person's review of a run's or a period's (YYYY-MM) workpaper (`tieout signoff`, the
    desk): kept in the ledger and shown in that report. Returns the subject's key, the review
    and the report's folder."""
    if not by.strip():
        raise InputError("--by: the name of the person who reviewed the workpaper")
    with Ledger(settings.ledger) as ledger:
        month = period_of(subject)
        if month is not None:
            write_period_report(ledger, settings, month, kinds)  # refuses a period with no file
            key = f"period-{month}"
        else:
            if subject not in set(ledger.runs()["run_id"].astype(str)):
                raise InputError(
                    f"no run {subject!r} and not a period (YYYY-MM): `tieout runs` lists runs"
                )
            key = subject
        review = ledger.add_signoff(key, by.strip(), note)
        folder = (
            write_period_report(ledger, settings, month, kinds)
            if month is not None
            else write_report(ledger, settings, subject, kinds)
        )
    return key, review, folder
