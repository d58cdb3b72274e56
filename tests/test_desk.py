"""The desk (#39) in process, through Starlette's TestClient: sign-in, sessions, CSRF, roles,
downloads only from the data folder, uploads that cannot escape the inbox, the sign-in throttle,
and maker-checker against a real sandbox. None of the refused requests changes the ledger."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from click.testing import CliRunner

from pipelines.cli.main import cli
from pipelines.core.config import Settings, load_settings
from pipelines.desk import auth
from pipelines.desk.app import create_app
from pipelines.ledger import Ledger
from pipelines.ledger.desk import add_user, events, users
from sandbox.server import RunningSandbox
from tests.conftest import ROOT, SAMPLES, settings_for

with warnings.catch_warnings():
    # Starlette 1.10 would rather drive its TestClient with `httpx2`; httpx is the one we ship.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient

PASSWORD = "a long enough password"
KEYS = [f"charge:int_rm_demo:DK{i:04d}" for i in range(3)]  # two in doubt, one refused
ROLES = {"clara": "clerk", "april": "approver", "abel": "approver", "audrey": "auditor"}
PAGES = [
    "/",
    "/inbox",
    "/items",
    "/layouts",
    "/runs",
    "/trace",
    "/approvals",
    "/reports/r1/report.html",
    "/archive/" + "0" * 64,
]
ACTIONS = [
    "/inbox/drop",
    "/inbox/run",
    "/items/alias",
    "/items/retry",
    "/items/settle",
    "/items/resolve",
    "/items/send-again",
    "/layouts/confirm",
    "/layouts/forget",
    "/approvals/approve",
    "/signoff",
    "/logout",
]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_users(settings: Settings) -> None:
    with Ledger(settings.ledger) as ledger:
        for name, role in ROLES.items():
            add_user(ledger, name, role, auth.hash_password(PASSWORD))


def ledger_state(settings: Settings) -> tuple[Any, ...]:
    """What a refused request must not change: desk events, item events, sign-offs, record
    events, confirmed layouts, the inbox."""
    with Ledger(settings.ledger, readonly=True) as ledger:
        counts = [
            int(ledger.db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0])
            for t in ("desk_events", "item_events", "signoffs", "events")
        ]
        layouts = len(ledger.confirmed_layouts())
    inbox = (
        sorted(p.name for p in settings.inbox_dir.glob("*")) if settings.inbox_dir.exists() else []
    )
    return (*counts, layouts, inbox)


def doubtful(settings: Settings) -> None:
    """Three charges posted by a run: two in doubt (sending), one Propexo refused."""
    with Ledger(settings.ledger) as ledger:
        ledger.stage_records(
            "r1",
            None,
            pd.DataFrame(
                {
                    "record_key": KEYS,
                    "kind": "charge",
                    "integration_id": "int_rm_demo",
                    "location_id": "L",
                    "amount_cents": [1000, 2050, 300],
                    "content_hash": "h",
                    "payload": [json.dumps({"n": i}) for i in range(3)],
                    "source_rows": [[i + 2] for i in range(3)],
                    "source_file": "rent.csv",
                    "reference_number": [k.rsplit(":", 1)[1] for k in KEYS],
                }
            ),
        )
        ledger.transition(KEYS[:2], "sending", run_id="r1")
        ledger.transition([KEYS[2]], "refused", run_id="r1")


def states(settings: Settings) -> dict[str, str]:
    with Ledger(settings.ledger, readonly=True) as ledger:
        found = ledger.records(columns=["record_key", "state"])
    return dict(zip(found["record_key"], found["state"], strict=True))


@pytest.fixture(scope="module")
def users_ledger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ledger with the users, made once (a new ledger and four Argon2 hashes take seconds)."""
    settings = replace(load_settings(env={}), data_dir=tmp_path_factory.mktemp("users"))
    make_users(settings)
    return settings.ledger_path


def with_users(settings: Settings, ledger: Path) -> Settings:
    settings.inbox_dir.mkdir(parents=True)
    shutil.copy2(ledger, settings.ledger_path)
    return settings


