"""Requests checked as Propexo checks them (its Zod schemas, from propexo-endpoints.json:
unknown keys refused), errors in Propexo's shape, and the read models records are filled to."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from starlette.responses import JSONResponse

ENDPOINTS_FILE = Path(__file__).with_name("propexo-endpoints.json")


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


def _is_datetime(value: object) -> bool:
    """Zod's ``datetime({offset: true})``: a full time and a zone (``Z`` or ``±hh:mm``)."""
    if not isinstance(value, str) or not _DATETIME.fullmatch(value):
        return False
    datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    return True


_formats.checks("date-time", raises=ValueError)(_is_datetime)


MANUAL_SYNC = "/v1/admin/integrations/{integration_id}/manual-sync"


def load_request_validators(sync_models: Iterable[str] = ()) -> dict[str, Draft202012Validator]:
    """A validator per write path, from the endpoint reference's request schemas; manual-sync's
    ``models_to_sync`` also takes ``sync_models`` (those of kinds Propexo's list lacks)."""
    spec = json.loads(ENDPOINTS_FILE.read_text())
    validators = {}
    for endpoint in spec["endpoints"]:
        if endpoint["method"] in ("POST", "PUT") and endpoint.get("request_body"):
            schema = endpoint["request_body"]
            if endpoint["path"] == MANUAL_SYNC:
                schema = copy.deepcopy(schema)
                models = schema["properties"]["models_to_sync"]["items"]["enum"]
                models += [m for m in sync_models if m not in models]
            validators[endpoint["path"]] = request_validator(schema)
    return validators


def request_validator(schema: dict[str, Any]) -> Draft202012Validator:
    """A request body's validator, as strict as Propexo's Zod schemas (unknown keys refused)."""
    return Draft202012Validator(_strict(schema), format_checker=_formats)


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


def load_read_models(
    routes: dict[str, tuple[str, tuple[str, ...]]],
) -> dict[str, dict[str, Any]]:
    """The record schema of each of these list endpoints, by sandbox kind."""
    spec = json.loads(ENDPOINTS_FILE.read_text())
    models: dict[str, dict[str, Any]] = {}
    for endpoint in spec["endpoints"]:
        route = routes.get(endpoint["path"]) if endpoint["method"] == "GET" else None
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


# The reference data's list routes; written kinds' come from ``sandbox.kinds``.
REFERENCE_ROUTES: dict[str, tuple[str, tuple[str, ...]]] = {
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
}
