"""A file's own control totals: every total and subtotal row checked against the lines it
closes, and total rows with their label left off found by their sums."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from pipelines.reading.layout import Layout


def file_totals(body: pd.DataFrame, kinds: pd.Series, layout: Layout) -> tuple[dict[str, Any], ...]:
    """The file's own control totals against its lines, per amount column.

    The last total row states, per amount column, what its lines add up to (in a per-row
    "Total" column: everything charged). Each stated figure must equal the sum of that column
    over every data row (used or later rejected), or over the data rows since the previous
    total or subtotal row (a last group's total). Every other total and subtotal row must tie
    as well: to the rows since the previous break, group row or total of its own kind, to the
    last few lines above it (a vendor's lines), or to all rows above it (a running total); one
    that ties to none is listed with the sum since the previous break, and the unit it closes
    when its lines name one (Yardi's per-unit "Total" row).
    A total that does not tie over lines of which some cells are not amounts cannot be
    checked (``checked`` false): the rest is attributed to those rows, never called tied.
    Totals tie column by column: a row-total column that also sums columns known never to be
    charges ties with them, and says so (``also_sums``)."""
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
    found: list[dict[str, Any]] = []
    for label, column, summed in checks:
        entries = _check_column(body, kind, breaks, group_rows, stated_rows, layout, column, summed)
        if label == "row totals" and any(e["difference_cents"] for e in entries):
            # A row-total column ("Total Charges") may also sum columns known never to be
            # charges (a one-time fee the profile leaves out): when the charged and those
            # columns tie it, each charged column is checked on its own, and the row total is
            # reported with what else it sums, never a contradiction.
            # Or columns nobody knows (an AppFolio "REV: Utility Reimbursement") whose own
            # figures on every total row tie: the file accounts for them; they are reported
            # (``also_sums_unknown``) and hold the layout for a person (`decide_layout`).
            known = _known_not_charged(body, data, layout)
            own = [
                c
                for c in _tied_on_their_own(body, kind, breaks, group_rows, stated_rows, layout)
                if c not in known
            ]
            for also in (known, [*known, *own]) if own else (known,):
                if not also:
                    continue
                wider = _check_column(
                    body,
                    kind,
                    breaks,
                    group_rows,
                    stated_rows,
                    layout,
                    column,
                    [*summed, *also],
                )
                if not any(e["difference_cents"] for e in wider):
                    names = [layout.other_columns[c] for c in also]
                    unknown = [layout.other_columns[c] for c in also if c not in known]
                    entries = [
                        {
                            **e,
                            "also_sums": names,
                            **({"also_sums_unknown": unknown} if unknown else {}),
                        }
                        for e in wider
                    ]
                    break
        found += [with_plain_figures({"column": label, **e}) for e in entries]
    return tuple(sorted(found, key=lambda t: (t["source_row"], t["column"])))


def _check_column(
    body: pd.DataFrame,
    kind: np.ndarray,
    breaks: np.ndarray,
    group_rows: np.ndarray,
    stated_rows: pd.DataFrame,
    layout: Layout,
    column: int,
    summed: list[int],
) -> list[dict[str, Any]]:
    """One amount column's total and subtotal rows against the sum of ``summed`` over the
    lines they close: the entries of those that do not tie, and of the last total row."""
    from pipelines.core.parsing import parse_money

    data = kind == "data"
    found: list[dict[str, Any]] = []
    parsed, _ = parse_money(stated_rows[column].astype(object))
    has_stated = parsed.notna().to_numpy()  # a stated amount, not a blank or a word
    stated = parsed.fillna(0).to_numpy(dtype=np.int64)
    if not has_stated.any():
        return []
    sums, unreadable = _line_sums(body, data, summed)
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
        # A total that does not tie, over lines of which some are not amounts, cannot be
        # checked: the rest is theirs (shown), never called tied.
        span = np.zeros(len(body), dtype=bool)
        if not ties:
            span[nearest + 1 : position] = unreadable[nearest + 1 : position]
        entry = {
            "source_row": int(body.index[position]) + 1,
            "kind": str(kind[position]),
            "stated_cents": int(value),
            "computed_cents": computed,
            "difference_cents": computed - int(value),
            # other total and subtotal rows above it that tie too
            "rows_tied": tied if is_last_total else 0,
            **_unreadable(body, span, summed),
            **_one_unit(body, data, layout, previous + 1, position),
        }
        found.append(entry)
    return found


def _known_not_charged(body: pd.DataFrame, data: np.ndarray, layout: Layout) -> list[int]:
    """The columns, neither mapped nor charged, that the profile knows are never charges (its
    ignore list, a one-time fee) and that hold amounts on data rows."""
    out = []
    for c, header in layout.other_columns.items():
        if not layout.profile.known_not_charge(header):
            continue
        cents, bad = _money_cells(body[c].where(data))
        if cents.any() and not bad.any():
            out.append(c)
    return out


def _tied_on_their_own(
    body: pd.DataFrame,
    kind: np.ndarray,
    breaks: np.ndarray,
    group_rows: np.ndarray,
    stated_rows: pd.DataFrame,
    layout: Layout,
) -> list[int]:
    """The columns, neither mapped nor charged, that hold amounts on data rows and whose own
    figures on the file's total and subtotal rows all tie to their lines."""
    data = kind == "data"
    out = []
    for c in layout.other_columns:
        cents, bad = _money_cells(body[c].where(data))
        if not cents.any() or bad.any():
            continue
        entries = _check_column(body, kind, breaks, group_rows, stated_rows, layout, c, [c])
        if entries and not any(e["difference_cents"] for e in entries):
            out.append(c)
    return out


MAX_SHOWN = 5  # unreadable rows named in a total's entry (the count says how many in all)


def _unreadable(body: pd.DataFrame, rows: np.ndarray, summed: list[int]) -> dict[str, Any]:
    """A total's lines whose amount cannot be read (``rows`` flags them): whether it could be
    checked, how many, and the first few with their text as the file shows it."""
    positions = np.flatnonzero(rows)
    shown = [
        {
            "source_row": int(body.index[p]) + 1,
            "text": " ".join(str(v) for c in summed if _filled(v := body[c].iloc[p]))[:60],
        }
        for p in positions[:MAX_SHOWN]
    ]
    return {"checked": not len(positions), "unreadable": shown, "unreadable_rows": len(positions)}


def with_plain_figures(total: dict[str, Any]) -> dict[str, Any]:
    """A file total with ``stated``, ``computed`` and ``difference`` as decimal text
    ("21403.63"), beside its cents, for readers of summary.json; ``checked`` as said."""
    out = dict(total)
    for name in ("stated", "computed", "difference"):
        cents = int(total.get(f"{name}_cents") or 0)
        sign = "-" if cents < 0 else ""
        out[name] = f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d}"
    out["checked"] = bool(total.get("checked", True))
    return out


def is_tied(total: dict[str, Any]) -> bool:
    """Whether a file's own total row is tied by its lines: checked, and no difference."""
    return bool(total.get("checked", True)) and not total.get("difference_cents")


def total_text(total: dict[str, Any], dollars: Callable[[int], str]) -> str:
    """A file total in words: tied, or what it says, what its lines add up to, and where the
    rest is (rows whose amount cannot be read), never "ties out" unless it does."""
    where = f"its own {total.get('kind', 'total')} row (row {total['source_row']}"
    where += f", unit {total['unit']}" if total.get("unit") else ""
    where += f", {total['column']})"
    also = total.get("also_sums") or []
    if also:
        where += f", which also counts {', '.join(repr(a) for a in also)}, not charged"
    if is_tied(total):
        tied = int(total.get("rows_tied") or 0)
        also = f"; {tied:,} total and subtotal rows above it tie too" if tied else ""
        return f"ties out to {where}: {dollars(int(total['stated_cents']))}{also}"
    stated, computed = int(total["stated_cents"]), int(total["computed_cents"])
    said = (
        f"does not tie to {where}: it says {dollars(stated)}; the lines that read as "
        f"amounts add up to {dollars(computed)}"
    )
    if total.get("checked", True):
        return f"{said} (difference {dollars(computed - stated)})"
    rows = total.get("unreadable") or []
    named = ", ".join(f'row {r["source_row"]}, rejected: "{r["text"]}"' for r in rows)
    more = int(total.get("unreadable_rows") or len(rows)) - len(rows)
    named += f" and {more} more rows" if more > 0 else ""
    return f"{said}; the rest, {dollars(stated - computed)}, is {named or 'unreadable rows'}"


def _filled(value: object) -> bool:
    return (
        value is not None
        and not (isinstance(value, float) and np.isnan(value))
        and bool(str(value).strip())
    )


def _line_sums(
    body: pd.DataFrame, data: np.ndarray, summed: list[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Each row's amount over the ``summed`` columns (data rows only), and which data rows
    hold a cell there that is not an amount."""
    sums = np.zeros(len(body), dtype=np.int64)
    unreadable = np.zeros(len(body), dtype=bool)
    for c in summed:
        column_cents, bad = _money_cells(body[c].where(data))
        sums += np.where(data, column_cents, 0)
        unreadable |= bad & data
    return sums, unreadable


def _one_unit(
    body: pd.DataFrame, data: np.ndarray, layout: Layout, start: int, stop: int
) -> dict[str, str]:
    """``{"unit": …}`` when the data rows above a total row (from ``start``) name one unit
    only (Yardi's per-unit "Total" row), else nothing."""
    column = next((c for c, name in layout.columns.items() if name == "unit"), None)
    if column is None or stop - start > MAX_UNIT_ROWS:
        return {}
    cells = body[column].iloc[max(start, 0) : stop][data[max(start, 0) : stop]]
    named = {str(v).strip() for v in cells if _filled(v)}
    return {"unit": named.pop()} if len(named) == 1 else {}


MAX_UNIT_ROWS = 200  # a unit's charge rows; a longer span closes a group, not one unit


IDENTITY = ("unit", "resident_name", "vendor_name", "invoice_number", "charge_code")


def _money_cells(cells: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Cents per cell (0 where blank or not an amount), and which filled cells are not
    amounts."""
    from pipelines.core.parsing import parse_money

    out = np.zeros(len(cells), dtype=np.int64)
    bad = np.zeros(len(cells), dtype=bool)
    filled = cells.notna().to_numpy() & cells.astype(str).str.strip().ne("").to_numpy()
    if not filled.any():
        return out, bad
    parsed, errors = parse_money(cells[filled].astype(object))
    out[np.flatnonzero(filled)] = parsed.fillna(0).to_numpy(dtype=np.int64)
    bad[np.flatnonzero(filled)] = errors.notna().to_numpy() | parsed.isna().to_numpy()
    return out, bad


def unlabelled_totals(
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
    bare = data & (text[identity] == "").all(axis=1).to_numpy()
    bare &= (text[amounts] != "").any(axis=1).to_numpy()
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


def amount_columns(data: pd.DataFrame, columns: dict[int, str]) -> tuple[dict[str, Any], ...]:
    """Of the columns that are neither mapped nor charged, those holding amounts on data rows:
    header, how many non-zero cells, and their total. Never charged, never silently dropped."""
    from pipelines.core.parsing import parse_money

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
