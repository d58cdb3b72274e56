"""The Propexo emulator's HTTP surface (Starlette), following ../shared/propexo-api.md.

Where Propexo's documentation is silent, it follows the decisions table in DESIGN.md: write
envelope ``{meta:{job_id}, result}``; schema faults are 400 at once (unknown keys rejected, as
Propexo's Zod validation does); PMS faults appear later as write-status FAILURE/PARTIAL_SUCCESS;
invoices read back right after SUCCESS; charges and credits only after a sync.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hmac
import json
import logging
import random
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from jsonschema import Draft202012Validator, FormatChecker
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.events import Events, new_webhook
from sandbox.store import Job, Store, new_id, now_iso

log = logging.getLogger("sandbox")
ENDPOINTS_FILE = Path(__file__).with_name("propexo-endpoints.json")
FAULT_ROUTES = ("post", "get", "*")
FAULT_KINDS = ("500", "502", "503", "reset", "lost")
MAX_LIMIT = 250

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass
class SandboxConfig:
    """How the emulator behaves; every field is a `tieout sandbox` option."""

    token: str = "sandbox-token"  # noqa: S105 - the sandbox's documented default
    rate_limit: int = 150
    rate_window_s: float = 60.0
    job_delay_s: float = 1.0
    sync_interval_s: float | None = None
    faults: dict[str, dict[str, float]] = field(default_factory=dict)
    fault_seed: int | None = None
    # Where Propexo's docs are silent, the default is the least convenient plausible answer.
    sync_mode: str = "async"  # async: manual-sync answers at once, finishes later | instant
    sync_duration_s: float = 3.0
    sync_window_days: float | None = 90.0  # a sync sees charges dated within N days; None: all
    batch_errors: str = "opaque"  # opaque: PMS strings with no index | indexed: charges[i]
    batch_atomic: bool = False  # one bad charge fails the whole batch
    unknown_job: int = 400  # write-status of a job Propexo does not know: 400 | 404
    reference_readback: str = "echo"  # echo: reference_number read back | null
    max_body_bytes: int = 6 * 2**20  # larger bodies get 413

    def __post_init__(self) -> None:
        choices = {
            "sync_mode": ("async", "instant"),
            "batch_errors": ("opaque", "indexed"),
            "unknown_job": (400, 404),
            "reference_readback": ("echo", "null"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(map(str, allowed))}")

    def semantics(self) -> dict[str, str]:
        """The undocumented behaviours and the answer this sandbox gives (printed at start)."""
        window = "all" if self.sync_window_days is None else f"{self.sync_window_days:g} days"
        return {
            "sync mode": f"{self.sync_mode}"
            + (f" ({self.sync_duration_s:g}s)" if self.sync_mode == "async" else ""),
            "sync window (charges)": window,
            "scheduled syncs": f"every {self.sync_interval_s:g}s"
            if self.sync_interval_s
            else "off",
            "batch errors": self.batch_errors,
            "batch atomic": "yes" if self.batch_atomic else "no (PARTIAL_SUCCESS)",
            "unknown job": str(self.unknown_job),
            "reference read-back": self.reference_readback,
            "job delay": f"{self.job_delay_s:g}s",
            "body limit": f"{self.max_body_bytes / 2**20:g} MB",
        }

    @property
    def slowdown_s(self) -> float:
        """Propexo's 2 s hold-back past 80% of the minute, scaled to the configured window."""
        return 2.0 * self.rate_window_s / 60.0


def parse_faults(spec: str | None) -> dict[str, dict[str, float]]:
    """``post:500=0.1,post:lost=0.05,*:reset=0.02`` → {route: {kind: probability}}."""
    faults: dict[str, dict[str, float]] = {}
    for part in filter(None, (p.strip() for p in (spec or "").split(","))):
        try:
            target, probability = part.split("=")
            route, kind = target.split(":")
            value = float(probability)
        except ValueError:
            raise ValueError(f"fault {part!r}: expected ROUTE:KIND=P, e.g. post:500=0.1") from None
        if route not in FAULT_ROUTES:
            raise ValueError(f"fault {part!r}: ROUTE must be one of {', '.join(FAULT_ROUTES)}")
        if kind not in FAULT_KINDS:
            raise ValueError(f"fault {part!r}: KIND must be one of {', '.join(FAULT_KINDS)}")
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"fault {part!r}: P must be between 0 and 1")
        faults.setdefault(route, {})[kind] = value
    return faults


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    """Propexo's errorResponse."""
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return {"error": error}


