"""`tieout profile init FILE`: a draft profile for an export no built-in profile reads.

The draft is a starting point a person reviews, never a silent decision: every column is
listed with what the draft made of it and why (mapped to a canonical column, charged, ignored
as a known non-charge family, or left out), and the draft is tried on the file at once, so its
header names the line count and total it yields.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import pandas as pd

from pipelines.core.errors import InputError
from pipelines.core.kind import Draft, Kind, Kinds
from pipelines.core.models import printable
from pipelines.reading.extract import extract_file
from pipelines.reading.grids import fingerprint, read_grids
from pipelines.reading.layout import HEADER_SCAN_ROWS
from pipelines.reading.profiles import (
    CHARGE_VOCABULARY,
    is_non_charge,
    load_profile,
    normalize_header,
)


def _canonical(header: str, draft: Draft, taken: set[str]) -> str | None:
    name = normalize_header(header)
    for canonical, words in draft.header_words:
        if canonical in taken:
            continue
        if any(re.search(rf"(?<![a-z0-9]){re.escape(w)}(?![a-z0-9])", name) for w in words):
            return canonical
    return None


def _holds_amounts(cells: pd.Series) -> bool:
    """Whether most filled cells of a column are amounts (a charge column, not a code column)."""
    from pipelines.core.parsing import parse_money

    filled = cells.dropna()
    filled = filled[filled.astype(str).str.strip().ne("")]
    if filled.empty:
        return False
    _, errors = parse_money(filled.astype(object))
    return bool(errors.isna().mean() > 0.5)


def _header_row(grid: pd.DataFrame) -> int:
    """The row near the top naming the most *different* columns: a title row holds one text,
    even when it is merged across the sheet (every cell of the range then repeats it)."""
    top = grid.head(HEADER_SCAN_ROWS).fillna("").astype(str)
    words = top.apply(lambda col: col.str.contains(r"[A-Za-z]") & ~col.str.match(r"^\s*[-$(\d]"))
    named = top.where(words, "").apply(lambda col: col.str.strip())
    counts = named.apply(lambda row: len(set(row) - {""}), axis=1)
    if counts.empty or counts.max() < 2:
        raise InputError("no header row found: no row near the top names two or more columns")
    return int(counts.idxmax())


def _no_code_column(columns: dict[str, str], notes: list[str]) -> list[str]:
    """A wide roll's charge code is each charge column's header, never a column of its own:
    a header taken for charge_code is left out of ``columns`` (the notes say so)."""
    code = next((h for h, c in columns.items() if c == "charge_code"), None)
    if code is None:
        return notes
    del columns[code]
    said = f'"{code}": left out (in a wide roll the charge columns\' headers are the codes)'
    return [said if n == f'"{code}": charge_code' else n for n in notes]


def _toml_string(value: str) -> str:
    """A TOML basic string holding exactly ``value`` (control characters as ``\\uXXXX``)."""
    text = value.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + re.sub(r"[\x00-\x1f\x7f]", lambda m: f"\\u{ord(m.group()):04x}", text) + '"'


def _toml_list(values: list[str]) -> str:
    return "[" + ", ".join(_toml_string(v) for v in values) + "]"


def _found_and_missing(needed: tuple[str, ...], have: set[str]) -> tuple[list[str], list[str]]:
    return [c for c in needed if c in have], [c for c in needed if c not in have]


def _draft_of(kind: Kind) -> Draft:
    if kind.draft is None:
        raise InputError(f"tieout drafts no {kind.source_kind} profile: write it by hand")
    return kind.draft


def draft_profile(path: Path, kind: Kind, name: str | None = None) -> str:
    """The text of a draft profile of ``kind`` for ``path``, with its reasoning as comments,
    tried on it."""
    draft = _draft_of(kind)
    wide = draft.wide_required is not None  # its amounts may be one column per charge code
    shown = printable(path.name)  # in comments and strings of the TOML, and on the console
    grids = [(sheet, grid) for sheet, grid in read_grids(path) if not grid.empty]
    if not grids:
        raise InputError(f"{shown}: the file has no rows")
    sheet, grid = max(grids, key=lambda g: int(g[1].head(HEADER_SCAN_ROWS).notna().sum().sum()))
    row = _header_row(grid)
    headers = [str(c).strip() if pd.notna(c) else "" for c in grid.iloc[row].tolist()]
    columns: dict[str, str] = {}
    notes: list[str] = []
    charge_headers: list[str] = []
    body = grid.iloc[row + 1 : row + 201]
    for position, header in enumerate(headers):
        if not header:
            continue
        canonical = _canonical(header, draft, set(columns.values()))
        amounts = _holds_amounts(body.iloc[:, position])
        if wide and amounts and normalize_header(header) in CHARGE_VOCABULARY:
            charge_headers.append(header)
            notes.append(f'"{header}": charged (a known charge name)')
        elif canonical is not None and not (canonical == "amount" and is_non_charge(header)):
            columns[header] = canonical
            notes.append(f'"{header}": {canonical}')
        elif is_non_charge(header):
            notes.append(f'"{header}": ignored (a known non-charge family)')
        else:
            notes.append(f'"{header}": left out (not recognised; map it under [columns])')
    mode = "rows" if "amount" in columns.values() or not wide else "columns"
    if wide and mode == "rows" and "charge_code" not in columns.values():
        mode = "columns" if charge_headers else "rows"
    notes = _no_code_column(columns, notes) if mode == "columns" else notes
    needed = draft.wide_required if mode == "columns" and draft.wide_required else draft.required
    required, missing = _found_and_missing(needed, set(columns.values()))
    profile_name = name or "draft_" + (
        re.sub(r"[^a-z0-9]+", "_", path.stem.lower()).strip("_") or "draft"
    )
    lines = [
        f"# Draft profile for {shown}"
        + (f" (sheet {sheet!r})" if sheet else "")
        + f", header on row {row + 1}. Review it, then:",
        f"#   tieout check --offline --profile <this file> {shown}",
        "# What the draft made of each column:",
        *(f"#   {printable(n)}" for n in notes),  # a header may hold a line break
    ]
    if missing:
        lines.append(f"# Not found, map them under [columns]: {', '.join(missing)}")
    lines += [
        f'name = "{profile_name}"',
        f'kind = "{kind.source_kind}"',
        f"description = {_toml_string(f'drafted by tieout profile init from {shown}')}",
        f"required = {_toml_list(required)}",
        "",
        "[columns]",
    ]
    by_canonical: dict[str, list[str]] = {}
    for header, canonical in columns.items():
        by_canonical.setdefault(canonical, []).append(normalize_header(header))
    lines += [f"{c} = {_toml_list(h)}" for c, h in by_canonical.items()]
    if wide:
        lines += ["", "[charges]", f'mode = "{mode}"']
        if mode == "columns":
            lines.append(f"include = {_toml_list([normalize_header(h) for h in charge_headers])}")
    first = grid.iloc[row + 1 :, 0].dropna().astype(str)
    if first.str.match(r"^\s*->").any():
        lines += ["", "[rows]", "group = ['^\\s*->']", 'group_sets = "property_name"']
    text = "\n".join(lines) + "\n"
    return text + _tried(path, text, kind)


def _tried(path: Path, text: str, kind: Kind) -> str:
    """The draft tried on the file: what it yields, as comments (or why it reads nothing)."""
    with tempfile.TemporaryDirectory() as folder:
        draft = Path(folder) / "draft.toml"
        draft.write_text(text, encoding="utf-8")
        try:
            profile = load_profile(draft, Kinds([kind]))
            result = extract_file(fingerprint(path), [profile], profile_name=profile.name)
        except Exception as exc:
            said = printable(str(exc))
            return f"# Tried on {printable(path.name)}: it does not read the file yet ({said})\n"
    skipped = result.skipped["kind"].value_counts().to_dict()
    return (
        f"# Tried on {printable(path.name)}: {result.rows_read} rows read, "
        f"{len(result.rows)} data rows, "
        f"skipped {skipped}; charge columns {list(result.charge_columns) or 'none'}\n"
    )
