from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipelines.core.parsing import format_cents, parse_dates, parse_money

STYLES = ["plain", "dollar", "accounting", "usd", "trailing", "four_places"]


@pytest.mark.parametrize(
    ("text", "cents"),
    [
        ("$1,234.56", 123456),
        ("1234.5", 123450),
        ("(45.00)", -4500),
        ("-45", -4500),
        ("USD 12", 1200),
        ("238.0000", 23800),
        ("2,999.00", 299900),
        ("814", 81400),
        ("497.1", 49710),
        ("-256.99", -25699),
        ("45.00-", -4500),
        ("$-45.00", -4500),
        ("-$45.00", -4500),
        ("($1,000.00)", -100000),
        (".5", 50),
        (" 12.30 ", 1230),
        (12.5, 1250),
        (3.0, 300),
        (0.1 + 0.2, 30),
        (497.1, 49710),
        (1234, 123400),
    ],
)
def test_parse_money_accepts_how_accountants_write_money(text: object, cents: int) -> None:
    parsed, error = parse_money(pd.Series([text], dtype=object))
    assert error.isna().all(), error.iloc[0]
    assert parsed.iloc[0] == cents


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("12.345", "more than 2 decimals"),
        ("abc", "not an amount"),
        ("1,23", "not an amount"),
        ("-", "not an amount"),
        ("(-45.00)", "not an amount"),
        ("--45", "not an amount"),
        ("99999999999999999", "too large"),
        (12.345, "more than 2 decimals"),
        (True, "not an amount"),
        (float("inf"), "not an amount"),
    ],
)
def test_parse_money_refuses_rather_than_guesses(text: object, message: str) -> None:
    parsed, error = parse_money(pd.Series([text], dtype=object))
    assert pd.isna(parsed.iloc[0])
    assert message in str(error.iloc[0])


def test_parse_money_blank_is_missing_not_an_error() -> None:
    parsed, error = parse_money(pd.Series(["", "  ", None], dtype=object))
    assert parsed.isna().all() and error.isna().all()


@given(
    cents=st.integers(min_value=-(10**14) + 1, max_value=10**14 - 1), style=st.sampled_from(STYLES)
)
def test_money_round_trips_through_every_written_form(cents: int, style: str) -> None:
    parsed, error = parse_money(pd.Series([format_cents(cents, style)], dtype=object))
    assert error.isna().all()
    assert parsed.iloc[0] == cents


@given(cents=st.integers(min_value=-(10**12), max_value=10**12))
def test_money_from_excel_cells_is_exact_to_the_cent(cents: int) -> None:
    # An Excel cell stores the nearest double to the dollar amount; it must come back exact.
    parsed, error = parse_money(pd.Series([cents / 100], dtype=object))
    assert error.isna().all()
    assert parsed.iloc[0] == cents


def test_money_parsing_never_produces_floats() -> None:
    parsed, _ = parse_money(pd.Series(["$1,234.56", 1.5, "(2.00)"], dtype=object))
    assert str(parsed.dtype) == "Int64"
    assert all(isinstance(v, int) for v in parsed.tolist())


@pytest.mark.parametrize(
    ("value", "iso"),
    [
        ("03/21/2025", "2025-03-21"),
        ("9/30/25", "2025-09-30"),
        ("2024-01-15T09:30:00Z", "2024-01-15"),
        ("3/1/2025 12:00:00 AM", "2025-03-01"),
        (dt.date(2026, 1, 2), "2026-01-02"),
        (dt.datetime(2026, 1, 2, 0, 0), "2026-01-02"),
        (45678, "2025-01-21"),
        ("2026-12-01", "2026-12-01"),
    ],
)
def test_parse_dates(value: object, iso: str) -> None:
    parsed, error = parse_dates(pd.Series([value], dtype=object))
    assert error.isna().all()
    assert parsed.iloc[0] == iso


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("1/1/1970", "placeholder"),
        ("2/30/2025", "not a date"),
        ("soon", "not a date"),
        ("12/31/9999", "placeholder"),
    ],
)
def test_parse_dates_rejects_sentinels_and_nonsense(value: str, message: str) -> None:
    parsed, error = parse_dates(pd.Series([value], dtype=object))
    assert pd.isna(parsed.iloc[0])
    assert message in str(error.iloc[0])
