"""The Propexo emulator's HTTP surface (Starlette), following Propexo's documentation (its
endpoints in sandbox/propexo-endpoints.json).

Where Propexo's documentation is silent, it follows ARCHITECTURE.md's "Sandbox" table: write
envelope ``{meta:{job_id}, result}``; schema faults are 400 at once (unknown keys rejected, as
Propexo's Zod validation does); PMS faults appear later as write-status FAILURE/PARTIAL_SUCCESS;
invoices read back right after SUCCESS; charges and credits only after a sync. The written kinds'
routes come from ``sandbox.kinds`` (the built-in ones, and ``SandboxConfig.kinds``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict
from datetime import datetime
from typing import Any, cast

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.builtin_kinds import BUILT_IN_KINDS
from sandbox.events import EVENTS, Events, Mark, new_webhook
from sandbox.faults import SandboxConfig
from sandbox.gate import ASGIApp, Gate, _DropFilter
from sandbox.kinds import Kinds
from sandbox.store import Store, now_iso
from sandbox.validation import (
    MANUAL_SYNC,
    REFERENCE_ROUTES,
    _error,
    _fill,
    load_read_models,
    load_request_validators,
    request_validator,
)
from sandbox.writes import Writes

log = logging.getLogger("sandbox")
MAX_LIMIT = 250
DATA_STAMPS = ("created_at", "updated_at", "last_seen")  # what --clock-skew moves


# --- request validation (Zod-like) --------------------------------------------------------------


# --- the application ----------------------------------------------------------------------------


def public(record: dict[str, Any]) -> dict[str, Any]:
    """A record as the API shows it: internal keys (leading underscore) removed."""
    return {k: v for k, v in record.items() if not k.startswith("_")}


class Sandbox(Writes):
    """Request handlers over a :class:`Store`."""

    def __init__(self, store: Store, config: SandboxConfig, seed: dict[str, Any] | None) -> None:
        self.store = store
        self.config = config
        self.seed = seed
        self.kinds = Kinds((*BUILT_IN_KINDS, *config.kinds))
        self.list_routes = {**REFERENCE_ROUTES, **self.kinds.list_routes()}
        self.filters_by_kind = {kind: filters for kind, filters in self.list_routes.values()}
        self.validators = load_request_validators(self.kinds.models())
        self.read_models = load_read_models(self.list_routes)
        for kind in self.kinds.all:
            if kind.read_model is not None:
                self.read_models[kind.name] = kind.read_model
            for write in kind.writes:
                if write.schema is not None:
                    self.validators[write.path] = request_validator(write.schema)
                elif write.path not in self.validators:
                    raise ValueError(
                        f"kind {kind.name!r}: no request schema for {write.path} in "
                        "propexo-endpoints.json; give Write(schema=...)"
                    )
        self.events = Events(store, config, self.kinds)
        self.presign_key = secrets.token_bytes(32)

    def _complete(self, kind: str, record: dict[str, Any]) -> dict[str, Any]:
        """Every key of Propexo's read model is always present: fill what the seed left out."""
        model = self.read_models.get(kind)
        written = self.kinds.by_name.get(kind)
        shown = written.render(public(record)) if written and written.render else public(record)
        out = self._on_data_clock(shown)
        if model is None:
            return out
        if "x_property_id" in model.get("required", []) and "x_property_id" not in out:
            prop = self.store.record("property", str(record.get("property_id") or record["id"]))
            out["x_property_id"] = str((prop or {}).get("x_id", ""))
        return _fill(model, out)

    def _on_data_clock(self, record: dict[str, Any]) -> dict[str, Any]:
        """The record's timestamps as Propexo's data clock reads them (``--clock-skew``)."""
        skew = self.config.clock_skew_s
        if not skew:
            return record
        for name in DATA_STAMPS:
            moment = _instant_or_none(record.get(name))
            if moment is not None:
                record[name] = now_iso(moment + skew)
        return record

    # -- lists ----------------------------------------------------------------------------------

    def location_of_property(self) -> dict[str, str]:
        """property id: its location id (the seed's ``_location_id``)."""
        return {
            p["id"]: p["_location_id"]
            for p in self.store.records("property")
            if p.get("_location_id")
        }

    def _query_filter(
        self, kind: str, params: dict[str, str]
    ) -> Callable[[dict[str, Any]], bool] | JSONResponse:
        checks: list[Callable[[dict[str, Any]], bool]] = []
        if "location_id" in params:
            wanted = params["location_id"]
            if kind in ("property", "unit", "vendor", "charge_code", "financial_account"):
                checks.append(lambda r: r.get("_location_id") == wanted)
            elif kind in ("resident", "lease"):
                loc_of = self.location_of_property()
                checks.append(lambda r: loc_of.get(r.get("property_id", "")) == wanted)
        if kind == "lease" and "resident_id" in params:
            rid = params["resident_id"]
            checks.append(
                lambda r: any(
                    m.get("resident_id") == rid for m in r.get("residents_meta_data") or []
                )
            )
        if kind in ("unit", "lease") and "unit_number" in params:
            if "property_id" not in params:
                return _error(400, "invalid_request", "unit_number requires property_id")
            number, field_name = (
                params["unit_number"],
                ("number" if kind == "unit" else "unit_number"),
            )
            checks.append(lambda r: str(r.get(field_name)) == number)
        written = self.kinds.by_name.get(kind)
        if written and written.query:
            checks += written.query(self, params)
        for name in ("updated_at", "last_seen"):
            gte, lte = params.get(f"{name}_gte"), params.get(f"{name}_lte")
            try:  # asked on Propexo's data clock; stored on the real one
                lo = _instant(gte) - self.config.clock_skew_s if gte else None
                hi = _instant(lte) - self.config.clock_skew_s if lte else None
            except ValueError:
                return _error(
                    400, "invalid_request", f"{name}_gte/{name}_lte must be ISO date-times"
                )
            if lo is not None or hi is not None:
                checks.append(_between(name, lo, hi))
        for name in self.filters_by_kind[kind]:
            if name in params:
                checks.append(_equals(name, params[name]))
        return lambda record: all(check(record) for check in checks)

    async def list_records(self, request: Request) -> Response:
        kind = self.list_routes[request.url.path][0]
        params = dict(request.query_params)
        paging = _paging(params)
        if isinstance(paging, JSONResponse):
            return paging
        offset, limit, order = paging
        keep = self._query_filter(kind, params)
        if isinstance(keep, JSONResponse):
            return keep
        rows = [r for r in self.store.records(kind) if keep(r)]
        for field_name, direction in reversed(order):
            rows.sort(key=_sort_key(field_name), reverse=direction == "desc")
        page = rows[offset : offset + limit]
        return JSONResponse(
            {
                "meta": {
                    "offset": offset,
                    "limit": limit,
                    "orderBy": [{"field": f, "direction": d} for f, d in order],
                    "hasMore": offset + len(page) < len(rows),
                    "total": len(rows),
                },
                "results": [self._complete(kind, r) for r in page],
            }
        )

    async def get_record(self, request: Request) -> Response:
        base = request.url.path.rsplit("/", 1)[0] + "/"
        kind = self.list_routes[base][0]
        record_id = request.path_params["record_id"]
        record = self.store.record(kind, record_id)
        if record is None:
            return _error(404, "not_found", f"no {kind.replace('_', ' ')} with id {record_id!r}")
        return JSONResponse(
            {
                "meta": {"offset": 0, "limit": 1, "orderBy": []},
                "results": self._complete(kind, record),
            }
        )

    async def vendors_of_property(self, request: Request) -> Response:
        property_id = request.path_params["property_id"]
        location = self.location_of_property().get(property_id)
        rows = [
            self._complete("vendor", v)
            for v in self.store.records("vendor")
            if v.get("property_id") == property_id or v.get("_location_id") == location
        ]
        return _whole_list(rows)

    # -- writes ---------------------------------------------------------------------------------

    async def manual_sync(self, request: Request) -> Response:
        """Starts a sync (``--sync-mode async``: it finishes later and says so by webhook)."""
        body, problem = await self._body(request, MANUAL_SYNC)
        if problem:
            return problem
        integration_id = request.path_params["integration_id"]
        if not self._integration_ok(integration_id):
            return _error(400, "invalid_request", f"unknown integration_id {integration_id!r}")
        models = (body or {}).get("models_to_sync")
        if self.config.sync_mode == "instant":
            await self.events.sync(integration_id, models, None)
        else:
            self.events.spawn(self.events.sync(integration_id, models, None))
        return JSONResponse({"result": {"success": True}})

    # -- webhooks -------------------------------------------------------------------------------

    async def list_webhooks(self, request: Request) -> Response:
        rows = self.store.webhooks()
        return _whole_list(rows)

    async def create_webhook(self, request: Request) -> Response:
        body, problem = await self._body(request)
        if problem:
            return problem
        webhook = new_webhook(body, now_iso())
        self.store.save_webhook(webhook)
        return JSONResponse({"result": webhook})

    async def webhook_by_id(self, request: Request) -> Response:
        webhook_id = request.path_params["webhook_id"]
        webhook = self.store.webhook(webhook_id)
        if webhook is None:
            return _error(400, "invalid_request", f"no webhook with id {webhook_id!r}")
        if request.method == "GET":
            return JSONResponse({"meta": {"orderBy": []}, "results": webhook})
        if request.method == "DELETE":
            self.store.delete_webhook(webhook_id)
            return JSONResponse({"result": {"id": webhook_id}})
        body, problem = await self._body(request, "/v1/webhooks/{webhook_id}")
        if problem:
            return problem
        changed = new_webhook({**webhook, **body}, webhook["created_at"])
        changed.update(id=webhook_id, updated_at=now_iso())
        if "triggers" not in body:
            changed["triggers"] = webhook["triggers"]
        self.store.save_webhook(changed)
        return JSONResponse({"result": changed})

    # -- test hooks -----------------------------------------------------------------------------

    async def sandbox_records(self, request: Request) -> Response:
        kind = request.query_params.get("kind")
        if kind is not None and kind not in self.kinds.by_label:
            labels = list(self.kinds.by_label)
            return _error(
                400,
                "invalid_request",
                f"kind must be {', '.join(labels[:-1])} or {labels[-1]}",
            )
        out = []
        for written in self.kinds.all:
            stored_kind = written.name
            for record in self.store.records(stored_kind, synced_only=False):
                if record.get("_deleted"):
                    continue  # gone from the PMS (Propexo's cache may still show it)
                record_kind = written.label_of(record)
                if kind in (None, record_kind):
                    out.append(
                        {
                            **public(record),
                            "kind": record_kind,
                            "job_id": record.get("_job_id"),
                            "synced": self.store.record(stored_kind, record["id"]) is not None,
                            "reference_sent": record.get("_reference_sent"),
                        }
                    )
        return JSONResponse({"results": out, "total": len(out)})

    async def sandbox_edit(self, request: Request) -> Response:
        kind, record_id = request.path_params["kind"], request.path_params["record_id"]
        written = self.kinds.by_label.get(kind)
        if written is None:
            return _error(404, "not_found", f"no {kind} with id {record_id!r}")
        stored = written.name
        if request.method == "DELETE":
            done = self.store.delete_record(stored, record_id)
        else:
            done = self.store.update_record(stored, record_id, await request.json())
        if not done:
            return _error(404, "not_found", f"no {kind} with id {record_id!r}")
        return JSONResponse({"result": {"success": True}})

    async def sandbox_sync(self, request: Request) -> Response:
        everything = self.kinds.synced(self.kinds.models())
        synced = self.store.sync(None, time.time(), kinds=everything)
        return JSONResponse({"result": {"synced": synced}})

    async def sandbox_forget_jobs(self, request: Request) -> Response:
        return JSONResponse({"result": {"forgotten": self.store.forget_jobs()}})

    async def sandbox_reset(self, request: Request) -> Response:
        self.store.reset(self.seed)
        return JSONResponse({"result": {"success": True}})

    async def sandbox_wait(self, request: Request) -> Response:
        """``POST /_sandbox/wait?event=E``: answers once the event has happened (200) or the
        timeout passed first (408), for a test or a script outside this process
        (:meth:`Events.wait_for`). Optional: ``timeout`` (s), ``syncs``, ``deliveries`` and
        ``started``, ``writes`` (what ``GET /_sandbox/mark`` answered), ``trigger``, ``count``."""
        params = request.query_params
        event = params.get("event", "")
        if event not in EVENTS:
            return _error(400, "invalid_request", f"no such sandbox event: {event!r}")
        try:
            timeout = min(float(params.get("timeout", "30")), 300.0)
            since = Mark(
                int(params.get("syncs", "0")),
                int(params.get("deliveries", "0")),
                int(params.get("started", "0")),
                int(params.get("writes", "0")),
            )
            count = int(params.get("count", "1"))
        except ValueError:
            return _error(400, "invalid_request", "timeout, syncs, deliveries, count: numbers")
        happened = await asyncio.to_thread(
            self.events.wait_for,
            event,
            timeout,
            since=since,
            trigger=params.get("trigger"),
            count=count,
        )
        if not happened:
            return _error(408, "timeout", f"the sandbox's {event!r} did not come in {timeout:g}s")
        return JSONResponse({"event": event, **asdict(self.events.mark())})

    async def sandbox_mark(self, request: Request) -> Response:
        """``GET /_sandbox/mark``: where the events stand (what ``/_sandbox/wait`` counts from)."""
        return JSONResponse(asdict(self.events.mark()))

    async def health(self, request: Request) -> Response:
        return JSONResponse({"ok": True})


