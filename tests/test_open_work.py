"""#36 "Every unfinished thing is an open item": what a run meets and cannot finish is on
`tieout todo` with its id, cause, file, rows, amount and a command that works as printed, until
it is settled; a run that met one is never complete, never exit 0."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest

from pipelines.ledger import Ledger
from pipelines.runs.items import implied_amounts, settle_command, todo_lines
from sandbox.faults import SandboxConfig
from sandbox.server import RunningSandbox, running_sandbox
from tests.conftest import ROOT, SAMPLES, TEST_DATA, run_cli
from tests.test_items import env_for, summary_of, todo_of


def as_printed(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """A command `tieout todo` printed, typed into a shell elsewhere than the data folder."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("PROPEXO_", "TIEOUT_"))}
    path = f"{ROOT / '.venv' / 'bin'}:{inherited.get('PATH', '')}"
    full = {
        **inherited,
        "PATH": path,
        "TIEOUT_CONFIG": str(TEST_DATA / "tieout-test.toml"),
        **env,
    }
    return subprocess.run(
        command, shell=True, capture_output=True, text=True, env=full, cwd="/", check=False
    )


def unseen_roll(path: Path) -> Path:
    """A rent roll of a layout no profile reads strictly: held until a person confirms it."""
    rows = [
        "Rent Roll,,,,,,,",
        "As of: 12/01/2026,,,,,,,",
        "Property,Unit,Resident,Rent,Agent,Floor Plan,Lease Type,Household Size",
        'Maple Court,101,"Kettering, Dakota",1250.00,Quill,2BR,Standard,2',
        'Maple Court,102,"Pembry, Skyler",1300.00,Quill,2BR,Standard,2',
    ]
    path.write_text("\r\n".join(rows) + "\r\n")
    return path


def test_refused_links_and_an_empty_file_are_open_items_until_the_printed_commands_settle_them(
    sandbox: RunningSandbox, tmp_path: Path
) -> None:
    """Today: the run said "Complete", exit 0; `todo` said "nothing open"; the empty file was
    "still being written; left for the next run" forever."""
    env = env_for(sandbox)
    data = tmp_path / "data"
    inbox = data / "inbox"
    inbox.mkdir(parents=True)
    outside = tmp_path / "outside.csv"
    shutil.copy2(SAMPLES / "vendor_bills.csv", outside)
    (inbox / "linked.csv").symlink_to(outside)
    empty = inbox / "empty.csv"
    empty.write_text("")
    old = time.time() - 60
    os.utime(empty, (old, old))

    first = run_cli("--data-dir", str(data), "run", env=env)
    assert first.returncode == 1, first.stdout + first.stderr
    summary = summary_of(first.stdout)
    assert summary["verdict"] == "needs attention"
    assert "Complete" not in first.stdout
    todo = todo_of(data, env)
    by_cause = {i["cause"]: i for i in todo["items"]}
    assert set(by_cause) == {"refused_link", "empty_file"}
    plain = run_cli("--data-dir", str(data), "todo", env=env).stdout
    for item in todo["items"]:
        assert item["id"] in plain  # `tieout settle ID` needs the id plain `todo` shows
        assert item["then"] == f"tieout --data-dir {data} run"
    assert "still being written" not in first.stdout

    # A second run meets them again: still open, still exit 1, nothing reported twice.
    again = run_cli("--data-dir", str(data), "run", env=env)
    assert again.returncode == 1, again.stdout + again.stderr
    assert {i["id"] for i in todo_of(data, env)["items"]} == {i["id"] for i in todo["items"]}

    # The commands, as printed, from another folder: the link becomes the file, the empty
    # file goes; the next run takes the bills in and settles both items.
    for item in todo["items"]:
        done = as_printed(item["command"], env)
        assert done.returncode == 0, done.stdout + done.stderr
    assert not (inbox / "linked.csv").is_symlink() and not empty.exists()
    last = as_printed(by_cause["empty_file"]["then"], env)
    assert last.returncode == 0, last.stdout + last.stderr
    assert todo_of(data, env) == {"items": [], "amount_cents": 0}
    assert summary_of(last.stdout)["verdict"] in ("complete", "waiting for sync")


