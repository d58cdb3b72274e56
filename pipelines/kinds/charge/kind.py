"""Rent rolls and charge files → resident charges and credits: what is particular to them at
every stage, as the :class:`~pipelines.core.kind.Kind` it registers.

Charges are posted in batches, one Rent Manager location per batch (the batch endpoint
refuses mixed locations); a negative line is a credit, posted on its own. Neither can be read
back until Propexo's next sync, so they are known by their reference number.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import date
from typing import Any

import pandas as pd

from pipelines.core.columns import is_in
from pipelines.core.errors import InputError
from pipelines.core.hints import SECOND_CHARGE_ADVICE, SETTLE_ITEM
from pipelines.core.kind import Draft, KindContext
from pipelines.core.models import (
    ExtractResult,
    Issue,
    IssueCode,
    PostRequest,
    whole,
)
from pipelines.core.parsing import format_cents
from pipelines.core.references import NameKind, RefList
from pipelines.kinds import register
from pipelines.kinds.charge.columns import ATTRIBUTES
from pipelines.kinds.charge.matching import match_charges
from pipelines.kinds.charge.payloads import CHARGE_COLUMNS, charge_body
from pipelines.kinds.charge.references import REFERENCE_PREFIX, SECOND_CHARGE, renumber
from pipelines.kinds.charge.schemas import (
    SOURCE_COLUMNS,
    SOURCE_KIND,
    ChargePayload,
    ResidentCharge,
    SyncedCharge,
)
from pipelines.kinds.charge.synced import CHARGE_FIELDS, fetch_synced_charges
from pipelines.kinds.charge.transform import transform_charges
from pipelines.kinds.charge.validate import validate_charges
from pipelines.kinds.common import define
from pipelines.ledger import Conflict, SyncCursor
from pipelines.posting.payloads import stored_body
from pipelines.reading.extract import own_period
from pipelines.reading.profiles import normalize_header
from pipelines.reading.validate import as_text, cell_prefix
from pipelines.resolving.refs import RefData, newest_stamp
from pipelines.resolving.transform import resolve_properties

BATCH_PATH = "/v1/resident-charges/batch/rentmanager/"
CREDIT_PATH = "/v1/resident-credits/rentmanager/"
READ_PATH = "/v1/resident-charges/"
RECORD_KINDS = ("charge", "credit")


# Its validating and transform, under the names `define` takes them by (and `found`, by its
# whole reference number, is the common case's).
validate = validate_charges
transform = transform_charges


def prepare(extract: ExtractResult, ctx: KindContext) -> tuple[ExtractResult, list[Issue]]:
    """The roll's billing period, its property when its rows name none, and the unit of a
    single-family home's rows; a roll that cannot have these is refused once."""
    period, source = _period(extract, ctx)
    extract = replace(extract, period=period, period_source=source)
    extract = _with_property(extract, ctx)
    return _single_family_units(extract, ctx.refs)


def chunk_by_location(charges: pd.DataFrame, batch_size: int) -> list[pd.DataFrame]:
    """Charges grouped by (integration, RM location) and cut into batches of at most
    ``batch_size``. The batch endpoint refuses mixed locations, so no batch spans two."""
    batches: list[pd.DataFrame] = []
    for _, group in charges.groupby(["integration_id", "location_id"], sort=True):
        for start in range(0, len(group), batch_size):
            batches.append(group.iloc[start : start + batch_size])
    return batches


def plan_requests(ready: pd.DataFrame, batch_size: int) -> list[PostRequest]:
    """One request per credit, and charges batched per (integration, RM location) in chunks
    of ``batch_size``; each body built from the record's columns (:func:`request_body`)."""
    if ready.empty:
        return []
    if "charge_notes" not in ready:
        ready = ready.assign(charge_notes=None)
    requests = [
        PostRequest(
            CREDIT_PATH,
            request_body(record),
            [str(record.record_key)],
            "credit",
            str(record.location_id),
            whole(record.amount_cents),
        )
        for record in ready[ready["kind"] == "credit"].itertuples(index=False)
    ]
    for batch in chunk_by_location(ready[ready["kind"] == "charge"], batch_size):
        body = {
            "integration_id": str(batch["integration_id"].iloc[0]),
            "charges": [request_body(record) for record in batch.itertuples(index=False)],
        }
        requests.append(
            PostRequest(
                BATCH_PATH,
                body,
                list(batch["record_key"]),
                "charge_batch",
                str(batch["location_id"].iloc[0]),
                int(batch["amount_cents"].sum()),
            )
        )
    return requests


