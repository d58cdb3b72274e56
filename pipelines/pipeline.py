"""The stages composed: `run`, `check`, `reconcile_ledger` and report writing.

Each file goes extract → validate → transform (pure after extract) and its records are staged in
the ledger; then everything ready is posted and followed to its outcome; then whatever is due is
reconciled; then the run's report is written from the ledger.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines import report as reporting
from pipelines.config import Settings, which_propexo
from pipelines.errors import ConfigError, InputError, LedgerError
from pipelines.extract import Limits, extract_file, fingerprint, period_from_name, source_rows
from pipelines.inbox import (
    archive_folder,
    complete_files,
    list_inbox,
    move_file,
    open_for_writing,
)
from pipelines.ledger import Conflict, Ledger, SyncCursor, utcnow
from pipelines.load import describe_plan, load, plan_requests, resolve_in_doubt, wait_for_jobs
from pipelines.lock import run_lock
from pipelines.logs import run_log
from pipelines.models import (
    POSTED,
    ExtractResult,
    FileOutcome,
    Issue,
    IssueCode,
    ReconcileResult,
    SourceFile,
    ValidateResult,
)
from pipelines.parsing import format_cents
from pipelines.profiles import (
    BUILTIN_PROFILES_DIR,
    Profile,
    load_profile,
    load_profiles,
    normalize_header,
)
from pipelines.proof import sync_verdicts, write_ended
from pipelines.propexo import PropexoClient, make_client
from pipelines.rebuild import backup_ledger
from pipelines.reconcile import LEDGER_COLUMNS, reconcile
from pipelines.refs import (
    CHARGE_FIELDS,
    INVOICE_FIELDS,
    RefData,
    build_reference_data,
    fetch_reference_lists,
    fetch_synced_charges,
    fetch_synced_invoices,
    read_aliases,
)
from pipelines.transform import resolve_properties, transform_bills, transform_charges
from pipelines.validate import as_text, cell_prefix, validate

log = logging.getLogger("tieout")
Say = Callable[[str], None]
RECORD_FRAME_COLUMNS = [
    "record_key",
    "kind",
    "integration_id",
    "location_id",
    "amount_cents",
    "content_hash",
    "payload",
    "source_rows",
    "source_file",
]


def new_run_id() -> str:
    """Sortable and unique: ``20261121T031500Z-1a2b``."""
    return datetime.now(tz=UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(2)


def profiles_for(settings: Settings) -> list[Profile]:
    """Built-in profiles, overridden or extended by the data folder's own, plus the profile
    file named by ``--profile PATH`` (which then is the one used)."""
    profiles = load_profiles(BUILTIN_PROFILES_DIR, settings.profiles_dir)
    named = _profile_file(settings)
    if named is None:
        return profiles
    chosen = load_profile(named)
    return [p for p in profiles if p.name != chosen.name] + [chosen]


def _profile_file(settings: Settings) -> Path | None:
    value = settings.profile
    if value and (value.endswith(".toml") or "/" in value):
        path = Path(value)
        if not path.is_file():
            raise ConfigError(f"profile {value}: no such file")
        return path
    return None


def profile_for_file(settings: Settings, profiles: list[Profile], file_name: str) -> str | None:
    """The profile named explicitly (by name or file), which always wins; else the first
    ``[profiles]`` glob of tieout.toml that matches the file name; None: detect."""
    if settings.profile is not None:
        return _named_profile(settings, profiles)
    for pattern, name in settings.profile_globs:
        if fnmatch.fnmatch(file_name.lower(), pattern.lower()):
            if name not in {p.name for p in profiles}:
                raise ConfigError(f"[profiles] {pattern!r} names no profile called {name!r}")
            return name
    return None


def _named_profile(settings: Settings, profiles: list[Profile]) -> str:
    named = _profile_file(settings)
    name = load_profile(named).name if named is not None else settings.profile
    if name not in {p.name for p in profiles}:
        known = ", ".join(sorted(p.name for p in profiles))
        raise ConfigError(f"no profile named {name!r}; known: {known}")
    return name


# --- one file ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileResult:
    """One file through extract, validate and (when refs are given) transform."""

    source: SourceFile
    extract: ExtractResult
    validated: ValidateResult
    records: pd.DataFrame
    issues: list[Issue]
    outcome: FileOutcome


def account_rows(
    extract: ExtractResult,
    validated: ValidateResult,
    issues: list[Issue],
    previously_posted_cents: int = 0,
) -> FileOutcome:
    """Every row in exactly one bucket: used, rejected (with reasons) or skipped (with a kind)."""
    # Row numbers are small integers: a flag per row number does the set algebra in O(rows).
    data_rows = extract.rows["source_row"].to_numpy(dtype=np.int64)
    issue_rows = np.fromiter({i.source_row for i in issues if i.source_row >= 0}, dtype=np.int64)
    late = validated.skipped["source_row"].to_numpy(dtype=np.int64)
    size = 1 + max((int(a.max()) for a in (data_rows, issue_rows, late) if len(a)), default=0)

    def flags(rows: np.ndarray) -> np.ndarray:
        out = np.zeros(size, dtype=bool)
        out[rows] = True
        return out

    is_data = flags(data_rows)
    rejected = flags(issue_rows) & is_data
    late_skipped = flags(late) & ~rejected
    used = is_data & ~rejected & ~late_skipped
    kinds = pd.concat(
        [
            extract.skipped["kind"],
            validated.skipped.loc[late_skipped[late], "kind"],
        ]
    )
    lines = validated.lines
    amounts = lines.dropna(subset=["amount_cents"]).groupby("source_row")["amount_cents"].sum()
    rows = amounts.index.to_numpy(dtype=np.int64)
    source_total = int(amounts[used[rows] | rejected[rows]].sum())
    rejected_total = int(amounts[rejected[rows]].sum())
    return FileOutcome(
        columns_not_charged=extract.columns_not_charged,
        file_totals=extract.file_totals,
        period=extract.period.isoformat() if extract.period else None,
        period_source=extract.period_source,
        sheet=extract.sheet,
        name=extract.source.name,
        sha256=extract.source.sha256,
        profile=extract.profile,
        kind=extract.kind,
        rows_read=extract.rows_read,
        rows_used=int(used.sum()),
        rows_rejected=int(rejected.sum()),
        rows_skipped=len(extract.skipped) + int(late_skipped.sum()),
        skipped_by_kind={str(k): int(v) for k, v in kinds.value_counts().sort_index().items()},
        source_total_cents=source_total,
        rejected_total_cents=rejected_total,
        previously_posted_cents=previously_posted_cents,
    )


def _refuse_if_totals_differ(extract: ExtractResult) -> None:
    """A file whose lines do not add up to its own total or subtotal rows is not posted:
    something in it was read wrong (a total counted as a line, a line taken for a note), and
    tieout cannot know which. Said once, for the whole file, naming each row that differs."""
    differ = [t for t in extract.file_totals if t["checked"] and t["difference_cents"]]
    if not differ:
        return
    unknown = extract.columns_not_charged
    explained = (
        f" The difference is exactly the column(s) not charged "
        f"({', '.join(repr(c['header']) for c in unknown)}): if they are charges, map "
        "them in data/mappings/charge_codes.csv."
        if unknown
        and all(-t["difference_cents"] == sum(c["total_cents"] for c in unknown) for t in differ)
        else ""
    )
    said = [
        f"the {t.get('kind', 'total')} row (row {t['source_row']}) says "
        f"{reporting.dollars(t['stated_cents'])} for {t['column']}, but its lines add up to "
        f"{reporting.dollars(t['computed_cents'])} (difference "
        f"{reporting.dollars(t['difference_cents'])})"
        for t in differ[:3]
    ]
    more = f"; and {len(differ) - 3} more" if len(differ) > 3 else ""
    raise InputError(
        f"{extract.source.name}: the file's own totals do not tie: {'; '.join(said)}{more}. "
        "Nothing in it was posted."
        + (
            explained
            or " Check the file's total and subtotal rows, or name its profile with --profile"
        )
    )


def _with_property(
    extract: ExtractResult, settings: Settings, refs: RefData | None
) -> ExtractResult:
    """A rent roll whose rows name no property takes it from ``--property`` or, online, from
    the one Propexo property its title names (a single-property export); with neither, it
    is refused once rather than row by row."""
    rows = extract.rows
    if extract.kind != "charge" or rows.empty:
        return extract
    current = rows.get("property_name")
    if current is not None and (current.notna() & current.astype(str).str.strip().ne("")).any():
        return extract
    name = settings.property_name
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
    if extract.kind != "charge" or refs is None or rows.empty or "property_name" not in rows:
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


def resolve_period(extract: ExtractResult, settings: Settings) -> tuple[date | None, str | None]:
    """A rent roll's billing period and where it came from: ``--period`` (or the config), the
    file's title, or a date in its file name. A period given for a file that states another
    is refused unless ``period_override``; a rent roll with no dates and no period at all is
    refused once, not row by row."""
    name = extract.source.name
    stated = extract.period
    named = period_from_name(name)
    own, own_source = (stated, "title") if stated else (named, "file name")
    if extract.kind != "charge":  # bills carry their own dates; a period is only reported
        return (own, own_source) if own is not None else (None, None)
    if settings.period is not None:
        if own is not None and own != settings.period and not settings.period_override:
            raise InputError(
                f"{name}: the period given ({settings.period:%Y-%m}) contradicts the file's own "
                f"({own:%Y-%m}, from its {own_source}); check the file, or add --period-override "
                f"to post it as {settings.period:%Y-%m} anyway"
            )
        return settings.period, "--period" if own != settings.period else own_source
    if own is not None:
        return own, own_source
    if extract.kind == "charge" and not extract.rows.empty:
        dates = extract.rows.get("transaction_date")
        undated = dates is None or dates.isna().all() or dates.astype(str).str.strip().eq("").all()
        if undated:
            raise InputError(
                f"{name}: no billing period: the file has no charge dates and states no period "
                "in its title ('As of MM/DD/YYYY', 'for December 2026') or its name "
                "('rentroll_2026-12.csv'); run with --period YYYY-MM"
            )
    return None, None


def charge_code_names(refs: RefData | None) -> frozenset[str]:
    """Normalized names of Propexo's charge codes (name and code) and of their aliases in
    data/mappings/charge_codes.csv: a column so headed is a charge column (online only)."""
    if refs is None:
        return frozenset()
    names: set[str] = set()
    codes = refs.charge_codes
    for column in ("name", "code", "x_id"):
        if column in codes:
            names.update(normalize_header(v) for v in codes[column].dropna().astype(str))
    alias = refs.aliases.get("charge_codes")
    if alias is not None:
        names.update(normalize_header(v) for v in alias["spreadsheet_name"].astype(str))
    return frozenset(n for n in names if n)


def process_file(
    source: SourceFile, profiles: list[Profile], refs: RefData | None, settings: Settings
) -> FileResult:
    """Extract, validate and transform one file (transform only when ``refs`` is given)."""
    limits = Limits(max_file_bytes=int(settings.max_file_mb * 2**20), max_rows=settings.max_rows)
    extract = extract_file(
        source,
        profiles,
        profile_name=profile_for_file(settings, profiles, source.name),
        limits=limits,
        known_codes=charge_code_names(refs),
    )
    _refuse_if_totals_differ(extract)
    period, period_source = resolve_period(extract, settings)
    extract = replace(extract, period=period, period_source=period_source)
    extract = _with_property(extract, settings, refs)
    extract, unit_issues = _single_family_units(extract, refs)
    validated = validate(extract, period)
    # "no unit, and Maple Court has 12 units" says more than "unit is missing"
    said = {i.source_row for i in unit_issues}
    unit_header = {"unit", extract.cells.get("unit", ("unit", ""))[0]}
    issues = unit_issues + [
        i
        for i in validated.issues
        if not (
            i.source_row in said and i.code == IssueCode.MISSING_VALUE and i.column in unit_header
        )
    ]
    records = pd.DataFrame(columns=RECORD_FRAME_COLUMNS)
    if refs is not None:
        if extract.kind == "vendor_bill":
            transformed = transform_bills(
                validated,
                refs,
                integration_id=settings.integration_id,
                source_file=source.name,
                due_days_default=settings.due_days_default,
            )
            records = transformed.invoices
        else:
            transformed = transform_charges(
                validated,
                refs,
                integration_id=settings.integration_id,
                source_file=source.name,
                period_start=period,
            )
            records = transformed.charges
        issues += transformed.issues
        bad = {i.source_row for i in issues}
        if bad and not records.empty:
            rows = records["source_rows"].explode()
            hit = rows.astype("int64").isin(bad).groupby(level=0).any()
            records = records[~hit.reindex(records.index, fill_value=False)]
    issues.sort(key=lambda i: (i.source_row, i.column or ""))
    return FileResult(
        source, extract, validated, records, issues, account_rows(extract, validated, issues)
    )


def _as_shown(value: Any) -> Any:
    """A cell as the spreadsheet shows it: Excel's 1695.0 is 1695."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def amounts_as_shown(extract: ExtractResult, issues: list[Issue]) -> dict[int, str]:
    """Each rejected row's amount as the file shows it ("1,126.59"; on a wide roll "Rent
    1,825.00; Parking 75.00"), for the report's exceptions."""
    wanted = {i.source_row for i in issues}
    rows = extract.rows[extract.rows["source_row"].isin(wanted)]
    columns = list(extract.charge_columns) or [c for c in ("amount",) if c in rows]
    out: dict[int, str] = {}
    for row in rows.to_dict("records"):
        cells = [
            (c, _as_shown(row[c]))
            for c in columns
            if row.get(c) is not None and str(row[c]).strip() not in ("", "nan", "None")
        ]
        text = (
            "; ".join(f"{c} {v}" for c, v in cells)
            if extract.charge_columns
            else "; ".join(str(v) for _, v in cells)
        )
        out[int(row["source_row"])] = text
    return out


