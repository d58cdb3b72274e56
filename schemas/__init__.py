"""The column contract: pandera models of each source kind's lines, resolved lines and
payloads, and the canonical columns a source profile may map (``SOURCE_COLUMNS``)."""

from __future__ import annotations

import importlib
import pkgutil
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


def _source_columns() -> dict[str, tuple[str, ...]]:
    """Every schema module that names a ``SOURCE_KIND`` gives its ``SOURCE_COLUMNS``: a new
    kind's module is found here without editing this file."""
    found: dict[str, tuple[str, ...]] = {}
    for module in pkgutil.iter_modules(__path__):
        loaded = importlib.import_module(f"{__name__}.{module.name}")
        kind = getattr(loaded, "SOURCE_KIND", None)
        if isinstance(kind, str):
            found[kind] = tuple(loaded.SOURCE_COLUMNS)
    return found


# source kind → the canonical columns a profile maps headers onto (what extract reads; the
# models validate what they become)
SOURCE_COLUMNS = _source_columns()
