"""A file's own totals as properties: a total row that states what its lines add up to ties,
one off by any amount says exactly that difference; subtotals close the lines since the
previous break; the plain figures read back as the cents; and the words never say "ties out"
unless it does."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from pipelines.core.parsing import dollars, format_cents
from pipelines.reading.layout import Layout
from pipelines.reading.profiles import Profile
from pipelines.reading.totals import (
    amount_columns,
    file_totals,
    is_tied,
    total_text,
    unlabelled_totals,
    with_plain_figures,
)

PROFILE = Profile(
    name="t",
    kind="charge",
    description="",
    columns={"unit": ("unit",), "resident_name": ("resident",)},
    required=("unit", "resident_name"),
    charge_mode="columns",
)
LAYOUT = Layout(PROFILE, (0,), {0: "unit", 1: "resident_name"}, {2: "Rent"}, (0, 0))
CENTS = st.integers(-100_000, 10_000_000)


def sheet(amounts: list[int], stated: int, style: str = "plain") -> tuple[pd.DataFrame, pd.Series]:
    rows: list[list[Any]] = [
        [str(100 + i), f"Res {i}", format_cents(c, style)] for i, c in enumerate(amounts)
    ]
    rows.append(["Total", "", format_cents(stated, style)])
    kinds = pd.Series(["data"] * len(amounts) + ["total"])
    return pd.DataFrame(rows), kinds


@given(
    st.lists(CENTS, min_size=1, max_size=20),
    st.sampled_from(["plain", "dollar", "accounting", "trailing"]),
)
def test_a_total_stating_the_sum_of_its_lines_ties_whatever_the_money_style(
    amounts: list[int], style: str
) -> None:
    body, kinds = sheet(amounts, sum(amounts), style)
    (total,) = file_totals(body, kinds, LAYOUT)
    assert is_tied(total), total
    assert total["stated_cents"] == total["computed_cents"] == sum(amounts)
    assert total["source_row"] == len(amounts) + 1
    assert total_text(total, dollars).startswith("ties out to its own total row")


@given(st.lists(CENTS, min_size=1, max_size=20), CENTS.filter(lambda d: d != 0))
def test_a_total_off_by_any_amount_says_exactly_that_difference(
    amounts: list[int], off: int
) -> None:
    body, kinds = sheet(amounts, sum(amounts) + off)
    (total,) = file_totals(body, kinds, LAYOUT)
    assert not is_tied(total)
    assert total["computed_cents"] - total["stated_cents"] == -off
    text = total_text(total, dollars)
    assert text.startswith("does not tie to its own total row")
    assert f"(difference {dollars(-off)})" in text


def test_subtotals_close_the_lines_since_the_previous_break() -> None:
    rows = [
        ["101", "A", "10.00"],
        ["102", "B", "5.00"],
        ["Subtotal", "", "15.00"],
        ["103", "C", "1.00"],
        ["Subtotal", "", "2.00"],
        ["Total", "", "16.00"],
    ]
    kinds = pd.Series(["data", "data", "subtotal", "data", "subtotal", "total"])
    found = file_totals(pd.DataFrame(rows), kinds, LAYOUT)
    # The subtotal that ties is counted on the file's total; the one that is off is listed.
    assert [(t["source_row"], is_tied(t)) for t in found] == [(5, False), (6, True)]
    assert found[-1]["rows_tied"] == 1
    wrong = next(t for t in found if t["source_row"] == 5)
    assert (wrong["stated_cents"], wrong["computed_cents"]) == (200, 100)


def test_no_total_row_is_no_totals() -> None:
    body = pd.DataFrame([["101", "A", "1.00"]])
    assert file_totals(body, pd.Series(["data"]), LAYOUT) == ()


@given(CENTS, CENTS, CENTS)
def test_the_plain_figures_read_back_as_the_cents(stated: int, computed: int, diff: int) -> None:
    total = with_plain_figures(
        {"stated_cents": stated, "computed_cents": computed, "difference_cents": diff}
    )
    for name, cents in (("stated", stated), ("computed", computed), ("difference", diff)):
        assert Decimal(total[name]) * 100 == cents
    assert total["checked"] is True


def test_a_total_that_cannot_be_checked_is_never_tied_and_names_the_rows() -> None:
    total = {
        "source_row": 40,
        "column": "Rent",
        "stated_cents": 100000,
        "computed_cents": 90000,
        "difference_cents": 0,
        "checked": False,
        "unreadable": [{"source_row": 12, "text": "n/a"}],
        "unreadable_rows": 3,
    }
    assert not is_tied(total)
    assert total_text(total, dollars) == (
        "does not tie to its own total row (row 40, Rent): it says 1,000.00; the lines that "
        'read as amounts add up to 900.00; the rest, 100.00, is row 12, rejected: "n/a" '
        "and 2 more rows"
    )
    bare = {**total, "unreadable": [], "unreadable_rows": 0}
    assert total_text(bare, dollars).endswith("the rest, 100.00, is unreadable rows")


def test_the_words_name_the_unit_what_else_it_sums_and_the_rows_that_tie_too() -> None:
    total = {
        "kind": "subtotal",
        "source_row": 9,
        "unit": "101",
        "column": "row totals",
        "also_sums": ["Deposit"],
        "stated_cents": 150000,
        "computed_cents": 150000,
        "difference_cents": 0,
        "rows_tied": 1200,
    }
    assert total_text(total, dollars) == (
        "ties out to its own subtotal row (row 9, unit 101, row totals), which also counts "
        "'Deposit', not charged: 1,500.00; 1,200 total and subtotal rows above it tie too"
    )


def test_a_bare_row_summing_the_lines_above_is_a_total_and_one_that_does_not_stays_data() -> None:
    rows = [
        ["101", "A", "10.00"],
        ["102", "B", "5.00"],
        ["", "", "15.00"],  # the file's total, its label left off
        ["103", "C", "1.00"],
        ["", "", "7.00"],  # sums nothing above it: a line missing its unit, left as data
    ]
    body = pd.DataFrame(rows)
    text = body.astype(str)
    kinds = pd.Series(["data"] * 5)
    marked = unlabelled_totals(body, text, kinds, LAYOUT).tolist()
    assert marked == ["data", "data", "subtotal", "data", "data"]
    # Without identity columns nothing can be told: unchanged.
    no_identity = Layout(PROFILE, (0,), {}, {2: "Rent"}, (0, 0))
    assert unlabelled_totals(body, text, kinds, no_identity) is kinds


def test_columns_of_amounts_nobody_charges_are_reported_unless_mostly_text() -> None:
    data = pd.DataFrame(
        {
            3: ["25.00", "0", "", "(5.00)"],
            4: ["yes", "no", "1.00", "n/a"],
            5: ["0.00", "0", None, ""],
        }
    )
    found = amount_columns(data, {3: "Pet Fee", 4: "Flag", 5: "Zero"})
    assert found == ({"header": "Pet Fee", "cells": 2, "total_cents": 2000},)