@pytest.fixture
def offline(tmp_path: Path, users_ledger: Path) -> Settings:
    return with_users(replace(load_settings(env={}), data_dir=tmp_path / "data"), users_ledger)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def client(offline: Settings, clock: Clock) -> Iterator[TestClient]:
    with TestClient(create_app(offline, clock=clock), follow_redirects=False) as c:
        yield c


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


def sign_in(client: TestClient, name: str, password: str = PASSWORD) -> httpx.Response:
    page = client.get("/login")
    return client.post(
        "/login",
        data={"csrf_token": csrf_of(page.text), "username": name, "password": password},
    )


def signed_in(client: TestClient, name: str) -> str:
    """Signs ``name`` in; returns the session's CSRF token."""
    answer = sign_in(client, name)
    assert answer.status_code == 303, answer.text
    return csrf_of(client.get("/inbox").text)


def run_finished(client: TestClient, within_s: float = 240) -> str:
    """The inbox page once the desk's run in progress has ended (it says what the run did)."""
    deadline = time.monotonic() + within_s
    while True:
        page = client.get("/inbox").text
        if 'id="run-progress"' not in page:
            return page
        assert time.monotonic() < deadline, "the run did not end"
        time.sleep(0.1)


def test_every_page_and_action_without_a_session_redirects_to_sign_in(
    client: TestClient, offline: Settings
) -> None:
    before = ledger_state(offline)
    for path in PAGES:
        answer = client.get(path)
        assert answer.status_code == 303, path
        assert answer.headers["location"].startswith("/login?next="), path
    for path in ACTIONS:
        answer = client.post(
            path,
            data={"csrf_token": "x", "item_id": "it-1", "note": "n", "subject": "2026-11"},
            files={"files": ("bills.csv", b"a,b\n1,2\n")},
        )
        assert answer.status_code == 303, path
        assert answer.headers["location"] == "/login?next=/", path
    assert ledger_state(offline) == before


OUTSIDE_ROLE = {
    "audrey": [
        "/layouts/forget",
        "/inbox/drop",
        "/inbox/run",
        "/items/alias",
        "/items/retry",
        "/items/settle",
        "/items/resolve",
        "/items/send-again",
        "/layouts/confirm",
        "/approvals/approve",
    ],
    "clara": ["/approvals/approve", "/signoff"],
    "april": ["/signoff"],
}


@pytest.mark.parametrize("who", sorted(OUTSIDE_ROLE))
def test_an_action_outside_the_role_is_403_and_changes_nothing(
    client: TestClient, offline: Settings, who: str
) -> None:
    doubtful(offline)
    token = signed_in(client, who)
    before = ledger_state(offline)
    for path in OUTSIDE_ROLE[who]:
        answer = client.post(
            path,
            data={
                "csrf_token": token,
                "item_id": "it-1",
                "note": "n",
                "subject": "2026-11",
                "sha256": "0" * 64,
                "record_key": KEYS[0],
                "found": "absent",
                "with_open_items": "yes",
            },
            files={"files": ("bills.csv", b"a,b\n1,2\n")},
        )
        assert answer.status_code == 403, path
    assert ledger_state(offline) == before


@pytest.mark.parametrize("token", [None, "", "forged-token"])
def test_a_form_without_its_csrf_token_is_403_and_changes_nothing(
    client: TestClient, offline: Settings, token: str | None
) -> None:
    doubtful(offline)
    signed_in(client, "clara")
    before = ledger_state(offline)
    data = {} if token is None else {"csrf_token": token}
    answer = client.post("/inbox/drop", data=data, files={"files": ("bills.csv", b"a,b\n")})
    assert answer.status_code == 403
    answer = client.post("/items/settle", data={**data, "item_id": "it-1", "note": "n"})
    assert answer.status_code == 403
    for path in ("/items/resolve", "/items/send-again", "/layouts/confirm", "/inbox/run"):
        answer = client.post(path, data={**data, "record_key": KEYS[0], "found": "absent"})
        assert answer.status_code == 403, path
    assert ledger_state(offline) == before


