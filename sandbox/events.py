"""What happens in the sandbox after a request has been answered: data syncs and webhooks.

Propexo documents ``manual-sync`` as *starting* a sync that finishes later, possibly hours later,
and says so through a SYNC_COMPLETE webhook carrying ``is_sync_finished``. It documents no way
to know when a sync started or finished other than that webhook. So here:

* a sync sees only what was written before it *started*, only the models it syncs, and resident
  charges only inside the model's date window (``--sync-window-days``);
* syncs of one integration run one at a time (a request during a sync waits its turn), as the
  docs imply when they say a back-sync blocks other syncs;
* ``--sync-mode async`` (default): ``manual-sync`` answers at once and the sync completes
  ``--sync-duration`` seconds later; ``instant``: it completes before the answer (rehearsals);
* webhooks are delivered to every active subscription with the trigger, signed with
  ``propexo-signature`` (hex HMAC-SHA256 of the body with the subscription's secret), and
  retried a few times when the receiver does not answer 2xx; delivered at least once: each
  delivery may come up to ``--webhook-late`` seconds late and is sent again, later, with
  probability ``--webhook-redeliver`` (a receiver that answered 2xx gets it twice);
* ``--foreign-syncs S``: another client of the integration asks for a manual sync every S
  seconds; its SYNC_COMPLETE looks like any manual one (no schedule id, same body).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import random
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import httpx

from sandbox.store import Store, new_id

if TYPE_CHECKING:
    from sandbox.faults import SandboxConfig
    from sandbox.kinds import Kinds

log = logging.getLogger("sandbox")
DELIVERY_ATTEMPTS = 5
DELIVERY_BACKOFF_S = (0.2, 0.5, 1.0, 2.0)


# What a test may wait for (:meth:`Events.wait_for`, ``POST /_sandbox/wait``).
Event = Literal["written", "started", "sync", "webhook", "jobs", "logged", "idle"]
EVENTS: tuple[Event, ...] = ("written", "started", "sync", "webhook", "jobs", "logged", "idle")


@dataclass(frozen=True)
class Mark:
    """How far the sandbox's events had gone at one moment (:meth:`Events.mark`)."""

    syncs: int
    deliveries: int
    started: int = 0
    writes: int = 0


