"""The run report rendered: HTML (Jinja2), the rejects CSV, summary.json, and the index of
runs. Pure: bytes out, the caller writes them."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pandas as pd
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from pipelines.core.hints import AliasHints
from pipelines.core.parsing import dollars
from pipelines.core.sheets import csv_bytes
from pipelines.reporting.report import (
    ATTENTION,
    COMPLETE,
    TEMPLATES,
    WAITING,
    RunReport,
    blank,
    not_charged_text,
    rejected_rows,
)
from pipelines.reporting.rows import posted_data
from pipelines.reporting.workbook import render_xlsx


def when(stamp: Any) -> str:
    """An ISO timestamp for a person: 2026-11-23 21:09:25 UTC."""
    text = str(blank(stamp))
    return text[:19].replace("T", " ") + " UTC" if len(text) >= 19 else text


def _href(target: str, folder: Path | None) -> str:
    """A link from the report's folder to a file (the archived source), relative when both are
    known so the link survives moving the data folder."""
    if not target:
        return ""
    path = Path(target)
    if folder is not None:
        try:
            return os.path.relpath(path, folder)
        except ValueError:  # pragma: no cover - another drive on Windows
            pass
    return path.as_uri() if path.is_absolute() else str(path)


VERDICT_CLASS = {COMPLETE: "ok", WAITING: "wait", ATTENTION: "bad"}
# A table of more rows than this keeps them as data in the page, shown PAGE_ROWS at a time
# (search, "exceptions only" and the sort still work over every row): a browser lays out a
# page of a few hundred rows at once, not a table of a hundred thousand.
PAGED_FROM = 2_000
PAGE_ROWS = 500
_SCRIPT_END = re.compile(r"<(?=[/!])")


def script_json(text: str) -> Markup:
    """A row's HTML as a JSON string that a ``<script type="application/json">`` element can
    hold: nothing in it ends the element (``</script>``) or opens a comment (``<!--``)."""
    # Safe as markup: a JSON string (its quotes and backslashes escaped) inside a script
    # element, which only "</" or "<!" could end; both are escaped.
    return Markup(_SCRIPT_END.sub(r"\\u003c", json.dumps(str(text))))  # noqa: S704


def render_html(report: RunReport, folder: Path | None = None) -> str:
    """A self-contained page: the verdict and exceptions first, then sortable, filterable
    detail tables that trace every dollar to its file, row and Propexo record."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"])
    )
    env.filters["dollars"] = dollars
    env.filters["blank"] = blank
    env.filters["when"] = when
    env.filters["script_json"] = script_json
    # A run's report folder is <data_dir>/reports/<run_id>: hints name that data folder.
    hints = AliasHints(folder.parent.parent) if folder is not None else AliasHints()
    env.filters["not_charged"] = lambda column: not_charged_text(column, hints)
    template = env.get_template("report.html.j2")
    posted = report.posted.copy()
    if not posted.empty:
        # Each file's link made once (a run's records come from a few files).
        hrefs = {t: _href(str(t or ""), folder) for t in posted["archived"].unique()}
        posted["archived_href"] = [
            hrefs[t] if t in hrefs else _href(str(t or ""), folder)
            for t in posted["archived"].tolist()
        ]
        traced = {str(t["record_key"]): t for t in report.summary.get("lineage") or []}
        keys = posted.get("record_key", pd.Series("", index=posted.index)).tolist()
        # A plain lookup per record: pandas' map would cast a column of dicts, pointwise.
        posted["lineage"] = pd.Series([traced.get(str(k)) for k in keys], index=posted.index)
    exceptions = (
        posted[~posted["state"].isin(["matched", "confirmed"])] if not posted.empty else posted
    )
    files = [
        {**f, "archived_href": _href(str(f.get("moved_to") or ""), folder)}
        for f in report.summary["files"]
    ]
    rejected = rejected_rows(report.rejected)
    chart = _chart_data(report.by_location)
    records = posted.to_dict("records")
    paged = {
        "posted": len(posted) > PAGED_FROM,
        "exceptions": len(exceptions) + len(rejected) > PAGED_FROM,
    }
    return template.render(
        s=report.summary,
        p=report.summary.get("provenance", {}),
        verdict_class=VERDICT_CLASS.get(report.summary.get("verdict", ATTENTION), "bad"),
        now_class=VERDICT_CLASS.get(report.summary.get("verdict_now", ATTENTION), "bad"),
        files=files,
        control=report.control.to_dict("records"),
        locations=report.summary["by_location"],
        posted=records,
        # Past PAGED_FROM rows, the page's script makes each record's row from its data.
        posted_data=Markup(posted_data(records)) if paged["posted"] else None,  # noqa: S704
        rejected=rejected.to_dict("records"),
        exceptions=exceptions.to_dict("records"),
        chart=chart,
        paged=paged,
        page_rows=PAGE_ROWS,
    )


