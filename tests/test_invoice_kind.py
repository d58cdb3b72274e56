"""The built-in kinds' own modules, directly (the charge kind's validation at the end): its columns, its validation of bill lines, and how
its records are matched to Propexo's (by created_record_id, else by vendor and number)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd

from pipelines.core.kind import KindContext
from pipelines.kinds import registered
from pipelines.kinds.charge.columns import ATTRIBUTES as CHARGE_ATTRIBUTES
from pipelines.kinds.charge.validate import validate_charges
from pipelines.kinds.invoice.columns import ATTRIBUTES
from pipelines.kinds.invoice.matching import match_invoices
from pipelines.kinds.invoice.transform import transform_bills
from pipelines.kinds.invoice.validate import validate_bills
from pipelines.reading.extract import extract_file
from pipelines.reading.grids import fingerprint
from pipelines.reading.profiles import BUILTIN_PROFILES_DIR, load_profiles
from pipelines.reconciling.proof import PROVEN
from pipelines.resolving.refs import RefData
from tests.conftest import SAMPLES, write_bills


def test_an_invoice_and_a_charge_declare_their_own_matched_columns() -> None:
    names = {c.name for c in ATTRIBUTES}
    assert {"invoice_number", "vendor_id"} <= names
    assert "reference_number" not in names  # a charge's, not an invoice's
    assert "reference_number" in {c.name for c in CHARGE_ATTRIBUTES}
    assert all(c.matched for c in ATTRIBUTES if c.name in ("invoice_number", "vendor_id"))


def test_bill_lines_validate_with_the_bill_dates_and_ignore_the_period(tmp_path: Path) -> None:
    profiles = load_profiles(BUILTIN_PROFILES_DIR, kinds=registered())
    sample = validate_bills(extract_file(fingerprint(SAMPLES / "vendor_bills.csv"), profiles), None)
    assert sample.issues == [] and len(sample.valid) == 24
    path = write_bills(
        tmp_path / "b.csv",
        [
            "ACME Plumbing LLC,A-1,11/03/2026,,Maple Court,5100,ok,10.00",
            "ACME Plumbing LLC,A-2,not a date,,Maple Court,5100,bad,10.00",
        ],
    )
    result = validate_bills(extract_file(fingerprint(path), profiles), None)
    assert list(result.valid["source_row"]) == [2]
    assert [i.source_row for i in result.issues] == [3]
    assert "not a date" in result.issues[0].message


def _ledger(*rows: tuple[str, str, str, int, str | None]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "record_key": f"invoice:{number}",
                "kind": "invoice",
                "vendor_id": vendor,
                "invoice_number": number,
                "amount_cents": cents,
                "created_record_id": created,
                "x": x,
            }
            for vendor, number, x, cents, created in rows
        ]
    )


def _synced(*rows: tuple[str, str, str, int]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"id": i, "x_vendor_id": x, "invoice_number": n, "total_amount_in_cents": c}
            for i, x, n, c in rows
        ],
        columns=["id", "x_vendor_id", "invoice_number", "total_amount_in_cents"],
    )


def test_invoices_match_by_vendor_and_number_or_by_the_created_id() -> None:
    ledger = _ledger(
        ("v1", "A-1", "X1", 1000, None),  # found by (vendor, number), same total
        ("v1", "A-2", "X1", 2000, None),  # found, another total
        ("v1", "A-3", "X1", 3000, None),  # twice in Propexo
        ("v2", "A-1", "X2", 4000, "p9"),  # number changed in the PMS: found by its id
        ("v2", "A-5", "X2", 5000, None),  # not there, and a sync proves it
    )
    synced = _synced(
        ("p1", "X1", "A-1", 1000),
        ("p2", "X1", "A-2", 2100),
        ("p3", "X1", "A-3", 3000),
        ("p4", "X1", "A-3", 3000),
        ("p9", "X2", "A-1-renamed", 4000),
    )
    verdict = pd.Series([PROVEN] * len(ledger), index=ledger.index)
    rows = match_invoices(ledger, synced, {"v1": "X1", "v2": "X2"}, verdict)
    assert rows["outcome"].tolist() == ["matched", "mismatched", "duplicated", "matched", "missing"]
    assert rows["propexo_id"].tolist()[:2] == ["p1", "p2"]
    assert rows["propexo_id"].tolist()[3] == "p9"
    assert rows["note"].tolist()[1] == "total in Propexo 2100 ≠ posted 2000"
    assert rows["note"].tolist()[2] == "found 2 times in Propexo"


def test_without_a_proving_sync_an_absent_invoice_awaits_one() -> None:
    ledger = _ledger(("v1", "A-9", "X1", 900, None))
    rows = match_invoices(ledger, _synced(), {"v1": "X1"})
    assert rows["outcome"].tolist() == ["awaiting_sync"]
    assert rows["note"].tolist() == ["no complete sync since it was posted"]
    assert match_invoices(ledger.iloc[0:0], _synced(), {}).empty


def test_bills_group_into_one_invoice_per_vendor_and_number_with_due_date_defaulted(
    refs: RefData, tmp_path: Path
) -> None:
    """transform_bills, directly: two lines of one bill are one invoice whose total foots; a
    bill without a due date is due ``due_days_default`` days after its date; one line with an
    unknown GL account holds back its whole invoice."""
    profiles = load_profiles(BUILTIN_PROFILES_DIR, kinds=registered())
    path = write_bills(
        tmp_path / "b.csv",
        [
            "ACME Plumbing LLC,T-1,11/03/2026,,Maple Court,5100,one,10.00",
            "ACME Plumbing LLC,T-1,11/03/2026,,Maple Court,5100,two,2.50",
            "ACME Plumbing LLC,T-2,11/03/2026,12/01/2026,Maple Court,5100,fine,7.00",
            "ACME Plumbing LLC,T-2,11/03/2026,12/01/2026,Maple Court,9999,bad gl,1.00",
        ],
    )
    lines = validate_bills(extract_file(fingerprint(path), profiles), None)
    ctx = KindContext(registered(), "int_rm_demo", refs=refs, due_days_default=10)
    result = transform_bills(lines, refs, ctx, str(path), None)
    assert result.records["invoice_number"].tolist() == ["T-1"]
    (payload,) = result.records["payload"].tolist()
    assert payload["total_amount_in_cents"] == 1250
    assert sorted(i["amount_in_cents"] for i in payload["invoice_items"]) == [250, 1000]
    assert str(payload["due_date"]).startswith("2026-11-13")
    held = sorted({i.source_row for i in result.issues})
    assert held == [4, 5]  # the bad line, and the good line of its invoice


def test_a_wide_rent_roll_becomes_one_line_per_charge_and_vacant_units_are_skipped() -> None:
    """The charge kind's validate_charges, directly: the sample roll's charge columns melt
    into lines that foot to the roll's total; a vacant unit is skipped, never lost."""
    profiles = load_profiles(BUILTIN_PROFILES_DIR, kinds=registered())
    extract = extract_file(fingerprint(SAMPLES / "rent_roll.xlsx"), profiles)
    assert extract.charge_columns  # a wide roll: one column per charge code
    assert validate_charges(extract, None).issues  # no date on the roll, no period given
    result = validate_charges(extract, date(2026, 12, 1))
    assert result.issues == []
    assert int(result.valid["amount_cents"].sum()) == 6626500
    assert set(result.valid["charge_code"]) <= set(extract.charge_columns)
    assert set(result.skipped["kind"]) == {"vacant"}
    assert result.valid["source_row"].is_monotonic_increasing
