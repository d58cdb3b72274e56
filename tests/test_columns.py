"""The column-wise helpers agree with the obvious (slow) way of doing the same thing."""

from __future__ import annotations

import base64
import csv
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.core.columns import (
    any_match,
    base32_column,
    duplicated_all,
    extract_groups,
    group_codes,
    hex_column,
    is_in,
    ordinals,
    per_distinct,
    row_lists,
)
from pipelines.core.parsing import parse_money
from pipelines.reading import grids

MONEY = r"^(?P<sign>[-+])?(?P<int>\d{1,3}(?:,\d{3})+|\d+)?(?:\.(?P<frac>\d*))?(?P<trail>-)?$"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text("0123456789,.-+$ ", max_size=12)), max_size=40))
def test_extract_groups_agrees_with_pandas_str_extract(values: list[str | None]) -> None:
    series = pd.Series(values, dtype=object)
    ours = extract_groups(series, MONEY)
    theirs = series.astype(object).str.extract(MONEY)
    for name in ["sign", "int", "frac", "trail"]:
        expected = theirs[name].where(theirs[name].ne(""))  # an empty group reads as missing
        assert ours[name].isna().tolist() == expected.isna().tolist()
        assert ours[name].dropna().tolist() == expected.dropna().tolist()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["a", "b", " c ", "", None]), max_size=60))
def test_per_distinct_is_the_same_as_applying_to_every_row(values: list[str | None]) -> None:
    series = pd.Series(values, dtype="str")
    ours = per_distinct(lambda s: s.str.strip().str.upper(), series)
    theirs = series.str.strip().str.upper()
    assert ours.isna().tolist() == theirs.isna().tolist()
    assert ours.dropna().tolist() == theirs.dropna().tolist()
    assert ours.index.equals(series.index)


def test_per_distinct_keeps_booleans_apart_from_ones() -> None:
    # True == 1 for a hash table; a money parser must still refuse True and accept 1.
    values = pd.Series([True, 1, 1, 1, 1, 1], dtype=object)
    cents, errors = parse_money(values)
    assert pd.isna(cents[0]) and "not an amount" in errors[0]
    assert cents[1:].tolist() == [100] * 5


def test_per_distinct_of_nothing_but_blanks() -> None:
    cents, errors = parse_money(pd.Series([None] * 4, dtype=object))
    assert cents.isna().all() and errors.isna().all()


def test_base32_and_hex_columns_match_the_standard_library() -> None:
    rng = np.random.default_rng(7)
    bits = np.r_[rng.integers(0, 2**63, 200, dtype=np.uint64) * 2 + 1, 0, 2**64 - 1].astype(
        np.uint64
    )
    for prefix in ["TO", "X", ""]:
        got = base32_column(bits, 10, prefix).tolist()
        assert got == [
            prefix + base64.b32encode(int(b).to_bytes(8, "big")).decode()[:10] for b in bits
        ]
    assert hex_column(bits).tolist() == [f"{int(b):016x}" for b in bits]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 5)), max_size=50))
def test_ordinals_count_identical_keys_in_order(pairs: list[tuple[int, int]]) -> None:
    keys = np.array([k for k, _ in pairs], dtype=np.uint64)
    order = np.array([o for _, o in pairs], dtype=np.int64)
    got = ordinals(keys, order)
    frame = pd.DataFrame({"k": keys, "o": order, "i": range(len(pairs))})
    expected = frame.sort_values(["o", "i"]).groupby("k").cumcount().sort_index()
    assert got.tolist() == expected.tolist()


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["a", "b", None]), st.sampled_from(["x", "y", None])),
        max_size=50,
    )
)
def test_group_codes_agree_with_groupby(rows: list[tuple[str | None, str | None]]) -> None:
    frame = pd.DataFrame(rows, columns=["p", "q"], dtype="str")
    codes, firsts = group_codes(frame, ["p", "q"])
    expected = frame.groupby(["p", "q"], sort=False, dropna=False).ngroup()
    assert codes.tolist() == expected.tolist()
    assert firsts.tolist() == [int(np.flatnonzero(codes == c)[0]) for c in range(len(firsts))]


