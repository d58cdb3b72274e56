"""Generate the export-quirk fixtures in tests/data/ and what each must read as.

    python tests/data/make_fixtures.py

Each fixture gets a sidecar ``<name>.expected.json`` with the row accounting and the total in
cents, computed here from what was written (not by reading the file back). Names come from the
synthetic sandbox seed, so the fixtures also resolve online.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from pathlib import Path

from openpyxl import Workbook

HERE = Path(__file__).resolve().parent
SEED = json.loads((HERE.parent.parent / "data" / "sandbox" / "seed.json").read_text())


def tenants(property_name: str) -> list[tuple[str, str | None]]:
    """(unit number, 'Last, First' or None when vacant) for one seeded property."""
    prop = next(p for p in SEED["properties"] if p["name"] == property_name)
    units = sorted((u for u in SEED["units"] if u["property_id"] == prop["id"]), key=lambda u: u["number"])
    by_unit = {lease["unit_id"]: lease["residents_meta_data"][0]["resident_id"] for lease in SEED["leases"]}
    people = {r["id"]: r for r in SEED["residents"]}
    out = []
    for unit in units:
        person = people.get(by_unit.get(unit["id"], ""))
        out.append((unit["number"], f"{person['last_name']}, {person['first_name']}" if person else None))
    return out


def money(cents: int, style: str = "comma") -> str:
    text = f"{abs(cents) // 100:,}.{abs(cents) % 100:02d}" if style == "comma" else f"{abs(cents) / 100:.2f}"
    return f"({text})" if cents < 0 else text


def expect(name: str, **facts: object) -> None:
    (HERE / f"{name}.expected.json").write_text(json.dumps(facts, indent=1) + "\n")


def appfolio() -> None:
    header = ["Unit", "Tenant", "Status", "Sqft", "Market Rent", "Rent", "Deposit", "Lease From",
              "Lease To", "Move-in", "Move-out", "Past Due"]
    rows: list[list[object]] = [["Rent Roll"], ["Properties: All"], ["As of: 12/01/2026"], [], header]
    total = used = skipped_vacant = 0
    for n, prop in enumerate(["Oak Ridge Apartments", "Riverside Lofts"]):
        rows.append([f"-> {prop} - {100 + n} Main St Springfield, IL 62701"])
        count = 0
        for i, (unit, person) in enumerate(tenants(prop)):
            count += 1
            if person is None:
                rows.append([unit, "", "Vacant-Unrented", 850, "1,900.00", "0.00", "0.00"])
                skipped_vacant += 1
                continue
            rent = 120_000 + 2_500 * i + 99 * n
            rows.append([unit, person, "Current", 850, "1,900.00", money(rent), "500.00", "06/01/2025",
                         "05/31/2027", "06/01/2025", "", "0.00"])
            total += rent
            used += 1
        rows.append([f"{count} Units", "", "", "", "", "", ""])
    rows.append([f"Total {sum(1 for r in rows if r and str(r[0]).isdigit())} Units"])
    width = len(header)
    padded = [list(r) + [""] * (width - len(r)) for r in rows]
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(padded)
    (HERE / "appfolio_rent_roll.csv").write_text(buffer.getvalue(), encoding="utf-8")
    facts = {"profile": "appfolio_rent_roll", "rows_read": len(rows), "rows_used": used,
             "rows_rejected": 0, "rows_skipped": len(rows) - used, "source_total_cents": total,
             "skipped": {"vacant": skipped_vacant}}
    expect("appfolio_rent_roll.csv", **facts)
    # The same roll as a workbook: numeric cells, merged group rows, an accounting number format.
    wb = Workbook()
    ws = wb.active
    ws.title = "Rent Roll"
    for row in padded:
        cells: list[object] = []
        for value in row:
            text = str(value)
            cells.append(float(text.replace(",", "")) if text.replace(",", "").replace(".", "").isdigit()
                         and "." in text else value)
        ws.append([c if c != "" else None for c in cells])
        if str(row[0]).startswith("->"):
            ws.merge_cells(start_row=ws.max_row, start_column=1, end_row=ws.max_row, end_column=width)
    for row in ws.iter_rows(min_row=6, min_col=5, max_col=7):
        for cell in row:
            cell.number_format = "#,##0.00;(#,##0.00)"
    notes = wb.create_sheet("Notes")
    notes.append(["Exported from AppFolio; synthetic data"])
    wb.save(HERE / "appfolio_rent_roll.xlsx")
    expect("appfolio_rent_roll.xlsx", **facts)


def yardi() -> None:
    wb = Workbook()
    ws = wb.active
    ws.title = "Report1"
    header = ["Unit", "Unit Type", "Unit Sq Ft", "Resident", "Name", "Market Rent", "Charge Code",
              "Amount", "Resident Deposit", "Lease Number", "Move In", "Lease Expiration", "Balance"]
    for line in (["Rent Roll with Lease Charges"], ["As Of = 12/01/2026"], ["Month Year = 12/2026"], []):
        ws.append(line)
    ws.append(header)
    total = used = vacant = 0
    read = 5
    for prop, code in (("Lakeview Terrace", "lake"), ("Maple Court", "maple")):
        ws.append([f"{prop} ({code})"])
        read += 1
        for i, (unit, person) in enumerate(tenants(prop)):
            if person is None:
                ws.append([unit, "2br", 900, "", "VACANT", 1500.0, None, None])
                read += 1
                vacant += 1
                continue
            rent = 140_000 + 1_000 * i
            charges = [("rent", rent), ("pet", 3_500)] if i % 3 == 0 else [("rent", rent)]
            if i % 4 == 1:
                charges.append(("conc", -5_000))  # a concession: a credit
            lease_number = f"{100000000000000 + i}"
            for j, (charge_code, cents) in enumerate(charges):
                amount: object = cents / 100 if j == 0 else money(cents)  # number, then text
                if j == 0:
                    ws.append([unit, "2br", 900, f"t{i:07d}", person, 1500.0, charge_code, amount, 500.0,
                               lease_number, "6/1/2025 12:00:00 AM", 46173, 0.0])
                else:
                    ws.append([None, None, None, None, None, None, charge_code, amount])
                read += 1
                used += 1
                total += cents
            ws.append([None, None, None, None, None, None, "Total", sum(c for _, c in charges) / 100])
            read += 1
    ws.append(["Grand Total", None, None, None, None, None, None, total / 100])
    read += 1
    wb.save(HERE / "yardi_rent_roll.xlsx")
    expect("yardi_rent_roll.xlsx", profile="yardi_rent_roll", rows_read=read, rows_used=used,
           rows_rejected=0, rows_skipped=read - used, source_total_cents=total,
           skipped={"vacant": vacant})


def generic_ap() -> None:
    lines = [
        ["Accounts Payable - Open Bills Export"],
        ["Printed 11/18/2026 4:05 PM"],
        ["Payee Name", "Bill Reference", "Bill Date", "Due Date", "Property Code", "GL Code", "Memo",
         "Line Amount"],
        ["Greenway Landscaping", "0324", "9/30/25", "10/30/25", "OAK", "5200", "Pruning – east lot", "1,200.00"],
        ["Greenway Landscaping", "0324", "9/30/25", "10/30/25", "MAPLE", "5200", "Mulch", "238.0000"],
        ["Greenway Landscaping", "0324", "9/30/25", "10/30/25", "MAPLE", "5200", "Crédit – early pay", "(45.00)"],
        ["City Water & Sewer", "WS-771", "2026-11-05T00:00:00Z", "", "RIVER", "5300", "Water", "$814"],
        ["City Water & Sewer", "WS-771", "2026-11-05T00:00:00Z", "", "LAKE", "5300", "Sewer", "497.1"],
        ["Summit Waste Services", "SW 9", "11/07/2026", "12/07/2026", "LAKE", "5400", "Refuse", "256.99"],
        ["Total for Summit Waste Services", "", "", "", "", "", "", "256.99"],
        ["Report Total", "", "", "", "", "", "", "2,961.09"],
        ["* Amounts in USD. Bills on hold are not listed."],
    ]
    width = 8
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=";", lineterminator="\r\n").writerows(
        [line + [""] * (width - len(line)) for line in lines])
    (HERE / "generic_ap_bills.csv").write_bytes(buffer.getvalue().encode("cp1252"))
    total = 120000 + 23800 - 4500 + 81400 + 49710 + 25699
    expect("generic_ap_bills.csv", profile="generic_ap_bills", rows_read=len(lines), rows_used=6,
           rows_rejected=0, rows_skipped=len(lines) - 6, source_total_cents=total,
           skipped={"title": 2, "header": 1, "subtotal": 1, "total": 1, "note": 1})


def template_quirks() -> None:
    """Our own template, saved by Excel on Windows: BOM, CRLF, serial-ish and sentinel dates."""
    header = "Vendor,Invoice #,Invoice Date,Due Date,Property,GL Account,Description,Amount"
    rows = [
        'ACME Plumbing LLC,A-100,03/21/2026,04/20/2026,Maple Court,5100,"Valve, replaced",814',
        "ACME Plumbing LLC,A-101,1/1/1970,,Maple Court,5100,placeholder date,10.00",
        "ACME Plumbing LLC,A-102,3/22/2026,,Maple Court,5100,too precise,12.345",
        "Brightline Electric Inc.,E-7,2026-03-23,,Oak Ridge Apartments,5310,negative bill,-256.99",
    ]
    text = "\r\n".join(["tieout bills", header, *rows, ""])
    (HERE / "template_quirks.csv").write_bytes(b"\xef\xbb\xbf" + text.encode())
    expect("template_quirks.csv", profile="tieout_vendor_bills", rows_read=6, rows_used=2,
           rows_rejected=2, rows_skipped=2, source_total_cents=81400 + 1000 - 25699,
           skipped={"title": 1, "header": 1})


def appfolio_itemized() -> None:
    """AppFolio's itemized rent roll: one column per charge code, a per-row Total, deposits
    and a column of amounts no vocabulary knows ("Misc Income", shown, never charged)."""
    header = ["Property", "Unit", "Tenant", "Status", "Rent", "Pet Rent", "Parking",
              "Water/Sewer", "Misc Income", "Deposit Authorized", "Total"]
    rows: list[list[object]] = [["Rent Roll Itemized"], ["As of: 12/01/2026"], [], header]
    total = used = vacant = 0
    for n, prop in enumerate(["Oak Ridge Apartments", "Riverside Lofts"]):
        rows.append([f"-> {prop}"])
        for i, (unit, person) in enumerate(tenants(prop)):
            if person is None:
                rows.append([prop, unit, "", "Vacant-Unrented", "0.00", "", "", "", "", "", "0.00"])
                vacant += 1
                continue
            rent, pet, parking, water = 110_000 + 1_500 * i + 7 * n, 3_500 * (i % 2), 5_000 * (i % 3 == 0), 4_217
            line = rent + pet + parking + water
            rows.append([prop, unit, person, "Current", money(rent), money(pet) if pet else "",
                         money(parking) if parking else "", money(water), "12.00",
                         "1,000.00" if i % 4 == 0 else "", money(line)])
            total += line
            used += 1
    rows.append(["Total", "", "", "", "", "", "", "", "", "", money(total)])
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows([r + [""] * (len(header) - len(r)) for r in rows])
    (HERE / "appfolio_itemized.csv").write_text(buffer.getvalue(), encoding="utf-8")
    expect("appfolio_itemized.csv", profile="appfolio_rent_roll", rows_read=len(rows),
           rows_used=used, rows_rejected=0, rows_skipped=len(rows) - used,
           source_total_cents=total, skipped={"vacant": vacant, "group": 2, "total": 1},
           columns_not_charged=[{"header": "Misc Income", "cells": used, "total_cents": 1200 * used}])


def utility_billing() -> None:
    """A utility-billing (submetering / RUBS) charge export: one row per resident and service."""
    header = ["Community", "Unit", "Resident", "Account #", "Service", "Bill Date", "Charge Amount"]
    rows: list[list[object]] = [["Resident Utility Charges"], ["Billing Period: December 2026"], [], header]
    total = used = 0
    for prop in ["Oak Ridge Apartments", "Riverside Lofts"]:
        for i, (unit, person) in enumerate(tenants(prop)):
            if person is None:
                continue
            for service, cents in (("Water", 3_000 + 37 * i), ("Trash", 1_500)):
                rows.append([prop, unit, person, f"A{1000 + used}", service, "12/01/2026", money(cents)])
                total += cents
                used += 1
    rows.append(["Grand Total", "", "", "", "", "", money(total)])
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    (HERE / "utility_billing.csv").write_text(buffer.getvalue(), encoding="utf-8")
    expect("utility_billing.csv", profile="utility_billing", rows_read=len(rows), rows_used=used,
           rows_rejected=0, rows_skipped=len(rows) - used, source_total_cents=total,
           skipped={"title": 2, "blank": 1, "header": 1, "total": 1})


def write_csv(name: str, rows: list[list[object]]) -> None:
    width = max(len(r) for r in rows)
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows([list(r) + [""] * (width - len(r)) for r in rows])
    (HERE / name).write_text(buffer.getvalue(), encoding="utf-8")


def shapes() -> None:
    """One small file per row shape real exports have (#14), each with what it must read as:
    ``exit`` 0/1 with the row accounting, or 2 with a fragment of the one refusal line."""
    header = ["Unit", "Tenant", "Status", "Market Rent", "Rent", "Deposit", "Deposit Authorized",
              "Past Due"]
    # Excel's re-save of an AppFolio roll: no "->" before property rows, "NN Units" subtotals,
    # a "Total_NNUnits" total, rows of "_" filler, and a legend block below the total.
    rows: list[list[object]] = [["Rent Roll"], ["As of: 12/01/2026"], [], header]
    total = used = vacant = units = 0
    for n, prop in enumerate(["Oak Ridge Apartments", "Riverside Lofts"]):
        rows.append([prop])
        count = 0
        for i, (unit, person) in enumerate(tenants(prop)[:6]):
            count += 1
            if person is None:
                rows.append([unit, "", "Vacant-Unrented", "1,900.00", "0.00", "0.00", "", ""])
                vacant += 1
                continue
            rent = 110_000 + 1_000 * i + 3 * n
            rows.append([unit, person, "Current", "1,900.00", money(rent), "500.00",
                         "1,000.00" if i == 0 else "", "0.00"])
            total += rent
            used += 1
        units += count
        rows.append([f"{count} Units"])
        rows.append(["_"])
    rows.append([f"Total_{units}Units", "", "", "", money(total)])
    rows += [[], ["Vacant-Unrented", "", "Vacant-Unrented"], ["Current", "", "Current"]]
    write_csv("shape_resaved_roll.csv", rows)
    expect("shape_resaved_roll.csv", exit=0, profile="appfolio_rent_roll", rows_read=len(rows),
           rows_used=used, rows_rejected=0, source_total_cents=total,
           skipped={"vacant": vacant, "group": 2, "subtotal": 2, "total": 1, "blank": 4, "note": 2,
                    "title": 2, "header": 1},
           columns_not_charged=[], file_totals_differ=0)

    # A total row whose label was left off: only its amount, equal to the lines above it.
    people = [p for p in tenants("Maple Court") if p[1]][:4]
    rows = [["Rent Roll"], ["As of: 12/01/2026"], ["Property", "Unit", "Tenant", "Rent", "Pet Rent"]]
    total = 0
    for i, (unit, person) in enumerate(people):
        rows.append(["Maple Court", unit, person, money(130_000 + 500 * i), "35.00"])
        total += 130_000 + 500 * i + 3_500
    rows.append(["", "", "", money(total - 3_500 * len(people)), money(3_500 * len(people))])
    write_csv("shape_unlabelled_total.csv", rows)
    expect("shape_unlabelled_total.csv", exit=0, profile="tieout_rent_roll", rows_read=len(rows),
           rows_used=len(people), rows_rejected=0, source_total_cents=total,
           skipped={"title": 2, "header": 1, "total": 1}, columns_not_charged=[],
           file_totals_differ=0)

    # A subtotal that does not tie to its lines: a file-level exception, nothing posted.
    rows = [["Rent Roll"], ["As of: 12/01/2026"], ["Unit", "Tenant", "Status", "Rent"]]
    for prop in ("Oak Ridge Apartments", "Riverside Lofts"):
        rows.append([f"-> {prop}"])
        lines = [p for p in tenants(prop) if p[1]][:3]
        for unit, person in lines:
            rows.append([unit, person, "Current", "1,000.00"])
        rows.append([f"{len(lines)} Units", "", "", "3,000.00" if prop.startswith("Oak") else "3,100.00"])
    rows.append(["Total", "", "", "6,100.00"])
    write_csv("shape_subtotal_off.csv", rows)
    expect("shape_subtotal_off.csv", exit=2,
           refusal="the subtotal row (row 13) says 3,100.00 for Rent, but its lines add up to 3,000.00")

    # A period only in the file name.
    rows = [["Rent Roll"], ["Property", "Unit", "Tenant", "Rent"]]
    for unit, person in people:
        rows.append(["Maple Court", unit, person, "1,250.00"])
    write_csv("shape_RentRoll-20270115.csv", rows)
    expect("shape_RentRoll-20270115.csv", exit=0, profile="tieout_rent_roll", rows_read=len(rows),
           rows_used=len(people), rows_rejected=0, source_total_cents=125_000 * len(people),
           skipped={"title": 1, "header": 1}, columns_not_charged=[], file_totals_differ=0,
           period="2027-01-01", period_source="file name")

    # No period anywhere: one refusal, not a line per row.
    write_csv("shape_no_period.csv", rows)
    expect("shape_no_period.csv", exit=2, refusal="no billing period")

    # The property named once, Yardi-style, in the title block; the rows name none.
    rows = [["Rent Roll"], ["Maple Court (maple)"], ["As of: 12/01/2026"], [],
            ["Unit", "Tenant", "Status", "Rent"]]
    for unit, person in people:
        rows.append([unit, person, "Current", "1,300.00"])
    rows.append(["Total", "", "", money(130_000 * len(people))])
    write_csv("shape_title_property.csv", rows)
    expect("shape_title_property.csv", exit=0, profile="appfolio_rent_roll", rows_read=len(rows),
           rows_used=len(people), rows_rejected=0, source_total_cents=130_000 * len(people),
           skipped={"title": 3, "blank": 1, "header": 1, "total": 1}, columns_not_charged=[],
           file_totals_differ=0)

    # A roll with tenants and amounts but no column known to be a charge: refused, not guessed.
    rows = [["Rent Roll"], ["As of: 12/01/2026"],
            ["Property", "Unit", "Tenant", "Market Rent", "Deposit", "Balance"]]
    for unit, person in people:
        rows.append(["Maple Court", unit, person, "1,900.00", "500.00", "0.00"])
    write_csv("shape_no_charge_column.csv", rows)
    expect("shape_no_charge_column.csv", exit=2, refusal="no column is known to be a charge")

    # Not an input at all: a tenant event log (Property, Unit and Tenant, zip codes, IDs).
    rows = [["Tenant Events"], ["Property", "Unit", "Tenant", "Event", "Zip", "Unit ID", "Date"]]
    for i, (unit, person) in enumerate(people):
        rows.append(["Maple Court", unit, person, "Move-in", "62701", f"{4410 + i}", "06/01/2025"])
    write_csv("shape_event_log.csv", rows)
    expect("shape_event_log.csv", exit=2, refusal="no column is known to be a charge")


def voyager(name: str, off_by_cents: int = 0) -> None:
    """Yardi Voyager's "Rent Roll with Lease Charges" as exported (#31): "As Of =" in the title,
    a two-row header, section banners, property, unit and resident only on a unit's first
    charge row, a "Total" row per unit, a section of future residents, and a "Summary Groups"
    block after the data. ``off_by_cents``: the third unit's Total row says that much more
    than its charge rows."""
    wb = Workbook()
    ws = wb.active
    ws.title = "Report1"
    top = ["Property", "Unit", "Unit Type", "Unit", "Resident", "Name", "Market", "Charge",
           "Amount", "Resident", "Other", "Move In", "Lease", "Move Out", "Balance"]
    low = ["", "", "", "Sq Ft", "", "", "Rent", "Code", "", "Deposit", "Deposit", "",
           "Expiration", "", ""]
    width = len(top)
    for line in (["Rent Roll with Lease Charges"], ["As Of = 10/31/2023"], [], top, low):
        ws.append([c or None for c in line])
    ws.merge_cells(start_row=1, start_column=1, end_row=1, end_column=width)
    read, used, total, vacant, units_off = 5, 0, 0, 0, []
    skipped = {"title": 2, "blank": 1, "header": 2, "note": 0, "total": 0, "vacant": 0,
               "not a current resident": 0}

    def add(cells: list[object]) -> None:
        nonlocal read
        ws.append([c if c != "" else None for c in cells] + [None] * (width - len(cells)))
        read += 1

    add(["Current/Notice/Vacant Residents"])
    skipped["note"] += 1
    n = 0
    for prop in ("Lakeview Terrace", "Maple Court"):
        for unit, person in tenants(prop)[:5] + [t for t in tenants(prop) if t[1] is None][:1]:
            if person is None:
                add([prop, unit, "2x1", 900, "VACANT", "VACANT", 1500.0])
                vacant += 1
                continue
            rent = 179_500 if n == 2 else 140_000 + 1_000 * n
            charges = [("Rent", rent), ("Pet Rent", 2_500)] if n % 2 == 0 else [("Rent", rent)]
            if n % 3 == 1:
                charges.append(("Parking", 5_000))
            for j, (code, cents) in enumerate(charges):
                if j == 0:
                    add([prop, unit, "2x1", 900, f"t{n:07d}", person, 1500.0, code, cents / 100,
                         500.0, 0.0, "6/1/2023", "5/31/2024", None, 0.0])
                else:
                    add(["", "", "", "", "", "", "", code, cents / 100])
                used += 1
                total += cents
            lines = sum(c for _, c in charges)
            stated = lines + (off_by_cents if n == 2 else 0)
            if stated != lines:
                units_off.append((unit, read + 1, stated, lines))
            add(["", "", "", "", "", "", "", "Total", stated / 100])
            skipped["total"] += 1
            n += 1
    add(["Future Residents/Applicants"])
    skipped["note"] += 1
    add(["Maple Court", "206", "2x1", 900, "t0009999", "Ashgrove, Morgan", 1500.0, "Rent", 1550.0,
         500.0, 0.0, "11/15/2023", "11/14/2024", None, 0.0])
    add(["", "", "", "", "", "", "", "Total", 1550.0])
    skipped["not a current resident"] += 2
    add([])
    summary = [["Summary Groups", "Square Footage", "Market Rent", "Lease Charges", "Security Deposit",
                "Other Deposits", "# Of Units", "% Unit Occupancy", "% Sqft Occupancy"],
               ["Current/Notice/Vacant Residents", 10800, 18000.0, total / 100, 5000.0, 0.0, 12,
                83.33, 83.33],
               ["Future Residents/Applicants", 900, 1500.0, 1550.0, 500.0, 0.0, 1, 0, 0],
               ["Occupied Units", 9000, 15000.0, None, None, None, 10, 83.33, 83.33],
               ["Total Non Rev Units", 0, 0, None, None, None, 0, 0, 0],
               ["Total Vacant Units", 1800, 3000.0, None, None, None, 2, 16.67, 16.67],
               ["Totals:", 10800, 18000.0, total / 100 + 1550.0, 5500.0, 0.0, 12, 100, 100]]
    for row in summary:
        add(row)
    # The blank row before the block is inside it: everything from "Summary Groups" is a note,
    # the blank above it a blank.
    skipped["blank"] += 1
    skipped["note"] += len(summary)
    skipped["vacant"] = vacant
    wb.save(HERE / name)
    if units_off:
        unit, row, stated, lines = units_off[0]
        expect(name, exit=2,
               refusal=f"the total row (row {row}, unit {unit}) says {money(stated)} for amount, but "
                       f"its lines add up to {money(lines)} (difference {money(lines - stated)})")
        return
    expect(name, exit=0, profile="yardi_rent_roll", rows_read=read, rows_used=used, rows_rejected=0,
           source_total_cents=total, skipped={k: v for k, v in sorted(skipped.items()) if v},
           columns_not_charged=[], period="2023-10-01", period_source="title")


def appfolio_merged_groups() -> None:
    """An AppFolio rent roll as XLSX whose property rows are merged across the sheet, one
    with "->" and one without (#31): both group rows, never data."""
    header = ["Unit", "Tenant", "Status", "Sqft", "Market Rent", "Rent", "Deposit", "Lease From",
              "Lease To", "Past Due"]
    wb = Workbook()
    ws = wb.active
    ws.title = "Rent Roll"
    for line in (["Rent Roll"], ["As of: 12/01/2026"], [], header):
        ws.append(line or [None])
    total = used = vacant = units = 0
    for n, prop in enumerate(["Oak Ridge Apartments", "Riverside Lofts"]):
        arrow = "-> " if n == 0 else ""
        ws.append([f"{arrow}{prop} - {100 + n} Main St Springfield, IL 62701"])
        ws.merge_cells(start_row=ws.max_row, start_column=1, end_row=ws.max_row, end_column=len(header))
        count = 0
        for i, (unit, person) in enumerate(tenants(prop)[:6]):
            count += 1
            if person is None:
                ws.append([unit, None, "Vacant-Unrented", 850, 1900.0, 0.0, 0.0])
                vacant += 1
                continue
            rent = 120_000 + 2_500 * i + 99 * n
            ws.append([unit, person, "Current", 850, 1900.0, rent / 100, 500.0, "06/01/2025",
                       "05/31/2027", 0.0])
            total += rent
            used += 1
        units += count
        ws.append([f"{count} Units"])
    ws.append([f"Total {units} Units", None, None, None, None, total / 100])
    rows = ws.max_row
    wb.save(HERE / "shape_appfolio_merged_groups.xlsx")
    expect("shape_appfolio_merged_groups.xlsx", exit=0, profile="appfolio_rent_roll", rows_read=rows,
           rows_used=used, rows_rejected=0, source_total_cents=total,
           skipped={"blank": 1, "group": 2, "header": 1, "subtotal": 2, "title": 2, "total": 1,
                    "vacant": vacant},
           columns_not_charged=[])


def account_prefixed() -> None:
    """Charge columns headed with an account prefix or a common name of the rent, and the
    mapped columns under common names ("Apt #", "Lessee") (#31)."""
    header = ["Community", "Apt #", "Lessee", "Market Rent", "Monthly Rent", "REV: Parking",
              "4010 - Pet Rent", "Income: Trash", "Deposit"]
    rows: list[list[object]] = [["Rent Roll"], ["As of: 12/01/2026"], header]
    total = 0
    people = [p for p in tenants("Maple Court") if p[1]][:4]
    for i, (unit, person) in enumerate(people):
        rent, parking, pet, trash = 130_000 + 500 * i, 5_000 * (i % 2), 3_500, 1_500
        rows.append(["Maple Court", unit, person, "1,900.00", money(rent), money(parking) if parking else "",
                     money(pet), money(trash), "500.00"])
        total += rent + parking + pet + trash
    rows.append(["Total", "", "", "", "", "", "", "", ""])
    write_csv("shape_account_prefixed_headers.csv", rows[:-1])
    expect("shape_account_prefixed_headers.csv", exit=0, profile="tieout_rent_roll",
           rows_read=len(rows) - 1, rows_used=len(people), rows_rejected=0, source_total_cents=total,
           skipped={"header": 1, "title": 2}, columns_not_charged=[])


def unreadable_under_total() -> None:
    """A total row over lines of which one amount cannot be read (#31): the total is not
    called tied; its rest is that row's, shown."""
    people = [p for p in tenants("Oak Ridge Apartments") if p[1]][:6]
    rows: list[list[object]] = [["Rent Roll"], ["As of: 12/01/2026"], ["Property", "Unit", "Tenant", "Rent"]]
    total = 0
    bad_row = 0
    for i, (unit, person) in enumerate(people):
        cents = 150_000 + 1_111 * i
        if i == 3:
            rows.append(["Oak Ridge Apartments", unit, person, "1,745.945"])
            bad_row = len(rows)
            stated_extra = 174_594
            continue
        rows.append(["Oak Ridge Apartments", unit, person, money(cents)])
        total += cents
    stated = total + stated_extra
    rows.append(["Total", "", "", money(stated)])
    write_csv("shape_unreadable_under_total.csv", rows)
    expect("shape_unreadable_under_total.csv", exit=1, profile="tieout_rent_roll", rows_read=len(rows),
           rows_used=len(people) - 1, rows_rejected=1, source_total_cents=total,
           skipped={"header": 1, "title": 2, "total": 1}, columns_not_charged=[],
           file_totals=[{"column": "Rent", "source_row": len(rows), "kind": "total",
                         "stated_cents": stated, "computed_cents": total,
                         "difference_cents": total - stated, "checked": False,
                         "unreadable": [{"source_row": bad_row, "text": "1,745.945"}]}],
           said=f"the rest, {money(stated_extra)}, is row {bad_row}, rejected: \"1,745.945\"")


def issue31_shapes() -> None:
    voyager("shape_voyager_lease_charges.xlsx")
    voyager("shape_voyager_unit_total_off.xlsx", off_by_cents=500)
    appfolio_merged_groups()
    account_prefixed()
    unreadable_under_total()


def layouts() -> None:
    """Reports with a rent roll's headers but another grain (#31): each refused once, or its
    rows of residents who are gone (or not there yet) skipped, never charged."""
    directory = [
        ["Tenant Directory"], ["Properties: All"], ["As of: 12/01/2026"],
        ["Property", "Unit", "Tenant", "Tenant Type", "Status", "Phone Numbers", "Move-in",
         "Move-out", "Rent", "Deposit"],
    ]
    for unit, person, kind, phone, moved, rent in [
        ("101", "Kettering, Dakota", "Financially Responsible", "0101", "06/01/2025", "1,250.00"),
        ("101", "Kettering, Sam", "Other Occupant", "0102", "06/01/2025", "1,250.00"),
        ("102", "Pembry, Skyler", "Financially Responsible", "0103", "07/01/2025", "1,300.00"),
        ("103", "Marrow, Emerson", "Financially Responsible", "0104", "08/01/2025", "1,100.00"),
        ("103", "Marrow, Jules", "Other Occupant", "0105", "08/01/2025", "1,100.00"),
        ("103", "Okafor, Remy", "Other Occupant", "0106", "09/01/2025", "1,100.00"),
    ]:
        directory.append(["Maple Court", unit, person, kind, "Current", f"555-{phone}", moved, "",
                          rent, "500.00"])
    write_csv("shape_tenant_directory.csv", directory)
    expect("shape_tenant_directory.csv", exit=2, refusal="reads as a tenant directory")

    tickler = [
        ["Tenant Tickler"], ["As of: 12/01/2026"],
        ["Date", "Event", "Property", "Unit", "Tenant", "Tenant Status", "Rent", "Phone Numbers",
         "Lease From", "Lease To", "Agent"],
    ]
    for when, event, unit, person, status, rent, agent in [
        ("10/03/2026", "Move-out", "101", "Kettering, Dakota", "Past", "1,250.00", "Quill"),
        ("10/15/2026", "Notice", "102", "Pembry, Skyler", "Evict", "1,300.00", "Quill"),
        ("10/21/2026", "Move-out", "103", "Marrow, Emerson", "Past", "1,100.00", "Varga"),
        ("11/02/2026", "Notice", "104", "Yardley, Avery", "Current", "1,150.00", "Varga"),
    ]:
        tickler.append([when, event, "Maple Court", unit, person, status, rent, "555-0100",
                        "06/01/2025", "06/30/2026", agent])
    write_csv("shape_tenant_tickler.csv", tickler)
    expect("shape_tenant_tickler.csv", exit=2, refusal="reads as an event log")

    roll = [["Rent Roll"], ["As of: 12/01/2026"],
            ["Property", "Unit", "Resident", "Status", "Rent", "Parking"]]
    for unit, person, status, rent, parking in [
        ("101", "Kettering, Dakota", "Current", "1,250.00", "50.00"),
        ("102", "Pembry, Skyler", "Past", "1,300.00", ""),
        ("102", "Ashby, Noor", "Future", "1,325.00", ""),
        ("103", "Marrow, Emerson", "Notice", "1,100.00", "50.00"),
        ("104", "Yardley, Avery", "Former", "1,150.00", ""),
        ("105", "Quillon, Tam", "Applicant", "1,200.00", ""),
        ("107", "Okafor, Remy", "Evicted", "1,175.00", ""),
        ("106", "Dunmore, Cameron", "Current", "1,050.00", ""),
    ]:
        roll.append(["Maple Court", unit, person, status, rent, parking])
    write_csv("shape_past_future_residents.csv", roll)
    expect("shape_past_future_residents.csv", exit=0, profile="tieout_rent_roll",
           rows_read=len(roll), rows_used=3, rows_rejected=0, source_total_cents=350000,
           skipped={"title": 2, "header": 1, "not a current resident": 5},
           columns_not_charged=[], file_totals_differ=0, period="2026-12-01",
           period_source="title", layout={"profile": "tieout_rent_roll", "strict_match": True,
                                          "confirmed": True})


if __name__ == "__main__":
    issue31_shapes()
    layouts()
    shapes()
    appfolio()
    yardi()
    generic_ap()
    template_quirks()
    appfolio_itemized()
    utility_billing()
    print("fixtures written to", HERE, "as of", date.today())
