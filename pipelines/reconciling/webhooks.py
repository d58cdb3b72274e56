"""tieout's webhook receiver: Propexo's SYNC_COMPLETE and WRITE_OPERATION_FAILURE into the ledger.

A SYNC_COMPLETE with ``is_sync_finished`` is the only signal Propexo documents that a sync is
done, and a finished sync is what can prove a record absent
(:mod:`pipelines.reconciling.proof`). Without this receiver, records in doubt stay in doubt
until a person settles them (`tieout resolve`).

Deliveries are authenticated as Propexo documents: ``propexo-signature`` is the hex HMAC-SHA256
of the raw body keyed by the subscription's secret, compared in constant time. A delivery with a
wrong or missing signature is refused (401) and recorded nowhere; the signature is checked
before the ledger is opened. A body larger than :data:`MAX_BODY_BYTES` is refused (413) before
it is read (by its ``Content-Length``, or as soon as a streamed body passes the limit).

Propexo delivers at least once: a delivery byte for byte the same as one recorded less than
``webhook_redelivery_s`` before, with no sync asked of Propexo since, is a redelivery: answered
200, counted, recorded once (:meth:`Ledger.record_delivery`).

The receiver faces the network, so a slow or hostile client cannot starve it
(:func:`server_config`): a request's head and body must arrive within
:data:`REQUEST_TIMEOUT_S` of its first byte (uvicorn has no header timeout of its own; a
connection that sends half a header is closed then); at most :data:`MAX_CONNECTIONS` are open
at once, fewer when the process may open fewer file descriptors (:func:`connection_limit`;
one more is closed as soon as it is accepted, so ``accept`` never runs out of descriptors);
the listen backlog is :data:`BACKLOG`; an idle keep-alive connection is closed after
:data:`KEEP_ALIVE_S`; a head over :data:`MAX_HEAD_BYTES` is refused (h11). Errors from the
server and the event loop (refused accepts, bad requests, a ledger that cannot be opened) are
logged at most once per :data:`LOG_EVERY_S` per kind, with a count and no traceback.

The secret lives in ``TIEOUT_WEBHOOK_SECRET`` or in ``<data dir>/.webhook_secret`` (owner-only,
written by `tieout webhooks register`), never in the ledger: a ledger or backup read by someone
else does not let them sign deliveries. A secret an older tieout kept in the ledger's ``meta``
is moved to that file, and erased from the ledger, the first time it is needed.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import resource
import secrets
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h11
import uvicorn
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from uvicorn.protocols.http.h11_impl import H11Protocol

from pipelines.core.config import Secret, Settings
from pipelines.core.disk import write_atomically
from pipelines.core.errors import ConfigError, LedgerError
from pipelines.ledger import Ledger, utcnow
from pipelines.ledger.database import OWNER_ONLY
from pipelines.posting.propexo import PropexoClient

log = logging.getLogger("tieout")
SECRET_META = "webhook_secret"  # noqa: S105 - where an older tieout kept it, not a secret
SECRET_FILE = ".webhook_secret"  # noqa: S105 - a file name, not a secret
TRIGGERS = ["SYNC_COMPLETE", "WRITE_OPERATION_FAILURE"]
MAX_BODY_BYTES = 256 * 1024  # a SYNC_COMPLETE is a few hundred bytes; a failure a few KB
REQUEST_TIMEOUT_S = 5.0  # from a request's first byte to its last (Propexo's arrive at once)
KEEP_ALIVE_S = 5
MAX_CONNECTIONS = 256  # open at once, and never more than the file descriptors allow:
FDS_KEPT = 64  # descriptors left for the ledger, the listening socket and the rest
BACKLOG = 128
MAX_HEAD_BYTES = 16 * 1024
LOG_EVERY_S = 10.0


def secret_file(settings: Settings) -> Path:
    """``<data dir>/.webhook_secret``: the secret `register` generated, owner-only."""
    return settings.data_dir / SECRET_FILE


def webhook_secret(settings: Settings, ledger: Ledger | None = None) -> Secret | None:
    """The configured secret (``TIEOUT_WEBHOOK_SECRET``), else the one `register` generated
    (its file; with ``ledger``, one an older tieout kept there is moved to the file first)."""
    if settings.webhook_secret is not None:
        return settings.webhook_secret
    if ledger is not None:
        move_secret_out_of_ledger(settings, ledger)
    try:
        text = secret_file(settings).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return Secret(text) if text else None


def keep_secret(settings: Settings, secret: Secret) -> None:
    """Write the secret to its owner-only file (never readable by anyone else, even briefly)."""
    write_atomically(secret_file(settings), secret.reveal().encode(), mode=OWNER_ONLY)


def move_secret_out_of_ledger(settings: Settings, ledger: Ledger) -> None:
    """A secret an older tieout stored in the ledger's ``meta``: into its file, then erased
    from the ledger (overwritten, not only unlinked from the table)."""
    stored = ledger.get_meta(SECRET_META)
    if not stored:
        return
    if not secret_file(settings).exists():
        keep_secret(settings, Secret(stored))
    ledger.erase_meta(SECRET_META)
    log.info("webhook secret moved out of the ledger to %s", secret_file(settings))


def is_signed(secret: Secret, body: bytes, given: str | None) -> bool:
    expected = hmac.new(secret.reveal().encode(), body, hashlib.sha256).hexdigest()
    return given is not None and hmac.compare_digest(expected, given.strip().lower())


def record_event(
    ledger: Ledger, payload: dict[str, Any], body: bytes | None = None, redelivery_s: float = 0
) -> str:
    """Put one delivery in the ledger, once; returns what was understood of it. With the raw
    ``body``, a redelivery of one recorded less than ``redelivery_s`` ago (and no sync asked
    for since) is counted, not recorded again."""
    trigger = str(payload.get("trigger") or payload.get("event") or "")
    data = payload.get("data") if isinstance(payload.get("data"), dict) else payload
    with ledger.db.transaction():
        if body is not None:
            digest = hashlib.sha256(body).hexdigest()
            if not ledger.record_delivery(digest, redelivery_s):
                return "redelivery (recorded once)"
        return _record(ledger, trigger, data, payload)


def _record(ledger: Ledger, trigger: str, data: Any, payload: dict[str, Any]) -> str:
    ledger.record_webhook(trigger, json.dumps(payload))
    if trigger == "SYNC_COMPLETE" and isinstance(data, dict) and data.get("integration_id"):
        models = data.get("models_synced")
        ledger.record_sync_complete(
            str(data["integration_id"]),
            schedule_id=data.get("job_schedule_id") or None,
            finished=data.get("is_sync_finished") is True,
            models=[str(m) for m in models] if isinstance(models, list) else None,
            at=utcnow(),
        )
        return "sync complete" if data.get("is_sync_finished") is True else "sync unfinished"
    return trigger.lower() or "unknown event"


def create_receiver(settings: Settings) -> Starlette:
    """The ASGI app: any POST path, so the registered URL can carry a path of its own."""
    ledger_url = settings.ledger

    with Ledger(ledger_url) as ledger:
        secret = webhook_secret(settings, ledger)  # and out of the ledger, if it was there

    async def receive(request: Request) -> JSONResponse:
        try:
            body = await read_limited(request, MAX_BODY_BYTES)
        except ClientDisconnect:  # gone, or closed for sending too slowly: no one to answer
            return JSONResponse({"error": "request not complete"}, status_code=408)
        if body is None:
            return JSONResponse(
                {"error": f"body larger than {MAX_BODY_BYTES} bytes"}, status_code=413
            )
        key = secret or webhook_secret(settings)  # registered since the receiver started
        if key is None or not is_signed(key, body, request.headers.get("propexo-signature")):
            return JSONResponse({"error": "bad signature"}, status_code=401)
        try:
            payload = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return JSONResponse({"error": "not JSON"}, status_code=400)
        if not isinstance(payload, dict):
            return JSONResponse({"error": "not an object"}, status_code=400)
        try:
            with Ledger(ledger_url) as ledger:
                understood = record_event(ledger, payload, body, settings.webhook_redelivery_s)
        except (LedgerError, OSError) as exc:  # e.g. out of file descriptors: Propexo retries
            guard_log.warning("delivery not recorded, the ledger could not be opened: %s", exc)
            return JSONResponse({"error": "ledger unavailable; deliver again"}, status_code=503)
        log.info("webhook received: %s", understood)
        return JSONResponse({"ok": True, "recorded": understood})

    return Starlette(routes=[Route("/{path:path}", receive, methods=["POST"])])


async def read_limited(request: Request, limit: int) -> bytes | None:
    """The body, or None as soon as it is known to pass ``limit`` bytes: a declared length
    over it is refused before a byte is read; a streamed one, at the chunk that passes it."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                return None
        except ValueError:
            return None
    parts = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        parts.append(chunk)
    return b"".join(parts)


