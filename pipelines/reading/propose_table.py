"""Where a proposal's table is on a sheet of no known layout (#38): its header rows (one, two or
three, found from the shape of the rows below them: words above, figures below; cells merged
across already filled by the grid, line breaks inside cells joined), the group rows between
its lines (one text, merged across the sheet or alone in the first cell) and its total row.
Pure: a grid in, positions and texts out."""

from __future__ import annotations

import re

import pandas as pd

from pipelines.core.models import printable

HEADER_ROWS_AT_MOST = 3
_TOTAL_ROW = re.compile(r"^\s*(grand\s*)?totals?\b|^\s*report\s+total", re.IGNORECASE)
# A cell that is a figure or a date, not a header's word: "1,250.00", "(35.00)", "$12",
# "06/01/2025", "238.0000".
_FIGURE = re.compile(r"^\s*[-$(]*\s*\d[\d,]*(\.\d+)?\)?\s*$|^\d{1,4}[/-]\d{1,2}[/-]\d{1,4}")
_WORD = re.compile(r"[A-Za-z]")


def cell_words(value: object) -> str:
    """A cell as header text: its lines joined ("Move In\\nDate" → "Move In Date")."""
    return " ".join(str(value).split())


def _words(row: list[str]) -> set[str]:
    return {c for c in row if _WORD.search(c) and not re.match(r"^\s*[-$(\d]", c)}


def _has_figures(row: list[str]) -> bool:
    return any(_FIGURE.match(c) for c in row if c)


def _is_group(row: list[str]) -> bool:
    """One text alone: in the first cell only, or the same text in every filled cell (a row
    merged across the sheet)."""
    filled = [c for c in row if c]
    return bool(filled) and len(set(filled)) == 1 and (bool(row[0]) or len(filled) > 1)


def header_rows(top: pd.DataFrame) -> tuple[int, ...] | None:
    """The header rows near the top (0-based): the row naming the most different columns in
    words (a title merged across the sheet repeats one text; a data row holds figures), with
    the rows of words right above it that name two or more columns (a group header,
    "Accommodation" over "Per Period | Monthly") and right below it that hold words only and
    are no group row; never more than three."""
    rows = [[cell_words(v) for v in row] for row in top.itertuples(index=False)]
    best, at = 1, None
    for r, row in enumerate(rows):
        count = len(_words(row))
        if count > best:
            best, at = count, r
    if at is None or best < 3:
        return None

    def more(r: int) -> bool:  # a row of words only, no figures, no group row
        return bool(_words(rows[r])) and not _has_figures(rows[r]) and not _is_group(rows[r])

    first = last = at
    while last + 1 < len(rows) and last - first + 1 < HEADER_ROWS_AT_MOST and more(last + 1):
        last += 1
    while (
        first > 0
        and last - first + 1 < HEADER_ROWS_AT_MOST
        and len(_words(rows[first - 1])) >= 2
        and more(first - 1)
    ):
        first -= 1
    return tuple(range(first, last + 1))


def joined_headers(top: pd.DataFrame, rows: tuple[int, ...]) -> list[str]:
    """Each column's header over ``rows``: its parts top to bottom, a part repeated by a cell
    merged down said once ("Accommodation Per Period", "Care Level")."""
    out = []
    for column in range(top.shape[1]):
        parts: list[str] = []
        for r in rows:
            part = cell_words(top.iat[r, column])
            if part and (not parts or parts[-1] != part):
                parts.append(part)
        out.append(" ".join(parts))
    return out


def group_rows(text: pd.DataFrame) -> pd.Series:
    """Rows of one text (a property merged across the sheet, "-> Oak Ridge"): not lines."""
    return pd.Series([_is_group(list(row)) for row in text.itertuples(index=False)], text.index)


def total_row(text: pd.DataFrame) -> int | None:
    """The first row whose cell says total ("Total", "Grand Total", "Report Total")."""
    totals = text.apply(lambda row: any(_TOTAL_ROW.match(v) for v in row if v), axis=1)
    at = totals.to_numpy().nonzero()[0]
    return int(text.index[at[0]]) if len(at) else None


def filled(cells: pd.Series) -> pd.Series:
    """A column's filled cells as text."""
    text = cells.astype(object).where(cells.notna(), "").astype(str).str.strip()
    return text[text.ne("") & text.ne("nan")]


def share(values: pd.Series, pattern: re.Pattern[str]) -> float:
    """The share of ``values`` that match ``pattern``."""
    return float(values.str.match(pattern).mean()) if len(values) else 0.0


def samples(values: pd.Series, n: int = 3) -> str:
    """A column's first few different values, as a person reads them."""
    seen = list(dict.fromkeys(values.tolist()))[:n]
    return ", ".join(repr(printable(v)[:24]) for v in seen)


def as_unit_text(value: object) -> str:
    """A cell as a unit token: Excel's 101.0 is 101."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()
