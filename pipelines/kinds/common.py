"""The common case, as defaults (as pandera's and dlt's base classes carry theirs): a kind
whose records are each posted by one request (the body transform stored with the record) and
found after Propexo's sync by a reference number its read model lists. :func:`define` builds a
:class:`~pipelines.core.kind.Kind` from the functions a kind's module defines and fills the
rest from here, so a kind writes only what differs.

Each default is made for one kind (:class:`Common`: its paths, its read model, the field it is
known by), so none names a kind.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

import pandas as pd

from pipelines.core.kind import KIND_FUNCTIONS, Kind, KindContext
from pipelines.core.models import ExtractResult, Issue, IssueCode, PostRequest, whole
from pipelines.core.parsing import format_cents
from pipelines.core.record_columns import frame_of
from pipelines.ledger import Conflict, SyncCursor
from pipelines.posting.payloads import stored_body
from pipelines.reading.extract import own_period
from pipelines.reconciling.reconcile import (
    DETAIL_COLUMNS,
    absence_note,
    aligned_verdict,
    outcomes_frame,
)
from pipelines.resolving.refs import fetch_synced, newest_stamp

__all__ = ["Common", "define"]


@dataclass(frozen=True)
class Common:
    """What the defaults need to know of one kind."""

    source_kind: str
    record_kinds: tuple[str, ...]
    write_paths: Mapping[str, str]
    read_path: str
    synced: type[Any]  # Propexo's read model (a schemas.common.SyncedRecord)
    reference: str = "reference_number"  # the record column and read-model field it is known by
    amount: str = "amount_in_cents"  # the read model's field of its amount in cents

    @property
    def cached_as(self) -> str:
        """The kind the ledger keeps Propexo's copies and read cursor under."""
        return self.record_kinds[0]

    def listed(self, ctx: KindContext, **filters: str) -> pd.DataFrame:
        """Propexo's records of the kind, checked against its read model."""
        return fetch_synced(
            ctx.needs_client(), self.read_path, self.synced, ctx.integration_id, **filters
        )

    # --- the functions of a kind, in the common case -------------------------------------------

    def prepare(
        self, extract: ExtractResult, ctx: KindContext
    ) -> tuple[ExtractResult, list[Issue]]:
        """Each record carries its own date: the file's own period is only reported."""
        period, source = own_period(extract)
        return replace(extract, period=period, period_source=source if period else None), []

    def plan_requests(self, ready: pd.DataFrame, batch_size: int) -> list[PostRequest]:
        """One request per record, its stored body to its record kind's path."""
        requests = []
        for record in ready.itertuples(index=False):
            body = stored_body(record)
            if body is None:
                raise ValueError(f"record {record.record_key} has no stored body")
            requests.append(
                PostRequest(
                    self.write_paths[str(record.kind)],
                    body,
                    [str(record.record_key)],
                    str(record.kind),
                    str(record.location_id),
                    whole(record.amount_cents),
                )
            )
        return requests

    def refresh(self, ctx: KindContext, records: pd.DataFrame) -> None:
        """Propexo's records changed since the newest one seen (all of them the first time)."""
        ledger, integration = ctx.needs_ledger(), ctx.integration_id
        cursor = ledger.cursor(integration, self.cached_as)
        fetched = self.listed(ctx, **({"updated_at_gte": cursor.newest} if cursor.newest else {}))
        ledger.upsert_synced(self.cached_as, fetched)
        newest = newest_stamp(fetched, "updated_at")
        if newest and newest > (cursor.newest or ""):
            ledger.save_cursor(integration, self.cached_as, SyncCursor(newest))

    def gone(self, ctx: KindContext, latest: pd.Series, cutoff: str) -> pd.DataFrame:
        """Propexo's records the latest proven sync did not see."""
        return self.listed(ctx, last_seen_lte=cutoff)

    def found(
        self, records: pd.DataFrame, synced: pd.DataFrame, ctx: KindContext
    ) -> dict[str, str]:
        """Which records Propexo holds, by their whole reference: record key → Propexo id."""
        if records.empty or synced.empty:
            return {}
        by_reference = dict(
            zip(synced[self.reference].astype(str), synced["id"].astype(str), strict=True)
        )
        hits: dict[str, str] = {}
        for key, reference in zip(records["record_key"], records[self.reference], strict=True):
            hit = by_reference.get(str(reference))
            if hit is not None:
                hits[str(key)] = hit
        return hits

    def find_in_doubt(
        self, ctx: KindContext, doubt: pd.DataFrame
    ) -> tuple[dict[str, str | None], set[str]]:
        """Records in doubt looked up by their reference in Propexo's list (none ambiguous)."""
        if doubt.empty:
            return {}, set()
        return dict(self.found(doubt, self.listed(ctx), ctx).items()), set()

    def match(
        self,
        records: pd.DataFrame,
        synced: pd.DataFrame,
        ctx: KindContext,
        verdict: pd.Series | None,
    ) -> pd.DataFrame:
        """By reference: one record of the same amount is matched, another amount mismatched,
        two duplicated; none is missing where the sync proves it absent."""
        if records.empty:
            return pd.DataFrame(columns=DETAIL_COLUMNS)
        listed = synced if not synced.empty else pd.DataFrame(columns=[self.reference, "id"])
        theirs = (
            listed.assign(**{self.reference: listed[self.reference].astype(str)})
            .groupby(self.reference)
            .agg(n=("id", "size"), id=("id", "first"), amount=(self.amount, "first"))
            .reset_index()
            if not synced.empty
            else pd.DataFrame(columns=[self.reference, "n", "id", "amount"])
        )
        merged = records.assign(**{self.reference: records[self.reference].astype(str)}).merge(
            theirs, on=self.reference, how="left", validate="many_to_one"
        )
        count = merged["n"].fillna(0).astype(int)
        amounts = pd.to_numeric(merged["amount"], errors="coerce")
        same = amounts.eq(merged["amount_cents"].astype("int64")).fillna(False)
        proven = aligned_verdict(verdict, records)
        note = absence_note(pd.Series("", index=merged.index, dtype=object), count, proven)
        return outcomes_frame(merged, merged, count, same, proven, note)

    def unexpected(self, records: pd.DataFrame, synced: pd.DataFrame) -> int:
        """A reference does not tell ours from another's: none is counted."""
        return 0

    def conflict_issues(self, conflict: Conflict, record: pd.Series, file_name: str) -> list[Issue]:
        """A record posted before with another amount or body: both amounts, not posted."""
        was = format_cents(conflict.previous_cents, "dollar")
        now = format_cents(conflict.cents, "dollar")
        return [
            Issue(
                IssueCode.CONFLICT,
                f"{record[self.reference]} was posted in run {conflict.first_run_id} as {was}; "
                f"this file says {now}, or says it otherwise. Not posted: correct it in "
                "Rent Manager if this file is right",
                file_name,
                conflict.source_row,
            )
        ]

    def fetch_all(self, ctx: KindContext, start: date, end: date) -> pd.DataFrame:
        """Every record of the kind Propexo holds (``tieout ledger rebuild``)."""
        return self.listed(ctx)

    def as_read(self, item: dict[str, Any], ctx: KindContext) -> dict[str, Any]:
        """A posted body as the read model shows it: the same fields, no Propexo id yet."""
        return {**item, "id": None}

    def adopt(self, synced: pd.DataFrame, ctx: KindContext) -> tuple[list[dict[str, Any]], int]:
        """Ledger rows for Propexo's records, keyed by reference as tieout keys its own; and how
        many could not be (no reference)."""
        rows = []
        for item in synced.to_dict("records"):
            reference = item.get(self.reference)
            if not reference or pd.isna(reference):
                continue
            rows.append(
                {
                    "record_key": f"{self.cached_as}:{ctx.integration_id}:{reference}",
                    "kind": self.cached_as,
                    "integration_id": ctx.integration_id,
                    self.reference: str(reference),
                    "amount_cents": int(item.get(self.amount) or 0),
                    "created_record_id": str(item["id"]),
                }
            )
        return rows, len(synced) - len(rows)

    def identity(self, item: Mapping[str, Any]) -> str | None:
        """A record is known by its reference (a posted body, or a ledger row)."""
        reference = item.get(self.reference)
        return (
            f"{self.source_kind}:{reference}" if isinstance(reference, str) and reference else None
        )


