"""Row kinds: each body row of a sheet as data, or blank, header, total, subtotal, group,
note or a section of residents who are not current, decided column-wise over the whole sheet
(a million data rows cost a few comparisons each). Pure; used by ``reading.extract``."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from pipelines.core.columns import any_match, match_flags
from pipelines.reading.grain import NOT_CURRENT
from pipelines.reading.layout import Layout
from pipelines.reading.profiles import Profile, normalize_header
from pipelines.reading.shapes import SHAPE_SUBTOTALS, SHAPE_TOTALS, first_texts, stray_cells


def classify_rows(body: pd.DataFrame, text: pd.DataFrame, layout: Layout) -> pd.Series:
    """Each body row's kind: 'data', or blank, header, total, subtotal, group or note."""
    profile = layout.profile
    count = (text != "").sum(axis=1).to_numpy()
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
    _mark_sections(text, first, count, profile, mark)
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
        one_text = (rows.eq(first[grouped], axis=0) | (rows == "")).all(axis=1)
        mark(one_text.reindex(text.index, fill_value=False).to_numpy(), "group")
    amount_cols = [c for c, name in layout.columns.items() if name == "amount"]
    amount_cols += list(layout.charge_columns)
    amounts_empty = (
        (text[amount_cols] == "").all(axis=1).to_numpy()
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
    _mark_merged(text, first, count, data, profile, mark)
    # Below the last total row: a legend or notes block ("Vacant-Unrented: ..."), unless a
    # row has the shape of data (an amount).
    # Not where each unit closes with its own "Total" row (sub-rows filled down, Yardi): the
    # last of those is a unit's, and a vacant unit after it is a unit, not a legend.
    totals = np.flatnonzero(kind == "total") if not profile.fill_down else np.zeros(0, int)
    if len(totals):
        after = np.arange(len(body)) > totals[-1]
        mark(after & amounts_empty, "note")
        mark(after & stray_cells(text, count, layout), "note")
    # A lone text cell with no amount is a note or legend ("* includes late fees"), not a row
    # of data with everything else missing; a row holding an amount always stays data.
    mark(lone, "note")
    return pd.Series(kind, index=body.index, dtype=object)


def _one_text(text: pd.DataFrame, first: pd.Series, rows: np.ndarray) -> np.ndarray:
    """Which of ``rows`` hold one text only, perhaps spread over merged cells."""
    out = np.zeros(len(text), dtype=bool)
    if rows.any():
        picked = text[rows]
        same = (picked.eq(first[rows], axis=0) | (picked == "")).all(axis=1)
        out[np.flatnonzero(rows)[same.to_numpy()]] = True
    return out


def _mark_sections(
    text: pd.DataFrame,
    first: pd.Series,
    count: np.ndarray,
    profile: Profile,
    mark: Callable[[np.ndarray, str], None],
) -> None:
    """A profile's section banners, the sections of residents who are not current, and the
    summary block after the data (Yardi's "Current/Notice/Vacant Residents", "Future
    Residents/Applicants", "Summary Groups"): skipped, never charged."""
    if not (profile.summary_patterns or profile.note_patterns or profile.not_current_patterns):
        return
    flags = match_flags(
        first,
        {
            "summary": profile.summary_patterns,
            "note": profile.note_patterns,
            "not_current": profile.not_current_patterns,
        },
    )
    positions = np.arange(len(text))
    summary = np.flatnonzero(flags["summary"].to_numpy() & (count > 0))
    end = int(summary[0]) if len(summary) else len(text)
    banner = _one_text(text, first, (flags["note"] | flags["not_current"]).to_numpy())
    banner &= positions < end
    not_current = banner & flags["not_current"].to_numpy()
    if not_current.any():
        # Each row under a not-current banner, up to the next banner or the summary block.
        section = np.maximum.accumulate(np.where(banner, positions, -1))
        under = np.zeros(len(text), dtype=bool)
        opened = section >= 0
        under[opened] = not_current[section[opened]]
        mark(under & ~banner & (positions < end) & (count > 0), NOT_CURRENT)
    mark(banner, "note")
    # The summary block summarises the lines; its figures are never lines.
    mark(positions >= end, "note")


def _mark_merged(
    text: pd.DataFrame,
    first: pd.Series,
    count: np.ndarray,
    data: np.ndarray,
    profile: Profile,
    mark: Callable[[np.ndarray, str], None],
) -> None:
    """One text merged across the sheet (an XLSX group or note row: every cell of the range
    holds its text), not an amount: a group row before data (with or without "->"), else a
    note. Never data: its text under Unit and Rent is neither."""
    # A range from the first column over at least the second: one cheap comparison first, so
    # a million data rows are not compared cell by cell.
    if text.shape[1] < 2:
        return
    spread_over = (count > 1) & data & text.iloc[:, 0].ne("").to_numpy()
    spread_over &= text.iloc[:, 1].eq(text.iloc[:, 0]).to_numpy()
    spread_over &= ~any_match(first, _VALUE_LIKE).to_numpy()
    if spread_over.any():
        # A merged range fills the cells side by side from the first column, with no gap
        # ("Vacant-Unrented", "", "Vacant-Unrented" is a legend of two cells, not a range).
        filled = text[spread_over].ne("").astype(int)
        prefix = filled.cummin(axis=1).sum(axis=1).to_numpy()
        spread_over[np.flatnonzero(spread_over)] = prefix == count[spread_over]
    merged = _one_text(text, first, spread_over)
    if not merged.any():
        return
    if profile.group_sets:
        in_first = text.iloc[:, 0].ne("").to_numpy()
        mark(merged & in_first & np.r_[data[1:], False], "group")
    mark(merged, "note")


# A cell that reads as an amount or a date, not a name.
_VALUE_LIKE = (r"^[\s$(+-]*[\d,.]+\)?$", r"^\d{1,4}[/-]\d{1,2}[/-]\d{1,4}")
