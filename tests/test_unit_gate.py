"""The sandbox's gate, in process (an ASGI app made here behind it, no server): Bearer auth,
the rate limit per token with its slowdown past 80% of the window and its reset, a revoked
token, and each injected fault as a client meets it, on a clock the test moves."""

from __future__ import annotations

import asyncio
import json
import logging
import types
from typing import Any

import pytest

import sandbox.gate as gate_module
from sandbox.faults import SandboxConfig
from sandbox.gate import REFUSALS, Gate, _bearer, _DropFilter

Message = dict[str, Any]


class Inner:
    """The routes behind the gate: answers 201 with a JSON body, and counts what it applied."""

    def __init__(self, status: int = 201) -> None:
        self.applied = 0
        self.status = status

    async def __call__(self, scope: Message, receive: Any, send: Any) -> None:
        self.applied += 1
        body = json.dumps({"id": f"rec{self.applied}", "path": scope["path"]}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": self.status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})


class Clock:
    def __init__(self) -> None:
        self.now = 500.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(gate_module, "time", types.SimpleNamespace(monotonic=fake.monotonic))
    monkeypatch.setattr(gate_module, "asyncio", types.SimpleNamespace(sleep=fake.sleep))
    return fake


def call(
    gate: Gate, path: str = "/v1/invoices/", method: str = "POST", token: str | None = "tok"
) -> tuple[int | None, dict[str, str], bytes]:
    """One request through the gate: its status (None: no answer started), headers, body."""
    headers = [(b"authorization", f"Bearer {token}".encode())] if token else []
    scope = {"type": "http", "path": path, "method": method, "headers": headers}
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(gate(scope, receive, send))
    start = next((m for m in sent if m["type"] == "http.response.start"), None)
    if start is None:
        return None, {}, b""
    head = {k.decode(): v.decode() for k, v in start.get("headers", [])}
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    if not any(m["type"] == "http.response.body" for m in sent):
        return -int(start["status"]), head, body  # started, never finished: a dropped answer
    return int(start["status"]), head, body


def make(inner: Inner | None = None, **config: Any) -> tuple[Gate, Inner]:
    app = inner or Inner()
    return Gate(app, SandboxConfig(token="tok", **config)), app


def test_a_request_without_the_token_is_refused_before_anything_is_applied(clock: Clock) -> None:
    gate, app = make()
    for token in (None, "wrong", "tok-2"):
        status, _, body = call(gate, token=token)
        assert status == 401
        assert json.loads(body)["error"]["code"] == "unauthorized"
    assert app.applied == 0
    # Health needs no token; a second integration's token is one the sandbox accepts.
    assert call(gate, path="/_sandbox/health", token=None)[0] == 201
    gate2, _ = make(integrations=2)
    assert call(gate2, token="tok-2")[0] == 201


def test_the_bearer_token_is_read_whatever_the_case_of_its_scheme() -> None:
    assert _bearer({"headers": [(b"authorization", b"bearer  abc ")]}) == "abc"
    assert _bearer({"headers": [(b"authorization", b"Basic abc")]}) is None
    assert _bearer({"headers": []}) is None


def test_the_rate_limit_counts_per_token_slows_past_80_percent_and_resets(clock: Clock) -> None:
    gate, app = make(rate_limit=5, rate_window_s=60.0, integrations=2)
    remaining = []
    for _ in range(5):
        status, head, _ = call(gate)
        assert status == 201
        remaining.append(int(head["x-ratelimit-remaining"]))
        assert head["x-ratelimit-limit"] == "5"
    assert remaining == [4, 3, 2, 1, 0]
    # Past 80% of the window's budget, each request is held back (Propexo's 2 s a minute).
    assert clock.slept == [2.0]
    status, head, body = call(gate)
    assert status == 429 and head["x-ratelimit-remaining"] == "0"
    assert json.loads(body)["error"]["code"] == "rate_limit_exceeded"
    assert gate.rate_limited == 1 and app.applied == 5
    # Another customer's token has a budget of its own.
    assert call(gate, token="tok-2")[0] == 201
    clock.now += 60.0
    assert call(gate)[0] == 201


def test_paths_outside_v1_pass_the_token_check_but_not_the_limit(clock: Clock) -> None:
    gate, app = make(rate_limit=1)
    for _ in range(3):
        assert call(gate, path="/_sandbox/state")[0] == 201
    assert gate.requests_seen == 0 and app.applied == 3


def test_a_revoked_token_is_refused_after_so_many_posts(clock: Clock) -> None:
    gate, app = make(revoke_token_after=2)
    assert [call(gate)[0] for _ in range(2)] == [201, 201]
    status, _, body = call(gate, method="GET")
    assert status == 401 and "revoked" in json.loads(body)["error"]["message"]
    gate.config.revoke_token_after = None
    assert call(gate)[0] == 201
    assert app.applied == 3


@pytest.mark.parametrize("fault", ["500", "502", "503"])
def test_a_server_error_is_answered_and_nothing_is_applied(clock: Clock, fault: str) -> None:
    gate, app = make(faults_at={"post": {1: fault}})
    status, _, body = call(gate)
    assert status == int(fault)
    assert json.loads(body)["error"]["message"] == f"injected fault {fault}"
    assert app.applied == 0
    assert gate.fault_counts == {fault: 1}
    assert call(gate)[0] == 201  # only the first POST


@pytest.mark.parametrize("fault", sorted(REFUSALS))
def test_a_refusal_carries_propexo_s_error_and_applies_nothing(clock: Clock, fault: str) -> None:
    gate, app = make(faults_at={"*": {1: fault}})
    status, _, body = call(gate, method="GET")
    assert status == int(fault)
    assert json.loads(body)["error"] == {"code": REFUSALS[fault][0], "message": REFUSALS[fault][1]}
    assert app.applied == 0


def test_a_lost_answer_is_applied_and_never_arrives(clock: Clock) -> None:
    gate, app = make(faults_at={"post": {1: "lost"}})
    status, _, body = call(gate)
    assert status == -200 and body == b""
    assert app.applied == 1


def test_a_reset_connection_applies_nothing(clock: Clock) -> None:
    gate, app = make(faults_at={"get": {1: "reset"}})
    assert call(gate, method="GET")[0] == -200
    assert app.applied == 0


def test_unreadable_successes_are_applied_then_answered_in_a_form_no_client_reads(
    clock: Clock,
) -> None:
    gate, app = make(faults_at={"post": {1: "html", 2: "truncated", 3: "204"}})
    status, head, body = call(gate)
    assert (status, head["content-type"]) == (201, "text/html")
    assert body.startswith(b"<html>")
    status, head, body = call(gate)
    assert status == 201 and int(head["content-length"]) == len(body)
    with pytest.raises(json.JSONDecodeError):
        json.loads(body)
    status, head, body = call(gate)
    assert (status, body, head["content-length"]) == (204, b"", "0")
    assert app.applied == 3


def test_an_unreadable_fault_passes_a_failure_on_as_it_was(clock: Clock) -> None:
    gate, _ = make(Inner(status=404), faults_at={"post": {1: "truncated"}})
    status, _, body = call(gate)
    assert status == 404 and json.loads(body)["path"] == "/v1/invoices/"


def test_random_faults_follow_their_seed_and_their_odds(clock: Clock) -> None:
    def draws(seed: int) -> list[int | None]:
        gate, _ = make(
            faults={"post": {"500": 0.3}, "*": {"reset": 0.2}}, fault_seed=seed, rate_limit=1000
        )
        return [call(gate)[0] for _ in range(200)]

    first = draws(7)
    assert first == draws(7)
    assert first != draws(8)
    share_500 = first.count(500) / len(first)
    share_reset = first.count(-200) / len(first)
    assert 0.15 < share_500 < 0.45 and 0.08 < share_reset < 0.35
    assert 0.3 < first.count(201) / len(first) < 0.7


def test_a_fault_for_another_route_leaves_this_one_alone(clock: Clock) -> None:
    gate, _ = make(faults={"get": {"500": 1.0}}, faults_at={"get": {1: "reset"}})
    assert call(gate, method="POST")[0] == 201
    assert call(gate, method="DELETE")[0] == 201
    assert gate.seen_by_route == {"post": 1, "get": 0, "*": 2}


def test_a_dropped_connection_is_not_logged_as_a_server_error() -> None:
    drop = _DropFilter()

    def record(text: str) -> logging.LogRecord:
        return logging.LogRecord("uvicorn.error", logging.ERROR, __file__, 1, text, (), None)

    assert not drop.filter(record("ASGI callable returned without completing response."))
    assert drop.filter(record("Exception in ASGI application"))
