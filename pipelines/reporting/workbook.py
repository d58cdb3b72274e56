"""The run report as an XLSX workpaper (xlsxwriter, streamed): a Summary first, one sheet per
table, totals as formulas so an auditor can re-foot them, print setup for paper."""

from __future__ import annotations

import io
import json
import math
from datetime import date
from typing import Any

import pandas as pd
from xlsxwriter.utility import _preserve_whitespace

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


class _Book:
    """A workbook written as it goes (xlsxwriter, ``constant_memory``: each sheet's rows are
    flushed to a temporary file as they are written, so a workbook of a million records never
    holds them all), with the few cell formats the workpaper uses, made once."""

    def __init__(self) -> None:
        import xlsxwriter

        self.buffer = io.BytesIO()
        self.wb = xlsxwriter.Workbook(
            self.buffer, {"constant_memory": True, "strings_to_formulas": False}
        )
        add = self.wb.add_format
        self.bold = add({"bold": True})
        self.label = add({"bold": True, "align": "center"})
        self.formats: dict[str | None, Any] = {
            None: None,
            MONEY_FORMAT: add({"num_format": MONEY_FORMAT}),
            DATE_FORMAT: add({"num_format": DATE_FORMAT}),
            TIME_FORMAT: add({"num_format": TIME_FORMAT}),
        }
        self.bold_money = add({"bold": True, "num_format": MONEY_FORMAT})
        # Each format's index in the file fixed now, in this order, whichever cell uses it
        # first (rows written as XML by _stream_rows name the index before xlsxwriter would).
        for fmt in (self.bold, self.label, *list(self.formats.values())[1:], self.bold_money):
            fmt._get_xf_index()

    def close(self) -> bytes:
        self.wb.close()
        return self.buffer.getvalue()


def _put(ws: Any, row: int, column: int, value: Any, fmt: Any = None) -> None:
    """One cell (0-based), written as openpyxl would type it: text of more than "=" that starts
    with "=" is a formula, a date a date, a number a number, nothing a blank (kept only when
    formatted; openpyxl kept an empty text so)."""
    if value is None or value == "":
        if fmt is not None:
            ws.write_blank(row, column, None, fmt)
    elif isinstance(value, str):
        if len(value) > 1 and value.startswith("="):
            ws.write_formula(row, column, value, fmt)
        else:
            ws.write_string(row, column, value, fmt)
    elif isinstance(value, bool):
        ws.write_boolean(row, column, value, fmt)
    elif isinstance(value, int | float):
        ws.write_number(row, column, value, fmt)
    elif isinstance(value, date):
        ws.write_datetime(row, column, value, fmt)
    else:
        ws.write(row, column, value, fmt)


def _set_width(ws: Any, column: int, width: float) -> None:
    """A column's width as stored in the file, as openpyxl stored it: xlsxwriter adds its
    cell padding (5 px of a 7 px digit) to what it is given, so the padding is taken off."""
    ws.set_column(column, column, width - 5 / 7)


def _print_setup(ws: Any, run_id: str, *, one_page: bool, header_rows: tuple[int, int]) -> None:
    """Landscape, one page wide (and tall, for a short sheet), header rows (1-based, first and
    last) repeated, a footer with the run, the sheet and the page number; margins as
    openpyxl's defaults with narrow sides."""
    ws.set_landscape()
    ws.fit_to_pages(1, 1 if one_page else 0)
    ws.repeat_rows(header_rows[0] - 1, header_rows[1] - 1)
    ws.set_margins(left=0.4, right=0.4, top=1, bottom=1)
    ws.set_header("", {"margin": 0.5})
    run = run_id.replace("&", "&&")
    ws.set_footer(f"&Ltieout run {run}&C&A&RPage &P of &N", {"margin": 0.5})


def _width(column: str, frame: pd.DataFrame, foot_cents: int | None) -> int:
    """A column wide enough for what it shows when printed: money as formatted (a Total of
    87,668.63 in bold needs more than the cents' digits), never ``###``."""
    values = frame[column].head(300)
    if column.endswith("_cents"):
        shown = [dollars(v) for v in values] + ([dollars(foot_cents)] if foot_cents else [])
        return min(48, max(12, len(header_of(column)) + 2, *(len(v) + 4 for v in shown)))
    sample = [header_of(column)] + [str(v) for v in values if v is not None]
    return min(48, max(9, *(len(v) + 2 for v in sample)))


def _group_labels(
    book: _Book, ws: Any, columns: list[str], groups: tuple[tuple[str, list[str]], ...]
) -> None:
    """A row above the headers naming each group of columns, merged across the group."""
    for label, members in groups:
        places = [columns.index(c) for c in members if c in columns]
        if not places:
            continue
        first, last = min(places), max(places)
        if last > first:
            ws.merge_range(0, first, 0, last, label, book.label)
        else:
            ws.write_string(0, first, label, book.label)


