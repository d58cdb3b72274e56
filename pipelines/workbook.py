"""The run report as an XLSX workpaper (openpyxl): a Summary first, one sheet per table, totals
as formulas so an auditor can re-foot them, print setup for paper."""

from __future__ import annotations

import io
import json
from datetime import date
from typing import Any

import pandas as pd

from pipelines.report import RunReport, blank, neutralize, rejected_rows

HEADERS = {
    "source_file": "File",
    "source_rows": "Rows",
    "source_row": "Row",
    "party": "Vendor / resident",
    "propexo_amount_cents": "Propexo's amount",
    "propexo_id": "Propexo id",
    "job_id": "Job",
    "archived": "Archived file",
    "amount_text": "Amount as in the file",
    "message": "Reason",
    "code": "Code",
    "column_name": "Column",
    "location_id": "Location id",
    "ties_out": "Check holds",
    "identity": "Identity",
}


MONEY_FORMAT = "#,##0.00;[Red](#,##0.00)"


DATE_FORMAT = "yyyy-mm-dd"


TIME_FORMAT = "yyyy-mm-dd hh:mm:ss"


def header_of(column: str) -> str:
    """A column's name for a person: `amount_cents` → `Amount`, `invoice_date` → `Invoice date`."""
    if column in HEADERS:
        return HEADERS[column]
    words = column.removesuffix("_cents").replace("_", " ").strip()
    return words[:1].upper() + words[1:]


