"""Charge reference numbers as properties: the same lines get the same numbers whatever their
order or amounts; every line of a file gets its own; and against what was posted, a file
re-sorted, grown or corrected keeps the numbers of what it restates and gives only new lines
numbers no posted record holds."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from pipelines.kinds.charge.references import (
    POSTED_COLUMNS,
    REFERENCE_LENGTH,
    REFERENCE_PREFIX,
    SECOND_CHARGE,
    Unmatched,
    identity_bits,
    match_posted,
    reference_bits,
    reference_numbers,
    renumber,
    unmatched_text,
)

RESIDENTS = st.sampled_from(["r1", "r2", "r3"])
CODES = st.sampled_from(["RENT", "PET", "PARK"])
DATES = st.sampled_from(["2026-03-01", "2026-04-01"])
LINE = st.tuples(RESIDENTS, CODES, DATES, st.integers(-50_000, 500_000))


def lines(rows: Sequence[tuple[str, str, str, int]], source: str = "roll.xlsx") -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "kind": ["charge" if cents >= 0 else "credit" for *_, cents in rows],
            "resident_id": [r for r, _, _, _ in rows],
            "charge_code_id": [c for _, c, _, _ in rows],
            "transaction_date": [d for _, _, d, _ in rows],
            "amount_cents": [cents for *_, cents in rows],
            "content_hash": [f"{r}|{c}|{d}|{cents}" for r, c, d, cents in rows],
            "source_row": [i + 2 for i in range(len(rows))],
            "source_rows": [[i + 2] for i in range(len(rows))],
            "source_file": source,
            "integration_id": "int",
        }
    )
    frame["reference_number"] = reference_numbers(frame, "int")
    frame["record_key"] = frame["kind"] + ":int:" + frame["reference_number"]
    return frame


def posted_from(frame: pd.DataFrame, run_id: str = "run1") -> pd.DataFrame:
    return frame.assign(seq=range(len(frame)), run_id=run_id)


@given(st.lists(LINE, min_size=1, max_size=25))
def test_every_line_of_a_file_has_its_own_well_formed_number(
    rows: list[tuple[str, str, str, int]],
) -> None:
    numbers = lines(rows)["reference_number"]
    assert numbers.is_unique
    assert all(
        re.fullmatch(f"{REFERENCE_PREFIX}[A-Z2-7]{{{REFERENCE_LENGTH - 2}}}", n) for n in numbers
    )


@given(st.lists(LINE, min_size=1, max_size=25))
def test_numbers_depend_on_identity_and_order_among_equals_never_on_amounts(
    rows: list[tuple[str, str, str, int]],
) -> None:
    first = lines(rows)
    changed = lines([(r, c, d, cents + 1) for r, c, d, cents in rows])
    assert first["reference_number"].tolist() == changed["reference_number"].tolist()
    # Numbered the same, read again: deterministic.
    assert lines(rows)["reference_number"].equals(first["reference_number"])
    # Another integration: every number changes.
    other = reference_numbers(first, "int-2")
    assert not set(other) & set(first["reference_number"])


def test_lines_of_one_identity_are_numbered_by_their_order_in_the_file() -> None:
    rows = [("r1", "PET", "2026-03-01", 100), ("r1", "PET", "2026-03-01", 200)]
    a = lines(rows)["reference_number"].tolist()
    b = lines(list(reversed(rows)))["reference_number"].tolist()
    # The first line of the identity has the same number whichever amount it holds.
    assert a == b
    bits = reference_bits(lines(rows), "int")
    assert bits.dtype == np.uint64 and len(set(bits.tolist())) == 2


def test_identity_bits_ignore_the_ordinal() -> None:
    frame = lines([("r1", "PET", "2026-03-01", 1), ("r1", "PET", "2026-03-01", 2)])
    bits = identity_bits(frame, "int")
    assert bits[0] == bits[1]
    assert identity_bits(frame, "other")[0] != bits[0]


@given(st.lists(LINE, min_size=1, max_size=20), st.permutations(range(20)))
def test_a_re_sorted_file_keeps_the_numbers_of_every_line_it_restates(
    rows: list[tuple[str, str, str, int]], order: list[int]
) -> None:
    first = lines(rows)
    shuffled_rows = [rows[i] for i in order if i < len(rows)]
    again = lines(shuffled_rows)
    matched = match_posted(again, posted_from(first), "int")

    # Each line says what a posted record said: it takes the number of a record saying it.
    def by_content(contents: pd.Series, numbers: pd.Series) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for content, number in zip(contents, numbers, strict=True):
            out.setdefault(str(content), []).append(str(number))
        return {k: sorted(v) for k, v in out.items()}

    assert by_content(again["content_hash"], matched.reference_number) == by_content(
        first["content_hash"], first["reference_number"]
    )
    assert sorted(matched.reference_number) == sorted(first["reference_number"])
    assert matched.unmatched == []
    assert matched.second == {}


@given(st.lists(LINE, min_size=1, max_size=15), st.lists(LINE, min_size=1, max_size=5))
def test_lines_added_get_numbers_no_posted_record_holds(
    rows: list[tuple[str, str, str, int]], added: list[tuple[str, str, str, int]]
) -> None:
    first = lines(rows)
    grown = lines([*added, *rows])  # added at the top: file order changed for everyone
    matched = match_posted(grown, posted_from(first), "int")
    numbers = matched.reference_number.tolist()
    assert len(set(numbers)) == len(numbers)
    assert set(first["reference_number"]) <= set(numbers)
    assert matched.unmatched == []


def test_a_corrected_amount_keeps_its_number_and_a_line_left_out_is_said() -> None:
    first = lines([("r1", "RENT", "2026-03-01", 120000), ("r2", "RENT", "2026-03-01", 110000)])
    corrected = lines([("r1", "RENT", "2026-03-01", 125000)], "Roll.csv")
    matched = match_posted(corrected, posted_from(first), "int")
    assert matched.reference_number.tolist() == [first.at[0, "reference_number"]]
    assert [u.amount_cents for u in matched.unmatched] == [110000]
    text = unmatched_text(matched.unmatched[0])
    assert text.startswith(f"the charge {first.at[1, 'reference_number']} ($1,100.00), posted")
    assert "stays as posted" in text and "nothing was done" in text


def test_nothing_posted_or_nothing_numbered_here_changes_nothing() -> None:
    first = lines([("r1", "RENT", "2026-03-01", 1)])
    assert match_posted(first, first.iloc[:0], "int").reference_number.equals(
        first["reference_number"]
    )
    assert match_posted(first.iloc[:0], posted_from(first), "int").unmatched == []
    # A number the source gave (not derived here) is never renumbered.
    given_number = first.assign(reference_number="SRC-1")
    assert match_posted(given_number, posted_from(first), "int").reference_number.tolist() == [
        "SRC-1"
    ]


def test_the_words_for_a_credit_left_out() -> None:
    gone = Unmatched("credit:int:TOABC", "TOABC", -4500, "run7", "roll.xlsx")
    assert unmatched_text(gone).startswith("the credit TOABC ($45.00), posted in run run7 from")


def read_where_of(posted: pd.DataFrame) -> object:
    def read_where(columns: Sequence[str], column: str, values: Sequence[str]) -> pd.DataFrame:
        assert column == "transaction_date"
        assert set(columns) == set(POSTED_COLUMNS)
        rows = posted[posted[column].isin(list(values))]
        return rows[[*columns, "seq"]].reset_index(drop=True)

    return read_where


def test_renumber_moves_keys_and_lends_digests_in_place() -> None:
    first = lines([("r1", "RENT", "2026-03-01", 120000), ("r1", "PET", "2026-03-01", 2500)])
    posted = posted_from(first).assign(content_hash=["posted-a", "posted-b"])
    # Re-sorted, and the pet line's notes spelled otherwise: same numbers, posted digests.
    again = lines(
        [("r1", "PET", "2026-03-01", 2500), ("r1", "RENT", "2026-03-01", 120000)], "roll.csv"
    )
    said = renumber(again, read_where_of(posted))  # type: ignore[arg-type]
    assert said == []
    by_code = dict(zip(again["charge_code_id"], again["reference_number"], strict=True))
    assert by_code == dict(zip(first["charge_code_id"], first["reference_number"], strict=True))
    assert (again["record_key"] == "charge:int:" + again["reference_number"]).all()
    assert sorted(again["content_hash"]) == ["posted-a", "posted-b"]


def test_renumber_marks_a_line_identical_to_another_files_as_a_question() -> None:
    roll = lines([("r1", "PARK", "2026-03-01", 5000), ("r2", "RENT", "2026-03-01", 9000)])
    parking = lines([("r1", "PARK", "2026-03-01", 5000)], "parking.csv")
    said = renumber(parking, read_where_of(posted_from(roll)))  # type: ignore[arg-type]
    assert said == []
    assert parking.at[0, "content_hash"] == SECOND_CHARGE


def test_renumber_of_lines_that_are_not_charges_or_have_no_history_says_nothing() -> None:
    frame = lines([("r1", "RENT", "2026-03-01", 1)])
    assert renumber(frame.drop(columns="resident_id"), read_where_of(frame)) == []  # type: ignore[arg-type]
    assert renumber(frame.assign(resident_id=None), read_where_of(frame)) == []  # type: ignore[arg-type]
    empty = posted_from(frame).iloc[:0]
    before = frame.copy()
    assert renumber(frame, read_where_of(empty)) == []  # type: ignore[arg-type]
    pd.testing.assert_frame_equal(frame, before)