Check = Callable[[dict[str, Any]], bool]


def _between(name: str, lo: float | None, hi: float | None) -> Check:
    """A date filter: both ends inclusive, records without the field excluded."""

    def check(record: dict[str, Any]) -> bool:
        at = _instant_or_none(record.get(name))
        return at is not None and (lo is None or at >= lo) and (hi is None or at <= hi)

    return check


def _equals(name: str, value: str) -> Check:
    """Propexo's filters are exact matches on the field."""

    def check(record: dict[str, Any]) -> bool:
        return _text(record.get(name)) == value

    return check


def _sort_key(name: str) -> Callable[[dict[str, Any]], tuple[bool, Any]]:
    def key(record: dict[str, Any]) -> tuple[bool, Any]:
        return record.get(name) is None, _sortable(record.get(name))

    return key


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _sortable(value: Any) -> Any:
    return "" if value is None else value if isinstance(value, (int, float)) else str(value)


def _instant(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _instant_or_none(text: Any) -> float | None:
    try:
        return _instant(str(text)) if text else None
    except ValueError:
        return None


def _whole_list(rows: list[dict[str, Any]]) -> JSONResponse:
    """A list endpoint's answer holding every row on one page."""
    meta = {"offset": 0, "limit": len(rows), "orderBy": [], "hasMore": False, "total": len(rows)}
    return JSONResponse({"meta": meta, "results": rows})


def _paging(params: dict[str, str]) -> tuple[int, int, list[tuple[str, str]]] | JSONResponse:
    try:
        offset = int(params.get("offset", 0))
        limit = int(params.get("limit", 100))
    except ValueError:
        return _error(400, "invalid_request", "offset and limit must be integers")
    if offset < 0 or not 1 <= limit <= MAX_LIMIT:
        return _error(
            400,
            "invalid_request",
            f"offset must be at least 0 and limit between 1 and {MAX_LIMIT}",
            {
                "issues": [
                    {
                        "code": "too_big" if limit > MAX_LIMIT else "too_small",
                        "path": ["limit" if not 1 <= limit <= MAX_LIMIT else "offset"],
                        "message": "out of range",
                    }
                ],
                "name": "ZodError",
            },
        )
    order: list[tuple[str, str]] = []
    for part in (params.get("order-by") or "created_at:desc").split(","):
        name, _, direction = part.strip().partition(":")
        direction = direction or "asc"
        if not name or direction not in ("asc", "desc"):
            return _error(400, "invalid_request", f"order-by {part!r}: expected field:asc|desc")
        order.append((name, direction))
    return offset, limit, order


# --- the gate: auth, rate limit, faults ----------------------------------------------------------


logging.getLogger("uvicorn.error").addFilter(_DropFilter())


def create_app(store: Store, config: SandboxConfig, seed: dict[str, Any] | None = None) -> Gate:
    """The emulator as an ASGI app (auth, rate limit and faults in front of the routes)."""
    sandbox = Sandbox(store, config, seed)
    routes = [Route(path, sandbox.list_records, methods=["GET"]) for path in sandbox.list_routes]
    routes += [
        Route(path + "{record_id}", sandbox.get_record, methods=["GET"])
        for path in sandbox.list_routes
        if path != "/v1/locations/rentmanager/"
    ]
    routes += [Route(path, sandbox.create, methods=["POST"]) for path in sandbox.kinds.by_path]
    routes += [
        Route("/v1/vendors/properties/{property_id}", sandbox.vendors_of_property, methods=["GET"]),
        Route("/v1/admin/write-status/{job_id}", sandbox.write_status, methods=["GET"]),
        Route("/v1/admin/logs/writes/", sandbox.write_logs, methods=["GET"]),
        Route("/v1/admin/job-logs/{job_log_id}/data", sandbox.job_log_data, methods=["GET"]),
        Route("/_presigned/job-logs/{job_log_id}", sandbox.presigned, methods=["GET"]),
        Route("/v1/admin/retry-write/{root_job_id}", sandbox.retry_write, methods=["POST"]),
        Route(
            "/v1/admin/integrations/{integration_id}/manual-sync",
            sandbox.manual_sync,
            methods=["POST"],
        ),
        Route("/_sandbox/records", sandbox.sandbox_records, methods=["GET"]),
        Route(
            "/_sandbox/records/{kind}/{record_id}",
            sandbox.sandbox_edit,
            methods=["PATCH", "DELETE"],
        ),
        Route("/_sandbox/sync", sandbox.sandbox_sync, methods=["POST"]),
        Route("/_sandbox/reset", sandbox.sandbox_reset, methods=["POST"]),
        Route("/_sandbox/forget-jobs", sandbox.sandbox_forget_jobs, methods=["POST"]),
        Route("/_sandbox/wait", sandbox.sandbox_wait, methods=["POST"]),
        Route("/_sandbox/mark", sandbox.sandbox_mark, methods=["GET"]),
        Route("/v1/webhooks/", sandbox.list_webhooks, methods=["GET"]),
        Route("/v1/webhooks/", sandbox.create_webhook, methods=["POST"]),
        Route("/v1/webhooks/{webhook_id}", sandbox.webhook_by_id, methods=["GET", "PUT", "DELETE"]),
        Route("/_sandbox/health", sandbox.health, methods=["GET"]),
    ]
    lifespan = None
    if config.sync_interval_s or config.foreign_syncs_s:

        @contextlib.asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            async def every(interval: float, schedule: bool) -> None:
                while True:
                    await asyncio.sleep(interval)
                    for integration in store.records("integration"):
                        # Scheduled syncs carry the schedule's id; another client's manual
                        # syncs look like tieout's own (no schedule id, the same body).
                        schedule_id = f"sched_{integration['id']}" if schedule else None
                        await sandbox.events.sync(integration["id"], None, schedule_id)

            tasks = [
                asyncio.create_task(every(interval, schedule))
                for interval, schedule in (
                    (config.sync_interval_s, True),
                    (config.foreign_syncs_s, False),
                )
                if interval
            ]
            yield
            for task in tasks:
                task.cancel()

    gate = Gate(cast(ASGIApp, Starlette(routes=routes, lifespan=lifespan)), config)
    gate.sandbox = sandbox
    return gate
