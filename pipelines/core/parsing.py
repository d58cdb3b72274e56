"""Money and dates, parsed exactly: the one place text becomes cents or a calendar date.

Money never passes through a binary float. Text is matched by a regular expression and the
integer and fractional digits are combined as integers (vectorized over a whole column); a
numeric Excel cell, which *is* a float on disk, goes through ``Decimal(repr(value))`` and is
accepted only when it is within 1e-9 of a whole number of cents.
"""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np
import pandas as pd

from pipelines.core.columns import extract_groups, per_distinct

MAX_DOLLAR_DIGITS = 13  # up to $9,999,999,999,999: far beyond any bill, far inside int64 cents
_EXCEL_EPOCH = dt.date(1899, 12, 30)
_TOLERANCE = Decimal("1e-9")
SENTINEL_DATES = frozenset({"1970-01-01", "1900-01-01", "1899-12-30", "1899-12-31", "9999-12-31"})

_MONEY = r"^(?P<sign>[-+])?(?P<int>\d{1,3}(?:,\d{3})+|\d+)?(?:\.(?P<frac>\d*))?(?P<trail>-)?$"


# The way most exports write money ("1234.56", "-1,234.56"): read by taking out "," and ".".
_PLAIN_MONEY = r"^-?(?:\d{1,3}(?:,\d{3}){1,3}|\d{1,13})\.\d{2}$"


def _money_text_to_cents(text: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Vectorized text → cents. Returns (cents as Int64, error message or NA)."""
    plain = text.astype("string").str.match(_PLAIN_MONEY).fillna(False).astype(bool)
    if not plain.any():
        return _any_money_text_to_cents(text)
    cents = pd.Series(pd.NA, index=text.index, dtype="Int64")
    error = pd.Series(pd.NA, index=text.index, dtype="string")
    digits = text[plain].astype("string").str.replace(r"[,.]", "", regex=True)
    cents[plain] = digits.astype("int64")
    if not plain.all():
        other, other_error = _any_money_text_to_cents(text[~plain])
        cents[~plain] = other
        error[~plain] = other_error
    return cents, error


def _any_money_text_to_cents(text: pd.Series) -> tuple[pd.Series, pd.Series]:
    raw = text.astype("string")
    s = raw.str.strip().str.upper()
    paren = s.str.startswith("(") & s.str.endswith(")")
    s = s.where(~paren, s.str.slice(1, -1))
    # Currency marks may sit on either side of the sign: "$-45", "-$45", "USD 12", "12 USD".
    s = s.str.replace(r"\$|USD|\s", "", regex=True)
    parts = extract_groups(s, _MONEY)
    has_digits = parts["int"].notna() | parts["frac"].fillna("").str.len().gt(0)
    matched = s.str.match(_MONEY).fillna(False) & has_digits
    signs = parts["sign"].notna().astype(int) + parts["trail"].notna().astype(int)
    matched &= ~(paren & (signs > 0)) & (signs <= 1)

    int_digits = parts["int"].fillna("0").str.replace(",", "", regex=False).str.lstrip("0")
    too_large = matched & (int_digits.str.len() > MAX_DOLLAR_DIGITS)
    frac = parts["frac"].fillna("")
    extra = frac.str.slice(2)
    too_precise = matched & extra.str.contains(r"[1-9]", regex=True).fillna(False)
    ok = matched & ~too_large & ~too_precise

    dollars = int_digits.where(ok & int_digits.ne(""), "0").astype("int64")
    cents_part = (frac.str.slice(0, 2) + "00").str.slice(0, 2).where(ok, "0").astype("int64")
    negative = paren | parts["sign"].eq("-").fillna(False) | parts["trail"].notna()
    signed: np.ndarray = (dollars * 100 + cents_part) * np.where(negative, -1, 1)
    cents = pd.Series(signed, index=text.index, dtype="Int64").where(ok)

    error = pd.Series(pd.NA, index=text.index, dtype="string")
    quoted = '"' + raw.fillna("") + '"'
    error = error.mask(~matched, quoted + " is not an amount")
    error = error.mask(too_large, quoted + " is too large for an amount")
    error = error.mask(too_precise, quoted + " has more than 2 decimals")
    return cents, error


def _is_text(values: pd.Series) -> pd.Series:
    if isinstance(values.dtype, pd.StringDtype):
        return values.notna()
    return values.map(lambda v: isinstance(v, str)).astype(bool)


def _money_number_to_cents(value: Any) -> tuple[int | None, str | None]:
    """One non-text cell (XLSX) → cents, exact to 1e-9 or refused. Only numbers are amounts:
    a date, time, duration or boolean cell is refused by what it is, never converted."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(
        value, (int, float, Decimal, np.integer, np.floating)
    ):
        return None, f'"{value}" is not an amount'
    try:
        if isinstance(value, (float, np.floating)):
            exact = Decimal(repr(float(value)))
        else:
            exact = Decimal(int(value)) if isinstance(value, np.integer) else Decimal(value)
    except (InvalidOperation, ValueError, TypeError):
        return None, f'"{value}" is not an amount'
    if not exact.is_finite():
        return None, f'"{value}" is not an amount'
    if abs(exact) >= Decimal(10) ** MAX_DOLLAR_DIGITS:  # before quantize, which overflows
        return None, f'"{value}" is too large for an amount'
    cents = exact.quantize(Decimal("0.01"))
    if abs(exact - cents) > _TOLERANCE:
        return None, f'"{value}" has more than 2 decimals'
    return int(cents * 100), None


