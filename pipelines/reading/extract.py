"""Extract: read a CSV or XLSX export into a raw frame of canonical columns.

Cells are read as text (CSV) or as the workbook stores them (XLSX), never converted on the way:
``'0324'`` stays a string, a 15-digit lease number is not turned into a float. Every physical
row of the sheet ends up either in ``rows`` (data) or in ``skipped`` with its kind.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date

import pandas as pd
import pyarrow.compute as pc

from pipelines.core.columns import arrow_text
from pipelines.core.errors import InputError, UnknownLayout
from pipelines.core.hints import AliasHints
from pipelines.core.models import ExtractResult, SourceFile
from pipelines.core.parsing import parse_dates
from pipelines.reading.grain import (
    NOT_CURRENT,
    grain_findings,
    not_an_input,
    not_current_rows,
)
from pipelines.reading.grids import DEFAULT_LIMITS, Limits, read_grids
from pipelines.reading.layout import (
    HEADER_SCAN_ROWS,
    Layout,
    cell_names,
    describe_layout,
    detect_layout,
    header_candidates,
    match_layout,
)
from pipelines.reading.profiles import Profile, normalize_header
from pipelines.reading.rowkinds import classify_rows
from pipelines.reading.shapes import (
    cell_text,
    fill_down,
    first_texts,
    likely_header,
    sheet_rank,
    title_block_lines,
    what_it_is,
)
from pipelines.reading.totals import amount_columns, file_totals, unlabelled_totals

SKIPPED_COLUMNS = ["source_row", "kind", "text"]
_MONTHS = {
    m: i
    for i, m in enumerate(
        [
            "january",
            "february",
            "march",
            "april",
            "may",
            "june",
            "july",
            "august",
            "september",
            "october",
            "november",
            "december",
        ],
        start=1,
    )
}


# --- reading ------------------------------------------------------------------------------------


# --- layout -------------------------------------------------------------------------------------


# --- rows ---------------------------------------------------------------------------------------


def find_period(title_text: str, patterns: tuple[str, ...]) -> date | None:
    """The billing period a report's title names ("As of 12/01/2026", "for December 2026")."""
    for pattern in patterns:
        match = re.search(pattern, title_text)
        if not match:
            continue
        groups = match.groupdict()
        if groups.get("date"):
            iso, _ = parse_dates(pd.Series([groups["date"]], dtype=object))
            if pd.notna(iso.iloc[0]):
                parsed = date.fromisoformat(str(iso.iloc[0]))
                return parsed.replace(day=1)
        month = _MONTHS.get(str(groups.get("month", "")).lower())
        if groups.get("mnum") and 1 <= int(groups["mnum"]) <= 12:
            month = int(groups["mnum"])
        if month and groups.get("year"):
            year = int(groups["year"])
            return date(year + 2000 if year < 100 else year, month, 1)  # "01/24": 2024
    return None


_NAME_PERIODS = (
    # rentroll_2027-01.csv, RentRoll 2027_01.xlsx
    re.compile(r"(?<!\d)(?P<year>20\d\d)[-_. ](?P<month>0[1-9]|1[0-2])(?!\d)"),
    # RentRoll-20270115.csv
    re.compile(r"(?<!\d)(?P<year>20\d\d)(?P<month>0[1-9]|1[0-2])(?:[0-2]\d|3[01])(?!\d)"),
    # rent roll 01.15.2027.csv
    re.compile(r"(?<!\d)(?P<month>0?[1-9]|1[0-2])[-_.](?:\d{1,2})[-_.](?P<year>20\d\d)(?!\d)"),
)


# A title line that names one property: "Properties: Oak Ridge Apartments", "Property: Maple
# Court", or Yardi's "Lakeview Terrace (lake)". "Properties: All" names none.
TITLE_PROPERTY = (
    r"^\s*propert(?:y|ies)\s*(?:name)?\s*[:=]\s*(?P<name>.+?)\s*$",
    r"^\s*(?P<name>[A-Za-z][^():=]*?)\s*\((?P<code>[\w.-]{1,20})\)\s*$",
)


def property_from_title(lines: list[str]) -> str | None:
    """The one property a title block names, else None (none, several, or "All")."""
    found = {
        match.group("name").strip()
        for line in lines
        for pattern in TITLE_PROPERTY
        if (match := re.match(pattern, line, flags=re.IGNORECASE))
    }
    found = {
        name
        for name in found
        if name.lower() not in {"all", "all properties"} and not re.search(REPORT_WORDS, name)
    }
    return found.pop() if len(found) == 1 else None