def request_body(record: Any) -> dict[str, Any]:
    """The stored body (charges staged before bodies were built from columns), else one built
    from the record's columns."""
    return stored_body(record) or charge_body(record)


def refresh(ctx: KindContext, records: pd.DataFrame) -> None:
    """Propexo's charges in the records' transaction-date window: the whole window the first
    time (or when the records reach past it), after that only what changed."""
    ledger, client, integration = ctx.needs_ledger(), ctx.needs_client(), ctx.integration_id
    dates = records["transaction_date"].astype(str)
    start, end = dates.min(), dates.max()
    cursor = ledger.cursor(integration, "charge")
    covered = cursor.covers(start, end)
    filters = {"updated_at_gte": cursor.newest} if covered and cursor.newest else {}
    if not covered and cursor.window is not None:
        start, end = min(start, cursor.window[0]), max(end, cursor.window[1])
    fetched = fetch_synced_charges(client, integration, start, end, **filters)
    ledger.upsert_synced("charge", fetched)
    newest = newest_stamp(fetched, "updated_at")
    if not newest or newest <= (cursor.newest or ""):
        newest = cursor.newest
    ledger.save_cursor(integration, "charge", SyncCursor(newest, (start, end)))


def gone(ctx: KindContext, latest: pd.Series, cutoff: str) -> pd.DataFrame:
    """Charges the latest proven sync did not see, within the dates it reached (Propexo syncs
    resident charges ``sync_window_days`` either side of a sync)."""
    window = ctx.needs_ledger().cursor(ctx.integration_id, "charge").window
    if window is None:
        return pd.DataFrame(columns=CHARGE_FIELDS)
    reach = pd.Timedelta(days=max(ctx.sync_window_days - 1, 0))
    started = pd.Timestamp(latest["started_after"])
    start = max(window[0], _stamp(pd.Timestamp(latest["completed_at"]) - reach)[:10])
    end = min(window[1], _stamp(started + reach)[:10])
    if start > end:
        return pd.DataFrame(columns=CHARGE_FIELDS)
    return fetch_synced_charges(
        ctx.needs_client(), ctx.integration_id, start, end, last_seen_lte=cutoff
    )


def _stamp(moment: pd.Timestamp) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def find_in_doubt(ctx: KindContext, doubt: pd.DataFrame) -> tuple[dict[str, str | None], set[str]]:
    """Charges and credits in doubt, looked up per resident by their whole reference number.
    One not found while a charge of the same resident, code, amount and date exists without
    our reference is ambiguous: it may be ours with the reference lost."""
    hits: dict[str, str | None] = {}
    ambiguous: set[str] = set()
    if doubt.empty:
        return hits, ambiguous
    client = ctx.needs_client()
    ours = set(ctx.needs_ledger().references(RECORD_KINDS))
    for (integration_id, resident_id), group in doubt.groupby(["integration_id", "resident_id"]):
        days = group["transaction_date"].astype(str).str.slice(0, 10)
        listed = client.list_all(
            READ_PATH,
            {
                "integration_id": integration_id,
                "resident_id": resident_id,
                "transaction_date_start": days.min(),
                "transaction_date_end": days.max(),
            },
        )
        references = {str(c.get("reference_number")) for c in listed}
        strangers = {
            _content(c.get("charge_code_id"), c.get("amount_in_cents"), c.get("transaction_date"))
            for c in listed
            if str(c.get("reference_number")) not in ours
        }
        for record in group.itertuples(index=False):
            if str(record.reference_number) in references:
                hits[str(record.record_key)] = None
                continue
            # The ledger keeps credits negative, as Propexo reads them back.
            signed = whole(record.amount_cents)
            if _content(record.charge_code_id, signed, record.transaction_date) in strangers:
                ambiguous.add(str(record.record_key))
    return hits, ambiguous


