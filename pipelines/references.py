"""Charge reference numbers: ``TO`` and ten base-32 digits derived from what names a charge
(integration, resident, charge code, date, and its ordinal among equal lines), so the same
line in a file dropped again gets the same number, and Propexo's records can be told ours."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipelines.columns import (
    base32_column,
    digest64,
    fingerprint64,
    int_part,
    ordinals,
)
from pipelines.payloads import (
    IDENTITY,
    distinct_contents,
)

REFERENCE_PREFIX = "TO"


REFERENCE_LENGTH = 12


def reference_numbers(
    frame: pd.DataFrame,
    integration_id: str,
    contents: tuple[np.ndarray, pd.DataFrame] | None = None,
) -> pd.Series:
    """Deterministic reference numbers for charges whose source has none (see
    :func:`reference_bits` for how they are derived)."""
    return reference_text(reference_bits(frame, integration_id, contents), frame.index)


def reference_text(bits: np.ndarray, index: pd.Index) -> pd.Series:
    """``TO`` + the top 50 bits in base32."""
    size = REFERENCE_LENGTH - len(REFERENCE_PREFIX)
    return base32_column(bits, size, REFERENCE_PREFIX).set_axis(index)


def reference_bits(
    frame: pd.DataFrame,
    integration_id: str,
    contents: tuple[np.ndarray, pd.DataFrame] | None = None,
) -> np.ndarray:
    """The 64 bits behind each line's reference number.

    Derived from what *identifies* the line, never from what it says: the integration, the
    resident, the charge code, the transaction date (the period), and the line's ordinal among
    lines of the same identity in file order. So a corrected amount or note keeps its number
    and is caught as "same key, other content" (a conflict), instead of becoming a new charge.

    The number is ``TO`` + the top 50 bits, in base32, of ``fingerprint64([sha(integration),
    sha(resident), sha(code), sha(date), ordinal])``, where ``sha(x)`` is the first 8 bytes of
    sha256 of the text: computed column-wise, with sha256 once per distinct value.
    ``contents`` is ``distinct_contents`` of the frame over at least those columns, when the
    caller has it already.
    """
    codes, contents_frame = contents or distinct_contents(frame, IDENTITY)
    per_content = fingerprint64(
        [
            digest64(pd.Series([integration_id] * len(contents_frame), dtype=object)),
            *(digest64(contents_frame[column]) for column in IDENTITY),
        ]
    )
    identity = per_content[codes]
    ordinal = ordinals(identity, frame["source_row"].to_numpy(dtype=np.int64))
    return fingerprint64([int_part(ordinal)], start=identity)
