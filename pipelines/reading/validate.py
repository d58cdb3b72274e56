"""Validate: normalize raw rows (trim, parse money and dates) and check them with pandera, lazily.

Every failing row gets reasons a person understands, naming the column and the value. Pure:
frames in, a :class:`ValidateResult` out.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable

import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrorReason

from pipelines.core.columns import any_match, per_distinct
from pipelines.core.models import ExtractResult, Issue, IssueCode, ValidateResult, whole
from pipelines.core.parsing import parse_dates, parse_money
from schemas.charges import ResidentCharge
from schemas.common import CHECK_WORDS, UNKNOWN_CHECK
from schemas.vendor_bill import VendorBill

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

    return per_distinct(trimmed, values).astype("string")


# A column's words for a person, from its schema's ``Field(title=...)``.
_TITLES = {
    name: str(column.title)
    for model in (VendorBill, ResidentCharge)
    for name, column in model.to_schema().columns.items()
    if column.title
}


def _label(column: str) -> str:
    return _TITLES.get(column, column.replace("_", " "))


def check_words(column: str, error: pa.errors.SchemaError, value: object) -> str:
    """What a failed check says, from the check's stable name and its statistics (never from
    the text pandera prints for it, which a release may change): see ``CHECK_WORDS``."""
    check = error.check
    name = check if isinstance(check, str) else str(getattr(check, "name", check))
    facts: dict[str, object] = dict(getattr(check, "statistics", None) or {})
    if name == "str_length" and isinstance(value, str):
        low = facts.get("min_value")
        if isinstance(low, int) and len(value) < low:
            name = "str_length_short"
    if name == "not_equal_to" and facts.get("value") == 0:
        name = "not_equal_to_zero"
    words = CHECK_WORDS.get(name, UNKNOWN_CHECK)
    return words.format(**{**facts, "label": _label(column), "value": value, "check": name})


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
) -> list[Issue]:
    """Run a schema lazily; one :class:`Issue` per failing cell, in words, naming the file's
    column and cell when known (``line_fields``: each line's field for its amount, when one
    field comes from several columns).

    ``already`` holds (index, column) pairs that have a more specific issue (an unparseable
    amount), so the schema's "is missing" for the same cell is not said twice.
    """
    try:
        schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        errors = exc.schema_errors
    else:
        return []
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
            where, header = cell_prefix(cells or {}, field, row, _label(column))
            message = check_words(column, error, value)
            issues.append(
                Issue(
                    IssueCode.MISSING_VALUE if missing else IssueCode.SCHEMA_CHECK,
                    f"{where}: {message}" if where != _label(column) else message,
                    source_file,
                    row,
                    header,
                    value,
                )
            )
    return issues


def _parse_issues(
    frame: pd.DataFrame,
    errors: pd.Series,
    column: str,
    code: IssueCode,
    source_file: str,
    raw: pd.Series,
    cells: Cells,
    headers: pd.Series | None = None,
) -> tuple[list[Issue], set[tuple[object, str]]]:
    """One issue per bad cell, naming the file's column and the cell (`Rent (H14): "8/1/2021"
    is not an amount`); ``headers`` names each line's source column when one field comes from
    several (a wide rent roll's charge columns)."""
    bad = errors.notna()
    issues = []
    for i in errors.index[bad]:
        row = whole(frame.at[i, "source_row"])
        field = str(headers[i]) if headers is not None else FIELDS.get(column, column)
        where, header = cell_prefix(cells, field, row, _label(column))
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


def _text_columns(rows: pd.DataFrame, names: Iterable[str]) -> pd.DataFrame:
    out = pd.DataFrame(index=rows.index)
    for name in names:
        out[name] = (
            as_text(rows[name])
            if name in rows
            else pd.Series(pd.NA, index=rows.index, dtype="string")
        )
    return out


def _valid_lines(frame: pd.DataFrame, issues: list[Issue]) -> pd.DataFrame:
    bad_rows = {i.source_row for i in issues}
    return frame[~frame["source_row"].isin(bad_rows)].reset_index(drop=True)


def validate_bills(extract: ExtractResult) -> ValidateResult:
    """Normalize and check vendor bill lines."""
    rows, name = extract.rows, extract.source.name
    frame = _text_columns(
        rows, ["vendor_name", "invoice_number", "property_name", "gl_account", "description"]
    )
    frame.insert(0, "source_row", rows["source_row"].astype("int64"))
    issues: list[Issue] = []
    already: set[tuple[object, str]] = set()
    empty = pd.Series(pd.NA, index=rows.index, dtype=object)
    for column in ("invoice_date", "due_date", "post_date"):
        raw = rows.get(column, empty)
        frame[column], errors = parse_dates(raw)
        found, bad = _parse_issues(
            frame, errors, column, IssueCode.BAD_DATE, name, raw, extract.cells
        )
        issues += found
        already |= bad
    raw_amount = rows["amount"]
    frame["amount_cents"], errors = parse_money(raw_amount)
    found, bad = _parse_issues(
        frame, errors, "amount_cents", IssueCode.BAD_AMOUNT, name, raw_amount, extract.cells
    )
    issues += found
    already |= bad
    issues += schema_issues(VendorBill, frame, name, already, extract.cells)
    return ValidateResult(
        kind="vendor_bill",
        lines=frame,
        valid=_valid_lines(frame, issues),
        issues=_sorted(issues),
        skipped=pd.DataFrame(columns=SKIPPED_COLUMNS),
    )


def _sorted(issues: list[Issue]) -> list[Issue]:
    return sorted(issues, key=lambda i: (i.source_row, i.column or ""))


def _melt_charge_columns(rows: pd.DataFrame, charge_columns: tuple[str, ...]) -> pd.DataFrame:
    """Wide rent roll (one column per charge code) → one line per (row, charge code)."""
    fixed = [c for c in rows.columns if c not in charge_columns]
    long = rows.melt(
        id_vars=fixed, value_vars=list(charge_columns), var_name="charge_code", value_name="amount"
    )
    return long.sort_values(["source_row"], kind="stable", ignore_index=True)


def validate_charges(extract: ExtractResult, period: dt.date | None) -> ValidateResult:
    """Normalize and check resident charge lines (from a long sheet or a wide rent roll).

    Lines with a blank or zero amount are dropped; a row left with no charge at all is skipped
    as ``zero_amount`` (or ``vacant`` when the unit is marked vacant), never silently lost.
    """
    rows, name = extract.rows, extract.source.name
    lines = _melt_charge_columns(rows, extract.charge_columns) if extract.charge_columns else rows
    frame = _text_columns(
        lines,
        [
            "property_name",
            "unit",
            "resident_name",
            "charge_code",
            "notes",
            "reference_number",
            "status",
        ],
    )
    frame.insert(0, "source_row", lines["source_row"].astype("int64"))
    issues: list[Issue] = []
    already: set[tuple[object, str]] = set()
    cents, errors = parse_money(lines["amount"])
    frame["amount_cents"] = cents
    line_fields = lines["charge_code"] if extract.charge_columns else None
    found, bad = _parse_issues(
        frame,
        errors,
        "amount_cents",
        IssueCode.BAD_AMOUNT,
        name,
        lines["amount"],
        extract.cells,
        line_fields,
    )
    issues += found
    already |= bad

    if "transaction_date" in lines:
        frame["transaction_date"], errors = parse_dates(lines["transaction_date"])
        found, bad = _parse_issues(
            frame,
            errors,
            "transaction_date",
            IssueCode.BAD_DATE,
            name,
            lines["transaction_date"],
            extract.cells,
        )
        issues += found
        already |= bad
    else:
        frame["transaction_date"] = pd.Series(pd.NA, index=frame.index, dtype="string")
    if period is not None:
        frame["transaction_date"] = frame["transaction_date"].fillna(period.isoformat())

    # Rows whose every charge is blank or zero carry nothing to post: skipped, with the reason.
    has_charge = frame["amount_cents"].fillna(0).ne(0) | errors_mask(frame, already)
    by_row = has_charge.groupby(frame["source_row"]).any()
    # The profile says what a vacant unit looks like ("VACANT", "Vacant-Unrented", ...).
    vacant_text = any_match(frame["resident_name"], extract.vacant_patterns)
    vacant_text |= any_match(frame["status"], extract.vacant_patterns)
    vacant = vacant_text.groupby(frame["source_row"]).any()
    empty_rows = by_row.index[~by_row]
    skipped = pd.DataFrame(
        {
            "source_row": empty_rows.astype("int64"),
            "kind": ["vacant" if vacant[r] else "zero_amount" for r in empty_rows],
            "text": "",
        }
    )
    for row in by_row.index[by_row & vacant]:
        issues.append(
            Issue(
                IssueCode.SCHEMA_CHECK,
                "unit is marked vacant but has charges",
                name,
                int(row),
                "resident",
                None,
            )
        )
    frame = frame[has_charge].copy()
    if period is None:
        missing = frame["transaction_date"].isna()
        for row in frame.loc[missing, "source_row"].unique():
            issues.append(
                Issue(
                    IssueCode.MISSING_VALUE,
                    "no charge date and no billing period: run with --period YYYY-MM, set "
                    "period in tieout.toml, or put 'As of MM/DD/YYYY' in the report title",
                    name,
                    int(row),
                    "transaction date",
                    None,
                )
            )
            already |= set(
                zip(
                    frame.index[frame["source_row"].eq(row)],
                    ["transaction_date"] * len(frame),
                    strict=False,
                )
            )
    issues += schema_issues(ResidentCharge, frame, name, already, extract.cells, line_fields)
    return ValidateResult(
        kind="charge",
        lines=frame,
        valid=_valid_lines(frame, issues),
        issues=_sorted(issues),
        skipped=skipped,
    )


def errors_mask(frame: pd.DataFrame, already: set[tuple[object, str]]) -> pd.Series:
    """Lines whose amount could not be read: they count as charges (to be rejected), not zeros."""
    bad = {index for index, column in already if column == "amount_cents"}
    return pd.Series(frame.index.isin(list(bad)), index=frame.index)
