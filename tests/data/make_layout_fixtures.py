"""Generate the fixtures of #38's export shapes in tests/data/ and what each must read as.

    python tests/data/make_layout_fixtures.py

Like make_fixtures.py (whose helpers it uses): each fixture gets a sidecar
``<name>.expected.json`` computed here from what was written, never by reading the file back.
Names come from the synthetic sandbox seed, so the fixtures that are read also resolve online.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from openpyxl import Workbook
from openpyxl.styles import Alignment

sys.path.insert(0, str(Path(__file__).resolve().parent))

from make_fixtures import HERE, expect, money, tenants  # noqa: E402


def voyager_title_property() -> None:
    """Yardi's "Rent Roll with Lease Charges" whose title is one cell of several lines, the
    property ("Name (code)") its second line, the Property column left blank on every row
    (#38's regression: every row was rejected "property is missing")."""
    wb = Workbook()
    ws = wb.active
    ws.title = "Report1"
    top = ["Property", "Unit", "Unit Type", "Unit", "Resident", "Name", "Market", "Charge", "Amount",
           "Resident", "Other", "Move In", "Lease", "Move Out", "Balance"]
    low = ["", "", "", "Sq Ft", "", "", "Rent", "Code", "", "Deposit", "Deposit", "", "Expiration",
           "", ""]
    ws.append(["Rent Roll with Lease Charges\nOak Ridge Apartments (oakr)\nAs Of = 01/31/2024\n"
               "Month Year = 01/2024"])
    ws["A1"].alignment = Alignment(wrap_text=True)
    ws.merge_cells(start_row=1, start_column=1, end_row=1, end_column=len(top))
    ws.append([])
    ws.append([c or None for c in top])
    ws.append([c or None for c in low])
    read, used, total = 4, 0, 0
    skipped = {"title": 1, "blank": 1, "header": 2, "note": 1, "total": 0}
    ws.append(["Current/Notice/Vacant Residents"])
    read += 1
    for n, (unit, person) in enumerate(tenants("Oak Ridge Apartments")[:6]):
        if person is None:
            continue
        charges = [("Rent", 131_000 + 500 * n)] + ([("Parking", 4_000)] if n % 2 else [])
        for j, (code, cents) in enumerate(charges):
            if j == 0:
                ws.append([None, unit, "1x1", 700, f"t{n:07d}", person, 1350.0, code, cents / 100,
                           400.0, 0.0, "3/1/2023 12:00:00 AM", "2/29/2024 12:00:00 AM", None, 0.0])
            else:
                ws.append([None] * 7 + [code, cents / 100])
            read += 1
            used += 1
            total += cents
        ws.append([None] * 7 + ["Total", sum(c for _, c in charges) / 100])
        read += 1
        skipped["total"] += 1
    ws.append(["Total"] + [None] * 7 + [total / 100])
    read += 1
    skipped["total"] += 1
    name = "shape_voyager_title_property.xlsx"
    wb.save(HERE / name)
    expect(name, exit=0, profile="yardi_rent_roll", rows_read=read, rows_used=used,
           rows_rejected=0, source_total_cents=total,
           skipped={k: v for k, v in sorted(skipped.items()) if v}, columns_not_charged=[],
           period="2024-01-01", period_source="title")


CHARGED_SEED = ["Rent", "Pet Rent", "Parking", "Concession"]


VOYAGER = ["Rent", "Second Person", "Other Charges", "Rent Concession", "Other Concession"]


def charges_summary(name: str, with_copy: str = "", codes: list[str] = CHARGED_SEED) -> None:
    """Yardi Voyager's "Rent Roll Charges Summary": a title block with "Period: 01/24", one row
    per lease, one column per charge, a one-time "Residency Fee" (not charged) and a "Total
    Charges" column that sums every charge column, Residency Fee included; a "Totals for …"
    row that ties column by column. ``with_copy``: a second sheet, a hand-edited copy of the
    first (a rent changed, rows dropped, no title block), that is never read: "after" the
    export's own sheet, or "before" it. ``codes``: the charge columns' headers (the seed's
    charge codes, or Voyager's own, which the seed does not know: read offline only)."""
    wb = Workbook()
    ws = wb.active
    ws.title = "Report1"
    header = ["Unit", "Resident", "Name", *codes, "Residency Fee", "Total Charges"]
    for line in (["Rent Roll Charges Summary"], ["Lakeview Terrace (lake)"], ["Period: 01/24"], [],
                 header):
        ws.append(line)
    read = 5
    sums = dict.fromkeys([*codes, "Residency Fee"], 0)
    rows = []
    for n, (unit, person) in enumerate(tenants("Lakeview Terrace")):
        if person is None:
            continue
        amounts = [150_000 + 1_250 * n, 2_500 if n % 3 == 0 else 0, 3_500 if n % 4 == 1 else 0,
                   -5_000 if n == 2 else 0, -1_500 if n == 4 else 0][: len(codes)]
        cents = dict(zip(codes, amounts, strict=True)) | {
            "Residency Fee": 30_000 if n % 5 == 0 else 0}
        for k, v in cents.items():
            sums[k] += v
        row = [unit, f"t{n:07d}", person] + [cents[k] / 100 for k in (*codes, "Residency Fee")]
        row.append(sum(cents.values()) / 100)
        rows.append(row)
        ws.append(row)
        read += 1
    ws.append(["Totals for Lakeview Terrace (lake)", None, None]
              + [sums[k] / 100 for k in (*codes, "Residency Fee")]
              + [sum(sums.values()) / 100])
    read += 1
    if with_copy:
        copy = wb.create_sheet("Copy", 0 if with_copy == "before" else None)
        copy.append(header)
        for row in rows[:-3]:
            copy.append(row[:3] + [row[3] + 100] + row[4:])
    wb.save(HERE / name)
    charged = sum(sums[k] for k in codes)
    expect(name, exit=0, online=codes == CHARGED_SEED, profile="yardi_charges_summary",
           rows_read=read, rows_used=len(rows),
           rows_rejected=0, source_total_cents=charged,
           skipped={"blank": 1, "header": 1, "title": 3, "total": 1},
           columns_not_charged=[{"header": "Residency Fee",
                                 "cells": sum(1 for r in rows if r[3 + len(codes)]),
                                 "total_cents": sums["Residency Fee"],
                                 "by_layout": True}],
           period="2024-01-01", period_source="title",
           file_totals=[*({"column": k, "stated_cents": sums[k], "difference_cents": 0}
                          for k in sorted(codes)),
                        {"column": "row totals", "stated_cents": sum(sums.values()),
                         "difference_cents": 0, "also_sums": ["Residency Fee"]}])


def write_csv(name: str, rows: list[list[object]]) -> None:
    with (HERE / name).open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)


