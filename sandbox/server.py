"""Running the emulator: in the foreground (`tieout sandbox`) or in a thread (demo, tests)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn

from sandbox.app import create_app
from sandbox.events import Event, Events, Mark
from sandbox.faults import SandboxConfig
from sandbox.store import Store

DEFAULT_SEED = Path(__file__).resolve().parent.parent / "data" / "sandbox" / "seed.json"


def read_seed(path: Path | None) -> dict[str, Any]:
    """The seed file (reference data); the bundled sample seed when none is named."""
    seed_path = path or DEFAULT_SEED
    data: dict[str, Any] = json.loads(seed_path.read_text(encoding="utf-8"))
    return data


def with_integrations(seed: dict[str, Any], count: int) -> dict[str, Any]:
    """The seed with ``count`` integrations: the n-th (from 2) is a copy of the first whose
    every Propexo id, and its integration id, end in ``-n``; names and PMS ids stay the same,
    as two Rent Manager databases of one operator may name things alike."""
    if count <= 1:
        return seed
    text = json.dumps(seed)
    ids = {record["id"] for records in seed.values() for record in records if "id" in record}
    grown: dict[str, list[dict[str, Any]]] = {kind: list(records) for kind, records in seed.items()}
    for n in range(2, count + 1):
        copy = text
        for old in sorted(ids, key=len, reverse=True):
            copy = copy.replace(f'"{old}"', f'"{old}-{n}"')
        for kind, records in json.loads(copy).items():
            grown[kind].extend(records)
    return grown


def open_store(db: Path | None, seed: dict[str, Any]) -> Store:
    """The sandbox database (in memory unless a file is named), seeded when empty."""
    store = Store(db if db is not None else ":memory:")
    if store.is_empty():
        store.load_seed(seed)
    return store


def serve(host: str, port: int, store: Store, config: SandboxConfig, seed: dict[str, Any]) -> None:
    """Serve in the foreground until interrupted."""
    uvicorn.run(
        create_app(store, config, seed), host=host, port=port, log_level="warning", access_log=False
    )


class RunningSandbox:
    """A sandbox serving on a free loopback port in a background thread.

    Tests wait on what happened in it, never on a clock (:meth:`wait_for`): writes accepted,
    a sync started or finished, a webhook delivered, every job accepted so far finished (or
    shown in the write log), or nothing left running in the background.
    """

    def __init__(self, store: Store, config: SandboxConfig, seed: dict[str, Any]) -> None:
        self.store = store
        self.config = config
        self.app = create_app(store, config, seed)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # No SO_REUSEADDR: with it, Linux may hand two port-0 binds the same port before either
        # listens (tests run in parallel), and a client would talk to the wrong sandbox.
        self._sock.bind(("127.0.0.1", 0))
        self.port = int(self._sock.getsockname()[1])
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._server = uvicorn.Server(
            uvicorn.Config(
                self.app,
                log_level="warning",
                access_log=False,
                lifespan="auto",
                timeout_graceful_shutdown=2,
            )
        )
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._sock]},
            name="tieout-sandbox",
            daemon=True,
        )

    def start(self) -> RunningSandbox:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the sandbox did not start")
            time.sleep(0.01)
        return self

    def mark(self) -> Mark:
        """Where the events stand now: :meth:`wait_for` then waits for what comes after."""
        events: Events = self.app.sandbox.events
        return events.mark()

    def wait_for(
        self,
        event: Event,
        timeout: float = 30.0,
        *,
        since: Mark | None = None,
        trigger: str | None = None,
        count: int = 1,
    ) -> None:
        """Return once ``event`` has happened in the sandbox (:meth:`sandbox.events.Events.
        wait_for`); AssertionError after ``timeout``."""
        events: Events = self.app.sandbox.events
        if not events.wait_for(event, timeout, since=since, trigger=trigger, count=count):
            raise AssertionError(f"the sandbox's {event!r} did not come in {timeout:g}s")

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()


@contextmanager
def running_sandbox(
    config: SandboxConfig | None = None, seed_path: Path | None = None, db: Path | None = None
) -> Iterator[RunningSandbox]:
    """Start a sandbox on a free loopback port for the duration of a ``with`` block."""
    config = config or SandboxConfig()
    seed = with_integrations(read_seed(seed_path), config.integrations)
    store = open_store(db, seed)
    sandbox = RunningSandbox(store, config, seed).start()
    try:
        yield sandbox
    finally:
        sandbox.stop()
        store.close()