guard_log = logging.getLogger("tieout.webhooks.guard")


class RateLimitedLog(logging.Filter):
    """At most one line per ``every_s`` for each kind of message (logger and template), with
    how many like it were left out, and never a traceback: a flood of refused connections or
    bad requests writes a few lines, not hundreds of thousands."""

    def __init__(self, every_s: float = LOG_EVERY_S, clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self.every_s = every_s
        self.clock = clock
        self._last: dict[tuple[str, str], float] = {}
        self._skipped: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg))
        now = self.clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.every_s:
                self._skipped[key] = self._skipped.get(key, 0) + 1
                return False
            self._last[key] = now
            skipped = self._skipped.pop(key, 0)
        message = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            failure = record.exc_info[1]
            message += f" ({type(failure).__name__}: {failure})"
        if skipped:
            message += f" [{skipped:,} more like this in the last {self.every_s:g} s]"
        record.msg, record.args = message, None
        record.exc_info = record.exc_text = record.stack_info = None
        return True


GUARDED_LOGGERS = ("uvicorn.error", "asyncio", guard_log.name)
_GUARD = RateLimitedLog()


def guard_logging() -> None:
    """Rate-limit the receiver's error logging: uvicorn's, the event loop's (a refused
    ``accept``), and the receiver's own (:class:`RateLimitedLog`); once per process."""
    for name in GUARDED_LOGGERS:
        logger = logging.getLogger(name)
        if _GUARD not in logger.filters:
            logger.addFilter(_GUARD)


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request (head and body) and a cap on
    open connections; uvicorn itself only times out idle keep-alive connections."""

    request_timeout_s = REQUEST_TIMEOUT_S

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        self._deadline: asyncio.TimerHandle | None = None
        if len(self.connections) > connection_limit():
            guard_log.warning("connection refused: %d open already", connection_limit())
            self.transport.close()
            return
        self._arm()

    def _arm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = self.loop.call_later(self.request_timeout_s, self._too_slow)

    def _too_slow(self) -> None:
        self._deadline = None
        if self.transport.is_closing() or self.conn.their_state not in (h11.IDLE, h11.SEND_BODY):
            return  # answered, or being answered: the app has the whole request
        guard_log.warning(
            "connection closed: no complete request within %g s", self.request_timeout_s
        )
        self.transport.close()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()  # the next request on this connection has its own deadline

    def connection_lost(self, exc: Exception | None) -> None:
        if getattr(self, "_deadline", None) is not None:
            self._deadline.cancel()  # type: ignore[union-attr]
            self._deadline = None
        super().connection_lost(exc)


def connection_limit() -> int:
    """:data:`MAX_CONNECTIONS`, or fewer when this process may open fewer file descriptors:
    a connection over the limit is closed at once, so ``accept`` never runs out of them."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    return max(8, min(MAX_CONNECTIONS, soft - FDS_KEPT))


