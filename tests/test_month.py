"""#36 "Done when": a clerk's month against the sandbox, played with only the commands tieout
prints. A bad first day (a misspelled vendor, a misspelled charge header, a resident Propexo
does not know by that spelling, an amount typed `92.385`); the fixes the items ask for; a
re-sorted re-export under another name; the roll with its header corrected; a bill corrected
in one amount; that file dropped again; an empty file; a file of a new layout, accepted. At
each step nothing is in Rent Manager twice; at the end it holds exactly what the correct files
say, nothing is open, each period's workpaper counts each source once and every check holds,
sign-off was refused while an item was open and taken after, and every file a report links
to holds the bytes its run read."""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import openpyxl

from sandbox.server import RunningSandbox
from tests.conftest import SAMPLES, receiving, run_cli
from tests.test_open_work import as_printed, env_for, todo_of


def _records(box: RunningSandbox) -> list[dict[str, Any]]:
    return list(
        httpx.get(
            f"{box.base_url}/_sandbox/records",
            headers={"Authorization": f"Bearer {box.config.token}"},
        ).json()["results"]
    )


def _key(record: dict[str, Any]) -> tuple[Any, ...]:
    if record["kind"] == "invoice":
        return ("invoice", record.get("x_vendor_id"), record.get("invoice_number"))
    return (record["kind"], record.get("reference_number"))


def _nothing_twice(box: RunningSandbox) -> list[dict[str, Any]]:
    """Every record Rent Manager holds, asserting none is there twice."""
    held = _records(box)
    twice = [k for k, n in Counter(map(_key, held)).items() if n > 1]
    assert not twice, f"in Rent Manager twice: {twice}"
    return held


