"""A fourth record kind, added from this file alone (#29): meter readings, each posted to
``POST /v1/meter-readings/rentmanager/`` and read back from ``/v1/meter-readings/`` after
Propexo's sync. No file under ``pipelines/``, ``schemas/`` or ``sandbox/`` names it: tieout
learns it by ``pipelines.kinds.register``, the sandbox by ``SandboxConfig(kinds=...)``, and a
profile in the data folder maps its export. It goes extract → post → reconcile → report as
the built-in kinds do. ARCHITECTURE.md's "How to add a record kind" is this file's shape.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pandera.pandas as pa
import pytest
from pandera.typing import Series

from pipelines.core.kind import Kind, KindContext
from pipelines.core.models import (
    ExtractResult,
    Issue,
    IssueCode,
    PostRequest,
    TransformResult,
    ValidateResult,
    whole,
)
from pipelines.core.parsing import parse_dates, parse_money
from pipelines.kinds import register, registered, unregister
from pipelines.ledger import Conflict
from pipelines.posting.payloads import content_hash, stored_body
from pipelines.reading.validate import (
    parse_issues,
    schema_issues,
    sorted_issues,
    text_columns,
    valid_lines,
)
from pipelines.reconciling.reconcile import (
    DETAIL_COLUMNS,
    absence_note,
    aligned_verdict,
    outcomes_frame,
)
from pipelines.resolving.refs import RefData, fetch_synced
from pipelines.resolving.transform import bad_rows, normalize_unit, resolve_properties
from pipelines.runs.pipeline import run
from pipelines.runs.reconcile import reconcile_command
from sandbox.faults import SandboxConfig
from sandbox.kinds import SandboxKind, Write
from sandbox.server import read_seed, running_sandbox
from schemas.common import ISO_DATE, MAX_NAME, MAX_REFERENCE, Line, SyncedRecord
from tests.conftest import receiving, settings_for

SOURCE_KIND = "meter_reading"
WRITE_PATH = "/v1/meter-readings/rentmanager/"
READ_PATH = "/v1/meter-readings/"
SYNC_MODEL = "meter_readings"

# --- the sandbox's side: Propexo's routes for it ------------------------------------------------

BODY = {
    "type": "object",
    "required": ["integration_id", "unit_id", "reading_date", "value", "reference_number"],
    "properties": {
        "integration_id": {"type": "string"},
        "unit_id": {"type": "string"},
        "reading_date": {"type": "string", "format": "date"},
        "value": {"type": "integer"},
        "reference_number": {"type": "string"},
    },
}
SANDBOX_KIND = SandboxKind(
    name=SOURCE_KIND,
    sync_model=SYNC_MODEL,
    list_route=READ_PATH,
    writes=(Write(WRITE_PATH, "CREATE_METER_READING", schema=BODY),),
    filters=("integration_id", "unit_id", "reference_number"),
)

# --- tieout's side: the kind's schemas ----------------------------------------------------------


class MeterLine(Line):
    """One reading as validated: the words are the titles."""

    property_name: Series[str] = pa.Field(
        str_length={"min_value": 1, "max_value": MAX_NAME}, title="property"
    )
    unit: Series[str] = pa.Field(str_length={"min_value": 1, "max_value": 50}, title="unit")
    reading_date: Series[str] = pa.Field(str_matches=ISO_DATE, title="reading date")
    reference_number: Series[str] = pa.Field(
        str_length={"min_value": 1, "max_value": MAX_REFERENCE}, title="meter reading"
    )
    amount_cents: Series[pd.Int64Dtype] = pa.Field(ge=0, title="usage charge")


class MeterPayload(pa.DataFrameModel):
    """One reading, ready to post (its body stored with it)."""

    record_key: Series[str] = pa.Field(unique=True)
    kind: Series[str] = pa.Field(isin=[SOURCE_KIND])
    integration_id: Series[str]
    location_id: Series[str]
    reference_number: Series[str] = pa.Field(unique=True)
    amount_cents: Series[int] = pa.Field(ge=0)
    payload: Series[object]


class SyncedReading(SyncedRecord):
    """A reading as Propexo lists it."""

    unit_id: Series[str] = pa.Field(nullable=True)
    reading_date: Series[str] = pa.Field(nullable=True)
    value: Series[float] = pa.Field(nullable=True)
    reference_number: Series[str] = pa.Field(nullable=True)


SYNCED_FIELDS = list(SyncedReading.to_schema().columns)
RECORD_COLUMNS = (
    "record_key",
    "kind",
    "integration_id",
    "location_id",
    "reference_number",
    "transaction_date",
    "amount_cents",
    "content_hash",
    "payload",
    "source_rows",
    "source_file",
)

# --- tieout's side: the kind's functions ---------------------------------------------------------


def prepare(extract: ExtractResult, ctx: KindContext) -> tuple[ExtractResult, list[Issue]]:
    return extract, []  # each reading carries its own date


def validate(extract: ExtractResult, period: date | None) -> ValidateResult:
    rows, name = extract.rows, extract.source.name
    frame = text_columns(rows, ["property_name", "unit", "reference_number"])
    frame.insert(0, "source_row", rows["source_row"].astype("int64"))
    issues: list[Issue] = []
    already: set[tuple[object, str]] = set()
    frame["reading_date"], errors = parse_dates(rows["reading_date"])
    found, bad = parse_issues(
        frame,
        errors,
        "reading_date",
        IssueCode.BAD_DATE,
        name,
        rows["reading_date"],
        extract.cells,
        model=MeterLine,
    )
    issues, already = issues + found, already | bad
    frame["amount_cents"], errors = parse_money(rows["amount"])
    found, bad = parse_issues(
        frame,
        errors,
        "amount_cents",
        IssueCode.BAD_AMOUNT,
        name,
        rows["amount"],
        extract.cells,
        model=MeterLine,
    )
    issues, already = issues + found, already | bad
    issues += schema_issues(MeterLine, frame, name, already, extract.cells)
    return ValidateResult(
        kind=SOURCE_KIND,
        lines=frame,
        valid=valid_lines(frame, issues),
        issues=sorted_issues(issues),
        skipped=pd.DataFrame(columns=["source_row", "kind", "text"]),
    )


def transform(
    validated: ValidateResult,
    refs: RefData,
    ctx: KindContext,
    source_file: str,
    period: date | None,
) -> TransformResult:
    """The property by the shared resolver; the unit within it by its number."""
    resolved, issues = resolve_properties(validated.valid, refs, source_file)
    units = refs.units.assign(_unit=normalize_unit(refs.units["number"].astype(str)))
    resolved = resolved.assign(_unit=normalize_unit(resolved["unit"].astype(str))).merge(
        units[["id", "property_id", "_unit"]].rename(columns={"id": "unit_id"}),
        on=["property_id", "_unit"],
        how="left",
    )
    for row, unit in zip(
        resolved.loc[resolved["unit_id"].isna() & resolved["property_id"].notna(), "source_row"],
        resolved.loc[resolved["unit_id"].isna() & resolved["property_id"].notna(), "unit"],
        strict=True,
    ):
        issues.append(
            Issue(
                IssueCode.SCHEMA_CHECK,
                f'unit "{unit}" is not known',
                source_file,
                whole(row),
                "unit",
            )
        )
    good = resolved[~resolved["source_row"].isin(bad_rows(issues))]
    records = []
    for line in good.to_dict("records"):
        body = {
            "integration_id": ctx.integration_id,
            "unit_id": str(line["unit_id"]),
            "reading_date": str(line["reading_date"]),
            "value": whole(line["amount_cents"]),
            "reference_number": str(line["reference_number"]),
        }
        records.append(
            {
                "record_key": f"{SOURCE_KIND}:{ctx.integration_id}:{line['reference_number']}",
                "kind": SOURCE_KIND,
                "integration_id": ctx.integration_id,
                "location_id": str(line["location_id"]),
                "reference_number": str(line["reference_number"]),
                "transaction_date": str(line["reading_date"]),
                "amount_cents": whole(line["amount_cents"]),
                "content_hash": content_hash(body),
                "payload": body,
                "source_rows": [whole(line["source_row"])],
                "source_file": source_file,
            }
        )
    return TransformResult(pd.DataFrame(records, columns=list(RECORD_COLUMNS)), issues)


def plan_requests(ready: pd.DataFrame, batch_size: int) -> list[PostRequest]:
    return [
        PostRequest(
            WRITE_PATH,
            stored_body(record) or {},
            [str(record.record_key)],
            SOURCE_KIND,
            str(record.location_id),
            whole(record.amount_cents),
        )
        for record in ready.itertuples(index=False)
    ]


def _listed(ctx: KindContext, **filters: str) -> pd.DataFrame:
    return fetch_synced(ctx.needs_client(), READ_PATH, SyncedReading, ctx.integration_id, **filters)


def refresh(ctx: KindContext, records: pd.DataFrame) -> None:
    ctx.needs_ledger().upsert_synced(SOURCE_KIND, _listed(ctx))


def gone(ctx: KindContext, latest: pd.Series, cutoff: str) -> pd.DataFrame:
    return _listed(ctx, last_seen_lte=cutoff)


def found(records: pd.DataFrame, synced: pd.DataFrame, ctx: KindContext) -> dict[str, str]:
    if records.empty or synced.empty:
        return {}
    by_reference = dict(zip(synced["reference_number"], synced["id"], strict=True))
    return {
        str(key): str(by_reference[ref])
        for key, ref in zip(records["record_key"], records["reference_number"], strict=True)
        if ref in by_reference
    }


def find_in_doubt(ctx: KindContext, doubt: pd.DataFrame) -> tuple[dict[str, str | None], set[str]]:
    hits = found(doubt, _listed(ctx), ctx)
    return dict(hits.items()), set()


def match(
    records: pd.DataFrame, synced: pd.DataFrame, ctx: KindContext, verdict: pd.Series | None
) -> pd.DataFrame:
    """By reference number: the same value is matched, another mismatched."""
    if records.empty:
        return pd.DataFrame(columns=DETAIL_COLUMNS)
    theirs = (
        synced.assign(reference_number=synced["reference_number"].astype(str))
        .groupby("reference_number")
        .agg(n=("id", "size"), id=("id", "first"), amount=("value", "first"))
        .reset_index()
    )
    merged = records.assign(reference_number=records["reference_number"].astype(str)).merge(
        theirs, on="reference_number", how="left", validate="many_to_one"
    )
    count = merged["n"].fillna(0).astype(int)
    same = pd.to_numeric(merged["amount"], errors="coerce").eq(merged["amount_cents"])
    proven = aligned_verdict(verdict, records)
    note = absence_note(pd.Series("", index=merged.index, dtype=object), count, proven)
    return outcomes_frame(merged, merged, count, same.fillna(False), proven, note)


def unexpected(records: pd.DataFrame, synced: pd.DataFrame) -> int:
    return 0


def conflict_issues(conflict: Conflict, record: pd.Series, file_name: str) -> list[Issue]:
    return [
        Issue(
            IssueCode.CONFLICT,
            f"meter reading {record['reference_number']} was posted in run "
            f"{conflict.first_run_id} with another value",
            file_name,
            conflict.source_row,
        )
    ]


def fetch_all(ctx: KindContext, start: date, end: date) -> pd.DataFrame:
    return _listed(ctx)


def as_read(item: dict[str, Any], ctx: KindContext) -> dict[str, Any]:
    return {**item, "id": None}


def adopt(synced: pd.DataFrame, ctx: KindContext) -> tuple[list[dict[str, Any]], int]:
    rows = [
        {
            "record_key": f"{SOURCE_KIND}:{ctx.integration_id}:{r['reference_number']}",
            "kind": SOURCE_KIND,
            "integration_id": ctx.integration_id,
            "reference_number": str(r["reference_number"]),
            "amount_cents": int(r.get("value") or 0),
            "created_record_id": r["id"],
        }
        for r in synced.to_dict("records")
        if r.get("reference_number")
    ]
    return rows, len(synced) - len(rows)


METER_READINGS = Kind(
    source_kind=SOURCE_KIND,
    record_kinds=(SOURCE_KIND,),
    plural="meter readings",
    source_columns=("property_name", "unit", "reading_date", "amount", "reference_number"),
    line_schema=MeterLine,
    payload_schema=MeterPayload,
    record_columns=RECORD_COLUMNS,
    synced_fields=SYNCED_FIELDS,
    sync_model=SYNC_MODEL,
    dated_sync=False,
    write_paths={SOURCE_KIND: WRITE_PATH},
    read_path=READ_PATH,
    prepare=prepare,
    validate=validate,
    transform=transform,
    plan_requests=plan_requests,
    refresh=refresh,
    gone=gone,
    found=found,
    find_in_doubt=find_in_doubt,
    match=match,
    unexpected=unexpected,
    conflict_issues=conflict_issues,
    fetch_all=fetch_all,
    as_read=as_read,
    adopt=adopt,
)

# --- its export and its profile (data, in the data folder) ---------------------------------------

PROFILE = """\
name = "meter_readings_export"
kind = "meter_reading"
description = "meter readings, one per row"
required = ["property_name", "unit", "reading_date", "amount", "reference_number"]

