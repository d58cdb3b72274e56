"""The record kinds clients write through the sandbox, each declared once.

A :class:`SandboxKind` holds everything the emulator needs to serve one kind of written record:
its write route(s) (:class:`Write`: the POST path, the job type, how a body becomes stored
records, the request checks), its list route and filters, the model name a sync takes and
reports in SYNC_COMPLETE's ``models_synced`` (also the write log's ``write_category``), whether
the sync sees only records dated inside ``--sync-window-days``, and how a record is shown. The
routes, the sync, ``/_sandbox/records``, retry-write and the job logs all derive from the kinds
a sandbox runs with: the built-in ones (``sandbox.builtin_kinds``: invoices; resident charges,
single, batch and credits) and those a caller adds with ``SandboxConfig(kinds=(...))``, for that
sandbox only (no global registry). An added kind's write goes through the built-ins' machinery:
the schema check (400 at once), a job whose write-status is PENDING for ``--job-delay``, the
write log, WRITE_OPERATION_FAILURE webhooks, ``--faults`` (its routes are under ``/v1/``),
``--failed-but-applied`` and retry-write. Its records are on the PMS side at once
(``/_sandbox/records?kind=NAME``) and at its list route after a sync (``cached_at_once``: at once).

A kind from a test, with the request schema given inline::

    NOTES = SandboxKind(
        name="note",
        sync_model="notes",
        list_route="/v1/notes/",
        writes=(Write("/v1/notes/rentmanager/", "CREATE_NOTE", schema=NOTE_BODY),),
    )
    with running_sandbox(SandboxConfig(kinds=(NOTES,))) as sandbox:
        ...  # POST /v1/notes/rentmanager/ → job; after a sync, GET /v1/notes/ lists it

``write`` defaults to :func:`store_body` (the body becomes one record); :func:`store_each` makes
a batch write (each element of a list in the body becomes one record); any function
``(sandbox, body) -> Written`` may judge the body as the PMS would (``sandbox.store`` holds the
seed's records; :func:`new_record` gives a record Propexo's keys, :func:`pms_error` words an
error as Rent Manager does; see ``builtin_kinds``). Two kinds sharing a name, model, route or job
type, or a write route without a schema, are refused when the sandbox is built.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sandbox.store import new_id, now_iso

if TYPE_CHECKING:
    from sandbox.app import Sandbox

Issue = dict[str, Any]  # one issue of a 400 answer, in Zod's shape (code, path, message)
Check = Callable[[dict[str, Any]], bool]  # keeps a record in a list answer


@dataclass(frozen=True)
class Written:
    """What the PMS made of one write: the job's outcome and the records it created."""

    status: str  # SUCCESS | PARTIAL_SUCCESS | FAILURE
    errors: list[str] = field(default_factory=list)  # the PMS's messages (see pms_error)
    records: list[dict[str, Any]] = field(default_factory=list)  # stored as the kind's name
    created_record_id: str | None = None  # write-status's created_record_id on SUCCESS


WriteFn = Callable[["Sandbox", dict[str, Any]], Written]


def pms_error(message: str) -> str:
    """One of ``Written.errors``: Rent Manager's errors reach write-status as stringified JSON."""
    return json.dumps({"Message": message})


def new_record(fields: dict[str, Any], integration_id: str | None) -> dict[str, Any]:
    """A stored record holding ``fields``, with the keys every Propexo record has."""
    stamp = now_iso()
    return {
        **fields,
        "id": new_id(),
        "created_at": stamp,
        "updated_at": stamp,
        "last_seen": None,  # only a sync stamps last_seen
        "integration_id": integration_id,
        "integration_vendor": "RENTMANAGER",
    }


def store_body(sandbox: Sandbox, body: dict[str, Any]) -> Written:
    """The default write: the PMS takes the body as one record."""
    record = new_record(body, body.get("integration_id"))
    return Written("SUCCESS", records=[record])


def store_each(key: str) -> WriteFn:
    """A batch write: each element of ``body[key]`` becomes one record."""

    def write(sandbox: Sandbox, body: dict[str, Any]) -> Written:
        integration_id = body.get("integration_id")
        return Written("SUCCESS", records=[new_record(e, integration_id) for e in body[key]])

    return write


