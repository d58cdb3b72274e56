"""Shared fixtures: a real sandbox on a free loopback port, and settings pointing at it."""

from __future__ import annotations

import atexit
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from hypothesis import settings as hypothesis_settings

from pipelines.core.config import Secret, Settings, load_settings
from sandbox.faults import SandboxConfig
from sandbox.server import RunningSandbox, running_sandbox

# No per-example deadline: under five workers, or coverage's tracer, an example's time says
# nothing about the code (a 200 ms deadline failed a money round trip that took 37 ms alone).
# Speed is measured by `make bench`, not by tests.
hypothesis_settings.register_profile("default", max_examples=60, deadline=None)
hypothesis_settings.register_profile("fuzz", max_examples=2000, deadline=None)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

ROOT = Path(__file__).resolve().parent.parent
# Headless Chromium on this closed network: no background connections, a fresh profile each
# time (the caller adds --user-data-dir); the report's probe and the desk's browser use them.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,900",  # #28: the records table whole on a laptop's screen
)
SAMPLES = ROOT / "data" / "samples"
TEST_DATA = Path(__file__).resolve().parent / "data"


# Modules whose tests take tens of seconds each (real processes, faults, syncs), longest first.
# They are started first, so that a long test is not what the last worker is still running
# (with `--dist worksteal` the others take the short ones queued behind them).
SLOW_MODULES = (
    "test_month.py",
    "test_recovery.py",
    "test_identity.py",
    "test_workers.py",
    "test_exactly_once.py",
    "test_durability.py",
    "test_load.py",
    "test_intake.py",
    "test_items.py",
    "test_e2e.py",
    "test_desk_browser.py",
    "test_desk.py",
    "test_write_log.py",
    "test_in_doubt.py",
    "test_lost_ledger.py",
    "test_odd_answers.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow modules first (in the order above), then the rest in their usual order."""
    rank = {name: n for n, name in enumerate(SLOW_MODULES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """One PostgreSQL server per test process (each test gets its own database)."""
    from tests.postgres import running_postgres

    with running_postgres() as url:
        yield url


def _database(request: pytest.FixtureRequest) -> Iterator[str]:
    """A new database on this process's server for one test, dropped after it."""
    from tests.postgres import drop_database, fresh_database

    url = fresh_database(request.getfixturevalue("postgres_server"))
    yield url
    drop_database(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The ledger on each engine: a SQLite file, and a new database on a PostgreSQL server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    else:
        yield from _database(request)


@pytest.fixture(params=["postgresql"])
def postgresql_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A new database on a PostgreSQL server, for a test of what only a server ledger does
    (the test's id says `postgresql`, as the engine-parametrized ones do)."""
    yield from _database(request)


def server_ledger(ledger_url: str | None) -> str | None:
    """The ledger URL when it is a server's (a SQLite ledger stays the data folder's own)."""
    return None if ledger_url is None or ledger_url.startswith("sqlite:") else ledger_url


def ledger_at(data_dir: Path, ledger_url: str | None = None) -> Path | str:
    """Where a run with ``data_dir`` and ``ledger_url`` keeps its ledger, to open it."""
    return server_ledger(ledger_url) or data_dir / "ledger.sqlite"


@pytest.fixture
def sandbox() -> Iterator[RunningSandbox]:
    """A fresh sandbox (in-memory state, sample seed) with short job delays. Its write log
    shows a finished job 0.2 s later, not the emulator's default 5 s: a run follows batches in
    the log, and waited out those seconds in every test that runs the rent roll (a test about
    the log's lag sets its own)."""
    with running_sandbox(
        SandboxConfig(job_delay_s=0.05, rate_limit=1000, sync_duration_s=0.2, write_log_delay_s=0.2)
    ) as box:
        yield box


@pytest.fixture
def api(sandbox: RunningSandbox) -> Iterator[httpx.Client]:
    """A plain httpx client for talking to the sandbox directly."""
    with httpx.Client(
        base_url=sandbox.base_url, headers={"Authorization": f"Bearer {sandbox.config.token}"}
    ) as client:
        yield client


def settings_for(box: RunningSandbox, data_dir: Path, **changes: object) -> Settings:
    """Settings that point a pipeline at a sandbox and a private data folder."""
    base = load_settings(env={})
    return replace(
        base,
        base_url=box.base_url,
        token=Secret(box.config.token),
        data_dir=data_dir,
        status_timeout_s=20,
        **changes,
    )  # type: ignore[arg-type]


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A data folder with an inbox holding copies of both samples."""
    inbox = tmp_path / "data" / "inbox"
    inbox.mkdir(parents=True)
    for sample in ("vendor_bills.csv", "rent_roll.xlsx"):
        shutil.copy2(SAMPLES / sample, inbox / sample)
    return tmp_path / "data"


def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """`tieout ARGS` in a child process, as cron or a person would run it. (The timeout only
    stops a hung child: a run of the samples took 110 s on a shared machine at load 20.)"""
    # The host's own Propexo settings must never leak into a test.
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("PROPEXO_", "TIEOUT_"))}
    full_env = {
        **inherited,
        "TIEOUT_CONFIG": str(TEST_DATA / "tieout-test.toml"),
        **(env or {}),
    }
    if _MEASURING_COVERAGE:  # a forked child would not save its coverage: start a fresh one
        return subprocess.run(
            [sys.executable, "-m", "pipelines", *args],
            capture_output=True,
            text=True,
            env=full_env,
            cwd=cwd or ROOT,
            timeout=timeout,
            check=False,
        )
    return _ZYGOTE.run(list(args), full_env, cwd or ROOT, timeout)


# pytest-cov measures child processes through these (its subprocess support).
_MEASURING_COVERAGE = any(k in os.environ for k in ("COV_CORE_SOURCE", "COVERAGE_PROCESS_START"))


class _Zygote:
    """One pre-imported tieout per test process (tests/zygote.py), started on first use; each
    command is its own forked child with its own exit code and output."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen[str] | None = None
        self._folder = Path(tempfile.mkdtemp(prefix="tieout-zygote-"))
        atexit.register(shutil.rmtree, self._folder, ignore_errors=True)
        self._socket = self._folder / "socket"
        self._count = itertools.count()

    def _started(self) -> Path:
        with self._lock:
            if self._process is None or self._process.poll() is not None:
                self._socket.unlink(missing_ok=True)
                env = {
                    k: v for k, v in os.environ.items() if not k.startswith(("PROPEXO_", "TIEOUT_"))
                }
                self._process = subprocess.Popen(
                    [sys.executable, "-m", "tests.zygote", str(self._socket)],
                    cwd=ROOT,
                    env=env,
                    stdout=subprocess.PIPE,
                    text=True,
                )
                assert self._process.stdout is not None
                ready = self._process.stdout.readline().strip()
                assert ready == "ready", f"the tests' tieout zygote did not start: {ready!r}"
                atexit.register(self._stop, self._process)
            return self._socket

    def stop(self) -> None:
        with self._lock:
            if self._process is not None:
                self._stop(self._process)
                self._process = None

    @staticmethod
    def _stop(process: subprocess.Popen[str]) -> None:
        """SIGTERM first: under `make coverage` the zygote saves what its imports ran."""
        if process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()

    def run(
        self, args: list[str], env: dict[str, str], cwd: Path, timeout: float
    ) -> subprocess.CompletedProcess[str]:
        path = self._started()
        n = next(self._count)
        out, err = self._folder / f"{n}.out", self._folder / f"{n}.err"
        request = {
            "args": args,
            "env": env,
            "cwd": str(cwd),
            "stdout": str(out),
            "stderr": str(err),
        }
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.connect(str(path))
            conn.settimeout(timeout)
            conn.sendall((json.dumps(request) + "\n").encode())
            answers = conn.makefile("r")
            pid = int(answers.readline())
            try:
                line = answers.readline()
            except TimeoutError:
                os.killpg(pid, signal.SIGKILL)
                raise subprocess.TimeoutExpired(["tieout", *args], timeout) from None
        code = int(line) if line.strip() else -signal.SIGKILL  # no answer: the child was killed
        try:
            return subprocess.CompletedProcess(
                ["tieout", *args],
                code,
                out.read_text(errors="replace"),
                err.read_text(errors="replace"),
            )
        finally:
            out.unlink(missing_ok=True)
            err.unlink(missing_ok=True)


_ZYGOTE = _Zygote()


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtestloop() -> Iterator[None]:
    """The zygote stops once the tests have run, before pytest-cov (whose wrapper holds this
    one) gathers what each process measured: what its imports ran is saved on SIGTERM."""
    try:
        return (yield)
    finally:
        # pytest loads this file as `conftest`, the tests import it as `tests.conftest`: two
        # copies, each with its own zygote.
        for copy in {sys.modules.get("tests.conftest"), sys.modules.get(__name__)}:
            if copy is not None:
                copy._ZYGOTE.stop()


@pytest.fixture(scope="session")
def refs():  # type: ignore[no-untyped-def]
    """Reference data as the pipeline sees it, fetched once from a real sandbox."""
    from pipelines.posting.propexo import PropexoClient
    from pipelines.resolving.refs import fetch_reference_data

    with (
        running_sandbox(SandboxConfig(rate_limit=1000)) as box,
        PropexoClient(box.base_url, Secret(box.config.token)) as client,
    ):
        return fetch_reference_data(client, "int_rm_demo")


BILL_HEADER = "Vendor,Invoice #,Invoice Date,Due Date,Property,GL Account,Description,Amount"


def write_bills(path: Path, lines: list[str]) -> Path:
    """A small vendor bill CSV in our template."""
    path.write_text("\n".join([BILL_HEADER, *lines]) + "\n", encoding="utf-8")
    return path


WEBHOOK_SECRET = "test-webhook-secret-0123456789"


def sandbox_wait(api: httpx.Client, event: str, timeout: float = 60, **since: object) -> None:
    """Wait, through the sandbox's own ``POST /_sandbox/wait``, until ``event`` has happened
    (``sync``, ``webhook``, ``jobs``, ``logged``, ``idle``; ``since`` as ``GET /_sandbox/mark``
    answered, ``trigger``, ``count``): for a test that holds a client, not the sandbox."""
    answer = api.post(
        "/_sandbox/wait", params={"event": event, "timeout": timeout, **since}, timeout=timeout + 10
    )
    assert answer.status_code == 200, answer.text


def past_in_doubt_grace(data_dir: Path, env: dict[str, str], grace_s: float = 1.0) -> float:
    """Return once every record in doubt has been so for ``grace_s`` (the tests' configs set
    tieout's ``in_doubt_grace_s`` to 1 s): from then on, a sync that starts can prove one
    absent. The moment is the one the ledger recorded (``doubt_since``), so this waits no
    longer than tieout's own clock requires, and not at all once it has passed (a run or a
    reconcile since often took longer). Returns the seconds waited.

    Not a wait on the sandbox: the grace is tieout's rule, and only time passing ends it."""
    import time
    from datetime import UTC, datetime

    from pipelines.ledger import Ledger

    where: Path | str = env.get("TIEOUT_LEDGER_URL") or data_dir / "ledger.sqlite"
    if isinstance(where, Path) and not where.exists():
        return 0.0
    with Ledger(where, readonly=True) as ledger:
        doubt = ledger.records(states=["sending"], columns=["doubt_since"])
    stamps = [str(s) for s in doubt["doubt_since"].dropna()] if not doubt.empty else []
    if not stamps:
        return 0.0
    since = datetime.fromisoformat(max(stamps).replace("Z", "+00:00"))
    left = since.timestamp() + grace_s - datetime.now(tz=UTC).timestamp()
    if left <= 0:
        return 0.0
    time.sleep(left + 0.02)  # the scenario's clock (tieout's grace), not the sandbox's work
    return left


@contextmanager
def receiving(box: RunningSandbox, data_dir: Path, ledger_url: str | None = None) -> Iterator[str]:
    """tieout's webhook receiver for ``data_dir``'s ledger (or ``ledger_url``'s), subscribed to
    the sandbox's SYNC_COMPLETE and WRITE_OPERATION_FAILURE: what proves a sync finished."""
    from pipelines.reconciling.webhooks import TRIGGERS, ReceiverThread

    data_dir.mkdir(parents=True, exist_ok=True)
    settings = replace(
        load_settings(env={}),
        base_url=box.base_url,
        token=Secret(box.config.token),
        data_dir=data_dir,
        webhook_secret=Secret(WEBHOOK_SECRET),
        ledger_url=ledger_url,
    )
    auth = {"Authorization": f"Bearer {box.config.token}"}
    with ReceiverThread(settings) as receiver:
        # The sandbox may inject faults into this call too: retry, but only after checking
        # that the subscription did not land (two would deliver every event twice).
        for _ in range(10):
            try:
                listed = httpx.get(f"{box.base_url}/v1/webhooks/", headers=auth)
                if listed.status_code != 200:
                    continue
                if any(w["url"] == receiver.url for w in listed.json().get("results", [])):
                    break
                httpx.post(
                    f"{box.base_url}/v1/webhooks/",
                    json={
                        "url": receiver.url,
                        "triggers": TRIGGERS,
                        "active": True,
                        "secret": WEBHOOK_SECRET,
                    },
                    headers=auth,
                )
            except (httpx.TransportError, ValueError):
                continue
        else:
            raise AssertionError("could not subscribe the webhook receiver")
        yield receiver.url
