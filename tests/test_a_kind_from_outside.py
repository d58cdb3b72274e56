"""A fourth record kind, added from this file alone (#29, #40): meter readings, each posted to
``POST /v1/meter-readings/rentmanager/`` and read back from ``/v1/meter-readings/`` after
Propexo's sync, with two ledger columns of its own (``meter_serial``, ``reading_date``). No file
under ``pipelines/``, ``schemas/`` or ``sandbox/`` names it: the kind is built from
``pipelines.kinds.api`` alone (what differs from the common case: its lines, how they become
records, and its columns) and registered; the sandbox learns it by ``SandboxConfig(kinds=...)``;
a profile in the data folder maps its export. It goes extract → post → reconcile → report, on
SQLite and PostgreSQL, its own columns kept in the ledger (added to it when opened, with no
migration revision) and shown by the trace. ARCHITECTURE.md's "How to add a record kind" is
this file's shape.

A second test adds a built-in-style kind package under ``pipelines/kinds/`` and shows that it
is discovered with no other file of the repository changed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import replace
from datetime import date
from enum import StrEnum
from pathlib import Path

import httpx
import pandas as pd
import pandera.pandas as pa
import pytest
from pandera.typing import Series

from pipelines.kinds.api import (
    ISO_DATE,
    MAX_NAME,
    MAX_REFERENCE,
    Column,
    ExtractResult,
    Issue,
    IssueCode,
    Kind,
    KindContext,
    Line,
    RefData,
    SyncedRecord,
    TransformResult,
    ValidateResult,
    bad_rows,
    content_hash,
    define,
    normalize_unit,
    parse_dates,
    parse_issues,
    parse_money,
    register,
    registered,
    resolve_properties,
    schema_issues,
    sorted_issues,
    text_columns,
    unregister,
    valid_lines,
    whole,
)
from sandbox.api import SandboxConfig, SandboxKind, Write, read_seed, running_sandbox
from tests.conftest import ROOT, ledger_at, receiving, server_ledger, settings_for

SOURCE_KIND = "meter_reading"
WRITE_PATH = "/v1/meter-readings/rentmanager/"
READ_PATH = "/v1/meter-readings/"
SYNC_MODEL = "meter_readings"

# --- the sandbox's side: Propexo's routes for it ------------------------------------------------

BODY = {
    "type": "object",
    "required": [
        "integration_id",
        "unit_id",
        "meter_serial",
        "reading_date",
        "value",
        "reference_number",
    ],
    "properties": {
        "integration_id": {"type": "string"},
        "unit_id": {"type": "string"},
        "meter_serial": {"type": "string"},
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

# --- tieout's side: the kind's columns and schemas ----------------------------------------------

# Its own columns in the ledger: the meter's serial and the reading's date are nobody else's;
# its reference number is declared alike by the kinds known by one (a shared declaration).
COLUMNS = (
    Column("meter_serial", "TEXT", "optional"),
    Column("reading_date", "TEXT", "optional", matched=True),
    Column("reference_number", "TEXT", "optional", matched=True),
)


class MeterCode(StrEnum):
    """Its own reason a row does not go through (beside the shared issue codes)."""

    UNKNOWN_UNIT = "UNKNOWN_UNIT"


class MeterLine(Line):
    """One reading as validated: the words are the titles."""

    property_name: Series[str] = pa.Field(
        str_length={"min_value": 1, "max_value": MAX_NAME}, title="property"
    )
    unit: Series[str] = pa.Field(str_length={"min_value": 1, "max_value": 50}, title="unit")
    meter_serial: Series[str] = pa.Field(str_matches=r"^[A-Z]{2}-\d{4,8}$", title="meter")
    reading_date: Series[str] = pa.Field(str_matches=ISO_DATE, title="reading date")
    reference_number: Series[str] = pa.Field(
        str_length={"min_value": 1, "max_value": MAX_REFERENCE}, title="meter reading"
    )
    amount_cents: Series[pd.Int64Dtype] = pa.Field(ge=0, title="usage charge")


class MeterPayload(pa.DataFrameModel):
    """One reading, ready to post (its body stored with it)."""

    record_key: Series[str] = pa.Field(unique=True)
    kind: Series[str] = pa.Field(isin=[SOURCE_KIND])
    meter_serial: Series[str]
    reference_number: Series[str] = pa.Field(unique=True)
    amount_cents: Series[int] = pa.Field(ge=0)
    payload: Series[object]


class SyncedReading(SyncedRecord):
    """A reading as Propexo lists it."""

    unit_id: Series[str] = pa.Field(nullable=True)
    meter_serial: Series[str] = pa.Field(nullable=True)
    reading_date: Series[str] = pa.Field(nullable=True)
    value: Series[float] = pa.Field(nullable=True)
    reference_number: Series[str] = pa.Field(nullable=True)


# --- tieout's side: what differs from the common case -------------------------------------------


def validate(extract: ExtractResult, period: date | None) -> ValidateResult:
    rows, name = extract.rows, extract.source.name
    frame = text_columns(rows, ["property_name", "unit", "meter_serial", "reference_number"])
    frame.insert(0, "source_row", rows["source_row"].astype("int64"))
    issues: list[Issue] = []
    already: set[tuple[object, str]] = set()
    for column, parse, source, code in (
        ("reading_date", parse_dates, "reading_date", IssueCode.BAD_DATE),
        ("amount_cents", parse_money, "amount", IssueCode.BAD_AMOUNT),
    ):
        frame[column], errors = parse(rows[source])
        found, bad = parse_issues(
            frame, errors, column, code, name, rows[source], extract.cells, model=MeterLine
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
    unknown = resolved["unit_id"].isna() & resolved["property_id"].notna()
    issues += [
        Issue(
            MeterCode.UNKNOWN_UNIT, f'unit "{unit}" is not known', source_file, whole(row), "unit"
        )
        for row, unit in zip(
            resolved.loc[unknown, "source_row"], resolved.loc[unknown, "unit"], strict=True
        )
    ]
    good = resolved[~resolved["source_row"].isin(bad_rows(issues))]
    records = []
    for line in good.to_dict("records"):
        body = {
            "integration_id": ctx.integration_id,
            "unit_id": str(line["unit_id"]),
            "meter_serial": str(line["meter_serial"]),
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
                "meter_serial": body["meter_serial"],
                "reference_number": body["reference_number"],
                "reading_date": body["reading_date"],
                "amount_cents": body["value"],
                "content_hash": content_hash(body),
                "payload": body,
                "source_rows": [whole(line["source_row"])],
                "source_file": source_file,
            }
        )
    return TransformResult(
        pd.DataFrame(records, columns=list(METER_READINGS.record_columns)), issues
    )


# Everything else (one POST per reading, its read cursor, found and matched by reference
# number after the sync, what a sync no longer sees, conflicts, `ledger rebuild`) is the
# common case's.
METER_READINGS: Kind = define(
    globals(),
    source_kind=SOURCE_KIND,
    plural="meter readings",
    columns=COLUMNS,
    source_columns=(
        "property_name",
        "unit",
        "meter_serial",
        "reading_date",
        "amount",
        "reference_number",
    ),
    line_schema=MeterLine,
    payload_schema=MeterPayload,
    synced=SyncedReading,
    amount="value",
    issue_codes=MeterCode,
    sync_model=SYNC_MODEL,
    dated_sync=False,
    write_path=WRITE_PATH,
    read_path=READ_PATH,
)

# --- its export and its profile (data, in the data folder) ---------------------------------------

PROFILE = """\
name = "meter_readings_export"
kind = "meter_reading"
description = "meter readings, one per row"
required = ["property_name", "unit", "meter_serial", "reading_date", "amount", "reference_number"]

