"""Exactly once, whatever fails: faults, a killed process, rate limits, re-runs."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from pipelines.core.config import Secret, load_settings
from pipelines.core.errors import LedgerError
from pipelines.kinds import registered
from pipelines.ledger import Ledger
from sandbox.faults import SandboxConfig, parse_faults
from sandbox.server import RunningSandbox, running_sandbox
from tests.conftest import ROOT, SAMPLES, past_in_doubt_grace, receiving, run_cli, write_bills


def server_ledger(ledger_url: str | None) -> str | None:
    """The ledger URL when it is a server's (a SQLite ledger stays the data folder's own)."""
    return None if ledger_url is None or ledger_url.startswith("sqlite:") else ledger_url


def env_for(
    box: RunningSandbox, data_dir: Path, ledger_url: str | None = None, **settings: object
) -> dict[str, str]:
    """Environment for a CLI child: the sandbox's address and a config with short grace
    periods; ``ledger_url`` for a ledger on a server."""
    config = data_dir.parent / "tieout.toml"
    defaults: dict[str, object] = {
        "in_doubt_grace_s": 1,
        "status_timeout_s": 20,
        "reconcile_grace_s": 0,
        "clock_skew_s": 0,
        "settle_s": 0.2,
        "rate_window_s": box.config.rate_window_s,
    }
    lines = [f"{k} = {json.dumps(v)}" for k, v in {**defaults, **settings}.items()]
    config.write_text("\n".join(lines) + "\n")
    env = {
        "PROPEXO_BASE_URL": box.base_url,
        "PROPEXO_API_TOKEN": box.config.token,
        "TIEOUT_CONFIG": str(config),
    }
    if server_ledger(ledger_url):
        env["TIEOUT_LEDGER_URL"] = str(ledger_url)
    return env


def settle(data_dir: Path, env: dict[str, str], rounds: int = 10) -> dict:  # type: ignore[type-arg]
    """`reconcile --sync` (waiting for its SYNC_COMPLETE: call inside ``receiving``) then `run`,
    until nothing is in doubt, waiting or unsent."""
    for _ in range(rounds):
        past_in_doubt_grace(data_dir, env)  # so a sync can prove absence
        run_cli("--data-dir", str(data_dir), "reconcile", "--sync", "--wait", "20", env=env)
        run_cli("--data-dir", str(data_dir), "run", env=env)
        status = json.loads(
            run_cli("--data-dir", str(data_dir), "status", "--json", env=env).stdout
        )
        open_states = {"ready", "sending", "submitted", "partial"} & set(status["by_state"])
        if not open_states:
            return status  # type: ignore[no-any-return]
    raise AssertionError(f"still open after {rounds} rounds: {status['by_state']}")


def assert_exactly_once(api: httpx.Client, data_dir: Path, ledger_url: str | None = None) -> None:
    with Ledger(server_ledger(ledger_url) or data_dir / "ledger.sqlite", readonly=True) as ledger:
        records = ledger.records()
    pms = api.get("/_sandbox/records").json()["results"]
    invoices = Counter(r["invoice_number"] for r in pms if r["kind"] == "invoice")
    charges = Counter(r["reference_number"] for r in pms if r["kind"] != "invoice")
    expected_invoices = set(records.loc[records["kind"] == "invoice", "invoice_number"])
    expected_charges = set(records.loc[records["kind"] != "invoice", "reference_number"])
    assert set(invoices) == expected_invoices and set(invoices.values()) == {1}
    assert set(charges) == expected_charges and set(charges.values()) == {1}
    assert len(records) == 12 + 129


def test_faults_never_lose_or_double_a_record(workspace: Path, ledger_url: str) -> None:
    """Under injected faults, on each ledger engine (#18 for PostgreSQL)."""
    config = SandboxConfig(
        job_delay_s=0.05,
        rate_limit=60,
        rate_window_s=2,
        faults=parse_faults("post:500=0.1,post:lost=0.05,*:reset=0.02"),
        fault_seed=11,
    )
    with (
        running_sandbox(config) as box,
        httpx.Client(
            base_url=box.base_url, headers={"Authorization": "Bearer sandbox-token"}
        ) as api,
        receiving(box, workspace, server_ledger(ledger_url)),
    ):
        # A 500 that did not apply leaves no job in the write log: re-sent only by the team's
        # opt-in, set past the sandbox's write-log delay (a logged job is never missed).
        env = env_for(box, workspace, ledger_url, batch_size=10, resend_unlogged_after_s=8)
        first = run_cli("--data-dir", str(workspace), "run", env=env)
        assert first.returncode in (0, 1), first.stderr
        assert "Traceback" not in first.stderr
        settle(workspace, env)
        assert sum(box.app.fault_counts.values()) > 0  # the faults really happened
        assert_exactly_once(api, workspace, ledger_url)


def kill_mid_posting(
    workspace: Path,
    env: dict[str, str],
    out_states: tuple[str, ...],
    at_least: int,
    ledger_url: str | None = None,
) -> int:
    """Start `tieout run` and SIGKILL it once ``at_least`` records are in ``out_states`` while
    some are still ``ready``: some writes out, some not. Returns the child's exit code."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("PROPEXO_", "TIEOUT_"))}
    child = subprocess.Popen(
        [sys.executable, "-m", "pipelines", "--data-dir", str(workspace), "run"],
        env={**inherited, **env},
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    ledger_path = workspace / "ledger.sqlite"
    server = server_ledger(ledger_url)
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            time.sleep(0.05)  # watching the ledger for the moment to kill the run (scenario)
            if server is None and not ledger_path.exists():
                continue
            try:
                if server is not None:
                    with Ledger(server, readonly=True) as ledger:
                        states = {k: v["count"] for k, v in ledger.by_state().items()}
                else:
                    with sqlite3.connect(f"file:{ledger_path}?mode=ro", uri=True) as db:
                        states = dict(
                            db.execute(
                                "SELECT state, COUNT(*) FROM records GROUP BY state"
                            ).fetchall()
                        )
            except (sqlite3.OperationalError, LedgerError):
                continue
            if states.get("ready", 0) and sum(states.get(s, 0) for s in out_states) >= at_least:
                break
        else:
            raise AssertionError("the run never got to the middle of posting")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    return child.returncode


def test_sigkill_mid_posting_loses_and_doubles_nothing(workspace: Path, ledger_url: str) -> None:
    """On each engine: on PostgreSQL the dead run's lock goes with its session (#18)."""
    config = SandboxConfig(job_delay_s=0.05, rate_limit=8, rate_window_s=1)
    with (
        running_sandbox(config) as box,
        httpx.Client(
            base_url=box.base_url, headers={"Authorization": "Bearer sandbox-token"}
        ) as api,
        receiving(box, workspace, server_ledger(ledger_url)),
    ):
        # A request the kill cut off may never have left: the team's opt-in re-sends it once
        # the write log, read twice after 3 s, shows no job for it (as test_durability does).
        env = env_for(
            box, workspace, ledger_url, batch_size=10, concurrency=2, resend_unlogged_after_s=3
        )
        returncode = kill_mid_posting(workspace, env, ("submitted", "confirmed"), 5, ledger_url)
        assert returncode == -signal.SIGKILL
        if server_ledger(ledger_url) is None:
            with sqlite3.connect(workspace / "ledger.sqlite") as db:
                assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        settle(workspace, env)
        assert_exactly_once(api, workspace, ledger_url)


def test_a_run_larger_than_the_window_never_sees_429(workspace: Path, ledger_url: str) -> None:
    config = SandboxConfig(job_delay_s=0.05, rate_limit=15, rate_window_s=1.5)
    with running_sandbox(config) as box:
        env = env_for(box, workspace, ledger_url, batch_size=10)
        result = run_cli("--data-dir", str(workspace), "run", env=env)
        assert result.returncode == 0, result.stdout + result.stderr
        assert box.app.rate_limited == 0
        assert box.app.requests_seen > 2 * config.rate_limit  # more than two windows' worth
        assert "req/min" in result.stdout


def test_dry_run_writes_nothing_anywhere(
    sandbox: RunningSandbox, api: httpx.Client, workspace: Path, ledger_url: str
) -> None:
    """Not a file, not a record in Propexo, and on PostgreSQL not a table in the ledger's
    database (its dry run happens in a transaction that is rolled back)."""
    env = env_for(sandbox, workspace, ledger_url)
    before = sorted(p.name for p in workspace.rglob("*"))
    result = run_cli("--data-dir", str(workspace), "run", "--dry-run", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "would send 20 requests carrying 141 records" in result.stdout
    assert sorted(p.name for p in workspace.rglob("*")) == before
    assert api.get("/_sandbox/records").json()["total"] == 0
    if server_ledger(ledger_url):
        import psycopg

        with psycopg.connect(ledger_url) as db:
            tables = db.execute(
                b"SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
            ).fetchone()
        assert tables == (0,)


def test_same_key_with_new_content_is_a_conflict_not_a_post(
    sandbox: RunningSandbox, api: httpx.Client, tmp_path: Path, ledger_url: str
) -> None:
    data = tmp_path / "data"
    (data / "inbox").mkdir(parents=True)
    env = env_for(sandbox, data, ledger_url)
    write_bills(
        data / "inbox" / "a.csv", ["ACME Plumbing LLC,C-1,11/03/2026,,Maple Court,5100,x,10.00"]
    )
    assert run_cli("--data-dir", str(data), "run", env=env).returncode == 0
    write_bills(
        data / "inbox" / "b.csv", ["ACME Plumbing LLC,C-1,11/03/2026,,Maple Court,5100,x,12.00"]
    )
    second = run_cli("--data-dir", str(data), "run", env=env)
    assert second.returncode == 1
    assert len(api.get("/_sandbox/records").json()["results"]) == 1
    errors = next((data / "rejected").glob("*-b.csv.errors.csv")).read_text()
    assert "invoice C-1 was posted in run" in errors and "was $10.00, now $12.00" in errors


def test_a_corrected_bill_line_is_named_and_counted_rejected(
    sandbox: RunningSandbox, api: httpx.Client, tmp_path: Path, ledger_url: str
) -> None:
    data = tmp_path / "data"
    (data / "inbox").mkdir(parents=True)
    env = env_for(sandbox, data, ledger_url)
    lines = [
        "ACME Plumbing LLC,C-2,11/03/2026,,Maple Court,5100,first,10.00",
        "ACME Plumbing LLC,C-2,11/03/2026,,Maple Court,5100,second,20.00",
    ]
    write_bills(data / "inbox" / "a.csv", lines)
    assert run_cli("--data-dir", str(data), "run", env=env).returncode == 0
    write_bills(data / "inbox" / "b.csv", [lines[0], lines[1].replace("20.00", "21.00")])
    second = run_cli("--data-dir", str(data), "run", env=env)
    assert second.returncode == 1
    assert len(api.get("/_sandbox/records").json()["results"]) == 1
    errors = next(data.rglob("*-b.csv.errors.csv")).read_text().splitlines()
    assert [line.split(",")[0] for line in errors[1:]] == ["3"]  # the edited line, not line 2
    assert "was $20.00, now $21.00" in errors[1]
    latest = max(
        (json.loads(p.read_text()) for p in (data / "reports").glob("*/summary.json")),
        key=lambda s: s["run_id"],
    )
    assert latest["files"][0]["rows_rejected"] == 1


def test_a_corrected_charge_is_a_conflict_not_a_second_charge(
    sandbox: RunningSandbox, api: httpx.Client, workspace: Path, ledger_url: str
) -> None:
    """#20 item 2: the edited row was posted as an extra charge (its number hashed the amount)."""
    import openpyxl

    (workspace / "inbox" / "vendor_bills.csv").unlink()
    env = env_for(sandbox, workspace, ledger_url)
    assert run_cli("--data-dir", str(workspace), "run", env=env).returncode == 0
    before = len(api.get("/_sandbox/records").json()["results"])
    book = openpyxl.load_workbook(SAMPLES / "rent_roll.xlsx")
    sheet = book.active
    assert sheet["G7"].value == 75 and sheet["K7"].value == 1440  # Whitlock's parking
    assert sheet["A59"].value == "Total" and sheet["K59"].value == 66265
    # the file still ties out, to its subtotal row and its total row
    sheet["G7"], sheet["K7"], sheet["K20"], sheet["K59"] = 76, 1441, 21756, 66266
    book.save(workspace / "inbox" / "rent_roll_corrected.xlsx")
    second = run_cli("--data-dir", str(workspace), "run", env=env)
    assert second.returncode == 1, second.stdout + second.stderr
    assert len(api.get("/_sandbox/records").json()["results"]) == before  # nothing new posted
    errors = next(workspace.rglob("*-rent_roll_corrected.xlsx.errors.csv")).read_text()
    rejected = [line for line in errors.splitlines()[1:] if line]
    assert len(rejected) == 1 and rejected[0].startswith("7,")
    assert "$75.00" in rejected[0] and "$76.00" in rejected[0]


def test_a_second_run_waits_its_turn(sandbox: RunningSandbox, workspace: Path) -> None:
    env = env_for(sandbox, workspace)
    from pipelines.core.lock import run_lock

    with run_lock(workspace / "tieout.lock", "test"):
        blocked = run_cli("--data-dir", str(workspace), "run", env=env)
    assert blocked.returncode == 3
    assert f"pid {os.getpid()}" in blocked.stderr
    assert run_cli("--data-dir", str(workspace), "run", env=env).returncode == 0


def test_partial_success_maps_errors_back_to_source_rows(
    sandbox: RunningSandbox, workspace: Path, monkeypatch: pytest.MonkeyPatch, ledger_url: str
) -> None:
    """A resident removed in Rent Manager after names were resolved: RM refuses that resident's
    charges inside otherwise good batches, and exactly those records end up failed."""
    import pipelines.resolving.refcache as refcache_module
    import pipelines.runs.pipeline as pipeline_module

    victim = sandbox.store.records("resident")[0]
    fetch = refcache_module.fetch_reference_lists

    def fetch_then_delete(*args: Any, **kwargs: Any) -> Any:
        data = fetch(*args, **kwargs)
        sandbox.store.delete_record("resident", victim["id"])
        return data

    monkeypatch.setattr(refcache_module, "fetch_reference_lists", fetch_then_delete)
    settings = replace(
        load_settings(env={}),
        base_url=sandbox.base_url,
        token=Secret("sandbox-token"),
        data_dir=workspace,
        status_timeout_s=20,
        ledger_url=server_ledger(ledger_url),
    )
    outcome = pipeline_module.run(settings, say=lambda _: None)
    assert outcome.exit_code == 1
    ledger = Ledger(server_ledger(ledger_url) or workspace / "ledger.sqlite", readonly=True)
    failed = ledger.records(states=["failed"])
    confirmed = ledger.records(states=["confirmed", "matched"])
    ledger.close()
    assert len(failed) > 0 and set(failed["resident_id"]) == {victim["id"]}
    assert failed["errors"].map(lambda e: "was not found" in e).all()
    assert victim["id"] not in set(confirmed["resident_id"])
    posted = pd.read_excel(
        outcome.report_dir / "report.xlsx", sheet_name="Posted", engine="calamine"
    )
    assert (posted["State"] == "failed").sum() == len(failed)


def test_status_polls_stay_a_small_fraction_of_writes(workspace: Path, ledger_url: str) -> None:
    config = SandboxConfig(job_delay_s=0.05, rate_limit=1000)
    with running_sandbox(config) as box:
        env = env_for(box, workspace, ledger_url, batch_size=4)
        result = run_cli("--data-dir", str(workspace), "run", env=env)
        assert result.returncode == 0, result.stdout + result.stderr
        line = next(x for x in result.stdout.splitlines() if x.startswith("posted "))
        writes = int(line.split()[1])
        polls = int(line.split("(")[1].split()[0])
        assert writes > 40
        # ARCHITECTURE: status polls at most 10% of the writes beyond one per invoice. The write
        # log answers for many jobs at once and is read when the jobs it lacks should be in it,
        # not on every round of a backoff; it has no created_record_id, so each of the 12
        # invoices' jobs is asked write-status for its id.
        print(f"\n{writes} writes, {polls} status polls")
        assert polls <= 0.1 * writes + 12, line


def test_a_ledger_from_the_old_reference_scheme_is_refused(tmp_path: Path) -> None:
    from pipelines.core.errors import LedgerError
    from pipelines.kinds.charge.payloads import encode_charges
    from pipelines.ledger import RECORD_SCHEME, Ledger

    path = tmp_path / "ledger.sqlite"
    ledger = Ledger(path)
    assert ledger.get_meta("record_scheme") == RECORD_SCHEME
    line = pd.DataFrame(
        {
            "source_row": [2],
            "resident_id": ["r1"],
            "charge_code_id": ["cc"],
            "charge_code": ["Rent"],
            "transaction_date": ["2026-12-01"],
            "notes": [None],
            "amount_cents": [100],
            "reference_number": ["TOAAAAAAAAAA"],
            "location_id": ["loc"],
            "property_id": ["p"],
        }
    )
    staged, _ = ledger.stage_records("run", "sha", encode_charges(line, "int", "f.csv"))
    assert staged == ["charge:int:TOAAAAAAAAAA"]
    ledger.close()
    Ledger(path).close()  # this version's ledger opens again
    # A ledger written before the scheme was recorded, holding charges: refused, in words.
    db = sqlite3.connect(path)
    db.execute("DELETE FROM meta WHERE key = 'record_scheme'")
    db.commit()
    db.close()
    with pytest.raises(LedgerError, match="earlier tieout"):
        Ledger(path)
    Ledger(path, readonly=True).close()  # reports and status can still read it


def test_a_charge_corrected_into_a_credit_is_a_conflict(ledger_url: str) -> None:
    """Same identity, sign flipped: the number is the same, the kind is not; still a conflict."""
    from pipelines.kinds.charge.payloads import encode_charges

    ledger = Ledger(ledger_url)
    line = pd.DataFrame(
        {
            "source_row": [2],
            "resident_id": ["r1"],
            "charge_code_id": ["cc"],
            "charge_code": ["Rent"],
            "transaction_date": ["2026-12-01"],
            "notes": [None],
            "amount_cents": [100],
            "reference_number": ["TOAAAAAAAAAA"],
            "location_id": ["loc"],
            "property_id": ["p"],
        }
    )
    assert ledger.stage_records("r1", "a", encode_charges(line, "int", "f.csv"))[0]
    credit = encode_charges(line.assign(amount_cents=[-100]), "int", "g.csv")
    staged, conflicts = ledger.stage_records("r2", "b", credit)
    ledger.close()
    assert staged == []
    assert [(c.record_key, c.previous_cents, c.cents) for c in conflicts] == [
        ("credit:int:TOAAAAAAAAAA", 100, -100)
    ]


def test_a_posting_pass_counts_its_own_records_not_the_whole_ledger(
    sandbox: RunningSandbox, tmp_path: Path, ledger_url: str
) -> None:
    """#17: LoadResult counted every confirmed record in the ledger, so a second run said it
    confirmed the first run's records too."""
    from pipelines.posting.load import load
    from pipelines.posting.propexo import PropexoClient
    from pipelines.reading.grids import fingerprint
    from pipelines.reading.profiles import profiles_for
    from pipelines.resolving.refcache import reference_data
    from pipelines.runs.files import process_file

    settings = replace(
        load_settings(env={}),
        base_url=sandbox.base_url,
        token=Secret(sandbox.config.token),
        data_dir=tmp_path,
    )
    bills = write_bills(
        tmp_path / "bills.csv",
        [
            "ACME Plumbing LLC,PASS-1,11/03/2026,,Maple Court,5100,valve,100.00",
            "ACME Plumbing LLC,PASS-2,11/03/2026,,Maple Court,5100,valve,200.00",
        ],
    )
    with (
        Ledger(ledger_url) as ledger,
        PropexoClient(sandbox.base_url, Secret(sandbox.config.token)) as client,
    ):
        refs = reference_data(ledger, client, settings)
        records = process_file(
            fingerprint(bills), profiles_for(settings, registered()), refs, settings
        ).records
        assert len(records) == 2
        ledger.stage_records("r1", "a", records.iloc[:1])
        first = load(
            ledger,
            client,
            run_id="r1",
            batch_size=10,
            status_timeout_s=20,
            kinds=registered(),
        )
        ledger.stage_records("r2", "b", records.iloc[1:])
        second = load(
            ledger,
            client,
            run_id="r2",
            batch_size=10,
            status_timeout_s=20,
            kinds=registered(),
        )
    assert (first.requests, first.confirmed) == (1, 1)
    assert (second.requests, second.confirmed) == (1, 1)  # the whole ledger holds 2
