"""Reference data: staff alias files, and the columns read back from Propexo."""

from __future__ import annotations

from pathlib import Path

from pipelines.refs import CHARGE_FIELDS, INVOICE_FIELDS, MAPPING_FILES, read_aliases


def test_alias_files_are_read_per_kind_and_a_malformed_one_is_left_out(tmp_path: Path) -> None:
    (tmp_path / "vendors.csv").write_text(
        "# how our bills spell them\nspreadsheet_name,propexo_name\nACME,Acme Plumbing LLC\n"
    )
    (tmp_path / "properties.csv").write_text("name,other\nx,y\n")  # wrong header: ignored
    aliases = read_aliases(tmp_path)
    assert set(aliases) == {"vendors"}
    assert aliases["vendors"].to_dict("records") == [
        {"spreadsheet_name": "ACME", "propexo_name": "Acme Plumbing LLC"}
    ]
    assert read_aliases(None) == {} and "charge_codes" in MAPPING_FILES


def test_the_columns_read_back_hold_what_matching_and_proof_of_absence_need() -> None:
    """One list, from the synced models (refs.py kept a second copy that could drift)."""
    for needed in (
        ["id", "x_vendor_id", "invoice_number", "total_amount_in_cents"],
        ["id", "reference_number", "amount_in_cents", "transaction_date"],
    ):
        fields = INVOICE_FIELDS if "x_vendor_id" in needed else CHARGE_FIELDS
        assert set(needed) | {"created_at", "updated_at", "last_seen"} <= set(fields)
