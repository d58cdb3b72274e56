"""Column-wise helpers that keep a million-row file fast.

Spreadsheet columns repeat themselves: a million charge lines name a few thousand residents,
a handful of charge codes and one date. :func:`per_distinct` runs any column function once per
distinct value and spreads the answers back, and :func:`extract_groups` runs a regular
expression over a column in Arrow's engine (RE2) rather than in a Python loop.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable, Iterable
from typing import TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

ColumnFunc = Callable[[pd.Series], pd.Series]


Answer = TypeVar("Answer", pd.Series, pd.DataFrame)


def spread(codes: np.ndarray, done: Answer, index: pd.Index) -> Answer:
    """Answers computed per distinct value, back onto every row (code -1 is a missing value)."""
    taken = done.take(np.maximum(codes, 0))
    taken.index = index
    missing = codes < 0
    if missing.any():
        if isinstance(taken, pd.DataFrame):
            taken = taken.apply(lambda column: column.mask(missing))
        else:
            taken = taken.mask(missing)
    return taken


def per_distinct(func: Callable[[pd.Series], Answer], values: pd.Series) -> Answer:
    """``func(values)``, computed once per distinct value (missing values stay missing).

    ``func`` must answer row by row (its answer for a value does not depend on the others).
    """
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    if values.dtype == object and _may_hide_booleans(uniques, values):
        return func(values)  # True == 1 to a hash table, but not to a money or date parser
    if len(uniques) * 2 > len(values):
        return func(values)
    if not len(uniques):  # nothing but missing values
        return func(values.iloc[:0]).reindex(values.index)
    done = func(pd.Series(uniques, dtype=values.dtype))
    return spread(codes, done.reset_index(drop=True), values.index)


def _may_hide_booleans(uniques: Iterable[object], values: pd.Series) -> bool:
    """Whether factorizing merged a True or False with a 1 or 0 (looked at closely only when a
    distinct value equals 0 or 1)."""
    if not any(isinstance(u, (bool, int, float, np.number)) and u in (0, 1) for u in uniques):
        return False
    return any(type(v) is bool for v in values)


def distinct(func: ColumnFunc) -> ColumnFunc:
    """Decorator form of :func:`per_distinct`."""

    @functools.wraps(func)
    def wrapper(values: pd.Series) -> pd.Series:
        return per_distinct(func, values)

    return wrapper


def arrow_text(values: pd.Series) -> pa.ChunkedArray:
    """A text column as an Arrow large_string array (missing values null), without a copy when
    the column is already held by Arrow."""
    if not isinstance(values.dtype, pd.StringDtype) or values.dtype.storage != "pyarrow":
        values = values.astype("string[pyarrow]")
    array = pa.array(values.array)
    chunked = array if isinstance(array, pa.ChunkedArray) else pa.chunked_array([array])
    return chunked if chunked.type == pa.large_string() else chunked.cast(pa.large_string())


def is_in(values: pd.Series, within: pd.Series | Iterable[str]) -> np.ndarray:
    """Which of ``values`` (text) are among ``within`` (missing values never are), by one Arrow
    hash table: pandas' ``isin`` on a million-row text column takes seconds."""
    if not isinstance(within, pd.Series):
        within = pd.Series(list(within), dtype=object)
    within = within.dropna()
    if values.empty or within.empty:
        return np.zeros(len(values), dtype=bool)
    found = pc.is_in(arrow_text(values), value_set=arrow_text(within).combine_chunks())
    return np.asarray(pc.fill_null(found, False).to_numpy(zero_copy_only=False), dtype=bool)


def extract_groups(values: pd.Series, pattern: str) -> pd.DataFrame:
    """Named groups of ``pattern`` (anchored as written) for each value, as text columns.

    Like ``Series.str.extract``, but run by Arrow: a value that does not match has every group
    missing, and so does a group that took no part in the match (or matched nothing).
    """
    names = list(re.compile(pattern).groupindex)
    found = pc.extract_regex(arrow_text(values), pattern=pattern).combine_chunks()
    out = {}
    for name in names:
        column = pd.Series(
            pd.array(found.field(name), dtype="string[pyarrow]"),
            index=values.index,
        )
        out[name] = column.mask(column.eq(""))
    return pd.DataFrame(out, index=values.index)