# A title line that is the report's own name, not a property's ("Rent Roll (detail)").
REPORT_WORDS = (
    r"(?i)\b(rent\s*roll|report|register|aging|ledger|summary|detail|charges|statement|"
    r"export|as\s+of|period)\b"
)


def own_period(extract: ExtractResult) -> tuple[date | None, str]:
    """The period a file states itself, and where: its title, else a date in its name."""
    if extract.period is not None:
        return extract.period, "title"
    return period_from_name(extract.source.name), "file name"


def period_from_name(name: str) -> date | None:
    """The month a file name states (``YYYY-MM``, ``YYYYMMDD``, ``MM.DD.YYYY``), if it does."""
    for pattern in _NAME_PERIODS:
        match = pattern.search(name)
        if match:
            return date(int(match["year"]), int(match["month"]), 1)
    return None


def extract_file(
    source: SourceFile,
    profiles: list[Profile],
    *,
    profile_name: str | None = None,
    limits: Limits = DEFAULT_LIMITS,
    known_codes: frozenset[str] = frozenset(),
    hints: AliasHints | None = None,
) -> ExtractResult:
    """Read one file: find the sheet, header and profile, and split data rows from non-data rows.

    ``known_codes``: normalized names of Propexo's charge codes and their aliases (online), which
    make a column of that name a charge column besides the profile's vocabulary."""
    notices: list[str] = []
    grids = read_grids(source.path, limits, notices)
    # Every sheet is considered; the one whose header best matches a profile is the data
    # (a workbook's "Notes" or "Summary" sheet is not).
    # Of sheets a profile reads equally well, the export's own: the one with a title block,
    # a total row and the most rows, never a hand-edited copy of it, whatever their order.
    read: list[tuple[str | None, pd.DataFrame, Layout]] = []
    for sheet, grid in grids:
        if grid.empty:
            continue
        table = grid.dropna(how="all", axis=1)
        layout = detect_layout(table, profiles, source.name, profile_name, known_codes)
        if layout is not None:
            read.append((sheet, table, layout))
    best: tuple[tuple[int, ...], str | None, pd.DataFrame, Layout] | None = None
    for sheet, table, layout in read:
        # One sheet read (most files): nothing to rank it against, so its rows are not scanned.
        rank = (*layout.score, *(sheet_rank(table, layout.header_rows) if len(read) > 1 else ()))
        if best is None or rank > best[0]:
            best = (rank, sheet, table, layout)
    if best is not None:
        result = _extract_sheet(source, best[1], best[2], best[3], limits, known_codes)
        return replace(result, notices=tuple(notices)) if notices else result
    _refuse_if_not_an_input(
        source.name,
        [
            (t, (r,))
            for _, g in grids
            if not g.empty
            for t in [g.dropna(how="all", axis=1)]
            if (r := likely_header(t)) is not None
        ],
    )
    _refuse_if_no_charge_column(
        source.name, grids, profiles, profile_name, known_codes, hints or AliasHints()
    )
    found = _headers_seen(grids)
    names = ", ".join(p.name for p in profiles if profile_name in (None, p.name)) or "none"
    if all(g.empty for _, g in grids):
        raise InputError(f"{source.name}: the file has no rows")
    raise UnknownLayout(
        f"{source.name}: no header row matches a known export format. "
        f"Headers found: {found or 'none'}. Profiles tried: {names}. "
        f"Draft a profile with `tieout profile init {source.name}`, or rename the columns "
        "to the template's."
    )


def _refuse_if_no_charge_column(
    name: str,
    grids: list[tuple[str | None, pd.DataFrame]],
    profiles: list[Profile],
    profile_name: str | None,
    known_codes: frozenset[str],
    hints: AliasHints,
) -> None:
    """A rent roll whose header a profile reads, but with no column known to be a charge, is
    refused saying so (and which columns it has), not as an unknown format."""
    for _, grid in grids:
        if grid.empty:
            continue
        table = grid.dropna(how="all", axis=1)
        for rows, cells, leaves in header_candidates(table):
            for profile in profiles:
                if profile_name not in (None, profile.name) or profile.charge_mode != "columns":
                    continue
                if profile.title_patterns or profile.charge_columns_only:
                    continue  # a narrow profile claims only files with its own marks
                layout = match_layout(
                    profile, rows, cells, leaves, known_codes, allow_no_charges=True
                )
                if layout is None:
                    continue
                others = ", ".join(repr(h) for h in layout.other_columns.values()) or "none"
                example = next(iter(layout.other_columns.values()), "<header>")
                raise InputError(
                    f"{name}: its header (row {rows[-1] + 1}) reads as {profile.name}, but no "
                    f"column is known to be a charge; other columns: {others}. If a column is "
                    f"a charge, run: {hints.add('charge_code', example, '<Propexo charge code>')} "
                    f"(it adds a line to {hints.file('charge_code')}), or add it to the "
                    "profile's [charges] include"
                )