def test_sign_in_needs_its_own_csrf_token(client: TestClient, offline: Settings) -> None:
    client.get("/login")
    answer = client.post("/login", data={"username": "clara", "password": PASSWORD})
    assert answer.status_code == 403
    assert auth.SESSION_COOKIE not in answer.cookies


def test_ten_wrong_passwords_in_a_row_are_throttled_even_the_right_one_after(
    client: TestClient, offline: Settings, clock: Clock
) -> None:
    before = ledger_state(offline)
    codes = [sign_in(client, "clara", f"wrong {n}").status_code for n in range(10)]
    assert codes == [401] * auth.TRIES_PER_NAME + [429] * (10 - auth.TRIES_PER_NAME)
    refused = sign_in(client, "clara")
    assert refused.status_code == 429
    assert "try again in" in refused.text
    assert ledger_state(offline) == before
    # Another name from the same address is not held by clara's (until the address's own limit).
    assert sign_in(client, "april").status_code == 303
    client.cookies.clear()
    clock.now += auth.WINDOW_S
    assert sign_in(client, "clara").status_code == 303


def test_an_unknown_name_is_refused_like_a_wrong_password(client: TestClient) -> None:
    answer = sign_in(client, "nobody")
    assert answer.status_code == 401
    assert "do not match" in answer.text


def test_pages_carry_the_security_headers_and_a_strict_session_cookie(
    offline: Settings, clock: Clock
) -> None:
    with TestClient(
        create_app(offline, clock=clock), base_url="https://desk.example", follow_redirects=False
    ) as client:
        answer = sign_in(client, "clara")
        cookie = answer.headers["set-cookie"]
        assert "HttpOnly" in cookie
        assert "SameSite=strict" in cookie
        assert "Secure" in cookie  # TLS as the client sees it
        page = client.get("/inbox")
    csp = page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp
    # The desk's one script is its own file (drag and drop): never inline, never another site's.
    assert "script-src 'self';" in csp and "default-src 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "same-origin"


def test_over_plain_http_the_cookie_is_not_secure(client: TestClient) -> None:
    cookie = sign_in(client, "clara").headers["set-cookie"]
    assert "Secure" not in cookie


def test_sign_in_goes_back_to_the_page_asked_for_never_to_another_site(
    client: TestClient,
) -> None:
    for asked, lands in (("/runs", "/runs"), ("//evil.example/x", "/"), ("https://e.x", "/")):
        client.cookies.clear()
        page = client.get("/login", params={"next": asked})
        answer = client.post(
            "/login",
            data={
                "csrf_token": csrf_of(page.text),
                "username": "clara",
                "password": PASSWORD,
                "next": asked,
            },
        )
        assert answer.headers["location"] == lands


def test_sign_out_ends_the_session(client: TestClient) -> None:
    token = signed_in(client, "clara")
    assert client.post("/logout", data={"csrf_token": token}).status_code == 303
    assert client.get("/inbox").status_code == 303


def test_a_removed_user_is_signed_out_at_their_next_request(
    client: TestClient, offline: Settings
) -> None:
    signed_in(client, "clara")
    result = CliRunner().invoke(
        cli, ["--data-dir", str(offline.data_dir), "users", "remove", "clara"]
    )
    assert result.exit_code == 0, result.output
    assert client.get("/inbox").status_code == 303


def test_uploads_land_in_the_inbox_whole_under_a_safe_name(
    client: TestClient, offline: Settings
) -> None:
    token = signed_in(client, "clara")
    outside = offline.data_dir / "x"
    for name in ("../x", "<script>alert(1)<.csv", "..\\..\\evil.csv"):
        answer = client.post(
            "/inbox/drop", data={"csrf_token": token}, files={"files": (name, b"vendor,amount\n")}
        )
        assert answer.status_code == 303
    assert not outside.exists()
    assert sorted(p.name for p in offline.inbox_dir.iterdir()) == [
        "<script>alert(1)<.csv",
        "evil.csv",
        "x",
    ]
    page = client.get("/inbox").text
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;.csv" in page
    with Ledger(offline.ledger, readonly=True) as ledger:
        dropped = events(ledger, action="upload")
    assert [e["by"] for e in dropped] == ["clara"] * 3


