"""The gate in front of the sandbox's API: Bearer auth, the per-token rate limit with its
slowdown, and injected faults (5xx, dropped connections, answers lost after the write, 4xx
refusals, a revoked token, and 2xx answers that cannot be read)."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from sandbox.faults import SandboxConfig
from sandbox.validation import error_body

log = logging.getLogger("sandbox")
Scope = dict[str, Any]


Receive = Callable[[], Awaitable[dict[str, Any]]]


Send = Callable[[dict[str, Any]], Awaitable[None]]


ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class _DropFilter(logging.Filter):
    """A dropped connection is an injected fault, not a server error worth a log line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "without completing response" not in record.getMessage()


class Gate:
    """ASGI middleware in front of the API: Bearer auth, per-token rate limit, injected faults."""

    def __init__(self, app: ASGIApp, config: SandboxConfig) -> None:
        self.app = app
        self.config = config
        self.windows: dict[str, tuple[float, int]] = {}
        self.rng = random.Random(config.fault_seed)  # noqa: S311 - faults, not secrets
        self.fault_counts: dict[str, int] = {}
        self.requests_seen = 0
        self.seen_by_route: dict[str, int] = {"post": 0, "get": 0, "*": 0}
        self.rate_limited = 0
        self.sandbox: Any = None  # the routes behind the gate (tests look inside)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["path"] == "/_sandbox/health"
            or scope["path"].startswith("/_presigned/")  # an object store's, signed in its URL
        ):
            await self.app(scope, receive, send)
            return
        token = _bearer(scope)
        if token is None or not any(
            hmac.compare_digest(token.encode(), known.encode()) for known in self.config.tokens()
        ):
            await _send_json(
                send, 401, error_body("unauthorized", "missing or invalid bearer token")
            )
            return
        if not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        revoke = self.config.revoke_token_after
        if revoke is not None and self.seen_by_route["post"] >= revoke:
            await _send_json(send, 401, error_body("unauthorized", "the token was revoked"))
            return
        self.requests_seen += 1
        allowed, remaining, slow = self._count(token)
        headers = [
            (b"x-ratelimit-limit", str(self.config.rate_limit).encode()),
            (b"x-ratelimit-remaining", str(remaining).encode()),
        ]
        if not allowed:
            self.rate_limited += 1
            await _send_json(
                send,
                429,
                error_body(
                    "rate_limit_exceeded",
                    "too many requests: wait for the rate-limit window to reset",
                ),
                headers,
            )
            return
        if slow:
            await asyncio.sleep(self.config.slowdown_s)
        fault = self._roll(scope["method"])
        if fault in ("500", "502", "503"):
            await _send_json(
                send, int(fault), error_body("server_error", f"injected fault {fault}"), headers
            )
            return
        if fault in REFUSALS:
            code, message = REFUSALS[fault]
            await _send_json(send, int(fault), error_body(code, message), headers)
            return
        if fault in ("html", "truncated", "204"):
            await _unreadable(self.app, scope, receive, send, fault, headers)
            return
        if fault == "reset":
            await _drop(send)
            return

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *headers]}
            await send(message)

        if fault == "lost":

            async def swallow(message: dict[str, Any]) -> None:
                return None

            await self.app(scope, receive, swallow)  # the write is applied ...
            await _drop(send)  # ... and the answer never arrives
            return
        await self.app(scope, receive, send_with_headers)

    def _count(self, token: str) -> tuple[bool, int, bool]:
        now = time.monotonic()
        started, used = self.windows.get(token, (now, 0))
        if now - started >= self.config.rate_window_s:
            started, used = now, 0
        if used >= self.config.rate_limit:
            self.windows[token] = (started, used)
            return False, 0, False
        used += 1
        self.windows[token] = (started, used)
        return True, self.config.rate_limit - used, used > 0.8 * self.config.rate_limit

    def _roll(self, method: str) -> str | None:
        route = "post" if method == "POST" else "get" if method == "GET" else None
        for name in ("*", route) if route else ("*",):
            self.seen_by_route[name] += 1
        for name in (route, "*") if route else ("*",):
            kind = self.config.faults_at.get(name, {}).get(self.seen_by_route[name])
            if kind is not None:
                self.fault_counts[kind] = self.fault_counts.get(kind, 0) + 1
                log.info("injected fault %s on %s", kind, method)
                return kind
        table: dict[str, float] = {**self.config.faults.get("*", {})}
        if route:
            table.update(self.config.faults.get(route, {}))
        if not table:
            return None
        draw = self.rng.random()
        for kind, probability in sorted(table.items()):
            if draw < probability:
                self.fault_counts[kind] = self.fault_counts.get(kind, 0) + 1
                log.info("injected fault %s on %s", kind, method)
                return kind
            draw -= probability
        return None


# Refused before anything is applied, with Propexo's errorResponse.
REFUSALS = {
    "400": ("invalid_request", "injected fault 400: the request was refused"),
    "401": ("unauthorized", "injected fault 401: missing or invalid bearer token"),
    "403": ("forbidden", "injected fault 403: this token may not write to this integration"),
    "422": ("unprocessable_entity", "injected fault 422: the PMS refused the request"),
}


async def _unreadable(
    app: ASGIApp,
    scope: Scope,
    receive: Receive,
    send: Send,
    fault: str,
    headers: list[tuple[bytes, bytes]],
) -> None:
    """Apply the request, then answer a success in a form no client can read: an HTML page
    (a proxy's), the JSON cut in half (with a content-length that matches the cut), or 204
    with no body. An answer that was not a success is passed on as it was."""
    messages: list[dict[str, Any]] = []

    async def keep(message: dict[str, Any]) -> None:
        messages.append(message)

    await app(scope, receive, keep)
    start = next(m for m in messages if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    status = int(start["status"])
    kind = b"application/json"
    if status >= 300:
        pass
    elif fault == "204":
        status, body = 204, b""
    elif fault == "html":
        kind, body = b"text/html", b"<html><body><h1>OK</h1></body></html>"
    else:
        body = body[: max(1, len(body) // 2)]
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", kind),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            text = value.decode("latin-1")
            if text.lower().startswith("bearer "):
                return str(text[7:].strip())
    return None


async def _send_json(
    send: Send, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})


async def _drop(send: Send) -> None:
    """Start an answer and never finish it: the server closes the connection mid-response."""
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"1024")]}
    )
