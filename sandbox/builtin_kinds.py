"""The kinds the sandbox serves out of the box, declared through ``sandbox.kinds``: invoices
(one POST, read back at once) and resident charges (single, batch and credits, seen after a
dated sync). How Rent Manager judges each write is in ``sandbox.writes``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sandbox.kinds import Check, Issue, SandboxKind, Write
from sandbox.writes import Writes

if TYPE_CHECKING:
    from sandbox.app import Sandbox


def has_invoice_items(body: Any) -> list[Issue]:
    """An invoice needs at least one line (the schema alone allows an empty list)."""
    if body.get("invoice_items"):
        return []
    return [
        {
            "code": "too_small",
            "minimum": 1,
            "type": "array",
            "inclusive": True,
            "path": ["invoice_items"],
            "message": "Array must contain at least 1 element(s)",
        }
    ]


def positive_amount(body: Any) -> list[Issue]:
    """A credit's amount is given positive (it is stored negative)."""
    if body["amount_in_cents"] > 0:
        return []
    return [
        {
            "code": "too_small",
            "minimum": 0,
            "exclusive": True,
            "path": ["amount_in_cents"],
            "message": "Number must be greater than 0",
        }
    ]


def in_location(sandbox: Sandbox, params: dict[str, str]) -> list[Check]:
    """``location_id``: records whose property is in that location."""
    if "location_id" not in params:
        return []
    wanted, loc_of = params["location_id"], sandbox.location_of_property()
    return [lambda r: loc_of.get(r.get("property_id", "")) == wanted]


def dated_between(sandbox: Sandbox, params: dict[str, str]) -> list[Check]:
    """``transaction_date_start``/``_end``: days, both ends inclusive."""
    checks: list[Check] = []
    start, end = params.get("transaction_date_start"), params.get("transaction_date_end")
    if start:
        checks.append(lambda r: str(r.get("transaction_date") or "")[:10] >= start[:10])
    if end:
        checks.append(lambda r: str(r.get("transaction_date") or "")[:10] <= end[:10])
    return checks


INVOICES = SandboxKind(
    name="invoice",
    sync_model="invoices",
    list_route="/v1/invoices/",
    writes=(
        Write(
            "/v1/invoices/rentmanager/",
            "CREATE_INVOICE",
            Writes.write_invoice,
            check=has_invoice_items,
            failed_but_applied=False,  # as before: --failed-but-applied spares invoices
        ),
    ),
    filters=("integration_id", "property_id", "integration_vendor"),
    query=in_location,
    cached_at_once=True,
)

RESIDENT_CHARGES = SandboxKind(
    name="charge",
    sync_model="resident_charges",
    list_route="/v1/resident-charges/",
    writes=(
        Write(
            "/v1/resident-charges/batch/rentmanager/",
            "CREATE_RESIDENT_CHARGES_BATCH",
            Writes.write_charge_batch,
        ),
        Write("/v1/resident-charges/rentmanager/", "CREATE_RESIDENT_CHARGE", Writes.write_charge),
        Write(
            "/v1/resident-credits/rentmanager/",
            "CREATE_RESIDENT_CREDIT",
            Writes.write_credit,
            check=positive_amount,
        ),
    ),
    filters=("integration_id", "property_id", "resident_id", "lease_id", "integration_vendor"),
    query=dated_between,
    dated_by="transaction_date",
    label=lambda record: "credit" if record.get("_credit") else "charge",
    other_labels=("credit",),
)

BUILT_IN_KINDS = (INVOICES, RESIDENT_CHARGES)
