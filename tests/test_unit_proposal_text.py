"""What a clerk reads of a proposal and the profile a confirmation writes, built from
proposals made by hand: the screen says the rows, the totals and the exact command; the
profile is valid TOML whatever the headers hold, loads as a profile, and says every column."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipelines.core.errors import InputError
from pipelines.kinds import registered
from pipelines.reading.profiles import load_profile, normalize_header
from pipelines.reading.proposal_text import (
    CHARGED,
    _toml_string,
    proposal_lines,
    proposal_profile,
)
from pipelines.reading.propose import Column, Proposal


def proposal(*columns: Column, sheet: str | None = None, stated: int | None = 150000) -> Proposal:
    return Proposal(
        file_name="roll.xlsx",
        sheet=sheet,
        header_rows=(3,),
        columns=columns,
        rows_used=1234,
        total_cents=150000,
        total_row=1240 if stated is not None else None,
        stated_total_cents=stated,
    )


UNIT = Column(0, "Apt #", "unit", "units like 101, 102")
RESIDENT = Column(1, "Tenant", "resident", "names")
RENT = Column(2, "Actual Rent", "charge", "money", sum_cents=150000)
DEPOSIT = Column(3, "Deposit", "not_charged", "a deposit is held, not charged", sum_cents=5)
NOTES = Column(4, "Notes", "unknown", "text")


@given(st.text(max_size=60))
def test_a_toml_string_reads_back_as_the_text_it_was(text: str) -> None:
    assert tomllib.loads(f"v = {_toml_string(text)}")["v"] == text


def test_the_screen_says_the_header_row_the_columns_the_total_and_the_command() -> None:
    p = proposal(UNIT, RESIDENT, RENT, DEPOSIT, sheet="Rent Roll")
    lines = proposal_lines("roll.xlsx", p.as_dict(), "tieout layout accept roll.xlsx")
    assert lines[0] == (
        "roll.xlsx: held, not posted: no known layout; tieout proposes "
        "(sheet 'Rent Roll', header on row 3):"
    )
    assert [line.split()[0] for line in lines[1:5]] == ["Apt", "Tenant", "Actual", "Deposit"]
    assert "would post 1,234 rows, 1,500.00" in lines[5]
    assert "the file's own total row (row 1240) says 1,500.00" in lines[5]
    assert lines[-1] == "  nothing moves until you confirm it: tieout layout accept roll.xlsx"
    assert "--charge H" in lines[-2]


def test_without_a_command_the_screen_stops_at_the_totals() -> None:
    lines = proposal_lines("roll.csv", proposal(UNIT, RESIDENT, RENT, stated=None).as_dict(), None)
    assert lines[-1].endswith("the file has no total row to tie it to")
    assert not any("confirm" in line for line in lines)
    assert "sheet" not in lines[0]


def test_a_header_with_control_characters_cannot_forge_a_line() -> None:
    sneaky = Column(2, "Rent\n\x1b[31mFAKE", "charge", "money\rover", sum_cents=1)
    lines = proposal_lines("r.csv", proposal(UNIT, RESIDENT, sneaky).as_dict(), None)
    assert len(lines) == 5
    assert not any("\n" in line or "\x1b" in line or "\r" in line for line in lines)


def test_a_credit_total_is_shown_as_accountants_write_it() -> None:
    p = Proposal("r.csv", None, (1,), (UNIT, RESIDENT, RENT), 2, -4500, None, None)
    lines = proposal_lines("r.csv", p.as_dict(), None)
    assert "would post 2 rows, (45.00)" in lines[-1]


def test_a_confirmed_profile_loads_and_ignores_every_other_column_by_name(
    tmp_path: Path,
) -> None:
    text = proposal_profile(proposal(UNIT, RESIDENT, RENT, DEPOSIT, NOTES), "my_roll", "pat")
    data = tomllib.loads(text)
    assert data["name"] == "my_roll"
    assert data["kind"] == "charge"
    assert data["required"] == ["unit", "resident_name"]
    assert data["columns"] == {"unit": ["apt #"], "resident_name": ["tenant"]}
    assert data["charges"] == {
        "mode": "columns",
        "include": ["actual rent"],
        "ignore": [
            "deposit",
            "notes",
        ],
    }
    assert "join" not in data
    assert text.startswith("# Confirmed by pat from roll.xlsx, header on row 3.\n")
    for column in (UNIT, RESIDENT, RENT, DEPOSIT, NOTES):
        assert f"#   {column.header}: {column.role}" in text
    path = tmp_path / "my_roll.toml"
    path.write_text(text)
    profile = load_profile(path, registered())
    assert profile.charge_mode == "columns"
    assert profile.charge_columns_include == ("actual rent",)


def test_a_property_column_is_required_and_two_name_columns_are_joined() -> None:
    first = Column(1, "First Name", "resident", "first names")
    last = Column(5, "Last Name", "resident", "last names")
    prop = Column(6, "Community", "property", "one name")
    credit = Column(7, "Concession", "credit", "negative money", sum_cents=-100)
    text = proposal_profile(
        proposal(UNIT, last, first, prop, RENT, credit, sheet="S1"), "joined", "pat"
    )
    data = tomllib.loads(text)
    assert data["required"] == ["unit", "resident_name", "property_name"]
    assert data["columns"]["property_name"] == ["community"]
    assert data["join"] == {"resident_name": ["last name", "first name"]}
    assert data["charges"]["include"] == ["actual rent", "concession"]
    # The second name column is read through the join, never charged nor mapped twice.
    assert data["charges"]["ignore"] == ["first name"]
    assert "(sheet 'S1')" in text.splitlines()[0]
    assert set(CHARGED) == {"charge", "credit"}


@pytest.mark.parametrize("role", ["not_charged", "unknown", "one_time"])
def test_a_proposal_with_nothing_charged_is_refused_saying_how_to_name_a_charge(
    role: str,
) -> None:
    p = proposal(UNIT, RESIDENT, Column(2, "Rent", role, "money"))
    with pytest.raises(InputError, match="nothing would be charged: name a charge column"):
        proposal_profile(p, "x", "pat")


def test_a_name_and_a_confirmer_with_quotes_still_make_valid_toml() -> None:
    text = proposal_profile(proposal(UNIT, RESIDENT, RENT), 'say "yes"\\', "o'neil\nx")
    data = tomllib.loads(text)
    assert data["name"] == 'say "yes"\\'
    assert "o'neil\\nx" in text.splitlines()[0]


def test_headers_that_normalize_to_nothing_are_not_ignored_twice_or_blank() -> None:
    blank = Column(8, "---", "unknown", "")
    again = Column(9, "Notes", "unknown", "")
    data = tomllib.loads(
        proposal_profile(proposal(UNIT, RESIDENT, RENT, NOTES, blank, again), "n", "p")
    )
    assert data["charges"]["ignore"] == ["notes"]
    assert normalize_header("---") == ""
