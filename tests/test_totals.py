"""A file's own totals and subtotals checked against the lines they close."""

from __future__ import annotations

import pandas as pd

from pipelines.core.parsing import dollars
from pipelines.kinds import registered
from pipelines.reading.layout import Layout
from pipelines.reading.profiles import BUILTIN_PROFILES_DIR, load_profile
from pipelines.reading.totals import (
    amount_columns,
    file_totals,
    is_tied,
    total_text,
    unlabelled_totals,
)

UNIT, AMOUNT = 0, 1


def _layout() -> Layout:
    return Layout(
        profile=load_profile(BUILTIN_PROFILES_DIR / "tieout_rent_roll.toml", registered()),
        header_rows=(0,),
        columns={UNIT: "unit", AMOUNT: "amount"},
        charge_columns={},
        score=(2, 0),
    )


def _sheet(rows: list[tuple[str, str, str]]) -> tuple[pd.DataFrame, pd.Series]:
    """(unit, amount, kind) per row: the body as read (text cells) and each row's kind."""
    body = pd.DataFrame([(u, a) for u, a, _ in rows], columns=[UNIT, AMOUNT], dtype=object)
    body.index = pd.RangeIndex(1, len(rows) + 1)  # rows below a one-row header
    return body, pd.Series([k for _, _, k in rows], index=body.index, dtype=object)


def test_a_subtotal_and_the_file_total_that_tie_are_said_to_tie() -> None:
    body, kinds = _sheet(
        [
            ("101", "100.00", "data"),
            ("101", "50.00", "data"),
            ("", "150.00", "subtotal"),
            ("102", "$20.00", "data"),
            ("", "170.00", "total"),
        ]
    )
    (total,) = file_totals(body, kinds, _layout())
    assert total["kind"] == "total"
    assert total["source_row"] == 6  # the total row, counted as a person counts them
    assert (total["stated_cents"], total["computed_cents"], total["difference_cents"]) == (
        17000,
        17000,
        0,
    )
    assert total["rows_tied"] == 1  # the subtotal above it ties too
    assert (total["stated"], total["difference"]) == ("170.00", "0.00")
    assert is_tied(total)
    assert total_text(total, dollars).startswith("ties out to its own total row (row 6")
    assert "1 total and subtotal rows above it tie too" in total_text(total, dollars)


def test_a_subtotal_off_by_ten_dollars_is_listed_with_its_difference() -> None:
    body, kinds = _sheet(
        [
            ("101", "100.00", "data"),
            ("101", "50.00", "data"),
            ("", "160.00", "subtotal"),
            ("102", "20.00", "data"),
            ("", "170.00", "total"),
        ]
    )
    totals = file_totals(body, kinds, _layout())
    (wrong,) = [t for t in totals if t["kind"] == "subtotal"]
    assert (wrong["stated_cents"], wrong["computed_cents"], wrong["difference_cents"]) == (
        16000,
        15000,
        -1000,
    )
    assert wrong["unit"] == "101"  # its lines name one unit: the unit it closes
    assert not is_tied(wrong)
    text = total_text(wrong, dollars)
    assert "does not tie to its own subtotal row (row 4, unit 101, amount)" in text
    assert "it says 160.00" in text
    assert "add up to 150.00" in text
    assert "(difference (10.00))" in text


def test_a_total_over_an_unreadable_amount_is_not_called_tied_and_names_the_row() -> None:
    body, kinds = _sheet(
        [
            ("101", "100.00", "data"),
            ("102", "see memo", "data"),
            ("", "130.00", "total"),
        ]
    )
    (total,) = file_totals(body, kinds, _layout())
    assert not total["checked"]
    assert not is_tied(total)
    assert total["unreadable"] == [{"source_row": 3, "text": "see memo"}]
    text = total_text(total, dollars)
    assert 'the rest, 30.00, is row 3, rejected: "see memo"' in text


def test_a_bare_row_that_sums_the_lines_above_is_a_total_not_a_line() -> None:
    body, kinds = _sheet(
        [
            ("101", "100.00", "data"),
            ("102", "20.00", "data"),
            ("", "120.00", "data"),  # the label left off, lines below it
            ("103", "5.00", "data"),
            ("", "99.00", "data"),  # ties to nothing: stays a line (rejected later)
        ]
    )
    text = body.fillna("").astype(str)
    found = unlabelled_totals(body, text, kinds, _layout())
    assert list(found) == ["data", "data", "subtotal", "data", "data"]
    # After the last line: the file's total.
    body2, kinds2 = _sheet([("101", "100.00", "data"), ("", "100.00", "data")])
    assert list(unlabelled_totals(body2, body2.astype(str), kinds2, _layout())) == [
        "data",
        "total",
    ]


def test_columns_of_amounts_nobody_charged_are_reported_with_their_total() -> None:
    data = pd.DataFrame(
        {
            5: ["10.00", "0", "2.50", ""],  # amounts: reported
            6: ["late", "n/a", "x", "1.00"],  # mostly words: not amounts
            7: ["", "", "", ""],  # empty
        },
        dtype=object,
    )
    found = amount_columns(data, {5: "Deposit", 6: "Notes", 7: "Blank"})
    assert found == ({"header": "Deposit", "cells": 2, "total_cents": 1250},)