[columns]
property_name = ["property"]
unit = ["unit"]
meter_serial = ["meter"]
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


def _export(path: Path) -> dict[str, tuple[str, int]]:
    """Three readings of units the sandbox's seed knows (reference → (meter, cents)), and one
    of a unit it does not know."""
    seed = read_seed(None)
    names = {p["id"]: p["name"] for p in seed["properties"]}
    units = [u for u in seed["units"] if u.get("property_id") in names][:3]
    readings = {
        f"MR-{n}": (f"WM-{1000 + n}", cents) for n, cents in enumerate((1234, 5678, 910), 1)
    }
    today = date.today().isoformat()
    lines = ["Property,Unit,Meter,Reading Date,Usage Charge,Meter Reading"] + [
        f"{names[u['property_id']]},{u['number']},{meter},{today},{cents / 100:.2f},{reference}"
        for u, (reference, (meter, cents)) in zip(units, readings.items(), strict=True)
    ]
    lines.append(f"{names[units[0]['property_id']]},NO-SUCH-UNIT,WM-1009,{today},1.00,MR-9")
    path.write_text("\n".join(lines) + "\n")
    return readings


def test_a_kind_with_a_column_of_its_own_runs_end_to_end_from_the_tests_folder(
    meter_readings: Kind, ledger_url: str, tmp_path: Path
) -> None:
    # What a person runs (the commands), beside the kind's API above.
    from pipelines.ledger import Ledger
    from pipelines.reporting.trace import trace
    from pipelines.runs.pipeline import run
    from pipelines.runs.reconcile import reconcile_command

    kinds = registered()
    assert kinds.source(SOURCE_KIND) is meter_readings
    assert [kind.source_kind for kind in kinds][-1] == SOURCE_KIND  # after the built-ins
    assert kinds.sync_scope[SOURCE_KIND] == (SYNC_MODEL, False)

    data = tmp_path / "data"
    (data / "inbox").mkdir(parents=True)
    (data / "profiles").mkdir()
    (data / "profiles" / "meter_readings.toml").write_text(PROFILE)
    readings = _export(data / "inbox" / "meter_readings.csv")
    cents = [c for _, c in readings.values()]
    config = SandboxConfig(
        job_delay_s=0.05, rate_limit=1000, sync_duration_s=0.2, kinds=(SANDBOX_KIND,)
    )
    said: list[str] = []
    with running_sandbox(config) as box, receiving(box, data, server_ledger(ledger_url)):
        settings = settings_for(
            box,
            data,
            settle_s=0.0,
            in_doubt_grace_s=1,
            reconcile_grace_s=0,
            clock_skew_s=0,
            rate_window_s=box.config.rate_window_s,
            ledger_url=server_ledger(ledger_url),
        )
        posted = run(settings, say=said.append)
        assert posted.exit_code == 1, said  # a row rejected (its unit is unknown)
        assert posted.summary["reconciliation"]["awaiting_sync"] == 3  # seen after a sync
        pms = httpx.get(  # what the PMS holds, synced or not
            f"{box.base_url}/_sandbox/records",
            params={"kind": SOURCE_KIND},
            headers={"Authorization": f"Bearer {box.config.token}"},
        ).json()["results"]
        assert sorted((r["meter_serial"], r["value"]) for r in pms) == sorted(readings.values())

        result, reports = reconcile_command(settings, kinds, sync=True, wait_s=20, say=said.append)
    assert result is not None, said
    assert (result.matched, result.matched_total_cents) == (3, sum(cents))
    summary = json.loads((reports[0] / "summary.json").read_text())
    totals = summary["totals"]
    assert (totals["rows_used"], totals["rows_rejected"]) == (3, 1)
    # and its header
    assert totals["rows_read"] == totals["rows_used"] + 1 + totals["rows_skipped"]
    assert totals["source_total_cents"] == sum(cents) + 100
    assert totals["posted_total_cents"] == sum(cents)
    assert summary["reconciliation"]["matched_total_cents"] == sum(cents)
    assert set(summary["records"]["by_state"]) == {"matched"}
    assert summary["ties_out"] is True

    # Its own columns in the ledger (added when the ledger was opened: no migration), and
    # what the trace and the kind show a person of one of its records.
    with Ledger(ledger_at(data, server_ledger(ledger_url)), readonly=True) as ledger:
        assert {"meter_serial", "reading_date"} <= ledger.db.columns("records")
        stored = ledger.records(kinds=[SOURCE_KIND]).set_index("reference_number")
        lineage = trace(ledger, settings, "MR-2", kinds)
        rejects = ledger.db.read_frame("SELECT source_row, code FROM rejects")
    assert (
        rejects.values.tolist() == [[5, "UNKNOWN_UNIT"]]
    )  # its own code, kept as any other    assert {ref: (row.meter_serial, row.amount_cents) for ref, row in stored.iterrows()} == readings
    assert set(stored["reading_date"]) == {date.today().isoformat()}
    assert set(stored["state"]) == {"matched"}
    (traced,) = lineage
    assert traced["fields"]["meter_serial"] == {"cell": "C3", "header": "Meter", "value": "WM-1002"}
    assert meter_readings.attributes(stored.reset_index().iloc[1].to_dict()) == {
        "meter_serial": "WM-1002",
        "reading_date": date.today().isoformat(),
        "reference_number": "MR-2",
    }


