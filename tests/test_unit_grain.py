"""What a file is, before any money moves, from frames and titles made here: a report that is
not an input is named by its title or its columns (and a rent roll is never taken for one);
a rent roll of daily rates is refused; residents who are not current are never charged; an
event log, a tenant directory and a resident on several rows are each refused with the rows
that show it."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from pipelines.reading.grain import grain_findings, not_an_input, not_current_rows
from pipelines.reading.layout import Layout
from pipelines.reading.profiles import Profile

PROFILE = Profile(
    name="t",
    kind="charge",
    description="",
    columns={"unit": ("unit",), "resident_name": ("resident",), "status": ("status",)},
    required=("unit", "resident_name"),
    charge_mode="columns",
)


def layout(cells: tuple[str, ...], **overrides: Any) -> Layout:
    base: dict[str, Any] = {
        "profile": PROFILE,
        "header_rows": (0,),
        "columns": {0: "unit", 1: "resident_name"},
        "charge_columns": {2: "Rent"},
        "score": (0, 0),
        "cells": cells,
    }
    return Layout(**(base | overrides))


@pytest.mark.parametrize(
    ("title", "what"),
    [
        ("Tenant Directory - Oak Ridge", "tenant directory"),
        ("Resident Contacts", "tenant directory"),
        ("Monthly Census", "census"),
        ("Vacant Units as of 03/01/2026", "vacancy report"),
        ("2026 Budget", "12-month budget"),
        ("Budget vs Actual", "12-month budget"),
        ("Leasing Activity Summary", "leasing activity report"),
        ("Trial Balance", "general ledger"),
        ("Open Work Orders", "work order log"),
    ],
)
def test_a_report_that_is_not_an_input_is_named_by_its_title(title: str, what: str) -> None:
    found = not_an_input(["Oak Ridge Apartments", title], ["Unit", "Tenant", "Rent"])
    assert found is not None
    assert found.check == what
    assert found.message == f"this is a {what}: its title says {title!r}"


@pytest.mark.parametrize(
    "title",
    ["Rent Roll - Occupied and Vacant", "Budget Self Storage", "Resident Charges by Unit", ""],
)
def test_a_rent_roll_or_an_innocent_title_is_never_taken_for_another_report(title: str) -> None:
    assert not_an_input([title], ["Unit", "Tenant", "Rent"]) is None


@pytest.mark.parametrize(
    ("headers", "what", "why"),
    [
        (["Unit", "Jan", "Feb", "Mar", "Apr", "May", "Jun"], "12-month budget", "months"),
        (["Unit", "Days Vacant", "Make Ready"], "vacancy report", "'Days Vacant', 'Make Ready'"),
        (["Prospect", "Lead Source"], "leasing activity report", "'Prospect', 'Lead Source'"),
        (["WO #", "Priority", "Unit"], "work order log", "'WO #', 'Priority'"),
        (["Account", "Debit", "Credit"], "general ledger", "'Debit', 'Credit'"),
        (["Unit", "Tenant", "Phone", "Email"], "tenant directory", "no charge column"),
    ],
)
def test_a_header_alone_can_show_what_a_file_is(headers: list[str], what: str, why: str) -> None:
    found = not_an_input([], headers)
    assert found is not None and found.check == what
    assert why in found.message
    article = "an" if what[0] in "aeiou" else "a"
    assert found.message.startswith(f"this is {article} {what}: ")
    # A profile that reads the header decides by the title only.
    assert not_an_input([], headers, read=True) is None


def test_contacts_beside_a_charge_column_are_a_roll_and_one_debit_column_is_not_a_ledger() -> None:
    assert not_an_input([], ["Unit", "Tenant", "Phone", "Rent"]) is None
    assert not_an_input([], ["Unit", "Debit", "Debits"]) is None


def test_a_roll_of_daily_rates_is_refused_unless_a_month_is_stated_too() -> None:
    found = not_an_input(["Rent Roll"], ["Unit", "Resident", "Daily Rate"], read=True)
    assert found is not None and found.check == "daily rates"
    assert "'Daily Rate' column states a rate per day" in found.message
    assert not_an_input([], ["Unit", "Per Diem", "Monthly Rent"]) is None


def test_residents_who_are_gone_or_not_yet_there_are_found_by_any_status_column() -> None:
    text = pd.DataFrame(
        {
            0: ["101", "102", "103", "104", "105"],
            1: ["Ann", "Bo", "Cy", "Di", "Ed"],
            3: ["Current", "Past", "Future", "Applicant", "Notice"],
            4: ["", "", "", "", "Moved Out"],
        }
    )
    lay = layout(
        ("Unit", "Tenant", "Rent", "Status", "Lease Status"),
        columns={0: "unit", 1: "resident_name", 3: "status"},
    )
    assert not_current_rows(text, lay).tolist() == [False, True, True, True, True]
    vendors = layout(("Vendor", "Amount"), columns={0: "vendor_name"})
    assert not not_current_rows(text, vendors).any()


def rows_and_text(
    rows: list[list[str]], headers: tuple[str, ...]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    # Text by source row - 1 (the header is row 1), canonical columns with the source row.
    text = pd.DataFrame(rows, columns=range(len(headers)), index=range(1, len(rows) + 1))
    frame = pd.DataFrame(
        {
            "unit": text[0],
            "resident_name": text[1],
            "Rent": text[2],
            "source_row": range(2, len(rows) + 2),
        }
    )
    return frame, text


def test_an_event_column_makes_an_event_log_with_its_counts_and_rows() -> None:
    headers = ("Unit", "Tenant", "Rent", "Activity")
    frame, text = rows_and_text(
        [
            ["101", "Ann", "1000", "Move-in"],
            ["102", "Bo", "900", "Notice"],
            ["101", "Ann", "1000", "Renewal"],
            ["103", "Cy", "800", "Move in"],
        ],
        headers,
    )
    found, again = grain_findings(frame, text, layout(headers))
    assert found.check == "event log"
    assert "its 'Activity' column lists events (Move-in 1, Notice 1, Renewal 1, Move in 1)" in (
        found.message
    )
    assert found.rows == (2, 3, 4, 5)
    # Ann's two events are two rows of one resident too: said as well.
    assert again.check == "grain" and again.rows == (2, 4)


def test_the_same_rent_on_several_people_s_rows_of_a_unit_is_a_directory() -> None:
    headers = ("Unit", "Tenant", "Rent", "Other Occupants")
    frame, text = rows_and_text(
        [
            ["101", "Ann Lee", "1000.00", ""],
            ["101", "Bo Lee", "1000.00", "Other occupant"],
            ["102", "Cy Park", "900.00", ""],
        ],
        headers,
    )
    (found,) = grain_findings(frame, text, layout(headers))
    assert found.check == "directory"
    assert "1 units list the same Rent on several people's rows (unit 101: rows 2, 3 each " in (
        found.message
    )
    assert "1 rows, 1,000.00, would be charged again" in found.message
    assert "its 'Other Occupants' column says 'Other occupant' on 1 rows" in found.message
    assert found.rows == (2, 3)


def test_one_resident_on_two_rows_of_a_roll_with_a_column_per_charge_is_refused() -> None:
    headers = ("Unit", "Tenant", "Rent")
    frame, text = rows_and_text(
        [["101", "Ann Lee", "1000.00"], ["101", "ann lee", "25.00"], ["VACANT", "", ""]],
        headers,
    )
    (found,) = grain_findings(frame, text, layout(headers))
    assert found.check == "grain"
    assert found.message.startswith("has more than one row for 1 residents (Ann Lee, unit 101")
    assert '[charges] mode = "rows"' in found.message
    assert found.rows == (2, 3)


def test_a_clean_roll_and_a_file_of_no_residents_have_no_findings() -> None:
    headers = ("Unit", "Tenant", "Rent")
    frame, text = rows_and_text(
        [["101", "Ann", "1000"], ["102", "Bo", "1000"], ["103", "Vacant", "1000"]], headers
    )
    assert grain_findings(frame, text, layout(headers)) == ()
    assert grain_findings(frame, text.iloc[:0], layout(headers)) == ()
    bills = layout(("Vendor", "Amount"), columns={0: "vendor_name", 1: "amount"})
    assert grain_findings(frame, text, bills) == ()
