"""Generate the fixtures of #38's layout proposals in tests/data/ (files of no known layout).

    python tests/data/make_proposal_fixtures.py

Each fixture gets a sidecar ``<name>.expected.json``: the proposal's roles by header, and the
rows and total of the file's own total row, computed here from what was written. Names come
from the synthetic sandbox seed, so the fixtures also resolve online.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEED = json.loads((HERE.parent.parent / "data" / "sandbox" / "seed.json").read_text())


def tenants(property_name: str) -> list[tuple[str, str, str]]:
    """(unit number, last name, first name) of each leased unit of one seeded property."""
    prop = next(p for p in SEED["properties"] if p["name"] == property_name)
    units = {u["id"]: u["number"] for u in SEED["units"] if u["property_id"] == prop["id"]}
    people = {r["id"]: r for r in SEED["residents"]}
    out = []
    for lease in SEED["leases"]:
        if lease["unit_id"] in units:
            person = people[lease["residents_meta_data"][0]["resident_id"]]
            out.append((units[lease["unit_id"]], person["last_name"], person["first_name"]))
    return sorted(out)


def money(cents: int) -> str:
    return f"{cents // 100:,}.{cents % 100:02d}"


def write(name: str, rows: list[list[object]], **expected: object) -> None:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    (HERE / name).write_text(buffer.getvalue(), encoding="utf-8")
    (HERE / f"{name}.expected.json").write_text(json.dumps(expected, indent=1) + "\n")


def senior_flat_roll(name: str, people: slice, month: str) -> None:
    """A flat senior-living roll: a care-level column (AL/IL/MC) before the names, first and
    last name in two columns, and two columns holding the same money ("Actual Rate" and
    "Apartment Charges (<month>)"): charging both would double the rent."""
    header = ["Community", "Apt", "Care Level", "Last Name", "First Name", "Move In",
              "Actual Rate", f"Apartment Charges ({month})", "Deposit", "Balance"]
    rows: list[list[object]] = [["Sunny Acres Senior Living"], [f"Rent Roll for {month}"], [],
                                header]
    care = ["AL", "IL", "MC", "AL", "IL", "AL", "IL"]
    rate_total = deposit_total = balance_total = 0
    chosen = tenants("Oak Ridge Apartments")[people]
    for i, (unit, last, first) in enumerate(chosen):
        rate = 385_000 + 12_500 * i
        deposit = 100_000 if i % 2 == 0 else 0
        balance = 2_500 * (i % 3)
        rate_total += rate
        deposit_total += deposit
        balance_total += balance
        rows.append(["Oak Ridge Apartments", unit, care[i % len(care)], last, first, "06/01/2025",
                     money(rate), money(rate), money(deposit), money(balance)])
    rows.append(["Totals", "", "", "", "", "", money(rate_total), money(rate_total),
                 money(deposit_total), money(balance_total)])
    write(name, rows, rows_used=len(chosen), total_cents=rate_total,
          roles={"Community": "property", "Apt": "unit", "Care Level": "not_charged",
                 "Last Name": "resident", "First Name": "resident", "Move In": "not_charged",
                 "Actual Rate": "charge", f"Apartment Charges ({month})": "not_charged",
                 "Deposit": "not_charged", "Balance": "not_charged"},
          stated={"Actual Rate": rate_total, "Deposit": deposit_total, "Balance": balance_total})


def unknown_system_roll(name: str, people: slice, month: str) -> None:
    """A roll of a system no profile knows: Rent, Parking, Deposit and Balance columns, a
    per-row "Total Due", headers no profile names (Bldg, Space, Occupant)."""
    header = ["Bldg", "Space", "Occupant", "Rent", "Parking", "Deposit", "Balance", "Total Due"]
    rows: list[list[object]] = [["Harbor PMS"], ["Resident Charges Summary"],
                                [f"Period: {month}"], header]
    sums = dict.fromkeys(["Rent", "Parking", "Deposit", "Balance", "Total Due"], 0)
    chosen = tenants("Riverside Lofts")[people]
    lines = 0
    for i, (unit, last, first) in enumerate(chosen):
        rent = 141_000 + 3_500 * i
        parking = 7_500 if i % 2 == 0 else 0
        deposit = 50_000
        balance = 0 if i % 3 else 12_550
        lines += 1 + (parking > 0)
        for key, cents in zip(sums, (rent, parking, deposit, balance, rent + parking)):
            sums[key] += cents
        rows.append(["Riverside Lofts", unit, f"{last}, {first}", money(rent),
                     money(parking) if parking else "", money(deposit), money(balance),
                     money(rent + parking)])
    rows.append(["Grand Total", "", ""] + [money(v) for v in sums.values()])
    write(name, rows, rows_used=len(chosen), total_cents=sums["Rent"] + sums["Parking"],
          lines=lines, rent_cents=sums["Rent"],
          rent_lines=len(chosen),
          roles={"Bldg": "property", "Space": "unit", "Occupant": "resident", "Rent": "charge",
                 "Parking": "charge", "Deposit": "not_charged", "Balance": "not_charged",
                 "Total Due": "not_charged"},
          stated={k: v for k, v in sums.items()})


if __name__ == "__main__":
    senior_flat_roll("proposal_senior_flat_roll.csv", slice(0, 7), "December 2026")
    unknown_system_roll("proposal_unknown_system.csv", slice(0, 6), "December 2026")
    unknown_system_roll("proposal_unknown_system_jan.csv", slice(6, 10), "January 2027")
