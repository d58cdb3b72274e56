"""The desk in a real headless Chromium (#39), through the page only: a clerk's day (sign in,
drop the samples and a file with a misspelled vendor, take the inbox in, clear the vendor by
choosing the name tieout suggests: its bill posted exactly once) and an auditor's (trace that
bill from its cell to Rent Manager's id, sign the period off). Screenshots of each page at
1280 px are taken on the way: into the test's folder, or with DESK_SCREENSHOTS=docs/desk into
the README's (`DESK_SCREENSHOTS=docs/desk .venv/bin/python -m pytest tests/test_desk_browser.py`).

Debian's chromium and chromium-driver (`.ci/run` installs them); a missing one fails."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.expected_conditions import staleness_of
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.wait import WebDriverWait

from pipelines.cli.main import cli
from pipelines.core.config import load_settings
from pipelines.ledger import Ledger
from sandbox.server import RunningSandbox
from tests.conftest import CHROMIUM_FLAGS, ROOT, SAMPLES, TEST_DATA
from tests.test_desk import KEYS, doubtful, states
from tests.test_layout import unseen_roll

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
PASSWORD = "a long enough password"
MISSPELLED = "Acme Plumbng"
# A roll of no known layout (#38), for January 2027: the samples' residents charged again.
PROPOSED = "proposal_unknown_system_jan.csv"


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.fail(
            f"the desk's browser tests need {', '.join(missing)}: apt-get install "
            "chromium chromium-driver (.ci/run does)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    driver.set_page_load_timeout(240)
    try:
        yield driver
    finally:
        driver.quit()


SHOTS = [Path()]  # where this run's screenshots go


@pytest.fixture(autouse=True)
def screenshots(tmp_path: Path) -> None:
    chosen = os.environ.get("DESK_SCREENSHOTS")
    SHOTS[0] = ROOT / chosen if chosen else tmp_path / "screenshots"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(
    sandbox: RunningSandbox, tmp_path: Path, users: dict[str, str], config: str = ""
) -> Iterator[tuple[str, Path]]:
    """`tieout serve` on a free loopback port, over a fresh data folder, with ``users``
    (name: role) and the test settings plus ``config`` (TOML lines)."""
    data = tmp_path / "data"
    (data / "inbox").mkdir(parents=True)
    toml = tmp_path / "tieout.toml"
    toml.write_text((TEST_DATA / "tieout-test.toml").read_text() + config)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROPEXO_", "TIEOUT_"))}
    env.update(
        PROPEXO_BASE_URL=sandbox.base_url,
        PROPEXO_API_TOKEN=sandbox.config.token,
        TIEOUT_CONFIG=str(toml),
    )
    for name, role in users.items():
        added = CliRunner().invoke(
            cli,
            ["--data-dir", str(data), "users", "add", name, "--role", role],
            input=PASSWORD + "\n",
            env=env,
        )
        assert added.exit_code == 0, added.output
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "pipelines", "--data-dir", str(data), "serve", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert server.stdout is not None
        first = server.stdout.readline()
        assert first.strip() == f"desk: http://127.0.0.1:{port}/ (Ctrl-C stops it)", first
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/login").raise_for_status()
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "the desk did not answer"
                time.sleep(0.1)  # the desk's server (a child, no sandbox) is not listening yet
        yield url, data
    finally:
        server.terminate()
        server.wait(timeout=20)
        if server.stdout is not None:
            server.stdout.close()


@pytest.fixture
def desk(sandbox: RunningSandbox, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The desk with a clerk and an auditor."""
    with serving(sandbox, tmp_path, {"clara": "clerk", "audrey": "auditor"}) as found:
        yield found


@pytest.fixture
def approving_desk(sandbox: RunningSandbox, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The desk with `approve_each_file = true`, a clerk and an approver."""
    users = {"clara": "clerk", "april": "approver"}
    with serving(sandbox, tmp_path, users, "approve_each_file = true\n") as found:
        yield found


def shot(browser: WebDriver, name: str) -> None:
    """The page at 1280 px wide, its whole height."""
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1280, min(max(int(height) + 140, 600), 2400))
    SHOTS[0].mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(SHOTS[0] / f"{name}.png"))
    browser.set_window_size(1280, 900)


def sign_in(browser: WebDriver, url: str, name: str) -> None:
    browser.get(f"{url}/inbox")
    assert browser.current_url.startswith(f"{url}/login")
    browser.find_element(By.NAME, "username").send_keys(name)
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    press(browser, By.CSS_SELECTOR, "form[action='/login'] button")
    assert browser.current_url == f"{url}/inbox", browser.current_url


def submit(browser: WebDriver, button: WebElement) -> None:
    """Click a form's button and wait for the page it leads to (the old one gone, the new one
    loaded): the desk's forms all answer with a page."""
    old = browser.find_element(By.TAG_NAME, "html")
    button.click()
    WebDriverWait(browser, 240).until(staleness_of(old))
    WebDriverWait(browser, 30).until(
        lambda b: b.execute_script("return document.readyState") == "complete"
    )


