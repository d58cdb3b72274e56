"""One file through extract, validate and transform: the profile it is read with, the rows
accounted for (used, rejected or skipped), and the rejects file written beside it."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.core.config import Settings
from pipelines.core.errors import InputError, UnknownLayout
from pipelines.core.hints import AliasHints
from pipelines.core.kind import Kind, KindContext, Kinds
from pipelines.core.models import (
    ExtractResult,
    FileOutcome,
    FileResult,
    Issue,
    IssueCode,
    SourceFile,
    ValidateResult,
    whole,
)
from pipelines.core.parsing import dollars
from pipelines.core.record_columns import RECORD
from pipelines.core.sheets import csv_bytes
from pipelines.reading.extract import extract_file
from pipelines.reading.grids import Limits, source_rows
from pipelines.reading.profiles import (
    Profile,
    profile_for_file,
)
from pipelines.reading.propose import LayoutHeld, Proposal, proposal_lines, propose_layout
from pipelines.resolving.refs import (
    RefData,
    charge_code_names,
)
from schemas import conforms

RECORD_FRAME_COLUMNS = RECORD.framed()  # what every kind's records have


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


def _refuse_if_totals_differ(
    extract: ExtractResult,
    hints: AliasHints,
    codes: list[str] | None = None,
    named_by: str | None = None,
) -> None:
    """A file whose lines do not add up to its own total or subtotal rows is not posted:
    something in it was read wrong (a total counted as a line, a line taken for a note), and
    tieout cannot know which. Said once, for the whole file, naming each row that differs,
    and the columns not charged whose amounts are exactly the difference (a misspelled charge
    header), each with the command that makes it a charge (``codes``: Propexo's charge code
    names, to name the one it is spelled like)."""
    differ = [t for t in extract.file_totals if t["checked"] and t["difference_cents"]]
    if not differ:
        return
    # The file's own grand total first: what a person checks, and what the columns explain
    # (each subtotal misses only its own group's share of them).
    differ.sort(key=lambda t: t.get("kind") != "total")
    grand = [t for t in differ if t.get("kind") == "total"]
    columns = explaining_columns(extract.columns_not_charged, grand or differ)
    targets = [spelled_like(str(c["header"]), codes or []) for c in columns]
    explained = (
        " The difference is exactly what "
        + "; and ".join(
            f'column "{c["header"]}" holds ({dollars(int(c["total_cents"]))}), which is not '
            "charged: if it is a charge, " + hints.charge_column(str(c["header"]), code)
            for c, code in zip(columns, targets, strict=True)
        )
        + "."
        if columns
        else ""
    )
    fix = (
        hints.add("charge_code", str(columns[0]["header"]), targets[0])
        if len(columns) == 1 and targets[0] is not None
        else None
    )
    said = [
        f"the {t.get('kind', 'total')} row (row {t['source_row']}"
        + (f", unit {t['unit']}" if t.get("unit") else "")
        + ") says "
        f"{dollars(t['stated_cents'])} for {t['column']}, but its lines add up to "
        f"{dollars(t['computed_cents'])} (difference "
        f"{dollars(t['difference_cents'])})"
        for t in differ[:3]
    ]
    more = f"; and {len(differ) - 3} more" if len(differ) > 3 else ""
    raise InputError(
        f"{extract.source.name}: the file's own totals do not tie: {'; '.join(said)}{more}. "
        "Nothing in it was posted."
        + (
            explained
            or (
                f" Check the file's total and subtotal rows; it was read with the profile "
                f"{extract.profile}, named for it by {named_by}"
                if named_by
                else f" Check the file's total and subtotal rows; it was read as "
                f"{extract.profile}: if another profile reads it, name that one with --profile"
            )
        ),
        fix=fix,
    )


# Columns not charged tried together when looking for the ones a difference is made of.
MOST_EXPLAINING = 4


def explaining_columns(
    columns: tuple[dict[str, Any], ...] | list[dict[str, Any]], differ: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The fewest columns not charged whose amounts are exactly what every differing total
    misses (its lines add up to less, by their sum), or none: only evidence names a column."""
    from itertools import combinations

    short = {-int(t["difference_cents"]) for t in differ}
    if len(short) != 1 or next(iter(short)) <= 0:
        return []
    need = next(iter(short))
    for size in range(1, min(len(columns), MOST_EXPLAINING) + 1):
        for chosen in combinations(columns, size):
            if sum(int(c["total_cents"]) for c in chosen) == need:
                return list(chosen)
    return []


