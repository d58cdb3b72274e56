from __future__ import annotations

import csv
import io
import json
import shutil
import zipfile
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from openpyxl import Workbook

from pipelines.core.errors import InputError
from pipelines.kinds import registered
from pipelines.reading.extract import extract_file
from pipelines.reading.grids import fingerprint
from pipelines.reading.profiles import BUILTIN_PROFILES_DIR, load_profiles
from tests.conftest import SAMPLES, TEST_DATA

PROFILES = load_profiles(BUILTIN_PROFILES_DIR, kinds=registered())
HEADER = "Vendor,Invoice #,Invoice Date,Due Date,Property,GL Account,Description,Amount"


def extract(path: Path):  # type: ignore[no-untyped-def]
    return extract_file(fingerprint(path), PROFILES)


def test_sample_bills_skip_titles_blanks_and_totals() -> None:
    result = extract(SAMPLES / "vendor_bills.csv")
    assert result.profile == "tieout_vendor_bills"
    assert result.rows_read == len(result.rows) + len(result.skipped)
    kinds = result.skipped.set_index("source_row")["kind"].to_dict()
    assert kinds[1] == "title" and kinds[4] == "header" and kinds[result.rows_read] == "total"
    # source_row is the line number a person sees: the first bill line is line 5.
    assert result.rows["source_row"].iloc[0] == 5
    assert result.rows["vendor_name"].iloc[0] == "ACME Plumbing LLC"


def test_sample_rent_roll_finds_period_charge_columns_and_subtotals() -> None:
    result = extract(SAMPLES / "rent_roll.xlsx")
    assert result.profile == "tieout_rent_roll"
    assert result.period is not None and result.period.isoformat() == "2026-12-01"
    assert set(result.charge_columns) == {"Rent", "Parking", "Pet Rent", "Trash", "Concession"}
    assert (result.skipped["kind"] == "subtotal").sum() == 4
    assert result.rows_read == len(result.rows) + len(result.skipped)


def test_encodings_delimiters_and_line_endings(tmp_path: Path) -> None:
    body = [
        HEADER.replace(",", ";"),
        "Café Côté Services;A-1;11/03/2026;;Maple Court;5100;Réparation;1.234,00",
    ]
    path = tmp_path / "bills.csv"
    path.write_bytes("\r\n".join(body).encode("cp1252"))
    result = extract(path)
    assert result.rows["vendor_name"].iloc[0] == "Café Côté Services"

    bom = tmp_path / "bom.csv"
    bom.write_bytes(
        b"\xef\xbb\xbf" + (HEADER + "\nACME,A-1,11/03/2026,,Maple Court,5100,x,1.00\n").encode()
    )
    assert extract(bom).rows["vendor_name"].iloc[0] == "ACME"


def test_ids_stay_text(tmp_path: Path) -> None:
    path = tmp_path / "bills.csv"
    path.write_text(
        HEADER + "\nACME,0324,11/03/2026,,Maple Court,0510,x,1.00\n"
        "ACME,123456789012345,11/03/2026,,Maple Court,5100,x,1.00\n"
    )
    rows = extract(path).rows
    assert rows["invoice_number"].tolist() == ["0324", "123456789012345"]
    assert rows["gl_account"].iloc[0] == "0510"


def test_ragged_rows_and_a_wider_row_far_down(tmp_path: Path) -> None:
    lines = ["Report title", "", HEADER] + ["ACME,A-1,11/03/2026,,Maple Court,5100,x,1.00"] * 2500
    lines.append("ACME,A-2,11/03/2026,,Maple Court,5100,x,1.00,extra,cells")
    path = tmp_path / "bills.csv"
    path.write_text("\n".join(lines) + "\n")
    result = extract(path)
    assert len(result.rows) == 2501


def test_two_row_header_with_merged_cells(tmp_path: Path) -> None:
    wb = Workbook()
    ws = wb.active
    ws.append(["Charges for December 2026"])
    ws.append(["Property", "Unit", "Resident", "Charges", None, None])
    ws.append([None, None, None, "Rent", "Parking", "Total"])
    ws.merge_cells("D2:F2")
    ws.append(["Maple Court", "101", "Doe, Jan", 1000, 50, 1050])
    path = tmp_path / "roll.xlsx"
    wb.save(path)
    result = extract(path)
    assert result.profile == "tieout_rent_roll"
    assert set(result.charge_columns) == {"Charges Rent", "Charges Parking"}
    assert result.rows_read == 4 and len(result.rows) == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"\x00\x01\x02binary\x00garbage" * 20, "binary"),
        (b"a,b,c\n1,2,3\n", "no header row matches"),
    ],
)
def test_unreadable_csv_gives_one_clear_message(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "input.csv"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message):
        extract(path)


