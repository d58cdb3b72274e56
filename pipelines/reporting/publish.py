"""Reports written from the ledger: a run's folder (HTML, XLSX, JSON) and the index of runs."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.core.config import Settings, which_propexo
from pipelines.core.disk import FOLDER_MODE, share_with_group, write_atomically
from pipelines.core.errors import InputError
from pipelines.core.kind import Kinds
from pipelines.core.versions import is_kept_version, locate
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
    files = with_kept_paths(files)
    records = _records_of_run(ledger, run_id)
    names = report_names(ledger, settings)
    built = reporting.build_report(
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
        kinds=kinds,
    )
    from pipelines.reporting.period import figures_hash

    figures = figures_hash(built.summary)
    signed = signoffs_of(ledger, run_id, figures)
    summary = {
        **built.summary,
        "figures_sha256": figures,
        "signoffs": signed,
        "changed_since_signoff": any(r["changed_since"] for r in signed[-1:]),
    }
    return replace(built, summary=summary)


def with_kept_paths(files: pd.DataFrame) -> pd.DataFrame:
    """Files rows whose ``moved_to`` is where each version read is kept now (:func:`kept_path`)."""
    if files.empty:
        return files
    return files.assign(moved_to=[*map(kept_path, files["moved_to"], files["sha256"])])


def kept_path(moved_to: Any, sha256: Any) -> Any:
    """Where the version a run recorded at ``moved_to`` is kept now: the path itself when it
    is a kept version's (never given other bytes); for a path a ledger recorded before versions
    were kept by content, the file that holds those bytes (sha256 checked), wherever a later
    run put it, else the path as recorded."""
    if not isinstance(moved_to, str) or not moved_to or not isinstance(sha256, str):
        return moved_to
    if is_kept_version(Path(moved_to), sha256):
        return moved_to
    found = locate(moved_to, sha256)
    return str(found) if found is not None else moved_to


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
    """The workpaper of a billing period: the latest version of each of its files (a later
    version of a file supersedes the earlier; an identical re-drop is no version), whichever
    run took it, with its records, its rejected rows as its latest pass saw them, and every
    item of every version: each source line counted once. One verdict (then and now are the
    same: a period has no run), naming each item that keeps it open; sign-offs with whether the
    figures changed since."""
    from pipelines.core.models import IN_DOUBT, RecordState
    from pipelines.ledger.items import record_items
    from pipelines.reporting import period as periods

    everything = ledger.files_of_period(period)
    if everything.empty:
        raise InputError(
            f"no file of period {period} in the ledger: `tieout runs` lists what was processed"
        )
    everything = with_kept_paths(everything)
    later = {
        str(sha): json.loads(ledger.get_meta(supersedes_key(str(sha))) or "[]")
        for sha in everything["sha256"]
    }
    latest, earlier = periods.versions(everything, later)
    shas = latest["sha256"].astype(str).tolist()
    locations = json.loads(ledger.get_meta("locations") or "{}")
    subject = f"period-{period}"
    records = ledger.records(files=shas)
    files = periods.latest_accounting(latest, ledger.passes_of(shas), records)
    names = report_names(ledger, settings)
    every_sha = everything["sha256"].astype(str).tolist()
    built = reporting.build_report(
        {
            "run_id": subject,
            "started_at": str(everything["processed_at"].min()),
            "finished_at": datetime.now(tz=UTC).isoformat(timespec="seconds"),
        },
        files,
        pd.DataFrame(),
        records,
        ledger.rejects_of_files(shas),
        locations,
        grace_s=settings.in_doubt_grace_s,
        provenance=provenance(settings),
        names=names,
        signoffs=[],
        # Every version's items, as they stand now (none is "met": no run holds a period).
        items=[
            {**i, "met": False}
            for sha in every_sha
            for i in ledger.items(states=None, file_sha256=sha)
        ],
        lineage=_lineage(ledger, settings, records, kinds, names),
        kinds=kinds,
    )
    stuck = records[records["state"].isin([*IN_DOUBT, RecordState.FAILED, RecordState.REFUSED])]
    decided = {i["item_id"] for i in ledger.items(states=["settled"])}
    owed = [
        i
        for i in record_items([{str(k): v for k, v in r.items()} for r in stuck.to_dict("records")])
        if i["item_id"] not in decided
    ]
    s = built.summary
    period_files, control, verdict, reasons, still = periods.period_figures(s, earlier, owed)
    run_row = built.control[built.control["level"] == "run"].to_dict("records")
    for row in run_row:
        row["name"] = subject
        row["rejected_total_cents"] = sum(f["rejected_open_cents"] for f in period_files)
        row["settled_cents"] = sum(f["settled_cents"] for f in period_files)
        row["ties_out"] = periods.posted_ties(s) and all(f["ties_out"] for f in period_files)
        row["identity"] = (
            "posted = matched + awaiting sync + missing + mismatched + duplicated; every "
            "file's check holds"
        )
    locations_rows = built.control[built.control["level"] == "location"].to_dict("records")
    table = pd.DataFrame([*control, *locations_rows, *run_row])
    totals = {
        **s["totals"],
        "rejected_total_cents": sum(f["rejected_open_cents"] for f in period_files),
        "settled_cents": sum(f["settled_cents"] for f in period_files),
        "open_cents": sum(i["amount_cents"] for i in still),
        "stated_total_cents": sum(int(f["stated_total_cents"] or 0) for f in period_files),
    }
    summary = {
        **s,
        "period": period,
        "files": period_files,
        "totals": totals,
        "verdict": verdict,
        "verdict_reasons": reasons,
        "verdict_now": verdict,
        "verdict_now_reasons": reasons,
        "open_items": still,
        "ties_out": bool(table["ties_out"].all()),
    }
    summary["figures_sha256"] = periods.figures_hash(summary)
    summary["signoffs"] = signoffs_of(ledger, subject, summary["figures_sha256"])
    summary["changed_since_signoff"] = any(r["changed_since"] for r in summary["signoffs"][-1:])
    return replace(built, summary=summary, files=pd.DataFrame(period_files), control=table)


def supersedes_key(sha256: str) -> str:
    """The ledger meta key naming the earlier files a file is a later version of (the same
    name and period, or records of the same keys)."""
    return f"supersedes {sha256}"


def signoff_key(subject: str, at: str) -> str:
    """The ledger meta key holding what a sign-off signed (the workpaper's hashes)."""
    return f"signoff {subject} {at}"


def signoffs_of(ledger: Ledger, subject: str, figures: str | None) -> list[dict[str, Any]]:
    """The sign-offs of a workpaper, each with the hashes it signed and whether the figures
    changed since (``figures``: the workpaper's figures' hash now)."""
    out = []
    for review in ledger.signoffs(subject):
        signed = json.loads(ledger.get_meta(signoff_key(subject, str(review["at"]))) or "{}")
        was = signed.get("figures_sha256")
        out.append(
            {
                **review,
                **signed,
                "changed_since": bool(figures and was and was != figures),
            }
        )
    return out


def write_period_report(ledger: Ledger, settings: Settings, period: str, kinds: Kinds) -> Path:
    """A period's workpaper into ``data/reports/period-YYYY-MM/`` (not in the index of runs)."""
    folder = settings.reports_dir / f"period-{period}"
    folder.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
    written = render.render_all(build_period(ledger, settings, period, kinds), folder)
    for name, data in written.items():
        write_atomically(folder / name, data)
    share_reports(settings, [folder, *(folder / name for name in written)])
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
    folder.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
    written = render.render_all(built, folder)
    for name, data in written.items():
        write_atomically(folder / name, data)
    index = render.render_index(render.run_rows(run_summaries(settings.reports_dir)))
    write_atomically(settings.reports_dir / "index.html", index.encode())
    share_reports(
        settings,
        [folder, *(folder / name for name in written), settings.reports_dir / "index.html"],
    )
    return folder


def share_reports(settings: Settings, paths: list[Path]) -> None:
    """With ``shared_reports_group`` set, the reports just written (and the reports folder)
    are the group's to read, and the data folder its to pass through; else they stay
    owner-only."""
    if settings.shared_reports_group:
        share_with_group(
            [settings.reports_dir, *paths],
            settings.shared_reports_group,
            traverse=[settings.data_dir],
        )


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


class NotSigned(InputError):
    """A workpaper with open items or a check that does not hold, not signed (exit 1)."""

    exit_code = 1


def sign_off(
    settings: Settings,
    subject: str,
    by: str,
    note: str | None,
    kinds: Kinds,
    *,
    with_open_items: bool = False,
) -> tuple[str, dict[str, str | None], Path, list[str]]:
    """A person's review of a run's or a period's (YYYY-MM) workpaper (`tieout signoff`, the
    desk): kept in the ledger and shown in that report. Refused (:class:`NotSigned`) while an
    item is open or a check does not hold, unless ``with_open_items`` with a ``note`` (why).
    The sign-off keeps the workpaper's hashes: a later change to its figures shows "changed
    since sign-off". Returns the subject's key, the review, the report's folder and what was
    signed open (items and checks)."""
    import hashlib

    if not by.strip():
        raise InputError("--by: the name of the person who reviewed the workpaper")
    if with_open_items and not (note or "").strip():
        raise InputError('--with-open-items needs --note "why it is signed with them open"')
    with Ledger(settings.ledger) as ledger:
        month = period_of(subject)
        if month is not None:
            # Refuses a period with no file; what is signed is what is on disk.
            folder = write_period_report(ledger, settings, month, kinds)
            key = f"period-{month}"
        else:
            if subject not in set(ledger.runs()["run_id"].astype(str)):
                raise InputError(
                    f"no run {subject!r} and not a period (YYYY-MM): `tieout runs` lists runs"
                )
            key = subject
            folder = write_report(ledger, settings, subject, kinds)
        summary = json.loads((folder / "summary.json").read_text())
        open_ids = open_of(summary)
        failed = checks_failing(summary)
        if (open_ids or failed) and not with_open_items:
            from pipelines.core.hints import AliasHints

            tieout = AliasHints(settings.data_dir).command
            said = ([f"open items: {', '.join(open_ids)}"] if open_ids else []) + (
                [f"checks that do not hold: {', '.join(failed)}"] if failed else []
            )
            raise NotSigned(
                f"{key}: not signed: {'; '.join(said)}. Settle them (`{tieout} todo`), "
                f'or sign with them open: {tieout} signoff {subject} --by "{by.strip()}" '
                '--with-open-items --note "why"'
            )
        review = ledger.add_signoff(key, by.strip(), note)
        ledger.set_meta(
            signoff_key(key, str(review["at"])),
            json.dumps(
                {
                    "workpaper_sha256": hashlib.sha256(
                        (folder / "summary.json").read_bytes()
                    ).hexdigest(),
                    "figures_sha256": summary["figures_sha256"],
                    "with_open_items": bool(open_ids or failed),
                    "open_items": open_ids,
                    "checks_failing": failed,
                }
            ),
        )
        folder = (
            write_period_report(ledger, settings, month, kinds)
            if month is not None
            else write_report(ledger, settings, subject, kinds)
        )
    return key, review, folder, [*open_ids, *failed]


def open_of(summary: dict[str, Any]) -> list[str]:
    """The open items a workpaper names (a period's: its files' and records'; a run's: the
    items it met that are still open)."""
    if "open_items" in summary:
        return [str(i["id"]) for i in summary["open_items"]]
    return [str(i["id"]) for i in summary.get("items") or [] if i.get("state") == "open"]


def checks_failing(summary: dict[str, Any]) -> list[str]:
    """The checks of a workpaper that do not hold (file by name, then the whole)."""
    failing = [f"file {f['name']}" for f in summary.get("files") or [] if not f.get("ties_out")]
    if not summary.get("ties_out", True) and not failing:
        failing.append(str(summary.get("run_id")))
    return failing