def signature(secret: str, body: bytes) -> str:
    """Propexo's ``propexo-signature``: hex HMAC-SHA256 of the raw body, keyed by the secret."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class Events:
    """Runs syncs in the background and delivers webhooks; one per app."""

    def __init__(self, store: Store, config: SandboxConfig, kinds: Kinds) -> None:
        self.store = store
        self.config = config
        self.kinds = kinds
        self._locks: dict[str, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.writes = 0  # write requests accepted as jobs
        self.syncs_started = 0
        self.syncs_completed = 0  # read by tests that time another client's sync
        self.deliveries: list[tuple[str, int]] = []  # (trigger, HTTP status or 0), for tests
        # Told of every finished sync and every delivery attempt: what a test waits on
        # (:meth:`sandbox.server.RunningSandbox.wait_for`) instead of sleeping.
        self.changed = threading.Condition()
        self._rng = random.Random(config.fault_seed)  # noqa: S311 - timing, not secrets

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run a coroutine after the answer has gone, keeping a reference until it ends."""
        task = asyncio.get_running_loop().create_task(coro)
        with self.changed:
            self._tasks.add(task)
        task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[Any]) -> None:
        with self.changed:
            self._tasks.discard(task)
            self.changed.notify_all()

    def tell(self, counter: str) -> None:
        """One more of ``counter`` (``writes``, ``syncs_started``, ``syncs_completed``), told
        to whoever waits."""
        with self.changed:
            setattr(self, counter, getattr(self, counter) + 1)
            self.changed.notify_all()

    @property
    def busy(self) -> int:
        """How many syncs and deliveries are still under way in the background."""
        return len(self._tasks)

    def mark(self) -> Mark:
        """Where the events stand now: :meth:`wait_for` then waits for what comes after."""
        with self.changed:
            return Mark(self.syncs_completed, len(self.deliveries), self.syncs_started, self.writes)

    def wait_for(
        self,
        event: Event,
        timeout: float,
        *,
        since: Mark | None = None,
        trigger: str | None = None,
        count: int = 1,
    ) -> bool:
        """Block (a test's thread, never the event loop) until ``event`` has happened; False
        when ``timeout`` passed first.

        * ``written``: ``count`` write requests accepted as jobs after ``since``;
        * ``started``: ``count`` syncs started after ``since`` (what they see is fixed then);
        * ``sync``: ``count`` syncs finished after ``since`` (from the sandbox's start without);
        * ``webhook``: ``count`` deliveries answered 2xx after ``since``, of ``trigger`` if named;
        * ``jobs``: every write job accepted so far has finished (its write status is final);
        * ``logged``: every such job also shows in the write log (``--write-log-delay`` later);
        * ``idle``: no sync or webhook delivery is still under way in the background.
        """
        if event not in EVENTS:
            raise ValueError(f"no such sandbox event: {event!r}")
        start = since or Mark(0, 0)
        lag = self.config.write_log_delay_s if event == "logged" else 0.0
        # A job's outcome is due at a known moment: the last one's is what "jobs" waits for.
        due = max((job.ready_at + lag for job in self.store.jobs()), default=0.0)

        def happened() -> bool:
            if event == "written":
                return self.writes - start.writes >= count
            if event == "started":
                return self.syncs_started - start.started >= count
            if event == "sync":
                return self.syncs_completed - start.syncs >= count
            if event == "webhook":
                answered = [
                    t
                    for t, status in self.deliveries[start.deliveries :]
                    if 200 <= status < 300 and trigger in (None, t)
                ]
                return len(answered) >= count
            if event == "idle":
                return not self._tasks
            return time.time() >= due

        deadline = time.monotonic() + timeout
        with self.changed:
            while not happened():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                if event in ("jobs", "logged"):  # due at a known moment: wake then
                    remaining = min(remaining, max(due - time.time(), 0.001))
                self.changed.wait(remaining)
        return True

    async def sync(
        self, integration_id: str, models: list[str] | None, schedule_id: str | None
    ) -> int:
        """One sync of one integration: waits for the one running, then runs, then tells."""
        lock = self._locks.setdefault(integration_id, asyncio.Lock())
        known = self.kinds.models()
        synced_models = [m for m in (models or known) if m in known] or known
        async with lock:
            started = time.time()
            self.tell("syncs_started")
            if self.config.sync_mode == "async":
                # Read while the sync runs (as faults are read per request), so a test can
                # end a long sync early.
                while time.time() < started + self.config.sync_duration_s:
                    await asyncio.sleep(min(0.05, self.config.sync_duration_s))
            count = self.store.sync(
                integration_id,
                time.time(),
                started_at=started,
                kinds=self.kinds.synced(synced_models),
                window_days=self.config.sync_window_days,
            )
            self.tell("syncs_completed")
        log.info("sync of %s finished: %d records became visible", integration_id, count)
        self.spawn(
            self.deliver(
                "SYNC_COMPLETE",
                {
                    "event": "SYNC_COMPLETE",
                    "integration_id": integration_id,
                    "vendor": "RENTMANAGER",
                    "is_backsync": False,
                    "successful_job_count": len(synced_models),
                    "failed_job_count": 0,
                    "is_sync_finished": True,
                    "job_schedule_id": schedule_id,
                    "models_synced": synced_models,
                },
            )
        )
        return count

    def write_failed(
        self, integration_id: str, job_id: str, status: str, errors: list[str]
    ) -> None:
        """WRITE_OPERATION_FAILURE once the job's outcome shows (after the job delay)."""

        async def later() -> None:
            await asyncio.sleep(self.config.job_delay_s)
            await self.deliver(
                "WRITE_OPERATION_FAILURE",
                {
                    "event": "WRITE_OPERATION_FAILURE",
                    "integration_id": integration_id,
                    "vendor": "RENTMANAGER",
                    "root_job_id": job_id,
                    "write_status": status,
                    "errors": errors,
                },
            )

        self.spawn(later())

    async def deliver(self, trigger: str, data: dict[str, Any]) -> None:
        """POST ``{trigger, data}`` to every active subscription with this trigger."""
        targets = [
            w
            for w in self.store.webhooks()
            if w.get("active") and any(t["trigger"] == trigger for t in w.get("triggers", []))
        ]
        if not targets:
            return
        body = json.dumps({"trigger": trigger, "data": data}).encode()
        await self.send_body(targets, trigger, body)

    async def send_body(self, targets: list[dict[str, Any]], trigger: str, body: bytes) -> None:
        """One delivery of ``body`` to each target: maybe late, maybe sent again later."""
        late = self.config.webhook_late_s
        if late > 0:
            await asyncio.sleep(self._rng.uniform(0, late))
        async with httpx.AsyncClient(timeout=5.0) as client:
            await asyncio.gather(*(self._deliver_one(client, w, trigger, body) for w in targets))
        if self._rng.random() < self.config.webhook_redeliver:
            self.spawn(self.send_body(targets, trigger, body))

    async def _deliver_one(
        self, client: httpx.AsyncClient, webhook: dict[str, Any], trigger: str, body: bytes
    ) -> None:
        headers = {
            "content-type": "application/json",
            "propexo-signature": signature(webhook["secret"], body),
            **{h["header"]: h["value"] for h in webhook.get("headers") or []},
        }
        for attempt in range(DELIVERY_ATTEMPTS):
            status = 0
            try:
                response = await client.post(webhook["url"], content=body, headers=headers)
                status = response.status_code
            except httpx.HTTPError as exc:
                log.info("webhook %s to %s failed: %s", trigger, webhook["url"], exc)
            with self.changed:
                self.deliveries.append((trigger, status))
                self.changed.notify_all()
            if 200 <= status < 300:
                return
            if attempt < len(DELIVERY_BACKOFF_S):
                await asyncio.sleep(DELIVERY_BACKOFF_S[attempt])


def new_webhook(body: dict[str, Any], now: str) -> dict[str, Any]:
    """A subscription as Propexo's webhook API returns it."""
    return {
        "id": new_id("whk"),
        "created_at": now,
        "updated_at": now,
        "url": body["url"],
        "headers": body.get("headers") or [],
        "active": bool(body.get("active", False)),
        "secret": body.get("secret") or new_id("whsec") + new_id(""),
        "system": "SANDBOX",
        "model": body.get("model"),
        "triggers": [
            {"id": new_id("trg"), "trigger": t, "model": body.get("model")}
            for t in body["triggers"]
        ],
    }
