"""A file's own totals and subtotals checked against the lines they close."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

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


# --- column by column (#38) --------------------------------------------------------------------

RENT, PET, FEE, ROW_TOTAL = 1, 2, 3, 4


def _summary_layout(fee_known: bool = True) -> Layout:
    """A Charges Summary read by its profile: Rent and Pet Rent charged, a one-time fee the
    profile leaves out (``fee_known``) or a column nobody knows, and a "Total Charges"."""
    profile = load_profile(BUILTIN_PROFILES_DIR / "yardi_charges_summary.toml", registered())
    return Layout(
        profile=profile,
        header_rows=(0,),
        columns={UNIT: "unit"},
        charge_columns={RENT: "Rent", PET: "Pet Rent"},
        score=(1, 5),
        other_columns={FEE: "Residency Fee" if fee_known else "Misc Income"},
        row_total_column=ROW_TOTAL,
    )


def _summary(
    rows: list[tuple[int, int, int]], off_cents: int = 0
) -> tuple[pd.DataFrame, pd.Series]:
    """(rent, pet, fee) cents per lease; each row's Total Charges sums all three; the totals
    row states each column's sum (its row total ``off_cents`` more)."""

    def text(cents: int) -> str:
        return f"{cents / 100:.2f}"

    lines = [
        (f"{n + 101}", text(r), text(p), text(f), text(r + p + f))
        for n, (r, p, f) in enumerate(rows)
    ]
    sums = [sum(c) for c in zip(*rows, strict=True)] if rows else [0, 0, 0]
    lines.append(("Totals for Lakeview Terrace", *map(text, sums), text(sum(sums) + off_cents)))
    body = pd.DataFrame(lines, columns=[UNIT, RENT, PET, FEE, ROW_TOTAL], dtype=object)
    body.index = pd.RangeIndex(1, len(lines) + 1)
    kinds = pd.Series(["data"] * len(rows) + ["total"], index=body.index, dtype=object)
    return body, kinds


def test_a_row_total_that_also_sums_a_fee_not_charged_ties_column_by_column() -> None:
    """#38: every charged column ties to its own total; "Total Charges" also counts the
    one-time Residency Fee, which is reported, never a contradiction."""
    body, kinds = _summary([(150_000, 2_500, 30_000), (151_250, 0, 0), (152_500, 0, 0)])
    totals = {t["column"]: t for t in file_totals(body, kinds, _summary_layout())}
    assert set(totals) == {"Rent", "Pet Rent", "row totals"}
    assert all(is_tied(t) for t in totals.values())
    assert totals["Rent"]["stated_cents"] == 453_750
    assert totals["row totals"]["stated_cents"] == 486_250
    assert totals["row totals"]["also_sums"] == ["Residency Fee"]
    said = total_text(totals["row totals"], dollars)
    assert "also counts 'Residency Fee', not charged" in said and said.startswith("ties out")


def test_a_row_total_over_a_column_nobody_knows_ties_only_when_its_own_total_does() -> None:
    """A column neither charged nor known not to be a charge may be a charge left out. When
    the total row states no figure of its own for it, the row total that counts it does not
    tie (the file is refused, naming the column). When it does and that figure ties (#38: an
    AppFolio "REV: Utility Reimbursement"), the row total ties with it and names it as not
    known (``also_sums_unknown``), which holds the layout for a person to confirm."""
    body, kinds = _summary([(150_000, 2_500, 1_200), (151_250, 0, 1_200)])
    layout = _summary_layout(fee_known=False)
    (row_total,) = [t for t in file_totals(body, kinds, layout) if t["column"] == "row totals"]
    assert is_tied(row_total) and row_total["also_sums_unknown"] == ["Misc Income"]
    assert row_total["also_sums"] == ["Misc Income"]
    body.loc[body.index[-1], FEE] = ""  # the total row states nothing for the fee
    (row_total,) = [t for t in file_totals(body, kinds, layout) if t["column"] == "row totals"]
    assert row_total["difference_cents"] == -2_400
    assert "also_sums" not in row_total


def test_a_row_total_off_by_more_than_the_fee_is_a_difference() -> None:
    body, kinds = _summary([(150_000, 2_500, 30_000), (151_250, 0, 0)], off_cents=100)
    (row_total,) = [
        t for t in file_totals(body, kinds, _summary_layout()) if t["column"] == "row totals"
    ]
    assert row_total["difference_cents"] == -30_100  # against the charged columns alone
    assert "also_sums" not in row_total


cents = st.integers(min_value=-500_000, max_value=500_000)


@given(st.lists(st.tuples(cents, cents, st.integers(0, 90_000)), min_size=1, max_size=12))
def test_any_summary_whose_columns_tie_ties_whatever_its_fee(
    rows: list[tuple[int, int, int]],
) -> None:
    """Property: when each column's total states its own sum, every charged column ties and
    the row total ties (with the fee named exactly when the fee is not zero)."""
    body, kinds = _summary(rows)
    totals = {t["column"]: t for t in file_totals(body, kinds, _summary_layout())}
    assert all(is_tied(t) for t in totals.values())
    for header, at in (("Rent", 0), ("Pet Rent", 1)):
        if header in totals:
            assert totals[header]["stated_cents"] == sum(r[at] for r in rows)
    fee = sum(r[2] for r in rows)
    assert bool(totals["row totals"].get("also_sums")) == bool(fee)


@given(
    st.lists(st.tuples(cents, cents, st.integers(0, 90_000)), min_size=1, max_size=12),
    st.integers(min_value=1, max_value=10_000),
)
def test_any_row_total_off_by_a_cent_or_more_never_ties(
    rows: list[tuple[int, int, int]], off: int
) -> None:
    body, kinds = _summary(rows)
    body.iloc[-1, ROW_TOTAL] = f"{(sum(sum(r) for r in rows) + off) / 100:.2f}"
    (row_total,) = [
        t for t in file_totals(body, kinds, _summary_layout()) if t["column"] == "row totals"
    ]
    assert not is_tied(row_total)


def test_a_refusal_on_totals_says_which_profile_read_the_file_and_how_it_was_chosen(
    tmp_path: Path,
) -> None:
    """#38: "or name its profile with --profile" was said even when --profile was given. A
    profile named is said as named (by --profile); one detected is said, with the advice to
    name another."""
    from tests.conftest import run_cli

    roll = tmp_path / "roll.csv"
    roll.write_text(
        "Unit,Tenant,Property,Rent\n"
        '101,"Marrow, Dakota",Oak Ridge Apartments,1200.00\n'
        '102,"Whitlock, Rowan",Oak Ridge Apartments,1225.00\n'
        "Total,,,2000.00\n"
    )
    named = run_cli("check", "--offline", "--profile", "tieout_rent_roll", str(roll))
    assert named.returncode == 2 and "do not tie" in named.stderr
    said = " ".join(named.stderr.split())
    assert "name its profile with --profile" not in said
    assert "read with the profile tieout_rent_roll, named for it by --profile" in said
    detected = run_cli("check", "--offline", str(roll))
    said = " ".join(detected.stderr.split())
    assert "read as tieout_rent_roll: if another profile reads it, name that one" in said
