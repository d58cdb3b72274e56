"""#28: every report carries each record's lineage (summary.json, the HTML's expanded row), the
property beside the unit, the run that posted a record before, invoice lines, the open items
still at stake, and rejected amounts that foot (real CLI, real sandbox)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pandas as pd
from openpyxl import load_workbook

from pipelines.core.models import Issue, IssueCode
from pipelines.ledger import Ledger
from pipelines.reporting.report import build_report, rejected_rows
from pipelines.reporting.workbook import render_xlsx
from sandbox.server import RunningSandbox
from tests.conftest import receiving, run_cli
from tests.test_e2e import env_for, summary_of
from tests.test_report import _foot


def _rows(sheet: Any) -> list[dict[str, Any]]:
    """A sheet's data rows by header (its Total row left out)."""
    headers = [c.value for c in sheet[1]]
    return [
        dict(zip(headers, row, strict=True))
        for row in sheet.iter_rows(min_row=2, values_only=True)
        if any(v is not None for v in row) and row[0] != "Total"
    ]


def _card(html: str, key: str) -> str:
    """The expanded lineage of the record whose key is ``key``, as the HTML holds it."""
    row = next(r for r in html.split("<tr") if f'<td class="key">{key}</td>' in r)
    return re.sub(r"\s+", " ", row)


def test_a_report_traces_each_record_and_foots_its_rejected_rows(
    sandbox: RunningSandbox, workspace: Path
) -> None:
    env = env_for(sandbox)
    roll = workspace / "inbox" / "rent_roll.xlsx"
    book = load_workbook(roll)
    assert book.active["C9"].value == "Jessup, Morgan"
    book.active["C9"] = "Jesup, Morgan"  # as a clerk typed it: unknown until an alias says
    book.save(roll)
    first = run_cli("--data-dir", str(workspace), "run", env=env)
    assert first.returncode == 1, first.stdout + first.stderr
    summary = summary_of(first.stdout, workspace)
    folder = workspace / "reports" / summary["run_id"]
    # summary.json: one lineage per record, built as `tieout trace` builds it.
    lineage = {t["record_key"]: t for t in summary["lineage"]}
    assert len(lineage) == summary["records"]["count"] == 141 - 2  # row 9's rent and trash
    rent = next(t for t in lineage.values() if t["row"] == 6 and t["amount_cents"] == 182500)
    assert rent["file"] == "rent_roll.xlsx" and rent["sheet"] == "Rent Roll"
    assert rent["values_as_read"]["F6"] == 1825 and rent["values_as_read"]["C6"] == "Marrow, Dakota"
    assert rent["cells"][:3] == ["A6", "B6", "C6"] and rent["reference_number"]
    assert rent["job_id"] and rent["state"] == "confirmed"
    assert rent["rent_manager_id"] is None  # not synced yet
    (credit,) = [t for t in lineage.values() if t["row"] == 6 and t["kind"] == "credit"]
    assert credit["values_as_read"]["J6"] == -100 and credit["amount_cents"] == -10000
    (bill,) = [t for t in lineage.values() if t.get("invoice_number") == "W-2026117"]
    assert [(line["cells"]["amount"], line["amount_cents"]) for line in bill["lines"]] == [
        ("H5", 112659),
        ("H6", 51207),
        ("H7", 66853),
    ]
    assert [line["property"] for line in bill["lines"]] == [
        "Maple Court",
        "Oak Ridge Apartments",
        "Maple Court",
    ]
    assert all(line["gl_account"] == "5100 Repairs & Maintenance" for line in bill["lines"])

    workbook = load_workbook(folder / "report.xlsx")
    # Rejected: the row's amount a number (Rent 1,305 + Trash 25), the text kept beside it,
    # and its foot, recomputed, is the run's rejected total.
    rejected = workbook["Rejected"]
    (row9,) = _rows(rejected)
    assert row9["Row"] == 9 and row9["Amount"] == 1330.00
    assert row9["Amount as in the file"] == "Rent 1305; Trash 25"
    (foot,) = [total for cell, total, _ in _foot(rejected) if cell.startswith("C")]
    assert foot == summary["totals"]["rejected_total_cents"] / 100 == 1330.00
    # The open items still at stake: the unknown resident, with its amount.
    (item,) = _rows(workbook["Open items"])
    assert item["Cause"] == "unknown resident" and item["What"] == '"Jesup, Morgan"'
    assert item["Rows"] == "9" and item["Amount"] == 1330.00
    # Property beside unit: unit 101 is Oak Ridge Apartments' (several properties have one).
    posted = _rows(workbook["Posted"])
    assert {(r["Property"], r["Unit"]) for r in posted if r["Rows"] == 6} == {
        ("Oak Ridge Apartments", "101")
    }
    lines = _rows(workbook["Invoice lines"])
    w117 = [r for r in lines if r["Key"] == "W-2026117"]
    assert [(r["Cell"], r["Line amount"], r["As in the file"]) for r in w117] == [
        ("H5", 1126.59, "1,126.59"),
        ("H6", 512.07, "512.07"),
        ("H7", 668.53, "$668.53"),
    ]
    assert [r["GL account"] for r in w117] == ["5100 Repairs & Maintenance"] * 3
    # The HTML shows the lineage when a record is expanded, not a command to run.
    html = (folder / "report.html").read_text()
    card = _card(html, "W-2026117")
    assert "Line, row 7" in card and "cell H7" in card and "Maple Court" in card
    assert "668.53" in card and "5100 Repairs &amp; Maintenance" in card

    # The clerk adds the alias and retries; the sync brings Rent Manager's ids.
    (workspace / "mappings").mkdir()
    aliases = workspace / "mappings" / "residents.csv"
    aliases.write_text('spreadsheet_name,propexo_name\n"Jesup, Morgan",Morgan Jessup\n')
    second = run_cli("--data-dir", str(workspace), "retry", "rent_roll.xlsx", env=env)
    assert second.returncode == 0, second.stdout + second.stderr
    second_id = summary_of(second.stdout, workspace)["run_id"]
    with receiving(sandbox, workspace):
        synced = run_cli(
            "--data-dir", str(workspace), "reconcile", "--sync", "--wait", "20", env=env
        )
    assert synced.returncode == 0, synced.stdout + synced.stderr
    period = run_cli("--data-dir", str(workspace), "report", "--period", "2026-12", env=env)
    assert period.returncode == 0, period.stdout + period.stderr
    december = workspace / "reports" / "period-2026-12"
    summary = json.loads((december / "summary.json").read_text())
    by_row = {(t["row"], t["amount_cents"]): t for t in summary["lineage"]}
    morgan = by_row[(9, 130500)]
    assert morgan["values_as_read"].get("C9") == "Jesup, Morgan", morgan
    assert morgan["aliases"] == [
        {
            "kind": "residents",
            "as_read": "Jesup, Morgan",
            "propexo_name": "Morgan Jessup",
            "file": str(aliases),
            "line": 2,
        }
    ]
    assert morgan["rent_manager_id"] and morgan["propexo_id"] and morgan["state"] == "matched"
    # Which run posted each record: row 6 in the first run, row 9 in the retry.
    detail = _rows(load_workbook(december / "report.xlsx")["Posted detail"])
    posted_by = {r["Rows"]: r["Previously posted in run"] for r in detail}
    assert posted_by[6] == summary_of(first.stdout, workspace)["run_id"]
    assert posted_by[9] == second_id
    card = _card((december / "report.html").read_text(), str(morgan["reference_number"]))
    assert 'C9</dt><dd class="as-read">Resident: <q>Jesup, Morgan</q></dd>' in card
    assert "Morgan Jessup" in card and f"{aliases} line 2" in card
    assert f'Rent Manager id</dt><dd class="key">{morgan["rent_manager_id"]}<' in card
    assert f"in run {second_id}" in card