def match(
    records: pd.DataFrame, synced: pd.DataFrame, ctx: KindContext, verdict: pd.Series | None
) -> pd.DataFrame:
    return match_charges(records, synced, verdict)


def unexpected(records: pd.DataFrame, synced: pd.DataFrame) -> int:
    """Charges with our reference prefix that the ledger does not know (one Arrow hash
    table)."""
    known = (
        records["reference_number"].dropna().astype(str)
        if not records.empty
        else pd.Series([], dtype=object)
    )
    refs = synced["reference_number"].dropna().astype(str)
    ours = refs[refs.str.startswith(REFERENCE_PREFIX).to_numpy(dtype=bool)]
    return int((~is_in(ours, known)).sum())


def conflict_issues(conflict: Conflict, record: pd.Series, file_name: str) -> list[Issue]:
    """A charge posted before with another amount: its row, both amounts, and what to post
    if this file is right (the difference, as a charge or a credit)."""
    was = format_cents(conflict.previous_cents, "dollar")
    now = format_cents(conflict.cents, "dollar")
    word = "credit" if conflict.record_key.startswith("credit:") else "charge"
    if str(record.get("content_hash")) == SECOND_CHARGE:
        return [
            Issue(
                IssueCode.SECOND_CHARGE,
                f"the same {word} (resident, charge code, date and {now}) was posted in run "
                f"{conflict.first_run_id} from another file, as {record['reference_number']}: "
                f"a second {word}, or the same one again? Not posted: {SECOND_CHARGE_ADVICE}",
                file_name,
                conflict.source_row,
                "amount",
                now,
            )
        ]
    return [
        Issue(
            IssueCode.CONFLICT,
            f"this {word} (same resident, charge code and date) was posted in run "
            f"{conflict.first_run_id} as {was}; this file says {now}. Not posted: "
            + difference_advice(conflict.previous_cents, conflict.cents),
            file_name,
            conflict.source_row,
            "amount",
            now,
        )
    ]


def difference_advice(posted_cents: int, file_cents: int) -> str:
    """What to enter in Rent Manager when the file is right and the posted amount is not."""
    difference = file_cents - posted_cents
    if difference == 0:
        return "the amount is the same (only the notes differ): change nothing"
    size = format_cents(abs(difference), "dollar")
    step = f"post {size} more" if difference > 0 else f"credit {size} back"
    return (
        f"if this file is right, {step} for this resident and charge code in Rent Manager, "
        f"{SETTLE_ITEM}; if the posted amount was right, settle this item and change nothing"
    )


def _period(extract: ExtractResult, ctx: KindContext) -> tuple[date | None, str | None]:
    """A rent roll's billing period and where it came from: ``--period`` (or the config), the
    file's title, or a date in its file name. A period given for a file that states another
    is refused unless ``period_override``; a rent roll with no dates and no period at all is
    refused once, not row by row."""
    name = extract.source.name
    own, own_source = own_period(extract)
    if ctx.period is not None:
        if own is not None and own != ctx.period and not ctx.period_override:
            raise InputError(
                f"{name}: the period given ({ctx.period:%Y-%m}) contradicts the file's own "
                f"({own:%Y-%m}, from its {own_source}); check the file, or add --period-override "
                f"to post it as {ctx.period:%Y-%m} anyway"
            )
        return ctx.period, "--period" if own != ctx.period else own_source
    if own is not None:
        return own, own_source
    if not extract.rows.empty:
        dates = extract.rows.get("transaction_date")
        undated = dates is None or dates.isna().all() or dates.astype(str).str.strip().eq("").all()
        if undated:
            raise InputError(
                f"{name}: no billing period: the file has no charge dates and states no period "
                "in its title ('As of MM/DD/YYYY', 'for December 2026') or its name "
                "('rentroll_2026-12.csv'); run with --period YYYY-MM"
            )
    return None, None


