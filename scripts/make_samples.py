"""Generate the synthetic sample inputs and the matching sandbox seed (deterministic).

    python scripts/make_samples.py

Writes data/sandbox/seed.json, data/samples/vendor_bills.csv and data/samples/rent_roll.xlsx.
Every name is made up; any likeness to a real person or business is chance. Keys that start
with an underscore are the sandbox's own bookkeeping (which RM location a property, unit, vendor,
charge code or GL account belongs to); the API never shows them.
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
from pathlib import Path

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font

from pipelines.resolving.refs import REF_KINDS

ROOT = Path(__file__).resolve().parent.parent
INTEGRATION = "int_rm_demo"
rng = random.Random(20261120)


def pid(kind: str, *parts: object) -> str:
    """A stable cuid-like Propexo id."""
    digest = hashlib.sha256("|".join([kind, *map(str, parts)]).encode()).hexdigest()
    return f"c{kind[:3]}{digest[:21]}"


LOCATIONS = [("1", "Northside Portfolio"), ("2", "Riverside Portfolio")]
PROPERTIES = [
    ("OAK", "Oak Ridge Apartments", "1", "Springfield", 14),
    ("MAPLE", "Maple Court", "1", "Springfield", 12),
    ("RIVER", "Riverside Lofts", "2", "Riverton", 12),
    ("LAKE", "Lakeview Terrace", "2", "Riverton", 10),
]
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
    "Harper",
    "Logan",
    "Parker",
    "Reese",
    "Skyler",
    "Taylor",
    "Dakota",
    "Hayden",
    "Jamie",
    "Kendall",
    "Blake",
    "Cameron",
    "Drew",
    "Elliot",
    "Frankie",
    "Gray",
    "Hollis",
    "Indy",
    "Jules",
    "Kai",
]
LAST = [
    "Alder",
    "Birchwood",
    "Calloway",
    "Dunmore",
    "Ellery",
    "Fairbanks",
    "Garrow",
    "Hadley",
    "Ivers",
    "Jessup",
    "Kettering",
    "Lindqvist",
    "Marrow",
    "Northam",
    "Oakhurst",
    "Pembry",
    "Quill",
    "Radcliffe",
    "Stroud",
    "Thistle",
    "Underhill",
    "Vance",
    "Whitlock",
    "Yardley",
]
VENDORS = [
    ("ACME Plumbing LLC", ["1", "2"]),
    ("Brightline Electric Inc.", ["1", "2"]),
    ("Greenway Landscaping", ["1", "2"]),
    ("City Water & Sewer", ["1", "2"]),
    ("Summit Waste Services", ["1", "2"]),
    ("Keystone HVAC Co.", ["1"]),
    ("Harbor Pest Control", ["2"]),
]
GL = [
    ("5100", "Repairs & Maintenance"),
    ("5200", "Landscaping"),
    ("5300", "Utilities - Water"),
    ("5310", "Utilities - Electric"),
    ("5400", "Trash Removal"),
    ("5500", "HVAC Service"),
    ("5600", "Pest Control"),
    ("2100", "Accounts Payable"),
]
CHARGE_CODES = [
    ("RENT", "Rent"),
    ("PARK", "Parking"),
    ("PET", "Pet Rent"),
    ("TRASH", "Trash"),
    ("CONC", "Concession"),
]
STAMP = "2026-10-01T00:00:00.000Z"


def base(
    kind: str, key: tuple[object, ...], x_id: str, property_id: str | None
) -> dict[str, object]:
    record: dict[str, object] = {
        "id": pid(kind, *key),
        "x_id": x_id,
        "integration_id": INTEGRATION,
        "integration_vendor": "RENTMANAGER",
        "created_at": STAMP,
        "updated_at": STAMP,
        "last_seen": STAMP,
    }
    if property_id is not None:
        record["property_id"] = property_id
    return record


def build() -> tuple[dict[str, list[dict[str, object]]], list[dict[str, object]]]:
    seed: dict[str, list[dict[str, object]]] = {k: [] for k in ("integrations", *REF_KINDS)}
    seed["integrations"].append(
        {
            "id": INTEGRATION,
            "integration_vendor": "RENTMANAGER",
            "name": "Greenleaf PM (Rent Manager)",
        }
    )
    loc_ids = {}
    for x_id, name in LOCATIONS:
        rec = base("location", (x_id,), x_id, None)
        rec["name"] = name
        loc_ids[x_id] = rec["id"]
        seed["locations"].append(rec)
    first_prop_of_loc: dict[str, str] = {}
    tenants: list[dict[str, object]] = []
    used_names: set[tuple[str, str]] = set()
    for n, (code, name, loc, city, n_units) in enumerate(PROPERTIES, start=1):
        prop = base("property", (code,), str(n), None)
        prop_id = str(prop["id"])
        prop.update(
            {
                "property_id": prop_id,
                "name": name,
                "code": code,
                "address_1": f"{100 + n * 10} Main St",
                "city": city,
                "state": "IL",
                "zip": f"6270{n}",
                "is_active": True,
                "type_normalized": "MULTI_FAMILY",
                "number_of_units": n_units,
                "_location_id": loc_ids[loc],
            }
        )
        seed["properties"].append(prop)
        first_prop_of_loc.setdefault(loc, prop_id)
        for u in range(n_units):
            number = f"{(u // 6 + 1)}{(u % 6 + 1):02d}"
            unit = base("unit", (code, number), f"{n}-{number}", prop_id)
            unit.update(
                {
                    "number": number,
                    "building_name": None,
                    "is_vacant": False,
                    "_location_id": loc_ids[loc],
                }
            )
            seed["units"].append(unit)
            vacant = rng.random() < 0.08
            if vacant:
                unit["is_vacant"] = True
                tenants.append({"property": name, "unit": number, "vacant": True, "loc": loc})
                continue
            while True:
                first, last = rng.choice(FIRST), rng.choice(LAST)
                if (first, last) not in used_names:
                    used_names.add((first, last))
                    break
            res = base("resident", (code, number), f"R{n}{number}", prop_id)
            lease = base("lease", (code, number), f"L{n}{number}", prop_id)
            res.update(
                {
                    "first_name": first,
                    "middle_name": None,
                    "last_name": last,
                    "email_1": f"{first.lower()}.{last.lower()}@example.com",
                    "phone_1": None,
                    "balance_in_cents": 0,
                    "leases_meta_data": [
                        {
                            "lease_id": lease["id"],
                            "x_resident_type": "Primary",
                            "resident_type_normalized": "PRIMARY",
                            "move_in_date": "2025-06-01",
                            "move_out_date": None,
                            "notice_date": None,
                        }
                    ],
                }
            )
            lease.update(
                {
                    "unit_id": unit["id"],
                    "unit_number": number,
                    "status_normalized": "ACTIVE",
                    "status_raw": "Current",
                    "start_date": "2025-06-01",
                    "end_date": "2027-05-31",
                    "balance_amount_in_cents": 0,
                    "residents_meta_data": [
                        {
                            "resident_id": res["id"],
                            "resident_type_normalized": "PRIMARY",
                            "move_in_date": "2025-06-01",
                            "move_out_date": None,
                        }
                    ],
                }
            )
            seed["residents"].append(res)
            seed["leases"].append(lease)
            tenants.append(
                {
                    "property": name,
                    "unit": number,
                    "first": first,
                    "last": last,
                    "vacant": False,
                    "loc": loc,
                }
            )
    for vname, locs in VENDORS:
        for loc in locs:
            rec = base(
                "vendor",
                (vname, loc),
                f"V{loc}{len(seed['vendors']) + 1:03d}",
                first_prop_of_loc[loc],
            )
            rec.update(
                {
                    "name": vname,
                    "x_location_id": loc,
                    "_location_id": loc_ids[loc],
                    "is_active": True,
                    "type": "Vendor",
                    "account_number": None,
                }
            )
            seed["vendors"].append(rec)
    for loc, loc_id in loc_ids.items():
        for number, name in GL:
            rec = base(
                "financial_account", (loc, number), f"G{loc}{number}", first_prop_of_loc[loc]
            )
            rec.update(
                {
                    "account_number": number,
                    "name": name,
                    "x_location_id": loc,
                    "_location_id": loc_id,
                    "status_raw": "Active",
                }
            )
            seed["financial_accounts"].append(rec)
        for code, name in CHARGE_CODES:
            rec = base("charge_code", (loc, code), f"C{loc}{code}", first_prop_of_loc[loc])
            rec.update(
                {
                    "name": name,
                    "description": f"{name} ({code})",
                    "x_location_id": loc,
                    "_location_id": loc_id,
                    "debit_gl_account": "1100",
                    "credit_gl_account": "4100",
                }
            )
            seed["charge_codes"].append(rec)
    return seed, tenants


def money(cents: int, style: str) -> str:
    dollars, rem = divmod(abs(cents), 100)
    if style == "dollar":
        text = f"${dollars:,}.{rem:02d}"
    elif style == "comma":
        text = f"{dollars:,}.{rem:02d}"
    else:
        text = f"{dollars}.{rem:02d}" if rem else f"{dollars}"
    return f"({text})" if cents < 0 else text


def write_bills(path: Path) -> int:
    props_by_loc = {
        "1": ["Oak Ridge Apartments", "Maple Court"],
        "2": ["Riverside Lofts", "Lakeview Terrace"],
    }
    plan = [  # vendor, loc, gl, description, number of lines
        ("ACME Plumbing LLC", "1", "5100", "Water heater replacement", 3),
        ("ACME Plumbing LLC", "2", "5100", "Drain line clearing", 2),
        ("Brightline Electric Inc.", "1", "5310", "Common area lighting repair", 2),
        ("Brightline Electric Inc.", "2", "5310", "Panel inspection", 1),
        ("Greenway Landscaping", "1", "5200", "November grounds service", 2),
        ("Greenway Landscaping", "2", "5200", "November grounds service", 2),
        ("City Water & Sewer", "1", "5300", "Water/sewer service Oct", 2),
        ("City Water & Sewer", "2", "5300", "Water/sewer service Oct", 2),
        ("Summit Waste Services", "2", "5400", "Dumpster service Nov", 2),
        ("Keystone HVAC Co.", "1", "5500", "Boiler maintenance", 3),
        ("Harbor Pest Control", "2", "5600", "Quarterly pest treatment", 2),
        ("Summit Waste Services", "1", "5400", "Bulk pickup", 1),
    ]
    rows: list[list[str]] = [
        ["Greenleaf Property Management - AP Bill Export", "", "", "", "", "", "", ""],
        ["Bills entered 11/01/2026 - 11/18/2026", "", "", "", "", "", "", ""],
        ["", "", "", "", "", "", "", ""],
        [
            "Vendor",
            "Invoice #",
            "Invoice Date",
            "Due Date",
            "Property",
            "GL Account",
            "Description",
            "Amount",
        ],
    ]
    total = 0
    styles = ["dollar", "comma", "plain"]
    for n, (vendor, loc, gl, desc, lines) in enumerate(plan, start=1):
        inv_no = f"{rng.choice(['INV', 'B', 'W'])}-{2026110 + n * 7:07d}"
        day = 2 + n
        inv_date = f"11/{day:02d}/2026" if n % 3 else f"2026-11-{day:02d}"
        due = "" if n % 4 == 0 else f"12/{day:02d}/2026"
        amounts = [rng.randrange(4_500, 185_000) for _ in range(lines)]
        if lines >= 2 and n % 5 == 0:
            amounts[-1] = -rng.randrange(1_000, 4_000)  # a credit line on a positive bill
        for i, cents in enumerate(amounts):
            prop = props_by_loc[loc][(n + i) % 2]
            line_desc = desc if i == 0 else f"{desc} - part {i + 1}"
            if cents < 0:
                line_desc = "Discount for early payment"
            rows.append(
                [
                    vendor,
                    inv_no,
                    inv_date,
                    due,
                    prop,
                    gl,
                    line_desc,
                    money(cents, styles[(n + i) % 3]),
                ]
            )
            total += cents
    rows.append(["", "", "", "", "", "", "", ""])
    rows.append(["Total", "", "", "", "", "", "", money(total, "dollar")])
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)
    return total


def write_rent_roll(path: Path, tenants: list[dict[str, object]]) -> int:
    wb = Workbook()
    ws = wb.active
    ws.title = "Rent Roll"
    ws.append(["Greenleaf Property Management"])
    ws.merge_cells("A1:K1")
    ws["A1"].font = Font(bold=True, size=14)
    ws.append(["Rent Roll - Charges for December 2026"])
    ws.append(["As of: 12/01/2026"])
    ws.append([])
    header = [
        "Property",
        "Unit",
        "Resident",
        "Status",
        "Lease Start",
        "Rent",
        "Parking",
        "Pet Rent",
        "Trash",
        "Concession",
        "Total",
    ]
    ws.append(header)
    for cell in ws[5]:
        cell.font = Font(bold=True)
        cell.alignment = Alignment(horizontal="center")
    total = 0
    current = None
    subtotal = 0
    count = 0

    def close_property() -> None:
        ws.append(
            [
                f"Subtotal: {current}",
                f"{count} Units",
                None,
                None,
                None,
                None,
                None,
                None,
                None,
                None,
                subtotal / 100,
            ]
        )

    for t in tenants:
        if t["property"] != current:
            if current is not None:
                close_property()
            current, subtotal, count = t["property"], 0, 0
        count += 1
        if t["vacant"]:
            ws.append([t["property"], t["unit"], "VACANT", "Vacant", None, 0, 0, 0, 0, 0, 0])
            continue
        rent = rng.randrange(95_000, 185_000, 500)
        parking = rng.choice([0, 0, 5_000, 7_500])
        pet = rng.choice([0, 0, 0, 3_500])
        trash = 2_500
        conc = -rng.choice([5_000, 10_000]) if rng.random() < 0.12 else 0
        line_total = rent + parking + pet + trash + conc
        subtotal += line_total
        total += line_total
        ws.append(
            [
                t["property"],
                t["unit"],
                f"{t['last']}, {t['first']}",
                "Current",
                "06/01/2025",
                rent / 100,
                parking / 100 or None,
                pet / 100 or None,
                trash / 100,
                conc / 100 or None,
                line_total / 100,
            ]
        )
    close_property()
    ws.append([])
    ws.append(["Total", None, None, None, None, None, None, None, None, None, total / 100])
    for row in ws.iter_rows(min_row=6, min_col=6, max_col=11):
        for cell in row:
            cell.number_format = "#,##0.00;(#,##0.00)"
    wb.properties.creator = "tieout sample generator"
    wb.save(path)
    return total


def main() -> None:
    seed, tenants = build()
    (ROOT / "data" / "sandbox").mkdir(parents=True, exist_ok=True)
    (ROOT / "data" / "sandbox" / "seed.json").write_text(json.dumps(seed, indent=1) + "\n")
    bills = write_bills(ROOT / "data" / "samples" / "vendor_bills.csv")
    roll = write_rent_roll(ROOT / "data" / "samples" / "rent_roll.xlsx", tenants)
    residents = sum(1 for t in tenants if not t["vacant"])
    print(
        f"seed: {sum(len(v) for v in seed.values())} records; bills total {bills} cents; "
        f"rent roll total {roll} cents over {residents} residents"
    )


if __name__ == "__main__":
    main()
