"""Seeded generators for the benchmarks' large synthetic inputs (nothing here is real)."""

from __future__ import annotations

import csv
import random
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.resolving.refs import REF_KINDS, RefData, build_reference_data

FIRST = [
    "Avery",
    "Jordan",
    "Casey",
    "Riley",
    "Morgan",
    "Quinn",
    "Rowan",
    "Sage",
    "Emerson",
    "Finley",
]
LAST = ["Alder", "Birchwood", "Calloway", "Dunmore", "Ellery", "Fairbanks", "Garrow", "Hadley"]
CODES = ["Rent", "Parking", "Pet Rent", "Trash", "Storage", "Utilities"]


def big_seed(
    properties: int = 8, units_per_property: int = 1250
) -> dict[str, list[dict[str, Any]]]:
    """Reference lists as Propexo returns them: 2 locations, properties x units residents."""
    lists: dict[str, list[dict[str, Any]]] = {k: [] for k in REF_KINDS}
    for loc in (1, 2):
        lists["locations"].append({"id": f"loc{loc}", "x_id": str(loc), "name": f"Portfolio {loc}"})
        for code in CODES:
            lists["charge_codes"].append(
                {"id": f"cc{loc}-{code}", "name": code, "x_location_id": str(loc)}
            )
        for n in range(40):
            lists["vendors"].append(
                {
                    "id": f"v{loc}-{n}",
                    "x_id": f"V{loc}{n}",
                    "name": f"Vendor {n} LLC",
                    "x_location_id": str(loc),
                }
            )
        for number in (5100, 5200, 5300, 5400):
            lists["financial_accounts"].append(
                {
                    "id": f"gl{loc}-{number}",
                    "account_number": str(number),
                    "name": f"Expense {number}",
                    "x_location_id": str(loc),
                }
            )
    for p in range(properties):
        loc = 1 + p % 2
        prop_id = f"p{p}"
        lists["properties"].append(
            {"id": prop_id, "name": f"Property {p}", "code": f"P{p}", "location_id": f"loc{loc}"}
        )
        for u in range(units_per_property):
            unit_id, res_id = f"u{p}-{u}", f"r{p}-{u}"
            lists["units"].append({"id": unit_id, "number": str(100 + u), "property_id": prop_id})
            lists["residents"].append(
                {
                    "id": res_id,
                    "first_name": FIRST[u % 10],
                    "last_name": f"{LAST[u % 8]}{u}",
                    "property_id": prop_id,
                }
            )
            lists["leases"].append(
                {
                    "id": f"l{p}-{u}",
                    "unit_id": unit_id,
                    "property_id": prop_id,
                    "status_normalized": "ACTIVE",
                    "residents_meta_data": [{"resident_id": res_id}],
                }
            )
    return lists


def big_refs(lists: dict[str, list[dict[str, Any]]]) -> RefData:
    return build_reference_data(lists, {})


def charge_csv(path: Path, rows: int, lists: dict[str, list[dict[str, Any]]], seed: int = 1) -> int:
    """A long charge sheet (tieout_charges profile); returns its total in cents."""
    rng = np.random.default_rng(seed)
    residents = pd.DataFrame(lists["residents"])
    units = pd.DataFrame(lists["units"])
    props = pd.DataFrame(lists["properties"]).set_index("id")["name"]
    pick = rng.integers(0, len(residents), rows)
    chosen = residents.iloc[pick].reset_index(drop=True)
    cents = rng.integers(100, 250_000, rows)
    frame = pd.DataFrame(
        {
            "Property": chosen["property_id"].map(props).to_numpy(),
            "Unit": units["number"].iloc[pick].to_numpy(),
            "Resident": (chosen["last_name"] + ", " + chosen["first_name"]).to_numpy(),
            "Charge Code": np.array(CODES)[rng.integers(0, len(CODES), rows)],
            "Amount": [f"{c // 100:,}.{c % 100:02d}" for c in cents],
            "Transaction Date": "12/01/2026",
        }
    )
    path.write_text("Charges export\n\n", encoding="utf-8")
    with path.open("a", encoding="utf-8", newline="") as handle:
        frame.to_csv(handle, index=False, quoting=csv.QUOTE_MINIMAL)
    return int(cents.sum())


def bill_csv(path: Path, lines: int, lists: dict[str, list[dict[str, Any]]], seed: int = 2) -> int:
    """A vendor bill export in our template, ~5 lines per invoice; returns its total in cents."""
    rng = random.Random(seed)
    props = lists["properties"]
    total = 0
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "Vendor",
                "Invoice #",
                "Invoice Date",
                "Due Date",
                "Property",
                "GL Account",
                "Description",
                "Amount",
            ]
        )
        for i in range(lines):
            invoice = i // 5
            prop = props[(invoice * 2) % len(props)]  # one location per invoice
            cents = rng.randrange(100, 500_000)
            total += cents
            writer.writerow(
                [
                    f"Vendor {invoice % 40} LLC",
                    f"B-{invoice:07d}",
                    "11/03/2026",
                    "",
                    prop["name"],
                    str(5100 + 100 * (i % 4)),
                    "service",
                    f"${cents / 100:,.2f}",
                ]
            )
    return total


def bills_for_seed(
    path: Path, seed: dict[str, Any], invoices: int, prefix: str = "BENCH", first: int = 0
) -> None:
    """A vendor bill export of ``invoices`` two-line invoices over the seed's vendors and
    properties (one location per invoice), numbered ``<prefix>-<first + n>``."""
    props: dict[str, list[str]] = {p["_location_id"]: [] for p in seed["properties"]}
    for p in seed["properties"]:
        props[p["_location_id"]].append(p["name"])
    vendors = [(v["name"], v["_location_id"]) for v in seed["vendors"]]
    lines = ["Vendor,Invoice #,Invoice Date,Due Date,Property,GL Account,Description,Amount"]
    for n in range(first, first + invoices):
        name, loc = vendors[n % len(vendors)]
        for k in range(2):
            lines.append(
                f'"{name}",{prefix}-{n:06d},11/03/2026,,{props[loc][k % len(props[loc])]},'
                f"5100,line {k},{(n % 900) + 10}.{k:02d}"
            )
    path.write_text("\n".join(lines) + "\n")
