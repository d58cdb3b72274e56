"""Reading a file into grids of cells, as the file has them: CSV in any common encoding and
delimiter, XLSX sheets with merged cells filled, within the size limits; and a file's original
rows read again for the rejects file."""

from __future__ import annotations

import csv
import hashlib
import io
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from pipelines.core.errors import InputError
from pipelines.core.models import SourceFile, printable
from pipelines.reading.layout import (
    column_letter,
)


def fingerprint(path: Path) -> SourceFile:
    """Name, size and sha256 of a file (the sha256 is how a re-dropped file is recognised)."""
    digest = hashlib.sha256()
    try:
        before = path.stat()
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as exc:
        raise InputError(f"{printable(path.name)}: cannot be read ({exc.strerror or exc})") from exc
    return SourceFile(
        path=path,
        name=printable(path.name),
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
        raise InputError(f"{printable(path.name)}: not a valid .xlsx workbook ({exc})") from exc
    unpacked = sum(i.file_size for i in infos)
    packed = max(1, sum(i.compress_size for i in infos))
    if unpacked > limits.max_unzipped_bytes or unpacked / packed > limits.max_zip_ratio:
        raise InputError(
            f"{printable(path.name)}: refused: it would unpack to {unpacked / 2**20:,.0f} MB from "
            f"{packed / 2**20:,.1f} MB, which no real export does (a zip bomb?)"
        )


def check_grid(name: str, sheet: str | None, grid: pd.DataFrame, limits: Limits) -> None:
    """Rows and columns within limits (cells are checked once their text is known)."""
    where = f"{name}" + (f" (sheet {sheet!r})" if sheet else "")
    if len(grid) > limits.max_rows:
        raise InputError(f"{where}: {len(grid):,} rows; the limit is {limits.max_rows:,}")
    if grid.shape[1] > limits.max_columns:
        raise InputError(f"{where}: {grid.shape[1]:,} columns; the limit is {limits.max_columns:,}")


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


def _refuse_if_too_wide(name: str, head: str, lines: list[str], limits: Limits) -> None:
    """The column limit, from the head of the file alone: a line that is wider is refused
    before the rest is read (a 100,000-column file took minutes and a gigabyte to refuse).
    The first line is counted even when the head holds only its beginning."""
    counted = [*head.splitlines()[:1], *lines[:50]]
    for delimiter in (",", ";", "\t", "|"):
        try:
            widths = [len(r) for r in csv.reader(counted, delimiter=delimiter)]
        except csv.Error:
            continue  # not text csv reads: the reader says what is wrong
        width = max(widths, default=0)
        if width > limits.max_columns:
            line = widths.index(width)
            where = "its first line" if line == 0 else f"line {line}"
            raise InputError(
                f"{name}: {where} has {width:,} or more columns; the limit is "
                f"{limits.max_columns:,} (split at {delimiter!r}; no export of charges or "
                "bills is that wide)"
            )


def read_csv_grid(path: Path, limits: Limits = DEFAULT_LIMITS) -> pd.DataFrame:
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
            raise InputError(
                f"{printable(path.name)}: looks like UTF-16 text but is not ({exc})"
            ) from exc
    if not data.strip():
        raise InputError(f"{printable(path.name)}: the file is empty")
    head = _decode(data[:65536], printable(path.name), partial=True)
    lines = head.splitlines()[:2000]
    if len(data) > 65536:
        lines = lines[:-1]  # perhaps cut mid-line
    _refuse_if_too_wide(printable(path.name), head, lines, limits)
    delimiter = _sniff_delimiter("\n".join(lines[:50]))
    head_rows = list(csv.reader(lines, delimiter=delimiter))
    width = max((len(r) for r in head_rows), default=1)
    fast = _read_csv_arrow(data, delimiter, width, head_rows)
    if fast is not None:
        return fast
    text = _decode(data, printable(path.name))
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
            raise InputError(f"{printable(path.name)}: the file has no rows") from exc
        except pd.errors.ParserError as exc:
            if attempt:
                raise InputError(f"{printable(path.name)}: not a readable CSV ({exc})") from exc
            width = max(len(r) for r in csv.reader(lines, delimiter=delimiter))
            if width > limits.max_columns:
                raise InputError(
                    f"{printable(path.name)}: {width:,} columns; the limit is "
                    f"{limits.max_columns:,}"
                ) from exc
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
    body: pd.DataFrame = table.slice(len(kept)).to_pandas()
    body.columns = pd.RangeIndex(width)
    if not head:
        return body
    padded = pd.DataFrame([r + [""] * (width - len(r)) for r in top], dtype="str")
    grid: pd.DataFrame = pd.concat([padded, body], ignore_index=True).astype("str")
    return grid


def _fill_merged(grid: pd.DataFrame, merged: list[tuple[tuple[int, int], tuple[int, int]]]) -> None:
    """Give every cell of a merged range the value of its top-left cell (as a person reads it)."""
    for (r0, c0), (r1, c1) in merged:
        if r0 < len(grid) and c0 < grid.shape[1]:
            value: Any = grid.iat[r0, c0]  # a cell as read: text, number, date or bool
            for column in range(c0, min(c1 + 1, grid.shape[1])):
                grid.iloc[r0 : r1 + 1, column] = value


# What calamine reads as an empty cell but a person sees something in: an error value
# ("#REF!", "#N/A", "#DIV/0!") and a formula Excel never calculated (no cached value). Found in
# the sheet's XML by plain byte searches (no XML parser: nothing to expand) for the few ways
# such a cell is written; only the cells found are looked at, so a sheet of a million
# calculated formulas costs little more than one decompression pass.
_CELL_START = re.compile(rb"<(?:\w+:)?c[\s>]")
_CELL_END = re.compile(rb"</(?:\w+:)?c>")
_ATTRIBUTE = re.compile(rb'\s(r|t)="([^"]*)"')
_VALUE = re.compile(rb"<(?:\w+:)?v(?:\s[^>]*)?>([^<]*)</(?:\w+:)?v>")
_FORMULA = re.compile(rb"<(?:\w+:)?f(?:\s[^>]*)?>([^<]*)</(?:\w+:)?f>")
_CELL_REF = re.compile(r"^([A-Z]{1,3})([0-9]{1,7})$")
_ENTITY = re.compile(r"&(#x[0-9A-Fa-f]+|#[0-9]+|lt|gt|amp|quot|apos);")
_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"', "apos": "'"}
_PIECE = 4 << 20  # bytes of sheet XML looked at at a time


def _signals(prefix: bytes) -> tuple[bytes, tuple[bytes, ...]]:
    """The bytes that open a formula, and those that mark an error cell or a formula without
    a value, for a sheet whose elements carry ``prefix`` ("" or "x:")."""
    c, f, v = prefix + b"c>", prefix + b"f>", prefix + b"v"
    return b"<" + prefix + b"f", (
        b't="e"',  # <c r="A6" t="e"><v>#REF!</v></c>
        b"</" + f + b"</" + c,  # <f>B9*2</f></c>: no value at all
        b'"/></' + c,  # <f t="shared" si="0"/></c>
        b"<" + v + b"/>",  # <f>B9*2</f><v/>
        b"<" + v + b" />",
        b"<" + v + b"></" + v + b">",
    )


def _unescape(text: bytes) -> str:
    """XML text as written: the five named entities and character references only."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.startswith("#"):
            code = int(name[2:], 16) if name[1] in "xX" else int(name[1:])
            return chr(code) if 0 < code < 0x110000 else ""
        return _ENTITIES[name]

    return _ENTITY.sub(one, text.decode("utf-8", errors="replace"))


def _sheet_parts(archive: zipfile.ZipFile) -> dict[str, str]:
    """Each sheet's name → its XML part in the archive, from workbook.xml and its rels."""
    try:
        book = archive.read("xl/workbook.xml")[: 8 << 20]
        rels = archive.read("xl/_rels/workbook.xml.rels")[: 8 << 20]
    except KeyError:
        return {}
    targets = {}
    for element in re.findall(rb"<(?:\w+:)?Relationship\s[^>]*>", rels):
        found = dict(re.findall(rb'\s(Id|Target)="([^"]*)"', element))
        if b"Id" in found and b"Target" in found:
            target = _unescape(found[b"Target"])
            targets[_unescape(found[b"Id"])] = (
                target.lstrip("/") if target.startswith("/") else f"xl/{target}"
            )
    parts = {}
    for element in re.findall(rb"<(?:\w+:)?sheet\s[^>]*>", book):
        name = re.search(rb'\sname="([^"]*)"', element)
        rid = re.search(rb'\s(?:\w+:)?id="([^"]*)"', element)
        if name and rid and _unescape(rid.group(1)) in targets:
            parts[_unescape(name.group(1))] = targets[_unescape(rid.group(1))]
    return parts


def _unseen_cells(archive: zipfile.ZipFile, part: str) -> list[tuple[int, int, str]]:
    """(row, column, text) of the error cells and uncalculated formulas of one sheet part."""
    found: list[tuple[int, int, str]] = []
    try:
        stream = archive.open(part)
    except KeyError:
        return found
    signals: tuple[bytes, tuple[bytes, ...]] | None = None
    with stream:
        carry = b""
        while True:
            chunk = stream.read(_PIECE)
            data = carry + chunk
            if chunk:
                cut = data.rfind(b"row>")  # whole rows only; the rest waits for the next piece
                cut = cut + len(b"row>") if cut >= 0 else 0
                data, carry = data[:cut], data[cut:]
            if signals is None and (row := re.search(rb"<(\w+:)?row[\s>]", data)):
                signals = _signals(row.group(1) or b"")
            if signals is not None:
                found += _cells_of_interest(data, signals)
            if not chunk:
                return found


def _cells_of_interest(
    data: bytes, signals: tuple[bytes, tuple[bytes, ...]]
) -> list[tuple[int, int, str]]:
    formula, marks = signals
    hits = set()
    # The formula marks only where there are formulas (one search instead of five).
    for signal in marks if formula in data else marks[:1]:
        at = data.find(signal)
        while at >= 0:
            hits.add(at)
            at = data.find(signal, at + 1)
    found: list[tuple[int, int, str]] = []
    done = -1  # where the last cell looked at ends: a cell is looked at once
    for hit in sorted(hits):
        if hit < done:
            continue
        window = data[max(0, hit - 2048) : hit + 1]
        starts = list(_CELL_START.finditer(window))
        if not starts:
            continue
        start = hit - len(window) + 1 + starts[-1].start()
        open_end = data.find(b">", start)
        if open_end < 0:
            break
        if data[open_end - 1 : open_end] == b"/":
            stop = open_end + 1  # <c r="A1" t="e"/>: an empty cell
        else:
            end = _CELL_END.search(data, open_end)
            stop = end.end() if end else len(data)
        done = stop
        cell = data[start:stop]
        attributes = {
            k.decode(): _unescape(v) for k, v in _ATTRIBUTE.findall(cell[: open_end - start])
        }
        where = _CELL_REF.match(attributes.get("r", ""))
        if where is None:
            continue  # a cell without its reference: its place cannot be known
        value = _VALUE.search(cell)
        kind = attributes.get("t", "n")
        if kind == "e":
            text = _unescape(value.group(1)) if value else "#ERROR"
        elif _FORMULA_TAG.search(cell):
            if value is not None and (value.group(1) or kind in ("str", "s", "inlineStr")):
                continue  # calculated: calamine has its value
            written = _FORMULA.search(cell)
            shown = _unescape(written.group(1)) if written else ""
            text = f"={shown} (not calculated)" if shown else "= (formula, not calculated)"
        else:
            continue
        column = 0
        for letter in where.group(1):
            column = column * 26 + ord(letter) - ord("A") + 1
        found.append((int(where.group(2)) - 1, column - 1, text))
    return found


_FORMULA_TAG = re.compile(rb"<(?:\w+:)?f[\s/>]")


def _show_unseen(grid: pd.DataFrame, cells: list[tuple[int, int, str]]) -> pd.DataFrame:
    """The grid with error cells and uncalculated formulas as the text a person sees, never
    as blanks (a blank charge cell is no charge; an "#REF!" is a cell to look at)."""
    if not cells:
        return grid
    rows = max(len(grid), 1 + max(r for r, _, _ in cells))
    columns = max(grid.shape[1], 1 + max(c for _, c, _ in cells))
    if (rows, columns) != grid.shape:
        grid = grid.reindex(index=range(rows), columns=range(columns), fill_value="")
    for row, column, text in cells:
        grid.iat[row, column] = text
    return grid


def read_xlsx_grids(path: Path, limits: Limits = DEFAULT_LIMITS) -> list[tuple[str, pd.DataFrame]]:
    """Every sheet of a workbook as a grid of cell values, merged ranges filled, with calamine
    (whose XML reader expands no entities, so entity bombs have nothing to expand)."""
    from python_calamine import CalamineError, CalamineWorkbook

    head = path.read_bytes()[:8]
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        raise InputError(
            f"{printable(path.name)}: this workbook is password-protected or in the old .xls "
            "format; "
            "open it in Excel and save it as an unprotected .xlsx"
        )
    if not zipfile.is_zipfile(path):
        raise InputError(
            f"{printable(path.name)}: not a valid .xlsx workbook (the file is damaged or truncated)"
        )
    check_workbook_zip(path, limits)
    try:
        workbook = CalamineWorkbook.from_path(str(path))
        if len(workbook.sheet_names) > limits.max_sheets:
            raise InputError(
                f"{printable(path.name)}: {len(workbook.sheet_names)} sheets; the limit is "
                f"{limits.max_sheets}"
            )
        grids = []
        with zipfile.ZipFile(path) as archive:
            parts = _sheet_parts(archive)
            unseen = {name: _unseen_cells(archive, part) for name, part in parts.items()}
        for name in workbook.sheet_names:
            sheet = workbook.get_sheet_by_name(name)
            rows = sheet.to_python(skip_empty_area=False)
            grid = pd.DataFrame(rows, dtype=object) if rows else pd.DataFrame(dtype=object)
            check_grid(printable(path.name), name, grid, limits)
            grid = _show_unseen(grid, unseen.get(name, []))
            check_grid(printable(path.name), name, grid, limits)
            merged = sheet.merged_cell_ranges or []
            if merged and not grid.empty:
                _fill_merged(grid, merged)
            grids.append((name, grid))
    except (CalamineError, ValueError, zipfile.BadZipFile, KeyError) as exc:
        raise InputError(f"{printable(path.name)}: not a readable .xlsx workbook ({exc})") from exc
    return grids


def read_grids(
    path: Path, limits: Limits = DEFAULT_LIMITS, notices: list[str] | None = None
) -> list[tuple[str | None, pd.DataFrame]]:
    """The sheets of any supported file, recognised by content rather than by extension
    (what was surprising about it is appended to ``notices``)."""
    size = path.stat().st_size
    if size > limits.max_file_bytes:
        raise InputError(
            f"{printable(path.name)}: {size / 2**20:,.0f} MB; the limit is "
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
                f"{printable(path.name)}: not a valid .xlsx workbook (the file is damaged or "
                "truncated)"
            )
        if notices is not None:
            notices.append("named .xlsx but holds CSV text: read as CSV")
    grid = read_csv_grid(path, limits)
    check_grid(printable(path.name), None, grid, limits)
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
            " ".join(str(text.iat[r - 1, position]).split())
            for r in header_rows
            if 0 < r <= len(text)
        )
        name = " ".join(w for w in words if w) or letter
        names.append(f"{name} ({letter})" if name in names else name)
    wanted = [r - 1 for r in rows if 0 < r <= len(grid)]
    out = grid.iloc[wanted].copy()
    out.columns = names
    out.insert(0, "source_row", [r + 1 for r in wanted])
    return out.reset_index(drop=True)


UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
