"""The desk's work beyond sign-in (#39), in process through Starlette's TestClient: records
in doubt settled and refused writes sent again from Open items, a held roll confirmed from
its proposal's table with a role changed in place, a sign-off with an item open, and the
inbox's run in progress. Each form is the command line's function, as the signed-in user."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from typing import Any

import httpx

from pipelines.core.config import Settings
from pipelines.desk import running
from pipelines.desk.app import create_app
from pipelines.ledger import Ledger
from pipelines.ledger.desk import events
from sandbox.server import RunningSandbox
from tests.conftest import SAMPLES, TEST_DATA, settings_for
from tests.test_desk import (
    KEYS,
    TestClient,
    client,
    clock,
    doubtful,
    ledger_state,
    offline,
    run_finished,
    signed_in,
    states,
    users_ledger,
    with_users,
)

__all__ = ["client", "clock", "offline", "users_ledger"]  # the fixtures these tests use


def test_a_clerk_settles_records_in_doubt_and_sends_a_refused_write_again(
    client: TestClient, offline: Settings
) -> None:
    """The page's forms are `tieout resolve KEY --present [--rm-id]`, `--absent` and
    `--send-again`: what tieout knows of each record is shown first, each settlement is the
    ledger's record event with the note, and a desk event names who did it."""
    doubtful(offline)
    token = signed_in(client, "clara")
    page = client.get("/items").text
    assert "records in doubt" in page and "writes Propexo refused" in page
    assert page.count('action="/items/resolve"') == 2
    assert page.count('action="/items/send-again"') == 1
    assert f"{KEYS[0]} (charge, 10.00): POST at" in page  # the evidence, before acting
    assert "the write log has not been searched for it yet" in page

    def post(path: str, **fields: str) -> str:
        answer = client.post(path, data={"csrf_token": token, **fields})
        assert answer.status_code == 303 and answer.headers["location"] == "/items"
        return client.get("/items").text

    said = post("/items/resolve", record_key=KEYS[0], note="looked")
    assert "say what you found in Rent Manager: present or absent" in said
    said = post(
        "/items/resolve", record_key=KEYS[0], found="present", rm_id="4411", note="seen in RM"
    )
    assert f"{KEYS[0]}: settled as present in Rent Manager by clara" in said
    said = post("/items/resolve", record_key=KEYS[1], found="absent", note="not in RM")
    assert f"{KEYS[1]}: settled as absent in Rent Manager by clara" in said
    assert "the next run sends it again" in said
    said = post("/items/resolve", record_key=KEYS[2], found="absent")
    assert f"not in doubt, so not settled: {KEYS[2]}" in said  # refused is not in doubt
    said = post("/items/send-again", record_key=KEYS[2], note="GL fixed")
    assert f"{KEYS[2]}: made ready by clara; the next run sends it" in said
    said = post("/items/send-again", record_key=KEYS[2])
    assert "not refused by Propexo, so not settled" in said
    assert states(offline) == {KEYS[0]: "confirmed", KEYS[1]: "ready", KEYS[2]: "ready"}
    with Ledger(offline.ledger, readonly=True) as ledger:
        present = ledger.events(KEYS[0])[-1]
        acted = [(e["by"], e["action"], e["subject"]) for e in events(ledger)]
        confirmed = ledger.records(columns=["record_key", "note"]).set_index("record_key")
    assert present[1:] == (
        "sending",
        "confirmed",
        "resolve --present: seen in RM (clara, on the desk)",
    )
    assert "RM id 4411" in str(confirmed.loc[KEYS[0], "note"])
    assert acted[-3:] == [
        ("clara", "resolve", KEYS[0]),
        ("clara", "resolve", KEYS[1]),
        ("clara", "send_again", KEYS[2]),
    ]


