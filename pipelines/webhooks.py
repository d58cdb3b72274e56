"""tieout's webhook receiver: Propexo's SYNC_COMPLETE and WRITE_OPERATION_FAILURE into the ledger.

A SYNC_COMPLETE with ``is_sync_finished`` is the only signal Propexo documents that a sync is
done, and a finished sync is what can prove a record absent (:mod:`pipelines.proof`). Without
this receiver, records in doubt stay in doubt until a person settles them (`tieout resolve`).

Deliveries are authenticated as Propexo documents: ``propexo-signature`` is the hex HMAC-SHA256
of the raw body keyed by the subscription's secret, compared in constant time. A delivery with a
wrong or missing signature is refused (401) and recorded nowhere.
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
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from pipelines.config import Secret, Settings
from pipelines.errors import ConfigError
from pipelines.ledger import Ledger, utcnow
from pipelines.propexo import PropexoClient

log = logging.getLogger("tieout")
SECRET_META = "webhook_secret"  # noqa: S105 - the ledger key, not a secret
TRIGGERS = ["SYNC_COMPLETE", "WRITE_OPERATION_FAILURE"]


def webhook_secret(settings: Settings, ledger: Ledger) -> Secret | None:
    """The configured secret (``TIEOUT_WEBHOOK_SECRET``), else the one `register` generated."""
    if settings.webhook_secret is not None:
        return settings.webhook_secret
    stored = ledger.get_meta(SECRET_META)
    return Secret(stored) if stored else None


def is_signed(secret: Secret, body: bytes, given: str | None) -> bool:
    expected = hmac.new(secret.reveal().encode(), body, hashlib.sha256).hexdigest()
    return given is not None and hmac.compare_digest(expected, given.strip().lower())


def record_event(ledger: Ledger, payload: dict[str, Any]) -> str:
    """Put one delivery in the ledger; returns what was understood of it."""
    trigger = str(payload.get("trigger") or payload.get("event") or "")
    data = payload.get("data") if isinstance(payload.get("data"), dict) else payload
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

    async def receive(request: Request) -> JSONResponse:
        body = await request.body()
        with Ledger(ledger_url) as ledger:
            secret = webhook_secret(settings, ledger)
            if secret is None or not is_signed(
                secret, body, request.headers.get("propexo-signature")
            ):
                return JSONResponse({"error": "bad signature"}, status_code=401)
            try:
                payload = json.loads(body)
            except (json.JSONDecodeError, UnicodeDecodeError):
                return JSONResponse({"error": "not JSON"}, status_code=400)
            if not isinstance(payload, dict):
                return JSONResponse({"error": "not an object"}, status_code=400)
            understood = record_event(ledger, payload)
        log.info("webhook received: %s", understood)
        return JSONResponse({"ok": True, "recorded": understood})

    return Starlette(routes=[Route("/{path:path}", receive, methods=["POST"])])


def register(client: PropexoClient, settings: Settings, ledger: Ledger, url: str) -> dict[str, Any]:
    """Subscribe ``url`` to SYNC_COMPLETE and WRITE_OPERATION_FAILURE through Propexo's webhook
    API. Without a configured secret one is generated and kept in the ledger (never printed)."""
    secret = webhook_secret(settings, ledger)
    if secret is None:
        secret = Secret(secrets.token_urlsafe(32))
        ledger.set_meta(SECRET_META, secret.reveal())
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