def errors_file_bytes(
    result: FileResult | None,
    issues: list[Issue],
    message: str | None = None,
    path: Path | None = None,
) -> bytes:
    """``<name>.errors.csv``: source row, every reason, and every column of the row as the file
    has it (read again from ``path``, the file where it now lies)."""
    if message is not None:
        return reporting.csv_bytes(pd.DataFrame({"source_row": [""], "reasons": [message]}))
    reasons = pd.DataFrame(
        [(i.source_row, i.message) for i in issues], columns=["source_row", "reasons"]
    )
    # One reason per distinct problem: a wide roll's unknown resident is one reason, not one
    # per charge column.
    reasons = (
        reasons.groupby("source_row", sort=True)["reasons"]
        .apply(lambda r: "; ".join(dict.fromkeys(r)))
        .reset_index()
    )
    if result is not None:
        extract = result.extract
        raw = source_rows(
            path or extract.source.path,
            extract.sheet,
            extract.header_rows,
            reasons["source_row"].astype(int).tolist(),
        )
        raw = raw.astype(object).where(raw.notna(), "").map(_as_shown)
        raw["source_row"] = raw["source_row"].astype("int64")
        reasons = reasons.merge(raw, on="source_row", how="left", suffixes=("", " (file)"))
    return reporting.csv_bytes(reasons)


