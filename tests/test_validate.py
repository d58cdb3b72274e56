from __future__ import annotations

from pathlib import Path

from pipelines.core.models import IssueCode
from pipelines.kinds import registered
from pipelines.reading.extract import extract_file
from pipelines.reading.grids import fingerprint
from pipelines.reading.profiles import BUILTIN_PROFILES_DIR, load_profiles
from tests.conftest import SAMPLES, write_bills

PROFILES = load_profiles(BUILTIN_PROFILES_DIR, kinds=registered())


def validated(path: Path):  # type: ignore[no-untyped-def]
    return registered().validate(extract_file(fingerprint(path), PROFILES))


def test_samples_are_all_valid() -> None:
    bills = validated(SAMPLES / "vendor_bills.csv")
    assert bills.issues == [] and len(bills.valid) == 24
    assert int(bills.valid["amount_cents"].sum()) == 2140363
    roll = validated(SAMPLES / "rent_roll.xlsx")
    assert roll.issues == []
    assert int(roll.valid["amount_cents"].sum()) == 6626500
    assert set(roll.skipped["kind"]) == {"vacant"}


def test_every_bad_row_gets_a_reason_naming_column_and_value(tmp_path: Path) -> None:
    path = write_bills(
        tmp_path / "bills.csv",
        [
            "ACME Plumbing LLC,A-1,11/03/2026,,Maple Court,5100,ok,10.00",
            "ACME Plumbing LLC,A-2,11/03/2026,,Maple Court,5100,too precise,12.345",
            "ACME Plumbing LLC,A-3,1/1/1970,,Maple Court,5100,sentinel,5.00",
            ",A-4,11/03/2026,,Maple Court,5100,no vendor,5.00",
            "ACME Plumbing LLC,A-5,11/03/2026,someday,Maple Court,5100,bad due,abc",
        ],
    )
    result = validated(path)
    by_row: dict[int, list[str]] = {}
    for issue in result.issues:
        by_row.setdefault(issue.source_row, []).append(issue.message)
    # Each reason names the file's own column and the cell, as Excel would show it.
    assert by_row[3] == ['Amount (H3): "12.345" has more than 2 decimals']
    assert by_row[4] == ['Invoice Date (C4): "1/1/1970" is a placeholder, not a real date']
    assert by_row[5] == ["Vendor (A5): vendor is missing"]
    assert sorted(by_row[6]) == [
        'Amount (H6): "abc" is not an amount',
        'Due Date (D6): "someday" is not a date',
    ]
    assert list(result.valid["source_row"]) == [2]
    codes = {i.code for i in result.issues}
    assert {IssueCode.BAD_AMOUNT, IssueCode.BAD_DATE, IssueCode.MISSING_VALUE} <= codes


def test_rent_roll_without_a_period_is_rejected_with_instructions(tmp_path: Path) -> None:
    path = tmp_path / "charges.csv"
    path.write_text(
        'Property,Unit,Resident,Charge Code,Amount\nMaple Court,101,"Doe, Jan",Rent,100\n'
    )
    result = validated(path)
    assert len(result.issues) == 1
    assert "--period YYYY-MM" in result.issues[0].message


def test_every_check_of_the_line_schemas_has_words_and_every_column_a_title() -> None:
    """#17: reasons came from parsing pandera's printed check (one release could change every
    reject reason); now from each check's stable name, mapped to words in one place."""
    from pipelines.kinds.charge.schemas import ResidentCharge
    from pipelines.kinds.invoice.schemas import VendorBill
    from schemas.common import CHECK_WORDS

    for model in (VendorBill, ResidentCharge):
        for name, column in model.to_schema().columns.items():
            assert column.title, f"{model.__name__}.{name} has no title"
            for check in column.checks:
                assert check.name in CHECK_WORDS, f"{model.__name__}.{name}: {check.name}"


def test_a_failed_check_is_said_from_its_name_and_statistics() -> None:
    import pandas as pd

    from pipelines.kinds.charge.schemas import ResidentCharge
    from pipelines.reading.validate import schema_issues

    frame = pd.DataFrame(
        {
            "source_row": [2, 3, 4],
            "property_name": ["Maple " * 50, "Maple", "Maple"],
            "unit": ["1", None, "2"],
            "resident_name": ["Ann", "Bo", "Cy"],
            "charge_code": ["rent", "rent", "rent"],
            "transaction_date": ["2026-12-01", "2026-12-01", "12/1/2026"],
            "notes": [None, None, None],
            "reference_number": [None, None, None],
            "amount_cents": pd.array([100, 0, 5], dtype="Int64"),
        }
    )
    said = {
        (i.source_row, i.code.value, i.message)
        for i in schema_issues(ResidentCharge, frame, "f.csv", set())
    }
    assert (2, "SCHEMA_CHECK", f'property "{"Maple " * 50}" is longer than 200 characters') in said
    assert (3, "MISSING_VALUE", "unit is missing") in said
    assert (3, "SCHEMA_CHECK", "amount is zero") in said
    assert (4, "SCHEMA_CHECK", 'transaction date "12/1/2026" is not in the expected form') in said
