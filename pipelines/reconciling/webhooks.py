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

The secret lives in ``TIEOUT_WEBHOOK_SECRET`` or in ``<data dir>/.webhook_secret`` (owner-only,
written by `tieout webhooks register`), never in the ledger: a ledger or backup read by someone
else does not let them sign deliveries. A secret an older tieout kept in the ledger's ``meta``
is moved to that file, and erased from the ledger, the first time it is needed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import socket
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from pipelines.core.config import Secret, Settings
from pipelines.core.disk import write_atomically
from pipelines.core.errors import ConfigError
from pipelines.ledger import Ledger, utcnow
from pipelines.ledger.database import OWNER_ONLY
from pipelines.posting.propexo import PropexoClient

log = logging.getLogger("tieout")
SECRET_META = "webhook_secret"  # noqa: S105 - where an older tieout kept it, not a secret
SECRET_FILE = ".webhook_secret"  # noqa: S105 - a file name, not a secret
TRIGGERS = ["SYNC_COMPLETE", "WRITE_OPERATION_FAILURE"]
MAX_BODY_BYTES = 256 * 1024  # a SYNC_COMPLETE is a few hundred bytes; a failure a few KB


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
        body = await read_limited(request, MAX_BODY_BYTES)
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
        with Ledger(ledger_url) as ledger:
            understood = record_event(ledger, payload, body, settings.webhook_redelivery_s)
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
        self._server = uvicorn.Server(
            uvicorn.Config(
                create_receiver(settings),
                log_level="warning",
                access_log=False,
                lifespan="off",
                timeout_graceful_shutdown=2,
            )
        )
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
    uvicorn.run(
        create_receiver(settings), host=host, port=port, log_level="warning", access_log=False
    )
