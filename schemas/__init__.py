"""The column contract: pandera models of each source kind's lines, resolved lines and
payloads, and the canonical columns a source profile may map (``SOURCE_COLUMNS``)."""

from __future__ import annotations

from schemas import charges, vendor_bill

# source kind → the canonical columns a profile maps headers onto (what extract reads; the
# models validate what they become)
SOURCE_COLUMNS: dict[str, tuple[str, ...]] = {
    "vendor_bill": vendor_bill.SOURCE_COLUMNS,
    "charge": charges.SOURCE_COLUMNS,
}