def test_a_kind_is_forgotten_when_unregistered_and_its_record_kinds_are_its_own() -> None:
    from pipelines.core.record_columns import RECORD

    register(METER_READINGS)
    assert "meter_serial" in RECORD.names()
    unregister(SOURCE_KIND)
    assert "meter_serial" not in RECORD.names()  # its own columns with it
    assert "reference_number" in RECORD.names()  # a column others declare stays
    with pytest.raises(ValueError, match="no kind for source kind 'meter_reading'"):
        registered().source(SOURCE_KIND)
    thief = replace(METER_READINGS, source_kind="thief", record_kinds=("charge",))
    with pytest.raises(ValueError, match=r"\['charge'\] of 'thief' are already 'charge'"):
        register(thief)


# --- a built-in-style kind: one package under pipelines/kinds/, and nothing else ------------------

PARKING = {
    "__init__.py": '"""Parking permits (a kind added as a package, by a test)."""\n',
    "kind.py": textwrap.dedent(
        '''\
        """Parking permits: one POST each, known by their permit number."""

        from __future__ import annotations

        import pandas as pd

        from pipelines.kinds.api import (
            Column, Line, SyncedRecord, TransformResult, ValidateResult, define, register,
        )


        class PermitLine(Line):
            """A permit as validated."""


        class SyncedPermit(SyncedRecord):
            """A permit as Propexo lists it."""


        def validate(extract, period):
            return ValidateResult("parking", extract.rows, extract.rows, [], pd.DataFrame())


        def transform(validated, refs, ctx, source_file, period):
            return TransformResult(pd.DataFrame(columns=list(KIND.record_columns)), [])


        KIND = register(
            define(
                globals(),
                source_kind="parking",
                plural="parking permits",
                post_order=30,
                columns=(Column("plate_number", "TEXT", "optional", matched=True),),
                source_columns=("plate", "amount", "reference_number"),
                line_schema=PermitLine,
                payload_schema=PermitLine,
                synced=SyncedPermit,
                sync_model="parking_permits",
                dated_sync=False,
                write_path="/v1/parking-permits/rentmanager/",
                read_path="/v1/parking-permits/",
            )
        )
        '''
    ),
}