def _with_property(extract: ExtractResult, ctx: KindContext) -> ExtractResult:
    """A rent roll whose rows name no property takes it from ``--property`` or, online, from
    the one Propexo property its title names (a single-property export); with neither, it
    is refused once rather than row by row."""
    rows = extract.rows
    if rows.empty:
        return extract
    current = rows.get("property_name")
    if current is not None and (current.notna() & current.astype(str).str.strip().ne("")).any():
        return extract
    name, refs = ctx.property_name, ctx.refs
    source = "--property"
    if name is None and refs is not None and extract.title:
        title = f" {normalize_header(extract.title)} "
        named = {
            str(p) for p in refs.properties["name"].dropna() if f" {normalize_header(p)} " in title
        }
        if len(named) == 1:
            name, source = named.pop(), "title"
    if name is None and extract.title_property is not None:
        name, source = extract.title_property, "title"
    if name is None:
        if refs is None:
            return extract  # offline: names are not checked, the rows say what is missing
        raise InputError(
            f"{extract.source.name}: no property: its rows name none and its title names no "
            "single Propexo property; run with --property NAME"
        )
    notice = f"property {name!r} from the {source}, for every row"
    return replace(
        extract,
        rows=rows.assign(property_name=name),
        notices=(*extract.notices, notice),
    )


def _single_family_units(
    extract: ExtractResult, refs: RefData | None
) -> tuple[ExtractResult, list[Issue]]:
    """A rent line with no unit, under a property Propexo knows with exactly one unit (a
    single-family home listed under its own property row), is for that unit. Under a property
    with several units it is rejected saying so, never guessed. Online only: offline, the
    row says its unit is missing."""
    rows = extract.rows
    if refs is None or rows.empty or "property_name" not in rows:
        return extract, []
    empty = pd.Series(pd.NA, index=rows.index, dtype="string")
    unit = as_text(rows["unit"]) if "unit" in rows else empty
    prop = as_text(rows["property_name"])
    blank = unit.isna() & prop.notna()
    if not blank.any():
        return extract, []
    names = pd.DataFrame({"property_name": prop[blank].drop_duplicates()})
    resolved, _ = resolve_properties(names, refs, extract.source.name)
    numbers = refs.units.groupby("property_id")["number"].agg(list)
    only: dict[str, str] = {}
    several: dict[str, int] = {}
    for name, property_id in zip(resolved["property_name"], resolved["property_id"], strict=True):
        units = numbers.get(property_id, []) if isinstance(property_id, str) else []
        if len(units) == 1:
            only[name] = str(units[0])
        elif len(units) > 1:
            several[name] = len(units)
    issues = []
    for row, name in zip(rows.loc[blank, "source_row"], prop[blank], strict=True):
        if name in several:
            where, header = cell_prefix(extract.cells, "unit", int(row), "")
            reason = f"no unit, and {name} has {several[name]:,} units: say which"
            issues.append(
                Issue(
                    IssueCode.MISSING_VALUE,
                    f"{where}: {reason}" if where else reason,
                    extract.source.name,
                    int(row),
                    header or "unit",
                    None,
                )
            )
    if not only:
        return extract, issues
    filled = unit.where(~blank, prop.map(only).astype("string"))
    count = int((blank & filled.notna()).sum())
    notice = f"{count:,} row(s) with no unit are for the only unit of their single-family property"
    return replace(
        extract,
        rows=rows.assign(unit=filled.astype(object).where(filled.notna(), None)),
        notices=(*extract.notices, notice),
    ), issues


def _content(code: object, amount: object, day: object) -> tuple[str, int, str]:
    try:
        cents = int(float(str(amount)))
    except ValueError:
        cents = 0
    return str(code), cents, str(day)[:10]


def fetch_all(ctx: KindContext, start: date, end: date) -> pd.DataFrame:
    """Propexo's charges and credits dated ``start`` to ``end`` (``tieout ledger rebuild``)."""
    return fetch_synced_charges(
        ctx.needs_client(), ctx.integration_id, start.isoformat(), end.isoformat()
    )


