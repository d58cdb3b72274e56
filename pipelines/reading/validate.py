"""Validate: normalize raw rows (trim, parse money and dates) and check them with pandera, lazily.

Every failing row gets reasons a person understands, naming the column and the value, in the
words of the kind's line model (its fields' titles). Pure: frames in, a
:class:`ValidateResult` out. Each kind's own rules are in ``pipelines/kinds/<kind>/validate.py``;
these are the building blocks they share.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping
from functools import cache

import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrorReason

from pipelines.core.columns import per_distinct
from pipelines.core.models import Issue, IssueCode, ValidateResult, whole
from pipelines.core.parsing import parse_dates, parse_money
from schemas.common import CHECK_WORDS, UNKNOWN_CHECK

SKIPPED_COLUMNS = ["source_row", "kind", "text"]


def as_text(values: pd.Series) -> pd.Series:
    """Cells as trimmed text (NA when blank); a whole-number Excel cell 5100.0 reads '5100'."""

    def one(value: object) -> object:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return pd.NA
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        if isinstance(value, dt.datetime):
            return value.date().isoformat() if value.time() == dt.time() else value.isoformat()
        if isinstance(value, dt.date):
            return value.isoformat()
        return str(value)

    def trimmed(values: pd.Series) -> pd.Series:
        if values.dtype == object and not values.map(lambda v: isinstance(v, str)).all():
            values = values.map(one)
        text = values.astype("string").str.strip()
        return text.mask(text.eq(""))

    if isinstance(values.dtype, pd.StringDtype):
        # Text already: trimming the whole column in Arrow costs less than finding its
        # distinct values first.
        return trimmed(values).astype("string")
    return per_distinct(trimmed, values).astype("string")


Titles = Mapping[str, str]  # a frame column → its words for a person


@cache
def titles_of(model: type[pa.DataFrameModel]) -> dict[str, str]:
    """A line model's columns in words, from its fields' ``Field(title=...)``."""
    return {
        name: str(column.title)
        for name, column in model.to_schema().columns.items()
        if column.title
    }


def _label(column: str, titles: Titles) -> str:
    return titles.get(column, column.replace("_", " "))


def check_words(
    column: str,
    error: pa.errors.SchemaError,
    value: object,
    titles: Titles | None = None,
    words: Mapping[str, str] | None = None,
) -> str:
    """What a failed check says, from the check's stable name and its statistics (never from
    the text pandera prints for it, which a release may change): see ``CHECK_WORDS``, which a
    kind's own ``words`` extend (a check only its model uses)."""
    check = error.check
    name = check if isinstance(check, str) else str(getattr(check, "name", check))
    facts: dict[str, object] = dict(getattr(check, "statistics", None) or {})
    if name == "str_length" and isinstance(value, str):
        low = facts.get("min_value")
        if isinstance(low, int) and len(value) < low:
            name = "str_length_short"
    if name == "not_equal_to" and facts.get("value") == 0:
        name = "not_equal_to_zero"
    said = {**CHECK_WORDS, **(words or {})}.get(name, UNKNOWN_CHECK)
    label = _label(column, titles or {})
    return said.format(**{**facts, "label": label, "value": value, "check": name})


Cells = dict[str, tuple[str, str]]
FIELDS = {"amount_cents": "amount"}  # a frame column → the extract field it was read from


def cell_prefix(cells: Cells, field: str | None, row: int, fallback: str) -> tuple[str, str]:
    """(what a reason starts with, the column's name): `Rent (H14)` when the file's column is
    known, else the field's label."""
    found = cells.get(field) if field is not None else None
    if found is None:
        return fallback, fallback
    header, letter = found
    return f"{header} ({letter}{row})", header


def schema_issues(
    schema: type[pa.DataFrameModel],
    frame: pd.DataFrame,
    source_file: str,
    already: set[tuple[object, str]],
    cells: Cells | None = None,
    line_fields: pd.Series | None = None,
    words: Mapping[str, str] | None = None,
) -> list[Issue]:
    """Run a schema lazily; one :class:`Issue` per failing cell, in words (its titles, and
    ``CHECK_WORDS`` with the kind's own ``words``), naming the file's column and cell when
    known (``line_fields``: each line's field for its amount, when one field comes from
    several columns).

    ``already`` holds (index, column) pairs that have a more specific issue (an unparseable
    amount), so the schema's "is missing" for the same cell is not said twice.
    """
    try:
        schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        errors = exc.schema_errors
    else:
        return []
    titles = titles_of(schema)
    issues: list[Issue] = []
    for error in errors:
        column = str(error.column_name)
        missing = error.reason_code == SchemaErrorReason.SERIES_CONTAINS_NULLS
        cases = error.failure_cases
        if not isinstance(cases, pd.DataFrame) or "index" not in cases:
            continue  # a whole-frame failure (a column gone): a bug, not a row's fault
        for index, failure in zip(cases["index"], cases["failure_case"], strict=True):
            if index is None or pd.isna(index) or (index, column) in already:
                continue
            value = None if pd.isna(failure) else str(failure)
            row = whole(frame.at[index, "source_row"])
            field = FIELDS.get(column, column)
            if line_fields is not None and column == "amount_cents":
                field = str(line_fields[index])
            label = _label(column, titles)
            where, header = cell_prefix(cells or {}, field, row, label)
            message = check_words(column, error, value, titles, words)
            issues.append(
                Issue(
                    IssueCode.MISSING_VALUE if missing else IssueCode.SCHEMA_CHECK,
                    f"{where}: {message}" if where != label else message,
                    source_file,
                    row,
                    header,
                    value,
                )
            )
    return issues