def press(browser: WebDriver, by: str, selector: str) -> None:
    """Click the button ``selector`` finds, found afresh: a page just navigated to may swap its
    document under a node found a moment before (chromedriver: "Node with given id does not
    belong to the document"), and such a click never reaches the page, so it is tried again."""
    for attempt in range(3):
        try:
            submit(browser, browser.find_element(by, selector))
            return
        except WebDriverException as exc:
            if attempt == 2 or "does not belong to the document" not in str(exc):
                raise


def click(browser: WebDriver, text: str) -> None:
    """Click the button so labelled (see :func:`press`)."""
    press(browser, By.XPATH, f"//button[normalize-space()={text!r}]")


def take_in(browser: WebDriver, progress_shot: str = "") -> str:
    """Take the inbox in, and wait out the run's progress (the inbox page refreshes itself
    while it lasts); returns the page that says what the run did."""
    click(browser, "Take in the inbox now")
    if progress_shot and browser.find_elements(By.ID, "run-progress"):
        shot(browser, progress_shot)  # while the run lasts (a short run may end before)
    WebDriverWait(browser, 240, ignored_exceptions=(WebDriverException,)).until(
        lambda b: (
            b.execute_script("return document.readyState") == "complete"
            and not b.find_elements(By.ID, "run-progress")
            and b.find_elements(By.CLASS_NAME, "flash")
        )
    )
    return str(browser.page_source)


DROP_JS = """
const [names, texts] = arguments;
const moved = new DataTransfer();
names.forEach((name, n) => moved.items.add(new File([texts[n]], name, {type: "text/csv"})));
const zone = document.querySelector("[data-drop]");
zone.dispatchEvent(new DragEvent("dragover", {dataTransfer: moved, bubbles: true, cancelable: true}));
zone.dispatchEvent(new DragEvent("drop", {dataTransfer: moved, bubbles: true, cancelable: true}));
"""


def drag_and_drop(browser: WebDriver, files: list[Path]) -> None:
    """Files dragged onto the inbox's drop card (what a person's mouse does, as the events
    the page's script receives), and the page the form's post leads to."""
    old = browser.find_element(By.TAG_NAME, "html")
    assert "droppable" in str(
        browser.find_element(By.CSS_SELECTOR, "[data-drop]").get_attribute("class")
    )  # the script is loaded (under the desk's CSP) and has taken the card
    browser.execute_script(DROP_JS, [f.name for f in files], [f.read_text() for f in files])
    WebDriverWait(browser, 60).until(staleness_of(old))
    WebDriverWait(browser, 30).until(
        lambda b: b.execute_script("return document.readyState") == "complete"
    )


def held_card(browser: WebDriver, name: str) -> WebElement:
    """The Layouts page's card of the held file ``name``."""
    return browser.find_element(By.XPATH, f"//section[@class='card'][.//h3[contains(., {name!r})]]")


def records(box: RunningSandbox, kind: str) -> list[dict[str, object]]:
    found: list[dict[str, object]] = httpx.get(
        f"{box.base_url}/_sandbox/records",
        params={"kind": kind},
        headers={"Authorization": f"Bearer {box.config.token}"},
    ).json()["results"]
    return found


def invoices(box: RunningSandbox) -> list[str]:
    return [str(r["invoice_number"]) for r in records(box, "invoice")]