def test_held_refused_and_unreadable_are_items_at_the_amounts_their_files_state(
    sandbox: RunningSandbox, tmp_path: Path
) -> None:
    """Today: the held file was in no `todo`; a refused file and an unreadable amount
    (`1,745.945`) counted 0.00 at stake; `retry NAME` said "no file of that name" for the name
    `todo` shows."""
    env = env_for(sandbox)
    data = tmp_path / "data"
    inbox = data / "inbox"
    inbox.mkdir(parents=True)
    source = (TEST_DATA / "shape_unreadable_under_total.csv").read_text()
    (inbox / "unreadable.csv").write_text(source)
    # Its total row says 9,999.99; its lines add up to 9,166.65: refused as a whole.
    (inbox / "untied.csv").write_text(
        source.replace("1,745.945", "1,533.33").replace("9,379.26", "9,999.99")
    )
    unseen_roll(inbox / "roll_dec.csv")

    first = run_cli("--data-dir", str(data), "run", env=env)
    assert first.returncode == 1, first.stdout + first.stderr
    todo = todo_of(data, env)
    by_cause = {i["cause"]: i for i in todo["items"]}
    assert set(by_cause) == {"rejected_row", "refused_file", "held_layout"}
    unreadable = by_cause["rejected_row"]
    assert unreadable["amount_text"] == "Rent 1,745.945"
    assert unreadable["amount_cents"] == 937926 - 763332  # the total less the readable lines
    assert unreadable["detail"]["implied"]["total_row"] == 10
    assert by_cause["refused_file"]["amount_cents"] == 999999
    held = by_cause["held_layout"]
    assert held["amount_cents"] == 255000 and held["file"] == "roll_dec.csv"
    assert held["command"] == f"tieout --data-dir {data} layout accept {inbox / 'roll_dec.csv'}"
    assert todo["amount_cents"] == 174594 + 999999 + 255000
    plain = run_cli("--data-dir", str(data), "todo", env=env).stdout
    assert "open: 3 items, 14,295.93 at stake" in plain
    assert "Rent 1,745.945; its total row 10 says 9,379.26" in plain
    summary = summary_of(first.stdout)
    refused = [r for r in summary["verdict_reasons"] if r["reason"].startswith("files refused")]
    assert refused and refused[0]["amount_cents"] == 999999

    # `retry` takes the name `todo` shows for the refused file.
    retried = run_cli("--data-dir", str(data), "retry", "untied.csv", env=env)
    assert "no file of that name" not in retried.stderr, retried.stderr
    assert retried.returncode == 1, retried.stdout + retried.stderr  # still refused: open

    # The held layout, accepted as printed, then the printed run: settled by its pass.
    accepted = as_printed(held["command"], env)
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    taken = as_printed(held["then"], env)
    # It met none of the other items (theirs are other runs' and files'): exit 0.
    assert taken.returncode == 0, taken.stdout + taken.stderr
    assert "held_layout" not in {i["cause"] for i in todo_of(data, env)["items"]}


def test_a_write_propexo_refused_is_an_item_and_resolved_as_printed(tmp_path: Path) -> None:
    """Today: a 422 was in `tieout status` only; `todo` said "nothing open"."""
    quick = SandboxConfig(job_delay_s=0.05, rate_limit=1000, sync_duration_s=0.2)
    with running_sandbox(quick) as box:
        env = env_for(box)
        data = tmp_path / "data"
        (data / "inbox").mkdir(parents=True)
        shutil.copy2(SAMPLES / "vendor_bills.csv", data / "inbox" / "bills.csv")
        box.config.faults_at = {"post": {box.app.seen_by_route["post"] + 3: "422"}}
        first = run_cli("--data-dir", str(data), "run", env=env)
        assert first.returncode == 1, first.stdout + first.stderr
        (item,) = todo_of(data, env)["items"]
        assert item["cause"] == "write_refused" and item["amount_cents"] > 0
        assert item["command"] == (
            f'tieout --data-dir {data} resolve "{item["detail"]["record_key"]}" --send-again'
        )
        assert item["id"] in run_cli("--data-dir", str(data), "todo", env=env).stdout
        for command in (item["command"], item["then"]):
            done = as_printed(command, env)
            assert done.returncode == 0, done.stdout + done.stderr
        assert todo_of(data, env)["items"] == []
        bills = httpx.get(
            f"{box.base_url}/_sandbox/records",
            params={"kind": "invoice"},
            headers={"Authorization": f"Bearer {box.config.token}"},
        ).json()["results"]
        assert len(bills) == 12  # each bill once