NOT_ADVISED = ["profile init", "Draft a profile"]


def non_inputs() -> None:
    """Reports that are not rent rolls, each refused saying what it is, with no advice to
    map it: a directory, a census, a vacancy report, a 12-month budget, a leasing activity
    report, a general ledger, a work order log, and a rent roll of daily rates."""
    people = [t for t in tenants("Maple Court") if t[1]][:5]
    vacant = [u for u, p in tenants("Maple Court") if p is None] or ["299"]
    shapes: dict[str, tuple[str, list[list[object]]]] = {
        "shape_resident_directory.csv": ("tenant directory", [
            ["Resident Directory"], ["Maple Court"], [],
            ["Unit", "Resident", "Home Phone", "Email", "Move In"],
            *[[u, p, f"555-01{n:02d}", f"r{n}@example.com", "06/01/2025"]
              for n, (u, p) in enumerate(people)]]),
        "shape_census.csv": ("census", [
            ["Resident Census"], ["Maple Court"], ["As of 01/31/2024"], [],
            ["Unit", "Resident", "Care Level", "Census Days", "Move In"],
            *[[u, p, "AL", 31, "06/01/2025"] for u, p in people]]),
        "shape_vacancy_report.csv": ("vacancy report", [
            ["Vacancy Report"], ["Maple Court"], ["As of 01/31/2024"], [],
            ["Unit", "Unit Type", "Status", "Days Vacant", "Market Rent", "Scheduled Rent"],
            *[[u, "2x1", "Vacant-Unrented", 12 + n, "1,500.00", "1,450.00"]
              for n, u in enumerate(vacant)]]),
        "shape_budget.csv": ("12-month budget", [
            ["Annual Budget 2024"], ["Maple Court"], [],
            ["Account", "Account Name", "Jan 2024", "Feb 2024", "Mar 2024", "Apr 2024", "May 2024",
             "Jun 2024", "Jul 2024", "Aug 2024", "Sep 2024", "Oct 2024", "Nov 2024", "Dec 2024",
             "Total"],
            ["4010", "Rent", *["18,000.00"] * 12, "216,000.00"],
            ["4200", "Parking", *["500.00"] * 12, "6,000.00"]]),
        "shape_leasing_activity.csv": ("leasing activity report", [
            ["Leasing Activity"], ["Maple Court"], ["01/01/2024 - 01/31/2024"], [],
            ["Prospect", "Unit", "Lead Source", "First Contact", "Show Date", "Application",
             "Rent"],
            ["Ashby, Jordan", "204", "Website", "01/03/2024", "01/05/2024", "Yes", "1,450.00"],
            ["Brant, Casey", "208", "Walk-in", "01/09/2024", "01/09/2024", "No", "1,475.00"]]),
        "shape_general_ledger.csv": ("general ledger", [
            ["General Ledger"], ["Maple Court"], ["Period = Jan 2024"], [],
            ["Account", "Date", "Reference", "Description", "Debit", "Credit", "Balance"],
            ["4010 Rent", "01/01/2024", "J-1001", "January rent", "", "18,000.00", "18,000.00"],
            ["1010 Cash", "01/03/2024", "R-2001", "Deposit", "17,500.00", "", "17,500.00"]]),
        "shape_work_orders.csv": ("work order log", [
            ["Work Orders"], ["Maple Court"], [],
            ["WO #", "Unit", "Resident", "Category", "Priority", "Opened", "Completed", "Cost"],
            *[[f"WO-{300 + n}", u, p, "Plumbing", "Normal", "01/04/2024", "01/06/2024", "85.00"]
              for n, (u, p) in enumerate(people)]]),
        "shape_daily_rates.csv": ("rent roll with daily rates", [
            ["Rent Roll"], ["Maple Court"], ["As of 01/31/2024"], [],
            ["Unit", "Tenant", "Status", "Daily Rate", "Rent"],
            *[[u, p, "Current", "48.50", "1,503.50"] for u, p in people]]),
    }
    for name, (what, rows) in shapes.items():
        write_csv(name, rows)
        expect(name, exit=2, refusal=f"is {'an' if what[0] in 'aeiou' else 'a'} {what}",
               not_advised=NOT_ADVISED)