def test_a_clerks_day_and_an_auditors_sign_off_through_the_page_only(
    browser: WebDriver, desk: tuple[str, Path], sandbox: RunningSandbox, tmp_path: Path
) -> None:
    url, data = desk
    sample = (SAMPLES / "vendor_bills.csv").read_text().splitlines()
    odd = tmp_path / "more_bills.csv"
    odd.write_text(
        "\n".join(
            [
                *sample[:4],
                f'{MISSPELLED},W-2026901,11/05/2026,12/05/2026,Maple Court,5100,Valve repair,"245.10"',
                f'{MISSPELLED},W-2026902,11/06/2026,12/06/2026,Maple Court,5100,Drain cleared,"180.00"',
            ]
        )
        + "\n"
    )
    roll = unseen_roll(
        tmp_path / "roll_jan.csv",
        "01",
        [("101", "Kettering, Dakota", "1250.00"), ("102", "Pembry, Skyler", "1300.00")],
    )
    picked = [SAMPLES / "vendor_bills.csv", SAMPLES / "rent_roll.xlsx", odd]
    dragged = [roll, TEST_DATA / PROPOSED]

    browser.get(f"{url}/login")
    shot(browser, "login")
    sign_in(browser, url, "clara")
    browser.find_element(By.NAME, "files").send_keys("\n".join(str(f) for f in picked))
    click(browser, "Drop into the inbox")
    page = browser.page_source
    for f in picked:
        assert f"{f.name} dropped" in page
    drag_and_drop(browser, dragged)  # the same form, posted by the page's script
    page = browser.page_source
    for f in dragged:
        assert f"{f.name} dropped" in page
    assert "its report is under Runs and reports" in take_in(browser, "inbox-running")
    posted = invoices(sandbox)
    assert "W-2026901" not in posted and posted  # the samples' bills, not the misspelled ones

    browser.get(f"{url}/items")
    item = browser.find_element(
        By.XPATH, f"//div[@class='item'][.//b[contains(., '{MISSPELLED}')]]"
    )
    choice = item.find_element(By.CSS_SELECTOR, "input[name=target]:checked")
    assert choice.get_attribute("value") == "ACME Plumbing LLC"
    assert "then read more_bills.csv again and post the 2 rows (425.10)" in item.text
    shot(browser, "items")
    submit(
        browser,
        item.find_element(By.XPATH, ".//button[normalize-space()='Use this name and post']"),
    )
    assert "“Acme Plumbng” → “ACME Plumbing LLC”" in browser.page_source.replace('"', "“", 1) or (
        "Acme Plumbng" in browser.page_source
    )
    # The name is no longer an open item (the page may still say what the alias did).
    assert not browser.find_elements(
        By.XPATH, f"//div[@class='item'][.//b[contains(., '{MISSPELLED}')]]"
    )
    after = invoices(sandbox)
    assert after.count("W-2026901") == 1 and after.count("W-2026902") == 1
    assert len(after) == len(set(after))  # every bill exactly once

    # The roll of a new layout waits in the inbox until a person confirms its layout.
    # A roll of no known layout: its proposal's table, Parking made not charged in place.
    browser.get(f"{url}/layouts")
    card = held_card(browser, PROPOSED)
    rows = card.find_elements(By.CSS_SELECTOR, "table.proposal tbody tr")
    rent = next(r for r in rows if r.text.startswith("Rent "))
    cells = [td.text for td in rent.find_elements(By.TAG_NAME, "td")]
    assert cells[1:4] == ["1,410.00 · 1,445.00 · 1,480.00", "5,850.00", "5,850.00"]
    parking = Select(card.find_element(By.CSS_SELECTOR, "select[aria-label='role of Parking']"))
    assert parking.first_selected_option.get_attribute("value") == "charge"
    parking.select_by_value("not_charged")
    shot(browser, "layouts")
    charges_before = records(sandbox, "charge")
    submit(browser, card.find_element(By.XPATH, ".//button[normalize-space()='Confirm layout']"))
    assert "confirmed by clara with Parking → not charged: would charge Rent;" in (
        browser.page_source
    )
    held = held_card(browser, roll.name).text
    assert "2,550.00" in held and "Agent, Floor Plan, Lease Type, Household Size" in held
    submit(
        browser,
        held_card(browser, roll.name).find_element(
            By.XPATH, ".//button[normalize-space()='Confirm layout']"
        ),
    )
    assert "confirmed by clara" in browser.page_source
    browser.get(f"{url}/inbox")
    said = take_in(browser)
    # The roll's two lines, and the proposed roll's four rent lines (parking not charged).
    assert len(records(sandbox, "charge")) == len(charges_before) + 2 + 4, said
    shot(browser, "inbox")
    browser.get(f"{url}/runs")
    assert "more_bills.csv" in browser.page_source
    shot(browser, "runs")
    press(browser, By.CSS_SELECTOR, "form.me button")  # sign out
    assert browser.current_url.startswith(f"{url}/login")

    # The auditor: the trace of one bill, then the period's sign-off.
    sign_in(browser, url, "audrey")
    assert not browser.find_elements(By.NAME, "files")  # an auditor drops nothing
    browser.get(f"{url}/trace")
    browser.find_element(By.NAME, "q").send_keys("W-2026901")
    click(browser, "Trace")
    trace = browser.find_element(By.CSS_SELECTOR, "section.trace").text
    assert "more_bills.csv" in trace and "245.10" in trace and "ACME Plumbing LLC" in trace
    shot(browser, "trace")
    browser.get(f"{url}/approvals")
    period = browser.find_element(By.CSS_SELECTOR, "select[name=subject] option")
    subject = str(period.get_attribute("value"))
    assert re.fullmatch(r"\d{4}-\d{2}", subject), subject
    browser.find_element(By.NAME, "note").send_keys("tied out to the bank")
    click(browser, "Sign off")
    assert "signed off by audrey" in browser.page_source
    shot(browser, "approvals")
    with Ledger(data / "ledger.sqlite", readonly=True) as ledger:
        (review,) = ledger.signoffs(f"period-{subject}")
    assert review["by"] == "audrey" and review["note"] == "tied out to the bank"