def spelled_like(header: str, codes: list[str]) -> str | None:
    """The one Propexo charge code a header is a misspelling of (letter by letter, as
    `alias accept` judges a sure match), or None."""
    from rapidfuzz import fuzz

    from pipelines.core.columns import normalize_header

    key = normalize_header(header)
    scored = sorted(
        ((fuzz.ratio(key, normalize_header(code)), code) for code in set(codes)), reverse=True
    )
    if not scored or scored[0][0] < SPELLED_LIKE:
        return None
    if len(scored) > 1 and scored[1][0] >= scored[0][0] - 5:
        return None  # two codes nearly as close: a person chooses
    return scored[0][1]


SPELLED_LIKE = 80  # rapidfuzz ratio, 0-100


def refuse_if_grain_fails(extract: ExtractResult) -> None:
    """A file whose rows are not one per resident (or per charge) is not posted: a directory,
    an event log, a resident on several rows. Said once, for the whole file, with what shows
    it; no confirmation of its layout changes that."""
    if not extract.grain:
        return
    said = "; and it ".join(f.message for f in extract.grain)
    raise InputError(
        f"{extract.source.name}: {said}. Nothing in it was posted. Export the rent roll or "
        "charges report (one row per resident, or one per charge) instead"
    )


def process_file(
    source: SourceFile,
    profiles: list[Profile],
    refs: RefData | None,
    settings: Settings,
    confirmed_profiles: dict[str, str] | None = None,
) -> FileResult:
    """Extract, validate and transform one file (transform only when ``refs`` is given).

    ``confirmed_profiles``: header key → profile of the layouts a person confirmed; a file
    whose headers a person confirmed under another profile than the one detected is read
    with that one (unless a profile is named)."""
    limits = Limits(max_file_bytes=int(settings.max_file_mb * 2**20), max_rows=settings.max_rows)
    named = profile_for_file(settings, profiles, source.name)
    known_codes = charge_code_names(refs)
    try:
        extract = extract_file(
            source,
            profiles,
            profile_name=named,
            limits=limits,
            known_codes=known_codes,
            hints=AliasHints(settings.data_dir),
        )
    except UnknownLayout as exc:
        raise held_or_refused(exc, source, named) from exc
    confirmed_as = (confirmed_profiles or {}).get(
        extract.layout.header_key if extract.layout else ""
    )
    if (
        named is None
        and confirmed_as not in (None, extract.profile)
        and confirmed_as in {p.name for p in profiles}
        and not (extract.layout is not None and extract.layout.strict)
    ):
        extract = extract_file(
            source,
            profiles,
            profile_name=confirmed_as,
            limits=limits,
            known_codes=known_codes,
            hints=AliasHints(settings.data_dir),
        )
    refuse_if_grain_fails(extract)
    _refuse_if_totals_differ(
        extract,
        AliasHints(settings.data_dir),
        list(refs.charge_codes["name"].dropna().astype(str)) if refs is not None else None,
        named_by=(
            None
            if named is None
            else "--profile"
            if settings.profile is not None
            else "the [profiles] patterns of tieout.toml"
        ),
    )
    kind = _kind_of(profiles, extract.profile)
    context = KindContext.of(settings, Kinds([kind]), refs=refs)
    extract, unit_issues = kind.prepare(extract, context)
    period = extract.period
    validated = kind.validate(extract, period)
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
        transformed = kind.transform(validated, refs, context, source.name, period)
        records, found = transformed.records, transformed.issues
        issues += found
        bad = {i.source_row for i in issues}
        if bad and not records.empty:
            rows = records["source_rows"].explode()
            hit = rows.astype("int64").isin(bad).groupby(level=0).any()
            records = records[~hit.reindex(records.index, fill_value=False)]
    conforms(kind.payload_schema, records, f"{source.name}: the records to post")
    issues.sort(key=lambda i: (i.source_row, i.column or ""))
    return FileResult(
        source, extract, validated, records, issues, account_rows(extract, validated, issues)
    )


