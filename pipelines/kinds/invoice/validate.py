"""Vendor bill lines normalized and checked (shared parts: :mod:`pipelines.reading.validate`)."""

from __future__ import annotations

from datetime import date

import pandas as pd

from pipelines.core.models import ExtractResult, Issue, ValidateResult
from pipelines.kinds.invoice.schemas import SOURCE_KIND, VendorBill
from pipelines.reading.validate import (
    line_frame,
    parse_amounts,
    parse_dated,
    schema_issues,
    validated,
)


def validate_bills(extract: ExtractResult, period: date | None) -> ValidateResult:
    """Normalize and check vendor bill lines (they carry their own dates: ``period`` is not
    used)."""
    rows, name = extract.rows, extract.source.name
    frame = line_frame(
        rows, ["vendor_name", "invoice_number", "property_name", "gl_account", "description"]
    )
    empty = pd.Series(pd.NA, index=rows.index, dtype=object)
    issues: list[Issue] = []
    already: set[tuple[object, str]] = set()
    for column in ("invoice_date", "due_date", "post_date"):
        found, bad = parse_dated(
            frame, rows.get(column, empty), column, name, extract.cells, VendorBill
        )
        issues, already = issues + found, already | bad
    found, bad = parse_amounts(frame, rows["amount"], name, extract.cells, VendorBill)
    issues, already = issues + found, already | bad
    issues += schema_issues(VendorBill, frame, name, already, extract.cells)
    return validated(SOURCE_KIND, frame, issues)