def _error(
    status: int, code: str, message: str, details: dict[str, Any] | None = None
) -> JSONResponse:
    return JSONResponse(error_body(code, message, details), status_code=status)


# --- request validation (Zod-like) --------------------------------------------------------------


def _strict(schema: dict[str, Any]) -> dict[str, Any]:
    """Propexo rejects unknown keys: close every object schema."""
    schema = copy.deepcopy(schema)

    def close(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "object" and "properties" in node:
                node.setdefault("additionalProperties", False)
            for value in node.values():
                close(value)
        elif isinstance(node, list):
            for value in node:
                close(value)

    close(schema)
    return schema


_formats = FormatChecker()


_DATETIME = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})", re.IGNORECASE
)


@_formats.checks("date-time", raises=ValueError)  # type: ignore[untyped-decorator]
def _is_datetime(value: object) -> bool:
    """Zod's ``datetime({offset: true})``: a full time and a zone (``Z`` or ``±hh:mm``)."""
    if not isinstance(value, str) or not _DATETIME.fullmatch(value):
        return False
    datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    return True


def load_request_validators() -> dict[str, Draft202012Validator]:
    """A validator per write path, from the endpoint reference's request schemas."""
    spec = json.loads(ENDPOINTS_FILE.read_text())
    validators = {}
    for endpoint in spec["endpoints"]:
        if endpoint["method"] in ("POST", "PUT") and endpoint.get("request_body"):
            validators[endpoint["path"]] = Draft202012Validator(
                _strict(endpoint["request_body"]), format_checker=_formats
            )
    return validators


