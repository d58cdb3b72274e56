"""The clerk's loop (#27): every exception is an open item until settled; a fixed file's money
arrives exactly once, by `tieout retry` or by dropping the same file again."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import httpx
import pytest

from pipelines.core.models import Issue, IssueCode
from pipelines.runs.items import (
    file_items,
    item_id,
    quoted,
    settle_command,
    suggestion_in,
    todo_lines,
)
from sandbox.faults import SandboxConfig
from sandbox.server import RunningSandbox, running_sandbox
from tests.conftest import SAMPLES, receiving, run_cli


def env_for(box: RunningSandbox) -> dict[str, str]:
    return {"PROPEXO_BASE_URL": box.base_url, "PROPEXO_API_TOKEN": box.config.token}


def invoices(base_url: str, token: str) -> list[tuple[str, str, int]]:
    """Every bill Rent Manager holds: (vendor, invoice number, total)."""
    found = httpx.get(
        f"{base_url}/_sandbox/records",
        params={"kind": "invoice"},
        headers={"Authorization": f"Bearer {token}"},
    ).json()["results"]
    return sorted(
        (str(r["x_vendor_id"]), str(r["invoice_number"]), int(r["total_amount_in_cents"]))
        for r in found
    )


def the_bad_file() -> tuple[str, str]:
    """The sample bill export as a clerk first gets it: two vendors spelled as the AP system
    spells them (two invoices, four rows) and one amount typed with three decimals; and the
    file as the clerk corrects it (the amount only: the names are settled by aliases)."""
    text = (SAMPLES / "vendor_bills.csv").read_text()
    text = text.replace("ACME Plumbing LLC,B-2026124", "Acme Plumbng,B-2026124")
    text = text.replace("Harbor Pest Control,B-2026187", "Harbour Pest Ctrl,B-2026187")
    bad = text.replace("Panel inspection,92.38", "Panel inspection,92.385")
    assert bad.count("Acme Plumbng") == 2 and bad.count("Harbour Pest Ctrl") == 2
    assert "92.385" in bad
    return bad, text


def todo_of(data: Path, env: dict[str, str]) -> dict:  # type: ignore[type-arg]
    done = run_cli("--data-dir", str(data), "todo", "--json", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def summary_of(stdout: str) -> dict:  # type: ignore[type-arg]
    line = next(line for line in stdout.splitlines() if line.startswith("report: "))
    return json.loads((Path(line.removeprefix("report: ")).parent / "summary.json").read_text())


def never_twice(box: RunningSandbox) -> list[tuple[str, str, int]]:
    held = invoices(box.base_url, box.config.token)
    twice = [k for k, n in Counter((v, i) for v, i, _ in held).items() if n > 1]
    assert not twice, f"posted twice: {twice}"
    return held


@pytest.mark.parametrize("how", ["retry", "drop again"])
def test_the_clerks_loop_posts_every_fixed_row_exactly_once(
    sandbox: RunningSandbox, tmp_path: Path, how: str
) -> None:
    """#27 "Done when": a first run with two unknown names and one unreadable amount needs
    attention with 3 open items; aliases, then `retry` (or the identical file dropped again)
    post the rows of the two names; the corrected file posts the last row; nothing is open,
    `reconcile --sync` exits 0, the first run's report says which run settled each item, and
    Rent Manager holds exactly what a clean run of the correct file would."""
    env = env_for(sandbox)
    data = tmp_path / "data"
    inbox = data / "inbox"
    inbox.mkdir(parents=True)
    bad, corrected = the_bad_file()
    (inbox / "bills.csv").write_text(bad)

    first = run_cli("--data-dir", str(data), "run", env=env)
    assert first.returncode == 1, first.stdout + first.stderr
    first_summary = summary_of(first.stdout)
    assert first_summary["verdict"] == "needs attention"
    todo = todo_of(data, env)
    assert sorted(i["cause"] for i in todo["items"]) == [
        "rejected_row",
        "unknown_vendor",
        "unknown_vendor",
    ]
    by_cause = {(i["cause"], i["detail"].get("name")): i for i in todo["items"]}
    acme = by_cause[("unknown_vendor", "Acme Plumbng")]
    assert acme["rows"] == [8, 9] and acme["amount_cents"] == 13524 + 150890
    tieout = f"tieout --data-dir {data}"  # the data folder of the run: commands work as printed
    assert acme["command"] == f'{tieout} alias add vendor "Acme Plumbng" "ACME Plumbing LLC"'
    assert acme["then"] == f'{tieout} retry "bills.csv"'
    amount = by_cause[("rejected_row", None)]
    assert amount["rows"] == [12] and amount["amount_text"] == "92.385"
    assert todo["amount_cents"] == sum(i["amount_cents"] for i in todo["items"])
    # The run's console ends with the same list, and status counts it.
    assert f'{tieout} alias add vendor "Harbour Pest Ctrl" "Harbor Pest Control"' in first.stdout
    status = run_cli("--data-dir", str(data), "status", env=env)
    assert "3 open items" in status.stdout, status.stdout
    assert len(never_twice(sandbox)) == 12 - 3  # three invoices held back

    # The clerk adds the aliases the items name (the configured mappings folder).
    (data / "mappings").mkdir()
    (data / "mappings" / "vendors.csv").write_text(
        "spreadsheet_name,propexo_name\n"
        "Acme Plumbng,ACME Plumbing LLC\n"
        "Harbour Pest Ctrl,Harbor Pest Control\n"
    )
    if how == "retry":
        second = run_cli("--data-dir", str(data), "retry", "bills.csv", env=env)
    else:
        (inbox / "bills.csv").write_text(bad)  # the very same bytes
        second = run_cli("--data-dir", str(data), "run", env=env)
        assert "duplicate drop" not in second.stdout
    assert second.returncode == 1, second.stdout + second.stderr  # the amount is still open
    second_summary = summary_of(second.stdout)
    assert len(never_twice(sandbox)) == 12 - 1
    assert [i["cause"] for i in todo_of(data, env)["items"]] == ["rejected_row"]

    # The corrected file posts the last row and supersedes the first file's item.
    (inbox / "bills.csv").write_text(corrected)
    third = run_cli("--data-dir", str(data), "run", env=env)
    assert third.returncode == 0, third.stdout + third.stderr
    third_summary = summary_of(third.stdout)
    assert todo_of(data, env) == {"items": [], "amount_cents": 0}
    held = never_twice(sandbox)
    assert len(held) == 12

    # Dropping the first file once more is now a pure duplicate drop: every row is settled.
    (inbox / "bills.csv").write_text(bad)
    fourth = run_cli("--data-dir", str(data), "run", env=env)
    assert "duplicate drop" in fourth.stdout, fourth.stdout
    assert never_twice(sandbox) == held

    with receiving(sandbox, data):
        synced = run_cli("--data-dir", str(data), "reconcile", "--sync", "--wait", "20", env=env)
    assert synced.returncode == 0, synced.stdout + synced.stderr

    # The first run keeps its verdict, and says which run settled each of its items.
    report = data / "reports" / first_summary["run_id"]
    then = json.loads((report / "summary.json").read_text())
    assert then["verdict"] == "needs attention"
    assert then["verdict_now"] == "complete"
    outcomes = {(i["cause"], i["name"]): i for i in then["items"]}
    assert len(outcomes) == 3
    for name in ("Acme Plumbng", "Harbour Pest Ctrl"):
        assert outcomes[("unknown_vendor", name)]["settled_in_run"] == second_summary["run_id"]
    assert outcomes[("rejected_row", None)]["state"] == "superseded"
    assert outcomes[("rejected_row", None)]["settled_in_run"] == third_summary["run_id"]
    html = (report / "report.html").read_text()
    assert f"settled in run {second_summary['run_id']}" in html
    index = (data / "reports" / "index.html").read_text()
    row = next(r for r in index.split("<tr>") if first_summary["run_id"] in r)
    assert ">Needs attention</span>" in row and 'data-verdict-now="complete"' in row
    runs = run_cli("--data-dir", str(data), "runs", env=env)
    line = next(x for x in runs.stdout.splitlines() if first_summary["run_id"] in x)
    assert "needs attention" in line and "complete" in line, runs.stdout

    # Rent Manager holds exactly what a clean run of the correct file would.
    with running_sandbox(SandboxConfig(job_delay_s=0.05, rate_limit=1000)) as clean:
        clean_data = tmp_path / "clean"
        (clean_data / "inbox").mkdir(parents=True)
        shutil.copy2(SAMPLES / "vendor_bills.csv", clean_data / "inbox" / "bills.csv")
        done = run_cli("--data-dir", str(clean_data), "run", env=env_for(clean))
        assert done.returncode == 0, done.stdout + done.stderr
        assert invoices(clean.base_url, clean.config.token) == held


# --- pure: items from issues, ids, commands -----------------------------------------------------


def _issue(code: IssueCode, row: int, value: str | None = None, message: str = "") -> Issue:
    return Issue(code, message or code.value, "roll.csv", row, "resident", value)


def test_an_unknown_name_is_one_item_with_all_its_rows_and_a_row_with_another_fault_its_own() -> (
    None
):
    issues = [
        _issue(IssueCode.UNKNOWN_RESIDENT, 5, "Jesup, Morgan", "did you mean 'Morgan Jessup'?"),
        _issue(IssueCode.UNKNOWN_RESIDENT, 9, "Jesup, Morgan", "did you mean 'Morgan Jessup'?"),
        _issue(IssueCode.UNKNOWN_RESIDENT, 7, "Lee, Ann"),
        _issue(IssueCode.BAD_AMOUNT, 7),
    ]
    items = file_items(
        "roll.csv", "abc", issues, cents_by_row={5: 100, 9: 250, 7: 40}, amounts_as_shown={7: "x"}
    )
    by_cause = {(i.cause, i.detail.get("name")): i for i in items}
    assert set(by_cause) == {("unknown_resident", "Jesup, Morgan"), ("rejected_row", None)}
    name = by_cause[("unknown_resident", "Jesup, Morgan")]
    assert name.rows == (5, 9) and name.amount_cents == 350
    assert name.detail["suggestion"] == "Morgan Jessup"
    row = by_cause[("rejected_row", None)]
    assert row.rows == (7,) and row.amount_text == "x"
    # Stable: the same exception met again is the same item; another file's is another.
    again = file_items("roll.csv", "abc", list(reversed(issues)))
    assert {i.item_id for i in again} == {i.item_id for i in items}
    assert item_id("rejected_row", "abc", 7) != item_id("rejected_row", "abd", 7)
    command, then = settle_command(
        {"cause": name.cause, "detail": name.detail, "file_name": "roll.csv", "item_id": "x"}, "in"
    )
    assert command == 'tieout alias add resident "Jesup, Morgan" "Morgan Jessup"'
    assert then == 'tieout retry "roll.csv"'


def test_suggestions_and_quoting_survive_apostrophes_and_dollars() -> None:
    assert suggestion_in("""did you mean "O'Brien Ltd", 'X'?""") == "O'Brien Ltd"
    assert suggestion_in("is not known to Propexo.") is None
    assert quoted('say "$5"') == '"say \\"\\$5\\""'


def test_todo_lists_each_cause_once_with_its_rows_amount_and_the_total() -> None:
    items = [
        {
            "item_id": "a",
            "cause": "unknown_vendor",
            "file_name": "b.csv",
            "rows": [3, 4],
            "amount_cents": 1000,
            "detail": {"name": "Acme", "kind": "vendor", "suggestion": "ACME"},
        },
        {
            "item_id": "b",
            "cause": "rejected_row",
            "file_name": "b.csv",
            "rows": [5],
            "amount_cents": 0,
            "amount_text": "12.345",
            "detail": {},
        },
    ]
    lines = todo_lines(items, "data/inbox")
    assert lines[0] == "vendors Propexo does not know: 1 (2 rows, 10.00)"
    assert lines[
        1
    ] == '  a "Acme" (b.csv row 3, 4): tieout alias add vendor "Acme" "ACME", then ' + (
        'tieout retry "b.csv"'
    )
    assert lines[2].startswith("rows rejected for what they hold: 1 (1 rows")
    assert lines[-1] == "open: 2 items, 10.00 at stake (`tieout todo`)"
    assert todo_lines([], "x") == ["nothing open: every exception is settled"]


def test_with_approve_each_file_a_file_waits_for_its_checker_and_the_report_names_them(
    sandbox: RunningSandbox, tmp_path: Path
) -> None:
    """#27 maker and checker: the file is held in the inbox, an open item with its preview,
    nothing posted, until `tieout approve FILE --by NAME`; the report names who and when."""
    config = tmp_path / "tieout.toml"
    config.write_text("settle_s = 0.2\napprove_each_file = true\n")
    env = {**env_for(sandbox), "TIEOUT_CONFIG": str(config)}
    data = tmp_path / "data"
    (data / "inbox").mkdir(parents=True)
    shutil.copy2(SAMPLES / "vendor_bills.csv", data / "inbox" / "bills.csv")

    held = run_cli("--data-dir", str(data), "run", env=env)
    assert held.returncode == 1, held.stdout + held.stderr
    assert "held for approval" in held.stdout
    assert (data / "inbox" / "bills.csv").exists()
    assert invoices(sandbox.base_url, sandbox.config.token) == []
    (item,) = todo_of(data, env)["items"]
    assert item["cause"] == "awaiting_approval"
    assert item["command"] == f'tieout --data-dir {data} approve "bills.csv" --by NAME'
    preview = item["detail"]["preview"]
    assert preview["total_cents"] == item["amount_cents"] == 2140363
    assert sum(preview["by_location"].values()) == 2140363
    assert preview["file_totals"][0]["stated_cents"] == 2140363

    # Another run does not post it either: it is still held.
    again = run_cli("--data-dir", str(data), "run", env=env)
    assert "held for approval" in again.stdout
    assert invoices(sandbox.base_url, sandbox.config.token) == []

    approved = run_cli(
        "--data-dir", str(data), "approve", "bills.csv", "--by", "Dana Checker", env=env
    )
    assert approved.returncode == 0, approved.stdout + approved.stderr
    assert len(never_twice(sandbox)) == 12
    assert todo_of(data, env)["items"] == []
    summary = summary_of(approved.stdout)
    assert [a["by"] for a in summary["approvals"]] == ["Dana Checker"]
    html = (data / "reports" / summary["run_id"] / "report.html").read_text()
    assert "approved for posting by Dana Checker" in html


def test_a_runs_verdict_now_counts_its_rejected_rows_only_while_their_items_are_open() -> None:
    """#27: a past run whose items were settled later never needs attention now; its verdict
    then is kept."""
    from datetime import UTC, datetime

    import pandas as pd

    from pipelines.reporting.report import decide_verdict, verdict_now

    files = [{"sha256": "abc", "rows_rejected": 2, "rejected_total_cents": 500, "file_totals": []}]
    records = pd.DataFrame({"state": ["matched"], "amount_cents": [100]})
    drops = pd.DataFrame(columns=["sha256", "first_run_id"])
    now = datetime.now(tz=UTC)
    then, _ = decide_verdict(files, drops, records, 0, now, 120)
    assert then == "needs attention"
    item = {"sha256": "abc", "state": "open", "amount_cents": 500}
    still, reasons = verdict_now([item], files, drops, records, 0, now, 120)
    assert still == "needs attention"
    assert reasons[0]["reason"].startswith("open items") and reasons[0]["count"] == 1
    settled = {**item, "state": "settled"}
    assert verdict_now([settled], files, drops, records, 0, now, 120) == ("complete", [])
    # A file the run met without items (a ledger from before #27) keeps its rejected rows.
    assert verdict_now([], files, drops, records, 0, now, 120)[0] == "needs attention"
    # What its records are now still counts: a record gone missing needs attention.
    missing = pd.DataFrame({"state": ["missing"], "amount_cents": [100]})
    assert verdict_now([settled], files, drops, missing, 0, now, 120)[0] == "needs attention"


def test_an_items_life_is_events_open_seen_settled_and_a_person_settles_with_who_and_note(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ledger_url: str
) -> None:
    from click.testing import CliRunner

    from pipelines.cli.main import cli
    from pipelines.ledger import Ledger
    from pipelines.runs.items import FILE_CAUSES, new_item

    monkeypatch.setenv("TIEOUT_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.setenv("TIEOUT_LEDGER_URL", ledger_url)  # the file in --data-dir, or a server
    row = new_item("rejected_row", "sha1", "a.csv", 7, rows=(7,), amount_text="12.345")
    name = new_item("unknown_vendor", "sha1", "a.csv", "Acme", rows=(3,), amount_cents=500)
    clash = new_item("conflict", "sha1", "a.csv", 9, rows=(9,), amount_cents=100)
    with Ledger(ledger_url) as ledger:
        ledger.start_run("r1", dry_run=False, pid=1)
        assert ledger.observe_items("r1", [row, name, clash], file_sha256="sha1") == {
            "opened": 3,
            "seen": 0,
            "settled": 0,
        }
        # The next pass of the same file meets the row and the conflict, not the name.
        counts = ledger.observe_items(
            "r2", [row, clash], file_sha256="sha1", decides=FILE_CAUSES, note="went through"
        )
        assert counts == {"opened": 0, "seen": 2, "settled": 1}
        states = {i["item_id"]: i for i in ledger.items(states=None)}
        assert states[name.item_id]["state"] == "settled"
        assert states[name.item_id]["state_run_id"] == "r2"
        assert states[row.item_id]["first_run_id"] == "r1" and states[row.item_id]["last_seen"]
        assert ledger.runs_that_met("r2") == ["r1"]
        # A corrected file supersedes what is open of the earlier one.
        assert ledger.supersede_items(["sha1"], "r3", "corrected") == 2
        assert ledger.items() == []

    with Ledger(ledger_url) as ledger:
        ledger.observe_items("r4", [clash])  # met again: open again
    runner = CliRunner()
    base = ["--data-dir", str(tmp_path)]
    listed = runner.invoke(cli, [*base, "todo", "--json"])
    (open_one,) = json.loads(listed.output)["items"]
    assert open_one["cause"] == "conflict"
    assert open_one["command"].startswith(
        f"tieout --data-dir {tmp_path} settle {clash.item_id} --by NAME"
    )
    wrong = runner.invoke(cli, [*base, "settle", "it-nope", "--by", "Dana", "--note", "x"])
    assert wrong.exit_code == 2 and "not an open item" in wrong.output
    done = runner.invoke(
        cli, [*base, "settle", clash.item_id, "--by", "Dana", "--note", "corrected in RM"]
    )
    assert done.exit_code == 0, done.output
    assert json.loads(runner.invoke(cli, [*base, "todo", "--json"]).output)["items"] == []
    with Ledger(ledger_url) as ledger:
        (settled,) = [i for i in ledger.items(states=None) if i["item_id"] == clash.item_id]
    assert (settled["state"], settled["decided_by"], settled["note"]) == (
        "settled",
        "Dana",
        "corrected in RM",
    )


def test_a_line_held_back_with_its_invoice_is_not_a_row_to_correct() -> None:
    """#36: "correct row 27" when only row 26 was bad: row 27 was held back because it is
    another line of row 26's invoice. Its item says there is nothing to correct in it."""
    issues = [
        _issue(IssueCode.BAD_AMOUNT, 26, "12.345"),
        _issue(
            IssueCode.INCONSISTENT_INVOICE,
            27,
            "INV-9",
            'held back: another line of invoice "INV-9" was rejected (row 26); an invoice is '
            "posted whole or not at all",
        ),
    ]
    items = {i.rows: i for i in file_items("bills.csv", "abc", issues)}
    commands = {
        rows: settle_command(
            {
                "cause": i.cause,
                "detail": i.detail,
                "file_name": "bills.csv",
                "item_id": "x",
                "rows": list(i.rows),
            },
            "data/inbox",
        )[0]
        for rows, i in items.items()
    }
    assert commands[(26,)] == "correct row 26 of bills.csv and drop the file into data/inbox"
    assert "correct row 27" not in commands[(27,)]
    assert commands[(27,)].startswith("nothing to correct in row 27")