def test_a_write_reported_failed_is_settled_by_its_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`tieout settle ID` takes the id `todo` shows for a write Propexo reported failed (today:
    "is not an open item")."""
    from click.testing import CliRunner

    from pipelines.cli.main import cli

    data = tmp_path / "data"
    data.mkdir()
    with Ledger(data / "ledger.sqlite") as ledger:
        ledger.stage_records(
            "r1",
            "abc",
            pd.DataFrame(
                {
                    "record_key": ["charge:int_rm_demo:TO0001"],
                    "kind": "charge",
                    "integration_id": "int_rm_demo",
                    "location_id": "L",
                    "amount_cents": [1200],
                    "content_hash": "h",
                    "payload": [json.dumps({"n": 1})],
                    "source_rows": [[4]],
                    "source_file": "b.csv",
                    "reference_number": ["TO0001"],
                }
            ),
        )
        ledger.transition(["charge:int_rm_demo:TO0001"], "failed", run_id="r1")
    runner = CliRunner()
    monkeypatch.setenv("TIEOUT_CONFIG", str(tmp_path / "none.toml"))
    base = ["--data-dir", str(data)]
    listed = json.loads(runner.invoke(cli, [*base, "todo", "--json"]).output)
    (item,) = listed["items"]
    assert item["cause"] == "write_failed" and item["rows"] == [4]
    # Propexo's "failed" is its word: reconcile looks for the record first (#37).
    assert item["command"] == f"tieout --data-dir {data} reconcile"
    assert item["then"].startswith(f"tieout --data-dir {data} settle {item['id']} ")
    done = runner.invoke(cli, [*base, "settle", item["id"], "--by", "Dana", "--note", "in RM"])
    assert done.exit_code == 0, done.output
    assert json.loads(runner.invoke(cli, [*base, "todo", "--json"]).output)["items"] == []


def test_todo_lines_carry_each_items_id_and_the_data_folder() -> None:
    item = {
        "item_id": "it-1",
        "cause": "refused_link",
        "file_name": "a b.csv",
        "rows": [],
        "amount_cents": 0,
        "detail": {"path": "/in/a b.csv", "reason": "a link"},
    }
    lines = todo_lines([item], "/in", "tieout --data-dir /d")
    assert lines[1].startswith("  it-1 a b.csv (a link): cp -L")
    assert settle_command(item, "/in")[0] == (
        'cp -L "/in/a b.csv" "/in/a b.csv.part" && mv "/in/a b.csv.part" "/in/a b.csv"'
    )
    assert lines[-1] == "open: 1 items, 0.00 at stake (`tieout --data-dir /d todo`)"


def test_several_unreadable_amounts_under_one_total_share_its_rest_once() -> None:
    totals = [
        {
            "source_row": 20,
            "stated_cents": 1000,
            "computed_cents": 600,
            "checked": False,
            "unreadable": [{"source_row": 5, "text": "1.2.3"}, {"source_row": 9, "text": "x"}],
            "unreadable_rows": 2,
        },
        {"source_row": 21, "stated_cents": 5, "computed_cents": 5, "checked": True},
    ]
    implied = implied_amounts(totals)
    assert implied[5]["amount_cents"] == 400 and implied[9]["amount_cents"] == 0
    assert implied[9]["rows"] == [5, 9]


def test_a_record_in_doubt_prints_each_resolve_command_whole() -> None:
    """#36: every printed command works as printed; `resolve KEY --present|--absent` is not
    a command a shell can run. Each of the two is printed whole."""
    from pipelines.runs.items import settle_command

    item = {
        "item_id": "it-9",
        "cause": "in_doubt",
        "file_name": "b.csv",
        "rows": [4],
        "detail": {"record_key": "invoice:int_rm_demo:v1:W-1"},
    }
    command, then = settle_command(item, "/in", "tieout --data-dir /d")
    assert command == "tieout --data-dir /d reconcile"
    assert then is not None and "|" not in then
    resolve = 'tieout --data-dir /d resolve "invoice:int_rm_demo:v1:W-1"'
    assert f"{resolve} --present" in then and f"{resolve} --absent" in then


def test_a_roll_refused_for_a_misspelled_charge_header_is_settled_by_the_printed_alias(
    sandbox: RunningSandbox, tmp_path: Path
) -> None:
    """#36: a misspelled charge header ("Parkng") left the sample roll, with its per-property
    subtotals, refused as "totals do not tie", its item saying "correct the file". Now the
    refusal names the column (its amounts are exactly what the grand total misses), and the
    item's commands, typed as printed, make it a charge and read the kept file again: the
    roll posts, every line once, and nothing is open."""
    import openpyxl

    data = tmp_path / "data"
    (data / "inbox").mkdir(parents=True)
    book = openpyxl.load_workbook(SAMPLES / "rent_roll.xlsx")
    for cell in book.active[5]:
        if cell.value == "Parking":
            cell.value = "Parkng"
    book.save(data / "inbox" / "rent_roll.xlsx")
    env = env_for(sandbox)
    first = run_cli("--data-dir", str(data), "run", env=env)
    assert first.returncode == 1, first.stdout + first.stderr
    said = " ".join(first.stdout.split())
    assert 'The difference is exactly what column "Parkng" holds' in said, said
    (item,) = todo_of(data, env)["items"]
    assert item["cause"] == "refused_file" and item["amount_cents"] == 6626500
    assert item["command"].endswith('alias add charge_code "Parkng" "Parking"'), item
    assert item["then"].endswith('retry "rent_roll.xlsx"'), item
    for command in (item["command"], item["then"]):
        done = as_printed(command, env)
        assert done.returncode == 0, command + "\n" + done.stdout + done.stderr
    assert todo_of(data, env)["items"] == []
    records = httpx.get(
        f"{sandbox.base_url}/_sandbox/records",
        headers={"Authorization": f"Bearer {sandbox.config.token}"},
    ).json()["results"]
    held = [r for r in records if r["kind"] in ("charge", "credit")]
    assert len({r["reference_number"] for r in held}) == len(held)
    assert sum(int(r["amount_in_cents"]) for r in held) == 6626500
