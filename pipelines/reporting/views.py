"""Archived files as lineage reads them, kept between reports: each file's cells by source
row (only the columns its layout maps) and its charge columns' amounts, written once to
``data/cache/files/`` when a report first reads the file, so the next report (a period's
workpaper, a report refreshed after a sync, a sign-off) reads that instead of parsing the file
again. An entry is found by the file's sha256, the layout it was read with, the charge codes
known and tieout's version and profiles: a change to any of them reads the file again."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd

from pipelines.core.disk import write_atomically
from pipelines.core.parsing import parse_money


class FileView:
    """A file's extract read again, with each source row's cells at hand (a dict lookup per
    record, not a scan of the file's rows) and its charge columns' amounts parsed once."""

    def __init__(self, extract: Any, why: str | None) -> None:
        self.extract = extract
        self.why = why
        self.by_row: dict[int, dict[str, Any]] = {}
        self.cents: dict[int, dict[str, Any]] = {}
        if extract is None:
            return
        rows = extract.rows.drop_duplicates("source_row")
        self.by_row = {int(r["source_row"]): r for r in rows.to_dict("records")}
        charged = [c for c in extract.charge_columns if c in rows.columns]
        if charged:
            parsed = {c: parse_money(rows[c].astype(object))[0].tolist() for c in charged}
            for i, row in enumerate(rows["source_row"].tolist()):
                self.cents[int(row)] = {c: parsed[c][i] for c in charged}

    def data(self) -> dict[str, Any]:
        """What a cache entry keeps of it (JSON): the cells the layout maps, each row's values
        of them, the charge columns' amounts."""
        extract = self.extract
        fields = list(extract.cells)
        return {
            "cells": {f: list(extract.cells[f]) for f in fields},
            "charge_columns": list(extract.charge_columns),
            "header_rows": [int(r) for r in extract.header_rows],
            "rows": {
                str(row): {f: _kept(values[f]) for f in fields if f in values}
                for row, values in self.by_row.items()
            },
            "cents": {
                str(row): {c: _kept(v) for c, v in amounts.items()}
                for row, amounts in self.cents.items()
            },
        }

    @classmethod
    def of(cls, data: dict[str, Any]) -> FileView:
        """A view from a cache entry's :meth:`data`."""
        view = cls(None, None)
        view.extract = SimpleNamespace(
            cells={f: tuple(c) for f, c in data["cells"].items()},
            charge_columns=list(data["charge_columns"]),
            header_rows=list(data["header_rows"]),
        )
        view.by_row = {int(r): values for r, values in data["rows"].items()}
        view.cents = {int(r): amounts for r, amounts in data["cents"].items()}
        return view


def _kept(value: Any) -> Any:
    """A cell's value as a cache entry holds it: nothing for NaN, a date as ISO text, a
    number as a number (what lineage shows of it, :func:`plain`)."""
    try:
        if pd.isna(value):  # None, NaN, NaT and pandas' NA (a wide roll's empty amount)
            return None
    except (TypeError, ValueError):  # a list or the like: kept as it is
        pass
    if hasattr(value, "item") and not isinstance(value, str):  # a numpy scalar
        value = value.item()
    return plain(value)


def plain(value: Any) -> Any:
    """A cell's value as lineage shows it: a date as ISO text, a whole float as an integer."""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def cache_key(sha256: str, profile: str, known: frozenset[str], profiles: str) -> str:
    """The name of a file's entry: its bytes, the layout it is read with, the charge codes
    known (a wide roll's charge columns are those), tieout's version and its profiles."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        tieout = version("tieout")
    except PackageNotFoundError:  # pragma: no cover - running from a checkout without install
        tieout = "unknown"
    parts = json.dumps([sha256, profile, sorted(known), profiles, tieout])
    return f"{sha256[:16]}-{hashlib.sha256(parts.encode()).hexdigest()[:32]}"


def load_view(folder: Path, key: str) -> FileView | None:
    """A file's view kept under ``key``, or None (none kept, or unreadable: read again)."""
    try:
        return FileView.of(json.loads((folder / f"{key}.json").read_text()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def keep_view(folder: Path, key: str, view: FileView) -> None:
    """A file's view kept under ``key`` (owner-only, written whole or not at all)."""
    data = json.dumps(view.data(), separators=(",", ":"), default=str)
    write_atomically(folder / f"{key}.json", data.encode())