def test_an_upload_over_the_size_limit_leaves_nothing(offline: Settings, clock: Clock) -> None:
    small = replace(offline, max_file_mb=0.001)
    with TestClient(create_app(small, clock=clock), follow_redirects=False) as client:
        token = signed_in(client, "clara")
        answer = client.post(
            "/inbox/drop", data={"csrf_token": token}, files={"files": ("big.csv", b"x" * 5000)}
        )
        assert answer.status_code == 303
        assert "larger than max_file_mb" in client.get("/inbox").text
    assert list(offline.inbox_dir.iterdir()) == []


def test_downloads_come_only_from_the_data_folder(
    client: TestClient, offline: Settings, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    reports = offline.reports_dir
    (reports / "r1").mkdir(parents=True)
    (reports / "r1" / "report.html").write_text("<p>ok</p><script>let a = 1;</script>")
    (reports / "r1" / "leak.xlsx").symlink_to(secret)
    (reports / "r2").symlink_to(tmp_path)
    signed_in(client, "audrey")
    report = client.get("/reports/r1/report.html")
    assert report.status_code == 200
    assert "'sha256-" in report.headers["content-security-policy"]  # its own script, by hash
    for path in (
        "/reports/r1/leak.xlsx",
        "/reports/r2/secret.txt",
        "/reports/r1/..%2F..%2F..%2Fsecret.txt",
        "/reports/..%2F..%2F/secret.txt",
        "/reports/r1/../../ledger.sqlite",
        "/reports/%2e%2e/ledger.sqlite",
        "/archive/..%2F..%2Fsecret.txt",
        "/archive/" + "a" * 64,
    ):
        answer = client.get(path)
        assert answer.status_code in (404, 303), path
        assert "top secret" not in answer.text


def test_users_add_list_remove_from_the_command_line(offline: Settings) -> None:
    runner = CliRunner()
    base = ["--data-dir", str(offline.data_dir), "users"]
    added = runner.invoke(cli, [*base, "add", "dana", "--role", "auditor"], input=PASSWORD + "\n")
    assert added.exit_code == 0 and "added dana (auditor)" in added.output
    short = runner.invoke(cli, [*base, "add", "eve", "--role", "clerk"], input="short\n")
    assert short.exit_code == 2 and "at least 12 characters" in short.output
    listed = runner.invoke(cli, [*base, "list"])
    assert (
        "dana" in listed.output and PASSWORD not in listed.output and "argon2" not in listed.output
    )
    with Ledger(offline.ledger, readonly=True) as ledger:
        assert {u["name"] for u in users(ledger)} == {*ROLES, "dana"}
        stored = ledger.db.execute(
            "SELECT password_hash FROM desk_users WHERE name='dana'"
        ).fetchone()
    assert stored[0].startswith("$argon2id$") and PASSWORD not in stored[0]
    assert runner.invoke(cli, [*base, "remove", "dana"]).exit_code == 0
    gone = runner.invoke(cli, [*base, "remove", "dana"])
    assert gone.exit_code == 2 and "no user 'dana'" in gone.output


def test_serve_refuses_plain_http_beyond_loopback(offline: Settings) -> None:
    result = CliRunner().invoke(
        cli, ["--data-dir", str(offline.data_dir), "serve", "--host", "0.0.0.0"]
    )
    assert result.exit_code == 2
    assert "reverse proxy with TLS" in result.output


def test_maker_checker_the_one_who_dropped_a_file_cannot_approve_it(
    sandbox: RunningSandbox, tmp_path: Path, users_ledger: Path
) -> None:
    """Approval on: april drops the file and cannot approve it (on the desk or with `tieout
    approve --by april`); abel approves it, and its bills are posted once, named in the ledger."""
    settings = settings_for(sandbox, tmp_path / "data", approve_each_file=True, settle_s=0.2)
    with_users(settings, users_ledger)
    with TestClient(create_app(settings), follow_redirects=False) as client:
        token = signed_in(client, "april")
        bills = (SAMPLES / "vendor_bills.csv").read_bytes()
        client.post(
            "/inbox/drop", data={"csrf_token": token}, files={"files": ("bills.csv", bills)}
        )
        client.post("/inbox/run", data={"csrf_token": token})
        run_finished(client)
        page = client.get("/approvals").text
        assert "You dropped this file" in page
        sha = re.search(r'name="sha256" value="([0-9a-f]{64})"', page)
        assert sha is None  # no approve button for the maker
        with Ledger(settings.ledger, readonly=True) as ledger:
            (held,) = [i for i in ledger.items() if i["cause"] == "awaiting_approval"]
        refused = client.post(
            "/approvals/approve", data={"csrf_token": token, "sha256": held["file_sha256"]}
        )
        assert refused.status_code == 303
        assert (
            "april dropped this file, so april cannot approve it" in client.get("/approvals").text
        )
        by_cli = CliRunner().invoke(
            cli,
            ["--data-dir", str(settings.data_dir), "approve", "bills.csv", "--by", "april"],
            env={"PROPEXO_BASE_URL": sandbox.base_url, "PROPEXO_API_TOKEN": sandbox.config.token},
        )
        assert by_cli.exit_code == 2 and "cannot approve it" in by_cli.output
        assert _invoices(sandbox) == 0

        client.cookies.clear()
        token = signed_in(client, "abel")
        approved = client.post(
            "/approvals/approve", data={"csrf_token": token, "sha256": held["file_sha256"]}
        )
        assert approved.status_code == 303
        assert "approved by abel" in client.get("/approvals").text
    posted = _invoices(sandbox)
    assert posted > 0
    with Ledger(settings.ledger, readonly=True) as ledger:
        decided = ledger.db.execute(
            "SELECT decided_by FROM item_events WHERE item_id = ? AND state = 'settled'",
            (held["item_id"],),
        ).fetchall()
        actions = [(e["by"], e["action"]) for e in events(ledger)]
    assert decided == [("abel",)]
    assert ("april", "upload") in actions and ("abel", "approve") in actions
    assert ("april", "approve") not in actions


def _invoices(box: RunningSandbox) -> int:
    found = httpx.get(
        f"{box.base_url}/_sandbox/records",
        params={"kind": "invoice"},
        headers={"Authorization": f"Bearer {box.config.token}"},
    ).json()["results"]
    return len(found)


def test_a_clerk_settles_a_rejected_row_but_only_an_approver_settles_a_conflict(
    client: TestClient, offline: Settings
) -> None:
    from pipelines.runs.items import new_item

    rejected = new_item(
        "rejected_row",
        "f" * 64,
        "bills.csv",
        7,
        rows=(7,),
        amount_cents=1234,
        detail={"reasons": ["Amount: not an amount"]},
    )
    conflict = new_item(
        "conflict",
        "f" * 64,
        "bills.csv",
        8,
        rows=(8,),
        amount_cents=999,
        detail={"reasons": ["changes a posted bill"]},
    )
    with Ledger(offline.ledger) as ledger:
        ledger.observe_items("r1", [rejected, conflict])
    token = signed_in(client, "clara")
    page = client.get("/items").text
    assert "rows rejected for what they hold" in page and "Amount: not an amount" in page
    assert page.count('action="/items/settle"') == 1  # the clerk's form: the rejected row only
    refused = client.post(
        "/items/settle", data={"csrf_token": token, "item_id": conflict.item_id, "note": "x"}
    )
    assert refused.status_code == 403
    empty = client.post("/items/settle", data={"csrf_token": token, "item_id": rejected.item_id})
    assert empty.status_code == 303
    assert "say in the note" in client.get("/items").text
    done = client.post(
        "/items/settle",
        data={"csrf_token": token, "item_id": rejected.item_id, "note": "row removed at source"},
    )
    assert done.status_code == 303
    assert f"{rejected.item_id} settled by clara" in client.get("/items").text
    client.cookies.clear()
    token = signed_in(client, "april")
    assert 'action="/items/settle"' in client.get("/items").text
    client.post(
        "/items/settle",
        data={
            "csrf_token": token,
            "item_id": conflict.item_id,
            "note": "corrected in Rent Manager",
        },
    )
    assert "Nothing open" in client.get("/items").text
    with Ledger(offline.ledger, readonly=True) as ledger:
        settled = ledger.db.execute(
            "SELECT item_id, decided_by, note FROM item_events WHERE state = 'settled' ORDER BY id"
        ).fetchall()
    assert settled == [
        (rejected.item_id, "clara", "row removed at source"),
        (conflict.item_id, "april", "corrected in Rent Manager"),
    ]


def test_pages_read_by_every_role_and_an_unknown_item_is_said_plainly(
    client: TestClient, offline: Settings
) -> None:
    token = signed_in(client, "audrey")
    for path in ("/", "/inbox", "/items", "/layouts", "/runs", "/approvals", "/trace?q=nothing"):
        answer = client.get(path, follow_redirects=True)
        assert answer.status_code in (200, 400), path
    assert "Sign off" in client.get("/approvals").text
    client.cookies.clear()
    token = signed_in(client, "clara")
    client.post("/items/settle", data={"csrf_token": token, "item_id": "it-nope", "note": "n"})
    assert "it-nope is not an open item" in client.get("/items").text
    client.post("/inbox/drop", data={"csrf_token": token})
    assert "choose a file to drop first" in client.get("/inbox").text
    client.post("/inbox/run", data={"csrf_token": token})  # no Propexo here: said in a line
    assert "cannot connect to Propexo" in run_finished(client)


def test_demo_serve_leaves_the_desk_running_on_the_demos_workspace(tmp_path: Path) -> None:
    """`tieout demo --serve`: the demo, then the desk's address, and how to add its first user
    (a command that works as printed); the desk answers until stopped."""
    port = _free_port()
    workdir = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROPEXO_", "TIEOUT_"))}
    demo = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pipelines",
            "demo",
            "--serve",
            "--port",
            str(port),
            "--workdir",
            str(workdir),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert demo.stdout is not None
        lines: list[str] = []
        while not any(line.startswith("desk: ") for line in lines):
            line = demo.stdout.readline()
            assert line, "".join(lines)
            lines.append(line)
        assert lines[-1] == f"desk: http://127.0.0.1:{port}/ (Ctrl-C stops it)\n"
        hint = demo.stdout.readline()
        assert f"`tieout --data-dir {workdir} users add NAME --role clerk`" in hint
        assert "Complete" in "".join(lines)
        deadline = time.monotonic() + 30
        while True:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/inbox")
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline
                time.sleep(0.1)  # the desk's server (a child, no sandbox) is not listening yet
        assert answer.status_code == 303 and answer.headers["location"].startswith("/login")
    finally:
        demo.terminate()
        demo.wait(timeout=30)
        if demo.stdout is not None:
            demo.stdout.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_clerk_withdraws_a_confirmed_layout(client: TestClient, offline: Settings) -> None:
    facts = {"fingerprint": "abc123", "profile": "tieout_rent_roll", "kind": "charge"}
    with Ledger(offline.ledger) as ledger:
        layout_id, _ = ledger.confirm_layout(facts, "key", "sam", "roll.csv", "e" * 64)
    token = signed_in(client, "clara")
    page = client.get("/layouts").text
    assert "abc123" in page and "sam" in page and 'action="/layouts/forget"' in page
    client.post("/layouts/forget", data={"csrf_token": token, "layout_id": "x"})
    assert "choose a confirmed layout" in client.get("/layouts").text
    client.post("/layouts/forget", data={"csrf_token": token, "layout_id": str(layout_id)})
    assert f"layout {layout_id} withdrawn" in client.get("/layouts").text
    client.post("/layouts/forget", data={"csrf_token": token, "layout_id": str(layout_id)})
    assert f"no confirmed layout {layout_id}" in client.get("/layouts").text
    with Ledger(offline.ledger, readonly=True) as ledger:
        assert ledger.confirmed_layout("abc123") is None
        assert ("clara", "layout_forget") in [(e["by"], e["action"]) for e in events(ledger)]