def rowwise_cells(values: pd.Series) -> int:
    """How many cells of a column of amounts :func:`parse_money` reads one by one: those that
    are neither text nor blank (an XLSX number, date or boolean cell), each checked exactly
    through ``Decimal``; text is parsed column-wise."""
    if values.empty:
        return 0
    return int((~_is_text(values) & values.notna()).sum())


def parse_money(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Parse a column of amounts to integer cents.

    Returns ``(cents, error)``: ``cents`` is nullable Int64 (NA for blanks and errors), ``error``
    a plain-language message per bad cell (NA where fine or blank). Accepts ``$1,234.56``,
    ``1234.5``, ``(45.00)``, ``-45``, ``45.00-``, ``USD 12``, ``238.0000`` and numeric cells.
    Each distinct value is parsed once.
    """
    parsed = per_distinct(_parse_money, values)
    return parsed["cents"].astype("Int64"), parsed["error"].astype("string")


def _parse_money(values: pd.Series) -> pd.DataFrame:
    is_text = _is_text(values)
    blank = values.isna() | (is_text & values.where(is_text, "x").astype(str).str.strip().eq(""))
    cents = pd.Series(pd.NA, index=values.index, dtype="Int64")
    error = pd.Series(pd.NA, index=values.index, dtype="string")
    text_rows = is_text & ~blank
    if text_rows.any():
        c, e = _money_text_to_cents(values[text_rows])
        cents[text_rows] = c
        error[text_rows] = e
    numeric_rows = ~is_text & ~blank
    for idx in values.index[numeric_rows]:
        c_one, e_one = _money_number_to_cents(values[idx])
        cents[idx] = pd.NA if c_one is None else c_one
        error[idx] = pd.NA if e_one is None else e_one
    return pd.DataFrame({"cents": cents, "error": error})


def format_cents(cents: int, style: str = "plain") -> str:
    """Cents back to text in one of the ways accountants write money (used by tests and reports)."""
    sign = "-" if cents < 0 else ""
    dollars, rem = divmod(abs(cents), 100)
    grouped = f"{dollars:,}"
    if style == "plain":
        return f"{sign}{dollars}.{rem:02d}"
    if style == "dollar":
        return f"{sign}${grouped}.{rem:02d}"
    if style == "accounting":
        body = f"${grouped}.{rem:02d}"
        return f"({body})" if cents < 0 else body
    if style == "usd":
        return f"USD {sign}{dollars}.{rem:02d}"
    if style == "trailing":
        return f"{dollars}.{rem:02d}{'-' if cents < 0 else ''}"
    if style == "four_places":
        return f"{sign}{dollars}.{rem:02d}00"
    raise ValueError(f"unknown money style {style!r}")


_DATE_SLASH = r"^(?P<m>\d{1,2})/(?P<d>\d{1,2})/(?P<y>\d{4}|\d{2})$"
_DATE_ISO = r"^(?P<y>\d{4})-(?P<m>\d{1,2})-(?P<d>\d{1,2})$"


def _dates_from_parts(parts: pd.DataFrame) -> pd.Series:
    year = parts["y"].astype("Int64")
    # Two-digit years: 00-68 are 20xx, 69-99 are 19xx (the same pivot as strptime's %y).
    short = parts["y"].str.len().eq(2)
    year = year.where(~short, year + np.where(year < 69, 2000, 1900))
    frame = pd.DataFrame(
        {"year": year, "month": parts["m"].astype("Int64"), "day": parts["d"].astype("Int64")}
    )
    return pd.to_datetime(frame, errors="coerce")


def parse_dates(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Parse a column of dates to ISO text ``YYYY-MM-DD``.

    Returns ``(iso, error)``. Accepts ``03/21/2025``, ``9/30/25``, ``2024-01-15``,
    ``2024-01-15T09:30:00Z``, trailing ``12:00:00 AM`` times, Excel date cells and serial numbers.
    Sentinel dates (1/1/1970, 1/1/1900, 12/31/9999) are errors, never posted. Each distinct
    value is parsed once.
    """
    parsed = per_distinct(_parse_dates, values)
    return parsed["iso"].astype("string"), parsed["error"].astype("string")


def _parse_dates(values: pd.Series) -> pd.DataFrame:
    iso = pd.Series(pd.NA, index=values.index, dtype="string")
    error = pd.Series(pd.NA, index=values.index, dtype="string")
    is_text = _is_text(values)
    text = values.where(is_text).astype("string").str.strip()
    text = text.str.replace(
        r"(?i)[T ]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?\s*(AM|PM|Z|[+-]\d{2}:?\d{2})?$", "", regex=True
    )
    for pattern in (_DATE_SLASH, _DATE_ISO):
        parts = extract_groups(text, pattern)
        found = parts["y"].notna()
        if found.any():
            parsed = _dates_from_parts(parts[found])
            iso[parsed.index] = parsed.dt.strftime("%Y-%m-%d").astype("string")
    for idx in values.index[~is_text & values.notna()]:
        value = values[idx]
        if isinstance(value, dt.datetime):
            iso[idx] = value.date().isoformat()
        elif isinstance(value, dt.date):
            iso[idx] = value.isoformat()
        elif (
            isinstance(value, (int, float)) and not isinstance(value, bool) and 1 <= value < 2958466
        ):
            iso[idx] = (_EXCEL_EPOCH + dt.timedelta(days=int(value))).isoformat()
    blank = values.isna() | (is_text & text.fillna("").eq(""))
    quoted = '"' + values.astype("string").fillna("") + '"'
    error = error.mask(iso.isna() & ~blank, quoted + " is not a date")
    sentinel = iso.isin(SENTINEL_DATES).fillna(False)
    error = error.mask(sentinel, quoted + " is a placeholder, not a real date")
    iso = iso.mask(sentinel)
    return pd.DataFrame({"iso": iso, "error": error})


def dollars(cents: Any) -> str:
    """Cents as an accountant reads them: 1234567 → '12,345.67', -4500 → '(45.00)'."""
    if cents is None or (isinstance(cents, float) and math.isnan(cents)):
        return ""
    value = int(cents)
    text = f"{abs(value) // 100:,}.{abs(value) % 100:02d}"
    return f"({text})" if value < 0 else text