def senior_living() -> None:
    """A senior-living roll: a title cell of several lines with "As of Date:", a two-row
    header with line breaks inside cells and "Accommodation" merged over "Per Period |
    Monthly", the property on a row merged across the sheet, a second resident's row with no
    unit under the primary's, "*Vacant" rows, a "Totals For …" row, and a stray cell one row
    below it. Monthly is charged; Per Period repeats its money and is not."""
    wb = Workbook()
    ws = wb.active
    ws.title = "Rent Roll"
    top = ["Unit", "Resident", "Care\nLevel", "Move In\nDate", "Accommodation", None,
           "Level of Care\nMonthly", "Total\nMonthly"]
    low = [None, None, None, None, "Per Period", "Monthly", None, None]
    width = len(top)
    ws.append(["Resident Rent Roll\nLakeview Terrace\nAs of Date: 01/31/2024 12:00:00 AM"])
    ws.merge_cells(start_row=1, start_column=1, end_row=1, end_column=width)
    ws.append([])
    ws.append(top)
    ws.append(low)
    for column in (1, 2, 3, 4, 7, 8):  # one cell over both header rows
        ws.merge_cells(start_row=3, start_column=column, end_row=4, end_column=column)
    ws.merge_cells(start_row=3, start_column=5, end_row=3, end_column=6)
    ws.append(["Lakeview Terrace"])
    ws.merge_cells(start_row=5, start_column=1, end_row=5, end_column=width)
    read, used, total, care_total, vacant, seconds = 5, 0, 0, 0, 0, 0
    for n, (unit, person) in enumerate(tenants("Lakeview Terrace")[:8]):
        if person is None or n == 3:
            ws.append([unit, "*Vacant", None, None, None, None, None, None])
            read += 1
            vacant += 1
            continue
        rent, care = 420_000 + 5_000 * n, 65_000 if n % 2 else 0
        ws.append([unit, person, "AL" if care else "IL", "06/01/2025", rent / 100, rent / 100,
                   care / 100 if care else None, (rent + care) / 100])
        read += 1
        used += 1
        total += rent + care
        care_total += care
        if n == 1:  # a second resident, under the primary's row, with no unit
            ws.append([None, f"{person.split(',')[0]}, Avery", "IL", "06/01/2025", 110_000 / 100,
                       110_000 / 100, None, 110_000 / 100])
            read += 1
            used += 1
            total += 110_000
            seconds += 1
    accommodation = total - care_total
    ws.append(["Totals For Lakeview Terrace", None, None, None, accommodation / 100,
               accommodation / 100, care_total / 100, total / 100])
    ws.append([None] * 5 + [9])  # a stray cell (a count), one row below the totals
    read += 2
    name = "shape_senior_living.xlsx"
    wb.save(HERE / name)
    # The seed has no second residents nor care charges: read offline only.
    expect(name, exit=0, online=False, profile="senior_living_rent_roll", rows_read=read,
           rows_used=used, rows_rejected=0, source_total_cents=total,
           skipped={"blank": 1, "group": 1, "header": 2, "note": 1, "title": 1, "total": 1,
                    "vacant": vacant},
           columns_not_charged=[{"header": "Accommodation Per Period", "cells": used,
                                 "total_cents": accommodation, "by_layout": True}],
           period="2024-01-01", period_source="title")


