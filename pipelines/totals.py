"""A file's own control totals: every total and subtotal row checked against the lines it
closes, and total rows with their label left off found by their sums."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from pipelines.layout import Layout


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
