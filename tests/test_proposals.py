"""#38: a rent roll of no known layout is held with a proposal (each column's role and the
evidence for it, the rows and total it would use), never refused for being new; a person
confirms or corrects it in one command, later files of that layout run unattended, and the
confirmed layout exports as a profile (fixtures: tests/data/make_proposal_fixtures.py)."""

from __future__ import annotations

import json
import shutil
import tomllib
from pathlib import Path
from typing import Any

import httpx
import pytest

from pipelines.kinds import registered
from pipelines.reading.extract import extract_file
from pipelines.reading.grids import fingerprint
from pipelines.reading.profiles import BUILTIN_PROFILES_DIR, load_profile, load_profiles
from pipelines.reading.propose import proposal_profile, propose_layout
from sandbox.server import RunningSandbox
from tests.conftest import TEST_DATA, run_cli

SENIOR = "proposal_senior_flat_roll.csv"
UNKNOWN = "proposal_unknown_system.csv"
UNKNOWN_NEXT = "proposal_unknown_system_jan.csv"


def expected(name: str) -> dict[str, Any]:
    facts: dict[str, Any] = json.loads((TEST_DATA / f"{name}.expected.json").read_text())
    return facts


def checked(path: Path, tmp_path: Path, *extra: str) -> tuple[Any, dict[str, Any]]:
    out = tmp_path / "check.json"
    result = run_cli("--data-dir", str(tmp_path / "data"), "check", "--offline", "--json",
                     str(out), *extra, str(path))  # fmt: skip
    assert "Traceback" not in result.stderr
    return result, json.loads(out.read_text())["files"][0]


