"""Row kinds and sheet shapes, on small sheets made in the test: which rows are data, and
which are blank, a repeated header, a group, a subtotal, a total, a note or a section of
residents who are not current; a sheet's title block, its rank as the export's own, its likely
header, and a second resident's unit."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from pipelines.core.models import GrainFinding
from pipelines.reading.grain import NOT_CURRENT
from pipelines.reading.layout import Layout
from pipelines.reading.profiles import Profile
from pipelines.reading.rowkinds import classify_rows
from pipelines.reading.shapes import (
    cell_text,
    fill_down,
    first_texts,
    likely_header,
    second_residents,
    sheet_rank,
    stray_cells,
    title_block_lines,
    what_it_is,
)

COLUMNS = {"unit": ("unit",), "resident_name": ("resident",), "property_name": ("property",)}


def profile(**overrides: Any) -> Profile:
    base: dict[str, Any] = {
        "name": "t",
        "kind": "charge",
        "description": "",
        "columns": COLUMNS,
        "required": ("unit", "resident_name"),
        "charge_mode": "columns",
    }
    return Profile(**(base | overrides))


def layout(prof: Profile | None = None, **overrides: Any) -> Layout:
    base: dict[str, Any] = {
        "profile": prof or profile(),
        "header_rows": (0,),
        "columns": {0: "unit", 1: "resident_name"},
        "charge_columns": {2: "Rent"},
        "score": (0, 0),
        "cells": ("Unit", "Resident", "Rent"),
    }
    return Layout(**(base | overrides))


def kinds(rows: list[list[Any]], lay: Layout | None = None) -> list[str]:
    body = pd.DataFrame(rows)
    out: list[str] = classify_rows(body, cell_text(body), lay or layout()).tolist()
    return out


def test_a_printed_report_s_rows_are_told_apart() -> None:
    rows = [
        ["101", "Ann", "1000"],
        ["", None, ""],
        ["----", "", ""],
        ["Unit", "Resident", "Rent"],  # repeated at a page break
        ["-> Oak Ridge", "", ""],
        ["102", "Bob", "900"],
        ["Subtotal", "", "1900"],
        ["2 Units", "", "1900"],
        ["Grand Total", "", "1900"],
        ["* includes late fees", "", ""],
    ]
    assert kinds(rows) == [
        "data",
        "blank",
        "blank",
        "header",
        "group",
        "data",
        "subtotal",
        "subtotal",
        "total",
        "note",
    ]


UNITS = st.from_regex(r"[A-Z]?[1-9][0-9]{0,3}", fullmatch=True)
NAMES = st.from_regex(r"[A-Z][a-z]{1,8}, [A-Z][a-z]{1,8}", fullmatch=True)
AMOUNTS = st.integers(-100_000, 1_000_000).map(lambda c: f"{c / 100:.2f}")


@given(st.lists(st.tuples(UNITS, NAMES, AMOUNTS), min_size=1, max_size=30))
def test_rows_of_a_unit_a_name_and_an_amount_are_always_data(
    rows: list[tuple[str, str, str]],
) -> None:
    assert kinds([list(r) for r in rows]) == ["data"] * len(rows)


def test_a_lone_text_without_an_amount_is_a_note_but_a_lone_amount_is_data() -> None:
    rows = [["101", "Ann", "10.00"], ["see attached", "", ""], ["", "", "5.00"]]
    assert kinds(rows) == ["data", "note", "data"]


def test_below_the_last_total_only_a_row_with_an_amount_and_a_name_is_data() -> None:
    rows = [
        ["101", "Ann", "10.00"],
        ["Total", "", "10.00"],
        ["Vacant-Unrented: 3", "", ""],
        ["", "", "26"],  # a count left over below the totals
        ["103", "Cy", "7.00"],
    ]
    assert kinds(rows) == ["data", "total", "note", "note", "data"]


def test_where_each_unit_closes_with_its_own_total_a_vacant_unit_after_it_is_kept() -> None:
    yardi = layout(profile(fill_down=("unit",)))
    rows = [["101", "Ann", "10.00"], ["Total", "", "10.00"], ["102", "VACANT", ""]]
    assert kinds(rows, yardi) == ["data", "total", "data"]


def test_a_group_row_is_known_by_its_shape_when_the_profile_groups_rows() -> None:
    grouped = layout(profile(group_sets="property_name"))
    rows = [["Oak Ridge", "", ""], ["101", "Ann", "10.00"], ["Elm Court", "", ""]]
    # The last has no data after it: a note, not a group.
    assert kinds(rows, grouped) == ["group", "data", "note"]
    assert kinds(rows) == ["note", "data", "note"]


def test_one_text_merged_across_the_sheet_is_a_group_before_data_else_a_note() -> None:
    grouped = layout(profile(group_sets="property_name"))
    rows = [
        ["Oak Ridge", "Oak Ridge", "Oak Ridge"],
        ["101", "Ann", "10.00"],
        ["Legend", "Legend", ""],
        ["102", "Bo", "1.00"],
    ]
    assert kinds(rows, grouped) == ["group", "data", "group", "data"]
    assert kinds(rows) == ["note", "data", "note", "data"]


def test_two_equal_amounts_side_by_side_are_not_a_merged_title() -> None:
    rows = [["101", "Ann", "10.00"], ["100.00", "100.00", "100.00"]]
    assert kinds(rows) == ["data", "data"]


def test_residents_who_are_not_current_and_the_summary_block_are_never_data() -> None:
    yardi = layout(
        profile(
            note_patterns=(r"^current/notice",),
            not_current_patterns=(r"^future residents",),
            summary_patterns=(r"^summary groups",),
        )
    )
    rows = [
        ["Current/Notice/Vacant Residents", "", ""],
        ["101", "Ann", "10.00"],
        ["Future Residents/Applicants", "", ""],
        ["104", "Dee", "12.00"],
        ["", "", ""],
        ["Current/Notice/Vacant Residents", "", ""],
        ["105", "Eve", "13.00"],
        ["Summary Groups", "", ""],
        ["Current", "", "23.00"],
    ]
    assert kinds(rows, yardi) == [
        "note",
        "data",
        "note",
        NOT_CURRENT,
        "blank",
        "note",
        "data",
        "note",
        "note",
    ]


def test_a_header_repeated_with_the_profile_s_own_names_is_a_header_row() -> None:
    rows = [["101", "Ann", "1"], ["UNIT", "resident", "Rent"], ["Unit", "Ann", "2"]]
    # Two mapped columns named: a header; one only (a unit called "Unit"?) stays data.
    assert kinds(rows) == ["data", "header", "data"]


def test_first_texts_are_each_row_s_leftmost_filled_cell() -> None:
    text = pd.DataFrame([["", "b", "c"], ["a", "", ""], ["", "", ""]])
    assert first_texts(text).tolist() == ["b", "a", ""]


def test_the_title_block_keeps_each_line_once() -> None:
    above = pd.DataFrame(
        [
            ["Oak Ridge", "Oak Ridge", ""],
            ["Rent Roll\nAs of 03/01/2026", "", "Rent Roll\nAs of 03/01/2026"],
            ["", "", ""],
            ["Page 1", "", "Printed by pat"],
        ]
    ).fillna("")
    assert title_block_lines(above) == [
        "Oak Ridge",
        "Rent Roll",
        "As of 03/01/2026",
        "Page 1 Printed by pat",
    ]


def test_the_export_s_own_sheet_outranks_a_copy_pasted_by_hand() -> None:
    export = pd.DataFrame(
        [
            ["Rent Roll", None, None],
            ["Unit", "Resident", "Rent"],
            ["101", "Ann", 10],
            ["Total", None, 10],
        ]
    )
    copy = export.iloc[1:3].reset_index(drop=True)
    assert sheet_rank(export, (1,)) == (1, 1, 2)
    assert sheet_rank(copy, (0,)) == (0, 0, 1)
    assert sheet_rank(export, (1,)) > sheet_rank(copy, (0,))


def test_the_likely_header_names_the_most_different_columns() -> None:
    table = pd.DataFrame(
        [
            ["Rent Roll", "Rent Roll", "Rent Roll"],
            [None, None, None],
            ["Unit", "Resident", "Rent"],
            ["101", "Ann", 10.0],
        ]
    )
    assert likely_header(table) == 2
    assert likely_header(pd.DataFrame([[1, 2, 3], [4, 5, 6]])) is None
    assert likely_header(pd.DataFrame()) is None


def test_a_second_resident_takes_the_unit_above_but_never_across_a_total() -> None:
    rows = pd.DataFrame(
        {
            "unit": ["101", "", "102", None, ""],
            "resident_name": ["Ann", "Al", "Bo", "", "Cy"],
        }
    )
    non_data = pd.Series([False, False, False, False, False])
    out = second_residents(rows, non_data, profile())
    assert out["unit"].fillna("-").tolist() == ["101", "101", "102", "-", "102"]
    # A total row between them: the resident after it keeps no unit.
    cut = pd.Series([False, False, False, True, False])
    out = second_residents(rows, cut, profile())
    assert out["unit"].fillna("-").tolist() == ["101", "101", "102", "-", ""]


def test_a_first_row_without_a_unit_keeps_none_and_full_rows_are_untouched() -> None:
    rows = pd.DataFrame({"unit": ["", "101"], "resident_name": ["Al", "Bo"]})
    non_data = pd.Series([False, False])
    assert second_residents(rows, non_data, profile())["unit"].tolist() == ["", "101"]
    full = pd.DataFrame({"unit": ["1", "2"], "resident_name": ["A", "B"]})
    assert second_residents(full, non_data, profile()) is full
    assert second_residents(full.drop(columns="unit"), non_data, profile()).equals(
        full.drop(columns="unit")
    )


def test_a_profile_that_fills_down_carries_the_unit_row_to_its_sub_rows() -> None:
    rows = pd.DataFrame(
        {
            "unit": ["101", "", "", "Total", "102", ""],
            "resident_name": ["Ann", "", "nan", "", "Bo", ""],
            "charge_code": ["RENT", "PET", "PARK", "", "RENT", "PET"],
        }
    )
    non_data = pd.Series([False, False, False, True, False, False])
    out = fill_down(rows, non_data, profile(fill_down=("unit", "resident_name", "absent")))
    assert out["unit"].tolist() == ["101", "101", "101", "Total", "102", "102"]
    # The total row's own blank cells stay blank (missing), never filled from above.
    assert out["resident_name"].fillna("-").tolist() == ["Ann", "Ann", "Ann", "-", "Bo", "Bo"]
    # Without fill_down, only a lone second resident would move.
    assert fill_down(rows, non_data, profile())["unit"].tolist() == rows["unit"].tolist()


def test_what_a_title_says_the_file_is_comes_first_unless_its_rows_show_it() -> None:
    title = GrainFinding("directory", "the title says a directory", ())
    rows = GrainFinding("several rows", "two rows for Ann", (3, 4))
    assert what_it_is((rows,), None) == (rows,)
    assert what_it_is((rows,), title) == (title, rows)
    shown = GrainFinding("directory", "rents repeated", (5,))
    assert what_it_is((shown,), title) == (shown,)


def test_stray_cells_are_lone_figures_beside_no_name() -> None:
    text = pd.DataFrame([["", "", "26"], ["101", "", ""], ["", "Ann", "5"], ["", "", ""]])
    count = (text != "").sum(axis=1).to_numpy()
    assert stray_cells(text, count, layout()).tolist() == [True, False, False, False]
    nameless = layout(columns={2: "amount"})
    assert not stray_cells(text, count, nameless).any()
    assert isinstance(stray_cells(text, count, nameless), np.ndarray)


def test_cell_text_is_stripped_text_with_blanks_for_missing() -> None:
    grid = pd.DataFrame([[" a ", None, 3]])
    assert cell_text(grid).iloc[0].tolist() == ["a", "", "3"]
