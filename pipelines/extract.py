"""Extract: read a CSV or XLSX export into a raw frame of canonical columns.

Cells are read as text (CSV) or as the workbook stores them (XLSX), never converted on the way:
``'0324'`` stays a string, a 15-digit lease number is not turned into a float. Every physical
row of the sheet ends up either in ``rows`` (data) or in ``skipped`` with its kind.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import zipfile
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from pipelines.columns import any_match, arrow_text, match_flags
from pipelines.errors import InputError
from pipelines.models import ExtractResult, SourceFile
from pipelines.parsing import parse_dates
from pipelines.profiles import Profile, is_non_charge, normalize_header

HEADER_SCAN_ROWS = 40
_VALUE_LIKE = re.compile(r"^[\s$(+-]*[\d,.]+\)?$|^\d{1,4}[/-]\d{1,2}[/-]\d{1,4}")
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


def fingerprint(path: Path) -> SourceFile:
    """Name, size and sha256 of a file (the sha256 is how a re-dropped file is recognised)."""
    digest = hashlib.sha256()
    try:
        before = path.stat()
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as exc:
        raise InputError(f"{path.name}: cannot be read ({exc.strerror or exc})") from exc
    return SourceFile(
        path=path,
        name=path.name,
        sha256=digest.hexdigest(),
        size_bytes=before.st_size,
        mtime_ns=before.st_mtime_ns,
    )


@dataclass(frozen=True)
class Limits:
    """How big an input may be before it is refused (with a message saying which limit)."""

    max_file_bytes: int = 200 * 2**20
    max_rows: int = 5_000_000
    max_columns: int = 1_000
    max_cell_chars: int = 32_767  # Excel's own limit for one cell
    max_sheets: int = 100
    max_unzipped_bytes: int = 2 * 2**30
    max_zip_ratio: float = 200.0  # real workbooks compress 5-20x; bombs compress 1000x


DEFAULT_LIMITS = Limits()


def check_workbook_zip(path: Path, limits: Limits) -> None:
    """Refuse a zip bomb before any of it is decompressed."""
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise InputError(f"{path.name}: not a valid .xlsx workbook ({exc})") from exc
    unpacked = sum(i.file_size for i in infos)
    packed = max(1, sum(i.compress_size for i in infos))
    if unpacked > limits.max_unzipped_bytes or unpacked / packed > limits.max_zip_ratio:
        raise InputError(
            f"{path.name}: refused: it would unpack to {unpacked / 2**20:,.0f} MB from "
            f"{packed / 2**20:,.1f} MB, which no real export does (a zip bomb?)"
        )


def check_grid(name: str, sheet: str | None, grid: pd.DataFrame, limits: Limits) -> None:
    """Rows and columns within limits (cells are checked once their text is known)."""
    where = f"{name}" + (f" (sheet {sheet!r})" if sheet else "")
    if len(grid) > limits.max_rows:
        raise InputError(f"{where}: {len(grid):,} rows; the limit is {limits.max_rows:,}")
    if grid.shape[1] > limits.max_columns:
        raise InputError(f"{where}: {grid.shape[1]:,} columns; the limit is {limits.max_columns:,}")


# --- reading ------------------------------------------------------------------------------------


def _decode(data: bytes, name: str, partial: bool = False) -> str:
    if b"\x00" in data[:8192]:
        raise InputError(
            f"{name}: this is not a text or spreadsheet file (it contains binary data)"
        )
    for encoding in ("utf-8-sig", "cp1252", "latin-1"):
        try:
            return data.decode(encoding, errors="ignore" if partial else "strict")
        except UnicodeDecodeError:
            continue
    raise InputError(f"{name}: the text encoding could not be recognised")  # pragma: no cover


def _looks_like_text(sample: bytes) -> bool:
    """Text in an encoding tieout reads, with no control bytes but tab, CR and LF."""
    codec = _utf16_codec(sample)
    try:
        text = sample.decode(codec, errors="ignore") if codec else _decode(sample, "", partial=True)
    except InputError:
        return False
    return bool(text.strip()) and all(c >= " " or c in "\t\r\n" for c in text)


def _sniff_delimiter(sample: str) -> str:
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def _utf16_codec(data: bytes) -> str | None:
    """ "utf-16" for text that is UTF-16 (Excel's "Unicode Text" export): a byte-order mark, or,
    without one, the NUL byte of every ASCII character on the same side of each pair."""
    if data.startswith(UTF16_BOMS):
        return "utf-16"
    sample = data[:4096]
    if len(sample) >= 8 and b"\x00" in sample:
        even, odd = sample[0::2], sample[1::2]
        if even.count(0) == 0 and odd.count(0) >= len(odd) * 0.9:
            return "utf-16-le"
        if odd.count(0) == 0 and even.count(0) >= len(even) * 0.9:
            return "utf-16-be"
    return None


def read_csv_grid(path: Path) -> pd.DataFrame:
    """A CSV as a grid of strings (frame row i is record i+1 of the file).

    Well-formed UTF-8 files (rows as wide as the header, title lines above it) are read by
    Arrow's multi-threaded reader; anything else (other encodings, ragged rows in the body) by
    pandas' C reader, with the same result. UTF-16 text is read as such.
    """
    data = path.read_bytes()
    codec = _utf16_codec(data)
    if codec is not None:
        try:
            data = data.decode(codec).encode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(f"{path.name}: looks like UTF-16 text but is not ({exc})") from exc
    if not data.strip():
        raise InputError(f"{path.name}: the file is empty")
    head = _decode(data[:65536], path.name, partial=True)
    lines = head.splitlines()[:2000]
    if len(data) > 65536:
        lines = lines[:-1]  # perhaps cut mid-line
    delimiter = _sniff_delimiter("\n".join(lines[:50]))
    head_rows = list(csv.reader(lines, delimiter=delimiter))
    width = max((len(r) for r in head_rows), default=1)
    fast = _read_csv_arrow(data, delimiter, width, head_rows)
    if fast is not None:
        return fast
    text = _decode(data, path.name)
    lines = text.splitlines()
    for attempt in range(2):
        try:
            grid = pd.read_csv(
                io.StringIO(text),
                sep=delimiter,
                header=None,
                dtype=str,
                keep_default_na=False,
                names=range(width),
                skip_blank_lines=False,
                engine="c",
            )
            break
        except pd.errors.EmptyDataError as exc:
            raise InputError(f"{path.name}: the file has no rows") from exc
        except pd.errors.ParserError as exc:
            if attempt:
                raise InputError(f"{path.name}: not a readable CSV ({exc})") from exc
            width = max(len(r) for r in csv.reader(lines, delimiter=delimiter))
    return grid


def _read_csv_arrow(
    data: bytes, delimiter: str, width: int, head_rows: list[list[str]]
) -> pd.DataFrame | None:
    """The fast path of :func:`read_csv_grid`, or None when the file needs the careful one.

    Short rows are allowed only among the first records (titles above the header): they are
    taken from Python's reading of the head, and Arrow's rows must agree with it there.
    """
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if not data.isascii():
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            return None
    names = [str(i) for i in range(width)]
    short: list[str] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        short.append(row.text)
        return "skip"

    try:
        table = pacsv.read_csv(
            pa.BufferReader(data),
            read_options=pacsv.ReadOptions(column_names=names, encoding="utf8"),
            parse_options=pacsv.ParseOptions(
                delimiter=delimiter,
                newlines_in_values=True,
                ignore_empty_lines=False,
                invalid_row_handler=on_invalid,
            ),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.string()),
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None  # not UTF-8, or unbalanced quotes: pandas says what is wrong
    if not short:
        head = 0
    else:
        # The short rows must be exactly the short records at the top of the head.
        tops = [i for i, r in enumerate(head_rows) if 0 < len(r) < width]
        if len(tops) != len(short) or tops[-1] >= len(head_rows) - 1:
            return None
        head = tops[-1] + 1
    top = head_rows[:head]
    kept = [r for r in top if len(r) == width or not any(r)]
    if table.num_rows < len(kept):
        return None
    check = table.slice(0, len(kept)).to_pylist()
    if [[row[n] for n in names] for row in check] != [r if r else [""] * width for r in kept]:
        return None
    body = table.slice(len(kept)).to_pandas()
    body.columns = range(width)
    if not head:
        return body
    padded = pd.DataFrame([r + [""] * (width - len(r)) for r in top], dtype="str")
    grid = pd.concat([padded, body], ignore_index=True)
    return grid.astype("str")


def _fill_merged(grid: pd.DataFrame, merged: list[tuple[tuple[int, int], tuple[int, int]]]) -> None:
    """Give every cell of a merged range the value of its top-left cell (as a person reads it)."""
    for (r0, c0), (r1, c1) in merged:
        if r0 < len(grid) and c0 < grid.shape[1]:
            value = grid.iat[r0, c0]
            grid.iloc[r0 : r1 + 1, c0 : c1 + 1] = value


def read_xlsx_grids(path: Path, limits: Limits = DEFAULT_LIMITS) -> list[tuple[str, pd.DataFrame]]:
    """Every sheet of a workbook as a grid of cell values, merged ranges filled, with calamine
    (whose XML reader expands no entities, so entity bombs have nothing to expand)."""
    from python_calamine import CalamineError, CalamineWorkbook

    head = path.read_bytes()[:8]
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        raise InputError(
            f"{path.name}: this workbook is password-protected or in the old .xls format; "
            "open it in Excel and save it as an unprotected .xlsx"
        )
    if not zipfile.is_zipfile(path):
        raise InputError(
            f"{path.name}: not a valid .xlsx workbook (the file is damaged or truncated)"
        )
    check_workbook_zip(path, limits)
    try:
        workbook = CalamineWorkbook.from_path(str(path))
        if len(workbook.sheet_names) > limits.max_sheets:
            raise InputError(
                f"{path.name}: {len(workbook.sheet_names)} sheets; the limit is {limits.max_sheets}"
            )
        grids = []
        for name in workbook.sheet_names:
            sheet = workbook.get_sheet_by_name(name)
            rows = sheet.to_python(skip_empty_area=False)
            grid = pd.DataFrame(rows, dtype=object) if rows else pd.DataFrame(dtype=object)
            check_grid(path.name, name, grid, limits)
            merged = sheet.merged_cell_ranges or []
            if merged and not grid.empty:
                _fill_merged(grid, merged)
            grids.append((name, grid))
    except (CalamineError, ValueError, zipfile.BadZipFile, KeyError) as exc:
        raise InputError(f"{path.name}: not a readable .xlsx workbook ({exc})") from exc
    return grids


def read_grids(
    path: Path, limits: Limits = DEFAULT_LIMITS, notices: list[str] | None = None
) -> list[tuple[str | None, pd.DataFrame]]:
    """The sheets of any supported file, recognised by content rather than by extension
    (what was surprising about it is appended to ``notices``)."""
    size = path.stat().st_size
    if size > limits.max_file_bytes:
        raise InputError(
            f"{path.name}: {size / 2**20:,.0f} MB; the limit is "
            f"{limits.max_file_bytes / 2**20:,.0f} MB"
        )
    with path.open("rb") as handle:
        head = handle.read(8)
    if head.startswith(b"PK\x03\x04") or head.startswith(b"\xd0\xcf\x11\xe0"):
        return list(read_xlsx_grids(path, limits))
    if path.suffix.lower() in {".xlsx", ".xlsm"}:
        with path.open("rb") as handle:
            sample = handle.read(8192)
        if not _looks_like_text(sample):
            raise InputError(
                f"{path.name}: not a valid .xlsx workbook (the file is damaged or truncated)"
            )
        if notices is not None:
            notices.append("named .xlsx but holds CSV text: read as CSV")
    grid = read_csv_grid(path)
    check_grid(path.name, None, grid, limits)
    return [(None, grid)]


def source_rows(
    path: Path,
    sheet: str | None,
    header_rows: tuple[int, ...],
    rows: list[int],
    limits: Limits = DEFAULT_LIMITS,
) -> pd.DataFrame:
    """Rows of a file (1-based, as a person sees them) with every column the file has, headed
    as the file heads them, cells exactly as read: what a rejects file shows beside its reasons.

    The file is read again rather than kept in memory through the run: only files with
    rejected rows pay for it."""
    grid = dict(read_grids(path, limits))[sheet]
    grid = grid.dropna(how="all", axis=1)
    text = grid.fillna("").astype(str)
    names: list[str] = []
    for position in range(grid.shape[1]):
        letter = column_letter(grid.columns, position)
        words = dict.fromkeys(
            " ".join(text.iat[r - 1, position].split()) for r in header_rows if 0 < r <= len(text)
        )
        name = " ".join(w for w in words if w) or letter
        names.append(f"{name} ({letter})" if name in names else name)
    wanted = [r - 1 for r in rows if 0 < r <= len(grid)]
    out = grid.iloc[wanted].copy()
    out.columns = names
    out.insert(0, "source_row", [r + 1 for r in wanted])
    return out.reset_index(drop=True)


# --- layout -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """Where the header is and what each column means, for one sheet under one profile."""

    profile: Profile
    header_rows: tuple[int, ...]
    columns: dict[int, str]
    charge_columns: dict[int, str]
    score: tuple[int, int]
    # Columns neither mapped, charged nor a known non-charge family: never charged, but
    # reported when they hold amounts.
    other_columns: dict[int, str] = field(default_factory=dict)
    # A per-row total column ("Total"): never charged, but its total row states the file's sum.
    row_total_column: int | None = None
    # Each mapped column's header as the file writes it ("Tenant" for resident_name).
    headers: dict[int, str] = field(default_factory=dict)


Candidate = tuple[tuple[int, ...], list[str], list[str]]


def _header_candidates(grid: pd.DataFrame) -> list[Candidate]:
    """Header texts for one-row and two-row headers near the top of the sheet.

    Each candidate is (rows, full header text per column, the lowest header row's own text).
    """
    top = grid.head(HEADER_SCAN_ROWS).fillna("").astype(str)
    out: list[Candidate] = []
    for r in range(len(top)):
        row = [c.strip() for c in top.iloc[r].tolist()]
        out.append(((r,), row, row))
        if r + 1 < len(top):
            lower = [c.strip() for c in top.iloc[r + 1].tolist()]
            # A second header row holds words, never amounts or dates.
            if not any(row) or not any(lower) or any(_VALUE_LIKE.match(c) for c in lower if c):
                continue
            spread = pd.Series(row).replace("", pd.NA).ffill().fillna("").tolist()
            combined = [
                f"{u} {lo}".strip() if lo else own
                for u, lo, own in zip(spread, lower, row, strict=True)
            ]
            out.append(((r, r + 1), combined, lower))
    return out


def _match_layout(
    profile: Profile,
    rows: tuple[int, ...],
    cells: list[str],
    leaves: list[str],
    known_codes: frozenset[str] = frozenset(),
    allow_no_charges: bool = False,
) -> Layout | None:
    aliases = profile.alias_map()
    columns: dict[int, str] = {}
    for i, cell in enumerate(cells):
        canonical = aliases.get(normalize_header(cell)) if cell else None
        if canonical and canonical not in columns.values():
            columns[i] = canonical
    if not set(profile.required) <= set(columns.values()):
        return None
    charge_columns: dict[int, str] = {}
    other_columns: dict[int, str] = {}
    if profile.charge_mode == "columns":
        for i, (cell, leaf) in enumerate(zip(cells, leaves, strict=True)):
            if i in columns or not cell:
                continue
            header = " ".join(cell.split())
            if profile.charges_header(cell, known_codes) or profile.charges_header(
                leaf, known_codes
            ):
                charge_columns[i] = header
            elif not (is_non_charge(cell) or is_non_charge(leaf)):
                other_columns[i] = header
        if not charge_columns and not allow_no_charges:
            return None
    named = len({cell for cell in cells if cell})  # merged cells repeat one name
    row_total = next(
        (
            i
            for i, cell in enumerate(cells)
            if i not in columns and normalize_header(cell) in ROW_TOTAL_HEADERS
        ),
        None,
    )
    return Layout(
        profile,
        rows,
        columns,
        charge_columns,
        score=(len(columns), named),
        other_columns=other_columns,
        row_total_column=row_total,
        headers={i: " ".join(cells[i].split()) for i in columns},
    )


def detect_layout(
    grid: pd.DataFrame,
    profiles: list[Profile],
    file_name: str,
    profile_name: str | None = None,
    known_codes: frozenset[str] = frozenset(),
) -> Layout | None:
    """The best (profile, header rows) for a sheet: most canonical columns, then file-name hints."""
    candidates = [p for p in profiles if profile_name in (None, p.name)]
    best: tuple[tuple[int, int, int, int, int], Layout] | None = None
    lowered = file_name.lower()
    for rows, cells, leaves in _header_candidates(grid):
        for profile in candidates:
            layout = _match_layout(profile, rows, cells, leaves, known_codes)
            if layout is None:
                continue
            hinted = int(any(h in lowered for h in profile.file_name_hints))
            key = (*layout.score, hinted, -len(rows), -rows[0])
            if best is None or key > best[0]:
                best = (key, layout)
    return best[1] if best else None


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
            return date(int(groups["year"]), month, 1)
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


def first_texts(text: pd.DataFrame) -> pd.Series:
    """Each row's first non-empty cell ("" for a blank row), column by column from the right."""
    first = pd.Series("", index=text.index, dtype=object)
    for column in reversed(text.columns):
        cells = text[column]
        first = cells.where(cells.ne(""), first)
    return first


def _classify_rows(body: pd.DataFrame, text: pd.DataFrame, layout: Layout) -> pd.Series:
    """Each body row's kind: 'data', or blank, header, total, subtotal, group or note."""
    profile = layout.profile
    count = text.ne("").sum(axis=1).to_numpy()
    first = first_texts(text)
    kind = np.full(len(body), "data", dtype=object)
    data = np.ones(len(body), dtype=bool)  # kind == "data", kept alongside

    def mark(rows: np.ndarray, name: str) -> None:
        rows = rows & data
        kind[rows] = name
        data[rows] = False

    # Filler: a row of punctuation only ("_", "----", "***") is a blank row.
    # Only rows whose first text is punctuation are looked at closely (one regex per distinct
    # first text), so a million data rows cost nothing more.
    filler = (count > 0) & ~any_match(first, (r"[A-Za-z0-9]",)).to_numpy()
    if filler.any():
        rows = text[filler]
        alnum = rows.apply(lambda col: col.str.contains(r"[A-Za-z0-9]", regex=True)).any(axis=1)
        filler[np.flatnonzero(filler)[alnum.to_numpy()]] = False
    mark((count == 0) | filler, "blank")
    # A repeated header (page breaks in a printed report): only rows whose first mapped cell is
    # a header word are looked at closely, so a million data rows cost one comparison each.
    aliases = profile.alias_map()
    first_col = next(iter(layout.columns))
    candidates = (
        text[first_col]
        .str.lower()
        .str.strip()
        .isin(
            {a for a, canonical in aliases.items() if canonical == layout.columns[first_col]}
            | {normalize_header(a) for a in aliases}
        )
    )
    if candidates.any():
        mapped = text.loc[candidates, list(layout.columns)]
        hits = mapped.apply(lambda col: col.map(lambda v: aliases.get(normalize_header(v))))
        matched = hits.eq(pd.Series(layout.columns)).sum(axis=1)
        is_header = (matched >= max(2, len(profile.required) // 2 + 1)).reindex(
            text.index, fill_value=False
        )
        mark(is_header.to_numpy(), "header")
    flags = match_flags(
        first,
        {
            "subtotal": profile.subtotal_patterns + SHAPE_SUBTOTALS,
            "total": profile.total_patterns + SHAPE_TOTALS,
            "group": profile.group_patterns,
        },
    )
    mark(flags["subtotal"].to_numpy(), "subtotal")
    mark(flags["total"].to_numpy(), "total")
    # A group row holds one text, perhaps spread over merged cells ("-> Oak Ridge Apartments").
    grouped = flags["group"].to_numpy() & data
    if grouped.any():
        rows = text[grouped]
        one_text = (rows.eq(first[grouped], axis=0) | rows.eq("")).all(axis=1)
        mark(one_text.reindex(text.index, fill_value=False).to_numpy(), "group")
    amount_cols = [c for c, name in layout.columns.items() if name == "amount"]
    amount_cols += list(layout.charge_columns)
    amounts_empty = (
        text[amount_cols].eq("").all(axis=1).to_numpy()
        if amount_cols
        else np.ones(len(body), dtype=bool)
    )
    lone = (count == 1) & amounts_empty
    if profile.group_sets:
        # A group row by its shape, with or without "->" (Excel's re-save drops it): one text,
        # in the first column, no amounts, and a data row right after it.
        in_first = text.iloc[:, 0].ne("").to_numpy()
        followed = np.r_[data[1:], False]
        mark(lone & in_first & followed, "group")
    # Below the last total row: a legend or notes block ("Vacant-Unrented: ..."), unless a
    # row has the shape of data (an amount).
    totals = np.flatnonzero(kind == "total")
    if len(totals):
        after = np.arange(len(body)) > totals[-1]
        mark(after & amounts_empty, "note")
    # A lone text cell with no amount is a note or legend ("* includes late fees"), not a row
    # of data with everything else missing; a row holding an amount always stays data.
    mark(lone, "note")
    return pd.Series(kind, index=body.index, dtype=object)


# Totals and subtotals by the words every export uses, whatever the profile lists:
# "Total", "Totals", "Grand Total", "Total_26Units", "Subtotal", "14 Units".
SHAPE_TOTALS = (r"^\s*(grand[\s_]*)?totals?(?![a-z])",)
SHAPE_SUBTOTALS = (r"^\s*sub[\s_-]*totals?(?![a-z])", r"^\s*\d+[\s_]*units?(?![a-z])")


def extract_file(
    source: SourceFile,
    profiles: list[Profile],
    *,
    profile_name: str | None = None,
    limits: Limits = DEFAULT_LIMITS,
    known_codes: frozenset[str] = frozenset(),
) -> ExtractResult:
    """Read one file: find the sheet, header and profile, and split data rows from non-data rows.

    ``known_codes``: normalized names of Propexo's charge codes and their aliases (online), which
    make a column of that name a charge column besides the profile's vocabulary."""
    notices: list[str] = []
    grids = read_grids(source.path, limits, notices)
    # Every sheet is considered; the one whose header best matches a profile is the data
    # (a workbook's "Notes" or "Summary" sheet is not).
    best: tuple[tuple[int, int], str | None, pd.DataFrame, Layout] | None = None
    for sheet, grid in grids:
        if grid.empty:
            continue
        table = grid.dropna(how="all", axis=1)
        layout = detect_layout(table, profiles, source.name, profile_name, known_codes)
        if layout is not None and (best is None or layout.score > best[0]):
            best = (layout.score, sheet, table, layout)
    if best is not None:
        result = _extract_sheet(source, best[1], best[2], best[3], limits)
        return replace(result, notices=tuple(notices)) if notices else result
    _refuse_if_no_charge_column(source.name, grids, profiles, profile_name, known_codes)
    found = _headers_seen(grids)
    names = ", ".join(p.name for p in profiles if profile_name in (None, p.name)) or "none"
    if all(g.empty for _, g in grids):
        raise InputError(f"{source.name}: the file has no rows")
    raise InputError(
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
) -> None:
    """A rent roll whose header a profile reads, but with no column known to be a charge, is
    refused saying so (and which columns it has), not as an unknown format."""
    for _, grid in grids:
        if grid.empty:
            continue
        table = grid.dropna(how="all", axis=1)
        for rows, cells, leaves in _header_candidates(table):
            for profile in profiles:
                if profile_name not in (None, profile.name) or profile.charge_mode != "columns":
                    continue
                layout = _match_layout(
                    profile, rows, cells, leaves, known_codes, allow_no_charges=True
                )
                if layout is None:
                    continue
                others = ", ".join(repr(h) for h in layout.other_columns.values()) or "none"
                raise InputError(
                    f"{name}: its header (row {rows[-1] + 1}) reads as {profile.name}, but no "
                    f"column is known to be a charge; other columns: {others}. Add a column's "
                    'name to data/mappings/charge_codes.csv ("<header>,<Propexo charge code>") '
                    "or to the profile's [charges] include"
                )


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


def _cell_text(grid: pd.DataFrame) -> pd.DataFrame:
    """Text view of cells for classifying rows (the values themselves are kept as read)."""
    return grid.fillna("").astype(str).apply(lambda col: col.str.strip())


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
) -> ExtractResult:
    grid = grid.reset_index(drop=True)
    cell_names = _cell_names(grid.columns, layout)
    grid.columns = range(grid.shape[1])
    text = _cell_text(grid)
    over = [n for c in text.columns if (n := _too_long(text[c], limits.max_cell_chars))]
    if over:
        longest = max(over)
        raise InputError(
            f"{source.name}: a cell holds {longest:,} characters; the limit is "
            f"{limits.max_cell_chars:,}"
        )
    nonblank = text.ne("").any(axis=1)
    last = int(nonblank[nonblank].index.max()) + 1 if nonblank.any() else 0
    grid, text = grid.iloc[:last], text.iloc[:last]
    header_start, header_end = layout.header_rows[0], layout.header_rows[-1]

    above = text.iloc[:header_start]
    title_lines = [
        " ".join(dict.fromkeys(v for v in r if v)) for r in above.itertuples(index=False)
    ]
    title_text = " ".join(title_lines)
    skipped_parts = [
        pd.DataFrame(
            {
                "source_row": above.index + 1,
                "kind": ["title" if any(r) else "blank" for r in above.itertuples(index=False)],
                "text": [line[:200] for line in title_lines],
            }
        ),
        pd.DataFrame(
            {"source_row": [r + 1 for r in layout.header_rows], "kind": "header", "text": ""}
        ),
    ]
    body = grid.iloc[header_end + 1 :]
    body_text = text.iloc[header_end + 1 :]
    kinds = _classify_rows(body, body_text, layout)
    kinds = _unlabelled_totals(body, body_text, kinds, layout)
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

    rows = pd.DataFrame({name: body[col] for col, name in layout.columns.items()})
    profile = layout.profile
    if profile.fill_down:
        # Sub-rows (one per charge code under a unit row) repeat nothing: carry the unit row's
        # cells down, but never across a total, subtotal or group row.
        segment = non_data.cumsum()
        for name in profile.fill_down:
            if name in rows:
                cells = rows[name].where(
                    ~rows[name].astype(str).str.strip().isin(["", "nan", "None"])
                )
                rows[name] = cells.where(non_data).combine_first(
                    cells.where(~non_data).groupby(segment).ffill()
                )
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
    not_charged = _amount_columns(body.loc[~non_data], layout.other_columns)
    totals = file_totals(body, kinds, layout)
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
        cells=cell_names,
        header_rows=tuple(r + 1 for r in layout.header_rows),
    )


def _cell_names(labels: pd.Index, layout: Layout) -> dict[str, tuple[str, str]]:
    """Each field's (header as the file writes it, spreadsheet column letter), so a reason can
    point at the cell: canonical names for mapped columns, the header itself for charges.

    ``labels`` are the sheet's own column positions (empty columns were dropped, not renumbered).
    """
    out = {
        name: (layout.headers.get(i, name), column_letter(labels, i))
        for i, name in layout.columns.items()
    }
    out |= {h: (h, column_letter(labels, i)) for i, h in layout.charge_columns.items()}
    return out


def column_letter(labels: pd.Index, position: int) -> str:
    """The spreadsheet letter of a grid's column: its own label is its place in the sheet
    (empty columns were dropped, not renumbered). 0 → A, 25 → Z, 26 → AA."""
    label = labels[position]
    number = (int(label) if isinstance(label, (int, np.integer)) else position) + 1
    letters = ""
    while number:
        number, rest = divmod(number - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters


ROW_TOTAL_HEADERS = {"total", "totals", "total charges", "total amount", "row total"}


def file_totals(body: pd.DataFrame, kinds: pd.Series, layout: Layout) -> tuple[dict[str, Any], ...]:
    """The file's own control totals against its lines, per amount column.

    The last total row states, per amount column, what its lines add up to (in a per-row
    "Total" column: everything charged). Each stated figure must equal the sum of that column
    over every data row (used or later rejected), or over the data rows since the previous
    total or subtotal row (a last group's total). Every other total and subtotal row must tie
    as well: to the rows since the previous break, group row or total of its own kind, to the
    last few lines above it (a vendor's lines), or to all rows above it (a running total); one
    that ties to none is listed with the sum since the previous break.
    A column whose data cells are not all amounts cannot be checked, and says so."""
    from pipelines.parsing import parse_money

    kind = kinds.to_numpy()
    breaks = np.flatnonzero(np.isin(kind, ["total", "subtotal"]))
    if not len(breaks):
        return ()
    data = kind == "data"
    amount = [c for c, name in layout.columns.items() if name == "amount"]
    charged = list(layout.charge_columns)
    checks: list[tuple[str, int, list[int]]] = [(layout.columns[c], c, [c]) for c in amount] + [
        (layout.charge_columns[c], c, [c]) for c in charged
    ]
    if layout.row_total_column is not None and (charged or amount):
        checks.append(("row totals", layout.row_total_column, charged or amount))
    stated_rows = body.iloc[breaks]

    group_rows = np.flatnonzero(kind == "group")
    found = []
    for label, column, summed in checks:
        parsed, _ = parse_money(stated_rows[column].astype(object))
        has_stated = parsed.notna().to_numpy()  # a stated amount, not a blank or a word
        stated = parsed.fillna(0).to_numpy(dtype=np.int64)
        if not has_stated.any():
            continue
        sums = np.zeros(len(body), dtype=np.int64)
        checked = True
        for c in summed:
            column_cents, ok = _money_cells(body[c].where(data))
            sums += np.where(data, column_cents, 0)
            checked &= ok
        # running[i]: the data rows above row i (positions), so rows a..b sum to running[b] -
        # running[a + 1].
        running = np.concatenate([[0], np.cumsum(sums)])
        last_total = int(np.flatnonzero(kind == "total")[-1]) if (kind == "total").any() else -1
        tied = 0
        last_of_kind: dict[str, int] = {}  # the previous break of each kind, as we go
        for n, (at, value) in enumerate(zip(breaks, stated, strict=True)):
            position = int(at)
            same = last_of_kind.get(str(kind[position]), -1)
            last_of_kind[str(kind[position])] = position
            if not has_stated[n]:
                continue
            previous = int(breaks[n - 1]) if n else -1
            group = int(np.searchsorted(group_rows, position)) - 1
            starts = {previous, same, -1}
            if group >= 0:
                starts.add(int(group_rows[group]))
            candidates = {start: int(running[position] - running[start + 1]) for start in starts}
            # Or the last few lines alone ("Total for Summit Waste Services" after its lines).
            suffixes = running[position] - running[previous + 1 : position + 1]
            ties = int(value) in candidates.values() or bool((suffixes == int(value)).any())
            is_last_total = position == last_total
            if ties and not is_last_total:
                tied += 1
                continue
            nearest = -1 if is_last_total else previous
            computed = int(value) if ties else candidates[nearest]
            found.append(
                {
                    "column": label,
                    "source_row": int(body.index[position]) + 1,
                    "kind": str(kind[position]),
                    "stated_cents": int(value),
                    "computed_cents": computed,
                    "difference_cents": computed - int(value),
                    "checked": checked,
                    # other total and subtotal rows above it that tie too
                    "rows_tied": tied if is_last_total else 0,
                }
            )
    return tuple(sorted(found, key=lambda t: (t["source_row"], t["column"])))


IDENTITY = ("unit", "resident_name", "vendor_name", "invoice_number", "charge_code")


def _money_cells(cells: pd.Series) -> tuple[np.ndarray, bool]:
    """Cents per cell (0 where blank), and whether every filled cell was an amount."""
    from pipelines.parsing import parse_money

    out = np.zeros(len(cells), dtype=np.int64)
    filled = cells.notna().to_numpy() & cells.astype(str).str.strip().ne("").to_numpy()
    if not filled.any():
        return out, True
    parsed, errors = parse_money(cells[filled].astype(object))
    out[np.flatnonzero(filled)] = parsed.fillna(0).to_numpy(dtype=np.int64)
    return out, not errors.notna().any()


def _unlabelled_totals(
    body: pd.DataFrame, text: pd.DataFrame, kinds: pd.Series, layout: Layout
) -> pd.Series:
    """A row with amounts but no unit, resident, vendor or invoice, whose every amount equals
    the sum of the data rows above it (since the previous total, or from the top), is a total
    with its label left off, not a line to charge; after the last data row, the file's total.
    Rows whose amounts tie to nothing stay data (and are rejected for what they lack)."""
    identity = [c for c, name in layout.columns.items() if name in IDENTITY]
    amounts = [c for c, name in layout.columns.items() if name == "amount"]
    amounts += list(layout.charge_columns)
    if not identity or not amounts:
        return kinds
    kind = kinds.to_numpy().copy()
    data = kind == "data"
    bare = data & text[identity].eq("").all(axis=1).to_numpy()
    bare &= text[amounts].ne("").any(axis=1).to_numpy()
    if not bare.any():
        return kinds
    lines = data & ~bare
    # Prefix sums over the lines (data rows that are not candidates), so each candidate is
    # checked in constant time, however many there are.
    running = []
    for c in amounts:
        cents, _ = _money_cells(body[c])
        filled = text[c].ne("").to_numpy()
        running.append((cents, filled, np.concatenate([[0], np.cumsum(np.where(lines, cents, 0))])))
    positions = np.arange(len(kind))
    is_break = np.isin(kind, ["total", "subtotal"])
    last_break = np.maximum.accumulate(np.where(is_break, positions, -1))
    lines_after = np.concatenate([np.cumsum(lines[::-1])[::-1][1:], [0]])
    marked = -1  # the last candidate found to be a total, itself a break for those below
    for position in np.flatnonzero(bare):
        before = int(last_break[position - 1]) if position else -1
        starts = {-1, max(before, marked)}
        for start in starts:
            sums = [int(run[position] - run[start + 1]) for _, _, run in running]
            here = [(int(cents[position]), filled[position]) for cents, filled, _ in running]
            if any(sums) and all(v == t for (v, f), t in zip(here, sums, strict=True) if f):
                kind[position] = "total" if not lines_after[position] else "subtotal"
                marked = int(position)
                break
    return pd.Series(kind, index=kinds.index, dtype=object)


def _amount_columns(data: pd.DataFrame, columns: dict[int, str]) -> tuple[dict[str, Any], ...]:
    """Of the columns that are neither mapped nor charged, those holding amounts on data rows:
    header, how many non-zero cells, and their total. Never charged, never silently dropped."""
    from pipelines.parsing import parse_money

    found = []
    for i, header in columns.items():
        cells = data[i]
        filled = cells[cells.notna() & cells.astype(str).str.strip().ne("")]
        if filled.empty:
            continue
        cents, error = parse_money(filled.astype(object))
        if error.notna().sum() > len(filled) / 2:
            continue  # mostly not amounts: text, dates or flags
        nonzero = cents.dropna()
        nonzero = nonzero[nonzero != 0]
        if nonzero.empty:
            continue
        found.append({"header": header, "cells": len(nonzero), "total_cents": int(nonzero.sum())})
    return tuple(found)