def match_flags(values: pd.Series, patterns: dict[str, tuple[str, ...]]) -> pd.DataFrame:
    """For each name, whether each text matches any of its patterns (Python regexes,
    case-insensitive, searched), evaluated once per distinct text (missing never matches)."""
    compiled = {
        name: [re.compile(p, re.IGNORECASE) for p in group] for name, group in patterns.items()
    }
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    out = {}
    for name, group in compiled.items():
        # One answer per distinct text, and a last False for code -1 (missing).
        table = np.array(
            [isinstance(u, str) and any(c.search(u) for c in group) for u in uniques] + [False]
        )
        out[name] = table[codes]
    return pd.DataFrame(out, index=values.index, columns=list(patterns), dtype=bool)


def any_match(values: pd.Series, patterns: tuple[str, ...]) -> pd.Series:
    """Whether each text matches any of ``patterns`` (see :func:`match_flags`)."""
    return match_flags(values, {"hit": patterns})["hit"]


# --- fingerprints -------------------------------------------------------------------------------

_SEED = np.uint64(0x746965_6F7574)  # "tieout"
_C1 = np.uint64(0xBF58476D1CE4E5B9)
_C2 = np.uint64(0x94D049BB133111EB)
_B32 = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", dtype=np.uint8)
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def digest64(values: pd.Series) -> np.ndarray:
    """Each value's text (missing reads as "") → the first 8 bytes of its sha256, as uint64.

    sha256 runs once per distinct value; the rows share the answers.
    """
    text = values.astype("string").fillna("")
    codes, uniques = pd.factorize(text)
    table = np.array(
        [int.from_bytes(hashlib.sha256(str(u).encode()).digest()[:8], "big") for u in uniques],
        dtype=np.uint64,
    )
    return table[codes] if len(table) else np.zeros(len(values), dtype=np.uint64)


def _finalize(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: a bijection on 64 bits that spreads every input bit."""
    x = x ^ (x >> np.uint64(30))
    x = x * _C1
    x = x ^ (x >> np.uint64(27))
    x = x * _C2
    out: np.ndarray = x ^ (x >> np.uint64(31))
    return out


def fingerprint64(parts: list[np.ndarray], start: np.ndarray | None = None) -> np.ndarray:
    """Fold per-row uint64 parts into one 64-bit fingerprint per row (order matters):
    ``h = finalize(h XOR part)`` from a fixed seed, or from ``start`` (an earlier fold, so
    ``fingerprint64(b, start=fingerprint64(a)) == fingerprint64(a + b)``). Not cryptographic;
    the same inputs always give the same answer, on any machine."""
    size = len(parts[0]) if parts else 0
    h = np.full(size, _SEED, dtype=np.uint64) if start is None else start.astype(np.uint64)
    with np.errstate(over="ignore"):
        for part in parts:
            h = _finalize(h ^ part.astype(np.uint64, copy=False))
    return h


def int_part(values: pd.Series | np.ndarray) -> np.ndarray:
    """Signed integers as uint64 parts (two's complement)."""
    return np.asarray(values, dtype=np.int64).view(np.uint64)


def _ascii_column(codes: np.ndarray) -> pd.Series:
    """An (n, width) uint8 array of ASCII codes → a text column of n strings."""
    n, width = codes.shape
    raw = pa.py_buffer(np.ascontiguousarray(codes, dtype=np.uint8))
    fixed = pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), n, [None, raw])
    return pd.Series(fixed.cast(pa.binary()).cast(pa.string()).to_pandas(), dtype="str")


# Two characters per table entry: 10 bits → two base32 letters, 8 bits → two hex digits.
_B32_PAIRS = (
    _B32[np.arange(1024) >> 5].astype("<u2") | _B32[np.arange(1024) & 31].astype("<u2") << 8
)
_HEX_PAIRS = _HEX[np.arange(256) >> 4].astype("<u2") | _HEX[np.arange(256) & 15].astype("<u2") << 8