def _day(value: Any) -> date | None:
    """An ISO time stamp's day, or None."""
    stamp = pd.to_datetime(str(value), utc=True, errors="coerce") if value else pd.NaT
    return None if pd.isna(stamp) else stamp.date()


def _format_of(column: str) -> str | None:
    if column.endswith("_cents"):
        return MONEY_FORMAT
    return DATE_FORMAT if column in {"date", "transaction_date", "period"} else None


def _column_cells(column: str, values: pd.Series) -> list[Any]:
    """A column's values as the workbook holds them (:func:`_cell`), each distinct value
    converted once (a column of a million records holds a few thousand distinct ones)."""
    seen: dict[tuple[type, Any], Any] = {}
    out: list[Any] = []
    for value in values.tolist():
        try:
            key = (type(value), value)
            cell = seen.get(key, seen)
        except TypeError:  # a list or dict: converted each time
            out.append(_cell(column, value))
            continue
        if cell is seen:
            cell = seen[key] = _cell(column, value)
        out.append(cell)
    return out


class _NotPlain(Exception):
    """A cell :func:`_stream_rows` leaves to xlsxwriter (a formula, a flag, a long text)."""


def _cell_xml(ws: Any, value: Any, style: str) -> str | None:
    """A cell's XML after its ``<c r="A1"``, as xlsxwriter writes it in ``constant_memory``
    mode (what :func:`_put` has it write); None where :func:`_put` writes nothing."""
    if value is None or value == "":
        return f"{style}/>" if style else None
    if isinstance(value, str):
        if (len(value) > 1 and value.startswith("=")) or len(value) > ws.xls_strmax // 2:
            raise _NotPlain
        text = ws._escape_control_characters(value)
        if text.startswith("<r>") and text.endswith("</r>"):
            raise _NotPlain
        keep = ' xml:space="preserve"' if _preserve_whitespace(text) else ""
        return f'{style} t="inlineStr"><is><t{keep}>{ws._escape_data(text)}</t></is></c>'
    if isinstance(value, bool) or not isinstance(value, int | float | date):
        raise _NotPlain
    if isinstance(value, date):
        value = ws._convert_date_time(value)
    elif not math.isfinite(value):
        raise _NotPlain
    return f"{style}><v>{value:.16G}</v></c>"


def _stream_rows(ws: Any, cells: list[list[Any]], formats: list[Any], first: int) -> bool:
    """A sheet's rows (``cells`` by column, from row ``first``, 0-based) written as one piece
    of XML each, the XML xlsxwriter writes for them cell by cell (its own writer costs 5 µs a
    cell: a report of 50,000 records has 1.6 million); False, nothing written, when a cell is
    one :func:`_put` leaves to xlsxwriter's own methods (then they write the sheet). Uses
    xlsxwriter's ``constant_memory`` internals (``fh``, ``previous_row``): tests/test_report.py
    compares every sheet with xlsxwriter's own, so an upgrade that changes them fails there."""
    from xlsxwriter.utility import xl_col_to_name

    rows = len(cells[0]) if cells else 0
    if not rows or first + rows > ws.xls_rowmax or not ws.constant_memory:
        return False
    styles = [f' s="{f._get_xf_index()}"' if f is not None else "" for f in formats]
    try:
        columns = []
        for values, style in zip(cells, styles, strict=True):
            seen: dict[tuple[type, Any], str | None] = {}
            column: list[str | None] = []
            for value in values:
                key = (type(value), value)
                if key not in seen:
                    seen[key] = _cell_xml(ws, value, style)
                column.append(seen[key])
            columns.append(column)
    except (_NotPlain, TypeError):  # TypeError: a list or a dict, unhashable
        return False
    letters = [xl_col_to_name(i) for i in range(len(cells))]
    out: list[str] = []
    last = None
    for n, row in enumerate(zip(*columns, strict=True), start=first + 1):
        written = [f'<c r="{letters[i]}{n}"{xml}' for i, xml in enumerate(row) if xml is not None]
        if written:
            out.append(f'<row r="{n}">{"".join(written)}</row>')
            last = n - 1
    if last is None:
        return True
    ws._check_dimensions(last, len(cells) - 1)
    ws._write_single_row(last)  # the row before (the headers) written; the rows' come next
    for start in range(0, len(out), 10_000):
        ws.fh.write("".join(out[start : start + 10_000]))
    return True


