"""What a record kind is to the shared stages: a :class:`Kind` of plain functions and
constants, the :class:`KindContext` its functions are given, and :class:`Kinds`, the set a
composer hands a stage (the registry that fills it is :mod:`pipelines.kinds`; no stage
imports it).

A stage never compares a kind's name: it asks ``kinds.source(...)``, ``kinds.record(...)``
or ``kinds.of(records, kind)`` and calls what it finds; an unknown kind raises.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import pandas as pd

from pipelines.core.models import (
    ExtractResult,
    Issue,
    IssueCode,
    PostRequest,
    TransformResult,
    ValidateResult,
)
from pipelines.core.record_columns import Column
from pipelines.core.references import NameKind, RefList

if TYPE_CHECKING:
    from pipelines.core.config import Settings
    from pipelines.ledger import Conflict, Ledger
    from pipelines.posting.propexo import PropexoClient
    from pipelines.resolving.refs import RefData

Found = dict[str, str | None]  # record key → Propexo id (None: found, id not known)
# The ledger's records whose ``column`` is one of ``values``: (columns, column, values) → the
# columns asked for and ``seq``, the order they were staged in (``Ledger.read_where``).
ReadWhere = Callable[[Sequence[str], str, Sequence[str]], pd.DataFrame]


@dataclass(frozen=True)
class KindContext:
    """What a kind's functions may read besides their frames: the few settings they use,
    Propexo's reference data, the ledger and the client (each when the caller has one).
    ``memo`` keeps what a kind derives once per context (the invoice kind's vendor ids)."""

    kinds: Kinds
    integration_id: str
    refs: RefData | None = None
    ledger: Ledger | None = None
    client: PropexoClient | None = None
    period: date | None = None
    period_override: bool = False
    property_name: str | None = None
    due_days_default: int = 30
    sync_window_days: float = 30.0
    memo: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(
        cls,
        settings: Settings,
        kinds: Kinds,
        *,
        refs: RefData | None = None,
        ledger: Ledger | None = None,
        client: PropexoClient | None = None,
    ) -> KindContext:
        """The context for one run or command: the settings the kinds use, read once."""
        return cls(
            kinds,
            settings.integration_id,
            refs,
            ledger,
            client,
            period=settings.period,
            period_override=settings.period_override,
            property_name=settings.property_name,
            due_days_default=settings.due_days_default,
            sync_window_days=settings.sync_window_days,
        )

    def remembered(self, name: str, make: Callable[[], Any]) -> Any:
        """``make()`` once per context under ``name``."""
        if name not in self.memo:
            self.memo[name] = make()
        return self.memo[name]

    def needs_ledger(self) -> Ledger:
        if self.ledger is None:
            raise ValueError("this step needs the ledger in its KindContext")
        return self.ledger

    def needs_client(self) -> PropexoClient:
        if self.client is None:
            raise ValueError("this step needs the Propexo client in its KindContext")
        return self.client


@dataclass(frozen=True)
class Draft:
    """How `tieout profile init` drafts a profile for a kind's export."""

    # Words by which a header names a canonical column, most specific first (a header takes
    # the first canonical column whose words it contains as whole words).
    header_words: tuple[tuple[str, tuple[str, ...]], ...]
    required: tuple[str, ...]  # what a profile of one line per row requires
    # what a wide export (one amount column per charge code, `[charges] mode = "columns"`)
    # requires; None: the kind's exports are never wide
    wide_required: tuple[str, ...] | None = None


def no_identity(item: Mapping[str, Any]) -> None:
    """A kind whose writes the write log cannot tell apart: none is found there."""
    return None


def no_lines(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A record that is one line: it has no lines of its own to show."""
    return []


def the_body(body: Mapping[str, Any]) -> list[Any]:
    """A request that writes one record: the body is the record."""
    return [body]


@dataclass(frozen=True)
class Kind:
    """What is particular to one kind of source and the records it becomes."""

    source_kind: str  # what a profile's ``kind`` names
    record_kinds: tuple[str, ...]  # the ledger's ``kind`` of its records
    plural: str  # its records in words ("invoices")
    source_columns: tuple[str, ...]  # the canonical columns a profile maps headers onto
    line_schema: type[Any]  # a validated line (pandera model; its titles are the words)
    payload_schema: type[Any]  # what is posted (pandera model)
    record_columns: tuple[str, ...]  # the columns of the records its transform makes
    synced_fields: list[str]  # the columns of Propexo's records read back
    sync_model: str  # Propexo's model name in SYNC_COMPLETE webhooks and the write log
    dated_sync: bool  # Propexo syncs this model only within a date window around each sync
    write_paths: Mapping[str, str]  # record kind → endpoint written to
    read_path: str  # endpoint Propexo's records are read from
    # a file's rows before validation: period, property, unit (charges), refused once if wrong
    prepare: Callable[[ExtractResult, KindContext], tuple[ExtractResult, list[Issue]]]
    validate: Callable[[ExtractResult, date | None], ValidateResult]
    # valid lines → (records, issues), names resolved to Propexo ids
    transform: Callable[[ValidateResult, RefData, KindContext, str, date | None], TransformResult]
    plan_requests: Callable[[pd.DataFrame, int], list[PostRequest]]
    # brings the ledger's copy of Propexo's records of this kind up to date for these records
    refresh: Callable[[KindContext, pd.DataFrame], None]
    # Propexo's records a sync no longer saw (deleted in the PMS), given the latest proven sync
    gone: Callable[[KindContext, pd.Series, str], pd.DataFrame]
    found: Callable[[pd.DataFrame, pd.DataFrame, KindContext], dict[str, str]]
    find_in_doubt: Callable[[KindContext, pd.DataFrame], tuple[Found, set[str]]]
    match: Callable[[pd.DataFrame, pd.DataFrame, KindContext, pd.Series | None], pd.DataFrame]
    unexpected: Callable[[pd.DataFrame, pd.DataFrame], int]  # ours in Propexo, not in the ledger
    conflict_issues: Callable[[Conflict, pd.Series, str], list[Issue]]
    # `tieout ledger rebuild`: everything Propexo holds (dated start to end where it is read
    # by date), a body its write log shows posted as the read model would show it, and ledger
    # rows for either keyed as tieout keys its own (and how many could not be)
    fetch_all: Callable[[KindContext, date, date], pd.DataFrame]
    as_read: Callable[[dict[str, Any], KindContext], dict[str, Any]]
    adopt: Callable[[pd.DataFrame, KindContext], tuple[list[dict[str, Any]], int]]
    # write-status gives each write of this kind its own created_record_id, which matching
    # uses (an invoice); the write log has no ids, so such a job is asked write-status itself
    id_from_write_status: bool = False
    # Which record a written item says it is, alike for an item of a request the write log
    # shows and for a ledger row of the kind (their fields share names): a text unique among
    # every kind's (prefixed), or None where the item cannot say
    identity: Callable[[Mapping[str, Any]], str | None] = no_identity
    # the items one request body writes (a batch's list; one record's body: itself)
    written_items: Callable[[Mapping[str, Any]], list[Any]] = the_body
    # Before staging, in the staging transaction: a file's records renumbered in place
    # against those the ledger holds (a charge numbered in file order is matched by content),
    # and their digests where a posted record says the same under another digest (a charge's
    # notes, an invoice digested before its lines were a multiset); returns what a person is
    # told (posted records of the same source no line matched). None: nothing to do.
    renumber: Callable[[pd.DataFrame, ReadWhere], list[str]] | None = None
    draft: Draft | None = None  # None: `tieout profile init` drafts none (written by hand)
    # Its own columns in the ledger's ``records`` (beside the core every kind shares),
    # registered with it; the ledger adds one its table lacks (no migration revision)
    columns: tuple[Column, ...] = ()
    # Where its records come in the order of posting (lower first; then registration order)
    post_order: int = 100
    # The ledger records' columns a person reads about one record of it, in the trace and
    # the report (its own columns, by default: see :meth:`attributes`)
    shown: tuple[str, ...] | None = None
    # Its own reasons a row does not go through, beside the shared :class:`IssueCode` (an
    # ``Issue`` may carry either); a code another kind or the shared ones use is refused
    issue_codes: type[StrEnum] | None = None
    # Pairs of its record kinds that are one record under either sign (a charge whose amount
    # turned negative is a credit now: same number, other kind). Staging looks each key up
    # under its twin too, so the change is a conflict, never a second record.
    twins: tuple[tuple[str, str], ...] = ()
    # Its reference numbers are derived by tieout (not read from the file), under the ledger's
    # ``RECORD_SCHEME``: a ledger from before the scheme was recorded that holds records of
    # it is refused (its files dropped again would be numbered anew and posted twice).
    derived_numbers: bool = False
    # Propexo's lists it resolves names against beyond those every kind shares (locations,
    # properties, units, residents, leases): fetched, cached and in ``RefData`` by name
    ref_lists: tuple[RefList, ...] = ()
    # The kinds of names its files give for records of those lists (resolved per location
    # with ``resolve_named``, aliased with `tieout alias add`)
    name_kinds: tuple[NameKind, ...] = ()

    def attributes(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """What is particular to one of its records, by column, for a person (the trace, a
        report's lines): its :attr:`shown` columns, by default its own columns; empty cells
        left out."""
        names = self.shown if self.shown is not None else tuple(c.name for c in self.columns)
        values = {name: record.get(name) for name in names}
        return {
            name: value
            for name, value in values.items()
            if value is not None
            and value != ""
            and not (isinstance(value, float) and pd.isna(value))
        }

    # A record's lines, from its stored body, as the report and `tieout trace` show them (a
    # bill's): each {"amount_cents", "property_id", "account_id"}, one per source row
    lines: Callable[[Mapping[str, Any]], list[dict[str, Any]]] = no_lines


# The functions of a kind, by the names its module defines them under
# (see :func:`pipelines.kinds.common.define`).
KIND_FUNCTIONS = (
    "prepare",
    "validate",
    "transform",
    "plan_requests",
    "refresh",
    "gone",
    "found",
    "find_in_doubt",
    "match",
    "unexpected",
    "conflict_issues",
    "fetch_all",
    "as_read",
    "adopt",
)


class Kinds:
    """The record kinds a run knows, in posting order, with their lookups."""

    def __init__(self, kinds: Iterable[Kind]) -> None:
        self._by_source: dict[str, Kind] = {}
        self._by_record: dict[str, Kind] = {}
        for kind in kinds:
            self._by_source[kind.source_kind] = kind
            for record_kind in kind.record_kinds:
                self._by_record[record_kind] = kind
        # What each record kind's proof of absence needs (proof.sync_verdicts).
        self.sync_scope: dict[str, tuple[str, bool]] = {
            name: (kind.sync_model, kind.dated_sync) for name, kind in self._by_record.items()
        }
        # The record kinds whose write-status answer carries the record's own id.
        self.id_from_write_status: frozenset[str] = frozenset(
            name for name, kind in self._by_record.items() if kind.id_from_write_status
        )
        self.source_columns: dict[str, tuple[str, ...]] = {
            name: kind.source_columns for name, kind in self._by_source.items()
        }

    def issue_codes(self) -> dict[str, StrEnum]:
        """Every code an issue may carry: the shared ones and each kind's own, by value."""
        codes: dict[str, StrEnum] = {code.value: code for code in IssueCode}
        for kind in self:
            codes |= {code.value: code for code in kind.issue_codes or ()}
        return codes

    def __iter__(self) -> Iterator[Kind]:
        return iter(self._by_source.values())

    def __len__(self) -> int:
        return len(self._by_source)

    @property
    def record_kinds(self) -> tuple[str, ...]:
        return tuple(self._by_record)

    def source(self, name: str) -> Kind:
        """The kind of a source (a profile's ``kind``); an unknown one raises."""
        try:
            return self._by_source[name]
        except KeyError:
            raise ValueError(
                f"no kind for source kind {name!r}; known: {sorted(self._by_source)}"
            ) from None

    def record(self, name: str) -> Kind:
        """The kind a record kind (the ledger's ``kind``) belongs to; an unknown one raises."""
        try:
            return self._by_record[name]
        except KeyError:
            raise ValueError(
                f"no kind for record kind {name!r}; known: {sorted(self._by_record)}"
            ) from None

    def of(self, records: pd.DataFrame, kind: Kind) -> pd.DataFrame:
        """The records of one kind; a record of a kind no registered kind knows raises."""
        if records.empty:
            return records
        unknown = set(records["kind"].unique()) - set(self._by_record)
        if unknown:
            raise ValueError(f"no kind for record kind(s) {sorted(unknown)}")
        return records[records["kind"].isin(kind.record_kinds).to_numpy(dtype=bool)]

    def plan_requests(self, ready: pd.DataFrame, batch_size: int) -> list[PostRequest]:
        """The fewest requests the API allows for every ready record, kind by kind."""
        return [
            request
            for kind in self
            for request in kind.plan_requests(self.of(ready, kind), batch_size)
        ]

    def validate(self, extract: ExtractResult, period: date | None = None) -> ValidateResult:
        """Validate a file's rows by its kind's rules."""
        return self.source(extract.kind).validate(extract, period or extract.period)
