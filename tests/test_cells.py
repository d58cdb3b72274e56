"""Every cell a real workbook holds is read as what it is (#31): dates, times, booleans, error
values, formulas never calculated, merged titles. Each workbook is built here with openpyxl,
with real typed cells, as Yardi, AppFolio and Excel write them."""

from __future__ import annotations

import datetime as dt
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from openpyxl import Workbook

from pipelines.core.config import load_settings
from pipelines.core.errors import InputError
from pipelines.core.parsing import parse_money
from pipelines.kinds import registered
from pipelines.reading.grids import read_grids
from pipelines.reading.profile_init import draft_profile
from pipelines.runs.check import check_file

SETTINGS = replace(load_settings(env={}), period=dt.date(2026, 12, 1))


def _workbook(path: Path, rows: list[list[Any]], errors: dict[str, str] | None = None) -> Path:
    wb = Workbook()
    ws = wb.active
    for row in rows:
        ws.append(row)
    for ref, value in (errors or {}).items():
        ws[ref] = value
        ws[ref].data_type = "e"  # an error cell, as Excel stores "#REF!"
    wb.save(path)
    return path


@pytest.mark.parametrize(
    "cell",
    [
        dt.date(2024, 1, 2),
        dt.datetime(2024, 1, 2, 9, 30),
        dt.time(9, 30),
        dt.timedelta(hours=5),
        True,
        np.bool_(False),
        pd.Timestamp("2024-01-02"),
    ],
)
def test_a_cell_that_is_not_a_number_is_not_an_amount(cell: Any) -> None:
    """#31: conversion from datetime.date to Decimal is not supported (an internal error)."""
    cents, error = parse_money(pd.Series([cell, 12.5], dtype=object))
    assert pd.isna(cents.iloc[0]) and str(error.iloc[0]).endswith("is not an amount")
    assert cents.iloc[1] == 1250


def test_numbers_of_every_width_are_amounts_or_refused_by_size() -> None:
    cells = pd.Series([np.float32(1.5), np.int64(7), 10**30, 1e300, float("inf")], dtype=object)
    cents, error = parse_money(cells)
    assert cents.iloc[:2].tolist() == [150, 700]
    assert error.iloc[2].endswith("too large for an amount")
    assert error.iloc[3].endswith("too large for an amount")
    assert error.iloc[4].endswith("is not an amount")


def _resident_directory(path: Path, title: str = "Resident Directory") -> Path:
    """A Yardi resident directory: dates, times and flags under headers tieout does not know."""
    rows: list[list[Any]] = [
        [title],
        ["Property", "Unit", "Tenant", "Rent", "Lease Expiration", "Call Time", "Pets"],
    ]
    for n in range(4):
        rows.append(
            [
                "Oak Ridge Apartments",
                f"10{n}",
                f"Avery Example {n}",
                1200.0 + n,
                dt.date(2027, 1, n + 1),
                dt.time(9, 30),
                n % 2 == 0,
            ]
        )
    return _workbook(path, rows)


def test_check_reads_a_directory_with_date_time_and_boolean_cells(tmp_path: Path) -> None:
    """#31: a Yardi resident directory ended in an internal error from the amount detector;
    its columns, under a rent roll's title, read (#38: under its own title it is refused as
    the directory it is, with no internal error either)."""
    path = _resident_directory(tmp_path / "roll.xlsx", title="Resident Rent Roll")
    result = check_file(path, SETTINGS, None)
    s = result.summary
    assert s["rows_used"] == 4 and s["source_total_cents"] == 480600
    assert s["columns_not_charged"] == []  # dates, times and flags are not amounts
    with pytest.raises(InputError, match="this is a tenant directory: its title says"):
        check_file(_resident_directory(tmp_path / "directory.xlsx"), SETTINGS, None)


def test_profile_init_drafts_from_date_cells_under_two_row_headers(tmp_path: Path) -> None:
    """#31: `profile init` crashed on date cells under "Lease / From", "Move / In"."""
    rows: list[list[Any]] = [
        ["Unit", "Resident", "Lease", "Move", "Rent"],
        ["", "", "From", "In", ""],
    ]
    rows += [
        [f"10{n}", f"Avery Example {n}", dt.date(2026, 1, n + 1), dt.datetime(2025, 5, 1), 1200.0]
        for n in range(4)
    ]
    text = draft_profile(
        _workbook(tmp_path / "expirations.xlsx", rows), registered().source("charge")
    )
    assert '"Rent": charged' in text and "# Tried on expirations.xlsx" in text


def _merged_title_roll(path: Path) -> Path:
    headers = [
        "Property",
        "Unit",
        "Resident",
        "Lease From",
        "Lease To",
        "Rent",
        "Deposit",
        "Status",
    ]
    headers += ["Phone", "Email", "Sq Ft", "Market", "Parking"]
    wb = Workbook()
    ws = wb.active
    ws.append(["Resident Lease Expirations"])
    ws.merge_cells(start_row=1, start_column=1, end_row=1, end_column=len(headers))
    ws.append(headers)
    for n in range(4):
        ws.append(
            [
                *["Oak Ridge Apartments", f"10{n}", f"Avery Example {n}", dt.date(2026, 1, 1)],
                *[dt.date(2026, 12, 31), 1200.0, 500, "Current", "555-0100", "a@example.com"],
                *[900, 1300.0, 25],
            ]
        )
    wb.save(path)
    return path