APPFOLIO_REV = ["REV: Rent", "REV: Pet Rent", "REV: Parking", "REV: Trash",
                "REV: Utility Reimbursement"]


def appfolio_rev(name: str, month: int, people: slice) -> None:
    """AppFolio's roll with one column per charge code, headed with its "REV:" account prefix,
    a per-row "Total" that also sums a code Propexo does not know ("REV: Utility
    Reimbursement", not charged), property group rows, "N Units" subtotal rows and a total row
    that states every column's figure (#38 point 6: refused on its totals)."""
    import datetime as dt

    header = ["Property", "Unit", "Tenant", "Status", "Sqft", "Market Rent", *APPFOLIO_REV,
              "Total", "Deposit", "Lease From", "Lease To"]
    wb = Workbook()
    ws = wb.active
    ws.title = "Sheet1"
    for line in (["Rent Roll"], ["Properties: All"], [f"As of: {month:02d}/01/2027"], [None],
                 header):
        ws.append(line)
    sums = [0] * len(APPFOLIO_REV)
    lines = used = 0
    for n, prop in enumerate(["Oak Ridge Apartments", "Riverside Lofts"]):
        ws.append([f"-> {prop} - {100 + n} Main St Springfield, IL 62701"])
        sub = [0] * len(APPFOLIO_REV)
        chosen = tenants(prop)[people]
        for i, (unit, person) in enumerate(chosen):
            if person is None:
                ws.append([prop, unit, None, "Vacant-Unrented", 850, 1900.0])
                continue
            cents = [120_000 + 2_500 * i + 100 * month, 3_500 if i % 2 else 0,
                     5_000 if i % 3 == 0 else 0, 1_500, 2_217 + month]
            for k, c in enumerate(cents):
                sums[k] += c
                sub[k] += c
            lines += sum(1 for c in cents[:4] if c)
            used += 1
            ws.append([prop, unit, person, "Current", 850, 1900.0,
                       *[c / 100 if c else None for c in cents], sum(cents) / 100, 500.0,
                       dt.datetime(2025, 6, 1), dt.datetime(2027, 5, 31)])
        ws.append([f"{len(chosen)} Units", None, None, None, None, None,
                   *[c / 100 for c in sub], sum(sub) / 100])
    ws.append(["Total", None, None, None, None, None, *[c / 100 for c in sums], sum(sums) / 100])
    wb.save(HERE / name)
    expect(name, rows_used=used, lines=lines, source_total_cents=sum(sums[:4]),
           row_total_cents=sum(sums), not_charged="REV: Utility Reimbursement",
           not_charged_cents=sums[4], stated={k: v for k, v in zip(APPFOLIO_REV, sums)})


def self_storage(name: str, month: int, people: slice) -> None:
    """A self-storage roll (a system no profile knows): the unit is a "Space", dates written
    "6/1/2025 12:00:00 AM", money "238.0000", a standard rate beside the rent (not charged),
    an insurance column the clerk leaves out, a total row."""
    rows: list[list[object]] = [
        ["Self Storage Rent Roll"], ["Maple Court"], [f"As of {month}/01/2027 12:00:00 AM"], [],
        ["Site", "Space", "Size", "Customer", "Move In", "Paid Thru", "Std Rate", "Rent",
         "Insurance", "Balance"]]
    rent = insurance = used = 0
    for i, (unit, person) in enumerate(tenants("Maple Court")[people]):
        if person is None:
            rows.append(["Maple Court", unit, "10x10", "", "", "", "238.0000", "", "", ""])
            continue
        cents = 23_800 + 500 * i + 100 * month
        rent += cents
        insurance += 1_200
        used += 1
        rows.append(["Maple Court", unit, "10x10", person, "6/1/2025 12:00:00 AM",
                     f"{month}/30/2027 12:00:00 AM", "238.0000", f"{cents / 100:.4f}", "12.0000",
                     "0.0000"])
    rows.append(["Total", "", "", "", "", "", "", f"{rent / 100:.4f}", f"{insurance / 100:.4f}",
                 "0.0000"])
    write_csv(name, rows)
    expect(name, rows_used=used, total_cents=rent, period=f"2027-{month:02d}-01",
           roles={"Site": "property", "Space": "unit", "Size": "not_charged",
                  "Customer": "resident", "Move In": "not_charged", "Paid Thru": "not_charged",
                  "Std Rate": "not_charged", "Rent": "charge", "Insurance": "unknown",
                  "Balance": "not_charged"},
           stated={"Rent": rent, "Insurance": insurance})