def test_rejected_amounts_are_kept_in_cents_and_foot(tmp_path: Path) -> None:
    """Rejected amounts were text ("Rent 1305; Trash 25", "$1,360.72") that cannot be footed:
    the ledger keeps each rejected row's cents, one figure per row however many reasons."""
    ledger = Ledger(tmp_path / "ledger.sqlite")
    issues = [
        Issue(IssueCode.UNKNOWN_RESIDENT, "not known", "roll.csv", 9, "resident", "Jesup"),
        Issue(IssueCode.UNKNOWN_CHARGE_CODE, "not known", "roll.csv", 9, "code", "Pet"),
        Issue(IssueCode.BAD_AMOUNT, "unreadable", "roll.csv", 12, "amount", "12.345"),
        Issue(IssueCode.BAD_DATE, "no date", "roll.csv", 14, "date", "soon"),
    ]
    ledger.add_rejects(
        "r1",
        "sha",
        issues,
        {9: "Rent 1305; Trash 25", 12: "12.345", 14: "$1,360.72"},
        {9: 133000, 14: 136072},
    )
    rows = rejected_rows(ledger.rejects("r1"))
    assert [
        (row, None if pd.isna(cents) else cents, text)
        for row, cents, text in rows[["source_row", "amount_cents", "amount_text"]].values
    ] == [(9, 133000, "Rent 1305; Trash 25"), (12, None, "12.345"), (14, 136072, "$1,360.72")]
    files = pd.DataFrame(
        [
            {
                "sha256": "sha",
                "name": "roll.csv",
                "profile": "p",
                "kind": "charge",
                "rows_read": 3,
                "rows_used": 0,
                "rows_rejected": 3,
                "rows_skipped": 0,
                "skipped_by_kind": "{}",
                "source_total_cents": 269072,
                "rejected_total_cents": 269072,
                "previously_posted_cents": 0,
                "moved_to": None,
            }
        ]
    )
    report = build_report(
        {"run_id": "r1"}, files, pd.DataFrame(), pd.DataFrame(), ledger.rejects("r1"), {}
    )
    sheet = load_workbook_bytes(render_xlsx(report))["Rejected"]
    (foot,) = [total for cell, total, _ in _foot(sheet) if cell.startswith("C")]
    assert foot == report.summary["totals"]["rejected_total_cents"] / 100 == 2690.72
    ledger.close()


def load_workbook_bytes(data: bytes) -> Any:
    import io

    return load_workbook(io.BytesIO(data))
