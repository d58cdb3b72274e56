"""End to end: the real CLI, in child processes, against the real sandbox on a loopback port."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx

from sandbox.server import RunningSandbox
from tests.conftest import SAMPLES, receiving, run_cli, write_bills


def env_for(box: RunningSandbox, ledger_url: str | None = None) -> dict[str, str]:
    """The sandbox's address, and the ledger when it is not the data folder's SQLite file."""
    env = {"PROPEXO_BASE_URL": box.base_url, "PROPEXO_API_TOKEN": box.config.token}
    if ledger_url is not None and not ledger_url.startswith("sqlite:"):
        env["TIEOUT_LEDGER_URL"] = ledger_url
    return env


def _engine(ledger_url: str) -> str | None:
    return None if ledger_url.startswith("sqlite:") else ledger_url


def pms_records(api: httpx.Client) -> list[dict]:  # type: ignore[type-arg]
    return api.get("/_sandbox/records").json()["results"]


def summary_of(stdout: str, data_dir: Path) -> dict:  # type: ignore[type-arg]
    line = next(line for line in stdout.splitlines() if line.startswith("report: "))
    return json.loads((Path(line.removeprefix("report: ")).parent / "summary.json").read_text())


def test_run_then_sync_ties_out_to_the_cent(
    sandbox: RunningSandbox, api: httpx.Client, workspace: Path, ledger_url: str
) -> None:
    """On each ledger engine (#18): the same run, sync and reconcile, to the cent."""
    env = env_for(sandbox, ledger_url)
    first = run_cli("--data-dir", str(workspace), "run", env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    before_sync = summary_of(first.stdout, workspace)
    assert before_sync["reconciliation"]["awaiting_sync"] > 0  # charges wait for the sync

    with receiving(sandbox, workspace, _engine(ledger_url)):
        second = run_cli(
            "--data-dir", str(workspace), "reconcile", "--sync", "--wait", "20", env=env
        )
    assert second.returncode == 0, second.stdout + second.stderr
    summary = summary_of(second.stdout, workspace)
    totals = summary["totals"]
    assert totals["rows_rejected"] == 0
    assert totals["rows_read"] == totals["rows_used"] + totals["rows_skipped"]
    assert (
        totals["source_total_cents"]
        == totals["posted_total_cents"]
        == summary["reconciliation"]["matched_total_cents"]
        == 2140363 + 6626500
    )
    assert summary["reconciliation"]["awaiting_sync"] == 0
    assert set(summary["records"]["by_state"]) == {"matched"}
    # the ledger is where ledger_url says: no SQLite file beside a PostgreSQL ledger
    assert (workspace / "ledger.sqlite").exists() == ledger_url.startswith("sqlite:")
    assert summary["ties_out"] is True

    records = pms_records(api)
    assert len(records) == summary["records"]["count"]
    assert sum(r["kind"] == "invoice" for r in records) == 12
    # Every file was moved out of the inbox; nothing was deleted.
    assert not any((workspace / "inbox").iterdir())
    assert len(list((workspace / "archive").rglob("*.*"))) == 2
    report_dir = workspace / "reports" / summary["run_id"]
    assert {p.name for p in report_dir.iterdir()} == {
        "report.html",
        "report.xlsx",
        "summary.json",
        "rejects.csv",
    }


def test_dropping_the_same_files_again_posts_nothing(
    sandbox: RunningSandbox, api: httpx.Client, workspace: Path, ledger_url: str
) -> None:
    sandbox.config.write_log_delay_s = 0  # jobs are counted from the log at once
    env = env_for(sandbox, ledger_url)
    assert run_cli("--data-dir", str(workspace), "run", env=env).returncode == 0
    jobs_before = len(
        api.get("/v1/admin/logs/writes/", params={"limit": 100}).json()["results"]["logs"]
    )
    records_before = len(pms_records(api))
    for sample in ("vendor_bills.csv", "rent_roll.xlsx"):
        shutil.copy2(SAMPLES / sample, workspace / "inbox" / sample)
    again = run_cli("--data-dir", str(workspace), "run", env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "duplicate drop" in again.stdout
    assert len(pms_records(api)) == records_before
    jobs_after = len(
        api.get("/v1/admin/logs/writes/", params={"limit": 100}).json()["results"]["logs"]
    )
    assert jobs_after == jobs_before


def test_check_offline_json_accounts_for_every_row(tmp_path: Path) -> None:
    out = tmp_path / "check.json"
    result = run_cli(
        "check",
        "--offline",
        "--json",
        str(out),
        str(SAMPLES / "vendor_bills.csv"),
        str(SAMPLES / "rent_roll.xlsx"),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    files = json.loads(out.read_text())["files"]
    for f in files:
        assert f["rows_read"] == f["rows_used"] + f["rows_rejected"] + f["rows_skipped"]
        assert sum(f["skipped_by_kind"].values()) == f["rows_skipped"]
        assert f["source_total_cents"] == sum(r["amount_cents"] for r in f["rows"])
    assert [f["source_total_cents"] for f in files] == [2140363, 6626500]


def test_unusable_input_is_one_clear_line_and_exit_2(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.xlsx"
    garbage.write_bytes(b"PK\x03\x04 this is not really a workbook")
    result = run_cli("check", "--offline", str(garbage))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr + result.stdout
    assert "garbage.xlsx" in result.stderr


def test_status_json(sandbox: RunningSandbox, workspace: Path, ledger_url: str) -> None:
    env = env_for(sandbox, ledger_url)
    assert run_cli("--data-dir", str(workspace), "run", env=env).returncode == 0
    status = run_cli("--data-dir", str(workspace), "status", "--json", env=env)
    data = json.loads(status.stdout)
    assert data["in_doubt"] == []
    assert data["last_run"]["exit_code"] == 0
    assert sum(v["count"] for v in data["by_state"].values()) > 100


def test_demo_runs_twice_in_a_row(tmp_path: Path) -> None:
    for _ in range(2):
        result = run_cli("demo", "--workdir", str(tmp_path / "demo"))
        assert result.returncode == 0, result.stdout + result.stderr
        assert "Complete" in result.stdout


def test_every_kind_of_unreadable_file_is_exit_2_with_one_line(tmp_path: Path) -> None:
    good = (SAMPLES / "rent_roll.xlsx").read_bytes()
    cases = {
        "empty.csv": b"",
        "binary.csv": bytes(range(256)) * 8,
        "locked.xlsx": b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 1024,
        "truncated.xlsx": good[: len(good) // 3],
        "no_header.csv": b"alpha,beta,gamma\n1,2,3\n4,5,6\n",
    }
    for name, content in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        result = run_cli("check", "--offline", str(path))
        assert result.returncode == 2, (name, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr + result.stdout
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and name in lines[0], (name, result.stderr)
    headers = run_cli("check", "--offline", str(tmp_path / "no_header.csv")).stderr
    assert "'alpha'" in headers and "Profiles tried" in headers


def _verdict_everywhere(result: object, workspace: Path) -> set[str]:
    """The verdict as the console, summary.json, the HTML and the XLSX each state it."""
    import re

    from openpyxl import load_workbook

    stdout = result.stdout  # type: ignore[attr-defined]
    summary = summary_of(stdout, workspace)
    folder = workspace / "reports" / summary["run_id"]
    html = (folder / "report.html").read_text()
    console = next(
        line.strip().lower()
        for line in stdout.splitlines()
        if line.strip().lower() in {"complete", "waiting for sync", "needs attention"}
    )
    shown = re.search(r'data-verdict="([^"]+)">([^<]+)<', html)
    assert shown and shown.group(2).lower() == shown.group(1)
    sheet = load_workbook(folder / "report.xlsx")["Summary"]
    return {console, summary["verdict"], shown.group(1), str(sheet["B2"].value).lower()}


def test_the_three_verdicts_are_the_same_in_console_reports_and_exit_code(
    sandbox: RunningSandbox, workspace: Path, ledger_url: str
) -> None:
    """#16 item 1: "Ties out" stayed green over 0.00 matched and 14 rejected rows."""
    env = env_for(sandbox, ledger_url)
    first = run_cli("--data-dir", str(workspace), "run", env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert _verdict_everywhere(first, workspace) == {"waiting for sync"}
    assert "posted, awaiting Propexo's next sync" in first.stdout

    with receiving(sandbox, workspace, _engine(ledger_url)):
        second = run_cli(
            "--data-dir", str(workspace), "reconcile", "--sync", "--wait", "20", env=env
        )
    assert second.returncode == 0, second.stdout + second.stderr
    assert _verdict_everywhere(second, workspace) == {"complete"}

    bad = (SAMPLES / "vendor_bills.csv").read_text().replace("512.07", "5l2.07", 1)
    assert bad != (SAMPLES / "vendor_bills.csv").read_text()
    (workspace / "inbox" / "bills_again.csv").write_text(bad)
    third = run_cli("--data-dir", str(workspace), "run", env=env)
    assert third.returncode == 1, third.stdout + third.stderr
    assert _verdict_everywhere(third, workspace) == {"needs attention"}
    summary = summary_of(third.stdout, workspace)
    rejected = next(r for r in summary["verdict_reasons"] if r["reason"].startswith("rows rej"))
    assert rejected["count"] == summary["totals"]["rows_rejected"] >= 1
    # The exceptions show each rejected row with its amount as the file shows it.
    html = (workspace / "reports" / summary["run_id"] / "report.html").read_text()
    assert '<td class="num">5l2.07</td>' in html
    # The run index, newest first, on the page and the console.
    index = (workspace / "reports" / "index.html").read_text()
    first_id = summary_of(first.stdout, workspace)["run_id"]
    assert index.index(summary["run_id"]) < index.index(first_id)
    assert ">Needs attention</span>" in index and ">Complete</span>" in index
    runs = run_cli("--data-dir", str(workspace), "runs", env=env)
    assert summary["run_id"] in runs.stdout and first_id in runs.stdout
    assert runs.stdout.index(summary["run_id"]) < runs.stdout.index(first_id), runs.stdout


def test_a_period_workpaper_ties_the_months_files_across_runs_and_is_signed_off(
    sandbox: RunningSandbox, api: httpx.Client, workspace: Path, ledger_url: str
) -> None:
    """#28: a controller closes a month, not a run. November's bills came in three runs (the
    second with an unreadable amount, the third its corrected file): the period workpaper holds
    every file of November, each tied to its own Total row, its posted total is what Rent
    Manager holds, and a sign-off recorded with `tieout signoff` shows in it."""
    from openpyxl import load_workbook

    env = env_for(sandbox, ledger_url)
    (workspace / "inbox" / "rent_roll.xlsx").unlink()  # December's: another period
    assert run_cli("--data-dir", str(workspace), "run", env=env).returncode == 0
    lines = [
        "ACME Plumbing LLC,T-9001,11/20/2026,12/20/2026,Maple Court,5100,Valve,100.00",
        "ACME Plumbing LLC,T-9002,11/21/2026,12/21/2026,Maple Court,5100,Pipe,2O0.00",
        ",,,,,,,",
        'Total,,,,,,,"$300.00"',
    ]
    write_bills(workspace / "inbox" / "late_bills.csv", lines)
    second = run_cli("--data-dir", str(workspace), "run", env=env)
    assert second.returncode == 1, second.stdout + second.stderr  # the unreadable amount
    lines[1] = lines[1].replace("2O0.00", "200.00")
    write_bills(workspace / "inbox" / "late_bills_fixed.csv", lines)
    third = run_cli("--data-dir", str(workspace), "run", env=env)
    assert third.returncode == 0, third.stdout + third.stderr

    period = run_cli("--data-dir", str(workspace), "report", "--period", "2026-11", env=env)
    assert period.returncode == 0, period.stdout + period.stderr
    folder = workspace / "reports" / "period-2026-11"
    summary = json.loads((folder / "summary.json").read_text())
    # Each source line once (#36): the corrected file is the later version of late_bills.csv
    # (records of the same keys), which it supersedes.
    assert [f["name"] for f in summary["files"]] == ["vendor_bills.csv", "late_bills_fixed.csv"]
    (superseded,) = summary["files"][1]["superseded_versions"]
    assert superseded["name"] == "late_bills.csv"
    for f in summary["files"]:
        (stated,) = f["file_totals"]
        assert stated["stated_cents"] == (2140363 if f["name"] == "vendor_bills.csv" else 30000)
        if f["rows_rejected"]:
            # The unreadable "2O0.00": never called tied; the rest is that row's, shown.
            assert not f["ties_out"] and not stated["checked"], stated
            assert stated["stated_cents"] - stated["computed_cents"] == 20000
            assert [u["source_row"] for u in stated["unreadable"]] == [3]
        else:
            assert f["ties_out"], f
            assert stated["checked"] and stated["difference_cents"] == 0, stated
            assert f["source_total_cents"] == stated["stated_cents"]
    invoices = [r for r in pms_records(api) if r["kind"] == "invoice"]
    assert len(invoices) == 12 + 2  # nothing twice
    in_rm = sum(int(r["total_amount_in_cents"]) for r in invoices)
    totals = summary["totals"]
    assert totals["source_total_cents"] == in_rm == 2140363 + 30000
    assert totals["previously_posted_cents"] == 10000  # T-9001, by the superseded version
    assert totals["posted_total_cents"] + totals["previously_posted_cents"] == in_rm
    # Not a run: the index and `tieout runs` list runs only.
    runs = run_cli("--data-dir", str(workspace), "runs", env=env)
    assert "period-2026-11" not in runs.stdout

    signed = run_cli(
        "--data-dir", str(workspace), "signoff", "2026-11", "--by", "Dana Reviewer", env=env
    )
    assert signed.returncode == 0, signed.stdout + signed.stderr
    summary = json.loads((folder / "summary.json").read_text())
    assert [s["by"] for s in summary["signoffs"]] == ["Dana Reviewer"]
    assert "Reviewed by <strong>Dana Reviewer</strong>" in (folder / "report.html").read_text()
    sheet = load_workbook(folder / "report.xlsx")["Summary"]
    reviewed = {row[0]: row[1] for row in sheet.iter_rows(values_only=True) if row[0]}
    assert reviewed["Reviewed by"] == "Dana Reviewer"
    unknown = run_cli("--data-dir", str(workspace), "signoff", "nope", "--by", "X", env=env)
    assert unknown.returncode == 2 and "not a period" in unknown.stderr


def test_trace_follows_a_dollar_from_its_cell_to_the_rent_manager_record(
    sandbox: RunningSandbox, workspace: Path, ledger_url: str
) -> None:
    """#28: `tieout trace` gives each link: the cell with its column letter and row, the value
    as the file has it, the alias line that named the resident, Propexo's ids, the job and,
    after the sync, the Rent Manager id; for a charge, a credit and an invoice's lines."""
    from openpyxl import load_workbook

    env = env_for(sandbox, ledger_url)
    roll = workspace / "inbox" / "rent_roll.xlsx"
    book = load_workbook(roll)
    sheet = book.active
    assert sheet["C9"].value == "Jessup, Morgan"
    sheet["C9"] = "Jesup, Morgan"  # as a clerk typed it
    book.save(roll)
    aliases = workspace / "mappings" / "residents.csv"
    aliases.parent.mkdir(parents=True, exist_ok=True)
    aliases.write_text('spreadsheet_name,propexo_name\n"Jesup, Morgan",Morgan Jessup\n')
    first = run_cli("--data-dir", str(workspace), "run", env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    with receiving(sandbox, workspace, _engine(ledger_url)):
        synced = run_cli(
            "--data-dir", str(workspace), "reconcile", "--sync", "--wait", "20", env=env
        )
    assert synced.returncode == 0, synced.stdout + synced.stderr

    def traced(query: str) -> list[dict]:  # type: ignore[type-arg]
        result = run_cli("--data-dir", str(workspace), "trace", query, "--json", env=env)
        assert result.returncode == 0, result.stdout + result.stderr
        return json.loads(result.stdout)  # type: ignore[no-any-return]

    rent, trash = traced("rent_roll.xlsx:9")
    assert rent["cells"][:3] == ["A9", "B9", "C9"] and "F9" in rent["cells"]
    assert rent["values_as_read"]["C9"] == "Jesup, Morgan"
    assert rent["values_as_read"]["F9"] == 1305 and rent["amount_cents"] == 130500
    assert rent["aliases"] == [
        {
            "kind": "residents",
            "as_read": "Jesup, Morgan",
            "propexo_name": "Morgan Jessup",
            "file": str(aliases),
            "line": 2,
        }
    ]
    assert trash["values_as_read"]["I9"] == 25
    for record in (rent, trash):
        assert record["sheet"] == "Rent Roll" and record["file"] == "rent_roll.xlsx"
        assert record["state"] == "matched" and record["job_id"]
        assert record["propexo_id"] and record["rent_manager_id"]
        assert record["reference_number"] and record["propexo_ids"]["resident_id"]
    (credit,) = [r for r in traced("rent_roll.xlsx:6") if r["kind"] == "credit"]
    assert credit["values_as_read"]["J6"] == -100 and credit["amount_cents"] == -10000
    assert credit["rent_manager_id"] and traced(credit["reference_number"]) == [credit]
    (invoice,) = traced("W-2026117")
    assert invoice["rows"] == [5, 6, 7] and invoice["rent_manager_id"]
    lines = invoice["lines"]
    assert [line["cells"]["amount"] for line in lines] == ["H5", "H6", "H7"]
    assert [line["values_as_read"]["H7"] for line in lines[2:]] == ["$668.53"]
    assert [line["amount_cents"] for line in lines] == [112659, 51207, 66853]
    assert all(line["financial_account_id"] and line["property_id"] for line in lines)
    missing = run_cli("--data-dir", str(workspace), "trace", "nothing:1", env=env)
    assert missing.returncode == 2 and "FILE:ROW" in missing.stderr
