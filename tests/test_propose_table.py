"""#38: a proposal finds its table by the shape of the rows (pipelines/reading/propose_table.py):
header rows (one to three, merged cells filled, line breaks joined), group rows, the total row;
properties over merged headers, sheet order and total rows."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pandas as pd
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from openpyxl import Workbook

from pipelines.reading.profiles import normalize_header
from pipelines.reading.propose import propose_layout
from pipelines.reading.propose_table import group_rows, header_rows, joined_headers
from tests.conftest import TEST_DATA


def test_a_merged_two_row_header_with_group_rows_is_proposed_as_the_profile_reads_it() -> None:
    """The senior-living roll (two header rows, "Accommodation" merged over "Per Period |
    Monthly", line breaks in cells, the property on a row merged across the sheet, a lone
    second resident under the primary's row, a stray cell under the totals): before, the
    proposal took the lower row alone and the property row as a unit, and charged nothing."""
    want = json.loads((TEST_DATA / "shape_senior_living.xlsx.expected.json").read_text())
    proposal = propose_layout(TEST_DATA / "shape_senior_living.xlsx")
    assert proposal is not None and proposal.usable
    assert proposal.header_rows == (3, 4)
    roles = {c.header: c.role for c in proposal.columns}
    assert roles == {
        "Unit": "unit",
        "Resident": "resident",
        "Care Level": "not_charged",
        "Move In Date": "not_charged",
        "Accommodation Per Period": "not_charged",
        "Accommodation Monthly": "charge",
        "Level of Care Monthly": "charge",
        "Total Monthly": "not_charged",
    }
    twin = {c.header: c for c in proposal.columns}["Accommodation Per Period"]
    assert "repeats column 'Accommodation Monthly'" in twin.evidence
    assert proposal.rows_used == want["rows_used"]  # the second resident counted, vacancies not
    assert proposal.total_cents == want["source_total_cents"] == proposal.stated_total_cents


def test_a_roll_whose_total_row_states_no_charged_figure_has_no_stated_total(
    tmp_path: Path,
) -> None:
    """A total row with figures only in columns not charged says nothing of the charges: the
    proposal's stated total is none, not 0.00 (it printed "the file's own total row says
    0.00")."""
    roll = tmp_path / "roll.csv"
    roll.write_text(
        "Unit,Tenant,Rent,Deposit\n"
        '101,"Ashby, Rowan",1000.00,500.00\n'
        '102,"Brant, Casey",1100.00,500.00\n'
        "Total,,,1000.00\n"
    )
    proposal = propose_layout(roll)
    assert proposal is not None and proposal.total_row == 4
    assert proposal.stated_total_cents is None and proposal.total_cents == 210_000


words = st.sampled_from(["Accommodation", "Care", "Level of Care", "Second Person", "Respite"])
leaves = st.lists(
    st.sampled_from(["Per Period", "Monthly", "Daily", "Rate", "Amount"]),
    min_size=1,
    max_size=3,
    unique=True,
)
breaks = st.sampled_from([" ", "\n", "\r\n", " \n "])


@given(
    st.lists(st.tuples(words, leaves), min_size=1, max_size=3, unique_by=lambda g: g[0]),
    breaks,
    st.integers(min_value=0, max_value=3),
    st.booleans(),
    st.booleans(),
)
def test_header_rows_are_found_over_merged_groups_whatever_the_title_block(
    groups: list[tuple[str, list[str]]], sep: str, titles: int, band: bool, group_row: bool
) -> None:
    """Property: a grid as read_grids gives it (merged cells filled) with ``titles`` title
    lines (merged across the sheet), an optional band row over the groups (a third header
    row), "Unit" and "Resident" merged down, each group over its leaves, and an optional
    property row merged across the sheet under the header: the header rows are exactly those,
    each column named "Group Leaf" once (line breaks joined), and the property row is a
    group row."""
    upper = ["Unit", "Resident"]
    lower = list(upper)
    expected = ["unit", "resident"]
    for group, names in groups:
        for leaf in names:
            upper.append(group.replace(" ", sep))
            lower.append(leaf)
            expected.append(normalize_header(f"{group} {leaf}"))
    width = len(upper)
    header = [upper, lower]
    if band:
        header.insert(0, ["Unit", "Resident", *["Charges"] * (width - 2)])
        expected = expected[:2] + [f"charges {e}" for e in expected[2:]]
    top = [[f"Title line {n}"] * width for n in range(titles)]
    below = [["Maple Court"] * width] if group_row else []
    data = [["101", "Ashby, Rowan", *["1.00"] * (width - 2)]] * 2
    grid = pd.DataFrame(top + header + below + data).fillna("").astype(str)
    rows = header_rows(grid)
    assert rows == tuple(range(titles, titles + len(header)))
    assert [normalize_header(h) for h in joined_headers(grid, rows)] == expected
    flags = group_rows(grid.iloc[rows[-1] + 1 :])
    assert list(flags) == [True] * len(below) + [False] * len(data)


def _roll_rows(people: int, total: bool, stray: bool) -> tuple[list[list[object]], int]:
    rows: list[list[object]] = [["Harbor PMS Resident Charges"], [], ["Unit", "Tenant", "Rent"]]
    cents = 0
    for n in range(people):
        rows.append([f"{101 + n}", f"Ashby{'x' * n}, Rowan", (1_000_00 + 137 * n) / 100])
        cents += 1_000_00 + 137 * n
    if total:
        rows.append(["Total", None, cents / 100])
    if stray:
        rows.append([None, None, people])  # a count, one row below
    return rows, cents


@hypothesis_settings(max_examples=10, deadline=None)
@given(
    st.permutations(["Export", "Copy", "Notes"]),
    st.integers(min_value=3, max_value=8),
    st.integers(min_value=1, max_value=2),
    st.booleans(),
    st.booleans(),
)
def test_the_export_sheet_is_proposed_in_any_order_and_its_total_row_ties(
    order: list[str], people: int, dropped: int, total: bool, stray: bool
) -> None:
    """Property: a workbook of the export, a hand-edited copy (a rent changed, rows dropped)
    and a notes sheet, in any order, is proposed from the export with all its rows; its
    total is the export's own total row (none when it has none), and a stray cell under it
    is no line."""
    export, cents = _roll_rows(people, total, stray)
    copy = [r if r[0] != "102" else [*r[:2], 1.0] for r in export[2 : 3 + people - dropped]]
    sheets = {"Export": export, "Copy": copy, "Notes": [["Exported by the manager"]]}
    book = Workbook()
    book.remove(book.active)  # type: ignore[arg-type]
    for name in order:
        sheet = book.create_sheet(name)
        for row in sheets[name]:
            sheet.append(row)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "roll.xlsx"
        book.save(path)
        proposal = propose_layout(path)
    assert proposal is not None and proposal.sheet == "Export"
    assert proposal.rows_used == people and proposal.total_cents == cents
    assert proposal.stated_total_cents == (cents if total else None)


block = st.tuples(
    st.sampled_from(["Oak Ridge", "1200 Elm Street Apartments", "The Pines, Phase 2", "Harbor 9"]),
    st.booleans(),  # "->" before the property's name
    st.booleans(),  # the group row merged across the sheet
    st.lists(st.sampled_from(["let", "vacant", "numeric"]), min_size=1, max_size=4),
    st.booleans(),  # an "N Units" subtotal row after the block
)


@hypothesis_settings(max_examples=10, deadline=None)
@given(st.lists(block, min_size=1, max_size=5), st.booleans())
def test_every_line_of_an_appfolio_roll_resaved_by_excel_is_read_whatever_its_blocks(
    blocks: list[tuple[str, bool, bool, list[str], bool]], grand_total: bool
) -> None:
    """Property (#38 point 6: an AppFolio roll re-saved by Excel, 21 property blocks, read
    556 of its 557 lines): property group rows with or without "->", merged across the sheet
    or not, units as numbers or text, vacant units first or last in a block, subtotal rows
    or none, a grand total or none: every let unit is one line, in its own property."""
    from pipelines.kinds import registered
    from pipelines.reading.extract import extract_file
    from pipelines.reading.grids import fingerprint
    from pipelines.reading.profiles import BUILTIN_PROFILES_DIR, load_profiles

    header = ["Unit", "Tenant", "Status", "Sqft", "Market Rent", "Rent", "Deposit", "Lease From"]
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    for line in (["Rent Roll"], ["Properties: All"], ["As of: 12/01/2026"], [None], header):
        sheet.append(line)
    want: list[tuple[str, str]] = []
    cents = 0
    for n, (name, arrow, merged, units, subtotal) in enumerate(blocks):
        prop = f"{name} {n}"
        sheet.append([f"{'-> ' if arrow else ''}{prop} - {100 + n} Main St Springfield, IL"])
        if merged:
            sheet.merge_cells(
                start_row=sheet.max_row, start_column=1, end_row=sheet.max_row, end_column=8
            )
        for i, what in enumerate(units):
            unit: object = 100 + i if what == "numeric" else f"{100 + i}"
            if what == "vacant":
                sheet.append([unit, None, "Vacant-Unrented", 850, 1900.0, 0.0, 0.0])
                continue
            rent = 1_000_00 + 137 * i + n
            cents += rent
            want.append((prop, f"{100 + i}"))
            sheet.append([unit, f"Tenant{n}x{i}, Alex", "Current", 850, 1900.0, rent / 100,
                          500.0, "06/01/2025"])  # fmt: skip
        if subtotal:
            sheet.append([f"{len(units)} Units"])
    if grand_total:
        sheet.append([f"Total {sum(len(b[3]) for b in blocks)} Units", None, None, None, None,
                      cents / 100])  # fmt: skip
    profiles = load_profiles(BUILTIN_PROFILES_DIR, kinds=registered())
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "rent_roll.xlsx"
        book.save(path)
        result = extract_file(fingerprint(path), profiles)
    assert result.profile == "appfolio_rent_roll"
    let = result.rows[result.rows["status"].eq("Current")]  # a vacant unit is skipped later
    got = [
        (str(p), str(u).removesuffix(".0"))
        for p, u in zip(let["property_name"], let["unit"], strict=True)
    ]
    assert got == want