def server_config(app: Starlette, **where: Any) -> uvicorn.Config:
    """The receiver's uvicorn settings: the limits above, no access log (a delivery is
    logged by the app)."""
    guard_logging()
    return uvicorn.Config(
        app,
        http=GuardedH11Protocol,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_keep_alive=KEEP_ALIVE_S,
        timeout_graceful_shutdown=2,
        limit_concurrency=connection_limit() + 1,  # ours closes first; uvicorn 503s past it
        backlog=BACKLOG,
        h11_max_incomplete_event_size=MAX_HEAD_BYTES,
        **where,
    )


def register(client: PropexoClient, settings: Settings, ledger: Ledger, url: str) -> dict[str, Any]:
    """Subscribe ``url`` to SYNC_COMPLETE and WRITE_OPERATION_FAILURE through Propexo's webhook
    API. Without a configured secret one is generated and kept in ``<data dir>/.webhook_secret``
    (owner-only, never printed, never in the ledger)."""
    secret = webhook_secret(settings, ledger)
    if secret is None:
        secret = Secret(secrets.token_urlsafe(32))
        keep_secret(settings, secret)
    data = client.post_json(
        "/v1/webhooks/",
        {"url": url, "triggers": TRIGGERS, "active": True, "secret": secret.reveal()},
    )
    result = data.get("result") or {}
    return {"id": result.get("id"), "url": result.get("url"), "active": result.get("active")}


class ReceiverThread:
    """The receiver on a free loopback port in a background thread (demo and tests)."""

    def __init__(self, settings: Settings, host: str = "127.0.0.1", port: int = 0) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if port:  # a fixed port may be in TIME_WAIT from the last run; port 0 never needs it
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.url = f"http://{host}:{self._sock.getsockname()[1]}/propexo"
        self._server = uvicorn.Server(server_config(create_receiver(settings)))
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    def __enter__(self) -> ReceiverThread:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise ConfigError("the webhook receiver did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()


def serve(settings: Settings, host: str, port: int) -> None:
    """Serve in the foreground until interrupted (`tieout webhooks serve`)."""
    uvicorn.Server(server_config(create_receiver(settings), host=host, port=port)).run()