def held_or_refused(exc: UnknownLayout, source: SourceFile, named: str | None) -> InputError:
    """A file no profile reads: held with a proposal when one can be made (units, residents
    and money in it, and no profile named for it), else refused as it was."""
    if named is not None:
        return exc
    proposal = propose_layout(source.path)
    if proposal is None or not proposal.usable:
        return exc
    return LayoutHeld(
        f"{source.name}: no known layout; held with a proposal until a person confirms it "
        "(`tieout layout accept FILE`)",
        proposal,
    )


def _kind_of(profiles: list[Profile], name: str) -> Kind:
    """The kind of the profile a file was read with (profiles are loaded with theirs)."""
    spec = next((p.spec for p in profiles if p.name == name), None)
    if spec is None:
        raise ValueError(f"profile {name!r} was not loaded with its kind")
    return spec


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


def rejected_cents(validated: ValidateResult, issues: list[Issue]) -> dict[int, int]:
    """Each rejected row's amount in cents, as the file's rejected total adds it up (a row
    whose amount cannot be read has none)."""
    lines = validated.lines
    if lines.empty:
        return {}
    wanted = {i.source_row for i in issues}
    mine = lines[lines["source_row"].isin(wanted)].dropna(subset=["amount_cents"])
    sums = mine.groupby("source_row")["amount_cents"].sum()
    return {whole(row): whole(cents) for row, cents in sums.items()}


def errors_file_bytes(
    result: FileResult | None,
    issues: list[Issue],
    message: str | None = None,
    path: Path | None = None,
) -> bytes:
    """``<name>.errors.csv``: source row, every reason, and every column of the row as the file
    has it (read again from ``path``, the file where it now lies)."""
    if message is not None:
        return csv_bytes(pd.DataFrame({"source_row": [""], "reasons": [message]}))
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
    return csv_bytes(reasons)


# --- layouts: confirmed once, by a person ------------------------------------------------------


@dataclass(frozen=True)
class LayoutDecision:
    """Whether a file's layout may move money, and on whose word: a strict match of its
    profile, or a person's confirmation (``layout_id`` in the ledger)."""

    confirmed: bool
    confirmed_by: str | None = None
    layout_id: int | None = None


def decide_layout(extract: ExtractResult, confirmation: dict[str, Any] | None) -> LayoutDecision:
    """A layout moves money when a person confirmed it (``confirmation``: its ledger row), or
    when its profile reads it strictly (its own names, 80% of columns, grain checks pass)."""
    facts = extract.layout
    if facts is None:
        return LayoutDecision(False)
    if confirmation is not None:
        by = (
            f"{confirmation['confirmed_by']} on {str(confirmation['confirmed_at'])[:10]} "
            f"(layout {confirmation['id']}, from {confirmation['from_file']})"
        )
        return LayoutDecision(True, by, int(confirmation["id"]))
    # A row total tied only with columns nobody knows (``also_sums_unknown``): the file
    # accounts for them, but whether they are charges is a person's word.
    unknown_summed = any(t.get("also_sums_unknown") for t in extract.file_totals)
    if facts.strict and not extract.grain and not unknown_summed:
        return LayoutDecision(True, f"strict match of {facts.profile}")
    return LayoutDecision(False)


def accept_command(path: Path, settings: Settings) -> str:
    """The command that confirms a file's layout, as the person can type it."""
    parts = ["tieout"]
    if settings.data_dir != Path("data"):
        parts += ["--data-dir", shlex.quote(str(settings.data_dir))]
    parts += ["layout", "accept", shlex.quote(str(path))]
    if settings.profile:
        parts += ["--profile", shlex.quote(settings.profile)]
    return " ".join(parts)


