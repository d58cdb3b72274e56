"""Vendor bill lines normalized and checked (shared parts: :mod:`pipelines.reading.validate`)."""

from __future__ import annotations

import pandas as pd

from pipelines.core.models import ExtractResult, Issue, IssueCode, ValidateResult
from pipelines.core.parsing import parse_dates, parse_money
from pipelines.kinds.invoice.schemas import SOURCE_KIND, VendorBill
from pipelines.reading.validate import (
    SKIPPED_COLUMNS,
    parse_issues,
    schema_issues,
    sorted_issues,
    text_columns,
    titles_of,
    valid_lines,
)

TITLES = titles_of(VendorBill)


def validate_bills(extract: ExtractResult) -> ValidateResult:
    """Normalize and check vendor bill lines."""
    rows, name = extract.rows, extract.source.name
    frame = text_columns(
        rows, ["vendor_name", "invoice_number", "property_name", "gl_account", "description"]
    )
    frame.insert(0, "source_row", rows["source_row"].astype("int64"))
    issues: list[Issue] = []
    already: set[tuple[object, str]] = set()
    empty = pd.Series(pd.NA, index=rows.index, dtype=object)
    for column in ("invoice_date", "due_date", "post_date"):
        raw = rows.get(column, empty)
        frame[column], errors = parse_dates(raw)
        found, bad = parse_issues(
            frame, errors, column, IssueCode.BAD_DATE, name, raw, extract.cells, titles=TITLES
        )
        issues += found
        already |= bad
    raw_amount = rows["amount"]
    frame["amount_cents"], errors = parse_money(raw_amount)
    found, bad = parse_issues(
        frame,
        errors,
        "amount_cents",
        IssueCode.BAD_AMOUNT,
        name,
        raw_amount,
        extract.cells,
        titles=TITLES,
    )
    issues += found
    already |= bad
    issues += schema_issues(VendorBill, frame, name, already, extract.cells)
    return ValidateResult(
        kind=SOURCE_KIND,
        lines=frame,
        valid=valid_lines(frame, issues),
        issues=sorted_issues(issues),
        skipped=pd.DataFrame(columns=SKIPPED_COLUMNS),
    )