def test_a_held_roll_is_confirmed_from_its_proposals_table_with_a_role_changed_in_place(
    sandbox: RunningSandbox, tmp_path: Path, users_ledger: Path
) -> None:
    """#38's roll of no known layout, dropped on the desk: the Layouts page shows its proposal
    as a table (header, sample values, sum, the file's own total, the role in a select); the
    clerk makes Parking not charged there and confirms, which is `tieout layout accept FILE
    --not-charge Parking`: the next run posts the rent lines only, once."""
    from pipelines.reading.profiles import normalize_header

    settings = settings_for(sandbox, tmp_path / "data", settle_s=0.2)
    with_users(settings, users_ledger)
    roll = TEST_DATA / "proposal_unknown_system.csv"
    want = json.loads((TEST_DATA / f"{roll.name}.expected.json").read_text())
    with TestClient(create_app(settings), follow_redirects=False) as client:
        token = signed_in(client, "clara")
        client.post(
            "/inbox/drop",
            data={"csrf_token": token},
            files={"files": (roll.name, roll.read_bytes())},
        )
        client.post("/inbox/run", data={"csrf_token": token})
        assert "held" in run_finished(client)
        assert _records(sandbox, "charge") == 0
        page = client.get("/layouts").text
        start = page.index('<table class="proposal">')
        table = page[start : page.index("</table>", start)]
        rows = re.findall(r"<tr[^>]*>\s*<td>([^<]+)</td>\s*<td class=\"samples\">([^<]*)</td>"
                          r"\s*<td class=\"num\">([^<]*)</td>\s*<td class=\"num\">([^<]*)</td>",
                          table)  # fmt: skip
        assert [r[0] for r in rows] == list(want["roles"])
        by_header = {r[0]: r for r in rows}
        assert by_header["Rent"][1:] == ("1,410.00 · 1,445.00 · 1,480.00", "8,985.00", "8,985.00")
        assert by_header["Parking"][1:] == ("75.00", "225.00", "225.00")  # distinct values
        assert by_header["Occupant"][1].startswith("Calloway, Kai")
        selected = dict(re.findall(r'name="role\.(\d+)".*?<option value="(\w+)" selected', table,
                                   flags=re.DOTALL))  # fmt: skip
        assert [selected[str(n)] for n in range(len(rows))] == list(want["roles"].values())
        parking = str(list(want["roles"]).index("Parking"))
        sha = re.search(r'name="item_id" value="([0-9a-f]{64})"', page)
        assert sha is not None
        before = ledger_state(settings)

        def confirm(**roles: str) -> str:
            fields = {f"role.{n}": r for n, r in roles.items()}
            client.post("/layouts/confirm", data={"csrf_token": token, "item_id": sha[1], **fields})
            return client.get("/layouts").text

        assert "choose one of the roles offered" in confirm(**{parking: "deposit"})
        assert "its columns changed since the page was loaded" in confirm(**{"99": "charge"})
        two_units = confirm(**{"0": "unit", parking: "unit"})
        assert "one column at a time is made the unit: Bldg, Parking were chosen" in two_units
        assert ledger_state(settings)[4] == before[4]  # no layout confirmed by a refusal
        said = confirm(**{parking: "not_charged"})
        assert "confirmed by clara with Parking → not charged: would charge Rent;" in said
        client.post("/inbox/run", data={"csrf_token": token})
        run_finished(client)
    assert _records(sandbox, "charge") == want["rent_lines"]
    with Ledger(settings.ledger, readonly=True) as ledger:
        (layout,) = ledger.confirmed_layouts().to_dict("records")
        acted = [(e["by"], e["action"]) for e in events(ledger)]
    assert layout["confirmed_by"] == "clara"
    assert ("clara", "layout") in acted
    profile = next(settings.profiles_dir.glob("layout_*.toml")).read_text()
    assert normalize_header("Parking") in profile.split("ignore", 1)[1]