FORGED_APPROVAL = """
const form = document.createElement("form");
form.method = "post";
form.action = "/approvals/approve";
for (const [name, value] of Object.entries(arguments[0])) {
  const field = document.createElement("input");
  field.type = "hidden";
  field.name = name;
  field.value = value;
  form.appendChild(field);
}
document.body.appendChild(form);
form.submit();
"""


def test_with_approval_on_an_approver_approves_what_a_clerk_dropped_never_the_clerk(
    browser: WebDriver, approving_desk: tuple[str, Path], sandbox: RunningSandbox
) -> None:
    """`approve_each_file = true`: the clerk's file waits under Approvals with its preview; the
    clerk has no approve button, and an approval she posts anyway (with her own session and
    CSRF token) is refused with 403 and posts nothing; the approver approves it from the page
    and its bills are posted exactly once. Then records in doubt, settled from Open items."""
    url, data = approving_desk
    bills = SAMPLES / "vendor_bills.csv"
    sign_in(browser, url, "clara")
    drag_and_drop(browser, [bills])
    assert "awaiting approval" in take_in(browser)
    assert invoices(sandbox) == []
    browser.get(f"{url}/approvals")
    card = browser.find_element(By.CSS_SELECTOR, "section.card").text
    assert "vendor_bills.csv" in card and "dropped by clara" in card
    assert not browser.find_elements(By.XPATH, "//button[normalize-space()='Approve and post']")
    with Ledger(data / "ledger.sqlite", readonly=True) as ledger:
        (held,) = [i for i in ledger.items() if i["cause"] == "awaiting_approval"]
    token = browser.find_element(By.NAME, "csrf_token").get_attribute("value")
    old = browser.find_element(By.TAG_NAME, "html")
    browser.execute_script(FORGED_APPROVAL, {"csrf_token": token, "sha256": held["file_sha256"]})
    WebDriverWait(browser, 60).until(staleness_of(old))
    assert "a clerk may not do this" in browser.page_source
    assert invoices(sandbox) == []
    browser.get(f"{url}/inbox")
    press(browser, By.CSS_SELECTOR, "form.me button")  # sign out

    sign_in(browser, url, "april")
    browser.get(f"{url}/approvals")
    card = browser.find_element(By.CSS_SELECTOR, "section.card").text
    assert "Will approve vendor_bills.csv as april" in card
    shot(browser, "approve")
    click(browser, "Approve and post")
    assert "approved by april" in browser.page_source
    posted = invoices(sandbox)
    assert posted and len(posted) == len(set(posted))  # every bill exactly once
    with Ledger(data / "ledger.sqlite", readonly=True) as ledger:
        decided = ledger.db.execute(
            "SELECT decided_by FROM item_events WHERE item_id = ? AND state = 'settled'",
            (held["item_id"],),
        ).fetchall()
    assert decided == [("april",)]

    # Records in doubt (the sandbox never answered for two; Propexo refused a third): settled
    # from Open items after looking in Rent Manager, and the refused one sent again.
    doubtful(replace(load_settings(env={}), data_dir=data))
    browser.get(f"{url}/items")
    first = browser.find_element(By.XPATH, f"//div[@class='item'][.//input[@value='{KEYS[0]}']]")
    assert f"{KEYS[0]} (charge, 10.00): POST at" in first.text  # what tieout knows, first
    shot(browser, "items-doubt")
    first.find_element(By.CSS_SELECTOR, "input[value=present]").click()
    first.find_element(By.NAME, "rm_id").send_keys("4411")
    first.find_element(By.NAME, "note").send_keys("seen in Rent Manager")
    submit(
        browser, first.find_element(By.XPATH, ".//button[normalize-space()='Settle this record']")
    )
    assert f"{KEYS[0]}: settled as present in Rent Manager by april" in browser.page_source
    refused = browser.find_element(
        By.XPATH, "//div[@class='item'][.//form[@action='/items/send-again']]"
    )
    submit(browser, refused.find_element(By.XPATH, ".//button[normalize-space()='Send again']"))
    assert f"{KEYS[2]}: made ready by april; the next run sends it" in browser.page_source
    found = states(replace(load_settings(env={}), data_dir=data))
    assert [found[k] for k in KEYS] == ["confirmed", "sending", "ready"]