def test_profile_init_never_takes_a_merged_title_for_the_header(tmp_path: Path) -> None:
    """#31: the title merged over 13 columns repeats its text in each, and was taken for the
    header ("Resident Lease Expirations" × 13); the draft then ended `check` in StopIteration."""
    path = _merged_title_roll(tmp_path / "expirations.xlsx")
    text = draft_profile(path, registered().source("charge"))
    assert "header on row 2" in text and '"Unit": unit' in text
    draft = tmp_path / "draft.toml"
    draft.write_text(text, encoding="utf-8")
    s = check_file(path, replace(SETTINGS, profile=str(draft)), None).summary
    assert (s["rows_used"], s["source_total_cents"]) == (4, 4 * 122500)


def test_a_profile_whose_header_names_no_column_is_no_match(tmp_path: Path) -> None:
    """#31: a draft drafted from a merged title maps none of the real header's columns:
    `check --profile` ended in `internal error (StopIteration)`."""
    path = _merged_title_roll(tmp_path / "expirations.xlsx")
    draft = tmp_path / "draft.toml"
    draft.write_text(
        'name = "draft_expirations"\nkind = "charge"\ndescription = "d"\nrequired = []\n\n'
        '[columns]\nnotes = ["remarks"]\n\n'
        '[charges]\nmode = "columns"\ninclude = ["rent"]\n',
        encoding="utf-8",
    )
    with pytest.raises(InputError, match="no header row matches"):
        check_file(path, replace(SETTINGS, profile=str(draft)), None)


def _roll_with(path: Path, rent: Any, errors: dict[str, str] | None = None) -> Path:
    rows = [
        ["Property", "Unit", "Resident", "Rent", "Parking"],
        ["Oak Ridge Apartments", "101", "Avery Example", 1200.0, 50.0],
        ["Oak Ridge Apartments", "102", "Blake Example", rent, 50.0],
    ]
    return _workbook(path, rows, errors)


@pytest.mark.parametrize("error", ["#REF!", "#N/A", "#DIV/0!"])
def test_an_error_cell_is_seen_never_read_as_blank(tmp_path: Path, error: str) -> None:
    """An error cell was read as an empty one: a unit whose rent is #REF! was charged nothing
    for rent, silently. It is the row's reason to be rejected."""
    path = _roll_with(tmp_path / "roll.xlsx", None, {"D3": error})
    s = check_file(path, SETTINGS, None).summary
    assert s["rows_used"] == 1 and s["rows_rejected"] == 1
    assert any(f'"{error}" is not an amount' in r for r in s["rejected"][0]["reasons"])


def test_a_formula_never_calculated_is_seen_and_a_calculated_one_read(tmp_path: Path) -> None:
    """A workbook written by a program and never opened in Excel holds formulas without
    values: read as blanks, the rent was silently not charged."""
    path = _roll_with(tmp_path / "roll.xlsx", "=D2+5")
    s = check_file(path, SETTINGS, None).summary
    assert s["rows_rejected"] == 1
    assert any("=D2+5 (not calculated)" in r for r in s["rejected"][0]["reasons"])
    # The same formula as Excel saves it, with its value: read as that value.
    calculated = tmp_path / "calculated.xlsx"
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(calculated, "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                assert b"<f>D2+5</f><v" in data
                data = data.replace(b"<f>D2+5</f><v />", b"<f>D2+5</f><v>1205</v>")
                data = data.replace(b"<f>D2+5</f><v></v>", b"<f>D2+5</f><v>1205</v>")
            target.writestr(item, data)
    s = check_file(calculated, SETTINGS, None).summary
    assert (s["rows_used"], s["source_total_cents"]) == (2, 120000 + 120500 + 10000)


def test_error_cells_are_placed_where_the_sheet_has_them(tmp_path: Path) -> None:
    """Beyond the last value calamine sees, in a sheet that starts at C3, with a shared formula."""
    wb = Workbook()
    ws = wb.active
    ws["C3"] = "Unit"
    ws["D4"] = 1
    ws["F6"] = "#N/A"
    ws["F6"].data_type = "e"
    ws["G7"] = "=SUM(D4:D5)"
    wb.save(tmp_path / "sparse.xlsx")
    [(_, grid)] = read_grids(tmp_path / "sparse.xlsx")
    assert grid.iat[2, 2] == "Unit" and grid.iat[5, 5] == "#N/A"
    assert grid.iat[6, 6] == "=SUM(D4:D5) (not calculated)"
    assert grid.shape == (7, 7)


def test_a_drafted_wide_roll_never_maps_a_charge_code_column(tmp_path: Path) -> None:
    """Found by the typed-cell property test: a wide roll with a "Charge Code" column was
    drafted with charge_code mapped beside its charge columns, and `check --profile` ended in
    `internal error (ValueError: melt output columns cannot contain duplicate names)`."""
    rows: list[list[Any]] = [["Property", "Unit", "Resident", "Charge Code", "Rent"]]
    rows += [
        ["Oak Ridge Apartments", f"10{n}", f"Avery Example {n}", "RENT", 900.0] for n in range(3)
    ]
    path = _workbook(tmp_path / "roll.xlsx", rows)
    text = draft_profile(path, registered().source("charge"))
    assert "charge_code =" not in text and '"Charge Code": left out' in text
    draft = tmp_path / "draft.toml"
    draft.write_text(text, encoding="utf-8")
    s = check_file(path, replace(SETTINGS, profile=str(draft)), None).summary
    assert (s["rows_used"], s["source_total_cents"]) == (3, 270000)