def adopt(synced: pd.DataFrame, ctx: KindContext) -> tuple[list[dict[str, Any]], int]:
    """Ledger rows for Propexo's charges and credits, keyed by their reference number; and how
    many could not be keyed (no reference number)."""
    integration_id = ctx.integration_id
    rows = []
    skipped = 0
    for charge in synced.to_dict("records"):
        reference = charge.get("reference_number")
        if not reference or pd.isna(reference):
            skipped += 1
            continue
        amount = int(charge.get("amount_in_cents") or 0)
        kind = "credit" if amount < 0 else "charge"
        rows.append(
            {
                "record_key": f"{kind}:{integration_id}:{reference}",
                "kind": kind,
                "integration_id": integration_id,
                "reference_number": str(reference),
                "resident_id": charge.get("resident_id"),
                "charge_code_id": charge.get("charge_code_id"),
                "transaction_date": str(charge.get("transaction_date") or "")[:10] or None,
                "amount_cents": amount,
                "created_record_id": str(charge["id"]),
            }
        )
    return rows, skipped


def as_read(item: dict[str, Any], ctx: KindContext) -> dict[str, Any]:
    """A posted charge or credit as Propexo's read model shows it: a credit's amount
    negative; no Propexo id yet."""
    amount = item.get("amount_in_cents")
    if amount is not None and str(item.get("job_type", "")).endswith("CREDIT"):
        amount = -abs(int(amount))
    return {**item, "id": None, "amount_in_cents": amount}


def identity(item: Mapping[str, Any]) -> str | None:
    """A charge or credit is known by its reference number (a posted item, or a ledger row)."""
    reference = item.get("reference_number")
    return f"ref:{reference}" if isinstance(reference, str) and reference else None


def written_items(body: Mapping[str, Any]) -> list[Any]:
    """A batch writes its ``charges`` one by one; a credit's request is the credit."""
    charges = body.get("charges")
    return charges if isinstance(charges, list) else [body]


KIND = register(
    define(
        globals(),
        plural="charges and credits",
        post_order=20,
        columns=ATTRIBUTES,
        sync_model="resident_charges",
        source_kind=SOURCE_KIND,
        record_kinds=RECORD_KINDS,
        write_paths={"charge": BATCH_PATH, "credit": CREDIT_PATH},
        read_path=READ_PATH,
        synced=SyncedCharge,
        record_columns=tuple(CHARGE_COLUMNS),
        dated_sync=True,  # Propexo syncs charges within a window of transaction dates
        source_columns=SOURCE_COLUMNS,
        written_items=written_items,  # a batch writes its charges one by one
        line_schema=ResidentCharge,
        payload_schema=ChargePayload,
        renumber=renumber,
        twins=(("charge", "credit"),),  # a charge whose sign changed is a credit now
        derived_numbers=True,  # numbered by identity under RECORD_SCHEME
        ref_lists=(RefList("charge_codes", "/v1/charge-codes/", ("id", "name", "x_location_id")),),
        name_kinds=(
            NameKind(
                "charge_code",
                refs="charge_codes",
                file="charge_codes",
                names=(("name",),),
                label="name",
                column="charge_code_id",
                what="charge code",
                code=IssueCode.UNKNOWN_CHARGE_CODE,
            ),
        ),
        draft=Draft(
            header_words=(
                ("reference_number", ("reference", "ref", "invoice #", "bill #")),
                ("transaction_date", ("date", "charge date", "bill date", "post date")),
                (
                    "charge_code",
                    ("charge code", "service", "utility", "charge type", "code", "type"),
                ),
                ("resident_name", ("resident", "tenant", "occupant", "lessee", "customer")),
                ("property_name", ("property", "community", "site", "building")),
                ("unit", ("unit", "apt", "apartment", "suite")),
                ("status", ("status",)),
                ("notes", ("notes", "memo", "description")),
                ("amount", ("amount", "amt", "charge", "total charge")),
            ),
            required=("unit", "resident_name", "charge_code", "amount"),
            wide_required=("unit", "resident_name"),
        ),
    )
)