def _refuse_if_not_an_input(name: str, sheets: list[tuple[pd.DataFrame, tuple[int, ...]]]) -> None:
    """A report that is not an input (a directory, census, vacancy report, budget, leasing
    activity, general ledger, work order log, a roll of daily rates) is refused saying what
    it is, never with advice to map it. ``sheets``: each sheet with its header rows."""
    for table, header_rows in sheets:
        top = cell_text(table.head(header_rows[-1] + 1))
        headers = [
            " ".join(dict.fromkeys(str(c) for c in top.iloc[list(header_rows), i] if c))
            for i in range(top.shape[1])
        ]
        title = title_block_lines(top.iloc[: header_rows[0]])
        finding = not_an_input(title, headers)
        if finding is not None:
            inputs = (
                ""
                if finding.check == "daily rates"
                else ": tieout reads rent rolls (one row per resident, or one per charge) and "
                "vendor bill exports"
            )
            raise InputError(f"{name}: {finding.message}. Nothing in it was posted{inputs}")


def _headers_seen(grids: list[tuple[str | None, pd.DataFrame]]) -> str:
    for _, grid in grids:
        top = grid.head(HEADER_SCAN_ROWS).fillna("").astype(str)
        # The likely header names the most *different* columns: a title merged across the
        # sheet repeats one text in every cell, and a data row holds numbers.
        counts = [
            len({c.strip() for c in row if re.search(r"[A-Za-z]", c)})
            for row in top.itertuples(index=False)
        ]
        if counts and max(counts) > 1:
            row = top.iloc[counts.index(max(counts))]
            return ", ".join(repr(c) for c in dict.fromkeys(row) if c)[:400]
    return ""


def _too_long(cells: pd.Series, limit: int) -> int | None:
    """The length in characters of the longest cell when it is over ``limit``, else None
    (bytes are counted first: within the limit in bytes is within it in characters)."""
    array = arrow_text(cells)
    if (pc.max(pc.binary_length(array)).as_py() or 0) <= limit:
        return None
    longest = int(pc.max(pc.utf8_length(array)).as_py() or 0)
    return longest if longest > limit else None