def test_group_codes_of_many_keys_whose_product_would_overflow_agree_with_groupby() -> None:
    """#41: the keys' codes are combined as digits and numbered once at the end; nine keys of
    a thousand values each (a product past 2**62) are renumbered on the way, same answer."""
    rng = np.random.default_rng(41)
    frame = pd.DataFrame({f"k{i}": rng.integers(0, 1000, 3000) for i in range(9)})
    frame.iloc[1500:] = frame.iloc[:1500].to_numpy()  # every combination twice
    codes, firsts = group_codes(frame, list(frame.columns))
    expected = frame.groupby(list(frame.columns), sort=False).ngroup()
    assert codes.tolist() == expected.tolist()
    assert firsts.tolist() == list(range(1500))


def test_small_helpers() -> None:
    values = pd.Series(["a", "b", "a", None, None, "c"], dtype="str")
    assert duplicated_all(values).tolist() == values.duplicated(keep=False).tolist()
    texts = pd.Series(["Grand Total", "sub-total 3", "Oak", None])
    assert any_match(texts, (r"^\s*(grand\s+)?totals?\b", r"^sub")).tolist() == [
        True,
        True,
        False,
        False,
    ]
    assert row_lists(np.array([4, 9])).tolist() == [[4], [9]]


# --- the fast CSV reader reads what the careful one reads -----------------------------------------

CSV_CASES = {
    "titles_and_blank_lines": "Charges export\n\nA,B,C\n1,2,3\n\n4,5,6\n\n",
    "quoted_newline": 'Title\nA,B,C\n1,"two\nlines",3\n4,5,6\n',
    "note_in_the_body": "A;B;C\n1;2;3\n* a note\n4;5;6\n",
    "long_row_later": "A,B,C\n" + "1,2,3\n" * 3000 + "4,5,6,7\n",
    "short_total_row_later": "A,B,C\n" + "1,2,3\n" * 3000 + "Total,9\n",
    "bom_and_crlf": '\ufeffA,B,C\r\n1,"x,y",3\r\n',
    "blank_fields_row": "Title\n,,\nA,B,C\n1,2,3\n",
    "whitespace_line": "Title\n   \nA,B,C\n1,2,3\n",
}


@pytest.mark.parametrize("name", sorted(CSV_CASES))
@pytest.mark.parametrize("encoding", ["utf-8", "cp1252"])
def test_fast_csv_reader_reads_what_the_careful_one_reads(
    name: str, encoding: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = CSV_CASES[name].replace("Title", "Café title")
    path = tmp_path / f"{name}.csv"
    path.write_bytes(text.encode(encoding, errors="replace"))
    fast = grids.read_csv_grid(path)
    monkeypatch.setattr(grids, "_read_csv_arrow", lambda *args: None)
    careful = grids.read_csv_grid(path)
    assert fast.shape == careful.shape
    assert fast.fillna("").astype(str).equals(careful.fillna("").astype(str))


def test_fast_csv_reader_is_taken_for_a_clean_export(tmp_path: Path) -> None:
    path = tmp_path / "charges.csv"
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["Report"])
    writer.writerow([])
    writer.writerows([["Unit", "Amount"]] + [[str(i), f"{i:,}.00"] for i in range(5000)])
    path.write_text(buffer.getvalue(), encoding="utf-8")
    grid = grids._read_csv_arrow(
        path.read_bytes(), ",", 2, list(csv.reader(buffer.getvalue().splitlines()[:100]))
    )
    assert grid is not None and grid.shape == (5003, 2)
    assert grid.iloc[0].tolist() == ["Report", ""] and grid.iloc[5002].tolist() == [
        "4999",
        "4,999.00",
    ]


_REFS = st.one_of(st.none(), st.text(max_size=6), st.sampled_from(["TO1", "TO2", "", "é"]))


@settings(max_examples=200, deadline=None)
@given(st.lists(_REFS, max_size=30), st.lists(_REFS, max_size=30))
def test_is_in_agrees_with_pandas_isin(values: list[str | None], within: list[str | None]) -> None:
    """#19: pandas' isin on a million-row text column took seconds; Arrow's hash is used. A
    missing value is never among the others (tieout never asks about one)."""
    series = pd.Series(values, dtype="str")
    expected = series.astype(object).isin([w for w in within if w is not None]).to_numpy()
    expected = expected & series.notna().to_numpy()
    assert is_in(series, within).tolist() == expected.tolist()
    assert is_in(series, pd.Series(within, dtype="str")).tolist() == expected.tolist()
