"""The write endpoints: every kind's write routes (``sandbox.kinds``: invoices, charge batches,
single charges or credits, and any kind a caller adds), validated as Propexo validates them,
accepted as jobs, and their write status and logs."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from jsonschema import Draft202012Validator
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sandbox.events import Events
from sandbox.faults import SandboxConfig
from sandbox.kinds import Kinds, SandboxKind, Write, Written
from sandbox.kinds import pms_error as _pms_error  # its name here before kinds.py
from sandbox.store import Job, Store, new_id, now_iso
from sandbox.validation import (
    _error,
    zod_issues,
)

if TYPE_CHECKING:
    from sandbox.app import Sandbox

log = logging.getLogger("sandbox")


class Writes:
    """Write handlers, mixed into :class:`sandbox.app.Sandbox`."""

    store: Store
    config: SandboxConfig
    events: Events
    kinds: Kinds
    validators: dict[str, Draft202012Validator]
    read_models: dict[str, dict[str, Any]]
    presign_key: bytes
    location_of_property: Callable[[], dict[str, str]]

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
        write = None if template else self.kinds.by_path.get(request.url.path)
        if not issues and write is not None and write[1].check is not None:
            issues = write[1].check(body)
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

    def _applied_but_failed(self, status: str, errors: list[str]) -> tuple[str, list[str]]:
        """``--failed-but-applied``: a write that landed, reported FAILURE all the same."""
        if status == "SUCCESS" and random.random() < self.config.failed_but_applied:  # noqa: S311
            return "FAILURE", [_pms_error("The request to Rent Manager timed out")]
        return status, errors

    def _integration_ok(self, integration_id: str) -> bool:
        return self.store.record("integration", integration_id) is not None

    async def create(self, request: Request) -> Response:
        """A write route of any kind: checked at once, then accepted as a job."""
        body, problem = await self._body(request)
        if problem:
            return problem
        if not self._integration_ok(body["integration_id"]):
            return _error(
                400, "invalid_request", f"unknown integration_id {body['integration_id']!r}"
            )
        kind, write = self.kinds.by_path[request.url.path]
        return self._accepted(self._write(kind, write, body), body)

    def _write(self, kind: SandboxKind, write: Write, body: dict[str, Any]) -> Job:
        """The PMS applies the write; a job tells its outcome once ``--job-delay`` has passed."""
        written = write.write(cast("Sandbox", self), body)  # Writes is mixed into Sandbox only
        status, errors = written.status, written.errors
        if write.failed_but_applied:
            status, errors = self._applied_but_failed(status, errors)
        created_id = written.created_record_id if status == "SUCCESS" else None
        job = self._job(write.job_type, kind.sync_model, body, status, errors, created_id)
        for record in written.records:
            record["_job_id"] = job.job_id
        created = [(kind.name, record) for record in written.records]
        self.store.apply_write(job, created, synced=kind.cached_at_once)
        return job

    def write_invoice(self, body: dict[str, Any]) -> Written:
        errors: list[str] = []
        vendor = self.store.record("vendor", body["vendor_id"])
        location = self.store.record("location", body["location_id"])
        if vendor is None:
            errors.append(_pms_error(f"Vendor {body['vendor_id']} was not found"))
        if location is None:
            errors.append(_pms_error(f"Location {body['location_id']} was not found"))
        elif vendor is not None and vendor.get("_location_id") != location["id"]:
            errors.append(_pms_error("The vendor does not belong to the bill's location"))
        loc_of = self.location_of_property()
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
            return Written("FAILURE", errors)
        record = self._invoice_record(body, props, vendor or {}, location or {})
        return Written("SUCCESS", [], [record], record["id"])

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
        self, charge: dict[str, Any], integration_id: str, *, credit: bool
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

    def write_charge_batch(self, body: dict[str, Any]) -> Written:
        loc_of = self.location_of_property()
        judged = [self._charge_problem(c, loc_of) for c in body["charges"]]
        locations = {loc for _, loc in judged if loc}
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
        created = [self._charge_record(c, body["integration_id"], credit=False) for c in good]
        return Written(status, errors, created)

    def write_charge(self, body: dict[str, Any]) -> Written:
        """One charge (``/v1/resident-charges/rentmanager/``)."""
        return self._write_single(body, credit=False)

    def write_credit(self, body: dict[str, Any]) -> Written:
        """One credit (``/v1/resident-credits/rentmanager/``): stored as a negative charge."""
        return self._write_single(body, credit=True)

    def _write_single(self, body: dict[str, Any], *, credit: bool) -> Written:
        error, _ = self._charge_problem(body, self.location_of_property())
        if error:
            return Written("FAILURE", [_pms_error(error)])
        return Written(
            "SUCCESS", [], [self._charge_record(body, body["integration_id"], credit=credit)]
        )

    def _accepted(self, job: Job, body: dict[str, Any]) -> JSONResponse:
        """The 200 with the job id; a failed job is also told to WRITE_OPERATION_FAILURE
        subscribers once its outcome shows."""
        if job.status in ("FAILURE", "PARTIAL_SUCCESS"):
            self.events.write_failed(job.integration_id or "", job.job_id, job.status, job.errors)
        self.events.tell("writes")
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
        """The write log: one entry per job (its latest record), shown only once the job has
        finished and ``--write-log-delay`` has passed since; newest first."""
        params = dict(request.query_params)
        try:
            limit = int(params.get("limit", 100))
            offset = int(params.get("offset", 0))
        except ValueError:
            return _error(400, "invalid_request", "limit and offset must be integers")
        if not 1 <= limit <= 100 or offset < 0:
            return _error(400, "invalid_request", "limit must be 1..100 and offset at least 0")
        spans = {"hour": 3600, "day": 86400, "week": 7 * 86400, "month": 31 * 86400}
        if params.get("time_range") not in (None, *spans):
            return _error(400, "invalid_request", "time_range must be hour, day, week or month")
        if params.get("status") not in (None, "SUCCESS", "FAILURE"):
            return _error(400, "invalid_request", "status must be SUCCESS or FAILURE")
        now = time.time()
        since = now - spans[params.get("time_range") or "day"]
        logs: list[dict[str, Any]] = []
        for job in self.store.jobs():
            if job.ready_at + self.config.write_log_delay_s > now:
                continue  # still running, or finished too recently to be logged yet
            if job.ready_at - self.config.job_delay_s < since:
                continue
            # The log's status filter knows two values: a partial success is not a SUCCESS.
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
                    "parameters": job.body if self.config.log_parameters == "body" else None,
                    "error": "; ".join(job.errors) or None,
                    "name": job.job_type,
                    "vendor": "RENTMANAGER",
                }
            )
        return JSONResponse({"results": {"logs": logs[offset : offset + limit]}})

    async def job_log_data(self, request: Request) -> Response:
        """A 302 to a presigned URL holding the job's raw request and response."""
        log_id = request.path_params["job_log_id"]
        job = self.store.job(log_id.removesuffix("-log"))
        if job is None or time.time() < job.ready_at:
            return _error(404, "not_found", f"no job log with id {log_id!r}")
        expires = int(time.time()) + PRESIGNED_TTL_S
        url = str(request.base_url).rstrip("/") + presigned_path(self.presign_key, log_id, expires)
        return Response(status_code=302, headers={"location": url})

    async def presigned(self, request: Request) -> Response:
        """The presigned object: refused when it carries an Authorization header, as an object
        store refuses a second way of authenticating; or a wrong or expired signature."""
        if "authorization" in request.headers:
            return _error(403, "forbidden", "only one auth mechanism allowed")
        log_id = request.path_params["job_log_id"]
        try:
            expires = int(request.query_params.get("expires", "0"))
        except ValueError:
            expires = 0
        wanted = presigned_path(self.presign_key, log_id, expires)
        given = request.url.path + "?" + request.url.query
        if not hmac.compare_digest(wanted, given) or expires < time.time():
            return _error(403, "forbidden", "the signature does not match or has expired")
        job = self.store.job(log_id.removesuffix("-log"))
        if job is None:
            return _error(404, "not_found", "no such object")
        kind_and_write = self.kinds.by_job_type.get(job.job_type)
        return JSONResponse(
            {
                "request": {
                    "method": "POST",
                    "path": kind_and_write[1].path if kind_and_write else "",
                    "body": job.body,
                },
                "response": {"status": 200, "body": {"meta": {"job_id": job.job_id}}},
            }
        )

    async def retry_write(self, request: Request) -> Response:
        """``POST /v1/admin/retry-write/{root_job_id}``: failed writes only; a new job."""
        job = self.store.job(request.path_params["root_job_id"])
        if job is None:
            return _error(400, "invalid_request", "no such job")
        if job.status != "FAILURE" or time.time() < job.ready_at:
            return _error(400, "invalid_request", "only a failed write can be retried")
        again = self._write(*self.kinds.by_job_type[job.job_type], job.body)
        self._accepted(again, job.body)
        return JSONResponse({"success": True, "job_id": again.job_id})


PRESIGNED_TTL_S = 900


def presigned_path(key: bytes, log_id: str, expires: int) -> str:
    """The path and query of a job log's presigned URL (signed, expiring)."""
    mac = hmac.new(key, f"{log_id}:{expires}".encode(), hashlib.sha256).hexdigest()
    return f"/_presigned/job-logs/{log_id}?expires={expires}&signature={mac}"


def _as_stored_date(value: str) -> str:
    """Rent Manager keeps a charge's date as a day, read back at midnight with no zone."""
    return f"{value[:10]}T00:00:00"


def _as_datetime(value: str) -> str:
    return f"{value}T00:00:00.000Z" if len(value) == 10 else value


def _too_large(limit: int) -> JSONResponse:
    return _error(413, "payload_too_large", f"the body is larger than {limit} bytes")


def _write_accepted(job: Job, body: dict[str, Any]) -> JSONResponse:
    return JSONResponse({"meta": {"job_id": job.job_id}, "result": body})
