"""A record's lineage, from the cell it came from to the Rent Manager record (`tieout trace`).

The ledger keeps each record's file (by sha256 and its archived copy), sheet and rows; the cells
and the values as the file had them are read again from the archived copy, checked by sha256,
with the layout the run used, so what is shown is what the file says, not what tieout
remembers of it. An alias a staff member wrote is shown with its file and line; the Rent
Manager id is Propexo's ``x_id`` of the synced record, once a sync has brought it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Any, cast

import pandas as pd

from pipelines.core.config import Settings
from pipelines.core.errors import InputError, TieoutError
from pipelines.core.hints import AliasHints
from pipelines.core.kind import Kinds
from pipelines.core.models import SourceFile
from pipelines.core.versions import candidates, original_name
from pipelines.ledger import Ledger
from pipelines.reading.extract import extract_file
from pipelines.reading.grids import fingerprint
from pipelines.reading.profiles import profiles_for
from pipelines.reporting.publish import report_names
from pipelines.reporting.tables import LinesOf, record_lines
from pipelines.reporting.views import FileView, cache_key, keep_view, load_view, plain
from pipelines.resolving.aliases import read_aliases
from pipelines.resolving.refs import build_reference_data, charge_code_names
from pipelines.resolving.transform import normalize_org, normalize_person

# Which alias file speaks for which field as the file writes it, and how names are compared.
ALIAS_FIELDS = {
    "vendor_name": ("vendors", normalize_org),
    "property_name": ("properties", normalize_org),
    "gl_account": ("gl_accounts", normalize_org),
    "resident_name": ("residents", normalize_person),
    "charge_code": ("charge_codes", normalize_org),
}


def find_records(ledger: Ledger, query: str) -> pd.DataFrame:
    """The records a person means by ``query``: a record key, a reference or invoice number,
    or ``FILE:ROW`` (the file's name and a row number as Excel shows it)."""
    records = ledger.records()
    if records.empty:
        raise InputError("the ledger holds no records yet: run `tieout run` first")
    text = query.strip()
    hit = records[
        records["record_key"].eq(text)
        | records["reference_number"].astype(str).eq(text)
        | records["invoice_number"].astype(str).eq(text)
    ]
    if hit.empty and ":" in text:
        name, _, row = text.rpartition(":")
        if row.strip().isdigit():
            wanted = int(row)
            same_file = records["source_file"].astype(str).map(lambda f: Path(f).name == name)
            has_row = records["source_rows"].map(lambda rows: wanted in [int(r) for r in rows])
            hit = records[same_file & has_row]
    if hit.empty:
        raise InputError(
            f"no record is {query!r}: give a record key, a reference or invoice number, or "
            "FILE:ROW (e.g. rent_roll.xlsx:6); `tieout status` and the report list them"
        )
    return hit


def alias_lines(mappings_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """Every alias line staff wrote, per file stem, with its file and line number (as
    :func:`pipelines.resolving.aliases.read_aliases` reads them)."""
    files = read_aliases(mappings_dir)
    return {
        stem: [
            {
                "file": str(mappings_dir / f"{stem}.csv"),
                "line": int(line),
                "from": str(name),
                "to": str(target),
            }
            for name, target, line in frame[
                ["spreadsheet_name", "propexo_name", "line"]
            ].itertuples(index=False)
        ]
        for stem, frame in files.frames.items()
    }


@lru_cache(maxsize=65536)
def _normal(field: str, text: str) -> str:
    """A name as the alias files compare it (once per distinct name: lineage of a million
    records normalises each vendor or resident once, not once per record)."""
    return str(ALIAS_FIELDS[field][1](pd.Series([text])).iloc[0])


AliasIndex = dict[str, dict[str, list[dict[str, Any]]]]


def alias_index(lines: dict[str, list[dict[str, Any]]]) -> AliasIndex:
    """Per field as the file writes it: each alias line by its name normalised."""
    index: AliasIndex = {}
    for field, (kind, _) in ALIAS_FIELDS.items():
        by_name: dict[str, list[dict[str, Any]]] = {}
        for line in lines.get(kind, []):
            by_name.setdefault(_normal(field, line["from"]), []).append({"kind": kind, **line})
        index[field] = by_name
    return index


def _aliases_for(values: dict[str, Any], index: AliasIndex) -> list[dict[str, Any]]:
    """The alias lines that turned this record's names, as read, into Propexo's names."""
    used = []
    for field, value in values.items():
        if field not in ALIAS_FIELDS or value in (None, "") or not index.get(field):
            continue
        for line in index[field].get(_normal(field, str(value)), []):
            used.append(
                {
                    "kind": line["kind"],
                    "as_read": str(value),
                    "propexo_name": line["to"],
                    "file": line["file"],
                    "line": line["line"],
                }
            )
    return used


class _Reread:
    """Archived files read again, once each, with the layout their run used."""

    def __init__(self, settings: Settings, ledger: Ledger, kinds: Kinds) -> None:
        self.settings = settings
        self.kinds = kinds
        cached = ledger.cached_refs(settings.integration_id)
        known: frozenset[str] = frozenset()
        if cached is not None:
            files = read_aliases(settings.mappings_dir)
            refs = build_reference_data(cached[1], files.frames, AliasHints(settings.data_dir))
            known = charge_code_names(refs)
        self.known = known
        self.done: dict[str, tuple[Any, str | None]] = {}
        self.found: dict[str, Path] = {}  # sha256 → where that version is kept
        self.views: dict[str, FileView] = {}
        self.cache = settings.data_dir / "cache" / "files"
        self.profiles = repr(profiles_for(settings, kinds))

    def view(self, path: str, sha256: str, profile: str) -> FileView:
        """An archived file read again, indexed by row, once per file: from the cache of
        files read (:mod:`views`) when its archived copy is still there, else parsed (and
        kept in the cache)."""
        if sha256 in self.views:
            return self.views[sha256]
        key = cache_key(sha256, profile, self.known, self.profiles)
        view = load_view(self.cache, key) if self.kept(Path(path), sha256) else None
        if view is None:
            extract, why = self.extract(Path(path), sha256, profile)
            view = FileView(extract, why)
            if extract is not None:
                keep_view(self.cache, key, view)
        self.views[sha256] = view
        return view

    def extract(self, path: Path, sha256: str, profile: str) -> tuple[Any, str | None]:
        """(the extract, or None) and why not, for an archived file."""
        if sha256 in self.done:
            return self.done[sha256]
        answer: tuple[Any, str | None]
        source = self.kept(path, sha256)
        present = [p for p in candidates(path, sha256) if p.is_file()]
        if source is None and not present:
            answer = (None, f"the archived copy is not at {path}")
        elif source is None:  # the most particular name found, holding other bytes
            answer = (None, f"{present[-1]} is not the file that was read (its sha256 differs)")
        else:
            try:
                extract = extract_file(
                    source,
                    profiles_for(self.settings, self.kinds),
                    profile_name=profile or None,
                    known_codes=self.known,
                )
                answer = (extract, None)
            except TieoutError as exc:
                answer = (None, f"the archived copy could not be read again: {exc}")
        self.done[sha256] = answer
        return answer

    def kept(self, path: Path, sha256: str) -> SourceFile | None:
        """The version with ``sha256`` recorded at ``path``: there, or under its kept name
        (:func:`versions.candidates`: a ledger written before versions were kept by content
        recorded plain names and hidden folders), sha256 checked; None when it is nowhere."""
        for candidate in candidates(path, sha256):
            if candidate.is_file():
                source = fingerprint(candidate)
                if source.sha256 == sha256:
                    self.found[sha256] = candidate
                    return replace(source, name=original_name(source.name, sha256))
        return None


def _cell_values(view: FileView, row: int, fields: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Field → {cell, header, value as read} for one source row."""
    first = view.by_row.get(row)
    if first is None:
        return {}
    cells = view.extract.cells
    out = {}
    for field in fields:
        if field not in cells or field not in first:
            continue
        header, letter = cells[field]
        value = first[field]
        if value is None or (isinstance(value, float) and pd.isna(value)) or value == "":
            continue
        out[field] = {"cell": f"{letter}{row}", "header": header, "value": plain(value)}
    return out


def _charge_field(view: FileView, row: int, amount_cents: int, code_name: str) -> str | None:
    """Which column of a row a charge's amount came from: in a wide roll, the charge column
    whose amount is the record's (the header naming its charge code when two amounts agree);
    in a long file, its amount column."""
    extract = view.extract
    if not extract.charge_columns:
        return "amount" if "amount" in extract.cells else None
    amounts = view.cents.get(row)
    if amounts is None:
        return None
    wanted = abs(int(amount_cents))
    same = [c for c, v in amounts.items() if not pd.isna(v) and abs(int(v)) == wanted]
    named = [c for c in same if _normal("charge_code", c) == _normal("charge_code", code_name)]
    if named:
        return str(named[0])
    return str(same[0]) if len(same) == 1 else None


def trace(ledger: Ledger, settings: Settings, query: str, kinds: Kinds) -> list[dict[str, Any]]:
    """The lineage of each record ``query`` names (see the module's docstring)."""
    return lineages(ledger, settings, find_records(ledger, query), kinds)


def _rent_manager_ids(
    ledger: Ledger, ids: set[str], cache_of: dict[str, str]
) -> dict[str, dict[str, Any]]:
    """Per synced kind, Propexo id → Rent Manager id (``x_id``), for the ids asked only."""
    out: dict[str, dict[str, Any]] = {kind: {} for kind in set(cache_of.values())}
    if not ids:
        return out
    for kind, found in out.items():
        for row in ledger.db.execute("SELECT id, data FROM synced WHERE kind = ?", (kind,)):
            if str(row[0]) in ids:
                found[str(row[0])] = json.loads(row[1]).get("x_id")
    return out


def lineages(
    ledger: Ledger,
    settings: Settings,
    records: pd.DataFrame,
    kinds: Kinds,
    names: dict[str, dict[str, str]] | None = None,
) -> list[dict[str, Any]]:
    """The lineage of each of ``records`` (ledger rows), in their order: what `tieout trace`
    prints and each report's summary.json carries. Each archived file is read again once,
    and each record costs a few dict lookups (no scan of its file per record)."""
    if records.empty:
        return []
    names = names if names is not None else report_names(ledger, settings)
    index = alias_index(alias_lines(settings.mappings_dir))
    reread = _Reread(settings, ledger, kinds)
    # Each record kind's Propexo copies are kept under its kind's first record kind.
    cache_of = {name: kind.record_kinds[0] for kind in kinds for name in kind.record_kinds}
    files = ledger.db.read_frame("SELECT sha256, name, moved_to, sheet, profile FROM files")
    by_sha = {str(f["sha256"]): {str(k): v for k, v in f.items()} for f in files.to_dict("records")}
    # A file taken in again (a retry) lies where its latest pass put it.
    passes = ledger.db.read_frame(
        "SELECT sha256, moved_to FROM file_passes WHERE moved_to IS NOT NULL ORDER BY processed_at"
    )
    for sha, moved_to in passes.itertuples(index=False):
        if str(sha) in by_sha and Path(str(moved_to)).is_file():
            by_sha[str(sha)]["moved_to"] = moved_to
    ids = pd.concat(
        [records.get("propexo_id", pd.Series(dtype=object)), records["created_record_id"]]
    )
    synced = _rent_manager_ids(ledger, {str(i) for i in ids.dropna() if str(i)}, cache_of)
    lines_of = record_lines(kinds)
    return [
        _lineage(record, by_sha, names, index, reread, synced, cache_of, lines_of)
        for record in cast(list[dict[str, Any]], records.to_dict("records"))
    ]


def _text(value: Any) -> str | None:
    """A ledger cell as text, or None where it holds nothing (None, NaN, "")."""
    if value is None or (isinstance(value, float) and pd.isna(value)) or value == "":
        return None
    return str(value)


# The fields of a line (each line's own row says them); the record's other fields are read
# from its first row.
LINE_FIELDS = ("property_name", "gl_account", "description", "amount")


def _lineage(
    record: dict[str, Any],
    by_sha: dict[str, dict[str, Any]],
    names: dict[str, dict[str, str]],
    index: AliasIndex,
    reread: _Reread,
    synced: dict[str, dict[str, Any]],
    cache_of: dict[str, str],
    lines_of: LinesOf,
) -> dict[str, Any]:
    sha = _text(record.get("file_sha256")) or ""
    file_row = by_sha.get(sha, {})
    rows = [int(r) for r in (record.get("source_rows") or [])]
    kind = str(record["kind"])
    propexo_id = _text(record.get("propexo_id")) or _text(record.get("created_record_id"))
    rent_manager_id = (
        synced.get(cache_of.get(kind, ""), {}).get(str(propexo_id)) if propexo_id else None
    )
    values: dict[str, dict[str, Any]] = {}
    lines: list[dict[str, Any]] = []
    view = None
    archived = file_row.get("moved_to")
    if archived:
        view = reread.view(str(archived), sha, str(file_row.get("profile") or ""))
        note = view.why
        archived = str(reread.found.get(sha, archived))  # the bytes read, where they are kept
    else:
        note = "the file was not archived (a dry run, or a file refused as a whole)"
    if view is not None and view.extract is not None and rows:
        of_lines = lines_of(kind, record.get("payload"))
        if of_lines:  # a record of lines (a bill): each line from its own row
            values, lines = _line_cells(view, rows, of_lines, names)
        else:
            values = _record_cells(view, rows[0], record, names)
    as_read = {field: c["value"] for field, c in values.items()}
    for line in lines:  # each line's property and GL account may be an alias too
        for field, value in line["as_read"].items():
            as_read.setdefault(field, value)
    return {
        "record_key": record["record_key"],
        "kind": kind,
        "file": record.get("source_file"),
        "file_sha256": sha or None,
        "archived": archived,
        "sheet": _text(file_row.get("sheet")),
        "row": rows[0] if rows else None,
        "rows": rows,
        "cells": list(dict.fromkeys(c["cell"] for c in values.values() if c.get("cell"))),
        "values_as_read": {c["cell"]: c["value"] for c in values.values() if c.get("cell")},
        "fields": {f: c for f, c in values.items()},
        "aliases": _aliases_for(as_read, index),
        "names": {
            "vendor": names.get("vendor", {}).get(str(record.get("vendor_id"))),
            "resident": names.get("resident", {}).get(str(record.get("resident_id"))),
            "charge_code": names.get("charge_code", {}).get(str(record.get("charge_code_id"))),
        },
        "propexo_ids": {
            k: _text(record.get(k))
            for k in ("vendor_id", "resident_id", "charge_code_id", "location_id")
            if _text(record.get(k))
        },
        "amount_cents": int(record["amount_cents"]),
        "reference_number": _text(record.get("reference_number")),
        "invoice_number": _text(record.get("invoice_number")),
        "job_id": _text(record.get("job_id")),
        "state": record.get("state"),
        "propexo_id": propexo_id or None,
        "rent_manager_id": rent_manager_id,
        "lines": lines,
        "note": note,
    }


def _line_cells(
    view: FileView,
    rows: list[int],
    of_lines: list[dict[str, Any]],
    names: dict[str, dict[str, str]],
) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """A record of lines: the record's own fields (from its first row) and each line with
    its cells, read from its own row."""
    values: dict[str, dict[str, Any]] = {}
    lines: list[dict[str, Any]] = []
    padded = of_lines + [{}] * (len(rows) - len(of_lines))
    for row, line in zip(rows, padded, strict=False):
        read = _cell_values(view, row, view.extract.cells)
        lines.append(
            {
                "row": row,
                "amount_cents": line.get("amount_cents"),
                "property_id": line.get("property_id"),
                "property": names.get("property", {}).get(str(line.get("property_id"))),
                "financial_account_id": line.get("account_id"),
                "gl_account": names.get("gl_account", {}).get(str(line.get("account_id"))),
                "cells": {f: c["cell"] for f, c in read.items()},
                "values_as_read": {c["cell"]: c["value"] for c in read.values()},
                "as_read": {f: c["value"] for f, c in read.items() if f in LINE_FIELDS},
            }
        )
        if row == rows[0]:
            values.update({f: c for f, c in read.items() if f not in LINE_FIELDS})
    return values, lines


def _record_cells(
    view: FileView, row: int, record: dict[str, Any], names: dict[str, dict[str, str]]
) -> dict[str, dict[str, Any]]:
    """A record of one row: its fields' cells, its amount's column (in a wide roll, the
    column whose amount is the record's), and there the charge code is the column's header."""
    extract = view.extract
    code_name = names.get("charge_code", {}).get(str(record.get("charge_code_id")), "")
    values = _cell_values(view, row, [f for f in extract.cells if f not in extract.charge_columns])
    charge = _charge_field(view, row, int(record["amount_cents"]), code_name)
    if charge is None:
        return values
    values.update(_cell_values(view, row, [charge]))
    if extract.charge_columns and charge in values:
        # In a wide roll the charge code is the column's header, in its own cell.
        header_row = extract.header_rows[-1] if extract.header_rows else None
        letter = extract.cells[charge][1]
        values["charge_code"] = {
            "cell": f"{letter}{header_row}" if header_row else None,
            "header": "(column header)",
            "value": values[charge]["header"],
        }
    return values
