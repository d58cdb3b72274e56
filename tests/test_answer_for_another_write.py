"""An answer is trusted only for its own write (#37 item 4): a proxy in front of the real
sandbox answers one invoice's POST with another invoice's 2xx answer, without forwarding it.
On main the ledger marked W-2026173 confirmed with W-2026117's job and record id, though it
never reached Rent Manager."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from pipelines.ledger import Ledger
from sandbox.faults import SandboxConfig
from sandbox.server import running_sandbox
from tests.conftest import run_cli
from tests.test_load import env_for

ANSWERED = "W-2026117"  # its answer is replayed …
REPLAYED = "W-2026173"  # … for this invoice's POST, which never reaches the sandbox
INVOICES = "/v1/invoices/rentmanager/"


@contextmanager
def replaying_proxy(upstream: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """A loopback proxy to ``upstream`` that answers REPLAYED's POST with ANSWERED's answer."""
    seen: dict[str, Any] = {}
    ready = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            return

        def _handle(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            number = None
            if self.command == "POST" and self.path.startswith(INVOICES):
                number = json.loads(body or b"{}").get("invoice_number")
            if number == REPLAYED:
                ready.wait(60)
                status, headers, content = seen[ANSWERED]
                seen["replayed"] = True
            else:
                headers_out = {
                    k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")
                }
                answer = httpx.request(
                    self.command,
                    upstream + self.path,
                    content=body,
                    headers=headers_out,
                    follow_redirects=False,
                    timeout=60,
                )
                status, content = answer.status_code, answer.content
                headers = {
                    k: v
                    for k, v in answer.headers.items()
                    if k.lower() not in ("content-length", "transfer-encoding", "connection")
                }
                if number == ANSWERED and 200 <= status < 300:
                    seen[ANSWERED] = (status, headers, content)
                    ready.set()
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("content-length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        do_GET = do_POST = do_PUT = do_DELETE = _handle

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def test_an_answer_for_another_write_is_never_confirmed(workspace: Path) -> None:
    config = SandboxConfig(job_delay_s=0.05, rate_limit=1000, write_log_delay_s=0.2)
    (workspace / "inbox" / "rent_roll.xlsx").unlink()
    with (
        running_sandbox(config) as box,
        httpx.Client(
            base_url=box.base_url, headers={"Authorization": "Bearer sandbox-token"}
        ) as api,
        replaying_proxy(box.base_url) as (proxy, seen),
    ):
        env = {**env_for(box, workspace), "PROPEXO_BASE_URL": proxy}
        first = run_cli("--data-dir", str(workspace), "run", env=env)
        assert seen.get("replayed"), first.stdout + first.stderr
        numbers = [r.get("invoice_number") for r in api.get("/_sandbox/records").json()["results"]]
        assert REPLAYED not in numbers  # it never reached Rent Manager
        with Ledger(workspace / "ledger.sqlite", readonly=True) as ledger:
            records = ledger.records(columns=["record_key", "invoice_number", "state", "job_id"])
        row = records[records["invoice_number"].eq(REPLAYED)].iloc[0]
        other = records[records["invoice_number"].eq(ANSWERED)].iloc[0]
        assert row["state"] == "sending", records  # never confirmed on another write's answer
        assert row["job_id"] != other["job_id"]  # the other write's job is not its own
        assert other["state"] in ("confirmed", "matched")  # its own write, on evidence
        assert first.returncode == 1

        todo = run_cli("--data-dir", str(workspace), "todo", "--json", env=env)
        items = [
            i for i in json.loads(todo.stdout)["items"] if i["cause"] == "answer_for_another_write"
        ]
        assert len(items) == 1, todo.stdout
        assert any("answer for another write" in r for r in items[0]["detail"]["reasons"])

        # A person looks in Rent Manager: it is not there; the next run sends it, once.
        key = str(row["record_key"])
        decided = run_cli("--data-dir", str(workspace), "resolve", key, "--absent", env=env)
        assert decided.returncode == 0, decided.stdout + decided.stderr
        env["PROPEXO_BASE_URL"] = box.base_url
        run_cli("--data-dir", str(workspace), "run", env=env)
        box.wait_for("jobs")
        numbers = [r.get("invoice_number") for r in api.get("/_sandbox/records").json()["results"]]
        assert numbers.count(REPLAYED) == 1 and numbers.count(ANSWERED) == 1
        assert len(numbers) == 12