def _what(held: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """What Rent Manager holds: each record's key and amount (a sync stamps the rest)."""
    return sorted(
        (*_key(r), r.get("total_amount_in_cents", r.get("amount_in_cents"))) for r in held
    )


def _roll(path: Path, *, header: str = "Parking", resident: str | None = None) -> Path:
    book = openpyxl.load_workbook(SAMPLES / "rent_roll.xlsx")
    sheet = book.active
    assert sheet is not None
    for cell in sheet[5]:
        if cell.value == "Parking":
            cell.value = header
    for row in sheet.iter_rows(min_row=6):
        if resident and row[2].value == "Northam, Riley":
            row[2].value = resident
    book.save(path)
    return path


def _unseen_roll(path: Path) -> Path:
    """January's roll of a layout no profile reads strictly: held until a person confirms it."""
    rows = [
        "Rent Roll,,,,,,,",
        "As of: 01/01/2027,,,,,,,",
        "Property,Unit,Resident,Rent,Agent,Floor Plan,Lease Type,Household Size",
        'Maple Court,101,"Kettering, Dakota",1250.00,Quill,2BR,Standard,2',
        'Maple Court,102,"Pembry, Skyler",1300.00,Quill,2BR,Standard,2',
    ]
    path.write_text("\r\n".join(rows) + "\r\n")
    return path


def _follow(item: dict[str, Any], env: dict[str, str]) -> None:
    """An item's command, then what it says to run after it, exactly as printed."""
    for command in (item["command"], item.get("then")):
        if command:
            done = as_printed(command, env)
            assert done.returncode in (0, 1), command + "\n" + done.stdout + done.stderr


def _run(data: Path, env: dict[str, str]) -> tuple[int, str]:
    done = run_cli("--data-dir", str(data), "run", env=env)
    assert done.returncode in (0, 1), done.stdout + done.stderr
    return done.returncode, done.stdout


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_clerks_month_with_only_the_commands_tieout_prints(
    sandbox: RunningSandbox, tmp_path: Path
) -> None:
    env = env_for(sandbox)
    data = tmp_path / "data"
    inbox = data / "inbox"
    inbox.mkdir(parents=True)
    good = (SAMPLES / "vendor_bills.csv").read_text()
    bad = good.replace("ACME Plumbing LLC,B-2026124", "Acme Plumbng,B-2026124").replace(
        "Panel inspection,92.38", "Panel inspection,92.385"
    )

    # Day 1: everything that can go wrong.
    (inbox / "vendor_bills.csv").write_text(bad)
    _roll(inbox / "rent_roll.xlsx", header="Parkng", resident="Northem, Riley")
    code, _ = _run(data, env)
    assert code == 1
    causes = Counter(i["cause"] for i in todo_of(data, env)["items"])
    assert causes == {"unknown_vendor": 1, "rejected_row": 1, "refused_file": 1}, causes
    _nothing_twice(sandbox)

    # The fixes the items print: the vendor's alias and the roll's charge column, each then
    # read again; then the resident the roll now names (suggested from its own unit).
    for item in todo_of(data, env)["items"]:
        if item["cause"] in ("unknown_vendor", "refused_file"):
            _follow(item, env)
    (resident,) = [i for i in todo_of(data, env)["items"] if i["cause"] == "unknown_resident"]
    assert resident["command"].endswith('alias add resident "Northem, Riley" "Riley Northam"')
    _follow(resident, env)
    (row,) = todo_of(data, env)["items"]
    assert row["cause"] == "rejected_row" and row["amount_text"] == "92.385"
    _nothing_twice(sandbox)

    # The corrected file, dropped as the item says: nothing is open.
    (inbox / "vendor_bills.csv").write_text(good)
    assert _run(data, env)[0] == 0
    assert todo_of(data, env)["items"] == []
    posted = _nothing_twice(sandbox)

    # A re-sorted re-export under another name, and the roll with its header corrected:
    # unchanged, nothing posted, no conflict.
    lines = good.splitlines()
    body = [line for line in lines[4:] if line and not line.startswith((",", "Total"))]
    random.Random(7).shuffle(body)
    rest = [line for line in lines[4:] if line not in body]
    (inbox / "ap_export_resorted.csv").write_text("\n".join(lines[:4] + body + rest) + "\n")
    assert _run(data, env)[0] == 0
    _roll(inbox / "rent_roll.xlsx", resident="Northem, Riley")
    code, out = _run(data, env)
    assert code == 0, out
    assert todo_of(data, env)["items"] == []
    assert _what(_nothing_twice(sandbox)) == _what(posted)

    # A bill corrected in one amount: exactly one conflict, showing that line's amounts;
    # dropped again, still one; an empty file is an item until removed as printed.
    changed = good.replace(
        'Water heater replacement,"1,126.59"', 'Water heater replacement,"1,150.00"'
    )
    changed = changed.replace('"$21,403.63"', '"$21,427.04"')
    (inbox / "vendor_bills.csv").write_text(changed)
    assert _run(data, env)[0] == 1
    (conflict,) = todo_of(data, env)["items"]
    assert conflict["cause"] == "conflict" and conflict["amount_cents"] == 115000
    assert "this line was $1,126.59, now $1,150.00" in conflict["detail"]["reasons"][0]
    assert "new number" not in conflict["detail"]["reasons"][0]
    listed = run_cli("--data-dir", str(data), "todo", env=env).stdout
    assert "this line was $1,126.59, now $1,150.00" in listed, listed
    (inbox / "vendor_bills.csv").write_text(changed)
    (inbox / "empty.csv").write_bytes(b"")
    assert _run(data, env)[0] == 1
    items = {i["cause"]: i for i in todo_of(data, env)["items"]}
    assert set(items) == {"conflict", "empty_file"}
    _follow(items["empty_file"], env)
    assert [i["cause"] for i in todo_of(data, env)["items"]] == ["conflict"]

    # A roll of a new layout is held until a person accepts it, as printed.
    _unseen_roll(inbox / "roll_jan.csv")
    assert _run(data, env)[0] == 1
    (held,) = [i for i in todo_of(data, env)["items"] if i["cause"] == "held_layout"]
    _follow(held, env)
    assert len(_nothing_twice(sandbox)) == len(posted) + 2  # the new roll's two charges

    # The periods: the bills are November's, the rolls December's. Sign-off is refused
    # while the conflict is open, and taken once it is settled (as printed).
    refused = run_cli("--data-dir", str(data), "signoff", "2026-11", "--by", "Dana", env=env)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert conflict["id"] in refused.stdout + refused.stderr
    _follow(conflict, env)
    assert todo_of(data, env) == {"items": [], "amount_cents": 0}
    # Propexo's next sync, proven by its webhook: every record is found where it was posted.
    with receiving(sandbox, data):
        synced = run_cli("--data-dir", str(data), "reconcile", "--sync", "--wait", "30", env=env)
    assert synced.returncode == 0, synced.stdout + synced.stderr
    stated = {"2026-11": 2142704, "2026-12": 6626500, "2027-01": 255000}
    for period, total in stated.items():
        shown = run_cli("--data-dir", str(data), "report", "--period", period, env=env)
        assert shown.returncode == 0, shown.stdout + shown.stderr
        summary = json.loads((data / "reports" / f"period-{period}" / "summary.json").read_text())
        assert summary["totals"]["source_total_cents"] == total, (period, summary["totals"])
        assert summary["verdict"] == "complete", summary["verdict_reasons"]
        signed = run_cli("--data-dir", str(data), "signoff", period, "--by", "Dana", env=env)
        assert signed.returncode == 0, signed.stdout + signed.stderr

    # Rent Manager holds what the correct files say, each once: every bill (the corrected
    # amount was settled by a person in Rent Manager, not posted), both rolls' charges.
    final = _nothing_twice(sandbox)
    bills = {
        r["invoice_number"]: int(r["total_amount_in_cents"])
        for r in final
        if r["kind"] == "invoice"
    }
    assert sum(bills.values()) == 2140363 and len(bills) == 12
    charged = [r for r in final if r["kind"] in ("charge", "credit")]
    assert sum(int(r["amount_in_cents"]) for r in charged) == 6626500 + 255000

    # Every file every report links to holds the bytes its run read.
    for path in sorted((data / "reports").glob("*/summary.json")):
        for f in json.loads(path.read_text()).get("files", []):
            if f.get("moved_to"):
                assert _sha(Path(f["moved_to"])) == f["sha256"], (path, f["name"])
    assert not list(data.rglob(".processing/*/*"))
