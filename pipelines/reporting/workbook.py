"""The run report as an XLSX workpaper (openpyxl): a Summary first, one sheet per table, totals
as formulas so an auditor can re-foot them, print setup for paper."""

from __future__ import annotations

import io
import json
from datetime import date
from typing import Any

import pandas as pd

from pipelines.core.models import printable
from pipelines.core.parsing import dollars
from pipelines.core.sheets import neutralize
from pipelines.reporting.report import RunReport, blank, rejected_rows

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
    "stated_total_cents": "Stated in the file",
    "file_totals": "The file's own total rows",
    "identity": "Identity",
    "previously_posted_by": "Previously posted in run",
    "rent_manager_id": "Rent Manager id",
    "gl_account": "GL account",
    "line_amount_cents": "Line amount",
    "cell": "Cell",
    "amount_as_read": "As in the file",
    "first_seen": "First seen",
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
    return _text(neutralize(value))


def _text(value: Any) -> Any:
    """Text with its control characters escaped: openpyxl refuses them (IllegalCharacterError),
    and a file's name or cell may hold one."""
    return printable(value) if isinstance(value, str) else value


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


def _width(column: str, frame: pd.DataFrame, foot_cents: int | None) -> int:
    """A column wide enough for what it shows when printed: money as formatted (a Total of
    87,668.63 in bold needs more than the cents' digits), never ``###``."""
    values = frame[column].head(300)
    if column.endswith("_cents"):
        shown = [dollars(v) for v in values] + ([dollars(foot_cents)] if foot_cents else [])
        return min(48, max(12, len(header_of(column)) + 2, *(len(v) + 4 for v in shown)))
    sample = [header_of(column)] + [str(v) for v in values if v is not None]
    return min(48, max(9, *(len(v) + 2 for v in sample)))


def _group_labels(ws: Any, columns: list[str], groups: tuple[tuple[str, list[str]], ...]) -> None:
    """A row above the headers naming each group of columns, merged across the group."""
    from openpyxl.styles import Alignment, Font

    ws.append([None] * len(columns))
    for label, members in groups:
        places = [columns.index(c) + 1 for c in members if c in columns]
        if not places:
            continue
        first, last = min(places), max(places)
        ws.cell(1, first, label).font = Font(bold=True)
        ws.cell(1, first).alignment = Alignment(horizontal="center")
        if last > first:
            ws.merge_cells(start_row=1, start_column=first, end_row=1, end_column=last)


def _day(value: Any) -> date | None:
    """An ISO time stamp's day, or None."""
    stamp = pd.to_datetime(str(value), utc=True, errors="coerce") if value else pd.NaT
    return None if pd.isna(stamp) else stamp.date()


def _sheet(
    wb: Any,
    title: str,
    frame: pd.DataFrame,
    run_id: str,
    one_page: bool = False,
    sum_where: tuple[str, str] | None = None,
    groups: tuple[tuple[str, list[str]], ...] = (),
) -> tuple[Any, dict[str, str]]:
    """A table as a workpaper sheet: human headers, typed cells, a Total row of SUM formulas
    under every money column, frozen header, filters and print setup. ``sum_where`` (column,
    value): total only the rows holding that value (SUMIF), where the rows are of several
    levels and a plain sum would count money twice; a column those rows leave empty gets no
    total (it is footed on the sheet of its own level). ``groups``: (label, columns) written
    above the headers, so two columns of one name (an amount and a count) say which they are.
    Returns the sheet and, per money column, the cell holding its total."""
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    ws = wb.create_sheet(title)
    columns = list(frame.columns)
    if groups:
        _group_labels(ws, columns, groups)
    header_row = ws.max_row + 1 if groups else 1
    first_data = header_row + 1
    for i, column in enumerate(columns, start=1):
        ws.cell(header_row, i, _text(header_of(column))).font = Font(bold=True)
    for row in frame.itertuples(index=False):
        ws.append([_cell(c, v) for c, v in zip(columns, row, strict=True)])
    last = ws.max_row
    money = [i for i, c in enumerate(columns, start=1) if c.endswith("_cents")]
    feet: dict[str, str] = {}
    foot_cents: dict[str, int] = {}
    if money and len(frame):
        ws.append([])
        total_row = ws.max_row + 1
        label = "Total" if sum_where is None else f"Total of the {sum_where[1]} rows"
        ws.cell(total_row, 1, label).font = Font(bold=True)
        summed = frame if sum_where is None else frame[frame[sum_where[0]].eq(sum_where[1])]
        for i in money:
            column = columns[i - 1]
            values = pd.to_numeric(summed[column], errors="coerce")
            if sum_where is not None and values.isna().all():
                continue
            letter = get_column_letter(i)
            span = f"{letter}{first_data}:{letter}{last}"
            if sum_where is None:
                formula = f"=SUM({span})"
            else:
                key = get_column_letter(columns.index(sum_where[0]) + 1)
                keys = f"{key}{first_data}:{key}{last}"
                formula = f'=SUMIF({keys},"{sum_where[1]}",{span})'
            cell = ws.cell(total_row, i, formula)
            cell.font = Font(bold=True)
            cell.number_format = MONEY_FORMAT
            feet[column] = f"{letter}{total_row}"
            foot_cents[column] = int(values.fillna(0).sum())
    for i, column in enumerate(columns, start=1):
        letter = get_column_letter(i)
        fmt = (
            MONEY_FORMAT
            if column.endswith("_cents")
            else DATE_FORMAT
            if column in {"date", "transaction_date", "period"}
            else None
        )
        if fmt:
            for cell in ws[letter][header_row:]:
                cell.number_format = fmt
        ws.column_dimensions[letter].width = _width(column, frame, foot_cents.get(column))
    ws.freeze_panes = f"A{first_data}"
    if columns:
        ws.auto_filter.ref = (
            f"A{header_row}:{get_column_letter(len(columns))}{max(last, header_row)}"
        )
    _print_setup(ws, run_id, one_page=one_page, header_rows=f"1:{header_row}")
    return ws, feet