def test_an_auditor_signs_a_period_with_an_item_open_only_ticked_and_with_a_note(
    sandbox: RunningSandbox, tmp_path: Path, users_ledger: Path
) -> None:
    """The sign-off form is `tieout signoff PERIOD --by USER --note N [--with-open-items]`:
    refused while an item is open, said in the desk's words; ticked without a note, refused;
    ticked with a note, signed, the open item kept with the review."""
    settings = settings_for(sandbox, tmp_path / "data", settle_s=0.2)
    with_users(settings, users_ledger)
    bills = (SAMPLES / "vendor_bills.csv").read_text().splitlines()[:5]
    bills.append('Acme Plumbng,W-2026901,11/05/2026,12/05/2026,Maple Court,5100,Valve,"245.10"')
    with TestClient(create_app(settings), follow_redirects=False) as client:
        token = signed_in(client, "clara")
        client.post(
            "/inbox/drop",
            data={"csrf_token": token},
            files={"files": ("bills.csv", ("\n".join(bills) + "\n").encode())},
        )
        client.post("/inbox/run", data={"csrf_token": token})
        run_finished(client)
        client.cookies.clear()
        token = signed_in(client, "audrey")
        page = client.get("/approvals").text
        period = re.search(r'<option value="(\d{4}-\d{2})">', page)
        assert period is not None and 'name="with_open_items"' in page
        month = period[1]

        def sign(**fields: str) -> str:
            answer = client.post("/signoff", data={"csrf_token": token, "subject": month, **fields})
            assert answer.status_code == 303
            return client.get("/approvals").text

        refused = sign(note="looks fine")
        assert f"period-{month}: not signed: open items: it-" in refused
        assert "Settle them under Open items, or tick “sign with them open”" in refused
        assert "--with-open-items" not in refused  # the desk's words, not the command's
        assert "say why in the note; nothing was signed" in sign(with_open_items="yes")
        signed = sign(with_open_items="yes", note="vendor alias pending with AP")
        assert f"period-{month}: signed off by audrey" in signed
        assert "signed with open items: it-" in signed
    with Ledger(settings.ledger, readonly=True) as ledger:
        (review,) = ledger.signoffs(f"period-{month}")
        acted = [(e["by"], e["action"], e["detail"]) for e in events(ledger)]
    assert review["by"] == "audrey" and review["note"] == "vendor alias pending with AP"
    (signoff,) = [a for a in acted if a[1] == "sign_off"]
    assert signoff[0] == "audrey" and signoff[2]["open_items"]


def _records(box: RunningSandbox, kind: str) -> int:
    found = httpx.get(
        f"{box.base_url}/_sandbox/records",
        params={"kind": kind},
        headers={"Authorization": f"Bearer {box.config.token}"},
    ).json()["results"]
    return len(found)


def test_the_inbox_shows_a_run_in_progress_and_refreshes_itself_until_it_ends(
    client: TestClient, offline: Settings
) -> None:
    """While the desk's run lasts, the inbox page says who started it, how far its posting is
    and its last lines, and refreshes itself (no script needed); a second run is refused
    meanwhile; when it ends, its lines are said to the one who started it."""
    token = signed_in(client, "clara")
    desk = client.app.state.desk  # type: ignore[attr-defined]
    release = threading.Event()
    told: list[str] = []

    def work(progress: Any) -> list[str]:
        progress.say("bills.csv: 12 rows read, 12 used")
        progress.posting(3, 10)
        assert release.wait(30)
        return ["run r9: complete"]

    assert desk.runner.start("april", work, told.extend)
    page = client.get("/inbox").text
    assert 'id="run-progress"' in page and "started by april" in page
    assert "posting 3 of 10 records" in page and "bills.csv: 12 rows read, 12 used" in page
    assert '<meta http-equiv="refresh" content="1">' in page
    assert re.search(r"<button type=\"submit\" disabled>Take in the inbox now", page)
    before = ledger_state(offline)
    client.post("/inbox/run", data={"csrf_token": token})
    assert "a run started by april is in progress: wait for it" in client.get("/inbox").text
    assert ledger_state(offline) == before
    release.set()
    desk.runner.thread.join(30)
    page = client.get("/inbox").text
    assert 'id="run-progress"' not in page and 'http-equiv="refresh"' not in page
    assert told == ["run r9: complete"]


def test_a_run_that_stops_on_an_unexpected_error_is_said_and_frees_the_desk(
    client: TestClient,
) -> None:
    signed_in(client, "clara")
    desk = client.app.state.desk  # type: ignore[attr-defined]
    told: list[str] = []

    def broken(progress: Any) -> list[str]:
        raise RuntimeError("boom")

    assert desk.runner.start("clara", broken, told.extend)
    desk.runner.thread.join(30)
    assert told == [running.STOPPED] and desk.runner.current is None
    assert "boom" not in " ".join(told)  # no traceback for the clerk; the log has it