def test_truncated_and_encrypted_workbooks(tmp_path: Path) -> None:
    good = (SAMPLES / "rent_roll.xlsx").read_bytes()
    truncated = tmp_path / "truncated.xlsx"
    truncated.write_bytes(good[: len(good) // 2])
    with pytest.raises(InputError, match="damaged or truncated"):
        extract(truncated)
    encrypted = tmp_path / "locked.xlsx"
    encrypted.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600)
    with pytest.raises(InputError, match="password-protected"):
        extract(encrypted)
    not_a_book = tmp_path / "fake.xlsx"
    with zipfile.ZipFile(not_a_book, "w") as zf:
        zf.writestr("hello.txt", "hi")
    with pytest.raises(InputError):
        extract(not_a_book)


FIXTURES = [
    "appfolio_rent_roll.csv",
    "appfolio_rent_roll.xlsx",
    "yardi_rent_roll.xlsx",
    "generic_ap_bills.csv",
    "template_quirks.csv",
    "appfolio_itemized.csv",
    "utility_billing.csv",
]


@pytest.mark.parametrize("name", FIXTURES)
def test_check_offline_on_each_export_family_adds_up_to_the_known_total(
    name: str, tmp_path: Path
) -> None:
    from tests.conftest import TEST_DATA, run_cli

    source = tmp_path / name
    shutil.copy2(TEST_DATA / name, source)
    expected = json.loads((TEST_DATA / f"{name}.expected.json").read_text())
    out = tmp_path / "check.json"
    result = run_cli("check", "--offline", "--json", str(out), str(source))
    assert result.returncode == (1 if expected["rows_rejected"] else 0), result.stderr
    got = json.loads(out.read_text())["files"][0]
    for key in (
        "profile",
        "rows_read",
        "rows_used",
        "rows_rejected",
        "rows_skipped",
        "source_total_cents",
    ):
        assert got[key] == expected[key], key
    assert got["rows_read"] == got["rows_used"] + got["rows_rejected"] + got["rows_skipped"]
    for kind, count in expected["skipped"].items():
        assert got["skipped_by_kind"][kind] == count
    assert (tmp_path / f"{name}.errors.csv").exists() == bool(expected["rows_rejected"])
    assert got["columns_not_charged"] == expected.get("columns_not_charged", [])
    assert all(t["difference_cents"] == 0 for t in got["file_totals"])


@pytest.mark.parametrize("name", FIXTURES)
def test_every_fixture_resolves_online(name: str, refs) -> None:  # type: ignore[no-untyped-def]
    from pipelines.core.config import load_settings
    from pipelines.reading.profiles import profiles_for
    from pipelines.runs.files import process_file
    from tests.conftest import TEST_DATA

    settings = load_settings(env={})
    if name.startswith("yardi"):
        # Yardi's charge codes are not Rent Manager's names: that is what the alias file is for.
        codes = pd.DataFrame(
            {
                "spreadsheet_name": ["rent", "pet", "conc"],
                "propexo_name": ["Rent", "Pet Rent", "Concession"],
            }
        )
        refs = replace(refs, aliases={**refs.aliases, "charge_codes": codes})
    if name in ("appfolio_itemized.csv", "utility_billing.csv"):
        # The seed's Rent Manager has no water code: the biller's service names are aliased,
        # as a site would in data/mappings/charge_codes.csv.
        codes = pd.DataFrame(
            {"spreadsheet_name": ["Water/Sewer", "Water"], "propexo_name": ["Trash", "Trash"]}
        )
        refs = replace(refs, aliases={**refs.aliases, "charge_codes": codes})
    result = process_file(
        fingerprint(TEST_DATA / name), profiles_for(settings, registered()), refs, settings
    )
    codes = {i.code.value for i in result.issues}
    if name == "template_quirks.csv":
        assert codes == {"SENTINEL_DATE", "BAD_AMOUNT", "NEGATIVE_TOTAL"}
    else:
        assert result.issues == []
        assert (
            int(result.records["amount_cents"].sum())
            == json.loads((TEST_DATA / f"{name}.expected.json").read_text())["source_total_cents"]
        )


SHAPES = sorted(
    p.name.removesuffix(".expected.json") for p in TEST_DATA.glob("shape_*.expected.json")
)


@pytest.mark.parametrize("name", SHAPES)
def test_each_row_shape_of_real_exports_reads_right_or_is_refused_once(
    name: str, tmp_path: Path
) -> None:
    """#14: one small synthetic file per shape real exports have (tests/data/shape_*), with
    what it must read as, written by tests/data/make_fixtures.py."""
    from tests.conftest import run_cli

    source = tmp_path / name
    shutil.copy2(TEST_DATA / name, source)
    expected = json.loads((TEST_DATA / f"{name}.expected.json").read_text())
    out = tmp_path / "check.json"
    result = run_cli("check", "--offline", "--json", str(out), str(source))
    assert result.returncode == expected["exit"], result.stderr
    if expected["exit"] == 2:
        assert expected["refusal"] in result.stderr
        for advice in expected.get("not_advised", []):  # #38: a non-input is not to be mapped
            assert advice not in result.stderr
        assert result.stderr.count(name) == 1  # said once, for the whole file
        return
    got = json.loads(out.read_text())["files"][0]
    for key in ("profile", "rows_read", "rows_used", "rows_rejected", "source_total_cents"):
        assert got[key] == expected[key], key
    assert got["rows_read"] == got["rows_used"] + got["rows_rejected"] + got["rows_skipped"]
    assert got["skipped_by_kind"] == expected["skipped"]
    assert got["columns_not_charged"] == expected["columns_not_charged"]
    if "file_totals" in expected:
        # #31: a total that cannot be tied is shown as such, its rest attributed to its rows.
        assert [
            {k: t[k] for k in want}
            for t, want in zip(got["file_totals"], expected["file_totals"], strict=True)
        ] == expected["file_totals"]
        assert all(
            {"stated", "computed", "difference", "checked"} <= set(t) for t in got["file_totals"]
        )
    else:
        assert sum(1 for t in got["file_totals"] if t["difference_cents"]) == 0
        assert all(t["checked"] for t in got["file_totals"])
    if "said" in expected:
        assert expected["said"] in result.stdout
        assert "ties out" not in result.stdout
    for key in ("period", "period_source"):
        if key in expected:
            assert got[key] == expected[key]
    for key, value in expected.get("layout", {}).items():  # #31: whether it moves money
        assert got["layout"][key] == value, key


@pytest.mark.parametrize(
    "name",
    [
        n
        for n in SHAPES
        for expected in [json.loads((TEST_DATA / f"{n}.expected.json").read_text())]
        # online: false, a shape whose people or charges the seed has not (second residents)
        if expected["exit"] == 0 and expected.get("online", True)
    ],
)
def test_each_usable_row_shape_resolves_online_to_its_own_total(name: str, refs) -> None:  # type: ignore[no-untyped-def]
    from pipelines.core.config import load_settings
    from pipelines.reading.profiles import profiles_for
    from pipelines.runs.files import process_file

    settings = load_settings(env={})
    result = process_file(
        fingerprint(TEST_DATA / name), profiles_for(settings, registered()), refs, settings
    )
    assert result.issues == []
    expected = json.loads((TEST_DATA / f"{name}.expected.json").read_text())
    assert int(result.records["amount_cents"].sum()) == expected["source_total_cents"]


def test_yardi_sub_rows_inherit_their_unit_and_resident() -> None:
    from tests.conftest import TEST_DATA

    rows = extract(TEST_DATA / "yardi_rent_roll.xlsx").rows
    assert rows["unit"].notna().all() and rows["resident_name"].notna().all()
    assert set(rows["property_name"]) == {"Lakeview Terrace", "Maple Court"}
    assert rows["charge_code"].str.lower().eq("total").sum() == 0


@pytest.mark.parametrize(
    ("codec", "delimiter", "name"),
    [
        ("utf-16", "\t", "unicode_text.txt"),  # Excel's "Unicode Text": BOM, tab-separated
        ("utf-16-le", ",", "no_bom.csv"),
        ("utf-16-be", ",", "big_endian.csv"),  # written below with its BOM
        ("utf-8", ",", "really_a_csv.xlsx"),  # a CSV someone named .xlsx
    ],
)
def test_utf16_text_and_a_misnamed_csv_read_as_the_same_rows(
    codec: str, delimiter: str, name: str, tmp_path: Path
) -> None:
    """#20 item 8: a UTF-16 CSV was called binary; a CSV named .xlsx a damaged workbook."""
    from tests.conftest import TEST_DATA

    original = TEST_DATA / "generic_ap_bills.csv"
    text = original.read_text(encoding="cp1252").replace(",", delimiter)
    data = text.encode(codec)
    if codec == "utf-16-be":
        data = b"\xfe\xff" + data
    (tmp_path / name).write_bytes(data)
    if delimiter == "\t":  # the same file, tab-separated, as UTF-8: what it must equal
        (tmp_path / "plain.txt").write_text(text, encoding="utf-8")
        original = tmp_path / "plain.txt"
    want = extract_file(fingerprint(original), PROFILES)
    got = extract_file(fingerprint(tmp_path / name), PROFILES)
    pd.testing.assert_frame_equal(
        got.rows.drop(columns=["source_file"], errors="ignore"),
        want.rows.drop(columns=["source_file"], errors="ignore"),
    )
    assert got.rows_read == want.rows_read == 12
    assert got.notices == (
        ("named .xlsx but holds CSV text: read as CSV",) if name.endswith(".xlsx") else ()
    )


def _appfolio_with(tmp_path: Path, extra: dict[str, str]) -> Path:
    """The AppFolio fixture with more columns, as real rolls have them: ``extra`` maps a header
    to the value its data rows get (unit rows only; the other rows get nothing)."""
    import csv as csv_module

    from tests.conftest import TEST_DATA

    text = (TEST_DATA / "appfolio_rent_roll.csv").read_text(encoding="utf-8")
    rows = list(csv_module.reader(io.StringIO(text)))
    out = []
    for row in rows:
        if row and row[0] == "Unit":
            out.append(row + list(extra))
        elif row and row[0].strip().isdigit() and len(row) > 2 and row[2] == "Current":
            out.append(row + list(extra.values()))
        else:
            out.append(row + [""] * len(extra))
    path = tmp_path / "appfolio_rent_roll_more.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv_module.writer(handle).writerows(out)
    return path


def test_only_known_charge_columns_are_charged_and_other_amounts_are_shown(
    tmp_path: Path,
) -> None:
    """#14 item 1: every column not on an ignore list became a charge ("Deposit Authorized"
    at 1,000.00 was charged as rent and the run exited 0)."""
    path = _appfolio_with(
        tmp_path,
        {
            "Deposit Authorized": "1,000.00",
            "Total": "9,999.00",
            "Received": "1,200.00",
            "Misc Charges": "15.00",
            "Pet Rent": "25.00",
        },
    )
    from tests.conftest import TEST_DATA

    base = extract_file(fingerprint(TEST_DATA / "appfolio_rent_roll.csv"), PROFILES)
    got = extract_file(fingerprint(path), PROFILES)
    assert set(got.charge_columns) == {"Rent", "Pet Rent"}
    # The unknown column of amounts is listed once, with what it would add; the known
    # non-charge families (deposits, totals, payments received) are not charges at all.
    assert [c["header"] for c in got.columns_not_charged] == ["Misc Charges"]
    tenants = path.read_text().count(",Current,")  # the rows that got the extra cells
    assert got.columns_not_charged[0] == {
        "header": "Misc Charges",
        "cells": tenants,
        "total_cents": 1500 * tenants,
    }
    assert len(got.rows) == len(base.rows)
    # Online, a header that names a Propexo charge code (or an alias of one) is a charge.
    online = extract_file(fingerprint(path), PROFILES, known_codes=frozenset({"misc charges"}))
    assert set(online.charge_columns) == {"Rent", "Pet Rent", "Misc Charges"}
    assert online.columns_not_charged == ()


def test_check_says_which_amount_columns_were_not_charged(tmp_path: Path) -> None:
    from tests.conftest import run_cli

    path = _appfolio_with(tmp_path, {"Misc Charges": "15.00", "Deposit Authorized": "1,000.00"})
    out = tmp_path / "check.json"
    result = run_cli("check", "--offline", "--json", str(out), str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert 'column "Misc Charges" holds amounts (24 cells, 360.00)' in result.stdout
    assert "Deposit Authorized" not in result.stdout
    checked = json.loads(out.read_text())["files"][0]
    assert checked["columns_not_charged"] == [
        {"header": "Misc Charges", "cells": 24, "total_cents": 36000}
    ]
    assert checked["source_total_cents"] == 3260990  # the fixture's Rent, nothing more


def _appfolio_without_title_period(tmp_path: Path, name: str) -> Path:
    from tests.conftest import TEST_DATA

    text = (TEST_DATA / "appfolio_rent_roll.csv").read_text(encoding="utf-8")
    path = tmp_path / name
    path.write_text(text.replace("As of: 12/01/2026", "Printed by: someone"), encoding="utf-8")
    return path


def test_a_rent_roll_with_no_period_is_refused_once(tmp_path: Path) -> None:
    """#14 item 3: the same "no billing period" line on each of ~300 rows, exit 1."""
    from tests.conftest import run_cli

    path = _appfolio_without_title_period(tmp_path, "appfolio_rent_roll.csv")
    result = run_cli("check", "--offline", str(path), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("no billing period") == 1 and "row " not in result.stdout
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("name", "month"),
    [
        ("rentroll_2027-01.csv", "2027-01-01"),
        ("RentRoll-20270115.csv", "2027-01-01"),
        ("rent roll 02.15.2027.csv", "2027-02-01"),
    ],
)
def test_the_period_may_come_from_the_file_name(tmp_path: Path, name: str, month: str) -> None:
    from tests.conftest import run_cli

    path = _appfolio_without_title_period(tmp_path, name)
    out = tmp_path / "check.json"
    result = run_cli("check", "--offline", "--json", str(out), str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    checked = json.loads(out.read_text())["files"][0]
    assert (checked["period"], checked["period_source"]) == (month, "file name")
    assert "(from the file name)" in result.stdout


def test_a_period_that_contradicts_the_title_is_refused_unless_forced(tmp_path: Path) -> None:
    from tests.conftest import TEST_DATA, run_cli

    path = TEST_DATA / "appfolio_rent_roll.csv"  # "As of: 12/01/2026"
    out = tmp_path / "check.json"
    refused = run_cli("check", "--offline", "--period", "2026-11", str(path), cwd=tmp_path)
    assert refused.returncode == 2 and "contradicts the file's own (2026-12" in refused.stderr
    agreed = run_cli("check", "--offline", "--period", "2026-12", str(path), cwd=tmp_path)
    assert agreed.returncode == 0, agreed.stderr
    forced = run_cli(
        "check",
        "--offline",
        "--period",
        "2026-11",
        "--period-override",
        "--json",
        str(out),
        str(path),
        cwd=tmp_path,
    )
    assert forced.returncode == 0, forced.stderr
    checked = json.loads(out.read_text())["files"][0]
    assert (checked["period"], checked["period_source"]) == ("2026-11-01", "--period")
    (path.parent / "appfolio_rent_roll.csv.errors.csv").unlink(missing_ok=True)


def test_a_file_whose_lines_do_not_add_up_to_its_total_row_is_refused(tmp_path: Path) -> None:
    """#14: the file's total rows are its control totals; a line read wrong shows there."""
    import openpyxl

    from tests.conftest import run_cli

    book = openpyxl.load_workbook(SAMPLES / "rent_roll.xlsx")
    sheet = book.active
    assert sheet["A59"].value == "Total" and sheet["K59"].value == 66265
    sheet["F7"] = 1341  # one rent changed, the row's and the file's totals not
    book.save(tmp_path / "rent_roll.xlsx")
    result = run_cli("check", "--offline", str(tmp_path / "rent_roll.xlsx"), cwd=tmp_path)
    assert result.returncode == 2
    assert "total row (row 59) says 66,265.00 for row totals" in result.stderr
    assert "subtotal row (row 20) says 21,755.00 for row totals" in result.stderr
    assert "add up to 66,266.00 (difference 1.00)" in result.stderr
    ok = run_cli("check", "--offline", str(SAMPLES / "rent_roll.xlsx"), cwd=tmp_path)
    assert "ties out to its own total row (row 59, row totals): 66,265.00" in ok.stdout


def test_row_kinds_come_from_shape_not_one_marker(tmp_path: Path) -> None:
    """#14 item 2, as an Excel re-save of an AppFolio roll has it: no "->" before property
    rows, the total written "Total_26Units" (with the file's sum in it), filler rows of "_",
    and a legend block below the total."""
    from tests.conftest import TEST_DATA

    text = (TEST_DATA / "appfolio_rent_roll.csv").read_text(encoding="utf-8")
    text = text.replace('"-> ', '"').replace(
        "Total 26 Units,,,,,,,,,,,", 'Total_26Units,,,,,"32,609.90",,,,,,'
    )
    text = text.replace("12 Units,,,,,,,,,,,", "12 Units,,,,,,,,,,,\n_,,,,,,,,,,,\n_,,,,,,,,,,,")
    text += ",,Vacant-Unrented,Unit is empty and not leased,,,,,,,,\n"
    text += ",,Notice-Rented,Notice given,,,,,,,,\n"
    path = tmp_path / "appfolio_resaved.csv"
    path.write_text(text, encoding="utf-8")
    want = extract_file(fingerprint(TEST_DATA / "appfolio_rent_roll.csv"), PROFILES)
    got = extract_file(fingerprint(path), PROFILES)
    pd.testing.assert_frame_equal(
        got.rows.drop(columns="source_row"), want.rows.drop(columns="source_row")
    )
    kinds = got.skipped["kind"].value_counts().to_dict()
    assert kinds["group"] == 2 and kinds["total"] == 1 and kinds["note"] == 2
    assert kinds["blank"] == 3  # the original blank row and two rows of "_"
    assert got.file_totals[0]["difference_cents"] == 0


def test_a_bad_cell_of_a_wide_roll_names_its_column_and_keeps_its_text(tmp_path: Path) -> None:
    """#14 item 5: `amount "8/1/2021" is not a number` did not say which column, nor which
    cell; the rejects file showed canonical names and only the mapped columns."""
    import openpyxl

    from tests.conftest import run_cli

    book = openpyxl.load_workbook(SAMPLES / "rent_roll.xlsx")
    sheet = book.active
    sheet["H8"] = "8/1/2021"  # Pet Rent of row 8
    sheet["K59"] = None  # no stated total, so the file is checked line by line
    book.save(tmp_path / "roll.xlsx")
    result = run_cli("check", "--offline", str(tmp_path / "roll.xlsx"), cwd=tmp_path)
    assert 'row 8, Pet Rent (H8): "8/1/2021" is not an amount' in result.stdout
    errors = (tmp_path / "roll.xlsx.errors.csv").read_text(encoding="utf-8-sig")
    header = next(csv.reader(io.StringIO(errors)))
    titles = [c.value for c in sheet[5]]  # every column, headed as the file heads them
    assert header == ["source_row", "reasons", *titles] and "Lease Start" in header
    assert '"1695"' in errors or ",1695," in errors  # the Rent cell as Excel shows it
    assert "1695.0" not in errors


RUBS_EXPORT = """Utility Billing Services - Resident Charges
Billing Month: 12/2026
,,,,,
Community,Apt,Occupant,Utility,Bill Date,Bill Amt
Oak Ridge Apartments,101,"Marrow, Dakota",Water,12/01/2026,41.17
Oak Ridge Apartments,101,"Marrow, Dakota",Sewer,12/01/2026,22.03
Oak Ridge Apartments,102,"Whitlock, Rowan",Water,12/01/2026,38.90
,,,,,
Grand Total,,,,,102.10
"""

RUBS_PROFILE = """name = "acme_rubs"
kind = "charge"
description = "A utility-billing (RUBS) charge export"
required = ["property_name", "unit", "resident_name", "charge_code", "amount"]

[columns]
property_name = ["community"]
unit = ["apt"]
resident_name = ["occupant"]
charge_code = ["utility"]
transaction_date = ["bill date"]
amount = ["bill amt"]

[charges]
mode = "rows"
"""


def test_a_new_export_is_taught_with_a_profile_file_and_no_code(tmp_path: Path) -> None:
    """#14 item 6: `check` had no --profile, and a new format took a developer."""
    from tests.conftest import run_cli

    export = tmp_path / "december.csv"
    export.write_text(RUBS_EXPORT, encoding="utf-8")
    unknown = run_cli("check", "--offline", str(export), cwd=tmp_path)
    assert unknown.returncode == 2 and "no header row matches" in unknown.stderr
    profile = tmp_path / "acme_rubs.toml"
    profile.write_text(RUBS_PROFILE, encoding="utf-8")
    out = tmp_path / "check.json"
    taught = run_cli(
        "check",
        "--offline",
        "--profile",
        str(profile),
        "--json",
        str(out),
        str(export),
        cwd=tmp_path,
    )
    assert taught.returncode == 0, taught.stdout + taught.stderr
    checked = json.loads(out.read_text())["files"][0]
    assert (checked["profile"], checked["rows_used"], checked["source_total_cents"]) == (
        "acme_rubs",
        3,
        10210,
    )
    assert checked["file_totals"][0]["difference_cents"] == 0
    # A typo in a profile is named, with its line, never silently ignored.
    profile.write_text(RUBS_PROFILE.replace('mode = "rows"', 'mode = "rows"\nmodee = 1'))
    typo = run_cli("check", "--offline", "--profile", str(profile), str(export), cwd=tmp_path)
    assert typo.returncode == 2 and "unknown key [charges] 'modee'" in typo.stderr
    assert "line 16" in typo.stderr


def test_profile_init_then_check_reads_an_unknown_export_with_no_code(tmp_path: Path) -> None:
    """#14 item 6: `tieout profile init` drafts a profile that `check --profile` then uses."""
    from tests.conftest import run_cli

    export = tmp_path / "december.csv"
    export.write_text(RUBS_EXPORT.replace("Bill Amt", "Amt Billed"), encoding="utf-8")
    assert run_cli("check", "--offline", str(export), cwd=tmp_path).returncode == 2
    drafted = run_cli("profile", "init", str(export), cwd=tmp_path)
    assert drafted.returncode == 0, drafted.stderr
    draft = tmp_path / "december.profile.toml"
    text = draft.read_text()
    assert 'amount = ["amt billed"]' in text and 'charge_code = ["utility"]' in text
    assert "# Tried on december.csv: 9 rows read, 3 data rows" in text
    out = tmp_path / "check.json"
    checked = run_cli(
        "check",
        "--offline",
        "--profile",
        str(draft),
        "--json",
        str(out),
        str(export),
        cwd=tmp_path,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    got = json.loads(out.read_text())["files"][0]
    assert (got["rows_used"], got["source_total_cents"]) == (3, 10210)
    assert got["file_totals"][0]["difference_cents"] == 0


def _single_property_roll(tmp_path: Path, title: str) -> Path:
    """The AppFolio roll cut to its first property, which only the title names."""
    from tests.conftest import TEST_DATA

    lines = (TEST_DATA / "appfolio_rent_roll.csv").read_text(encoding="utf-8").splitlines()
    end = next(i for i, line in enumerate(lines) if line.startswith("14 Units"))
    kept = [line for line in lines[: end + 1] if not line.startswith('"->')]
    kept[1] = title + ",,,,,,,,,,,"
    path = tmp_path / "oak_ridge.csv"
    path.write_text("\n".join(kept) + "\n", encoding="utf-8")
    return path


def test_a_property_stated_once_in_the_title_is_used(tmp_path: Path, refs) -> None:  # type: ignore[no-untyped-def]
    """#14 item 4: a single-property export names its property only in its title rows, and
    every row was rejected "property is missing"."""
    from pipelines.core.config import load_settings
    from pipelines.reading.profiles import profiles_for
    from pipelines.runs.files import process_file

    settings = load_settings(env={})
    path = _single_property_roll(tmp_path, "Properties: Oak Ridge Apartments")
    result = process_file(fingerprint(path), profiles_for(settings, registered()), refs, settings)
    assert result.issues == [] and len(result.records) > 0
    assert "property 'Oak Ridge Apartments' from the title, for every row" in result.extract.notices
    assert set(result.records["property_id"]) == {
        p
        for p, n in zip(refs.properties["id"], refs.properties["name"], strict=True)
        if n == "Oak Ridge Apartments"
    }
    unnamed = _single_property_roll(tmp_path, "Properties: All")
    with pytest.raises(InputError, match=r"no property: .* --property NAME"):
        process_file(fingerprint(unnamed), profiles_for(settings, registered()), refs, settings)
    given = replace(settings, property_name="Oak Ridge Apartments")
    assert (
        process_file(fingerprint(unnamed), profiles_for(given, registered()), refs, given).issues
        == []
    )


def test_a_refusal_names_the_likely_header_row_not_the_title(tmp_path: Path) -> None:
    """#14 item 5: a title merged across the sheet was listed as the "headers found"."""
    book = Workbook()
    sheet = book.active
    sheet.append(["Quarterly Report"] * 6)  # a merged title repeats its text in every cell
    sheet.append(["Foo", "Bar", "Baz", "Qux", "Amount Due", "Zed"])
    sheet.append(["a", "b", "c", "d", 12, "z"])
    book.save(tmp_path / "unknown.xlsx")
    with pytest.raises(InputError) as refused:
        extract_file(fingerprint(tmp_path / "unknown.xlsx"), PROFILES)
    message = str(refused.value)
    assert "Headers found: 'Foo', 'Bar', 'Baz', 'Qux', 'Amount Due', 'Zed'." in message
    assert "tieout profile init unknown.xlsx" in message


def test_a_row_gets_one_reason_per_distinct_problem(tmp_path: Path, refs) -> None:  # type: ignore[no-untyped-def]
    """#14 item 5: one row got 11 reasons of which 3 differed (one per charge column)."""
    import openpyxl

    from pipelines.core.config import load_settings
    from pipelines.runs.check import check_file

    book = openpyxl.load_workbook(SAMPLES / "rent_roll.xlsx")
    book.active["C8"] = "Nobody, Atall"  # a row with Rent, Parking, Pet Rent and Trash
    book.save(tmp_path / "roll.xlsx")
    checked = check_file(tmp_path / "roll.xlsx", load_settings(env={}), refs)
    (reasons,) = [r["reasons"] for r in checked.summary["rejected"] if r["source_row"] == 8]
    assert len(reasons) == 1 and '"Nobody, Atall" is not known to Propexo' in reasons[0]
    assert checked.errors_path == tmp_path / "roll.xlsx.errors.csv"
    assert not checked.errors_path.exists()  # check_file writes nothing; the CLI does
    assert checked.errors_csv is not None
    errors = checked.errors_csv.decode("utf-8-sig")
    assert errors.count('""Nobody, Atall"" is not known') == 1


def test_a_period_given_for_vendor_bills_is_never_a_contradiction() -> None:
    from datetime import date

    from pipelines.core.config import load_settings
    from pipelines.core.kind import KindContext
    from tests.conftest import TEST_DATA

    bills = extract(TEST_DATA / "generic_ap_bills.csv")
    bills = replace(bills, period=date(2026, 9, 1))  # as if its title said September
    settings = replace(load_settings(env={}), period=date(2026, 11, 1))
    kinds = registered()
    prepared, _ = kinds.source(bills.kind).prepare(bills, KindContext.of(settings, kinds))
    assert (prepared.period, prepared.period_source) == (date(2026, 9, 1), "title")


def test_a_roll_with_no_known_charge_column_is_refused_saying_so(tmp_path: Path) -> None:
    """#14: a file with no charge column is refused (exit 2) naming its header row and what
    is missing, not charged by elimination and not called an unknown format."""
    from tests.conftest import TEST_DATA, run_cli

    text = (TEST_DATA / "appfolio_rent_roll.csv").read_text(encoding="utf-8")
    path = tmp_path / "roll.csv"
    path.write_text(text.replace(",Rent,", ",Monthly Amount,"), encoding="utf-8")
    result = run_cli("check", "--offline", str(path), cwd=tmp_path)
    assert result.returncode == 2
    assert "header (row 5) reads as appfolio_rent_roll, but no column is known" in result.stderr
    assert "'Monthly Amount'" in result.stderr and "charge_codes.csv" in result.stderr


def test_a_total_that_includes_an_uncharged_column_says_so(tmp_path: Path) -> None:
    """When the row totals include a column tieout does not know as a charge, the file is not
    posted, and the refusal says the difference is that column."""
    import csv as csv_module

    from tests.conftest import TEST_DATA, run_cli

    rows = list(csv_module.reader(io.StringIO((TEST_DATA / "appfolio_itemized.csv").read_text())))
    tenants = sum(1 for r in rows if len(r) > 10 and r[3] == "Current")
    for r in rows:
        if (len(r) > 10 and r[3] == "Current") or (r and r[0] == "Total"):
            extra = 1200 * (tenants if r[0] == "Total" else 1)
            cents = round(float(r[10].replace(",", "")) * 100) + extra
            r[10] = f"{cents // 100:,}.{cents % 100:02d}"
    path = tmp_path / "itemized.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv_module.writer(handle).writerows(rows)
    result = run_cli("check", "--offline", str(path), cwd=tmp_path)
    assert result.returncode == 2
    said = " ".join(result.stderr.split())
    assert 'The difference is exactly what column "Misc Income" holds' in said, said


def test_a_single_family_row_with_no_unit_is_its_property_s_only_unit(tmp_path: Path, refs) -> None:  # type: ignore[no-untyped-def]
    """#14 item 4: single-family homes listed under their own property row with no unit were
    rejected, though they are real rent lines. The only unit is used; with several units the
    row is rejected saying so, never guessed."""
    from pipelines.core.config import load_settings
    from pipelines.reading.profiles import profiles_for
    from pipelines.runs.files import process_file

    settings = load_settings(env={})
    maple = refs.properties.loc[refs.properties["name"].eq("Maple Court"), "id"].iloc[0]
    units = refs.units
    house = units[units["property_id"].ne(maple) | units["number"].eq("101")]
    one_home = replace(refs, units=house)  # Maple Court as a single-family home: unit 101
    path = tmp_path / "homes.csv"
    path.write_text(
        "Rent Roll\nAs of: 12/01/2026\n"
        "Unit,Tenant,Status,Rent\n"
        "-> Maple Court,,,\n"
        ',"Kettering, Dakota",Current,"1,070.00"\n'
        "-> Oak Ridge Apartments,,,\n"
        ',"Marrow, Dakota",Current,"1,825.00"\n'
        'Total,,,"2,895.00"\n',
        encoding="utf-8",
    )
    result = process_file(
        fingerprint(path), profiles_for(settings, registered()), one_home, settings
    )
    assert [r for r in result.records["source_rows"]] == [[5]]
    assert int(result.records["amount_cents"].sum()) == 107000
    assert [(i.source_row, i.message) for i in result.issues] == [
        (7, "Unit (A7): no unit, and Oak Ridge Apartments has 14 units: say which")
    ]
    assert any("single-family" in n for n in result.extract.notices)
    # Propexo's Maple Court as it really is (12 units): nothing is guessed.
    many = process_file(fingerprint(path), profiles_for(settings, registered()), refs, settings)
    assert {i.source_row for i in many.issues} == {5, 7} and many.records.empty


def test_column_letters_match_excel_s() -> None:
    """Reasons point at cells by Excel's letters (A … Z, AA …, XFD), without importing a
    workbook library on every CSV."""
    from openpyxl.utils import get_column_letter

    from pipelines.reading.layout import column_letter

    labels = pd.Index(range(16384))
    assert [column_letter(labels, i) for i in range(16384)] == [
        get_column_letter(i + 1) for i in range(16384)
    ]


def test_many_rows_without_a_unit_are_checked_as_totals_in_one_pass(tmp_path: Path) -> None:
    """Every row of an export with its unit and tenant columns blank is a candidate total; each
    is checked against prefix sums (once per row, not once per row per row above it), and
    only the row that equals the lines above it is a total."""
    lines = ["Rent Roll", "As of: 12/01/2026", "Property,Unit,Tenant,Rent"]
    lines += [f"Maple Court,,,{100 + i % 7}.00" for i in range(3000)]
    lines += [f'Maple Court,101,"Kettering, Dakota",{1000 + i}.00' for i in range(3)]
    lines += [",,,12345.00"]  # equals no run of lines above it: stays data (and is rejected)
    path = tmp_path / "blank_units.csv"
    path.write_text("\n".join(lines) + "\n")
    result = extract(path)
    assert "total" not in set(result.skipped["kind"])
    assert len(result.rows) == 3000 + 3 + 1
    # The same file whose last row is the sum of its lines: a total with its label left off.
    tied_path = path.with_name("tied.csv")
    tied_path.write_text("\n".join([*lines[:-1], ",,,3003.00"]) + "\n")
    tied = extract(tied_path)
    assert tied.skipped["kind"].value_counts().get("total") == 1
    assert len(tied.rows) == 3000 + 3


def test_a_misspelled_charge_header_that_explains_the_difference_is_named_with_its_code(
    sandbox,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    """#36: a misspelled charge header ("Parkng") was never named: the file was refused as
    "totals do not tie … (difference …)" alone. Now the refusal names the column whose amounts
    are exactly the difference (among several not charged), and the command that makes it a
    charge names the Propexo code it is spelled like; followed as printed, the file ties."""
    import re
    import subprocess
    import sys

    from tests.conftest import TEST_DATA, run_cli
    from tests.test_load import env_for

    text = (TEST_DATA / "appfolio_itemized.csv").read_text(encoding="utf-8")
    path = tmp_path / "roll.csv"
    path.write_text(text.replace(",Parking,", ",Parkng,"), encoding="utf-8")
    data = tmp_path / "data"
    env = env_for(sandbox, data)
    result = run_cli("--data-dir", str(data), "check", str(path), env=env)
    assert result.returncode == 2, result.stdout + result.stderr
    said = " ".join(result.stderr.split())
    assert 'The difference is exactly what column "Parkng" holds' in said, said
    assert "Misc Income" not in said.split("The difference")[1]
    command = re.search(r"run: (tieout .*?alias add charge_code .*?) \(it adds", said)
    assert command is not None and command.group(1).endswith('"Parkng" "Parking"'), said
    followed = subprocess.run(
        ["bash", "-c", command.group(1).replace("tieout", f"{sys.executable} -m pipelines", 1)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert followed.returncode == 0, followed.stdout + followed.stderr
    again = run_cli("--data-dir", str(data), "check", str(path), env=env)
    assert "do not tie" not in again.stdout + again.stderr, again.stdout + again.stderr


@pytest.mark.parametrize(
    ("headers", "what"),
    [
        (["Unit", "Unit Type", "Days Vacant", "Market Rent"], "vacancy report"),
        (["Account", *[f"{m} 2024" for m in ("Jan", "Feb", "Mar", "Apr", "May", "Jun")]], "budget"),
        (["Prospect", "Unit", "Lead Source", "Rent"], "leasing activity report"),
        (["Account", "Date", "Description", "Debit", "Credit"], "general ledger"),
        (["WO #", "Unit", "Category", "Priority", "Cost"], "work order log"),
        (["Unit", "Resident", "Census Days"], "census"),
        (["Unit", "Resident", "Home Phone", "Email"], "tenant directory"),
        (["Unit", "Resident", "Per Diem", "Care Level"], "daily rates"),
    ],
)
def test_a_report_that_is_not_an_input_is_known_by_its_columns_alone(
    headers: list[str], what: str
) -> None:
    """#38: with no title to go by, the header shows what the file is."""
    from pipelines.reading.grain import not_an_input

    finding = not_an_input([], headers)
    assert finding is not None and what in finding.message


@pytest.mark.parametrize(
    ("title", "headers"),
    [
        (["Rent Roll - Occupied and Vacant Units", "As of 01/31/2024"], ["Unit", "Tenant", "Rent"]),
        (["Rent Roll with Lease Charges", "Lakeview Terrace (lake)"], ["Unit", "Name", "Amount"]),
        (["Resident Charges"], ["Unit", "Resident", "Monthly Rate", "Daily Rate"]),
        ([], ["Unit", "Tenant", "Status", "Rent", "Deposit", "Move In", "Lease To"]),
    ],
)
def test_a_rent_roll_is_never_taken_for_a_report_that_is_not_an_input(
    title: list[str], headers: list[str]
) -> None:
    from pipelines.reading.grain import not_an_input

    assert not_an_input(title, headers) is None


def test_a_report_read_by_a_profile_is_refused_only_by_its_title() -> None:
    """A header a profile reads is not second-guessed by its columns, only by its title."""
    from pipelines.reading.grain import not_an_input

    assert not_an_input([], ["Unit", "Tenant", "Days Vacant", "Rent"], read=True) is None
    found = not_an_input(["Vacancy Report"], ["Unit", "Tenant", "Rent"], read=True)
    assert found is not None and found.message.startswith("this is a vacancy report")


def _roll_csv(tmp_path: Path, body: list[list[str]]) -> Path:
    """tieout's own rent roll template (title, header, rows)."""
    rows = [["Rent Roll"], ["As of 01/31/2024"], ["Property", "Unit", "Resident", "Rent"], *body]
    path = tmp_path / "roll.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)
    return path


def test_a_lone_second_resident_row_belongs_to_the_unit_above(tmp_path: Path) -> None:
    """#38: a resident's row with no unit, right under a resident's row with one, is a second
    resident of that unit, not "unit is missing"; after a total row it is not."""
    path = _roll_csv(
        tmp_path,
        [
            ["Maple Court", "101", "Kettering, Dakota", "1,250.00"],
            ["Maple Court", "", "Kettering, Sam", "300.00"],
            ["Maple Court", "102", "Ashby, Rowan", "1,300.00"],
            ["Total", "", "", "2,850.00"],
            ["Maple Court", "", "Brant, Casey", "10.00"],
        ],
    )
    rows = extract(path).rows
    assert rows["unit"].tolist()[:3] == ["101", "101", "102"]
    assert pd.isna(rows["unit"].iloc[3]) or str(rows["unit"].iloc[3]).strip() == ""


def test_a_stray_cell_below_the_total_row_is_neither_a_line_nor_a_total(tmp_path: Path) -> None:
    """#38: a figure left one row below the file's total row is skipped as a note; the total
    row above it is the one that ties."""
    path = _roll_csv(
        tmp_path,
        [
            ["Maple Court", "101", "Kettering, Dakota", "1,250.00"],
            ["Maple Court", "102", "Ashby, Rowan", "1,300.00"],
            ["Totals For Maple Court", "", "", "2,550.00"],
            ["", "", "", "14"],
        ],
    )
    result = extract(path)
    assert result.rows["source_row"].tolist() == [4, 5]
    assert result.skipped.set_index("source_row").loc[7, "kind"] == "note"
    (total,) = result.file_totals
    assert (total["source_row"], total["stated_cents"], total["difference_cents"]) == (6, 255000, 0)


def test_the_senior_living_roll_reads_its_second_resident_and_skips_the_vacant() -> None:
    from pipelines.core.columns import any_match

    result = extract(TEST_DATA / "shape_senior_living.xlsx")
    assert result.header_rows == (3, 4)
    assert "Accommodation Monthly" in result.charge_columns
    assert "Accommodation Per Period" not in result.charge_columns
    second = result.rows[result.rows["resident_name"].str.endswith("Avery")]
    above = result.rows[result.rows["source_row"] == int(second["source_row"].iloc[0]) - 1]
    assert second["unit"].tolist() == above["unit"].tolist()[:1]
    vacant = result.rows[result.rows["resident_name"].eq("*Vacant")]
    assert len(vacant) == 1 and any_match(vacant["resident_name"], result.vacant_patterns).all()
    assert set(result.rows["property_name"]) == {"Lakeview Terrace"}
    assert str(result.period) == "2024-01-01"


ORDERS = [("Report1", "Copy"), ("Copy", "Report1"), ("Notes", "Copy", "Report1")]


@pytest.mark.parametrize("order", ORDERS)
def test_the_export_s_own_sheet_is_read_whatever_the_sheet_order(
    order: tuple[str, ...], tmp_path: Path
) -> None:
    """#38: of a workbook's sheets a profile reads equally, the one with the title block, the
    total row and the most rows is the export; a hand-edited copy of it is never read."""
    from openpyxl import load_workbook

    source = load_workbook(TEST_DATA / "shape_export_and_copy.xlsx")
    export, copy = source["Report1"], source["Copy"]
    wb = Workbook()
    wb.remove(wb.active)
    for name in order:
        sheet = wb.create_sheet(name)
        rows = {"Report1": export, "Copy": copy}.get(name)
        for row in rows.iter_rows(values_only=True) if rows is not None else [["see Report1"]]:
            sheet.append(list(row))
    path = tmp_path / "summary.xlsx"
    wb.save(path)
    expected = json.loads((TEST_DATA / "shape_export_and_copy.xlsx.expected.json").read_text())
    result = extract(path)
    assert result.sheet == "Report1"
    assert len(result.rows) == expected["rows_used"]


months = st.integers(min_value=1, max_value=12)
years = st.integers(min_value=2000, max_value=2099)


@given(months, years, st.integers(min_value=1, max_value=28), st.sampled_from(["\n", "\r\n"]))
def test_the_period_is_read_from_each_way_a_title_states_it(
    month: int, year: int, day: int, newline: str
) -> None:
    """Property (#38): "Period: 01/24", "Period = 01/2024", and "As of Date: … 12:00:00 AM" on
    a line of a title cell of several lines all name the same month."""
    from datetime import date

    from pipelines.reading.extract import find_period
    from pipelines.reading.profiles import Profile
    from pipelines.reading.shapes import title_block_lines

    patterns = Profile(name="", kind="", description="", columns={}, required=()).period_patterns
    want = date(year, month, 1)
    assert (
        find_period(f"Rent Roll Charges Summary Period: {month:02d}/{year % 100:02d}", patterns)
        == want
    )
    assert find_period(f"Period = {month}/{year}", patterns) == want
    cell = f"Resident Rent Roll{newline}Lakeview Terrace{newline}As of Date: {month}/{day}/{year} 12:00:00 AM"
    lines = title_block_lines(pd.DataFrame([[cell, cell]]))
    assert lines[1] == "Lakeview Terrace"
    assert find_period(" ".join(lines), patterns) == want


@given(st.integers(min_value=-(10**9), max_value=10**9))
def test_money_written_with_four_decimals_reads_to_the_cent(cents: int) -> None:
    """Property (#38): a self-storage export writes "238.0000"; as text or as a number it is
    the same cents, never rejected for its trailing zeros."""
    from decimal import Decimal

    from pipelines.core.parsing import parse_money

    text = f"{Decimal(cents) / 100:.4f}"
    parsed, errors = parse_money(pd.Series([text, float(Decimal(text))], dtype=object))
    assert parsed.tolist() == [cents, cents]
    assert errors.isna().all()


def test_a_property_whose_name_says_budget_is_not_a_budget() -> None:
    from pipelines.reading.grain import not_an_input

    assert not_an_input(["Budget Self Storage", "As of 01/31/2024"], ["Unit", "Tenant"]) is None
    found = not_an_input(["Operating Budget 2024"], ["Account", "Jan", "Feb"], read=True)
    assert found is not None and "12-month budget" in found.message


def test_voyager_s_own_charge_names_resolve_through_aliases_to_the_file_s_totals(refs) -> None:  # type: ignore[no-untyped-def]
    """#38: the Charges Summary under Voyager's own column names posts, column by column,
    exactly its charged columns' totals once a clerk aliases its names to Propexo's codes
    (``tieout alias add charge_code "Second Person" Rent`` …); the Residency Fee is not."""
    from pipelines.core.config import load_settings
    from pipelines.reading.profiles import profiles_for
    from pipelines.runs.files import process_file

    name = "shape_yardi_charges_summary_voyager.xlsx"
    codes = pd.DataFrame(
        {
            "spreadsheet_name": [
                "Second Person",
                "Other Charges",
                "Rent Concession",
                "Other Concession",
            ],
            "propexo_name": ["Rent", "Trash", "Concession", "Concession"],
        }
    )
    refs = replace(refs, aliases={**refs.aliases, "charge_codes": codes})
    settings = load_settings(env={})
    result = process_file(
        fingerprint(TEST_DATA / name), profiles_for(settings, registered()), refs, settings
    )
    assert result.issues == []
    expected = json.loads((TEST_DATA / f"{name}.expected.json").read_text())
    assert int(result.records["amount_cents"].sum()) == expected["source_total_cents"]
    stated = {t["column"]: t["stated_cents"] for t in expected["file_totals"]}
    assert expected["source_total_cents"] == sum(v for k, v in stated.items() if k != "row totals")
