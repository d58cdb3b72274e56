"""One flow per kind of source: the functions and constants that differ between vendor bills
and resident charges, in one place, so every other module is the same for every kind.

A stage asks ``FLOWS[kind]`` (a source kind) or :func:`flow_for_record` (a record kind) and
calls what it finds; an unknown kind raises. To add a kind, see ARCHITECTURE.md, "How to add
a record kind".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

import pandas as pd

from pipelines import bills, charges
from pipelines.config import Settings
from pipelines.ledger import Conflict, Ledger
from pipelines.models import (
    ExtractResult,
    Issue,
    PostRequest,
    RecordKind,
    SourceKind,
    ValidateResult,
)
from pipelines.propexo import PropexoClient
from pipelines.refs import RefData

Found = dict[str, str | None]  # record key → Propexo id (None: found, id not known)


@dataclass(frozen=True)
class Flow:
    """What is particular to one kind of source, as plain functions and constants."""

    source_kind: SourceKind
    record_kinds: tuple[RecordKind, ...]
    payload_schema: type[Any]  # what is posted (pandera model)
    synced_fields: list[str]  # the columns of Propexo's records read back
    sync_model: str  # Propexo's model name in SYNC_COMPLETE webhooks
    dated_sync: bool  # Propexo syncs this model only within a date window around each sync
    write_paths: Mapping[str, str]  # record kind → endpoint written to
    # a file's rows before validation: period, property, unit (charges), refused once if wrong
    prepare: Callable[[ExtractResult, Settings, RefData | None], tuple[ExtractResult, list[Issue]]]
    validate: Callable[[ExtractResult, date | None], ValidateResult]
    # valid lines → (records, issues), names resolved to Propexo ids
    transform: Callable[
        [ValidateResult, RefData, Settings, str, date | None], tuple[pd.DataFrame, list[Issue]]
    ]
    plan_requests: Callable[[pd.DataFrame, int], list[PostRequest]]
    # brings the ledger's copy of Propexo's records of this kind up to date for these records
    refresh: Callable[[Ledger, PropexoClient, Settings, pd.DataFrame], None]
    # Propexo's records a sync no longer saw (deleted in the PMS), given the latest proven sync
    gone: Callable[[Ledger, PropexoClient, Settings, pd.Series, str], pd.DataFrame]
    found: Callable[[pd.DataFrame, pd.DataFrame, dict[str, str]], dict[str, str]]
    find_in_doubt: Callable[
        [PropexoClient, Ledger, pd.DataFrame, dict[str, str]], tuple[Found, set[str]]
    ]
    match: Callable[[pd.DataFrame, pd.DataFrame, dict[str, str], pd.Series | None], pd.DataFrame]
    unexpected: Callable[[pd.DataFrame, pd.DataFrame], int]  # ours in Propexo, not in the ledger
    conflict_issues: Callable[[Conflict, pd.Series, str], list[Issue]]
    # `tieout ledger rebuild`: everything Propexo holds (dated start to end where it is read
    # by date), and ledger rows for it keyed as tieout keys its own (and how many could not be)
    fetch_all: Callable[[PropexoClient, str, date, date], pd.DataFrame]
    adopt: Callable[[pd.DataFrame, str, dict[str, str]], tuple[list[dict[str, Any]], int]]
    # write-status gives each write of this kind its own created_record_id, which matching
    # uses (an invoice); the write log has no ids, so such a job is asked write-status itself
    id_from_write_status: bool = False


BILLS = Flow(
    source_kind="vendor_bill",
    record_kinds=("invoice",),
    payload_schema=bills.PAYLOAD_SCHEMA,
    synced_fields=bills.SYNCED_FIELDS,
    sync_model="invoices",
    dated_sync=False,
    write_paths={"invoice": bills.WRITE_PATH},
    prepare=bills.prepare,
    validate=bills.validate,
    transform=bills.transform,
    plan_requests=bills.plan_requests,
    refresh=bills.refresh,
    gone=bills.gone,
    found=bills.found,
    find_in_doubt=bills.find_in_doubt,
    match=bills.match,
    unexpected=bills.unexpected,
    conflict_issues=bills.conflict_issues,
    fetch_all=bills.fetch_all,
    adopt=bills.adopt,
    id_from_write_status=True,
)

CHARGES = Flow(
    source_kind="charge",
    record_kinds=("charge", "credit"),
    payload_schema=charges.PAYLOAD_SCHEMA,
    synced_fields=charges.SYNCED_FIELDS,
    sync_model="resident_charges",
    dated_sync=True,
    write_paths={"charge": charges.BATCH_PATH, "credit": charges.CREDIT_PATH},
    prepare=charges.prepare,
    validate=charges.validate,
    transform=charges.transform,
    plan_requests=charges.plan_requests,
    refresh=charges.refresh,
    gone=charges.gone,
    found=charges.found,
    find_in_doubt=charges.find_in_doubt,
    match=charges.match,
    unexpected=charges.unexpected,
    conflict_issues=charges.conflict_issues,
    fetch_all=charges.fetch_all,
    adopt=charges.adopt,
)

FLOWS: dict[str, Flow] = {flow.source_kind: flow for flow in (BILLS, CHARGES)}
_BY_RECORD: dict[str, Flow] = {kind: flow for flow in FLOWS.values() for kind in flow.record_kinds}
# The record kinds whose write-status answer carries the record's own id (kept, matched on).
ID_FROM_WRITE_STATUS: frozenset[str] = frozenset(
    kind for kind, flow in _BY_RECORD.items() if flow.id_from_write_status
)
# What each record kind's proof of absence needs (pipelines.proof.sync_verdicts).
SYNC_SCOPE: dict[str, tuple[str, bool]] = {
    kind: (flow.sync_model, flow.dated_sync) for kind, flow in _BY_RECORD.items()
}


def flow_for_source(kind: str) -> Flow:
    """The flow of a source kind (``vendor_bill``, ``charge``); an unknown kind raises."""
    try:
        return FLOWS[kind]
    except KeyError:
        raise ValueError(f"no flow for source kind {kind!r}; known: {sorted(FLOWS)}") from None


def flow_for_record(kind: str) -> Flow:
    """The flow a record kind (``invoice``, ``charge``, ``credit``) belongs to."""
    try:
        return _BY_RECORD[kind]
    except KeyError:
        raise ValueError(f"no flow for record kind {kind!r}; known: {sorted(_BY_RECORD)}") from None


def of_flow(records: pd.DataFrame, flow: Flow) -> pd.DataFrame:
    """The records of one flow's kinds; a record of a kind no flow knows raises."""
    if records.empty:
        return records
    unknown = set(records["kind"].unique()) - set(_BY_RECORD)
    if unknown:
        raise ValueError(f"no flow for record kind(s) {sorted(unknown)}")
    return records[records["kind"].isin(flow.record_kinds).to_numpy(dtype=bool)]


def validate(extract: ExtractResult, period: date | None = None) -> ValidateResult:
    """Validate a file's rows by its kind's rules."""
    return flow_for_source(extract.kind).validate(extract, period or extract.period)


def plan_requests(ready: pd.DataFrame, batch_size: int) -> list[PostRequest]:
    """The fewest requests the API allows for every ready record, kind by kind."""
    return [
        request
        for flow in FLOWS.values()
        for request in flow.plan_requests(of_flow(ready, flow), batch_size)
    ]