@pytest.mark.parametrize("name", [SENIOR, UNKNOWN])
def test_a_roll_of_no_known_layout_is_held_with_a_proposal_that_ties_to_its_own_total(
    name: str, tmp_path: Path
) -> None:
    source = tmp_path / name
    shutil.copy2(TEST_DATA / name, source)
    want = expected(name)
    result, got = checked(source, tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr  # held: a person must act
    assert "Draft a profile" not in result.stdout + result.stderr
    assert got["held"] is True and got["layout"]["confirmed"] is False
    proposal = got["layout"]["proposal"]
    assert {c["header"]: c["role"] for c in proposal["columns"]} == want["roles"]
    assert all(c["evidence"] for c in proposal["columns"])
    assert proposal["rows_used"] == want["rows_used"]
    assert proposal["total_cents"] == want["total_cents"]
    assert proposal["stated_total_cents"] == want["total_cents"]  # the file's own total row
    by_header = {c["header"]: c for c in proposal["columns"]}
    for header, cents in want["stated"].items():
        column = by_header[header]
        assert column["stated_total_cents"] == cents == column["sum_cents"], header
        assert "ties to the file's own total" in column["evidence"]
    # What the clerk sees fits one screen and ends with the exact command.
    said = result.stdout.strip().splitlines()
    assert len(said) <= 24
    command = f"tieout --data-dir {tmp_path / 'data'} layout accept {source}"
    assert said[-1].endswith(command) and got["layout"]["command"] == command


def test_the_senior_roll_guards_against_the_bad_draft(tmp_path: Path) -> None:
    """The care level (AL/IL) is not the unit, a first name alone is not the resident, and of
    two columns holding the same money only one is charged."""
    proposal = propose_layout(TEST_DATA / SENIOR)
    assert proposal is not None
    roles = {c.header: c for c in proposal.columns}
    assert roles["Apt"].role == "unit"
    assert roles["Care Level"].role == "not_charged"
    assert [c.header for c in proposal.of("resident")] == ["Last Name", "First Name"]
    twin = roles["Apartment Charges (December 2026)"]
    assert twin.role == "not_charged" and "repeats column 'Actual Rate'" in twin.evidence
    assert "double" in twin.evidence
    assert "deposit" in roles["Deposit"].evidence and "balance" in roles["Balance"].evidence
    unknown = propose_layout(TEST_DATA / UNKNOWN)
    assert unknown is not None
    total_due = {c.header: c for c in unknown.columns}["Total Due"]
    assert total_due.evidence.startswith("a row-total column: each row is 'Rent' + 'Parking'")


def test_corrections_are_applied_and_a_header_that_names_no_column_is_said(
    tmp_path: Path,
) -> None:
    corrected = propose_layout(
        TEST_DATA / SENIOR,
        roles={"Apartment Charges (December 2026)": "charge", "Actual Rate": "not_charged"},
    )
    assert corrected is not None
    assert [c.header for c in corrected.of("charge")] == ["Apartment Charges (December 2026)"]
    assert corrected.total_cents == expected(SENIOR)["total_cents"]
    with pytest.raises(Exception, match="no column called 'Rate'"):
        propose_layout(TEST_DATA / SENIOR, roles={"Rate": "charge"})


def test_a_correction_that_charges_the_same_money_twice_is_refused() -> None:
    """#38: `layout accept --charge "Apartment Charges…"` without `--not-charge` on its twin
    "Actual Rate" charged both columns (the preview showed twice the file's total; nothing
    stopped it)."""
    month = "Apartment Charges (December 2026)"
    with pytest.raises(Exception, match="same money on every row: charging both would double"):
        propose_layout(TEST_DATA / SENIOR, roles={month: "charge"})
    kept = propose_layout(TEST_DATA / SENIOR, roles={month: "charge", "Actual Rate": "not_charged"})
    assert kept is not None and kept.total_cents == expected(SENIOR)["total_cents"]


def test_the_profile_a_proposal_becomes_reads_the_file_strictly_and_joins_names(
    tmp_path: Path,
) -> None:
    proposal = propose_layout(TEST_DATA / SENIOR)
    assert proposal is not None
    path = tmp_path / "layout.toml"
    path.write_text(proposal_profile(proposal, "layout_test", "pat"))
    profile = load_profile(path, registered())
    result = extract_file(fingerprint(TEST_DATA / SENIOR), [profile])
    assert result.layout is not None and result.layout.strict, result.layout
    assert result.rows["resident_name"].iloc[0] == "Marrow, Dakota"
    assert list(result.charge_columns) == ["Actual Rate"]
    assert len(result.rows) == proposal.rows_used
    assert all(t["difference_cents"] == 0 for t in result.file_totals)
    # Built-in profiles still do not read it: the proposal is the only reading.
    builtin = load_profiles(BUILTIN_PROFILES_DIR, kinds=registered())
    with pytest.raises(Exception, match="no header row matches"):
        extract_file(fingerprint(TEST_DATA / SENIOR), builtin)


def test_a_non_input_is_still_refused_not_proposed(tmp_path: Path) -> None:
    """A tenant directory has units and names but no money: nothing to propose."""
    source = tmp_path / "directory.csv"
    shutil.copy2(TEST_DATA / "shape_tenant_directory.csv", source)
    result = run_cli("check", "--offline", str(source))
    assert result.returncode == 2
    assert "held, not posted" not in result.stdout


def env_for(box: RunningSandbox) -> dict[str, str]:
    return {
        "PROPEXO_BASE_URL": box.base_url,
        "PROPEXO_API_TOKEN": box.config.token,
        "LOGNAME": "pat.clerk",
        "USER": "pat.clerk",
    }


def summary_of(stdout: str) -> dict[str, Any]:
    line = next(line for line in stdout.splitlines() if line.startswith("report: "))
    summary: dict[str, Any] = json.loads(
        (Path(line.removeprefix("report: ")).parent / "summary.json").read_text()
    )
    return summary


def test_held_then_accepted_with_corrections_posts_exactly_those_lines_then_runs_unattended(
    sandbox: RunningSandbox, api: httpx.Client, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    inbox = data / "inbox"
    inbox.mkdir(parents=True)
    env = env_for(sandbox)
    first = inbox / UNKNOWN
    shutil.copy2(TEST_DATA / UNKNOWN, first)
    want = expected(UNKNOWN)

    held = run_cli("--data-dir", str(data), "run", env=env)
    assert held.returncode == 1, held.stdout + held.stderr
    assert f"{UNKNOWN}: held, not posted: no known layout" in held.stdout
    assert first.exists() and not list(data.glob("rejected/*"))
    assert api.get("/_sandbox/records").json()["results"] == []
    summary = summary_of(held.stdout)
    (entry,) = summary["held_layouts"]
    assert entry["layout"]["proposal"]["total_cents"] == want["total_cents"]
    items = run_cli("--data-dir", str(data), "todo", "--json", env=env)
    (item,) = json.loads(items.stdout)["items"]
    assert item["cause"] == "held_layout" and item["amount_cents"] == want["total_cents"]
    assert item["detail"]["proposal"]["rows_used"] == want["rows_used"]
    assert item["command"] == f"tieout --data-dir {data} layout accept {first}"
    planned = run_cli("--data-dir", str(data), "run", "--dry-run", env=env)
    assert f"{UNKNOWN}: held, not posted: no known layout" in planned.stdout, planned.stderr
    assert planned.stdout.count(f"would post {want['rows_used']} rows") == 1

    # The clerk charges the rent only: Parking is billed elsewhere.
    accepted = run_cli(
        "--data-dir", str(data), "layout", "accept", str(first), "--charge", "Rent",
        "--not-charge", "Parking", env=env,
    )  # fmt: skip
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    assert "confirmed by pat.clerk" in accepted.stdout
    assert "would charge: Rent;" in accepted.stdout

    posted = run_cli("--data-dir", str(data), "run", env=env)
    assert posted.returncode == 0, posted.stdout + posted.stderr
    records = api.get("/_sandbox/records").json()["results"]
    assert len(records) == want["rent_lines"]
    (done,) = summary_of(posted.stdout)["files"]
    assert done["source_total_cents"] == want["rent_cents"]
    assert done["layout"]["confirmed_by"].startswith("pat.clerk on")
    # Parking is not charged by the clerk's own choice: no advice to alias it as a charge
    # (followed, it would charge what she said is billed elsewhere).
    (parking,) = done["columns_not_charged"]  # still shown with its money, marked the layout's
    assert (parking["header"], parking["by_layout"]) == ("Parking", True)
    assert 'alias add charge_code "Parking"' not in posted.stdout + posted.stderr
    todo = json.loads(run_cli("--data-dir", str(data), "todo", "--json", env=env).stdout)
    assert todo["items"] == []  # the held item was settled by the run that posted it

    # Next month's file of the same layout posts unattended.
    shutil.copy2(TEST_DATA / UNKNOWN_NEXT, inbox / UNKNOWN_NEXT)
    again = run_cli("--data-dir", str(data), "run", env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "held, not posted" not in again.stdout
    records = api.get("/_sandbox/records").json()["results"]
    assert len(records) == want["rent_lines"] + expected(UNKNOWN_NEXT)["rent_lines"]

    # The confirmed layout exports as a profile that reads the file the same.
    layout_id = str(done["layout"]["layout_id"])
    out = tmp_path / "exported.toml"
    exported = run_cli(
        "--data-dir", str(data), "layout", "export", layout_id, "--out", str(out), env=env
    )
    assert exported.returncode == 0, exported.stdout + exported.stderr
    raw = tomllib.loads(out.read_text())
    assert raw["charges"]["include"] == ["rent"] and "parking" in raw["charges"]["ignore"]
    profile = load_profile(out, registered())
    read = extract_file(fingerprint(TEST_DATA / UNKNOWN), [profile])
    assert list(read.charge_columns) == ["Rent"]
    assert len(read.rows) == want["rows_used"]
    assert read.layout is not None and read.layout.fingerprint == done["layout"]["fingerprint"]
    missing = run_cli("--data-dir", str(data), "layout", "export", "99", env=env)
    assert missing.returncode == 2 and "no confirmed layout 99" in missing.stderr


def test_the_senior_roll_accepted_as_proposed_posts_its_own_total(
    sandbox: RunningSandbox, api: httpx.Client, tmp_path: Path
) -> None:
    """Accepted as proposed (one rate column charged, names joined), with the charge code's
    alias the clerk adds, the roll posts one line per resident: its own total, once."""
    data = tmp_path / "data"
    inbox = data / "inbox"
    inbox.mkdir(parents=True)
    env = env_for(sandbox)
    roll = inbox / SENIOR
    shutil.copy2(TEST_DATA / SENIOR, roll)
    want = expected(SENIOR)
    alias = run_cli(
        "--data-dir", str(data), "alias", "add", "charge_code", "Actual Rate", "Rent", env=env
    )
    assert alias.returncode == 0, alias.stdout + alias.stderr
    accepted = run_cli("--data-dir", str(data), "layout", "accept", str(roll), env=env)
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    posted = run_cli("--data-dir", str(data), "run", env=env)
    assert posted.returncode == 0, posted.stdout + posted.stderr
    records = api.get("/_sandbox/records").json()["results"]
    assert len(records) == want["rows_used"]
    (done,) = summary_of(posted.stdout)["files"]
    assert done["source_total_cents"] == want["total_cents"]


def test_corrections_on_a_file_a_profile_reads_are_refused(tmp_path: Path) -> None:
    from tests.conftest import SAMPLES

    result = run_cli(
        "--data-dir", str(tmp_path / "data"), "layout", "accept", str(SAMPLES / "rent_roll.xlsx"),
        "--charge", "Rent",
    )  # fmt: skip
    assert result.returncode == 2
    assert "is read by the profile tieout_rent_roll" in result.stderr
    clash = run_cli(
        "--data-dir", str(tmp_path / "data"), "layout", "accept", str(TEST_DATA / SENIOR),
        "--charge", "Deposit", "--not-charge", "deposit",
    )  # fmt: skip
    assert clash.returncode == 2 and "two roles" in clash.stderr


def test_a_confirmation_that_fails_leaves_no_profile_behind(tmp_path: Path) -> None:
    """Propexo unreachable: nothing is confirmed, and the profile written for it is taken back."""
    data = tmp_path / "data"
    result = run_cli(
        "--data-dir", str(data), "layout", "accept", str(TEST_DATA / UNKNOWN),
        env={"PROPEXO_BASE_URL": "http://127.0.0.1:9", "PROPEXO_API_TOKEN": "t"},
    )  # fmt: skip
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert not list(data.glob("profiles/*.toml"))


def test_a_layout_confirmed_under_a_builtin_profile_exports_that_profile(tmp_path: Path) -> None:
    from pipelines.ledger import Ledger
    from tests.conftest import SAMPLES

    data = tmp_path / "data"
    facts = extract_file(
        fingerprint(SAMPLES / "rent_roll.xlsx"),
        load_profiles(BUILTIN_PROFILES_DIR, kinds=registered()),
    ).layout
    assert facts is not None
    with Ledger(f"sqlite:///{data / 'ledger.sqlite'}") as ledger:
        layout_id, _ = ledger.confirm_layout(
            {**facts.as_dict(), "confirmed": False}, facts.header_key, "pat", "r.xlsx", "f" * 64
        )
    out = tmp_path / "roll.toml"
    result = run_cli("--data-dir", str(data), "layout", "export", str(layout_id), "--out", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    assert out.read_text() == (BUILTIN_PROFILES_DIR / "tieout_rent_roll.toml").read_text()
    again = run_cli("--data-dir", str(data), "layout", "export", str(layout_id), "--out", str(out))
    assert again.returncode == 0  # the same text again: nothing to refuse
    out.write_text("# mine\n")
    clash = run_cli("--data-dir", str(data), "layout", "export", str(layout_id), "--out", str(out))
    assert clash.returncode == 2 and "already exists" in clash.stderr


def test_a_workbook_is_proposed_from_its_sheet_with_the_most_rows_or_the_one_named(
    tmp_path: Path,
) -> None:
    """The export's own sheet, not a shorter hand-edited copy; --sheet names another."""
    import csv

    from openpyxl import Workbook

    rows = list(csv.reader((TEST_DATA / UNKNOWN).read_text().splitlines()))
    book = Workbook()
    export = book.active
    assert export is not None
    export.title = "Export"
    copy = book.create_sheet("Copy")
    for row in rows:
        export.append(row)
    for row in rows[:6] + rows[-1:]:  # two residents, edited by hand
        copy.append(row)
    path = tmp_path / "roll.xlsx"
    book.save(path)
    proposal = propose_layout(path)
    assert proposal is not None and proposal.sheet == "Export"
    assert proposal.rows_used == expected(UNKNOWN)["rows_used"]
    named = propose_layout(path, sheet="Copy")
    assert named is not None and named.sheet == "Copy" and named.rows_used == 2
    with pytest.raises(Exception, match="no sheet called 'Nope'"):
        propose_layout(path, sheet="Nope")


def test_each_role_is_proposed_with_why_on_a_roll_with_no_total_row(tmp_path: Path) -> None:
    """One-time fees, credits, market rates, money of no known charge, a period column, a
    first name alone, an empty column; no total row to tie to; a person's corrections."""
    roll = tmp_path / "roll.csv"
    roll.write_text(
        "Site Roll\n"
        "Unit,Tenant,First Name,Billing Month,Market Rent,Base Rent,Residency Fee,Concession,"
        "Misc,Notes\n"
        'A-101,"Kettering, Dakota",Dakota,12/2026,1300.00,1250.00,500.00,-50.00,10.00,\n'
        'A-102,"Pembry, Skyler",Skyler,12/2026,1350.00,1300.00,,-25.00,12.00,\n'
        "A-103,*Vacant,,12/2026,1400.00,,,,,\n"
    )
    proposal = propose_layout(roll)
    assert proposal is not None and proposal.usable
    roles = {c.header: (c.role, c.evidence) for c in proposal.columns}
    assert roles["Unit"][0] == "unit" and roles["Tenant"][0] == "resident"
    assert roles["First Name"] == (
        "not_charged",
        "first names alone: they name no one without a last name",
    )
    assert roles["Billing Month"][0] == "period"
    assert roles["Market Rent"][0] == "not_charged" and "market rate" in roles["Market Rent"][1]
    assert roles["Base Rent"][0] == "charge"
    assert roles["Residency Fee"][0] == "one_time"
    assert roles["Concession"][0] == "credit"
    assert roles["Misc"][0] == "unknown" and "names no known charge" in roles["Misc"][1]
    assert roles["Notes"] == ("not_charged", "empty")
    assert "the file states no total for it" in roles["Base Rent"][1]
    assert proposal.rows_used == 2  # the vacant unit is not a resident's row
    assert proposal.total_cents == 125_000 + 130_000 - 5_000 - 2_500
    assert proposal.total_row is None and proposal.stated_total_cents is None
    corrected = propose_layout(
        roll, roles={"Misc": "charge", "Unit": "unit", "Tenant": "resident", "Unit ": "unit"}
    )
    assert corrected is not None
    assert {c.header: c.evidence for c in corrected.of("charge")}["Misc"].startswith("set by you")
    # Nothing charged: no profile is made of it.
    bare = propose_layout(roll, roles={h: "not_charged" for h in ("Base Rent", "Concession")})
    assert bare is not None
    with pytest.raises(Exception, match="nothing would be charged"):
        proposal_profile(bare, "layout_x", "pat")


def test_a_sheet_with_no_header_or_no_units_has_no_proposal(tmp_path: Path) -> None:
    numbers = tmp_path / "numbers.csv"
    numbers.write_text("1,2\n3,4\n")
    assert propose_layout(numbers) is None
    budget = tmp_path / "budget.csv"
    budget.write_text(
        "Account,Jan,Feb,Mar\nRent income,100.00,100.00,100.00\nTotal,100.00,100,100\n"
    )
    found = propose_layout(budget)
    assert found is None or not found.usable


def test_a_sheet_of_headers_and_no_rows_has_no_proposal_and_no_crash(tmp_path: Path) -> None:
    """Found by the fuzz test of typed workbooks: a header row with nothing under it crashed
    the proposal ("truth value of a Series is ambiguous"); it has no proposal."""
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["Property", "Unit", "A"])
    path = tmp_path / "headers_only.xlsx"
    book.save(path)
    assert propose_layout(path) is None


STORAGE = "proposal_self_storage.csv"
STORAGE_NEXT = "proposal_self_storage_feb.csv"


def test_a_self_storage_roll_is_held_with_a_proposal_accepted_in_one_command_then_unattended(
    sandbox: RunningSandbox, api: httpx.Client, tmp_path: Path
) -> None:
    """#38 point 6: a self-storage roll ("Space", "6/1/2025 12:00:00 AM", "238.0000") was
    refused as unknown. It is held with a proposal that ties to its own total row (the
    standard rate is a market rate, not charged; its twin is none); `check --offline --json`
    shows it; accepted with the insurance left out, the run posts exactly its lines, and next
    month's file posts unattended."""
    data = tmp_path / "data"
    inbox = data / "inbox"
    inbox.mkdir(parents=True)
    env = env_for(sandbox)
    roll = inbox / STORAGE
    shutil.copy2(TEST_DATA / STORAGE, roll)
    want = expected(STORAGE)
    result, got = checked(roll, tmp_path)
    assert result.returncode == 1 and "Draft a profile" not in result.stdout + result.stderr
    proposal = got["layout"]["proposal"]
    assert {c["header"]: c["role"] for c in proposal["columns"]} == want["roles"]
    assert proposal["rows_used"] == want["rows_used"]
    assert proposal["total_cents"] == proposal["stated_total_cents"] == want["total_cents"]
    by_header = {c["header"]: c for c in proposal["columns"]}
    for header, cents in want["stated"].items():
        assert by_header[header]["stated_total_cents"] == cents == by_header[header]["sum_cents"]
    assert "market rate" in by_header["Std Rate"]["evidence"]

    accepted = run_cli(
        "--data-dir", str(data), "layout", "accept", str(roll), "--not-charge", "Insurance",
        env=env,
    )  # fmt: skip
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    posted = run_cli("--data-dir", str(data), "run", env=env)
    assert posted.returncode == 0, posted.stdout + posted.stderr
    records = api.get("/_sandbox/records").json()["results"]
    assert len(records) == want["rows_used"]
    (done,) = summary_of(posted.stdout)["files"]
    assert done["source_total_cents"] == want["total_cents"]
    assert done["period"] == want["period"]  # "As of 1/01/2027 12:00:00 AM"

    shutil.copy2(TEST_DATA / STORAGE_NEXT, inbox / STORAGE_NEXT)
    again = run_cli("--data-dir", str(data), "run", env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "held, not posted" not in again.stdout
    (next_month,) = summary_of(again.stdout)["files"]
    assert next_month["source_total_cents"] == expected(STORAGE_NEXT)["total_cents"]
    records = api.get("/_sandbox/records").json()["results"]
    assert len(records) == want["rows_used"] + expected(STORAGE_NEXT)["rows_used"]


REV = "rev_coded_appfolio_roll.xlsx"
REV_NEXT = "rev_coded_appfolio_roll_feb.xlsx"


def test_an_appfolio_roll_of_rev_coded_columns_ties_column_by_column_and_posts(
    sandbox: RunningSandbox, api: httpx.Client, tmp_path: Path
) -> None:
    """#38 point 6: an AppFolio roll with one "REV: …" column per charge code was refused on
    its totals: its per-row "Total" also sums "REV: Utility Reimbursement", a code Propexo
    does not know. Each charged column ties to its own total, so does that column; the row
    total is reported with it, never a contradiction; the file is held until a person
    confirms, then posts exactly its charged lines (the REV: prefix taken off to Propexo's
    codes, no alias), and next month's file posts unattended."""
    data = tmp_path / "data"
    inbox = data / "inbox"
    inbox.mkdir(parents=True)
    env = env_for(sandbox)
    roll = inbox / REV
    shutil.copy2(TEST_DATA / REV, roll)
    want = expected(REV)
    held = run_cli("--data-dir", str(data), "run", env=env)
    assert held.returncode == 1, held.stdout + held.stderr
    assert "do not tie" not in held.stdout + held.stderr
    assert f"{REV}: held, not posted" in held.stdout
    assert f"with {want['not_charged']!r}, not charged" in held.stdout
    assert api.get("/_sandbox/records").json()["results"] == []
    (entry,) = summary_of(held.stdout)["held_layouts"]
    assert entry["source_total_cents"] == want["source_total_cents"]
    totals = {t["column"]: t for t in entry["file_totals"] if t["kind"] == "total"}
    for header, cents in want["stated"].items():
        if header != want["not_charged"]:
            assert (
                totals[header]["stated_cents"] == cents and not totals[header]["difference_cents"]
            )
    row = totals["row totals"]
    assert row["stated_cents"] == want["row_total_cents"] and not row["difference_cents"]
    assert row["also_sums_unknown"] == [want["not_charged"]]

    accepted = run_cli("--data-dir", str(data), "layout", "accept", str(roll), env=env)
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    posted = run_cli("--data-dir", str(data), "run", env=env)
    assert posted.returncode == 0, posted.stdout + posted.stderr
    records = api.get("/_sandbox/records").json()["results"]
    assert len(records) == want["lines"]
    (done,) = summary_of(posted.stdout)["files"]
    assert done["source_total_cents"] == want["source_total_cents"]
    assert done["rows_used"] == want["rows_used"]

    shutil.copy2(TEST_DATA / REV_NEXT, inbox / REV_NEXT)
    again = run_cli("--data-dir", str(data), "run", env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    (next_month,) = summary_of(again.stdout)["files"]
    assert next_month["source_total_cents"] == expected(REV_NEXT)["source_total_cents"]
    records = api.get("/_sandbox/records").json()["results"]
    assert len(records) == want["lines"] + expected(REV_NEXT)["lines"]


def test_a_yardi_ap_batch_workbook_is_read_by_its_profile_and_posts_then_the_next_unattended(
    sandbox: RunningSandbox, api: httpx.Client, tmp_path: Path
) -> None:
    """#38 point 6: a Yardi AP batch workbook (batch header rows, the vendor and invoice on an
    invoice's first line only) was refused as unknown. Its profile reads it strictly: every
    invoice line used, tied to each batch's total and the grand total, posted exactly; the
    next batch file posts unattended."""
    data = tmp_path / "data"
    inbox = data / "inbox"
    inbox.mkdir(parents=True)
    env = env_for(sandbox)
    want = expected("yardi_ap_batch.xlsx")
    result, got = checked(TEST_DATA / "yardi_ap_batch.xlsx", tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert got["profile"] == want["profile"] and got["layout"]["confirmed"] is True
    assert (
        got["rows_used"] == want["lines"]
        and got["source_total_cents"] == want["source_total_cents"]
    )
    assert all(t["difference_cents"] == 0 for t in got["file_totals"])
    shutil.copy2(TEST_DATA / "yardi_ap_batch.xlsx", inbox / "yardi_ap_batch.xlsx")
    posted = run_cli("--data-dir", str(data), "run", env=env)
    assert posted.returncode == 0, posted.stdout + posted.stderr
    (done,) = summary_of(posted.stdout)["files"]
    assert done["rows_used"] == want["lines"] and done["rows_rejected"] == 0
    assert done["source_total_cents"] == want["source_total_cents"]
    records = api.get("/_sandbox/records").json()["results"]
    assert len(records) == want["invoices"]
    shutil.copy2(TEST_DATA / "yardi_ap_batch_feb.xlsx", inbox / "yardi_ap_batch_feb.xlsx")
    again = run_cli("--data-dir", str(data), "run", env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    (next_batch,) = summary_of(again.stdout)["files"]
    assert (
        next_batch["source_total_cents"]
        == expected("yardi_ap_batch_feb.xlsx")["source_total_cents"]
    )
    records = api.get("/_sandbox/records").json()["results"]
    assert len(records) == want["invoices"] + expected("yardi_ap_batch_feb.xlsx")["invoices"]