def _sheet(
    book: _Book,
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
    Returns the sheet and, per money column, the cell holding its total. Rows are written in
    order and flushed as they go (see :class:`_Book`)."""
    ws = book.wb.add_worksheet(title)
    columns = list(frame.columns)
    header_row = 2 if groups else 1  # rows as Excel numbers them
    first_data = header_row + 1
    last = header_row + len(frame)
    feet, foot_cents, formulas = _feet(frame, columns, sum_where, first_data, last)
    formats = [book.formats[_format_of(c)] for c in columns]
    for i, column in enumerate(columns):
        _set_width(ws, i, _width(column, frame, foot_cents.get(column)))
    ws.freeze_panes(first_data - 1, 0)
    if columns:
        ws.autofilter(header_row - 1, 0, max(last, header_row) - 1, len(columns) - 1)
    _print_setup(ws, run_id, one_page=one_page, header_rows=(1, header_row))
    if groups:
        _group_labels(book, ws, columns, groups)
    for i, column in enumerate(columns):
        ws.write_string(header_row - 1, i, _text(header_of(column)), book.bold)
    cells = [_column_cells(c, frame[c]) for c in columns]
    if not _stream_rows(ws, cells, formats, first_data - 1):
        for n, row in enumerate(zip(*cells, strict=True), start=first_data - 1):
            for i, value in enumerate(row):
                _put(ws, n, i, value, formats[i])
    if formulas:
        total_row = last  # 0-based: the row under the last
        label = "Total" if sum_where is None else f"Total of the {sum_where[1]} rows"
        ws.write_string(total_row, 0, label, book.bold)
        for i, column in enumerate(columns):
            if column in formulas:
                cents = foot_cents[column]
                ws.write_formula(total_row, i, formulas[column], book.bold_money, cents / 100)
            elif i and formats[i] is not None:
                ws.write_blank(total_row, i, None, formats[i])
    return ws, feet


def _feet(
    frame: pd.DataFrame,
    columns: list[str],
    sum_where: tuple[str, str] | None,
    first_data: int,
    last: int,
) -> tuple[dict[str, str], dict[str, int], dict[str, str]]:
    """Per money column of a sheet: the cell of its total (under its rows), what it sums to in
    cents, and its formula (SUM, or SUMIF over the ``sum_where`` rows)."""
    from xlsxwriter.utility import xl_col_to_name

    feet: dict[str, str] = {}
    foot_cents: dict[str, int] = {}
    formulas: dict[str, str] = {}
    if not len(frame):
        return feet, foot_cents, formulas
    summed = frame if sum_where is None else frame[frame[sum_where[0]].eq(sum_where[1])]
    for i, column in enumerate(columns):
        if not column.endswith("_cents"):
            continue
        values = pd.to_numeric(summed[column], errors="coerce")
        if sum_where is not None and values.isna().all():
            continue
        letter = xl_col_to_name(i)
        span = f"{letter}{first_data}:{letter}{last}"
        if sum_where is None:
            formulas[column] = f"=SUM({span})"
        else:
            key = xl_col_to_name(columns.index(sum_where[0]))
            keys = f"{key}{first_data}:{key}{last}"
            formulas[column] = f'=SUMIF({keys},"{sum_where[1]}",{span})'
        feet[column] = f"{letter}{last + 1}"
        foot_cents[column] = int(values.fillna(0).sum())
    return feet, foot_cents, formulas


def _link(sheet: str, cell: str | None) -> str | None:
    """A Summary figure as a formula reading the sheet it summarises (``='Posted'!K52``)."""
    return f"='{sheet}'!{cell}" if cell else None


def _summary_sheet(ws: Any, book: _Book, report: RunReport, links: dict[str, str | None]) -> None:
    """The verdict, then the run's figures: each money figure a formula reading the foot of
    the sheet it summarises (``links``: figure → formula), a tickmark legend, and a
    prepared / reviewed block for the person who signs the workpaper."""
    s = report.summary
    run_id = str(s["run_id"])
    p = s.get("provenance", {})
    # Each row: its cells, and the number format of its cells after the first (by column).
    rows: list[tuple[list[Any], dict[int, str]]] = []

    def add(values: list[Any], **formats: str) -> None:
        rows.append((values, {int(k[1:]): v for k, v in formats.items()}))

    add(["tieout run", run_id])
    add(["Verdict", str(s.get("verdict", "")).capitalize()])
    for reason in s.get("verdict_reasons", []):
        add(
            [_text(f"  {reason['reason']}"), reason["count"], reason["amount_cents"] / 100],
            c2=MONEY_FORMAT,
        )
    for held in s.get("held_layouts", []):
        add(
            [
                neutralize(f"  held, layout not confirmed: {held['name']}"),
                neutralize(held.get("command") or ""),
            ]
        )
    for label, value in (("Started", s.get("started_at")), ("Finished", s.get("finished_at"))):
        stamp = pd.to_datetime(value, utc=True, errors="coerce") if value else None
        shown = None if stamp is None or pd.isna(stamp) else stamp.tz_convert(None).to_pydatetime()
        add([label, shown], c1=TIME_FORMAT)
    t = s["totals"]
    money_rows = [
        ("Source total", "source", t["source_total_cents"]),
        ("Posted total", "posted", t["posted_total_cents"]),
        ("Rejected total", "rejected", t["rejected_total_cents"]),
        ("Matched in Propexo", "matched", s["reconciliation"]["matched_total_cents"]),
    ]
    for label, figure, cents in money_rows:
        formula = links.get(figure)
        add([label, formula if formula else cents / 100, "=" if formula else None], c1=MONEY_FORMAT)
    for label, key in (
        ("Rows read", "rows_read"),
        ("Rows used", "rows_used"),
        ("Rows rejected", "rows_rejected"),
        ("Rows skipped", "rows_skipped"),
    ):
        add([label, int(t[key])])
    for state, count in s["records"]["by_state"].items():
        add([f"Records {state}", int(count)])
    add(["Propexo", f"{p.get('propexo', '')} {p.get('propexo_base_url', '')}".strip()])
    add(["Integration", p.get("integration_id")])
    add(["tieout version", p.get("tieout_version")])
    for f in s["files"]:
        add([_text(f"File {f['name']}"), f["sha256"]])
    add([])
    add(["Tickmarks"])
    legend = (
        ("Σ", "footed: a Total row is a SUM formula over the rows above it"),
        ("=", "linked: the figure is a formula reading the foot of the sheet it summarises"),
        ("yes", "Check holds: the row's identity (its formula in the report) holds to the cent"),
    )
    for mark, meaning in legend:
        add([f"  {mark}", meaning])
    add([])
    reviews = s.get("signoffs") or []
    add(["Prepared by", f"tieout {p.get('tieout_version', '')} (automated)".strip()])
    add(["Prepared on", _day(s.get("finished_at"))], c1=DATE_FORMAT)
    review = reviews[-1] if reviews else {}
    add(["Reviewed by", review.get("by", "")])
    add(["Reviewed on", _day(review.get("at"))], c1=DATE_FORMAT)
    if review.get("changed_since"):
        add(["Changed since sign-off", "yes: the figures differ from those signed"])
    if s.get("figures_sha256"):
        add(["Figures sha256", s["figures_sha256"]])
    for column, width in enumerate((46, 30, 14)):
        _set_width(ws, column, width)
    _print_setup(ws, run_id, one_page=True, header_rows=(1, 2))
    for n, (values, formats) in enumerate(rows):
        _put(ws, n, 0, values[0] if values else None, book.bold)
        for i, value in enumerate(values[1:], start=1):
            fmt = book.bold if n == 1 and i == 1 else book.formats[formats.get(i)]
            _put(ws, n, i, value, fmt)


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
    book = _Book()
    summary_ws = book.wb.add_worksheet("Summary")  # first; written last, once the feet are known
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
        book, "Control totals", control, run_id, one_page=True, sum_where=("level", "file")
    )
    locations = report.by_location.drop(columns=["location_id"], errors="ignore")
    amounts = [c for c in locations.columns if c.endswith("_cents")]
    counts = [c for c in LOCATION_COUNTS if c in locations.columns]
    _, location_feet = _sheet(
        book,
        "Locations",
        locations,
        run_id,
        groups=(("Amounts", amounts), ("Counts", counts)),
    )
    posted = report.posted
    _sheet(book, "Posted", posted.reindex(columns=POSTED_PRINTED), run_id)
    _sheet(book, "Posted detail", posted.reindex(columns=POSTED_DETAIL), run_id)
    _sheet(book, "Invoice lines", invoice_lines(report), run_id)
    _sheet(book, "Rejected", rejected_rows(report.rejected), run_id)
    _sheet(book, "Open items", open_items(report), run_id)
    _sheet(book, "Settlements", settlements(report), run_id)
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
    _sheet(book, "Reconciliation", recon, run_id)
    links = {
        "source": _link("Control totals", control_feet.get("source_total_cents")),
        "posted": _link("Control totals", control_feet.get("posted_total_cents")),
        "rejected": _link("Control totals", control_feet.get("rejected_total_cents")),
        "matched": _link("Locations", location_feet.get("matched_cents")),
    }
    _summary_sheet(summary_ws, book, report, links)
    return book.close()
