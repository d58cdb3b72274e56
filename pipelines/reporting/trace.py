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
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.core.config import Settings
from pipelines.core.errors import InputError, TieoutError
from pipelines.core.kind import Kinds
from pipelines.core.parsing import parse_money
from pipelines.ledger import Ledger
from pipelines.reading.extract import extract_file
from pipelines.reading.files import charge_code_names, profiles_for
from pipelines.reading.grids import fingerprint
from pipelines.reporting.publish import report_names
from pipelines.resolving.aliases import read_aliases
from pipelines.resolving.hints import AliasHints
from pipelines.resolving.refs import build_reference_data
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


def _aliases_for(
    values: dict[str, Any], lines: dict[str, list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    """The alias lines that turned this record's names, as read, into Propexo's names."""
    used = []
    for field, value in values.items():
        if field not in ALIAS_FIELDS or value in (None, ""):
            continue
        kind, norm = ALIAS_FIELDS[field]
        mine = norm(pd.Series([str(value)])).iloc[0]
        for line in lines.get(kind, []):
            if norm(pd.Series([line["from"]])).iloc[0] == mine:
                used.append(
                    {
                        "kind": kind,
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

    def extract(self, path: Path, sha256: str, profile: str) -> tuple[Any, str | None]:
        """(the extract, or None) and why not, for an archived file."""
        if sha256 in self.done:
            return self.done[sha256]
        answer: tuple[Any, str | None]
        if not path.is_file():
            answer = (None, f"the archived copy is not at {path}")
        else:
            source = fingerprint(path)
            if source.sha256 != sha256:
                answer = (None, f"{path} is not the file that was read (its sha256 differs)")
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


def _cell_values(extract: Any, row: int, fields: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Field → {cell, header, value as read} for one source row."""
    rows = extract.rows[extract.rows["source_row"] == row]
    if rows.empty:
        return {}
    first = rows.iloc[0]
    out = {}
    for field in fields:
        if field not in extract.cells or field not in rows.columns:
            continue
        header, letter = extract.cells[field]
        value = first[field]
        if value is None or (isinstance(value, float) and pd.isna(value)) or value == "":
            continue
        out[field] = {"cell": f"{letter}{row}", "header": header, "value": _plain(value)}
    return out


def _plain(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _charge_field(extract: Any, row: int, record: pd.Series, code_name: str) -> str | None:
    """Which column of a row a charge's amount came from: in a wide roll, the charge column
    whose amount is the record's (the header naming its charge code when two amounts agree);
    in a long file, its amount column."""
    if not extract.charge_columns:
        return "amount" if "amount" in extract.cells else None
    rows = extract.rows[extract.rows["source_row"] == row]
    if rows.empty:
        return None
    amounts = {c: rows.iloc[0][c] for c in extract.charge_columns if c in rows.columns}
    cents, _ = parse_money(pd.Series(list(amounts.values()), dtype=object))
    wanted = abs(int(record["amount_cents"]))
    same = [
        c for c, v in zip(amounts, cents, strict=True) if not pd.isna(v) and abs(int(v)) == wanted
    ]
    named = [
        c
        for c in same
        if normalize_org(pd.Series([c])).iloc[0] == normalize_org(pd.Series([code_name])).iloc[0]
    ]
    if named:
        return str(named[0])
    return str(same[0]) if len(same) == 1 else None


def trace(ledger: Ledger, settings: Settings, query: str, kinds: Kinds) -> list[dict[str, Any]]:
    """The lineage of each record ``query`` names (see the module's docstring)."""
    # Each record kind's Propexo copies are kept under its kind's first record kind.
    cache_of = {name: kind.record_kinds[0] for kind in kinds for name in kind.record_kinds}
    records = find_records(ledger, query)
    names = report_names(ledger, settings)
    lines = alias_lines(settings.mappings_dir)
    reread = _Reread(settings, ledger, kinds)
    files = ledger.db.read_frame("SELECT sha256, name, moved_to, sheet, profile FROM files")
    by_sha = {str(f["sha256"]): {str(k): v for k, v in f.items()} for f in files.to_dict("records")}
    synced = {
        kind: {
            str(r["id"]): r
            for r in (
                json.loads(row[0])
                for row in ledger.db.execute(
                    "SELECT data FROM synced WHERE kind = ?", (kind,)
                ).fetchall()
            )
        }
        for kind in set(cache_of.values())
    }
    out = []
    for record in records.to_dict("records"):
        out.append(_lineage(pd.Series(record), by_sha, names, lines, reread, synced, cache_of))
    return out


def _text(value: Any) -> str | None:
    """A ledger cell as text, or None where it holds nothing (None, NaN, "")."""
    if value is None or (isinstance(value, float) and pd.isna(value)) or value == "":
        return None
    return str(value)


LINE_FIELDS = ("property_name", "gl_account", "description", "amount")


def _lineage(
    record: pd.Series,
    by_sha: dict[str, dict[str, Any]],
    names: dict[str, dict[str, str]],
    lines: dict[str, list[dict[str, Any]]],
    reread: _Reread,
    synced: dict[str, dict[str, dict[str, Any]]],
    cache_of: dict[str, str],
) -> dict[str, Any]:
    sha = _text(record.get("file_sha256")) or ""
    file_row = by_sha.get(sha, {})
    rows = [int(r) for r in (record.get("source_rows") or [])]
    kind = str(record["kind"])
    propexo_id = _text(record.get("propexo_id")) or _text(record.get("created_record_id"))
    found = synced.get(cache_of.get(kind, ""), {}).get(str(propexo_id)) if propexo_id else None
    note = None
    values: dict[str, dict[str, Any]] = {}
    invoice_lines: list[dict[str, Any]] = []
    extract = None
    archived = file_row.get("moved_to")
    if archived:
        extract, note = reread.extract(Path(str(archived)), sha, str(file_row.get("profile") or ""))
    else:
        note = "the file was not archived (a dry run, or a file refused as a whole)"
    payload = record.get("payload") or {}
    items = payload.get("invoice_items", []) if isinstance(payload, dict) else []
    if extract is not None and rows:
        if items:  # a record of lines (a bill): each line from its own row
            for row, item in zip(rows, items + [{}] * (len(rows) - len(items)), strict=False):
                read = _cell_values(extract, row, extract.cells)
                invoice_lines.append(
                    {
                        "row": row,
                        "amount_cents": item.get("amount_in_cents"),
                        "property_id": item.get("property_id"),
                        "financial_account_id": item.get("financial_account_id"),
                        "cells": {f: c["cell"] for f, c in read.items()},
                        "values_as_read": {c["cell"]: c["value"] for c in read.values()},
                        "as_read": {f: c["value"] for f, c in read.items() if f in LINE_FIELDS},
                    }
                )
                for field, cell in read.items():
                    if row == rows[0] and field not in LINE_FIELDS:
                        values[field] = cell  # the invoice's own fields, from its first row
        else:
            code_name = names.get("charge_code", {}).get(str(record.get("charge_code_id")), "")
            wanted = [f for f in extract.cells if f not in extract.charge_columns]
            values = _cell_values(extract, rows[0], wanted)
            charge = _charge_field(extract, rows[0], record, code_name)
            if charge is not None:
                values.update(_cell_values(extract, rows[0], [charge]))
                if extract.charge_columns and charge in values:
                    # In a wide roll the charge code is the column's header, in its own cell.
                    header_row = extract.header_rows[-1] if extract.header_rows else None
                    letter = extract.cells[charge][1]
                    values["charge_code"] = {
                        "cell": f"{letter}{header_row}" if header_row else None,
                        "header": "(column header)",
                        "value": values[charge]["header"],
                    }
    as_read = {field: c["value"] for field, c in values.items()}
    for line in invoice_lines:  # each line's property and GL account may be an alias too
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
        "aliases": _aliases_for(as_read, lines),
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
        "rent_manager_id": (found or {}).get("x_id"),
        "lines": invoice_lines,
        "note": note,
    }