# --- check ---------------------------------------------------------------------------------------


def check_file(path: Path, settings: Settings, refs: RefData | None) -> dict[str, Any]:
    """What `tieout check` says about one file (and the rejects file it writes beside it)."""
    result = process_file(fingerprint(path), profiles_for(settings), refs, settings)
    o = result.outcome
    rejected = pd.DataFrame(
        [(i.source_row, i.message) for i in result.issues], columns=["source_row", "message"]
    )
    valid = result.validated.valid
    bad_rows = set(rejected["source_row"])
    valid = valid[~valid["source_row"].isin(bad_rows)]
    rows = json.loads(valid.to_json(orient="records", date_format="iso"))
    errors_path = None
    if result.issues:
        errors_path = path.with_name(path.name + ".errors.csv")
        errors_path.write_bytes(errors_file_bytes(result, result.issues))
    return {
        "name": o.name,
        "sha256": o.sha256,
        "profile": o.profile,
        "kind": o.kind,
        "rows_read": o.rows_read,
        "rows_used": o.rows_used,
        "rows_rejected": o.rows_rejected,
        "rows_skipped": o.rows_skipped,
        "skipped_by_kind": o.skipped_by_kind,
        "source_total_cents": o.source_total_cents,
        "rejected_total_cents": o.rejected_total_cents,
        "period": result.extract.period.isoformat() if result.extract.period else None,
        "period_source": result.extract.period_source,
        "notices": list(result.extract.notices),
        "columns_not_charged": list(result.extract.columns_not_charged),
        "file_totals": list(result.extract.file_totals),
        "rows": rows,
        "rejected": [
            {"source_row": int(r), "reasons": list(dict.fromkeys(g["message"]))}
            for r, g in rejected.groupby("source_row")
        ],
        "records": len(result.records),
        "errors_file": str(errors_path) if errors_path else None,
    }


# --- run -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunOutcome:
    run_id: str | None
    exit_code: int
    report_dir: Path | None
    summary: dict[str, Any]


