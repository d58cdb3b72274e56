"""The ledger's rows as Python values, built column by column (a million records are written
in seconds): texts, optional texts, whole numbers, JSON lists and request bodies, each
converted in bulk; and a new record's column filled as its declaration says."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Sequence
from itertools import repeat
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.core.errors import LedgerError
from pipelines.core.models import RecordState
from pipelines.core.record_columns import Column


def listed(value: Any) -> list[str]:
    """A list's items as text; anything else as no items."""
    return [str(v) for v in value] if isinstance(value, list) else []


def staged_values(
    column: Column, new: pd.DataFrame, run_id: str, sha256: str | None, now: str
) -> Iterable[Any]:
    """One column of new records' rows, filled as its declaration says (`record_columns.Fill`)."""
    name = column.name
    match column.staged:
        case "text":
            return texts(new[name])
        case "optional":
            return optional_texts(new, name)
        case "cents":
            cents: list[int] = new[name].astype("int64").tolist()
            return cents
        case "rows":
            return json_lists(new[name])
        case "body":
            return bodies(new[name] if name in new else pd.Series(None, index=new.index))
        case "joined":
            if name not in new:
                return repeat(None)
            joined: Iterable[Any] = new[name].map(lambda v: "; ".join(listed(v)) or None)
            return joined
        case "run":
            return repeat(run_id)
        case "file":
            return repeat(sha256)
        case "now":
            return repeat(now)
        case "ready":
            return repeat(RecordState.READY.value)
    raise LedgerError(f"record column {name!r} is not filled when staged")


def bodies(payloads: pd.Series) -> Iterable[Any]:
    """Request bodies as JSON text. A charge's body is its columns (built when posted): no
    JSON text is stored for it."""
    if all_text(payloads):
        return texts(payloads)
    if payloads.isna().all():
        return repeat("")
    return [
        p if isinstance(p, str) else "" if optional_text(p) is None else json.dumps(p)
        for p in payloads
    ]


def optional_texts(frame: pd.DataFrame, column: str) -> list[str | None]:
    """A column as text, None where missing (or where the frame has no such column)."""
    if column not in frame:
        return [None] * len(frame)
    values = frame[column]
    if isinstance(values.dtype, pd.StringDtype):
        return texts(values)
    return [optional_text(v) for v in values.astype(object).where(values.notna(), None)]


def whole_numbers(values: pd.Series | None, length: int) -> list[int | None]:
    """A column of whole numbers (float with NaN, or objects with None) as ints and None."""
    if values is None:
        return [None] * length
    numbers = pd.to_numeric(values.astype(object), errors="raise")
    whole: list[int | None] = pa.array(numbers, from_pandas=True).cast(pa.int64()).to_pylist()
    return whole


def texts(values: pd.Series) -> list[Any]:
    """A column as a list of str (None where missing), converted in bulk."""
    if isinstance(values.dtype, pd.StringDtype):
        texts: list[Any] = pa.array(values.array).to_pylist()
        return texts
    return values.astype(str).tolist()


def json_lists(values: pd.Series) -> list[str]:
    """Lists of row numbers as JSON text (one-row lists, the common case, column-wise)."""
    if isinstance(values.dtype, pd.ArrowDtype):
        lengths = pc.list_value_length(pa.array(values.array))
        if pc.all(pc.equal(lengths, 1)).as_py():
            flat = pc.list_flatten(pa.array(values.array)).to_numpy()
            texts: list[str] = ("[" + pd.Series(flat).astype(str) + "]").tolist()
            return texts
    return [json.dumps([int(r) for r in rows]) for rows in values]


def all_text(values: pd.Series) -> bool:
    """Whether every value of a column is already text."""
    return isinstance(values.dtype, pd.StringDtype) or all(isinstance(v, str) for v in values)


def optional_text(value: Any) -> str | None:
    """A value as text, None where it is missing (None or NaN)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value)


def db_value(value: Any) -> Any:
    """A value as a column holds it: lists and dicts as JSON text."""
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return value


def chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    """``items`` in slices of at most ``size``."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
