"""#36 points 1–2 and #37 point 5: a source line's identity does not depend on row order, file
name, header spelling or which run read it.

- An invoice is its vendor and number, its lines a multiset: a re-sorted, re-saved or
  re-headed export of the same bills is unchanged; a corrected bill is one conflict per
  changed line, showing that line's amounts, and no message advises a new bill number.
- A charge is its resident, charge code (after aliases), date and amount: notes made from how
  the file spelled a charge header are not content, so a corrected header changes nothing.
- A line identical to one posted from another file is a question (an open item), never
  dropped silently; what a file lacks of another file's lines is none of its business.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import openpyxl
import pandas as pd
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from pipelines.core.config import load_settings
from pipelines.core.models import Issue, IssueCode
from pipelines.kinds import registered
from pipelines.kinds.charge.references import (
    match_posted,
    reference_numbers,
    same_sources,
    source_stem,
    unmatched_text,
)
from pipelines.kinds.invoice.kind import line_changes
from pipelines.kinds.invoice.payloads import invoice_digest
from pipelines.ledger import Ledger
from pipelines.posting.payloads import content_hash
from pipelines.reading.grids import fingerprint
from pipelines.reading.profiles import profiles_for
from pipelines.resolving.refs import RefData
from pipelines.runs.files import process_file
from pipelines.runs.items import file_items
from sandbox.server import RunningSandbox
from tests.conftest import SAMPLES, settings_for

SETTINGS = load_settings(env={})
BILLS = SAMPLES / "vendor_bills.csv"
ROLL = SAMPLES / "rent_roll.xlsx"
BILL_HEADERS = {  # spellings the bill profile reads as the same columns
    "Vendor": ["Vendor", "Payee", "VENDOR NAME"],
    "Invoice #": ["Invoice #", "Invoice Number", "bill #"],
    "Amount": ["Amount", "Line Amount", "amount due"],
    "Description": ["Description", "Memo"],
}


# --- the pure parts -------------------------------------------------------------------------


def _item(cents: int, note: str, account: str = "5100") -> dict[str, Any]:
    return {
        "amount_in_cents": cents,
        "property_id": "p1",
        "financial_account_id": account,
        "notes": note,
    }


def _bill(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "integration_id": "int",
        "vendor_id": "v",
        "invoice_number": "INV-1",
        "invoice_items": items,
        "total_amount_in_cents": sum(i["amount_in_cents"] for i in items),
        "notes": "tieout: some file.csv rows 2-9",
    }


LINES = st.lists(
    st.tuples(st.integers(0, 10**7), st.sampled_from(["a", "b", "a"])), min_size=1, max_size=8
)


@given(lines=LINES, data=st.data())
def test_an_invoices_digest_is_its_lines_as_a_multiset(
    lines: list[tuple[int, str]], data: st.DataObject
) -> None:
    items = [_item(cents, note) for cents, note in lines]
    shuffled = data.draw(st.permutations(items))
    renamed = {**_bill(shuffled), "notes": "tieout: another name.xlsx rows 40-47"}
    assert invoice_digest(_bill(items)) == invoice_digest(renamed)
    changed = [dict(i) for i in items]
    changed[0]["amount_in_cents"] += 1
    assert invoice_digest(_bill(changed)) != invoice_digest(_bill(items))


@given(lines=LINES, data=st.data())
def test_one_changed_line_of_a_bill_is_one_change_with_its_own_amounts(
    lines: list[tuple[int, str]], data: st.DataObject
) -> None:
    before = [_item(cents, note) for cents, note in lines]
    after = [dict(i) for i in data.draw(st.permutations(before))]
    assert line_changes(before, list(enumerate(after, start=2))) == []
    which = data.draw(st.integers(0, len(after) - 1))
    old = after[which]["amount_in_cents"]
    after[which]["amount_in_cents"] = old + 100
    changes = line_changes(before, list(enumerate(after, start=2)))
    assert len(changes) == 1, changes
    row, words = changes[0]
    assert row == which + 2
    assert f"${old / 100:,.2f}" in words and f"${(old + 100) / 100:,.2f}" in words, words


def test_a_bill_with_a_line_added_or_left_out_says_which() -> None:
    before = [_item(100, "a"), _item(200, "b")]
    assert line_changes(before, [(2, _item(100, "a")), (3, _item(200, "b")), (4, _item(5, "c"))])[
        0
    ] == (4, "this line ($0.05) is new on the bill")
    assert line_changes(before, [(7, _item(200, "b"))]) == [
        (7, "a posted line of $1.00 is not in this file")
    ]
    moved = line_changes(before, [(2, _item(100, "a", "5200")), (3, _item(200, "b"))])
    assert moved == [(2, "this line's ($1.00) property, GL account or description changed")]


def test_a_file_is_a_version_of_the_same_name_or_of_a_file_it_mostly_restates() -> None:
    assert source_stem("Rent Roll.XLSX") == source_stem("rent roll.csv") == "rent roll"
    posted = pd.Series(["roll.xlsx"] * 4 + ["extra.csv"] * 2)
    # the same name, whatever it restates
    assert same_sources("ROLL.csv", posted, pd.Series([], dtype=object)) == {"roll.xlsx"}
    # 3 of roll's 4 lines restated: a version of it; 1 of extra's 2: not
    assert same_sources("reexport.csv", posted, pd.Series(["roll.xlsx"] * 3 + ["extra.csv"])) == {
        "roll.xlsx"
    }
    assert same_sources("parking.csv", posted, pd.Series(["roll.xlsx"])) == set()


def _charges(rows: list[tuple[str, str, str, int]], source: str) -> pd.DataFrame:
    """Charge lines (resident, code, content digest, cents) of one file, numbered alone."""
    frame = pd.DataFrame(
        {
            "kind": "charge",
            "resident_id": [r for r, _, _, _ in rows],
            "charge_code_id": [c for _, c, _, _ in rows],
            "content_hash": [h for _, _, h, _ in rows],
            "amount_cents": [cents for _, _, _, cents in rows],
            "source_rows": [[i + 2] for i in range(len(rows))],
            "source_row": [i + 2 for i in range(len(rows))],
            "transaction_date": "2026-12-01",
            "source_file": source,
        }
    )
    frame["reference_number"] = reference_numbers(frame, "int")
    return frame


def test_a_line_like_another_files_is_a_question_and_its_other_lines_are_not_this_files() -> None:
    roll = _charges(
        [
            ("res1", "parking", "notes-a", 5000),
            ("res1", "rent", "rent-1", 120000),
            ("res2", "rent", "rent-2", 110000),
        ],
        "rent_roll.xlsx",
    )
    posted = roll.assign(
        seq=range(len(roll)),
        run_id="run1",
        record_key="charge:int:" + roll["reference_number"],
    )
    # another file: the same resident, code, date and amount (its notes say something else)
    extra = _charges([("res1", "parking", "notes-b", 5000)], "parking.csv")
    matched = match_posted(extra, posted, "int")
    assert matched.second == {0: roll.at[0, "reference_number"]}
    assert matched.unmatched == []  # the roll's rent lines are none of its business
    # the roll's own next version, one line left out: the same source, no question; the
    # missing line is said
    again = _charges([("res1", "parking", "notes-a", 5000)], "Rent_Roll.csv")
    matched = match_posted(again, posted, "int")
    assert matched.second == {}
    assert sorted(u.amount_cents for u in matched.unmatched) == [110000, 120000]
    assert "reverse" not in unmatched_text(matched.unmatched[0])


def test_a_conflict_items_amount_is_the_lines_in_question_not_the_whole_row() -> None:
    issues = [
        Issue(IssueCode.CONFLICT, "changed", "roll.xlsx", 7, "amount", "$80.00"),
        Issue(IssueCode.SECOND_CHARGE, "again?", "roll.xlsx", 9, "amount", "$50.00"),
    ]
    items = file_items("roll.xlsx", "sha", issues, cents_by_row={7: 158500, 9: 144000})
    assert [(i.cause, i.amount_cents) for i in items] == [
        ("conflict", 8000),
        ("second_charge", 5000),
    ]


def test_an_invoice_staged_under_the_ordered_digest_is_not_a_conflict_when_read_again(
    refs: RefData, tmp_path: Path
) -> None:
    """Ledgers written before lines were a multiset hold digests of the lines in file order:
    the same bills, read again in any order, are still unchanged (the posted body is read
    back through the order-free digest), and a changed line is still a conflict."""
    result = process_file(
        fingerprint(BILLS), profiles_for(SETTINGS, registered()), refs, replace(SETTINGS)
    )
    records = result.records
    legacy = records.copy()
    for index in legacy.index:
        body = dict(legacy.at[index, "payload"])
        body["invoice_items"] = list(reversed(body["invoice_items"]))
        legacy.at[index, "payload"] = body
        legacy.at[index, "content_hash"] = content_hash(
            {k: v for k, v in body.items() if k != "notes"}
        )
    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        ledger.stage_records("r1", None, legacy, registered())
        assert ledger.stage_records("r2", None, records.copy(), registered()) == ([], [])
        changed = records.copy()
        body = json.loads(json.dumps(changed.at[0, "payload"]))
        body["invoice_items"][0]["amount_in_cents"] += 1
        changed.at[0, "payload"] = body
        changed.at[0, "content_hash"] = invoice_digest(body)
        staged, conflicts = ledger.stage_records("r3", None, changed, registered())
        assert (staged, [c.record_key for c in conflicts]) == ([], [changed.at[0, "record_key"]])


# --- the same facts, written any way ---------------------------------------------------------


def _records(path: Path, refs: RefData) -> Counter[tuple[str, str]]:
    result = process_file(
        fingerprint(path), profiles_for(SETTINGS, registered()), refs, replace(SETTINGS)
    )
    assert not [i for i in result.issues if i.code is not IssueCode.NEGATIVE_TOTAL], result.issues
    records = result.records
    return Counter(zip(records["record_key"], records["content_hash"], strict=True))


def _table(path: Path) -> tuple[list[list[str]], list[str], list[list[str]], list[list[str]]]:
    """(title rows, header, data rows, rows after the data) of a sample CSV."""
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
    header_at = next(i for i, row in enumerate(rows) if row and row[0] == "Vendor")
    body = rows[header_at + 1 :]
    end = next(i for i, row in enumerate(body) if not any(row))
    return rows[:header_at], rows[header_at], body[:end], body[end:]


def _write(path: Path, rows: list[list[str]], style: str) -> Path:
    if style == "xlsx":
        path = path.with_suffix(".xlsx")
        book = openpyxl.Workbook()
        sheet = book.active
        assert sheet is not None
        for row in rows:
            sheet.append(row)
        book.save(path)
        return path
    out = io.StringIO()
    quoting = csv.QUOTE_ALL if style == "quoted" else csv.QUOTE_MINIMAL
    csv.writer(out, quoting=quoting, lineterminator="\r\n" if style == "crlf" else "\n").writerows(
        rows
    )
    path.write_text(out.getvalue(), encoding="utf-8")
    return path


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_a_bill_export_re_sorted_re_saved_or_re_headed_has_the_same_invoices(
    refs: RefData, tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    folder = tmp_path_factory.mktemp("bills")
    expected = _records(BILLS, refs)
    titles, header, lines, tail = _table(BILLS)
    shuffled = data.draw(st.permutations(lines))
    spelled = [data.draw(st.sampled_from(BILL_HEADERS.get(h, [h]))) for h in header]
    style = data.draw(st.sampled_from(["plain", "crlf", "quoted", "xlsx"]))
    path = _write(folder / "ap export.csv", [*titles, spelled, *shuffled, *tail], style)
    assert _records(path, refs) == expected


def _roll_rows() -> list[list[Any]]:
    sheet = openpyxl.load_workbook(ROLL).active
    assert sheet is not None
    return [list(row) for row in sheet.iter_rows(values_only=True)]


def _save_roll(path: Path, rows: list[list[Any]]) -> Path:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    book.save(path)
    return path


def _roll_parts(rows: list[list[Any]]) -> tuple[int, int]:
    """(header row index, index after the last resident row) of the sample roll."""
    header = next(i for i, row in enumerate(rows) if row[0] == "Property")
    end = next(i for i in range(header + 1, len(rows)) if not any(rows[i]))
    return header, end


def _shuffled_in_groups(rows: list[list[Any]], rng: Any) -> list[list[Any]]:
    """The roll's resident rows shuffled within each property's group (its subtotal row
    stays under its group), and the groups in another order."""
    header, end = _roll_parts(rows)
    blocks: list[list[list[Any]]] = [[]]
    for row in rows[header + 1 : end]:
        blocks[-1].append(row)
        if str(row[0]).startswith("Subtotal"):  # a subtotal closes its group
            blocks.append([])
    blocks = [b for b in blocks if b]
    for block in blocks:
        people = [r for r in block if not str(r[0]).startswith("Subtotal")]
        rng.shuffle(people)
        block[: len(people)] = people
    rng.shuffle(blocks)
    return [*rows[: header + 1], *(r for b in blocks for r in b), *rows[end:]]


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    phases=[Phase.explicit, Phase.reuse, Phase.generate],  # a roll is slow to shrink
)
@given(data=st.data())
def test_a_roll_re_sorted_or_re_saved_has_the_same_charges(
    refs: RefData, tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    folder = tmp_path_factory.mktemp("roll")
    expected = _records(ROLL, refs)
    rows = _shuffled_in_groups(_roll_rows(), data.draw(st.randoms(use_true_random=False)))
    if data.draw(st.booleans()):
        text = [["" if v is None else str(v) for v in row] for row in rows]
        path = _write(folder / "rent_roll_2026-12.csv", text, "crlf")
    else:
        path = _save_roll(folder / "rent_roll_2026-12.xlsx", rows)
    assert _records(path, refs) == expected


# --- against the sandbox ---------------------------------------------------------------------


def _run(sandbox: RunningSandbox, data: Path, said: list[str]) -> int:
    from pipelines.runs.pipeline import run

    return run(settings_for(sandbox, data, settle_s=0.0), say=said.append).exit_code


def _records_in_rm(api: httpx.Client, kind: str) -> list[dict[str, Any]]:
    return [r for r in api.get("/_sandbox/records").json()["results"] if r["kind"] == kind]


def _open_items(data: Path) -> list[dict[str, Any]]:
    with Ledger(data / "ledger.sqlite", readonly=True) as ledger:
        return ledger.items()


def _errors(data: Path, name: str) -> list[str]:
    stem = Path(name).stem  # the archive may add to the name (a version, a digest)
    found = sorted(
        (p for p in data.rglob("*.errors.csv") if stem in p.name), key=lambda p: p.stat().st_mtime
    )
    if not found:
        return []
    return [line for line in found[-1].read_text().splitlines()[1:] if line]


def test_a_re_sorted_bill_export_is_unchanged_and_a_corrected_one_is_one_conflict(
    sandbox: RunningSandbox, api: httpx.Client, tmp_path: Path
) -> None:
    """On main the re-sorted export gave 10 conflicts ("this line was $1,342.16, now
    $533.02 … give the corrected bill a new number") and exit 1."""
    data = tmp_path / "data"
    inbox = data / "inbox"
    inbox.mkdir(parents=True)
    (inbox / "vendor_bills.csv").write_bytes(BILLS.read_bytes())
    said: list[str] = []
    assert _run(sandbox, data, said) == 0, said
    posted = len(_records_in_rm(api, "invoice"))
    titles, header, lines, tail = _table(BILLS)
    _write(inbox / "vendor_bills.csv", [*titles, header, *lines[::-1], *tail], "plain")
    said = []
    assert _run(sandbox, data, said) == 0, said
    assert len(_records_in_rm(api, "invoice")) == posted
    assert not [line for line in said if "conflict" in line.lower() or "Not posted" in line], said
    assert _open_items(data) == []

    corrected = [list(line) for line in lines[::-1]]
    which = next(i for i, line in enumerate(corrected) if line[7] == "1342.16")
    corrected[which][7] = "1,400.00"
    total = [[*row[:7], "$21,461.47"] if row and row[0] == "Total" else row for row in tail]
    _write(inbox / "vendor_bills.csv", [*titles, header, *corrected, *total], "plain")
    said = []
    assert _run(sandbox, data, said) == 1, said
    assert len(_records_in_rm(api, "invoice")) == posted
    rejected = _errors(data, "vendor_bills.csv")
    assert len(rejected) == 1, (rejected, said, sorted(map(str, data.rglob("*"))))
    assert rejected[0].startswith(f"{which + 5},"), rejected  # its own row (header is row 4)
    assert "this line was $1,342.16, now $1,400.00" in rejected[0], rejected[0]
    assert "new number" not in "\n".join([*said, *rejected])
    items = _open_items(data)
    assert [(i["cause"], i["amount_cents"]) for i in items] == [("conflict", 140000)], items


def _parking_column(rows: list[list[Any]]) -> int:
    header, _ = _roll_parts(rows)
    return rows[header].index("Parking")


def test_a_roll_whose_charge_header_was_corrected_is_unchanged(
    sandbox: RunningSandbox, api: httpx.Client, tmp_path: Path
) -> None:
    """On main, after the Parkng alias had posted the parking lines, the roll with its header
    corrected gave a conflict per parking line ("only the notes differ: change nothing"),
    exit 1, each showing the whole row's amount."""
    data = tmp_path / "data"
    inbox = data / "inbox"
    (data / "mappings").mkdir(parents=True)
    inbox.mkdir(parents=True)
    (data / "mappings" / "charge_codes.csv").write_text("spreadsheet_name,propexo_name\n")
    (data / "mappings" / "charge_codes.csv").write_text(
        "spreadsheet_name,propexo_name\nParkng,Parking\n"
    )
    rows = _roll_rows()
    header, end = _roll_parts(rows)
    parking = _parking_column(rows)
    misspelled = [list(row) for row in rows]
    misspelled[header][parking] = "Parkng"
    _save_roll(inbox / "rent_roll.xlsx", misspelled)
    said: list[str] = []
    assert _run(sandbox, data, said) == 0, said
    charges = _records_in_rm(api, "charge")
    assert any(str(c.get("description")).startswith("Parkng") for c in charges), charges[:3]

    _save_roll(inbox / "rent_roll.xlsx", rows)
    said = []
    assert _run(sandbox, data, said) == 0, said
    assert len(_records_in_rm(api, "charge")) == len(charges)
    assert not [line for line in said if "Not posted" in line or "reverse" in line], said
    assert _open_items(data) == []
    assert any("0 new records" in line for line in said), said

    changed = [list(row) for row in rows]
    row = next(i for i in range(header + 1, end) if changed[i][parking] == 75)
    changed[row][parking] = 80
    subtotal = next(i for i in range(row, len(changed)) if str(changed[i][0]).startswith("Sub"))
    total = next(i for i in range(subtotal, len(changed)) if changed[i][0] == "Total")
    for i in (row, subtotal, total):  # the roll's own totals say the new amount too
        changed[i][-1] += 5
    _save_roll(inbox / "rent_roll.xlsx", changed)
    said = []
    assert _run(sandbox, data, said) == 1, said
    assert len(_records_in_rm(api, "charge")) == len(charges)
    rejected = _errors(data, "rent_roll.xlsx")
    assert len(rejected) == 1, rejected
    assert "as $75.00; this file says $80.00" in rejected[0], rejected[0]
    items = _open_items(data)
    assert [(i["cause"], i["amount_cents"]) for i in items] == [("conflict", 8000)], items


def test_an_identical_charge_in_another_file_is_a_question_never_dropped(
    sandbox: RunningSandbox, api: httpx.Client, tmp_path: Path
) -> None:
    """On main a file with one Parking $50 line for a resident who already had one from the
    roll said "0 new records (50.00)", Complete, exit 0, and advised reversing correct
    charges of the roll ("has no line in this file … reverse it in Rent Manager"); and, as it
    shared a record key with the roll, it superseded the roll's open items."""
    data = tmp_path / "data"
    inbox = data / "inbox"
    inbox.mkdir(parents=True)
    rows = _roll_rows()
    header, end = _roll_parts(rows)
    parking = _parking_column(rows)
    misspelled = [list(row) for row in rows]
    last = max(i for i in range(header + 1, end) if not str(rows[i][0]).startswith("Subtotal"))
    misspelled[last][2] = "Nobody, Zed"  # a resident Propexo does not know: an open item
    _save_roll(inbox / "rent_roll.xlsx", misspelled)
    said: list[str] = []
    assert _run(sandbox, data, said) == 1, said
    before = len(_records_in_rm(api, "charge"))
    (unknown,) = _open_items(data)
    assert unknown["cause"] == "unknown_resident", unknown
    tenant = next(
        r for r in rows[header + 1 : end] if r[parking] == 50 and r[0] == rows[header + 1][0]
    )
    (inbox / "parking_2026-12.csv").write_text(
        "Property,Unit,Resident,Charge Code,Amount,Transaction Date\n"
        f'{tenant[0]},{tenant[1]},"{tenant[2]}",Parking,50.00,12/01/2026\n'
    )
    said = []
    assert _run(sandbox, data, said) == 1, said
    assert len(_records_in_rm(api, "charge")) == before  # held, not posted
    assert not [line for line in said if "reverse" in line or "has no line" in line], said
    items = _open_items(data)
    assert [(i["cause"], i["amount_cents"], i["file_name"]) for i in items] == [
        ("unknown_resident", unknown["amount_cents"], "rent_roll.xlsx"),
        ("second_charge", 5000, "parking_2026-12.csv"),
    ], items
    reasons = " ".join(items[1]["detail"]["reasons"])
    assert "a second charge, or the same one again?" in reasons, reasons

    # A person decides: the same one. Nothing is posted, and it is no longer open.
    with Ledger(data / "ledger.sqlite") as ledger:
        ledger.settle_item(items[1]["item_id"], by="clerk", note="the same parking charge")
    assert [i["cause"] for i in _open_items(data)] == ["unknown_resident"]
    assert len(_records_in_rm(api, "charge")) == before

    # The roll re-exported, corrected, under its own name: a version of the same source. Its
    # lines already posted are silent; the corrected row posts; the parking line is not asked
    # about again.
    _save_roll(inbox / "rent_roll.xlsx", rows)
    said = []
    assert _run(sandbox, data, said) == 0, said
    fixed = [v for v in rows[last][5:-1] if v]  # the corrected row's charges
    assert len(_records_in_rm(api, "charge")) == before + len(fixed), said
    assert _open_items(data) == []
    counts = Counter(json.dumps(r.get("reference_number")) for r in _records_in_rm(api, "charge"))
    assert max(counts.values()) == 1