DISCOVERED = """\
from pipelines.core.record_columns import RECORD
from pipelines.kinds import registered
from pipelines.ledger import Ledger

print([kind.source_kind for kind in registered()])
print("plate_number" in RECORD.names())
with Ledger("sqlite:///ledger.sqlite") as ledger:
    print("plate_number" in ledger.db.columns("records"))
"""


def _with_parking() -> str:
    """The kinds a fresh tieout lists once parking permits are added: today's, and parking in
    its posting order (30: after invoices and charges)."""
    kinds = [(kind.post_order, kind.source_kind) for kind in registered()]
    return str([name for _, name in sorted([*kinds, (30, "parking")], key=lambda k: k[0])])


def _git(copy: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=copy,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def test_a_kind_package_added_under_pipelines_kinds_is_discovered_and_changes_no_other_file(
    tmp_path: Path,
) -> None:
    """A copy of the repository's code (pipelines/ and schemas/, as committed to a fresh git
    repository), a package added under pipelines/kinds/: git shows that package and nothing
    else, and a fresh tieout finds the kind, its column, and gives a new ledger the column."""
    copy = tmp_path / "repo"
    for folder in ("pipelines", "schemas"):
        shutil.copytree(ROOT / folder, copy / folder, ignore=shutil.ignore_patterns("__pycache__"))
    _git(copy, "init", "-q")
    _git(copy, "add", "-A")
    _git(copy, "commit", "-q", "-m", "tieout as it is")

    package = copy / "pipelines" / "kinds" / "parking"
    package.mkdir()
    for name, text in PARKING.items():
        (package / name).write_text(text)

    assert _git(copy, "status", "--porcelain", "--untracked-files=all").splitlines() == [
        "?? pipelines/kinds/parking/__init__.py",
        "?? pipelines/kinds/parking/kind.py",
    ]
    assert _git(copy, "diff", "--stat") == ""
    found = subprocess.run(
        [sys.executable, "-c", DISCOVERED], cwd=copy, capture_output=True, text=True, check=False
    )
    assert found.returncode == 0, found.stderr
    assert found.stdout.splitlines() == [_with_parking(), "True", "True"]


def test_a_kind_installed_by_another_distribution_is_found_by_its_entry_point(
    tmp_path: Path,
) -> None:
    """A plug-in: the same package, installed as its own distribution (``acme_parking``) that
    names its kind module under the ``tieout.kinds`` entry points, as dlt finds destinations;
    nothing of tieout's changed."""
    site = tmp_path / "site"
    (site / "acme_parking").mkdir(parents=True)
    for name, text in PARKING.items():
        (site / "acme_parking" / name).write_text(text)
    info = site / "acme_parking-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-parking\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[tieout.kinds]\nparking = acme_parking.kind\n")
    found = subprocess.run(
        [sys.executable, "-c", DISCOVERED],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{ROOT}:{site}"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert found.returncode == 0, found.stderr
    assert found.stdout.splitlines() == [_with_parking(), "True", "True"]


def test_a_kind_whose_issue_code_is_taken_is_refused() -> None:
    taken = StrEnum("Taken", {"CONFLICT": "CONFLICT"})
    clash = replace(METER_READINGS, source_kind="clash", record_kinds=("clash",), issue_codes=taken)
    with pytest.raises(ValueError, match=r"issue code\(s\) \['CONFLICT'\] of 'clash'"):
        register(clash)
    register(METER_READINGS)
    try:
        twin = replace(clash, issue_codes=StrEnum("Twin", {"UNKNOWN_UNIT": "UNKNOWN_UNIT"}))
        with pytest.raises(ValueError, match="UNKNOWN_UNIT"):
            register(twin)
        assert registered().issue_codes()["UNKNOWN_UNIT"] is MeterCode.UNKNOWN_UNIT
    finally:
        unregister(SOURCE_KIND)