def _fill(schema: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    """Add every missing required key (null, or [] for arrays), nested objects included."""
    props = schema.get("properties", {})
    for key in schema.get("required", []):
        if key not in record:
            types = props.get(key, {}).get("type")
            record[key] = [] if "array" in (types if isinstance(types, list) else [types]) else None
    for key, sub in props.items():
        items = sub.get("items") or {}
        if isinstance(record.get(key), list) and "properties" in items:
            record[key] = [_fill(items, dict(e)) if isinstance(e, dict) else e for e in record[key]]
    return record


def load_read_models() -> dict[str, dict[str, Any]]:
    """The record schema of each list endpoint, by sandbox kind."""
    spec = json.loads(ENDPOINTS_FILE.read_text())
    models: dict[str, dict[str, Any]] = {}
    for endpoint in spec["endpoints"]:
        route = LIST_ROUTES.get(endpoint["path"]) if endpoint["method"] == "GET" else None
        if route is None:
            continue
        item = endpoint["responses"]["200"]["properties"]["results"].get("items", {})
        if "properties" in item:
            models[route[0]] = item
    return models


def zod_issues(validator: Draft202012Validator, body: Any) -> list[dict[str, Any]]:
    """Schema errors in the shape Propexo's Zod validation reports them."""
    issues = []
    for err in sorted(validator.iter_errors(body), key=lambda e: list(map(str, e.absolute_path))):
        path = list(err.absolute_path)
        if err.validator == "additionalProperties":
            allowed = set(err.schema.get("properties", {}))
            keys = sorted(k for k in err.instance if k not in allowed)
            issues.append(
                {
                    "code": "unrecognized_keys",
                    "keys": keys,
                    "path": path,
                    "message": f"Unrecognized key(s) in object: {', '.join(map(repr, keys))}",
                }
            )
        elif err.validator == "required":
            # jsonschema reports one error per missing key, each naming the whole list.
            missing = [
                k
                for k in err.validator_value
                if k not in err.instance and [*path, k] not in [i["path"] for i in issues]
            ]
            issues += [
                {
                    "code": "invalid_type",
                    "expected": "defined",
                    "received": "undefined",
                    "path": [*path, key],
                    "message": "Required",
                }
                for key in missing
            ]
        elif err.validator == "type":
            issues.append(
                {
                    "code": "invalid_type",
                    "expected": err.validator_value,
                    "received": type(err.instance).__name__,
                    "path": path,
                    "message": err.message,
                }
            )
        elif err.validator in ("minimum", "minItems"):
            issues.append(
                {
                    "code": "too_small",
                    "minimum": err.validator_value,
                    "type": "array" if err.validator == "minItems" else "number",
                    "path": path,
                    "message": err.message,
                }
            )
        else:
            issues.append(
                {
                    "code": "invalid_string"
                    if err.validator in ("format", "pattern", "anyOf")
                    else "custom",
                    "path": path,
                    "message": err.message,
                }
            )
    return issues


# --- the application ----------------------------------------------------------------------------

LIST_ROUTES: dict[str, tuple[str, tuple[str, ...]]] = {
    # path: (kind, plain equality filters)
    "/v1/locations/rentmanager/": ("location", ("x_id", "integration_id", "integration_vendor")),
    "/v1/properties/": ("property", ("x_id", "integration_id", "integration_vendor", "is_active")),
    "/v1/units/": ("unit", ("x_id", "property_id", "integration_id", "integration_vendor")),
    "/v1/residents/": (
        "resident",
        ("x_id", "property_id", "integration_id", "integration_vendor", "email_1", "phone_1"),
    ),
    "/v1/leases/": (
        "lease",
        ("x_id", "unit_id", "property_id", "integration_id", "status_normalized", "status_raw"),
    ),
    "/v1/vendors/": ("vendor", ("x_id", "property_id", "integration_id", "integration_vendor")),
    "/v1/charge-codes/": ("charge_code", ("property_id", "integration_id", "integration_vendor")),
    "/v1/financial-accounts/": (
        "financial_account",
        ("property_id", "integration_id", "integration_vendor", "account_number"),
    ),
    "/v1/invoices/": ("invoice", ("integration_id", "property_id", "integration_vendor")),
    "/v1/resident-charges/": (
        "charge",
        ("integration_id", "property_id", "resident_id", "lease_id", "integration_vendor"),
    ),
}


def public(record: dict[str, Any]) -> dict[str, Any]:
    """A record as the API shows it: internal keys (leading underscore) removed."""
    return {k: v for k, v in record.items() if not k.startswith("_")}


class Sandbox:
    """Request handlers over a :class:`Store`."""

    def __init__(self, store: Store, config: SandboxConfig, seed: dict[str, Any] | None) -> None:
        self.store = store
        self.config = config
        self.seed = seed
        self.validators = load_request_validators()
        self.read_models = load_read_models()
        self.events = Events(store, config)

    def _complete(self, kind: str, record: dict[str, Any]) -> dict[str, Any]:
        """Every key of Propexo's read model is always present: fill what the seed left out."""
        model = self.read_models.get(kind)
        out = public(record)
        if model is None:
            return out
        if "x_property_id" in model.get("required", []) and "x_property_id" not in out:
            prop = self.store.record("property", str(record.get("property_id") or record["id"]))
            out["x_property_id"] = str((prop or {}).get("x_id", ""))
        return _fill(model, out)

    # -- lists ----------------------------------------------------------------------------------

    def _location_of_property(self) -> dict[str, str]:
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
            elif kind in ("resident", "lease", "invoice"):
                loc_of = self._location_of_property()
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
        if kind == "charge":
            start, end = params.get("transaction_date_start"), params.get("transaction_date_end")
            if start:
                checks.append(lambda r: str(r.get("transaction_date") or "")[:10] >= start[:10])
            if end:
                checks.append(lambda r: str(r.get("transaction_date") or "")[:10] <= end[:10])
        for name in ("updated_at", "last_seen"):
            gte, lte = params.get(f"{name}_gte"), params.get(f"{name}_lte")
            try:
                lo = _instant(gte) if gte else None
                hi = _instant(lte) if lte else None
            except ValueError:
                return _error(
                    400, "invalid_request", f"{name}_gte/{name}_lte must be ISO date-times"
                )
            if lo is not None or hi is not None:
                checks.append(_between(name, lo, hi))
        for name in LIST_ROUTES_BY_KIND[kind]:
            if name in params:
                checks.append(_equals(name, params[name]))
        return lambda record: all(check(record) for check in checks)

    async def list_records(self, request: Request) -> Response:
        kind = LIST_ROUTES[request.url.path][0]
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
        kind = LIST_ROUTES[base][0]
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
        location = self._location_of_property().get(property_id)
        rows = [
            self._complete("vendor", v)
            for v in self.store.records("vendor")
            if v.get("property_id") == property_id or v.get("_location_id") == location
        ]
        return _whole_list(rows)

    # -- writes ---------------------------------------------------------------------------------

    async def _body(
        self, request: Request, template: str | None = None
    ) -> tuple[Any, JSONResponse | None]:
        """The JSON body, checked as Propexo's Zod schemas would; or the error answer."""
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            return None, _error(
                415, "unsupported_media_type", "the body must be sent as application/json"
            )
        declared = request.headers.get("content-length")
        if (
            declared is not None
            and declared.isdigit()
            and int(declared) > self.config.max_body_bytes
        ):
            return None, _too_large(self.config.max_body_bytes)
        raw = await request.body()
        if len(raw) > self.config.max_body_bytes:
            return None, _too_large(self.config.max_body_bytes)
        try:
            body = json.loads(raw or b"null")
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None, _error(400, "invalid_request", "the body is not valid JSON")
        validator = self.validators[template or request.url.path]
        issues = zod_issues(validator, body)
        if (
            not issues
            and isinstance(body, dict)
            and (template or request.url.path) == "/v1/invoices/rentmanager/"
            and not body.get("invoice_items")
        ):
            issues = [
                {
                    "code": "too_small",
                    "minimum": 1,
                    "type": "array",
                    "inclusive": True,
                    "path": ["invoice_items"],
                    "message": "Array must contain at least 1 element(s)",
                }
            ]
        if issues:
            return None, _error(
                400, "invalid_request", "invalid request", {"issues": issues, "name": "ZodError"}
            )
        return body, None

    def _job(
        self,
        job_type: str,
        category: str,
        body: dict[str, Any],
        status: str,
        errors: list[str],
        created_record_id: str | None,
    ) -> Job:
        return Job(
            new_id("cjob"),
            body.get("integration_id"),
            job_type,
            category,
            status,
            errors,
            created_record_id,
            body,
            now_iso(),
            time.time() + self.config.job_delay_s,
        )

    def _integration_ok(self, integration_id: str) -> bool:
        return self.store.record("integration", integration_id) is not None

    async def create_invoice(self, request: Request) -> Response:
        body, problem = await self._body(request)
        if problem:
            return problem
        if not self._integration_ok(body["integration_id"]):
            return _error(
                400, "invalid_request", f"unknown integration_id {body['integration_id']!r}"
            )
        errors: list[str] = []
        vendor = self.store.record("vendor", body["vendor_id"])
        location = self.store.record("location", body["location_id"])
        if vendor is None:
            errors.append(_pms_error(f"Vendor {body['vendor_id']} was not found"))
        if location is None:
            errors.append(_pms_error(f"Location {body['location_id']} was not found"))
        elif vendor is not None and vendor.get("_location_id") != location["id"]:
            errors.append(_pms_error("The vendor does not belong to the bill's location"))
        loc_of = self._location_of_property()
        props = {p["id"]: p for p in self.store.records("property")}
        for i, item in enumerate(body["invoice_items"]):
            prop = props.get(item["property_id"])
            if prop is None:
                errors.append(
                    _pms_error(f"invoice_items[{i}]: property {item['property_id']} was not found")
                )
            elif location is not None and loc_of.get(prop["id"]) != location["id"]:
                errors.append(
                    _pms_error(f"invoice_items[{i}]: the property is not in the bill's location")
                )
            account = self.store.record("financial_account", item["financial_account_id"])
            if account is None:
                errors.append(
                    _pms_error(
                        f"invoice_items[{i}]: GL account {item['financial_account_id']} "
                        "was not found"
                    )
                )
        lines_total = sum(item["amount_in_cents"] for item in body["invoice_items"])
        if lines_total != body["total_amount_in_cents"]:
            errors.append(
                _pms_error(
                    f"The bill total {body['total_amount_in_cents']} does not equal the sum of its "
                    f"lines {lines_total}"
                )
            )
        if errors:
            job = self._job("CREATE_INVOICE", "invoices", body, "FAILURE", errors, None)
            self.store.apply_write(job, [], synced=True)
        else:
            record = self._invoice_record(body, props, vendor or {}, location or {})
            job = self._job("CREATE_INVOICE", "invoices", body, "SUCCESS", [], record["id"])
            record["_job_id"] = job.job_id
            self.store.apply_write(job, [("invoice", record)], synced=True)
        return self._accepted(job, body)

    def _invoice_record(
        self,
        body: dict[str, Any],
        props: dict[str, Any],
        vendor: dict[str, Any],
        location: dict[str, Any],
    ) -> dict[str, Any]:
        stamp = now_iso()
        record_id = new_id()
        first_prop = props[body["invoice_items"][0]["property_id"]]
        total = body["total_amount_in_cents"]
        items = [
            {
                "x_id": f"{self.store.next_number('bill_detail')}",
                "x_property_id": str(props[i["property_id"]].get("x_id")),
                "x_location_id": location.get("x_id"),
                "x_gl_account_id": None,
                "x_cash_financial_account_id": None,
                "invoice_id": record_id,
                "construction_job_id": None,
                "amount_due_in_cents": i["amount_in_cents"],
                "notes": i.get("notes"),
                "total_amount_in_cents": i["amount_in_cents"],
                "property_id": i["property_id"],
                "financial_account_id": i["financial_account_id"],
                "cash_financial_account_id": None,
            }
            for i in body["invoice_items"]
        ]
        return {
            "id": record_id,
            "created_at": stamp,
            "updated_at": stamp,
            "last_seen": None,  # read back at once, but only a sync stamps last_seen
            "x_id": str(self.store.next_number("bill")),
            "x_property_id": str(first_prop.get("x_id")),
            "x_location_id": location.get("x_id"),
            "x_vendor_id": vendor.get("x_id"),
            "x_financial_account_id": None,
            "x_cash_financial_account_id": None,
            "x_ap_financial_account_id": None,
            "amount_due_in_cents": total,
            "amount_paid_in_cents": 0,
            "custom_data": None,
            "due_date": _as_datetime(body["due_date"]),
            "discount_date": None,
            "invoice_date": _as_datetime(body["invoice_date"]),
            "post_date": _as_datetime(body["post_date"]),
            "post_month": None,
            "discount_amount_in_cents": None,
            "invoice_number": body.get("invoice_number"),
            "notes": body.get("notes"),
            "post_status_raw": "Unpaid",
            "sub_total_amount_in_cents": total,
            "total_amount_in_cents": total,
            "property_id": first_prop["id"],
            "financial_account_id": None,
            "cash_financial_account_id": None,
            "ap_financial_account_id": None,
            "integration_id": body["integration_id"],
            "integration_vendor": "RENTMANAGER",
            "invoice_items": items,
        }

    def _charge_record(
        self, charge: dict[str, Any], integration_id: str, *, credit: bool, job_id: str
    ) -> dict[str, Any]:
        resident = self.store.record("resident", charge["resident_id"]) or {}
        code = self.store.record("charge_code", charge["charge_code_id"]) or {}
        leases = [
            lease
            for lease in self.store.records("lease")
            if any(
                m.get("resident_id") == resident.get("id")
                for m in lease.get("residents_meta_data") or []
            )
        ]
        lease = leases[0] if leases else {}
        unit = self.store.record("unit", lease.get("unit_id", "")) or {}
        prop = self.store.record("property", resident.get("property_id", "")) or {}
        amount = -charge["amount_in_cents"] if credit else charge["amount_in_cents"]
        raw = f"{amount / 100:.2f}"
        stamp = now_iso()
        return {
            "id": new_id(),
            "created_at": stamp,
            "updated_at": stamp,
            "last_seen": None,
            "x_id": str(self.store.next_number("charge")),
            "x_property_id": prop.get("x_id"),
            "x_gl_account_id": None,
            "x_location_id": code.get("x_location_id"),
            "x_lease_id": lease.get("x_id"),
            "x_resident_id": resident.get("x_id"),
            "x_unit_id": unit.get("x_id"),
            "x_charge_code_id": code.get("x_id"),
            "amount_in_cents": amount,
            "amount_raw": raw,
            "amount_open_in_cents": amount,
            "amount_open_raw": raw,
            "amount_paid_in_cents": 0,
            "amount_paid_raw": "0.00",
            "due_date": _as_stored_date(charge["transaction_date"]),
            "name": code.get("name"),
            "description": charge["notes"],
            "reference_number": (
                charge["reference_number"] if self.config.reference_readback == "echo" else None
            ),
            "transaction_date": _as_stored_date(charge["transaction_date"]),
            "transaction_source": "Credit" if credit else "Charge",
            "post_month": None,
            "is_open": True,
            "custom_data": None,
            "integration_id": integration_id,
            "integration_vendor": "RENTMANAGER",
            "property_id": resident.get("property_id"),
            "resident_id": charge["resident_id"],
            "financial_account_id": None,
            "unit_id": unit.get("id"),
            "lease_id": lease.get("id"),
            "charge_code_id": charge["charge_code_id"],
            "allocations": [],
            "_job_id": job_id,
            "_credit": credit,
            "_reference_sent": charge["reference_number"],
        }

    def _charge_problem(
        self, charge: dict[str, Any], loc_of: dict[str, str]
    ) -> tuple[str | None, str | None]:
        """(error, location) for one charge, as Rent Manager would judge it."""
        resident = self.store.record("resident", charge["resident_id"])
        if resident is None:
            return f"resident {charge['resident_id']} was not found", None
        location = loc_of.get(resident.get("property_id", ""))
        code = self.store.record("charge_code", charge["charge_code_id"])
        if code is None:
            return f"charge code {charge['charge_code_id']} was not found", location
        if code.get("_location_id") != location:
            return "the charge code does not belong to the resident's location", location
        return None, location

    async def create_charge_batch(self, request: Request) -> Response:
        body, problem = await self._body(request)
        if problem:
            return problem
        if not self._integration_ok(body["integration_id"]):
            return _error(
                400, "invalid_request", f"unknown integration_id {body['integration_id']!r}"
            )
        loc_of = self._location_of_property()
        judged = [self._charge_problem(c, loc_of) for c in body["charges"]]
        locations = {loc for _, loc in judged if loc}
        job_id = new_id("cjob")
        if len(locations) > 1:
            errors = [
                _pms_error(
                    "All charges in a batch must belong to the same location; "
                    f"this batch spans {len(locations)} locations"
                )
            ]
            status, good = "FAILURE", []
        else:
            pairs = list(zip(body["charges"], judged, strict=True))
            errors = [
                _pms_error(
                    f"charges[{i}] (reference_number {c['reference_number']}): {err}"
                    if self.config.batch_errors == "indexed"
                    else err  # as Rent Manager says it: no index, no reference number
                )
                for i, (c, (err, _)) in enumerate(pairs)
                if err
            ]
            good = [c for c, (err, _) in pairs if not err]
            if errors and self.config.batch_atomic:
                good = []
            status = "SUCCESS" if not errors else ("PARTIAL_SUCCESS" if good else "FAILURE")
        job = Job(
            job_id,
            body["integration_id"],
            "CREATE_RESIDENT_CHARGES_BATCH",
            "resident_charges",
            status,
            errors,
            None,
            body,
            now_iso(),
            time.time() + self.config.job_delay_s,
        )
        created = [
            ("charge", self._charge_record(c, body["integration_id"], credit=False, job_id=job_id))
            for c in good
        ]
        self.store.apply_write(job, created, synced=False)
        return self._accepted(job, body)

    async def create_single(self, request: Request) -> Response:
        """One charge (``/v1/resident-charges/rentmanager/``) or one credit."""
        body, problem = await self._body(request)
        if problem:
            return problem
        if not self._integration_ok(body["integration_id"]):
            return _error(
                400, "invalid_request", f"unknown integration_id {body['integration_id']!r}"
            )
        credit = "credits" in request.url.path
        if credit and body["amount_in_cents"] <= 0:
            return _error(
                400,
                "invalid_request",
                "invalid request",
                {
                    "issues": [
                        {
                            "code": "too_small",
                            "minimum": 0,
                            "exclusive": True,
                            "path": ["amount_in_cents"],
                            "message": "Number must be greater than 0",
                        }
                    ],
                    "name": "ZodError",
                },
            )
        error, _ = self._charge_problem(body, self._location_of_property())
        job_id = new_id("cjob")
        job = Job(
            job_id,
            body["integration_id"],
            "CREATE_RESIDENT_CREDIT" if credit else "CREATE_RESIDENT_CHARGE",
            "resident_charges",
            "FAILURE" if error else "SUCCESS",
            [_pms_error(error)] if error else [],
            None,
            body,
            now_iso(),
            time.time() + self.config.job_delay_s,
        )
        created = (
            []
            if error
            else [
                (
                    "charge",
                    self._charge_record(body, body["integration_id"], credit=credit, job_id=job_id),
                )
            ]
        )
        self.store.apply_write(job, created, synced=False)
        return self._accepted(job, body)

    def _accepted(self, job: Job, body: dict[str, Any]) -> JSONResponse:
        """The 200 with the job id; a failed job is also told to WRITE_OPERATION_FAILURE
        subscribers once its outcome shows."""
        if job.status in ("FAILURE", "PARTIAL_SUCCESS"):
            self.events.write_failed(job.integration_id or "", job.job_id, job.status, job.errors)
        return _write_accepted(job, body)

    # -- admin ----------------------------------------------------------------------------------

    async def write_status(self, request: Request) -> Response:
        job = self.store.job(request.path_params["job_id"])
        if job is None:
            message = f"no job with id {request.path_params['job_id']!r}"
            if self.config.unknown_job == 404:
                return _error(404, "not_found", message)
            return _error(400, "invalid_request", message)
        if time.time() < job.ready_at:
            return JSONResponse(
                {"write_status": "PENDING", "errors": [], "created_record_id": None}
            )
        return JSONResponse(
            {
                "write_status": job.status,
                "errors": job.errors,
                "created_record_id": job.created_record_id,
            }
        )

    async def write_logs(self, request: Request) -> Response:
        params = dict(request.query_params)
        try:
            limit = int(params.get("limit", 100))
            offset = int(params.get("offset", 0))
        except ValueError:
            return _error(400, "invalid_request", "limit and offset must be integers")
        if not 1 <= limit <= 100 or offset < 0:
            return _error(400, "invalid_request", "limit must be 1..100 and offset at least 0")
        spans = {"hour": 3600, "day": 86400, "week": 7 * 86400, "month": 31 * 86400}
        since = (
            time.time() - spans[params["time_range"]] if params.get("time_range") in spans else 0
        )
        now = time.time()
        logs: list[dict[str, Any]] = []
        for job in self.store.jobs():
            if job.ready_at > now or job.ready_at - self.config.job_delay_s < since:
                continue
            status = "SUCCESS" if job.status == "SUCCESS" else "FAILURE"
            if params.get("integration_id") not in (None, job.integration_id):
                continue
            if params.get("status") not in (None, status):
                continue
            if params.get("write_category") not in (None, job.write_category):
                continue
            logs.append(
                {
                    "id": job.job_id + "-log",
                    "created_at": job.created_at,
                    "job_id": job.job_id,
                    "job_log_id": job.job_id + "-log",
                    "status": status,
                    "integration_id": job.integration_id or "",
                    "job_type": job.job_type,
                    "parameters": {},
                    "error": "; ".join(job.errors) or None,
                    "name": job.job_type,
                    "vendor": "RENTMANAGER",
                }
            )
        return JSONResponse({"results": {"logs": logs[offset : offset + limit]}})

    async def manual_sync(self, request: Request) -> Response:
        """Starts a sync (``--sync-mode async``: it finishes later and says so by webhook)."""
        body, problem = await self._body(
            request, "/v1/admin/integrations/{integration_id}/manual-sync"
        )
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
        if kind not in (None, "invoice", "charge", "credit"):
            return _error(400, "invalid_request", "kind must be invoice, charge or credit")
        out = []
        for stored_kind in ("invoice", "charge"):
            for record in self.store.records(stored_kind, synced_only=False):
                if record.get("_deleted"):
                    continue  # gone from the PMS (Propexo's cache may still show it)
                record_kind = "credit" if record.get("_credit") else stored_kind
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
        stored = "invoice" if kind == "invoice" else "charge"
        if request.method == "DELETE":
            done = self.store.delete_record(stored, record_id)
        else:
            done = self.store.update_record(stored, record_id, await request.json())
        if not done:
            return _error(404, "not_found", f"no {kind} with id {record_id!r}")
        return JSONResponse({"result": {"success": True}})

    async def sandbox_sync(self, request: Request) -> Response:
        return JSONResponse({"result": {"synced": self.store.sync(None, time.time())}})

    async def sandbox_forget_jobs(self, request: Request) -> Response:
        return JSONResponse({"result": {"forgotten": self.store.forget_jobs()}})

    async def sandbox_reset(self, request: Request) -> Response:
        self.store.reset(self.seed)
        return JSONResponse({"result": {"success": True}})

    async def health(self, request: Request) -> Response:
        return JSONResponse({"ok": True})


LIST_ROUTES_BY_KIND = {kind: filters for kind, filters in LIST_ROUTES.values()}


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


def _as_stored_date(value: str) -> str:
    """Rent Manager keeps a charge's date as a day, read back at midnight with no zone."""
    return f"{value[:10]}T00:00:00"


def _as_datetime(value: str) -> str:
    return f"{value}T00:00:00.000Z" if len(value) == 10 else value


def _pms_error(message: str) -> str:
    """Rent Manager's errors reach Propexo's write-status as stringified JSON."""
    return json.dumps({"Message": message})


def _whole_list(rows: list[dict[str, Any]]) -> JSONResponse:
    """A list endpoint's answer holding every row on one page."""
    meta = {"offset": 0, "limit": len(rows), "orderBy": [], "hasMore": False, "total": len(rows)}
    return JSONResponse({"meta": meta, "results": rows})


def _too_large(limit: int) -> JSONResponse:
    return _error(413, "payload_too_large", f"the body is larger than {limit} bytes")


def _write_accepted(job: Job, body: dict[str, Any]) -> JSONResponse:
    return JSONResponse({"meta": {"job_id": job.job_id}, "result": body})


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


class _DropFilter(logging.Filter):
    """A dropped connection is an injected fault, not a server error worth a log line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "without completing response" not in record.getMessage()


logging.getLogger("uvicorn.error").addFilter(_DropFilter())


class Gate:
    """ASGI middleware in front of the API: Bearer auth, per-token rate limit, injected faults."""

    def __init__(self, app: ASGIApp, config: SandboxConfig) -> None:
        self.app = app
        self.config = config
        self.windows: dict[str, tuple[float, int]] = {}
        self.rng = random.Random(config.fault_seed)  # noqa: S311 - faults, not secrets
        self.fault_counts: dict[str, int] = {}
        self.requests_seen = 0
        self.rate_limited = 0
        self.sandbox: Sandbox | None = None  # the routes behind the gate (tests look inside)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] == "/_sandbox/health":
            await self.app(scope, receive, send)
            return
        token = _bearer(scope)
        if token is None or not hmac.compare_digest(token.encode(), self.config.token.encode()):
            await _send_json(
                send, 401, error_body("unauthorized", "missing or invalid bearer token")
            )
            return
        if not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
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


def create_app(store: Store, config: SandboxConfig, seed: dict[str, Any] | None = None) -> Gate:
    """The emulator as an ASGI app (auth, rate limit and faults in front of the routes)."""
    sandbox = Sandbox(store, config, seed)
    routes = [Route(path, sandbox.list_records, methods=["GET"]) for path in LIST_ROUTES]
    routes += [
        Route(path + "{record_id}", sandbox.get_record, methods=["GET"])
        for path in LIST_ROUTES
        if path != "/v1/locations/rentmanager/"
    ]
    routes += [
        Route("/v1/vendors/properties/{property_id}", sandbox.vendors_of_property, methods=["GET"]),
        Route("/v1/invoices/rentmanager/", sandbox.create_invoice, methods=["POST"]),
        Route(
            "/v1/resident-charges/batch/rentmanager/", sandbox.create_charge_batch, methods=["POST"]
        ),
        Route("/v1/resident-charges/rentmanager/", sandbox.create_single, methods=["POST"]),
        Route("/v1/resident-credits/rentmanager/", sandbox.create_single, methods=["POST"]),
        Route("/v1/admin/write-status/{job_id}", sandbox.write_status, methods=["GET"]),
        Route("/v1/admin/logs/writes/", sandbox.write_logs, methods=["GET"]),
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
        Route("/v1/webhooks/", sandbox.list_webhooks, methods=["GET"]),
        Route("/v1/webhooks/", sandbox.create_webhook, methods=["POST"]),
        Route("/v1/webhooks/{webhook_id}", sandbox.webhook_by_id, methods=["GET", "PUT", "DELETE"]),
        Route("/_sandbox/health", sandbox.health, methods=["GET"]),
    ]
    lifespan = None
    if config.sync_interval_s:
        interval = config.sync_interval_s

        @contextlib.asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            async def syncer() -> None:
                while True:
                    await asyncio.sleep(interval)
                    for integration in store.records("integration"):
                        await sandbox.events.sync(
                            integration["id"], None, f"sched_{integration['id']}"
                        )

            task = asyncio.create_task(syncer())
            yield
            task.cancel()

    gate = Gate(cast(ASGIApp, Starlette(routes=routes, lifespan=lifespan)), config)
    gate.sandbox = sandbox
    return gate