def base32_column(bits: np.ndarray, chars: int, prefix: str = "") -> pd.Series:
    """The top ``5 * chars`` bits of each uint64 as base32 text (RFC 4648 alphabet)."""
    if chars % 2 or chars > 12:
        raise ValueError("chars must be even and at most 12")
    head = len(prefix)
    out = np.empty((len(bits), head + chars), dtype=np.uint8)
    out[:, :head] = np.frombuffer(prefix.encode("ascii"), dtype=np.uint8)
    pairs = out[:, head:].view("<u2") if head % 2 == 0 else None
    for k in range(chars // 2):
        ten = ((bits >> np.uint64(64 - 10 * (k + 1))) & np.uint64(1023)).astype(np.intp)
        if pairs is not None:
            pairs[:, k] = _B32_PAIRS[ten]
        else:
            out[:, head + 2 * k] = _B32[ten >> 5]
            out[:, head + 2 * k + 1] = _B32[ten & 31]
    return _ascii_column(out)


def hex_column(bits: np.ndarray) -> pd.Series:
    """Each uint64 as 16 lowercase hex digits."""
    octets = bits.astype(">u8").view(np.uint8).reshape(-1, 8)
    return _ascii_column(_HEX_PAIRS[octets].view(np.uint8).reshape(-1, 16))


def row_lists(rows: np.ndarray) -> pd.Series:
    """A column whose every cell is a one-element list ``[row]`` (held by Arrow, built at once)."""
    n = len(rows)
    lists = pa.LargeListArray.from_arrays(
        pa.array(np.arange(n + 1, dtype=np.int64)), pa.array(np.asarray(rows, dtype=np.int64))
    )
    return pd.Series(pd.arrays.ArrowExtensionArray(lists))


def ordinals(keys: np.ndarray, order_by: np.ndarray) -> np.ndarray:
    """Each row's position among the rows sharing its key, counted in ``order_by`` order
    (ties in the frame's order)."""
    n = len(keys)
    if not n:
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort((np.arange(n), order_by, keys))
    ordered = keys[order]
    starts = np.r_[True, ordered[1:] != ordered[:-1]]
    position = np.arange(n)
    first = np.maximum.accumulate(np.where(starts, position, 0))
    out = np.empty(n, dtype=np.int64)
    out[order] = position - first
    return out


# --- keys ---------------------------------------------------------------------------------------


def group_codes(frame: pd.DataFrame, keys: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(codes, firsts)``: each row's code for its combination of ``keys`` (missing values are
    values too) and, per code, the position of its first row. Columns are factorized one by
    one and their codes combined, so a million rows with few distinct keys are hashed cheaply."""
    combined = np.zeros(len(frame), dtype=np.int64)
    span = 1  # combined < span: mixed-radix digits, one per key, exact while span fits
    for key in keys:
        codes, uniques = pd.factorize(frame[key], use_na_sentinel=False)
        if span * (len(uniques) + 1) >= 2**62:
            # Renumber what is combined so far (as few codes as distinct combinations) before
            # the product would overflow.
            combined, seen = pd.factorize(combined)
            span = max(len(seen), 1)
        combined = combined * (len(uniques) + 1) + codes
        span *= len(uniques) + 1
    # Numbered in order of first appearance, whatever the keys' count.
    combined, _ = pd.factorize(combined)
    codes = combined.astype(np.int64)
    # factorize numbers codes in order of first appearance: a row is a first when its code
    # exceeds every code before it.
    seen = np.maximum.accumulate(codes) if len(codes) else codes
    firsts = np.flatnonzero(codes > np.r_[-1, seen[:-1]])
    return codes, firsts


def duplicated_all(values: pd.Series) -> pd.Series:
    """``values.duplicated(keep=False)``: every row whose value appears more than once."""
    if isinstance(values.dtype, pd.StringDtype) and values.dtype.storage == "pyarrow":
        encoded = pc.dictionary_encode(arrow_text(values), null_encoding="encode")
        codes = encoded.combine_chunks().indices.to_numpy(zero_copy_only=False)
    else:
        codes, _ = pd.factorize(values, use_na_sentinel=False)
    return pd.Series(np.bincount(codes)[codes] > 1, index=values.index)


# --- header vocabulary --------------------------------------------------------------------------
# The names exports commonly give the canonical columns, whatever the profile: a profile's own
# names are tried first, these only for a column it did not find (and a layout read through
# them is one a person confirms). Compared as normalized headers (``profiles.normalize_header``).

COLUMN_VOCABULARY: dict[str, tuple[str, ...]] = {
    "property_name": ("property", "property name", "community", "community name", "building"),
    "unit": (
        "unit",
        "unit #",
        "unit no",
        "unit number",
        "apt",
        "apt #",
        "apt no",
        "apartment",
        "apartment #",
        "apartment number",
    ),
    "resident_name": (
        "tenant",
        "tenant name",
        "tenants",
        "resident",
        "resident name",
        "residents",
        "lessee",
        "lessee name",
        "lease holder",
        "leaseholder",
    ),
    "charge_code": ("charge code", "charge type", "charge"),
    "amount": ("amount", "charge amount"),
    "status": ("status", "unit status", "lease status", "tenant status", "resident status"),
}

# An account prefix before a charge's name: "REV: Parking Fee", "4010 - Pet Rent",
# "Income: Trash", "4010-000 Rent". Only account words or a GL number are taken off, so a
# header that merely has a colon keeps its meaning.
_ACCOUNT_PREFIX = re.compile(
    r"^\s*(?:(?:rev|revenue|inc|income|chg|charges?|fees?|gl|acct|account)\s*[:>|]\s*)?"
    r"(?:\d{3,6}(?:[-.]\d{1,4})?\s*(?:[-:|]\s*|\s+(?=[A-Za-z])))?"
    r"(?:(?:rev|revenue|inc|income|chg|charges?|fees?)\s*[:>|]\s*)?",
    re.IGNORECASE,
)
# Words that qualify a charge's name without changing it ("Parking Fee", "Rent Amount").
_QUALIFIERS = frozenset(
    {"fee", "fees", "charge", "charges", "recurring", "amount", "amt", "income"}
)
# Names of the rent itself, whatever the export calls it.
RENT_NAMES = frozenset(
    {
        "rent",
        "monthly rent",
        "base rent",
        "lease rent",
        "rent amount",
        "contract rent",
        "rent income",
        "tenant rent",
        "resident rent",
        "current rent",
        "actual rent",
        "scheduled rent",
    }
)


def normalize_header(text: object) -> str:
    """Header text as compared: lower case, punctuation as spaces, spaces folded."""
    s = str(text).replace("\n", " ").lower().strip()
    s = re.sub(r"[^a-z0-9#%]+", " ", s)
    return re.sub(r"\s+", " ", s).strip()


def strip_account_prefix(header: str) -> str:
    """A header without its account prefix ("REV: Parking Fee" → "Parking Fee"); the header
    itself when taking the prefix off would leave nothing."""
    rest = _ACCOUNT_PREFIX.sub("", str(header), count=1).strip()
    return rest or str(header).strip()


def charge_forms(header: str) -> tuple[str, ...]:
    """The normalized forms of a header compared with the charge vocabulary: as written and
    without its account prefix ("REV: Pet Fee - Recurring" → "pet fee recurring")."""
    name = normalize_header(header)
    plain = normalize_header(strip_account_prefix(header))
    return tuple(dict.fromkeys(f for f in (name, plain) if f))


def bare_charge_name(header: str) -> str:
    """A header without account prefix and qualifying words ("Parking Fee" → "parking",
    "Pet Fee - Recurring" → "pet"); "" when it has no qualifying word to take off."""
    plain = normalize_header(strip_account_prefix(header)).split()
    bare = [w for w in plain if w not in _QUALIFIERS]
    return " ".join(bare) if len(bare) < len(plain) else ""


def vocabulary_column(header: str, wanted: Iterable[str]) -> str | None:
    """The canonical column (of ``wanted``) a header commonly names, if any."""
    name = normalize_header(header)
    for canonical in wanted:
        if name in COLUMN_VOCABULARY.get(canonical, ()):
            return canonical
    return None


def charge_code_name(header: str) -> str:
    """The charge code a charge column's header most plainly names, for matching Propexo's
    names when no alias does: the rent under any of its names is "Rent", and an account
    prefix is taken off ("REV: Parking" → "Parking"). The header itself otherwise."""
    plain = strip_account_prefix(str(header))
    return "Rent" if normalize_header(plain) in RENT_NAMES else plain
