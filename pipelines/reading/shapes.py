"""What a sheet's shape says beyond its header: its title block's lines, whether it is the
export's own sheet or a copy, a second resident's row, a stray cell below the totals, and what
a file is when it is not an input. Pure."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from pipelines.core.columns import any_match
from pipelines.core.models import GrainFinding
from pipelines.reading.layout import HEADER_SCAN_ROWS, Layout
from pipelines.reading.profiles import Profile
from pipelines.reading.totals import IDENTITY

# Totals and subtotals by the words every export uses, whatever the profile lists:
# "Total", "Totals", "Grand Total", "Total_26Units", "Subtotal", "14 Units".
SHAPE_TOTALS = (r"^\s*(grand[\s_]*)?totals?(?![a-z])",)
SHAPE_SUBTOTALS = (r"^\s*sub[\s_-]*totals?(?![a-z])", r"^\s*\d+[\s_]*units?(?![a-z])")


def title_block_lines(above: pd.DataFrame) -> list[str]:
    """The title block's lines: each row's distinct texts, each cell's own lines apart."""
    lines: list[str] = []
    for row in above.itertuples(index=False):
        cells = [str(v) for v in row if v]
        if not any("\n" in c or "\r" in c for c in cells):
            if cells:
                lines.append(" ".join(dict.fromkeys(cells)))
            continue
        for cell in dict.fromkeys(cells):
            lines += [part.strip() for part in re.split(r"[\r\n]+", cell) if part.strip()]
    return lines


def first_texts(text: pd.DataFrame) -> pd.Series:
    """Each row's first non-empty cell ("" for a blank row), column by column from the right."""
    first = pd.Series("", index=text.index, dtype=object)
    for column in reversed(text.columns):
        cells = text[column]
        first = cells.where(cells.ne(""), first)
    return first


def sheet_rank(table: pd.DataFrame, header_rows: tuple[int, ...]) -> tuple[int, int, int]:
    """How much a sheet looks like an export's own, beyond its header: (a title block above
    the header, a total row below it, its rows below the header). A copy pasted by hand
    keeps the header and loses the rest."""
    text = cell_text(table)
    above = text.iloc[: header_rows[0]]
    below = text.iloc[header_rows[-1] + 1 :]
    filled = (below != "").any(axis=1)
    first = first_texts(below[filled])
    has_total = bool(any_match(first, SHAPE_TOTALS).any()) if len(first) else False
    return (int((above != "").to_numpy().any()), int(has_total), int(filled.sum()))


def likely_header(table: pd.DataFrame) -> int | None:
    """The row near the top naming the most different columns (a title merged across the
    sheet repeats one text; a data row holds numbers), if one names at least two."""
    top = table.head(HEADER_SCAN_ROWS).fillna("").astype(str)
    counts = [
        len({c.strip() for c in row if re.search(r"[A-Za-z]", c)})
        for row in top.itertuples(index=False)
    ]
    return counts.index(max(counts)) if counts and max(counts) > 1 else None


def fill_down(rows: pd.DataFrame, non_data: pd.Series, profile: Profile) -> pd.DataFrame:
    """The cells a profile fills down from the row above (Yardi's charge sub-rows), or else a
    lone second resident's unit."""
    if not profile.fill_down:
        return second_residents(rows, non_data, profile)
    rows = rows.copy()
    # Sub-rows (one per charge code under a unit row) repeat nothing: carry the unit row's
    # cells down, but never across a total, subtotal or group row.
    segment = non_data.cumsum()
    for name in profile.fill_down:
        if name in rows:
            cells = rows[name].where(~rows[name].astype(str).str.strip().isin(["", "nan", "None"]))
            rows[name] = cells.where(non_data).combine_first(
                cells.where(~non_data).groupby(segment).ffill()
            )
    return rows


def second_residents(rows: pd.DataFrame, non_data: pd.Series, profile: Profile) -> pd.DataFrame:
    """A row naming a resident but no unit, right under a resident's row with a unit (no
    total, group or blank row between), is a second resident of that unit (senior-living
    rolls list them so): it takes the unit above. A first row with no unit keeps none."""
    if profile.fill_down or "unit" not in rows or "resident_name" not in rows:
        return rows
    units = rows["unit"]
    if not (units.isna().any() or units.astype(object).eq("").any()):
        return rows  # every row names its unit (most rolls): nothing to look at closely

    def blank(cells: pd.Series) -> pd.Series:
        return cells.isna() | cells.astype(str).str.strip().isin(["", "nan", "None"])

    lone = ~non_data & blank(rows["unit"]) & ~blank(rows["resident_name"])
    if not lone.any():
        return rows
    segment = non_data.cumsum()
    units = rows["unit"].where(~non_data & ~blank(rows["unit"]))
    above = units.groupby(segment).ffill()
    return rows.assign(
        unit=rows["unit"].where(~lone, above).where(~lone | above.notna(), rows["unit"])
    )


def what_it_is(
    found: tuple[GrainFinding, ...], title: GrainFinding | None
) -> tuple[GrainFinding, ...]:
    """The grain findings, after what the title (or a daily rate column) says the file is,
    unless a finding already shows it with its rows (a directory's repeated rents)."""
    if title is None or any(f.check == "directory" for f in found):
        return found
    return (title, *found)


def stray_cells(text: pd.DataFrame, count: np.ndarray, layout: Layout) -> np.ndarray:
    """Rows of one cell beside which nothing names a unit, resident, vendor or invoice: below
    the file's total row, a figure left over (a count) is neither a line nor a total."""
    identity = [c for c, name in layout.columns.items() if name in IDENTITY]
    if not identity:
        return np.zeros(len(text), dtype=bool)
    unnamed: np.ndarray = (text[identity] == "").all(axis=1).to_numpy()
    stray: np.ndarray = (count == 1) & unnamed
    return stray


def cell_text(grid: pd.DataFrame) -> pd.DataFrame:
    """Text view of cells for classifying rows (the values themselves are kept as read)."""
    text: pd.DataFrame = grid.fillna("").astype(str).apply(lambda col: col.str.strip())
    return text
