"""What tieout writes for a spreadsheet to open: CSV that Excel reads as written, and text
cells that never run as formulas (in the CSVs, the rejects files and the workbook alike)."""

from __future__ import annotations

import csv
import io
from typing import Any

import pandas as pd

# What a spreadsheet takes for the start of a formula (OWASP's CSV injection list).
FORMULA_LEADERS = ("=", "+", "-", "@", "\t", "\r")


def neutralize(value: Any) -> Any:
    """A text cell that a spreadsheet would run as a formula is made plain text."""
    if isinstance(value, str) and value.startswith(FORMULA_LEADERS):
        return "'" + value
    return value


def csv_bytes(frame: pd.DataFrame) -> bytes:
    """Every CSV tieout writes: UTF-8 with a BOM (Excel), every text cell quoted, so a CR or LF
    inside a cell stays inside it, and every text cell a spreadsheet would run as a formula
    made plain text."""
    out = frame.copy()
    for column in out.columns:
        if out[column].dtype == object or isinstance(out[column].dtype, pd.StringDtype):
            out[column] = out[column].map(neutralize).astype(object)
    buffer = io.StringIO()
    out.to_csv(buffer, index=False, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\r\n")
    return buffer.getvalue().encode("utf-8-sig")
