"""The report's tables of records and rejected rows: one row per record with what a person
needs to find it, and one per rejected source row; pure functions over the ledger's frames."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pandas as pd

from pipelines.core.kind import Kinds

# A record's lines by its record kind and stored body (:attr:`Kind.lines`).
LinesOf = Callable[[str, Any], list[dict[str, Any]]]


def record_lines(kinds: Kinds | None) -> LinesOf:
    """A record's lines as its kind says them (:attr:`Kind.lines`; none without ``kinds``,
    or for a record of a kind this tieout does not know)."""

    def lines(kind: str, body: Any) -> list[dict[str, Any]]:
        if kinds is None or not isinstance(body, dict):
            return []
        try:
            return kinds.record(kind).lines(body)
        except ValueError:
            return []

    return lines


def blank(value: Any, default: Any = "") -> Any:
    """A cell for a person: nothing (not "nan" or "None") where there is no value."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return default
    return value


def rejected_rows(rejected: pd.DataFrame) -> pd.DataFrame:
    """One row per rejected source row (its reasons joined), so every count of rejected rows
    agrees: the summary's, the exceptions' and this table's."""
    columns = [
        "source_file",
        "source_row",
        "amount_cents",
        "amount_text",
        "code",
        "message",
        "column_name",
        "value",
    ]
    if rejected.empty:
        return pd.DataFrame(columns=columns)

    def joined(values: pd.Series) -> str:
        return "; ".join(dict.fromkeys(str(v) for v in values if blank(v, None) is not None))

    def cents(values: pd.Series) -> Any:
        """A row's amount as tieout read it (each of its reasons carries the same), or None."""
        read = pd.to_numeric(values, errors="coerce").dropna()
        return int(read.iloc[0]) if len(read) else None

    frame = rejected.reindex(columns=columns)
    return (
        frame.groupby(["source_file", "source_row"], sort=True)
        .agg(
            amount_cents=("amount_cents", cents),
            amount_text=("amount_text", joined),
            code=("code", lambda c: ", ".join(dict.fromkeys(c))),
            message=("message", joined),
            column_name=("column_name", joined),
            value=("value", joined),
        )
        .reset_index()
    )


POSTED_COLUMNS = [
    "source_file",
    "sheet",
    "source_rows",
    "kind",
    "location",
    "key",
    "party",
    "property",
    "unit",
    "charge_code",
    "date",
    "amount_cents",
    "state",
    "propexo_amount_cents",
    "job_id",
    "propexo_id",
    "note",
    "defaulted",
    "archived",
    "record_key",
    "previously_posted_by",
    "rent_manager_id",
]


def _posted_frame(
    records: pd.DataFrame,
    locations: dict[str, str],
    names: dict[str, dict[str, str]] | None = None,
    archived: dict[str, str] | None = None,
    sheets: dict[str, str] | None = None,
    run_id: str | None = None,
    rent_manager_ids: dict[str, Any] | None = None,
    lines_of: LinesOf | None = None,
) -> pd.DataFrame:
    """One row per record, with what a person needs to find it: the file and its rows, who
    (vendor or resident), property and unit, charge code, date, amount ours and Propexo's, its
    ids, and the earlier run that posted it when not ``run_id`` (a re-run, a period).
    ``names``: id → name per kind ("vendor", "resident", "unit", "charge_code", "property",
    "resident_property"), from the cached reference data; ``archived``: file sha256 → where
    the file now lies; ``lines_of``: a record's lines (:func:`record_lines`)."""
    if records.empty:
        return pd.DataFrame(columns=POSTED_COLUMNS)
    names = names or {}
    archived = archived or {}
    sheets = sheets or {}
    shas = records.get("file_sha256", pd.Series(None, index=records.index)).astype(str)

    def named(column: str, kind: str) -> pd.Series:
        """Each id's name (a dict lookup per distinct id, not a Python call per record); an
        id with no known name shows itself, a missing id nothing."""
        ids = records.get(column, pd.Series(None, index=records.index, dtype=object))
        ids = ids.astype(object).where(ids.notna(), "").astype(str)
        found = ids.map(names.get(kind, {}))
        return found.astype(object).where(found.notna(), ids)

    # A record names a vendor (a bill) or a resident (a charge): whichever it holds.
    vendors = records.get("vendor_id", pd.Series(None, index=records.index, dtype=object))
    residents = records.get("resident_id", pd.Series(None, index=records.index, dtype=object))
    for_resident = residents.notna() & vendors.isna()
    party = named("vendor_id", "vendor").where(~for_resident, named("resident_id", "resident"))
    unit = residents.astype(str).map(names.get("unit", {})).astype(object).fillna("")
    home = residents.astype(str).map(names.get("resident_property", {})).astype(object)
    # A record of lines' property is its lines' (each line names one; a bill's): read for
    # records of no resident only.
    properties = names.get("property", {})
    payloads = records.get("payload", pd.Series(None, index=records.index, dtype=object))
    billing = (~for_resident & payloads.notna()).to_numpy()
    lines = lines_of or (lambda kind, body: [])
    billed = [
        ", ".join(
            dict.fromkeys(
                properties.get(str(line.get("property_id")), str(line.get("property_id")))
                for line in lines(str(kind), body)
                if line.get("property_id")
            )
        )
        for kind, body in zip(records["kind"][billing], payloads[billing], strict=True)
    ]
    # Positions, not labels: the records' index may repeat (rows of several passes).
    shown = home.where(for_resident, "").fillna("").to_numpy(dtype=object, copy=True)
    shown[billing] = pd.Series(billed, dtype=object).to_numpy(dtype=object)
    home = pd.Series(shown, index=records.index, dtype=object)
    runs = records.get("run_id", pd.Series(None, index=records.index, dtype=object))
    earlier = runs.astype(object).where(runs.notna() & runs.astype(str).ne(str(run_id)), "")
    frame = pd.DataFrame(
        {
            "source_file": records["source_file"],
            "sheet": shas.map(sheets).astype(object).fillna(""),
            "source_rows": records["source_rows"].map(lambda rows: ", ".join(map(str, rows))),
            "kind": records["kind"],
            "location": records["location_id"].map(lambda x: locations.get(str(x), str(x))),
            "key": records["invoice_number"].fillna(records["reference_number"]),
            "party": party,
            "property": home,
            "unit": unit.where(for_resident, ""),
            "charge_code": named("charge_code_id", "charge_code").where(for_resident, ""),
            "date": records.get("transaction_date"),
            "amount_cents": records["amount_cents"].astype("int64"),
            "state": records["state"],
            "propexo_amount_cents": records.get("found_amount_cents"),
            "job_id": records["job_id"],
            "propexo_id": records["propexo_id"].fillna(records["created_record_id"]),
            "note": records["note"],
            "defaulted": records.get("defaulted"),
            "archived": shas.map(archived).astype(object).fillna(""),
            "record_key": records["record_key"],
            "previously_posted_by": earlier,
            "rent_manager_id": records["record_key"].map(rent_manager_ids or {}),
        }
    )
    return frame[POSTED_COLUMNS]
