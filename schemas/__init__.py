"""The column contract's one checker (each kind's pandera models are in its package,
``pipelines/kinds/<kind>/schemas.py``)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pandera.pandas as pa

SAMPLE_ROWS = 2_000  # a frame larger than this is checked on a sample (a million rows cost)


class ContractError(RuntimeError):
    """A frame that one stage hands the next does not match its model: a bug in tieout (or,
    for Propexo's records, an answer unlike its documented shape), never a row's fault."""


def conforms(model: Any, frame: pd.DataFrame, what: str) -> None:
    """Check ``frame`` against a pandera model (a sample of it when large); raise
    :class:`ContractError` naming the first few failures."""
    if frame.empty:
        return
    # Sampled here, not by pandera's ``sample=`` (which coerces the whole frame first).
    sample = frame.sample(SAMPLE_ROWS, random_state=0) if len(frame) > SAMPLE_ROWS else frame
    try:
        model.validate(sample, lazy=True)
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases.head(3)
        said = "; ".join(
            f"{column}: {check} ({failure!r})"
            for column, check, failure in zip(
                cases["column"], cases["check"], cases["failure_case"], strict=True
            )
        )
        raise ContractError(f"{what} do not match {model.__name__}: {said}") from None