def _link(sheet: str, cell: str | None) -> str | None:
    """A Summary figure as a formula reading the sheet it summarises (``='Posted'!K52``)."""
    return f"='{sheet}'!{cell}" if cell else None


def _summary_sheet(ws: Any, report: RunReport, links: dict[str, str | None]) -> None:
    """The verdict, then the run's figures: each money figure a formula reading the foot of
    the sheet it summarises (``links``: figure → formula), a tickmark legend, and a
    prepared / reviewed block for the person who signs the workpaper."""
    from openpyxl.styles import Font

    s = report.summary
    run_id = str(s["run_id"])
    p = s.get("provenance", {})
    ws.title = "Summary"
    ws.append(["tieout run", run_id])
    ws.append(["Verdict", str(s.get("verdict", "")).capitalize()])
    ws["B2"].font = Font(bold=True)
    for reason in s.get("verdict_reasons", []):
        ws.append([_text(f"  {reason['reason']}"), reason["count"], reason["amount_cents"] / 100])
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
        ("Source total", "source", t["source_total_cents"]),
        ("Posted total", "posted", t["posted_total_cents"]),
        ("Rejected total", "rejected", t["rejected_total_cents"]),
        ("Matched in Propexo", "matched", s["reconciliation"]["matched_total_cents"]),
    ]
    for label, figure, cents in money_rows:
        formula = links.get(figure)
        ws.append([label, formula if formula else cents / 100, "=" if formula else None])
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
        ws.append([_text(f"File {f['name']}"), f["sha256"]])
    ws.append([])
    ws.append(["Tickmarks"])
    legend = (
        ("Σ", "footed: a Total row is a SUM formula over the rows above it"),
        ("=", "linked: the figure is a formula reading the foot of the sheet it summarises"),
        ("yes", "Check holds: the row's identity (its formula in the report) holds to the cent"),
    )
    for mark, meaning in legend:
        ws.append([f"  {mark}", meaning])
    ws.append([])
    prepared_on = _day(s.get("finished_at"))
    reviews = s.get("signoffs") or []
    ws.append(["Prepared by", f"tieout {p.get('tieout_version', '')} (automated)".strip()])
    ws.append(["Prepared on", prepared_on])
    ws.cell(ws.max_row, 2).number_format = DATE_FORMAT
    review = reviews[-1] if reviews else {}
    ws.append(["Reviewed by", review.get("by", "")])
    ws.append(["Reviewed on", _day(review.get("at"))])
    ws.cell(ws.max_row, 2).number_format = DATE_FORMAT
    if review.get("changed_since"):
        ws.append(["Changed since sign-off", "yes: the figures differ from those signed"])
    if s.get("figures_sha256"):
        ws.append(["Figures sha256", s["figures_sha256"]])
    for row in ws.iter_rows(min_col=1, max_col=1):
        row[0].font = Font(bold=True)
    ws.column_dimensions["A"].width = 46
    ws.column_dimensions["B"].width = 30
    ws.column_dimensions["C"].width = 14
    _print_setup(ws, run_id, one_page=True, header_rows="1:2")


# The records sheet prints one page wide at a readable size: who, what, when, how much and
# where it stands; the ids and notes are on the detail sheet, row for row.
POSTED_PRINTED = [
    "source_file",
    "source_rows",
    "kind",
    "property",
    "unit",
    "party",
    "charge_code",
    "date",
    "amount_cents",
    "state",
]
POSTED_DETAIL = [
    "source_file",
    "source_rows",
    "sheet",
    "location",
    "key",
    "propexo_amount_cents",
    "job_id",
    "propexo_id",
    "rent_manager_id",
    "previously_posted_by",
    "defaulted",
    "note",
]
LINE_COLUMNS = [
    "source_file",
    "key",
    "source_row",
    "gl_account",
    "property",
    "line_amount_cents",
    "cell",
    "amount_as_read",
]
ITEM_COLUMNS = ["cause", "file", "rows", "what", "amount_cents", "amount_text", "first_seen"]


