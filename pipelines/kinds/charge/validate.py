"""Resident charge lines (a long sheet or a wide rent roll) normalized and checked."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from pipelines.core.columns import any_match
from pipelines.core.models import ExtractResult, Issue, IssueCode, ValidateResult
from pipelines.kinds.charge.schemas import SOURCE_KIND, ResidentCharge
from pipelines.reading.validate import (
    line_frame,
    parse_amounts,
    parse_dated,
    schema_issues,
    validated,
)


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
    texts = ["property_name", "unit", "resident_name", "charge_code", "notes", "reference_number"]
    frame = line_frame(lines, [*texts, "status"])
    line_fields = lines["charge_code"] if extract.charge_columns else None
    issues, already = parse_amounts(
        frame, lines["amount"], name, extract.cells, ResidentCharge, line_fields
    )

    if "transaction_date" in lines:
        found, bad = parse_dated(
            frame,
            lines["transaction_date"],
            "transaction_date",
            name,
            extract.cells,
            ResidentCharge,
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
    return validated(SOURCE_KIND, frame, issues, skipped)


def errors_mask(frame: pd.DataFrame, already: set[tuple[object, str]]) -> pd.Series:
    """Lines whose amount could not be read: they count as charges (to be rejected), not zeros."""
    bad = {index for index, column in already if column == "amount_cents"}
    return pd.Series(frame.index.isin(list(bad)), index=frame.index)