def _chart_data(by_location: pd.DataFrame) -> list[dict[str, Any]]:
    """Bars for "amount by state per location" (matched, awaiting, exceptions)."""
    if by_location.empty:
        return []
    rows = []
    peak = max(
        1,
        int(
            by_location[["posted_total_cents", "failed_cents", "in_doubt_cents"]]
            .abs()
            .sum(axis=1)
            .max()
        ),
    )
    for r in by_location.to_dict("records"):
        parts = [
            ("matched", r["matched_cents"]),
            ("awaiting sync", r["awaiting_sync_cents"]),
            ("missing", r["missing_cents"]),
            ("mismatched", r["mismatched_cents"]),
            ("duplicated", r["duplicated_cents"]),
            ("failed", r["failed_cents"]),
            ("in doubt", r["in_doubt_cents"]),
        ]
        x = 0.0
        segments = []
        for name, cents in parts:
            width = abs(int(cents)) / peak * 100
            if width > 0:
                segments.append(
                    {"name": name, "x": round(x, 3), "width": round(width, 3), "cents": int(cents)}
                )
                x += width
        rows.append({"location": r["location"], "segments": segments})
    return rows


def run_rows(summaries: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One line per run, newest first, from each report folder's name and its summary.json:
    what `tieout runs` and the index show."""
    rows = []
    for folder, s in summaries.items():
        totals = s.get("totals", {})
        rows.append(
            {
                "run_id": s.get("run_id"),
                "started_at": s.get("started_at") or "",
                "verdict": s.get("verdict", ""),
                "verdict_now": s.get("verdict_now", s.get("verdict", "")),
                "reasons": "; ".join(
                    f"{r['count']:,} {r['reason']}" for r in s.get("verdict_reasons", [])
                ),
                "files": ", ".join(f["name"] for f in s.get("files", [])),
                "source_total_cents": totals.get("source_total_cents", 0),
                "posted_total_cents": totals.get("posted_total_cents", 0),
                "rejected_total_cents": totals.get("rejected_total_cents", 0),
                "report": f"{folder}/report.html",
            }
        )
    return sorted(rows, key=lambda r: (r["started_at"], str(r["run_id"])), reverse=True)


def render_index(rows: list[dict[str, Any]]) -> str:
    """data/reports/index.html: every run, newest first, with its verdict and totals."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"])
    )
    env.filters["dollars"] = dollars
    return env.get_template("index.html.j2").render(runs=rows, classes=VERDICT_CLASS)


def render_rejects_csv(rejected: pd.DataFrame) -> bytes:
    """Rejected rows for a clerk: file, row, reason, column, value (formula-safe)."""
    return csv_bytes(rejected)


# What summary.json leaves out of each record's lineage, said elsewhere in it or in `tieout
# trace --json`: each field's header (``fields``), names and ids the report's tables show, the
# file's sha256 and archived copy (``files[]``).
LINEAGE_LEFT_OUT = frozenset({"fields", "names", "propexo_ids", "file_sha256", "archived"})


def render_summary_json(report: RunReport) -> bytes:
    """summary.json: the figures indented for a person; ``lineage`` one record a line, so a
    run of a million records stays a file of one line per record, not forty."""
    lineage = report.summary.get("lineage") or []
    head = {k: v for k, v in report.summary.items() if k != "lineage"}
    text = json.dumps(head, indent=2, default=str)
    lines = ",\n    ".join(
        json.dumps(
            {k: v for k, v in r.items() if k not in LINEAGE_LEFT_OUT},
            default=str,
            separators=(",", ":"),
        )
        for r in lineage
    )
    tail = f'"lineage": [\n    {lines}\n  ]' if lineage else '"lineage": []'
    text = text[:-2] + f",\n  {tail}\n}}" if head else f"{{\n  {tail}\n}}"
    return (text + "\n").encode()


def render_all(report: RunReport, folder: Path | None = None) -> dict[str, bytes]:
    """Every file of a run's report, by name (``folder``: where they go, for relative links)."""
    return {
        "summary.json": render_summary_json(report),
        "report.html": render_html(report, folder).encode(),
        "report.xlsx": render_xlsx(report),
        "rejects.csv": render_rejects_csv(report.rejected),
    }