def invoice_lines(report: RunReport) -> pd.DataFrame:
    """Each invoice line: its GL account, property and amount, and the cell it came from
    (from each record's lineage)."""
    rows = [
        {
            "source_file": t.get("file"),
            "key": t.get("invoice_number") or t.get("reference_number"),
            "source_row": line.get("row"),
            "gl_account": line.get("gl_account") or line.get("financial_account_id"),
            "property": line.get("property") or line.get("property_id"),
            "line_amount_cents": line.get("amount_cents"),
            "cell": (line.get("cells") or {}).get("amount"),
            "amount_as_read": (line.get("as_read") or {}).get("amount"),
        }
        for t in report.summary.get("lineage") or []
        for line in t.get("lines") or []
    ]
    return pd.DataFrame(rows, columns=LINE_COLUMNS)


def open_items(report: RunReport) -> pd.DataFrame:
    """The items still at stake (open): what each is, where, and how much."""
    rows = [
        {
            "cause": str(i.get("cause") or "").replace("_", " "),
            "file": i.get("file"),
            "rows": ", ".join(str(r) for r in i.get("rows") or []),
            "what": f'"{i["name"]}"' if i.get("name") else "; ".join(i.get("reasons") or []),
            "amount_cents": i.get("amount_cents"),
            "amount_text": i.get("amount_text"),
            "first_seen": str(i.get("first_seen") or "")[:19].replace("T", " "),
        }
        for i in report.summary.get("items") or []
        if i.get("state") == "open"
    ]
    return pd.DataFrame(rows, columns=ITEM_COLUMNS)


SETTLEMENT_COLUMNS = [
    "id",
    "cause",
    "file",
    "rows",
    "amount_cents",
    "state",
    "settled_by",
    "settled_at",
    "settled_in_run",
    "note",
]


def settlements(report: RunReport) -> pd.DataFrame:
    """The items settled or superseded: by which run, or by whom, when, with the note."""
    rows = [
        {
            "id": i.get("id"),
            "cause": str(i.get("cause") or "").replace("_", " "),
            "file": i.get("file"),
            "rows": ", ".join(str(r) for r in i.get("rows") or []),
            "amount_cents": i.get("amount_cents"),
            "state": i.get("state"),
            "settled_by": i.get("decided_by"),
            "settled_at": str(i.get("state_at") or "")[:19].replace("T", " "),
            "settled_in_run": i.get("settled_in_run"),
            "note": i.get("note"),
        }
        for i in report.summary.get("items") or []
        if i.get("state") != "open"
    ]
    return pd.DataFrame(rows, columns=SETTLEMENT_COLUMNS)


LOCATION_COUNTS = [
    "matched",
    "awaiting_sync",
    "missing",
    "mismatched",
    "duplicated",
    "unverifiable",
]


def render_xlsx(report: RunReport) -> bytes:
    """The workpaper auditors open and print: Summary (the verdict) first, then Control
    totals, Locations, Posted (and its detail), Invoice lines, Rejected, Open items and
    Reconciliation, each footing with SUM formulas that the Summary's figures read."""
    from openpyxl import Workbook

    wb = Workbook()
    summary_ws = wb.active
    run_id = str(report.summary["run_id"])
    control = report.control.drop(columns=["identity"], errors="ignore")
    control = (
        control[[c for c in control.columns if c != "ties_out"] + ["ties_out"]]
        if len(control)
        else control
    )
    # Files, locations and the run are different cuts of the same money: the total is of the
    # file rows, and it foots to the run row above it.
    _, control_feet = _sheet(
        wb, "Control totals", control, run_id, one_page=True, sum_where=("level", "file")
    )
    locations = report.by_location.drop(columns=["location_id"], errors="ignore")
    amounts = [c for c in locations.columns if c.endswith("_cents")]
    counts = [c for c in LOCATION_COUNTS if c in locations.columns]
    _, location_feet = _sheet(
        wb,
        "Locations",
        locations,
        run_id,
        groups=(("Amounts", amounts), ("Counts", counts)),
    )
    posted = report.posted
    _sheet(wb, "Posted", posted.reindex(columns=POSTED_PRINTED), run_id)
    _sheet(wb, "Posted detail", posted.reindex(columns=POSTED_DETAIL), run_id)
    _sheet(wb, "Invoice lines", invoice_lines(report), run_id)
    _sheet(wb, "Rejected", rejected_rows(report.rejected), run_id)
    _sheet(wb, "Open items", open_items(report), run_id)
    _sheet(wb, "Settlements", settlements(report), run_id)
    recon_columns = [
        "source_file",
        "source_rows",
        "kind",
        "property",
        "key",
        "party",
        "amount_cents",
        "propexo_amount_cents",
        "state",
        "previously_posted_by",
    ]
    recon = posted.reindex(columns=recon_columns)
    _sheet(wb, "Reconciliation", recon, run_id)
    links = {
        "source": _link("Control totals", control_feet.get("source_total_cents")),
        "posted": _link("Control totals", control_feet.get("posted_total_cents")),
        "rejected": _link("Control totals", control_feet.get("rejected_total_cents")),
        "matched": _link("Locations", location_feet.get("matched_cents")),
    }
    _summary_sheet(summary_ws, report, links)
    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()