def _extract_sheet(
    source: SourceFile,
    sheet: str | None,
    grid: pd.DataFrame,
    layout: Layout,
    limits: Limits = DEFAULT_LIMITS,
    known_codes: frozenset[str] = frozenset(),
) -> ExtractResult:
    grid = grid.reset_index(drop=True)
    names_of_cells = cell_names(grid.columns, layout)
    grid.columns = pd.RangeIndex(grid.shape[1])
    text = cell_text(grid)
    over = [n for c in text.columns if (n := _too_long(text[c], limits.max_cell_chars))]
    if over:
        raise InputError(
            f"{source.name}: a cell holds {max(over):,} characters; the limit is "
            f"{limits.max_cell_chars:,}"
        )
    nonblank = (text != "").any(axis=1)
    last = int(nonblank[nonblank].index.max()) + 1 if nonblank.any() else 0
    grid, text = grid.iloc[:last], text.iloc[:last]
    header_start, header_end = layout.header_rows[0], layout.header_rows[-1]

    above = text.iloc[:header_start]
    # A title cell may hold several lines ("Rent Roll with Lease Charges\nOak Ridge (oakr)
    # \nAs Of = ..."): each is a line of the title, as if it had its own row.
    title_lines = title_block_lines(above)
    title_text = " ".join(title_lines)
    skipped_parts = [
        pd.DataFrame(
            {
                "source_row": above.index + 1,
                "kind": ["title" if any(r) else "blank" for r in above.itertuples(index=False)],
                "text": [
                    " ".join(dict.fromkeys(v for v in r if v))[:200]
                    for r in above.itertuples(index=False)
                ],
            }
        ),
        pd.DataFrame(
            {"source_row": [r + 1 for r in layout.header_rows], "kind": "header", "text": ""}
        ),
    ]
    body = grid.iloc[header_end + 1 :]
    body_text = text.iloc[header_end + 1 :]
    kinds = classify_rows(body, body_text, layout)
    kinds = unlabelled_totals(body, body_text, kinds, layout)
    # The file's own totals count every resident's row; only current residents are charged.
    totals_kinds, kinds = kinds, _skip_not_current(body_text, kinds, layout)
    non_data = kinds.ne("data")
    joined = body_text[non_data].apply(lambda r: " ".join(v for v in r if v)[:200], axis=1)
    skipped_parts.append(
        pd.DataFrame(
            {
                "source_row": body.index[non_data] + 1,
                "kind": kinds[non_data],
                "text": joined if len(joined) else pd.Series(dtype=object),
            }
        )
    )

    rows = _joined(
        pd.DataFrame({name: body[col] for col, name in layout.columns.items()}), body, layout
    )
    profile = layout.profile
    rows = fill_down(rows, non_data, profile)
    if profile.group_sets:
        groups = (
            first_texts(body_text)
            .where(kinds.eq("group"))
            .str.replace(r"^\s*->\s*", "", regex=True)
        )
        if profile.group_strip:
            groups = groups.str.replace(profile.group_strip, "", regex=True).str.strip()
        groups = groups.ffill()
        current = rows.get(profile.group_sets, pd.Series("", index=rows.index)).astype(object)
        fill = current.isna() | current.astype(str).str.strip().eq("")
        rows[profile.group_sets] = current.where(~fill, groups)
    rows = rows[~non_data]
    rows.insert(0, "source_row", (rows.index + 1).astype("int64"))
    # A column its profile ignores by name (a confirmed layout's --not-charge: a person's word)
    # is still shown with its money, marked so nothing advises charging it.
    not_charged = tuple(
        {**column, "by_layout": True} if profile.known_not_charge(column["header"]) else column
        for column in amount_columns(body.loc[~non_data], layout.other_columns)
    )
    totals = file_totals(body, totals_kinds, layout)
    if layout.charge_columns:
        wide = body.loc[~non_data, list(layout.charge_columns)]
        wide.columns = list(layout.charge_columns.values())
        rows = pd.concat([rows, wide], axis=1)
    rows = rows.reset_index(drop=True)
    skipped = (
        pd.concat([p for p in skipped_parts if len(p)], ignore_index=True)
        if any(len(p) for p in skipped_parts)
        else pd.DataFrame(columns=SKIPPED_COLUMNS)
    )
    skipped = skipped.astype({"source_row": "int64"}).sort_values("source_row", ignore_index=True)
    return ExtractResult(
        source=source,
        profile=profile.name,
        kind=profile.kind,
        sheet=sheet,
        rows=rows,
        skipped=skipped,
        rows_read=last,
        period=find_period(title_text, profile.period_patterns),
        title=title_text,
        title_property=property_from_title(title_lines),
        charge_columns=tuple(layout.charge_columns.values()),
        vacant_patterns=profile.vacant_patterns,
        columns_not_charged=not_charged,
        file_totals=totals,
        cells=names_of_cells,
        header_rows=tuple(r + 1 for r in layout.header_rows),
        layout=describe_layout(
            layout, sheet, (text.iloc[header_start:] != "").any(axis=0).tolist(), known_codes
        ),
        grain=what_it_is(
            grain_findings(rows, body_text[kinds.isin(["data", NOT_CURRENT])], layout),
            not_an_input(title_lines, list(layout.cells), read=True),
        ),
    )


def _joined(rows: pd.DataFrame, body: pd.DataFrame, layout: Layout) -> pd.DataFrame:
    for name, headers in layout.profile.join.items():
        rows[name] = joined_cells(body, layout.cells, headers)
    return rows


def joined_cells(body: pd.DataFrame, cells: tuple[str, ...], headers: tuple[str, ...]) -> pd.Series:
    """The cells of several columns as one (a profile's ``[join]``): "Last, First" when both
    are filled, whichever is filled otherwise."""
    names = [normalize_header(c) for c in cells]
    parts = [
        body[names.index(h)].astype(object).where(body[names.index(h)].notna(), "").astype(str)
        for h in map(normalize_header, headers)
        if h in names
    ]
    if not parts:
        return pd.Series(pd.NA, index=body.index, dtype=object)
    first = parts[0].str.strip()
    rest = pd.concat([first.map(lambda _: ""), *parts[1:]], axis=1).agg(" ".join, axis=1)
    rest = rest.str.strip()
    both = (first + ", " + rest).where(first.ne("") & rest.ne(""), first + rest)
    return both.where(both.ne(""), pd.NA)


def _skip_not_current(body_text: pd.DataFrame, kinds: pd.Series, layout: Layout) -> pd.Series:
    """Rows of residents who are gone, or not there yet, become skipped rows of their kind."""
    gone = not_current_rows(body_text, layout) & kinds.eq("data")
    return kinds.where(~gone, NOT_CURRENT) if gone.any() else kinds