def parse_issues(
    frame: pd.DataFrame,
    errors: pd.Series,
    column: str,
    code: IssueCode,
    source_file: str,
    raw: pd.Series,
    cells: Cells,
    headers: pd.Series | None = None,
    *,
    model: type[pa.DataFrameModel],
) -> tuple[list[Issue], set[tuple[object, str]]]:
    """One issue per bad cell, naming the file's column and the cell (`Rent (H14): "8/1/2021"
    is not an amount`); ``headers`` names each line's source column when one field comes from
    several (a wide rent roll's charge columns)."""
    bad = errors.notna()
    issues = []
    for i in errors.index[bad]:
        row = whole(frame.at[i, "source_row"])
        field = str(headers[i]) if headers is not None else FIELDS.get(column, column)
        where, header = cell_prefix(cells, field, row, _label(column, titles_of(model)))
        issues.append(
            Issue(
                IssueCode.SENTINEL_DATE if "placeholder" in str(errors[i]) else code,
                f"{where}: {errors[i]}",
                source_file,
                row,
                header,
                None if pd.isna(raw[i]) else str(raw[i]),
            )
        )
    return issues, {(i, column) for i in errors.index[bad]}


def text_columns(rows: pd.DataFrame, names: Iterable[str]) -> pd.DataFrame:
    out = pd.DataFrame(index=rows.index)
    for name in names:
        out[name] = (
            as_text(rows[name])
            if name in rows
            else pd.Series(pd.NA, index=rows.index, dtype="string")
        )
    return out


def valid_lines(frame: pd.DataFrame, issues: list[Issue]) -> pd.DataFrame:
    bad_rows = {i.source_row for i in issues}
    return frame[~frame["source_row"].isin(bad_rows)].reset_index(drop=True)


def line_frame(rows: pd.DataFrame, names: Iterable[str]) -> pd.DataFrame:
    """A kind's lines begun: each row's ``source_row``, then ``names`` as trimmed text."""
    frame = text_columns(rows, names)
    frame.insert(0, "source_row", rows["source_row"].astype("int64"))
    return frame


def parse_amounts(
    frame: pd.DataFrame,
    raw: pd.Series,
    source_file: str,
    cells: Cells,
    model: type[pa.DataFrameModel],
    headers: pd.Series | None = None,
) -> tuple[list[Issue], set[tuple[object, str]]]:
    """``frame["amount_cents"]``: each line's amount from ``raw``, in integer cents; an issue
    per cell that is not an amount (``headers``: each line's column, when several)."""
    frame["amount_cents"], errors = parse_money(raw)
    return parse_issues(
        frame,
        errors,
        "amount_cents",
        IssueCode.BAD_AMOUNT,
        source_file,
        raw,
        cells,
        headers,
        model=model,
    )


def parse_dated(
    frame: pd.DataFrame,
    raw: pd.Series,
    column: str,
    source_file: str,
    cells: Cells,
    model: type[pa.DataFrameModel],
) -> tuple[list[Issue], set[tuple[object, str]]]:
    """``frame[column]``: ``raw``'s dates as ISO text; an issue per cell that is not a date."""
    frame[column], errors = parse_dates(raw)
    return parse_issues(
        frame, errors, column, IssueCode.BAD_DATE, source_file, raw, cells, model=model
    )


def validated(
    kind: str, frame: pd.DataFrame, issues: list[Issue], skipped: pd.DataFrame | None = None
) -> ValidateResult:
    """A kind's lines as validated: those no issue names are valid; issues in row order; the
    rows skipped with their reasons (none when not given)."""
    return ValidateResult(
        kind=kind,
        lines=frame,
        valid=valid_lines(frame, issues),
        issues=sorted_issues(issues),
        skipped=pd.DataFrame(columns=SKIPPED_COLUMNS) if skipped is None else skipped,
    )


def sorted_issues(issues: list[Issue]) -> list[Issue]:
    return sorted(issues, key=lambda i: (i.source_row, i.column or ""))