def _handle_file(
    path: Path,
    ledger: Ledger,
    run_id: str,
    profiles: list[Profile],
    refs: RefData,
    settings: Settings,
    say: Say,
    client: PropexoClient | None = None,
) -> tuple[bool, bool]:
    """Process one inbox file into the ledger and move it. Returns (processed, had_problems).

    On a ledger that holds no records yet, the file's records are first looked up in Propexo:
    if any is there, the ledger was lost (or this is the wrong data folder), and the run stops
    before anything is staged, leaving the file in the inbox."""
    source = fingerprint(path)
    first = ledger.file_run(source.sha256)
    if first is not None:
        target = move_file(path, archive_folder(settings.archive_dir))
        ledger.record_drop(run_id, source.name, source.sha256, "duplicate drop", first)
        say(
            f"{source.name}: already processed in run {first}; archived as a duplicate drop, "
            "nothing posted"
        )
        log.info(
            "duplicate drop", extra={"run_id": run_id, "file": source.name, "path": str(target)}
        )
        return False, False
    try:
        result = process_file(source, profiles, refs, settings)
    except InputError as exc:
        target = move_file(path, settings.rejected_dir)
        target.with_name(target.name + ".errors.csv").write_bytes(
            errors_file_bytes(None, [], str(exc))
        )
        ledger.record_drop(run_id, source.name, source.sha256, str(exc), None)
        say(f"{source.name}: {exc} → moved to {target.parent}")
        return False, True
    if _changed_since(source):
        say(
            f"{source.name}: the file changed while it was being read (still being written?); "
            "left in the inbox, and read again once it stops changing"
        )
        log.warning("file changed while read", extra={"run_id": run_id, "file": source.name})
        return False, True
    if client is not None and not result.records.empty and ledger.is_empty():
        _refuse_if_posted_before(ledger, client, settings, _vendor_x_ids(refs), result.records)
    staged, conflicts = ledger.stage_records(run_id, source.sha256, result.records)
    issues = list(result.issues)
    if conflicts:
        by_key = result.records.set_index("record_key")
        for conflict in conflicts:
            issues += conflict_issues(conflict, by_key.loc[conflict.record_key], source.name)
    staged_set = set(staged)
    conflict_keys = {c.record_key for c in conflicts}
    previous = (
        result.records[~result.records["record_key"].isin(staged_set | conflict_keys)]
        if not result.records.empty
        else result.records
    )
    outcome = account_rows(
        result.extract,
        result.validated,
        issues,
        int(previous["amount_cents"].sum()) if not previous.empty else 0,
    )
    ledger.add_rejects(run_id, source.sha256, issues, amounts_as_shown(result.extract, issues))
    for issue in issues:
        log.info(
            "row rejected",
            extra={
                "run_id": run_id,
                "file": source.name,
                "row": issue.source_row,
                "code": issue.code.value,
            },
        )
    nothing_usable = outcome.rows_used == 0
    folder = settings.rejected_dir if nothing_usable else archive_folder(settings.archive_dir)
    target = move_file(path, folder)
    if issues:
        target.with_name(target.name + ".errors.csv").write_bytes(
            errors_file_bytes(result, issues, path=target)
        )
    ledger.record_file(run_id, outcome, str(target))
    log.info(
        "file processed",
        extra={
            "run_id": run_id,
            "file": source.name,
            "path": str(target),
            "count": outcome.rows_used,
        },
    )
    for notice in result.extract.notices:
        say(f"{source.name}: {notice}")
    for column in result.extract.columns_not_charged:
        say(f"{source.name}: {reporting.not_charged_text(column)}")
    say(
        f"{source.name}: {outcome.rows_read} rows read, {outcome.rows_used} used, "
        f"{outcome.rows_rejected} rejected, {outcome.rows_skipped} skipped; "
        f"{len(staged)} new records ({reporting.dollars(outcome.source_total_cents)})"
    )
    return True, bool(issues)


def _changed_since(source: SourceFile) -> bool:
    """Whether the file is no longer the one that was fingerprinted (size, mtime or content)."""
    try:
        stat = source.path.stat()
    except OSError:
        return True
    if stat.st_size != source.size_bytes or stat.st_mtime_ns != (
        source.mtime_ns or stat.st_mtime_ns
    ):
        return True
    return fingerprint(source.path).sha256 != source.sha256


def found_in_propexo(
    ledger: Ledger,
    client: PropexoClient,
    settings: Settings,
    vendor_x_ids: dict[str, str],
    records: pd.DataFrame,
) -> dict[str, str]:
    """Which of ``records`` Propexo already holds (record key → Propexo id): invoices by
    (vendor, invoice number), charges and credits by their whole reference number, looked up
    in the ledger's copy of Propexo's records after an incremental refresh."""
    invoices, charges = refresh_synced(ledger, client, settings, records)
    found: dict[str, str] = {}
    bills = records[records["kind"] == "invoice"]
    if not bills.empty and not invoices.empty:
        by_number = dict(
            zip(
                zip(
                    invoices["x_vendor_id"].astype(str),
                    invoices["invoice_number"].astype(str),
                    strict=True,
                ),
                invoices["id"].astype(str),
                strict=True,
            )
        )
        for key, vendor_id, number in zip(
            bills["record_key"], bills["vendor_id"], bills["invoice_number"], strict=True
        ):
            hit = by_number.get((vendor_x_ids.get(str(vendor_id), ""), str(number)))
            if hit is not None:
                found[str(key)] = hit
    lines = records[records["kind"] != "invoice"]
    if not lines.empty and not charges.empty:
        by_reference = dict(
            zip(charges["reference_number"].astype(str), charges["id"].astype(str), strict=True)
        )
        for key, reference in zip(lines["record_key"], lines["reference_number"], strict=True):
            hit = by_reference.get(str(reference))
            if hit is not None:
                found[str(key)] = hit
    return found


def adopt_already_posted(
    ledger: Ledger,
    client: PropexoClient,
    settings: Settings,
    vendor_x_ids: dict[str, str],
    run_id: str,
) -> int:
    """Propexo is the second witness: a record about to be sent that Propexo already holds is
    recorded as posted (with its Propexo id) and never sent. Returns how many."""
    ready = ledger.records(states=["ready"])
    if ready.empty:
        return 0
    found = found_in_propexo(ledger, client, settings, vendor_x_ids, ready)
    now = utcnow()
    for key, propexo_id in found.items():
        ledger.transition(
            [key],
            "confirmed",
            run_id=run_id,
            confirmed_at=now,
            created_record_id=propexo_id,
            detail="already in Propexo before it was sent: recorded, not sent again",
        )
    return len(found)


def _refuse_if_posted_before(
    ledger: Ledger,
    client: PropexoClient,
    settings: Settings,
    vendor_x_ids: dict[str, str],
    records: pd.DataFrame,
) -> None:
    found = found_in_propexo(ledger, client, settings, vendor_x_ids, records)
    if not found:
        return
    example = next(iter(found))
    raise LedgerError(
        f"the ledger {settings.ledger_path} holds no records, but Propexo already holds "
        f"{len(found)} of this file's records (e.g. {example}): a ledger was lost, restored "
        "from an old backup, or this is the wrong data folder. Posting now could post what "
        "Propexo does not show yet a second time, so nothing was posted and the file stays "
        "in the inbox. Restore the newest backup from data/backups/ (see the README), or "
        "rebuild the ledger from Propexo with `tieout ledger rebuild`, then run again"
    )


def _newest(frame: pd.DataFrame, column: str) -> str | None:
    if column not in frame or frame.empty:
        return None
    stamps = pd.to_datetime(frame[column], utc=True, errors="coerce").dropna()
    return stamps.max().strftime("%Y-%m-%dT%H:%M:%S.%fZ") if not stamps.empty else None