def yardi_ap_batch(name: str, month: int, batches: dict[int, list[tuple[str, str, list[tuple[str, str, int]]]]]) -> None:
    """Yardi's AP batch workbook ("Payable Batch Register", #38 point 6: refused as unknown):
    a title block, a batch header row per batch, the vendor ("Person"), invoice and dates on
    an invoice's first line only, its further lines under it, bookkeeping columns (Control,
    Batch, Post Month), a "Total Batch …" row per batch and a grand total."""
    import datetime as dt

    wb = Workbook()
    ws = wb.active
    ws.title = "Report1"
    for line in (["Payable Batch Register"], ["Greenleaf Property Management"],
                 [f"Batch Date: {month:02d}/15/2027"], [None]):
        ws.append(line)
    ws.append(["Control", "Batch", "Person", "Invoice", "Date", "Due Date", "Post Month",
               "Property", "Account", "Description", "Amount"])
    total = lines = 0
    for batch, invoices in batches.items():
        ws.append([f"Batch {batch} - Open - jdoe"])
        sub = 0
        for k, (vendor, invoice, rows) in enumerate(invoices):
            for n, (prop, account, cents) in enumerate(rows):
                first = [f"P-{batch}{k}", batch, vendor, invoice, dt.datetime(2027, month, 12),
                         dt.datetime(2027, month + 1, 11), f"{month:02d}/2027"]
                ws.append((first if n == 0 else [None] * 7)
                          + [prop, account, f"service line {n + 1}", cents / 100])
                sub += cents
                lines += 1
        ws.append([f"Total Batch {batch}"] + [None] * 9 + [sub / 100])
        total += sub
    ws.append(["Grand Total"] + [None] * 9 + [total / 100])
    wb.save(HERE / name)
    expect(name, profile="yardi_ap_batch", lines=lines,
           invoices=sum(len(v) for v in batches.values()), source_total_cents=total)


def main() -> None:
    voyager_title_property()
    charges_summary("shape_yardi_charges_summary.xlsx")
    charges_summary("shape_export_and_copy.xlsx", with_copy="after")
    charges_summary("shape_copy_and_export.xlsx", with_copy="before")
    charges_summary("shape_yardi_charges_summary_voyager.xlsx", codes=VOYAGER)
    non_inputs()
    senior_living()
    appfolio_rev("rev_coded_appfolio_roll.xlsx", 1, slice(0, 8))
    appfolio_rev("rev_coded_appfolio_roll_feb.xlsx", 2, slice(0, 6))
    self_storage("proposal_self_storage.csv", 1, slice(0, 8))
    self_storage("proposal_self_storage_feb.csv", 2, slice(0, 6))
    yardi_ap_batch("yardi_ap_batch.xlsx", 1, {
        2041: [("ACME Plumbing LLC", "P-77120", [("Maple Court", "5100", 112_659),
                                                 ("Oak Ridge Apartments", "5100", 51_207)]),
               ("Greenway Landscaping", "GL-0324", [("Oak Ridge Apartments", "5200", 120_000)])],
        2042: [("Harbor Pest Control", "HP-9981", [("Riverside Lofts", "5600", 8_500),
                                                   ("Riverside Lofts", "5600", 4_250)])]})
    yardi_ap_batch("yardi_ap_batch_feb.xlsx", 2, {
        2107: [("ACME Plumbing LLC", "B-5521", [("Lakeview Terrace", "5500", 64_000),
                                                ("Riverside Lofts", "5500", 31_075)]),
               ("Brightline Electric Inc.", "E-1180", [("Maple Court", "5310", 22_500)])]})


if __name__ == "__main__":
    main()