def layout_preview(
    result: FileResult, decision: LayoutDecision, command: str | None = None
) -> dict[str, Any]:
    """What a file's layout would do, as data: its fingerprint and columns (charged, not
    charged, unknown), the lines and total it yields, the file's own totals, grain findings,
    and (held) the command that confirms it."""
    extract, o = result.extract, result.outcome
    facts = extract.layout.as_dict() if extract.layout is not None else {"fingerprint": ""}
    return {
        "name": o.name,
        "sha256": o.sha256,
        "layout": {
            **facts,
            "confirmed": decision.confirmed,
            "confirmed_by": decision.confirmed_by,
            "layout_id": decision.layout_id,
        },
        "rows_read": o.rows_read,
        "lines": o.rows_used,
        "rows_rejected": o.rows_rejected,
        "rows_skipped": o.rows_skipped,
        "source_total_cents": o.source_total_cents,
        "file_totals": list(extract.file_totals),
        "columns_not_charged": list(extract.columns_not_charged),
        "grain": [{"check": g.check, "message": g.message} for g in extract.grain],
        "command": command,
    }


def proposal_preview(
    source: SourceFile, proposal: Proposal, command: str | None = None
) -> dict[str, Any]:
    """A file held with a proposal, as :func:`layout_preview` says a held file: what the
    proposal would post, and the command that confirms it (``layout.proposal``: #38's
    contract)."""
    charged = [c.header for c in proposal.of("charge", "credit")]
    return {
        "name": source.name,
        "sha256": source.sha256,
        "layout": {
            "fingerprint": proposal.key,
            "kind": "charge",
            "sheet": proposal.sheet,
            "header_rows": list(proposal.header_rows),
            "profile": None,
            "charged": charged,
            "not_charged": [c.header for c in proposal.of("not_charged", "one_time")],
            "unknown": [c.header for c in proposal.of("unknown")],
            "strict_match": False,
            "why_held": ["no known layout: tieout proposes one"],
            "confirmed": False,
            "confirmed_by": None,
            "layout_id": None,
            "proposal": proposal.as_dict(),
        },
        "rows_read": 0,
        "lines": proposal.rows_used,
        "rows_rejected": 0,
        "rows_skipped": 0,
        "source_total_cents": proposal.total_cents,
        "file_totals": [],
        "columns_not_charged": [],
        "grain": [],
        "command": command,
    }


def preview_lines(preview: dict[str, Any]) -> list[str]:
    """A held file's preview, said once: what its layout would do, and how to confirm it."""
    layout = preview["layout"]
    name = preview["name"]
    if layout.get("proposal"):
        return proposal_lines(name, layout["proposal"], preview.get("command"))

    def listed(key: str) -> str:
        return ", ".join(layout.get(key) or []) or "none"

    lines = [
        f"{name}: held, not posted: its layout ({layout['fingerprint']}, read as "
        f"{layout.get('profile')}) is not confirmed: "
        + ("; ".join(layout.get("why_held") or []) or "no strict match"),
        f"  would charge: {listed('charged')}; not charged: {listed('not_charged')}; "
        f"unknown: {listed('unknown')}",
        f"  would post {preview['lines']:,} lines, "
        f"{dollars(preview['source_total_cents'])} ({preview['rows_rejected']:,} rows "
        f"rejected, {preview['rows_skipped']:,} skipped)",
    ]
    for total in preview["file_totals"]:
        lines.append(
            f"  the file's own {total.get('kind', 'total')} row (row {total['source_row']}, "
            f"{total['column']}) says {dollars(total['stated_cents'])}; its lines add "
            f"up to {dollars(total['computed_cents'])}"
            + (
                f" with {', '.join(repr(a) for a in total['also_sums'])}, not charged"
                if total.get("also_sums")
                else ""
            )
        )
    for finding in preview["grain"]:
        lines.append(f"  grain: {finding['message']}")
    if preview.get("command"):
        lines.append(
            f"  it stays in the inbox; if this is right, confirm the layout once: "
            f"{preview['command']}"
        )
    return lines
