"""Matching ledger records to Propexo's, unit by unit: each outcome from frames made here
(matched, mismatched with what differs, duplicated, found by content after a renumbering,
and the three kinds of not found), the fast path of grouping agreeing with the slow one, and
the counts a reconcile reports."""

from __future__ import annotations

from typing import Any

import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from pipelines.kinds.charge.matching import by_reference, match_charges
from pipelines.kinds.invoice.matching import match_invoices
from pipelines.reconciling.proof import AWAITING, PROVEN, UNVERIFIABLE
from pipelines.reconciling.reconcile import DETAIL_COLUMNS, summarize


def ours(*rows: tuple[str, int, str, str], resident: str = "r1") -> pd.DataFrame:
    """The ledger's charges: (reference, cents, date, code)."""
    return pd.DataFrame(
        {
            "record_key": [f"charge:int:{ref}" for ref, *_ in rows],
            "kind": ["charge" if cents >= 0 else "credit" for _, cents, *_ in rows],
            "reference_number": [ref for ref, *_ in rows],
            "amount_cents": [cents for _, cents, *_ in rows],
            "transaction_date": [date for _, _, date, _ in rows],
            "charge_code_id": [code for *_, code in rows],
            "resident_id": resident,
        }
    )


def theirs(*rows: tuple[Any, int, str, str], resident: str = "r1") -> pd.DataFrame:
    """Propexo's charges: (reference, cents, date, code), ids p0, p1, …"""
    return pd.DataFrame(
        {
            "id": [f"p{i}" for i in range(len(rows))],
            "reference_number": [ref for ref, *_ in rows],
            "amount_in_cents": [cents for _, cents, *_ in rows],
            "transaction_date": [f"{date}T00:00:00Z" for _, _, date, _ in rows],
            "charge_code_id": [code for *_, code in rows],
            "resident_id": resident,
        }
    )


def outcomes(frame: pd.DataFrame) -> list[tuple[str, str]]:
    return list(zip(frame["outcome"], frame["note"], strict=True))


def test_each_difference_is_named_once_in_order_of_what_matters_most() -> None:
    ledger = ours(
        ("TO1", 1000, "2026-03-01", "RENT"),
        ("TO2", 1000, "2026-03-01", "RENT"),
        ("TO3", 1000, "2026-03-01", "RENT"),
        ("TO4", 1000, "2026-03-01", "RENT"),
    )
    synced = theirs(
        ("TO1", 1000, "2026-03-01", "RENT"),
        ("TO2", 900, "2026-03-02", "PET"),
        ("TO3", 1000, "2026-03-02", "PET"),
        ("TO4", 1000, "2026-03-01", "PET"),
    )
    result = match_charges(ledger, synced)
    assert list(result.columns) == DETAIL_COLUMNS
    assert outcomes(result) == [
        ("matched", ""),
        ("mismatched", "amount in Propexo 900 ≠ posted 1000"),
        ("mismatched", "transaction date in Propexo 2026-03-02T00:00:00Z ≠ posted 2026-03-01"),
        ("mismatched", "charge code differs"),
    ]
    assert result["propexo_id"].tolist() == ["p0", "p1", "p2", "p3"]
    assert result["found_amount_cents"].tolist() == [1000, 900, 1000, 1000]


def test_a_reference_found_twice_is_duplicated() -> None:
    result = match_charges(
        ours(("TO1", 1000, "2026-03-01", "RENT")),
        theirs(("TO1", 1000, "2026-03-01", "RENT"), ("TO1", 1000, "2026-03-01", "RENT")),
    )
    assert outcomes(result) == [("duplicated", "found 2 times in Propexo")]


def test_a_renumbered_charge_is_found_by_its_content_one_for_one() -> None:
    ledger = ours(
        ("TO1", 1000, "2026-03-01", "RENT"),
        ("TO2", 1000, "2026-03-01", "RENT"),
        ("TO3", 1000, "2026-03-01", "RENT"),
    )
    # Two records with the content, renumbered in Rent Manager; the third line has no twin.
    synced = theirs(
        ("RM-9", 1000, "2026-03-01", "RENT"),
        ("RM-8", 1000, "2026-03-01", "RENT"),
        ("TO1", 5, "2026-03-01", "RENT"),
    )
    result = match_charges(ledger.iloc[1:].reset_index(drop=True), synced)
    renumbered = "matched by content: the reference number was changed in Rent Manager"
    assert outcomes(result) == [("matched", renumbered), ("matched", renumbered)]
    assert sorted(result["propexo_id"]) == ["p0", "p1"]
    assert result["found_amount_cents"].tolist() == [1000, 1000]
    # A record carrying one of our own numbers is never taken as another's twin.
    twins = ours(("TO1", 5, "2026-03-01", "RENT"), ("TO2", 5, "2026-03-01", "RENT"))
    alone = match_charges(twins, theirs(("TO1", 5, "2026-03-01", "RENT")))
    assert alone["outcome"].tolist() == ["matched", "awaiting_sync"]