def define(
    namespace: Mapping[str, Any],
    *,
    source_kind: str,
    read_path: str,
    synced: type[Any],
    write_path: str | None = None,
    reference: str = "reference_number",
    amount: str = "amount_in_cents",
    **constants: Any,
) -> Kind:
    """A kind from the functions ``namespace`` (its module's ``globals()``) defines under the
    names of :data:`~pipelines.core.kind.KIND_FUNCTIONS` (and ``identity``), the common case's
    for the others, and its ``constants`` (the fields of :class:`~pipelines.core.kind.Kind`).
    Defaulted constants: ``record_kinds`` (the source kind), ``write_paths`` (each record kind
    to ``write_path``), ``synced_fields`` (the read model's columns), ``record_columns`` (the
    core's framed columns and the kind's own ``columns``)."""
    record_kinds = tuple(constants.pop("record_kinds", (source_kind,)))
    write_paths = constants.pop("write_paths", None)
    if write_paths is None:
        if write_path is None:
            raise ValueError(f"kind {source_kind!r}: give write_path (or write_paths)")
        write_paths = dict.fromkeys(record_kinds, write_path)
    common = Common(source_kind, record_kinds, write_paths, read_path, synced, reference, amount)
    constants.setdefault("synced_fields", list(synced.to_schema().columns))
    constants.setdefault("record_columns", tuple(frame_of(constants.get("columns", ()))))
    missing = [
        n for n in KIND_FUNCTIONS if not callable(namespace.get(n)) and not hasattr(common, n)
    ]
    if missing:
        raise ValueError(f"kind {source_kind!r}: its module defines no {', '.join(missing)}")
    functions: dict[str, Any] = {}
    for name in (*KIND_FUNCTIONS, "identity"):
        own = namespace.get(name)
        functions[name] = own if callable(own) else getattr(common, name)
    return Kind(
        source_kind=source_kind,
        record_kinds=record_kinds,
        write_paths=write_paths,
        read_path=read_path,
        **constants,
        **functions,
    )