def _cell(column: str, value: Any) -> Any:
    """A value as the workbook holds it: money in dollars (a number), row numbers as numbers,
    dates as dates, text that a spreadsheet would run made plain."""
    value = blank(value, None)
    if value is None:
        return None
    if column.endswith("_cents"):
        return int(value) / 100
    if column in {"source_rows", "source_row"} and str(value).strip().isdigit():
        return int(str(value).strip())
    if column in {"date", "transaction_date", "period"} and isinstance(value, str):
        try:
            return date.fromisoformat(value[:10])
        except ValueError:
            return neutralize(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return neutralize(value)


def _print_setup(ws: Any, run_id: str, *, one_page: bool, header_rows: str = "1:1") -> None:
    """Landscape, one page wide (and tall, for a short sheet), header rows repeated, a
    footer with the run, the sheet and the page number."""
    ws.page_setup.orientation = "landscape"
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 1 if one_page else 0
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    ws.print_title_rows = header_rows
    ws.print_options.gridLines = False
    ws.page_margins.left = ws.page_margins.right = 0.4
    ws.oddFooter.left.text = f"tieout run {run_id}"
    ws.oddFooter.center.text = "&A"
    ws.oddFooter.right.text = "Page &P of &N"


def _sheet(
    wb: Any,
    title: str,
    frame: pd.DataFrame,
    run_id: str,
    one_page: bool = False,
    sum_where: tuple[str, str] | None = None,
) -> Any:
    """A table as a workpaper sheet: human headers, typed cells, a Total row of SUM formulas
    under every money column, frozen header, filters and print setup. ``sum_where`` (column,
    value): total only the rows holding that value (SUMIF), where the rows are of several
    levels and a plain sum would count money twice."""
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    ws = wb.create_sheet(title)
    columns = list(frame.columns)
    ws.append([header_of(c) for c in columns])
    for row in frame.itertuples(index=False):
        ws.append([_cell(c, v) for c, v in zip(columns, row, strict=True)])
    last = ws.max_row
    money = [i for i, c in enumerate(columns, start=1) if c.endswith("_cents")]
    if money and len(frame):
        ws.append([])
        total_row = ws.max_row + 1
        label = "Total" if sum_where is None else f"Total of the {sum_where[1]} rows"
        ws.cell(total_row, 1, label).font = Font(bold=True)
        for i in money:
            letter = get_column_letter(i)
            if sum_where is None:
                formula = f"=SUM({letter}2:{letter}{last})"
            else:
                key = get_column_letter(columns.index(sum_where[0]) + 1)
                formula = f'=SUMIF({key}2:{key}{last},"{sum_where[1]}",{letter}2:{letter}{last})'
            cell = ws.cell(total_row, i, formula)
            cell.font = Font(bold=True)
    for i, column in enumerate(columns, start=1):
        letter = get_column_letter(i)
        ws[f"{letter}1"].font = Font(bold=True)
        fmt = (
            MONEY_FORMAT
            if column.endswith("_cents")
            else DATE_FORMAT
            if column in {"date", "transaction_date", "period"}
            else None
        )
        if fmt:
            for cell in ws[letter][1:]:
                cell.number_format = fmt
        sample = [header_of(column)] + [str(v) for v in frame[column].head(300) if v is not None]
        ws.column_dimensions[letter].width = min(48, max(9, *(len(v) + 2 for v in sample)))
    ws.freeze_panes = "A2"
    if columns:
        ws.auto_filter.ref = f"A1:{get_column_letter(len(columns))}{max(last, 1)}"
    _print_setup(ws, run_id, one_page=one_page)
    return ws


def _summary_sheet(ws: Any, report: RunReport) -> None:
    from openpyxl.styles import Font

    s = report.summary
    run_id = str(s["run_id"])
    p = s.get("provenance", {})
    ws.title = "Summary"
    ws.append(["tieout run", run_id])
    ws.append(["Verdict", str(s.get("verdict", "")).capitalize()])
    ws["B2"].font = Font(bold=True)
    for reason in s.get("verdict_reasons", []):
        ws.append([f"  {reason['reason']}", reason["count"], reason["amount_cents"] / 100])
        ws.cell(ws.max_row, 3).number_format = MONEY_FORMAT
    for held in s.get("held_layouts", []):
        ws.append(
            [
                neutralize(f"  held, layout not confirmed: {held['name']}"),
                neutralize(held.get("command") or ""),
            ]
        )
    times = [("Started", s.get("started_at")), ("Finished", s.get("finished_at"))]
    for label, value in times:
        stamp = pd.to_datetime(value, utc=True, errors="coerce") if value else None
        ws.append([label, stamp.tz_convert(None).to_pydatetime() if stamp is not None else None])
        ws.cell(ws.max_row, 2).number_format = TIME_FORMAT
    t = s["totals"]
    money_rows = [
        ("Source total", t["source_total_cents"]),
        ("Posted total", t["posted_total_cents"]),
        ("Rejected total", t["rejected_total_cents"]),
        ("Matched in Propexo", s["reconciliation"]["matched_total_cents"]),
    ]
    for label, cents in money_rows:
        ws.append([label, cents / 100])
        ws.cell(ws.max_row, 2).number_format = MONEY_FORMAT
    for label, key in (
        ("Rows read", "rows_read"),
        ("Rows used", "rows_used"),
        ("Rows rejected", "rows_rejected"),
        ("Rows skipped", "rows_skipped"),
    ):
        ws.append([label, int(t[key])])
    for state, count in s["records"]["by_state"].items():
        ws.append([f"Records {state}", int(count)])
    ws.append(["Propexo", f"{p.get('propexo', '')} {p.get('propexo_base_url', '')}".strip()])
    ws.append(["Integration", p.get("integration_id")])
    ws.append(["tieout version", p.get("tieout_version")])
    for f in s["files"]:
        ws.append([f"File {f['name']}", f["sha256"]])
    for row in ws.iter_rows(min_col=1, max_col=1):
        row[0].font = Font(bold=True)
    ws.column_dimensions["A"].width = 34
    ws.column_dimensions["B"].width = 30
    ws.column_dimensions["C"].width = 14
    _print_setup(ws, run_id, one_page=True, header_rows="1:2")


def render_xlsx(report: RunReport) -> bytes:
    """The workpaper auditors open and print: Summary (the verdict) first, then Control
    totals, Locations, Posted, Rejected and Reconciliation, each footing with SUM formulas."""
    from openpyxl import Workbook

    wb = Workbook()
    _summary_sheet(wb.active, report)
    run_id = str(report.summary["run_id"])
    control = report.control.drop(columns=["identity"], errors="ignore")
    control = (
        control[[c for c in control.columns if c != "ties_out"] + ["ties_out"]]
        if len(control)
        else control
    )
    # Files, locations and the run are different cuts of the same money: the total is of the
    # file rows, and it foots to the run row above it.
    _sheet(wb, "Control totals", control, run_id, one_page=True, sum_where=("level", "file"))
    _sheet(
        wb, "Locations", report.by_location.drop(columns=["location_id"], errors="ignore"), run_id
    )
    posted = report.posted.drop(columns=["archived"], errors="ignore")
    _sheet(wb, "Posted", posted, run_id)
    _sheet(wb, "Rejected", rejected_rows(report.rejected), run_id)
    recon_columns = [
        "source_file",
        "source_rows",
        "kind",
        "location",
        "key",
        "party",
        "amount_cents",
        "propexo_amount_cents",
        "state",
        "propexo_id",
        "note",
    ]
    recon = report.posted[recon_columns] if not report.posted.empty else report.posted
    _sheet(wb, "Reconciliation", recon, run_id)
    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()