def test_not_found_is_awaiting_unverifiable_or_missing_by_the_sync_s_verdict() -> None:
    ledger = ours(
        ("TO1", 1, "2026-03-01", "RENT"),
        ("TO2", 1, "2026-03-01", "RENT"),
        ("TO3", 1, "2026-03-01", "RENT"),
    )
    verdict = pd.Series([AWAITING, UNVERIFIABLE, PROVEN])
    result = match_charges(ledger, theirs(("X", 7, "2020-01-01", "PET"), resident="r9"), verdict)
    assert outcomes(result) == [
        ("awaiting_sync", "no complete sync since it was posted"),
        ("unverifiable", "outside the date window of every sync since"),
        ("missing", ""),
    ]
    # No verdict at all: nothing is proven.
    assert set(match_charges(ledger, theirs(("X", 7, "2020-01-01", "PET")))["outcome"]) == {
        "awaiting_sync"
    }


def test_nothing_in_the_ledger_is_no_rows_with_every_column() -> None:
    empty = match_charges(ours(), theirs(("TO1", 1, "2026-03-01", "RENT")))
    assert empty.empty and list(empty.columns) == DETAIL_COLUMNS


REFS = st.sampled_from(["TO1", "TO2", "TO3", None])


@given(st.lists(st.tuples(REFS, st.integers(0, 5)), min_size=1, max_size=12))
def test_the_fast_path_of_grouping_by_reference_agrees_with_grouping(
    rows: list[tuple[str | None, int]],
) -> None:
    synced = theirs(*[(ref, cents, "2026-03-01", "RENT") for ref, cents in rows])
    unique = synced.drop_duplicates("reference_number")
    fast = by_reference(unique).sort_values("reference_number").reset_index(drop=True)
    slow = by_reference(unique, grouped=True).sort_values("reference_number").reset_index(drop=True)
    pd.testing.assert_frame_equal(fast, slow, check_dtype=False)
    counted = by_reference(synced, grouped=True).set_index("reference_number")["n"]
    expected = synced["reference_number"].dropna().value_counts()
    assert counted.sort_index().tolist() == expected.sort_index().tolist()


def invoices(*rows: tuple[str, str, int, str | None]) -> pd.DataFrame:
    """The ledger's invoices: (vendor id, invoice number, cents, created record id)."""
    return pd.DataFrame(
        {
            "record_key": [f"invoice:int:{v}:{n}" for v, n, _, _ in rows],
            "kind": "invoice",
            "vendor_id": [v for v, _, _, _ in rows],
            "invoice_number": [n for _, n, _, _ in rows],
            "amount_cents": [c for _, _, c, _ in rows],
            "created_record_id": [r for *_, r in rows],
        }
    )


def synced_invoices(*rows: tuple[str, str, str, int]) -> pd.DataFrame:
    """Propexo's invoices: (id, x_vendor_id, invoice number, cents)."""
    return pd.DataFrame(
        {
            "id": [i for i, _, _, _ in rows],
            "x_vendor_id": [x for _, x, _, _ in rows],
            "invoice_number": [n for _, _, n, _ in rows],
            "total_amount_in_cents": [c for *_, c in rows],
        }
    )


def test_invoices_are_matched_by_vendor_and_number_or_by_the_id_propexo_gave() -> None:
    ledger = invoices(
        ("v1", "INV-1", 1000, None),
        ("v1", "INV-2", 1000, None),
        ("v2", "INV-3", 1000, "inv_77"),  # renumbered in Rent Manager: found by its id
        ("v2", "INV-4", 1000, None),
        ("v9", "INV-5", 1000, None),  # a vendor Propexo has no x id for
    )
    synced = synced_invoices(
        ("inv_1", "10", "INV-1", 1000),
        ("inv_2", "10", "INV-2", 999),
        ("inv_77", "20", "INV-3-RENAMED", 1000),
        ("inv_4a", "20", "INV-4", 1000),
        ("inv_4b", "20", "INV-4", 1000),
    )
    result = match_invoices(ledger, synced, {"v1": "10", "v2": "20"})
    assert outcomes(result) == [
        ("matched", ""),
        ("mismatched", "total in Propexo 999 ≠ posted 1000"),
        ("matched", ""),
        ("duplicated", "found 2 times in Propexo"),
        ("awaiting_sync", "no complete sync since it was posted"),
    ]
    assert result["propexo_id"].tolist()[:3] == ["inv_1", "inv_2", "inv_77"]
    assert match_invoices(invoices(), synced, {}).empty


def test_a_reconcile_counts_each_outcome_and_totals_what_matched() -> None:
    first = pd.DataFrame(
        {
            "record_key": ["a", "b", "c"],
            "kind": "charge",
            "outcome": ["matched", "matched", "missing"],
            "propexo_id": ["p1", "p2", None],
            "amount_cents": [100, 250, 7],
            "found_amount_cents": [100, 250, None],
            "note": "",
        }
    )
    second = first.assign(outcome=["duplicated", "unverifiable", "awaiting_sync"])
    result = summarize([first, second, pd.DataFrame(columns=DETAIL_COLUMNS)], unexpected=4)
    assert (result.matched, result.missing, result.duplicated) == (2, 1, 1)
    assert (result.unverifiable, result.awaiting_sync, result.mismatched) == (1, 1, 0)
    assert result.unexpected == 4
    assert result.matched_total_cents == 350
    assert len(result.details) == 6
    nothing = summarize([], unexpected=0)
    assert nothing.matched == 0 and nothing.details.empty
    assert list(nothing.details.columns) == DETAIL_COLUMNS
