"""One file through extract, validate and transform: the profile it is read with, the rows
accounted for (used, rejected or skipped), and the rejects file written beside it."""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines import render
from pipelines import report as reporting
from pipelines.config import Settings
from pipelines.errors import ConfigError, InputError
from pipelines.extract import extract_file
from pipelines.flows import flow_for_source
from pipelines.grids import Limits, source_rows
from pipelines.hints import AliasHints
from pipelines.models import (
    ExtractResult,
    FileOutcome,
    FileResult,
    Issue,
    IssueCode,
    SourceFile,
    ValidateResult,
)
from pipelines.profiles import (
    BUILTIN_PROFILES_DIR,
    Profile,
    load_profile,
    load_profiles,
    normalize_header,
)
from pipelines.refs import (
    RefData,
)
from schemas import conforms

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


def _refuse_if_totals_differ(extract: ExtractResult, hints: AliasHints) -> None:
    """A file whose lines do not add up to its own total or subtotal rows is not posted:
    something in it was read wrong (a total counted as a line, a line taken for a note), and
    tieout cannot know which. Said once, for the whole file, naming each row that differs."""
    differ = [t for t in extract.file_totals if t["checked"] and t["difference_cents"]]
    if not differ:
        return
    unknown = extract.columns_not_charged
    explained = (
        f" The difference is exactly the column(s) not charged "
        f"({', '.join(repr(c['header']) for c in unknown)}): if they are charges, "
        + (hints.charge_column(str(unknown[0]["header"])) if unknown else "")
        + "."
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


def charge_code_names(refs: RefData | None) -> frozenset[str]:
    """Normalized names of Propexo's charge codes (name and code) and of their aliases in
    <data_dir>/mappings/charge_codes.csv: a column so headed is a charge column (online only)."""
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
        hints=AliasHints(settings.data_dir),
    )
    _refuse_if_totals_differ(extract, AliasHints(settings.data_dir))
    flow = flow_for_source(extract.kind)
    extract, unit_issues = flow.prepare(extract, settings, refs)
    period = extract.period
    validated = flow.validate(extract, period)
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
        records, found = flow.transform(validated, refs, settings, source.name, period)
        issues += found
        bad = {i.source_row for i in issues}
        if bad and not records.empty:
            rows = records["source_rows"].explode()
            hit = rows.astype("int64").isin(bad).groupby(level=0).any()
            records = records[~hit.reindex(records.index, fill_value=False)]
    conforms(flow.payload_schema, records, f"{source.name}: the records to post")
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
        return render.csv_bytes(pd.DataFrame({"source_row": [""], "reasons": [message]}))
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
    return render.csv_bytes(reasons)