@dataclass(frozen=True)
class Write:
    """One write route of a kind."""

    path: str  # POST, under /v1/, e.g. "/v1/invoices/rentmanager/"
    job_type: str  # the job's and the write log's job_type, e.g. "CREATE_INVOICE"
    write: WriteFn = store_body
    # The request body's JSON Schema (unknown keys refused, as Zod does); None: the request
    # schema of this POST path in propexo-endpoints.json.
    schema: dict[str, Any] | None = None
    # Checks after the schema's, answered 400 at once: body -> issues (none: accepted).
    check: Callable[[Any], list[Issue]] | None = None
    # Subject to --failed-but-applied (a write that landed, reported FAILURE).
    failed_but_applied: bool = True


@dataclass(frozen=True)
class SandboxKind:
    """A kind of record clients write: its routes, its sync, how it is shown."""

    name: str  # the stored kind; /_sandbox/records?kind=NAME
    sync_model: str  # manual-sync's models_to_sync, SYNC_COMPLETE's models_synced
    list_route: str  # GET lists synced records; GET list_route + id reads one
    writes: tuple[Write, ...]
    filters: tuple[str, ...] = ("integration_id", "property_id", "integration_vendor")
    # More list filters: (sandbox, query parameters) -> checks a listed record must pass.
    query: Callable[[Sandbox, dict[str, str]], list[Check]] | None = None
    dated_by: str | None = None  # a sync sees only records dated within its window by it
    cached_at_once: bool = False  # listed right after the write (invoices), not after a sync
    # The list answer's record schema (missing required keys shown null); None: the one of
    # list_route in propexo-endpoints.json, if any.
    read_model: dict[str, Any] | None = None
    render: Callable[[dict[str, Any]], dict[str, Any]] | None = None  # a record as listed
    # What /_sandbox/records calls a record, when not ``name`` (a charge may be a "credit"),
    # and every such other name.
    label: Callable[[dict[str, Any]], str] | None = None
    other_labels: tuple[str, ...] = ()

    def label_of(self, record: dict[str, Any]) -> str:
        return self.label(record) if self.label else self.name


class Kinds:
    """The kinds one sandbox runs with, and every lookup derived from them."""

    def __init__(self, kinds: Iterable[SandboxKind]) -> None:
        self.all = tuple(kinds)
        self.by_name: dict[str, SandboxKind] = {}
        self.by_model: dict[str, SandboxKind] = {}
        self.by_label: dict[str, SandboxKind] = {}
        self.by_path: dict[str, tuple[SandboxKind, Write]] = {}
        self.by_job_type: dict[str, tuple[SandboxKind, Write]] = {}
        for kind in self.all:
            _add(self.by_name, kind.name, kind, "record kind")
            _add(self.by_model, kind.sync_model, kind, "sync model")
            for label in (kind.name, *kind.other_labels):
                _add(self.by_label, label, kind, "record label")
            for write in kind.writes:
                if not write.path.startswith("/v1/"):
                    raise ValueError(f"write route {write.path!r}: must be under /v1/")
                _add(self.by_path, write.path, (kind, write), "write route")
                _add(self.by_job_type, write.job_type, (kind, write), "job type")

    def list_routes(self) -> dict[str, tuple[str, tuple[str, ...]]]:
        """list route: (kind, plain equality filters)."""
        return {kind.list_route: (kind.name, kind.filters) for kind in self.all}

    def models(self) -> list[str]:
        return list(self.by_model)

    def synced(self, models: Iterable[str]) -> dict[str, str | None]:
        """What a sync of these models sees: stored kind -> the field it is dated by."""
        return {
            self.by_model[m].name: self.by_model[m].dated_by for m in models if m in self.by_model
        }


def _add(table: dict[str, Any], key: str, value: Any, what: str) -> None:
    if key in table:
        raise ValueError(f"two sandbox kinds declare the {what} {key!r}")
    table[key] = value
