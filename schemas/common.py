"""Column checks shared by every source, and what every record Propexo lists carries."""

from __future__ import annotations

import pandera.pandas as pa
from pandera.typing import Series

ISO_DATE = r"^\d{4}-\d{2}-\d{2}$"
MAX_NAME = 200
MAX_INVOICE_NUMBER = 50
MAX_REFERENCE = 20
MAX_NOTES = 500

# What each check a line can fail says to a person, by the check's stable name (pandera's
# built-in check names, and "not_nullable" for a missing value). ``{label}`` is the column's
# title (its ``Field(title=...)``), ``{value}`` the cell, other fields the check's statistics.
CHECK_WORDS = {
    "not_nullable": "{label} is missing",
    "str_length": '{label} "{value}" is longer than {max_value} characters',
    "str_length_short": "{label} is empty",
    "str_matches": '{label} "{value}" is not in the expected form',
    "not_equal_to": "{label} cannot be {value}",
    "not_equal_to_zero": "{label} is zero",
    "greater_than_or_equal_to": '{label} "{value}" is below {min_value}',
    "field_uniqueness": '{label} "{value}" appears more than once',
}
UNKNOWN_CHECK = '{label} "{value}" fails the check {check}'


class Line(pa.DataFrameModel):
    """What every kind's validated line has: the file's row it came from. A kind's line model
    adds its columns (each with a ``title``, its words for a person); text is coerced, and
    columns the model does not name are dropped."""

    source_row: Series[int] = pa.Field(ge=1, title="row")

    class Config:
        coerce = True
        strict = "filter"


class SyncedRecord(pa.DataFrameModel):
    """What every record Propexo's read models list carries: its id, the Rent Manager record's
    own id, and when Propexo wrote and last saw it. A kind's read model adds its fields."""

    id: Series[str]
    x_id: Series[str] = pa.Field(nullable=True)  # the Rent Manager record's own id
    created_at: Series[str] = pa.Field(nullable=True)
    updated_at: Series[str] = pa.Field(nullable=True)
    last_seen: Series[str] = pa.Field(nullable=True)

    class Config:
        coerce = True