[columns]
property_name = ["property"]
unit = ["unit"]
reading_date = ["reading date"]
amount = ["usage charge"]
reference_number = ["meter reading"]
"""


@pytest.fixture
def meter_readings() -> Iterator[Kind]:
    """The kind registered for one test, and forgotten after it."""
    register(METER_READINGS)
    yield METER_READINGS
    unregister(SOURCE_KIND)


def _export(path: Path) -> list[int]:
    """Three readings of units the sandbox's seed knows; their usage charges in cents."""
    seed = read_seed(None)
    names = {p["id"]: p["name"] for p in seed["properties"]}
    units = [u for u in seed["units"] if u.get("property_id") in names][:3]
    cents = [1234, 5678, 910]
    today = date.today().isoformat()
    lines = ["Property,Unit,Reading Date,Usage Charge,Meter Reading"] + [
        f"{names[u['property_id']]},{u['number']},{today},{c / 100:.2f},MR-{n}"
        for n, (u, c) in enumerate(zip(units, cents, strict=True), 1)
    ]
    path.write_text("\n".join(lines) + "\n")
    return cents


def test_a_kind_registered_from_the_tests_folder_runs_end_to_end(
    meter_readings: Kind, tmp_path: Path
) -> None:
    kinds = registered()
    assert kinds.source(SOURCE_KIND) is meter_readings
    assert [kind.source_kind for kind in kinds][-1] == SOURCE_KIND  # after the built-ins
    assert kinds.sync_scope[SOURCE_KIND] == (SYNC_MODEL, False)

    data = tmp_path / "data"
    (data / "inbox").mkdir(parents=True)
    (data / "profiles").mkdir()
    (data / "profiles" / "meter_readings.toml").write_text(PROFILE)
    cents = _export(data / "inbox" / "meter_readings.csv")
    config = SandboxConfig(
        job_delay_s=0.05, rate_limit=1000, sync_duration_s=0.2, kinds=(SANDBOX_KIND,)
    )
    said: list[str] = []
    with running_sandbox(config) as box, receiving(box, data):
        settings = settings_for(
            box,
            data,
            settle_s=0.0,
            in_doubt_grace_s=1,
            reconcile_grace_s=0,
            clock_skew_s=0,
            rate_window_s=box.config.rate_window_s,
        )
        posted = run(settings, say=said.append)
        assert posted.exit_code == 0, said
        assert posted.summary["reconciliation"]["awaiting_sync"] == 3  # seen after a sync
        pms = httpx.get(  # what the PMS holds, synced or not
            f"{box.base_url}/_sandbox/records",
            params={"kind": SOURCE_KIND},
            headers={"Authorization": f"Bearer {box.config.token}"},
        ).json()["results"]
        assert sorted(r["value"] for r in pms) == sorted(cents)

        result, reports = reconcile_command(settings, kinds, sync=True, wait_s=20, say=said.append)
    assert result is not None, said
    assert (result.matched, result.matched_total_cents) == (3, sum(cents))
    summary = json.loads((reports[0] / "summary.json").read_text())
    totals = summary["totals"]
    assert (totals["rows_used"], totals["rows_rejected"]) == (3, 0)
    assert totals["rows_read"] == totals["rows_used"] + totals["rows_skipped"]  # and its header
    assert totals["source_total_cents"] == totals["posted_total_cents"] == sum(cents)
    assert summary["reconciliation"]["matched_total_cents"] == sum(cents)
    assert set(summary["records"]["by_state"]) == {"matched"}
    assert summary["ties_out"] is True


def test_a_kind_is_forgotten_when_unregistered_and_its_record_kinds_are_its_own() -> None:
    register(METER_READINGS)
    unregister(SOURCE_KIND)
    with pytest.raises(ValueError, match="no kind for source kind 'meter_reading'"):
        registered().source(SOURCE_KIND)
    thief = replace(METER_READINGS, source_kind="thief", record_kinds=("charge",))
    with pytest.raises(ValueError, match=r"\['charge'\] of 'thief' are already 'charge'"):
        register(thief)