def refresh_synced(
    ledger: Ledger, client: PropexoClient, settings: Settings, records: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Bring the ledger's copy of Propexo's records up to date, fetching as little as possible.

    The first time (or when the ledger's charges reach a new transaction-date window) the whole
    window is fetched; after that only what changed (``updated_at_gte`` the newest change seen).
    Records that a recent sync no longer saw (``last_seen_lte`` the last sync, less the grace)
    were deleted in the PMS: Propexo keeps them, so they are set aside here, not matched.
    """
    integration = settings.integration_id
    want_invoices = bool((records["kind"] == "invoice").any())
    charges = records[records["kind"] != "invoice"]
    if want_invoices:
        cursor = ledger.cursor(integration, "invoice")
        fetched = fetch_synced_invoices(
            client, integration, **({"updated_at_gte": cursor.newest} if cursor.newest else {})
        )
        ledger.upsert_synced("invoice", fetched)
        newest = _newest(fetched, "updated_at")
        if newest and newest > (cursor.newest or ""):
            ledger.save_cursor(integration, "invoice", SyncCursor(newest))
    window: tuple[str, str] | None = None
    if not charges.empty:
        dates = charges["transaction_date"].astype(str)
        start, end = dates.min(), dates.max()
        cursor = ledger.cursor(integration, "charge")
        covered = cursor.covers(start, end)
        filters = {"updated_at_gte": cursor.newest} if covered and cursor.newest else {}
        if not covered and cursor.window is not None:
            start, end = min(start, cursor.window[0]), max(end, cursor.window[1])
        fetched = fetch_synced_charges(client, integration, start, end, **filters)
        ledger.upsert_synced("charge", fetched)
        newest = _newest(fetched, "updated_at")
        window = (start, end)
        if newest and newest > (cursor.newest or ""):
            ledger.save_cursor(integration, "charge", SyncCursor(newest, window))
        else:
            ledger.save_cursor(integration, "charge", SyncCursor(cursor.newest, window))
    # Deleted in Rent Manager: Propexo keeps the record, and syncs stop stamping its last_seen.
    # Only a sync known complete, with a known earliest start, can say a record was not seen.
    proven = ledger.proven_syncs(integration)
    for kind, model, wanted in (
        ("invoice", "invoices", want_invoices),
        ("charge", "resident_charges", not charges.empty),
    ):
        mine = proven[proven["models"].map(lambda models, m=model: m in models)]
        if not wanted or mine.empty:
            continue
        latest = mine.iloc[-1]
        started = pd.Timestamp(latest["started_after"])
        cutoff = _stamp(started - pd.Timedelta(seconds=settings.clock_skew_s))
        if kind == "invoice":
            gone = fetch_synced_invoices(client, integration, last_seen_lte=cutoff)
        else:
            assert window is not None  # fetched above: charges are wanted
            start, end = window
            reach = pd.Timedelta(days=max(settings.sync_window_days - 1, 0))
            start = max(start, _stamp(pd.Timestamp(latest["completed_at"]) - reach)[:10])
            end = min(end, _stamp(started + reach)[:10])
            gone = (
                fetch_synced_charges(client, integration, start, end, last_seen_lte=cutoff)
                if start <= end
                else pd.DataFrame(columns=CHARGE_FIELDS)
            )
        created = pd.to_datetime(gone["created_at"], utc=True, errors="coerce")
        ledger.mark_stale(kind, gone.loc[created.lt(pd.Timestamp(cutoff)), "id"].astype(str))
    return (ledger.synced("invoice", INVOICE_FIELDS), ledger.synced("charge", CHARGE_FIELDS))


def _stamp(moment: pd.Timestamp) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def reconcile_ledger(
    ledger: Ledger,
    client: PropexoClient,
    settings: Settings,
    vendor_x_ids: dict[str, str],
    *,
    run_id: str | None = None,
) -> ReconcileResult | None:
    """Match posted records against what Propexo holds now; update the ledger's states."""
    records = ledger.records(states=list(POSTED), columns=LEDGER_COLUMNS)
    if records.empty:
        return None
    synced_invoices, synced_charges = refresh_synced(ledger, client, settings, records)
    return settle_reconcile(
        ledger, settings, records, synced_invoices, synced_charges, vendor_x_ids, run_id=run_id
    )


def settle_reconcile(
    ledger: Ledger,
    settings: Settings,
    records: pd.DataFrame,
    synced_invoices: pd.DataFrame,
    synced_charges: pd.DataFrame,
    vendor_x_ids: dict[str, str],
    *,
    run_id: str | None = None,
) -> ReconcileResult:
    """Match the ledger's posted records against Propexo's (already fetched) and write every
    outcome back in one set-based statement: what `tieout reconcile` does after its fetch."""
    verdict = sync_verdicts(
        records,
        ledger.proven_syncs(settings.integration_id),
        since=write_ended(records, settings.in_doubt_grace_s)
        + pd.Timedelta(seconds=settings.reconcile_grace_s),
        window_days=settings.sync_window_days,
    )
    result = reconcile(
        records, synced_invoices, synced_charges, vendor_x_ids=vendor_x_ids, verdict=verdict
    )
    # One set-based write-back (awaiting ones keep their state and fields), of the outcomes
    # that change something: a ledger of a million matched records is not rewritten by every
    # reconcile.
    decided = result.details[result.details["outcome"].ne("awaiting_sync")]
    outcomes = pd.DataFrame(
        {
            "record_key": decided["record_key"].to_numpy(),
            "state": decided["outcome"].astype(str).to_numpy(),
            "propexo_id": decided["propexo_id"].to_numpy(),
            "found_amount_cents": decided["found_amount_cents"].to_numpy(),
            "note": decided["note"].where(decided["note"].astype(bool), None).to_numpy(),
        }
    )
    ledger.apply_outcomes(changed_outcomes(outcomes, records), run_id=run_id)
    now = utcnow()
    ledger.set_meta("last_reconcile_at", now)
    ledger.set_meta("unexpected", str(result.unexpected))
    return result


OUTCOME_FIELDS = ["state", "propexo_id", "found_amount_cents", "note"]


def changed_outcomes(outcomes: pd.DataFrame, records: pd.DataFrame) -> pd.DataFrame:
    """The outcomes whose state or fields differ from what the ledger holds (blank equals
    blank; an amount compares as a whole number)."""
    if outcomes.empty:
        return outcomes
    now = records.reindex(columns=["record_key", *OUTCOME_FIELDS]).set_index("record_key")
    now = now.reindex(outcomes["record_key"])

    def text(values: pd.Series) -> np.ndarray:
        return values.reset_index(drop=True).astype("string").fillna("").to_numpy()

    def number(values: pd.Series) -> np.ndarray:
        return pd.to_numeric(values.reset_index(drop=True), errors="coerce").to_numpy(float)

    ours, theirs = number(outcomes["found_amount_cents"]), number(now["found_amount_cents"])
    same = (ours == theirs) | (np.isnan(ours) & np.isnan(theirs))
    for field in ("state", "propexo_id", "note"):
        same &= text(outcomes[field]) == text(now[field])
    return outcomes[~same]


def _records_of_run(ledger: Ledger, run_id: str) -> pd.DataFrame:
    """The records a run staged, and those of earlier runs it re-sent, followed or settled."""
    staged = ledger.records(run_id=run_id)
    touched = set(ledger.touched_keys(run_id)) - set(staged["record_key"])
    if not touched:
        return staged
    everything = ledger.records()
    return pd.concat([staged, everything[everything["record_key"].isin(touched)]])


def provenance(settings: Settings) -> dict[str, Any]:
    """What produced a report: tieout's version, which Propexo (sandbox or production), which
    integration, and the settings that change amounts."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        tieout_version = version("tieout")
    except PackageNotFoundError:  # pragma: no cover - running from a checkout without install
        tieout_version = "unknown"
    return {
        "tieout_version": tieout_version,
        "propexo_base_url": settings.base_url,
        "propexo": which_propexo(settings.base_url),
        "integration_id": settings.integration_id,
        "due_days_default": settings.due_days_default,
        "batch_size": settings.batch_size,
        "period_setting": settings.period.isoformat() if settings.period else None,
        "in_doubt_grace_s": settings.in_doubt_grace_s,
    }


def report_names(ledger: Ledger, settings: Settings) -> dict[str, dict[str, str]]:
    """id → name per kind from the cached reference data, so the report shows who and what
    rather than ids alone (empty when nothing is cached)."""
    cached = ledger.cached_refs(settings.integration_id)
    if cached is None:
        return {}
    lists = cached[1]
    units = {str(u.get("id")): str(u.get("number") or "") for u in lists.get("units", [])}
    unit_of = {
        str(member.get("resident_id")): units.get(str(lease.get("unit_id")), "")
        for lease in lists.get("leases", [])
        for member in (lease.get("residents_meta_data") or [])
    }
    return {
        "vendor": {str(v.get("id")): str(v.get("name") or "") for v in lists.get("vendors", [])},
        "resident": {
            str(r.get("id")): f"{r.get('last_name') or ''}, {r.get('first_name') or ''}".strip(", ")
            for r in lists.get("residents", [])
        },
        "charge_code": {
            str(c.get("id")): str(c.get("name") or "") for c in lists.get("charge_codes", [])
        },
        "unit": unit_of,
    }


def write_report(ledger: Ledger, settings: Settings, run_id: str) -> Path:
    """Render a run's report from the ledger into ``data/reports/<run_id>/``."""
    runs = ledger.runs()
    row = runs[runs["run_id"] == run_id]
    if row.empty:
        raise InputError(f"no run {run_id!r} in the ledger")
    locations = json.loads(ledger.get_meta("locations") or "{}")
    unexpected = int(ledger.get_meta("unexpected") or 0)
    built = reporting.build_report(
        row.iloc[0].to_dict(),
        ledger.files(run_id),
        ledger.drops(run_id),
        _records_of_run(ledger, run_id),
        ledger.rejects(run_id),
        locations,
        unexpected=unexpected,
        grace_s=settings.in_doubt_grace_s,
        provenance=provenance(settings),
        names=report_names(ledger, settings),
    )
    folder = settings.reports_dir / run_id
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in reporting.render_all(built, folder).items():
        _write_atomically(folder / name, data)
    index = reporting.render_index(reporting.run_rows(run_summaries(settings.reports_dir)))
    _write_atomically(settings.reports_dir / "index.html", index.encode())
    return folder


def run_summaries(reports_dir: Path) -> dict[str, dict[str, Any]]:
    """Every report folder's summary.json, by folder name (a report being written, or
    damaged, is left out)."""
    found = {}
    for path in reports_dir.glob("*/summary.json"):
        try:
            found[path.parent.name] = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
    return found


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def reference_data(
    ledger: Ledger, client: PropexoClient, settings: Settings, *, refresh: bool = False
) -> RefData:
    """Reference data from the ledger's cache while it is younger than ``refs_max_age_s``,
    else fetched from Propexo (and cached). Alias files are always read fresh."""
    cached = None if refresh else ledger.cached_refs(settings.integration_id)
    if cached is not None:
        fetched_at, lists = cached
        age = datetime.now(tz=UTC) - datetime.fromisoformat(fetched_at.replace("Z", "+00:00"))
        if age.total_seconds() <= settings.refs_max_age_s:
            return build_reference_data(lists, read_aliases(settings.mappings_dir))
    lists = fetch_reference_lists(client, settings.integration_id)
    ledger.save_refs(settings.integration_id, lists)
    return build_reference_data(lists, read_aliases(settings.mappings_dir))


def _vendor_x_ids(refs: RefData) -> dict[str, str]:
    return dict(zip(refs.vendors["id"].astype(str), refs.vendors["x_id"].astype(str), strict=True))


def run(
    settings: Settings,
    *,
    inbox: Path | None = None,
    files: list[Path] | None = None,
    dry_run: bool = False,
    say: Say = print,
    on_progress: Callable[[int, int], None] | None = None,
) -> RunOutcome:
    """Process the inbox end to end; returns the exit code the CLI should use.

    Only complete files are taken (size and mtime unchanged across ``settle_s``), unless the
    caller has already decided which ``files`` are complete (watch mode).
    """
    inbox = inbox or settings.inbox_dir
    profiles = profiles_for(settings)
    if dry_run:
        return _dry_run(settings, inbox, profiles, say)
    with run_lock(settings.lock_path, "run"):
        if files is None:
            files, busy = complete_files(inbox, settings.settle_s)
            for path in busy:
                say(f"{path.name}: still being written; left for the next run")
        run_id = new_run_id()
        with run_log(settings.data_dir / "logs", run_id, settings.log_files_kept):
            return _run_locked(settings, run_id, files, profiles, say, on_progress)


def _run_locked(
    settings: Settings,
    run_id: str,
    files: list[Path],
    profiles: list[Profile],
    say: Say,
    on_progress: Callable[[int, int], None] | None,
) -> RunOutcome:
    log.info("run started", extra={"run_id": run_id, "count": len(files)})
    ledger = Ledger(settings.ledger)
    ledger.start_run(run_id, dry_run=False, pid=os.getpid())
    problems = False
    processed = 0
    try:
        with make_client(settings) as client:
            refs = reference_data(ledger, client, settings)
            ledger.set_meta(
                "locations",
                json.dumps(dict(zip(refs.locations["id"], refs.locations["name"], strict=True))),
            )
            doubt = settle_in_doubt(ledger, client, settings, refs, run_id)
            if any(doubt.values()):
                say("in doubt from earlier runs: " + describe_doubt(doubt))
            for path in files:
                done, had_problems = _handle_file(
                    path, ledger, run_id, profiles, refs, settings, say, client
                )
                processed += int(done)
                problems |= had_problems
            witnessed = adopt_already_posted(ledger, client, settings, _vendor_x_ids(refs), run_id)
            if witnessed:
                say(
                    f"{witnessed} records were already in Propexo (posted before, by tieout or "
                    "by hand): recorded as posted, not sent again"
                )
            result = load(
                ledger,
                client,
                run_id=run_id,
                batch_size=settings.batch_size,
                status_timeout_s=settings.status_timeout_s,
                concurrency=settings.concurrency,
                on_progress=on_progress,
            )
            if result.requests:
                stats = client.stats
                rate = stats.requests / max(result.seconds, 1e-9) * 60
                say(
                    f"posted {result.requests} write requests in {result.seconds:.1f}s; "
                    f"{stats.requests} requests in all ({stats.status_polls} status polls), "
                    f"{rate:.0f} req/min, {client.limiter.rate_limited} rate-limited"
                )
            if result.in_doubt:
                # Invoices read back at once: what this run left in doubt may be settled now.
                settled = settle_in_doubt(ledger, client, settings, refs, run_id)
                if settled["found"]:
                    say(f"{settled['found']} records in doubt were found in Propexo: confirmed")
            reconcile_ledger(ledger, client, settings, _vendor_x_ids(refs), run_id=run_id)
    finally:
        states = ledger.records(run_id=run_id)
        if (
            not states.empty
            and states["state"].isin(["failed", "sending", "submitted", "ready", "partial"]).any()
        ):
            problems = True
        exit_code = 1 if problems else 0
        ledger.finish_run(run_id, exit_code)
        log.info("run finished", extra={"run_id": run_id, "code": exit_code})
    did_something = processed or not states.empty or bool(ledger.touched_keys(run_id))
    report_dir = write_report(ledger, settings, run_id) if did_something else None
    summary = json.loads((report_dir / "summary.json").read_text()) if report_dir else {}
    if summary:
        # The verdict decides the exit code, so console, report and cron all say the same.
        verdict_code = 1 if summary["verdict"] == reporting.ATTENTION else 0
        if verdict_code != exit_code:
            exit_code = verdict_code
            ledger.finish_run(run_id, exit_code)
            report_dir = write_report(ledger, settings, run_id)
            summary = json.loads((report_dir / "summary.json").read_text())
    ledger.close()
    if did_something:
        backup_ledger(settings, run_id)
    return RunOutcome(run_id, exit_code, report_dir, summary)


def _dry_run(settings: Settings, inbox: Path, profiles: list[Profile], say: Say) -> RunOutcome:
    """What a run would post, and how long it would take; writes nothing anywhere."""
    with Ledger(settings.ledger, readonly=True) as ledger:
        plan_frames = []
        with make_client(settings) as client:
            refs = reference_data(ledger, client, settings)
            for path in list_inbox(inbox):
                try:
                    result = process_file(fingerprint(path), profiles, refs, settings)
                except InputError as exc:
                    say(f"{path.name}: {exc}")
                    continue
                o = result.outcome
                say(
                    f"{o.name}: {o.rows_used} rows usable, {o.rows_rejected} rejected, "
                    f"{o.rows_skipped} skipped"
                )
                plan_frames.append(result.records)
            ledger_id = "dry-run"
            for frame in plan_frames:
                ledger.stage_records(ledger_id, None, frame)
            plan = describe_plan(
                plan_requests(ledger.records(states=["ready"]), settings.batch_size),
                client.limiter.limit or 150,
            )
        names = {
            str(k): str(v)
            for k, v in zip(refs.locations["id"], refs.locations["name"], strict=True)
        }
        say(
            f"would send {plan['requests']} requests carrying {plan['records']} records "
            f"(about {plan['estimated_minutes']} min at the current rate limit)"
        )
        for location_id, entry in plan["by_location"].items():
            say(
                f"  {names.get(location_id, location_id)}: {entry['requests']} requests, "
                f"{entry['records']} records, {reporting.dollars(entry['amount_cents'])}"
            )
    return RunOutcome(None, 0, None, {"plan": plan})


def settle_in_doubt(
    ledger: Ledger, client: PropexoClient, settings: Settings, refs: RefData, run_id: str
) -> dict[str, int]:
    """Look up every record in doubt; re-send only what a proven sync says is absent."""
    ledger.mark_orphans_in_doubt(run_id)
    return resolve_in_doubt(
        ledger,
        client,
        run_id=run_id,
        vendor_x_ids=_vendor_x_ids(refs),
        grace_s=settings.in_doubt_grace_s,
        syncs=ledger.proven_syncs(settings.integration_id),
        window_days=settings.sync_window_days,
    )


def describe_doubt(counts: dict[str, int]) -> str:
    return (
        f"{counts['found']} found in Propexo, {counts['absent']} proven absent (will be sent), "
        f"{counts['waiting']} waiting for a proven sync, {counts['ambiguous']} ambiguous and "
        f"{counts['unverifiable']} outside every sync window (a person settles these with "
        "`tieout resolve`)"
    )


def _wait_for_syncs(ledger: Ledger, integration_id: str, wait_s: float) -> bool:
    """Wait until the webhook receiver has recorded the SYNC_COMPLETE of every sync we asked."""
    import time

    deadline = time.monotonic() + wait_s
    while ledger.open_sync_requests(integration_id):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def reconcile_command(
    settings: Settings, *, sync: bool, wait_s: float = 0.0, say: Say = print
) -> tuple[ReconcileResult | None, list[Path]]:
    """`tieout reconcile`: settle in-doubt records, match, and re-render affected run reports."""
    with run_lock(settings.lock_path, "reconcile"), Ledger(settings.ledger) as ledger:
        with make_client(settings) as client:
            refs = reference_data(ledger, client, settings)
            vendor_x_ids = _vendor_x_ids(refs)
            if sync:
                ledger.request_sync(settings.integration_id, utcnow())
                if client.manual_sync(settings.integration_id):
                    say("asked Propexo for a sync; it is proven done only by its SYNC_COMPLETE")
            if wait_s > 0 and ledger.open_sync_requests(settings.integration_id):
                if _wait_for_syncs(ledger, settings.integration_id, wait_s):
                    say("the sync is complete (SYNC_COMPLETE received)")
                else:
                    say(
                        f"no SYNC_COMPLETE within {wait_s:g}s: is `tieout webhooks serve` "
                        "running and registered? Records stay in doubt until a sync is proven"
                    )
            wait_for_jobs(ledger, client, run_id="reconcile", timeout_s=0, sleep=lambda s: None)
            doubt = settle_in_doubt(ledger, client, settings, refs, "reconcile")
            if any(doubt.values()):
                say("in doubt: " + describe_doubt(doubt))
            result = reconcile_ledger(ledger, client, settings, vendor_x_ids)
        reports = []
        if result is not None:
            touched = ledger.records(states=None)
            for run_id in sorted(set(touched["run_id"])):
                if (settings.reports_dir / run_id).exists():
                    reports.append(write_report(ledger, settings, run_id))
    return result, reports


def conflict_issues(conflict: Conflict, record: pd.Series, file_name: str) -> list[Issue]:
    """What a person needs to settle a conflict: which line changed, from what to what.

    A bill names each line whose amount, property, account or note differs from what was
    posted (or every line, when lines were added or removed); a charge names its row."""
    was, now = (
        format_cents(conflict.previous_cents, "dollar"),
        format_cents(conflict.cents, "dollar"),
    )
    if record["kind"] != "invoice":
        return [
            Issue(
                IssueCode.CONFLICT,
                f"this {_kind_word(conflict.record_key)} (same resident, charge code and date) "
                f"was posted in run {conflict.first_run_id} as {was}; this file says {now}. "
                "Not posted: enter the difference in Rent Manager, or change nothing if the "
                "first amount was right",
                file_name,
                conflict.source_row,
                "amount",
                now,
            )
        ]
    rows = [int(r) for r in record["source_rows"]]
    try:
        before = json.loads(conflict.previous_payload)["invoice_items"]
    except (ValueError, KeyError, TypeError):
        before = []
    after = record["payload"]["invoice_items"]
    head = f"invoice {record['invoice_number']} was posted in run {conflict.first_run_id}"
    advice = (
        "Not posted: correct the invoice in Rent Manager, or give the corrected bill a new number"
    )
    if len(before) != len(after):
        changed = [
            (row, f"it had {len(before)} lines ({was}), this file has {len(after)} ({now})")
            for row in rows
        ]
    else:
        changed = [
            (row, _line_change(old, new))
            for row, old, new in zip(rows, before, after, strict=True)
            if old != new
        ] or [(rows[0], f"its dates or location changed (total {was}, now {now})")]
    return [
        Issue(IssueCode.CONFLICT, f"{head}; {change}. {advice}", file_name, row, None, None)
        for row, change in changed
    ]


def _line_change(old: dict[str, Any], new: dict[str, Any]) -> str:
    was, now = old.get("amount_in_cents"), new.get("amount_in_cents")
    if was != now and isinstance(was, int) and isinstance(now, int):
        return f"this line was {format_cents(was, 'dollar')}, now {format_cents(now, 'dollar')}"
    return "this line's property, GL account or description changed"


def _kind_word(record_key: str) -> str:
    return "credit" if record_key.startswith("credit:") else "charge"


def _latest_sync(settings: Settings) -> str | None:
    """When the newest proven sync completed (None before any, or without a ledger yet)."""
    if not settings.ledger_path.exists():
        return None
    ledger = Ledger(settings.ledger)
    try:
        proven = ledger.proven_syncs(settings.integration_id)
    finally:
        ledger.close()
    return None if proven.empty else str(proven["completed_at"].iloc[-1])


def with_data_dir(settings: Settings, data_dir: Path) -> Settings:
    """The same settings over another data folder (the demo's private workspace)."""
    return replace(settings, data_dir=data_dir)


def watch_inbox(
    settings: Settings,
    *,
    interval_s: float,
    reconcile_every_s: float,
    say: Say = print,
    on_error: Callable[[BaseException], None] = print,
    sleep: Callable[[float], None] | None = None,
    cycles: int | None = None,
) -> None:
    """Poll the inbox; run on files that stayed unchanged for one interval; reconcile on a
    schedule. A failing cycle is reported through ``on_error`` and the watch goes on."""
    import time

    pause = sleep or time.sleep
    seen: dict[Path, tuple[int, float]] = {}
    next_reconcile = time.monotonic() + reconcile_every_s
    last_sync = _latest_sync(settings)
    done = 0
    while cycles is None or done < cycles:
        done += 1
        look = {}
        for path in list_inbox(settings.inbox_dir):
            try:
                stat = path.stat()
            except OSError:
                continue
            look[path] = (stat.st_size, stat.st_mtime)
        ready = [p for p, v in look.items() if seen.get(p) == v and v[0] > 0]
        writing = open_for_writing(ready)
        ready = [p for p in ready if p not in writing]
        seen = {p: v for p, v in look.items() if p not in ready}
        try:
            if ready:
                outcome = run(settings, files=ready, say=say)
                verdict = outcome.summary.get("verdict", "nothing to report")
                report = outcome.report_dir / "report.html" if outcome.report_dir else "(none)"
                say(f"run {outcome.run_id}: {verdict} (exit {outcome.exit_code}); report: {report}")
            sync_seen = _latest_sync(settings)
            if time.monotonic() >= next_reconcile or sync_seen != last_sync:
                # On schedule, or at once when a SYNC_COMPLETE arrived: what waited for a sync
                # (charges to match, records in doubt) can be settled now.
                next_reconcile = time.monotonic() + reconcile_every_s
                last_sync = sync_seen
                reconcile_command(settings, sync=False, say=say)
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # a bad cycle must not end the watch
            log.warning("watch cycle failed", extra={"error": str(exc)})
            on_error(exc)
        pause(interval_s)
