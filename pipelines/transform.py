"""Transform: names → Propexo IDs, bill lines → invoices, charge lines → charges and credits.

Pure functions over frames. Resolution is a merge against lookup frames built from
:class:`~pipelines.refs.RefData`: a normalized exact match, after staff aliases are applied. It
never guesses: no match is a rejected row with the closest candidates as suggestions, and two
matches are rejected as ambiguous.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from rapidfuzz import fuzz, process

from pipelines.columns import (
    arrow_text,
    base32_column,
    digest64,
    distinct,
    duplicated_all,
    fingerprint64,
    group_codes,
    hex_column,
    int_part,
    ordinals,
    per_distinct,
    row_lists,
    spread,
)
from pipelines.models import Issue, IssueCode, TransformResult, ValidateResult
from pipelines.refs import RefData

REFERENCE_PREFIX = "TO"
REFERENCE_LENGTH = 12
_ORG_SUFFIXES = r"\b(llc|l l c|inc|incorporated|co|company|corp|corporation|ltd|lp|pllc)\b"
_HINT = "add a line to data/mappings/{file}.csv (spreadsheet_name,propexo_name)"


# --- normalization ------------------------------------------------------------------------------


def _basic(values: pd.Series) -> pd.Series:
    s = values.astype("string").str.lower().str.replace("&", " and ", regex=False)
    s = s.str.replace(r"[^a-z0-9# ]+", " ", regex=True)
    return s.str.replace(r"\s+", " ", regex=True).str.strip()


@distinct
def normalize_org(values: pd.Series) -> pd.Series:
    """'ACME Plumbing, L.L.C.' and 'Acme plumbing LLC' → 'acme plumbing'."""
    s = _basic(values.astype("string").str.replace(".", "", regex=False))
    s = s.str.replace(_ORG_SUFFIXES, " ", regex=True).str.replace("#", " ", regex=False)
    return s.str.replace(r"\s+", " ", regex=True).str.strip()


@distinct
def normalize_person(values: pd.Series) -> pd.Series:
    """'Smith, John' and 'john  SMITH' → 'john smith'."""
    s = values.astype("string").str.strip()
    flipped = s.str.extract(r"^(?P<last>[^,]+),\s*(?P<first>.+)$")
    s = s.where(flipped["last"].isna(), flipped["first"] + " " + flipped["last"])
    return _basic(s.str.replace(".", "", regex=False))


@distinct
def normalize_unit(values: pd.Series) -> pd.Series:
    """'#204', 'Unit 204', 'Apt. 204' → '204'."""
    s = _basic(values).str.replace(r"^(unit|apt|apartment|suite|ste)\b", "", regex=True)
    return s.str.replace(r"[#\s]", "", regex=True)


def _apply_aliases(values: pd.Series, aliases: pd.DataFrame | None, norm: Any) -> pd.Series:
    """Staff aliases win over everything: the spreadsheet spelling becomes the Propexo name."""
    if aliases is None or aliases.empty:
        return values
    table = dict(zip(norm(aliases["spreadsheet_name"]), aliases["propexo_name"], strict=True))
    mapped = norm(values).map(table)
    return values.where(mapped.isna(), mapped)


# --- matching -----------------------------------------------------------------------------------


def match(
    left: pd.DataFrame, lookup: pd.DataFrame, keys: list[str]
) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Exact match of ``left[keys]`` against ``lookup[keys]``.

    Returns ``(id, count, labels)`` aligned with ``left``: ``id`` when exactly one Propexo record
    matches, ``count`` of distinct matches (0 none, 2+ ambiguous), and the matching labels.
    """
    known = lookup.dropna(subset=keys)
    grouped = (
        known.groupby(keys, dropna=False).agg(id=("id", "first"), count=("id", "nunique"))
    ).reset_index()
    # Labels only matter to the message about an ambiguous name.
    ambiguous = grouped.loc[grouped["count"] > 1, keys]
    labels = (
        known.merge(ambiguous, on=keys)
        .groupby(keys, dropna=False)["label"]
        .agg(lambda x: ", ".join(sorted(set(map(str, x)))))
        .rename("labels")
        .reset_index()
    )
    grouped = grouped.merge(labels, on=keys, how="left")
    # Each distinct key is matched once; the rows share its answer.
    codes, firsts = group_codes(left, keys)
    merged = (
        left[keys]
        .iloc[firsts]
        .reset_index(drop=True)
        .merge(grouped, on=keys, how="left", validate="many_to_one")
    )
    count = spread(codes, merged["count"].fillna(0).astype(int), left.index)
    ids = spread(codes, merged["id"], left.index).where(count.eq(1))
    return ids, count, spread(codes, merged["labels"], left.index)


def suggest(value: str, choices: list[str], limit: int = 3) -> list[str]:
    """The closest names (best first) for a clerk to pick from."""
    found = process.extract(value, choices, scorer=fuzz.WRatio, limit=limit)
    return [str(choice) for choice, score, _ in found if score >= 50]


def _resolution_issues(
    frame: pd.DataFrame,
    ids: pd.Series,
    count: pd.Series,
    labels: pd.Series,
    *,
    column: str,
    what: str,
    code: IssueCode,
    mapping_file: str,
    choices: pd.Series,
    source_file: str,
    scope: pd.Series | None = None,
) -> list[Issue]:
    issues: list[Issue] = []
    for index in frame.index[ids.isna()]:
        value = str(frame.at[index, column])
        row = int(frame.at[index, "source_row"])
        if count[index] > 1:
            issues.append(
                Issue(
                    IssueCode.AMBIGUOUS,
                    f'{what} "{value}" matches more than one Propexo record '
                    f"({labels[index]}); {_HINT.format(file=mapping_file)}",
                    source_file,
                    row,
                    what,
                    value,
                )
            )
            continue
        pool = (
            choices
            if scope is None
            else choices[scope.eq(scope[index]).reindex(choices.index, fill_value=False)]
        )
        options = suggest(value, sorted(set(pool.dropna().astype(str))))
        hint = f"; did you mean {', '.join(repr(o) for o in options)}?" if options else ""
        issues.append(
            Issue(
                code,
                f'{what} "{value}" is not known to Propexo{hint or "."} '
                f"If it is the same thing under another name, "
                f"{_HINT.format(file=mapping_file)}",
                source_file,
                row,
                what,
                value,
            )
        )
    return issues


def _lookup(
    frame: pd.DataFrame, key_values: dict[str, pd.Series], label: pd.Series
) -> pd.DataFrame:
    out = pd.DataFrame({**key_values, "id": frame["id"], "label": label})
    return out


def resolve_properties(
    frame: pd.DataFrame, refs: RefData, source_file: str
) -> tuple[pd.DataFrame, list[Issue]]:
    """Add ``property_id`` and ``location_id`` (matched by property name or code)."""
    props = refs.properties
    lookup = pd.concat(
        [
            _lookup(props, {"_key": normalize_org(props["name"])}, props["name"]),
            _lookup(props, {"_key": normalize_org(props["code"].fillna(""))}, props["name"]),
        ]
    ).drop_duplicates()
    lookup = lookup[lookup["_key"].ne("")]
    left = pd.DataFrame(
        {
            "_key": normalize_org(
                _apply_aliases(
                    frame["property_name"], refs.aliases.get("properties"), normalize_org
                )
            )
        },
        index=frame.index,
    )
    ids, count, labels = match(left, lookup, ["_key"])
    out = frame.copy()
    out["property_id"] = ids
    location_of = dict(zip(props["id"], props["location_id"], strict=True))
    out["location_id"] = per_distinct(lambda found: found.map(location_of), ids)
    issues = _resolution_issues(
        out,
        ids,
        count,
        labels,
        column="property_name",
        what="property",
        code=IssueCode.UNKNOWN_PROPERTY,
        mapping_file="properties",
        choices=props["name"],
        source_file=source_file,
    )
    return out, issues


def _resolve_in_location(
    frame: pd.DataFrame,
    column: str,
    refs_frame: pd.DataFrame,
    names: list[pd.Series],
    aliases: pd.DataFrame | None,
    *,
    norm: Any,
    out_column: str,
    what: str,
    code: IssueCode,
    mapping_file: str,
    source_file: str,
) -> tuple[pd.DataFrame, list[Issue]]:
    """Match a name within the row's RM location (vendors, GL accounts, charge codes are per
    location in Rent Manager)."""
    lookup = pd.concat(
        [
            _lookup(
                refs_frame,
                {"_key": norm(n.fillna("")), "location_id": refs_frame["location_id"]},
                refs_frame["name"],
            )
            for n in names
        ]
    ).drop_duplicates()
    lookup = lookup[lookup["_key"].ne("")]
    todo = frame["location_id"].notna()
    left = pd.DataFrame(
        {
            "_key": norm(_apply_aliases(frame[column], aliases, norm)),
            "location_id": frame["location_id"],
        },
        index=frame.index,
    )[todo]
    ids, count, labels = match(left, lookup, ["_key", "location_id"])
    out = frame.copy()
    out[out_column] = ids.reindex(frame.index)
    choices = refs_frame["name"]
    issues = _resolution_issues(
        out[todo],
        ids,
        count,
        labels,
        column=column,
        what=what,
        code=code,
        mapping_file=mapping_file,
        choices=choices,
        source_file=source_file,
    )
    return out, issues


def content_hash(payload: dict[str, Any]) -> str:
    """A stable digest of what is posted: the same key with a different digest is a conflict."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _bad_rows(issues: list[Issue]) -> set[int]:
    return {i.source_row for i in issues}


# --- vendor bills → invoices --------------------------------------------------------------------

INVOICE_COLUMNS = [
    "record_key",
    "kind",
    "integration_id",
    "vendor_id",
    "location_id",
    "invoice_number",
    "total_amount_in_cents",
    "amount_cents",
    "content_hash",
    "payload",
    "source_rows",
    "source_file",
    "defaulted",
]


def transform_bills(
    validated: ValidateResult,
    refs: RefData,
    *,
    integration_id: str,
    source_file: str,
    due_days_default: int = 30,
) -> TransformResult:
    """Resolve bill lines and group them into one invoice per (vendor, invoice number)."""
    lines = validated.valid
    resolved, issues = resolve_properties(lines, refs, source_file)
    resolved, found = _resolve_in_location(
        resolved,
        "vendor_name",
        refs.vendors,
        [refs.vendors["name"]],
        refs.aliases.get("vendors"),
        norm=normalize_org,
        out_column="vendor_id",
        what="vendor",
        code=IssueCode.UNKNOWN_VENDOR,
        mapping_file="vendors",
        source_file=source_file,
    )
    issues += found
    gl = refs.financial_accounts
    resolved, found = _resolve_in_location(
        resolved,
        "gl_account",
        gl,
        [gl["account_number"], gl["name"], gl["account_number"].astype(str) + " " + gl["name"]],
        refs.aliases.get("gl_accounts"),
        norm=_basic,
        out_column="financial_account_id",
        what="GL account",
        code=IssueCode.UNKNOWN_GL_ACCOUNT,
        mapping_file="gl_accounts",
        source_file=source_file,
    )
    issues += found

    # An invoice is posted whole or not at all: one bad line holds back every line with the same
    # invoice number (even under another spelling of the vendor, which may be the bad part).
    every = validated.lines.assign(_number=validated.lines["invoice_number"].fillna(""))
    bad = _bad_rows(issues) | _bad_rows(validated.issues)
    bad_invoices = (
        every.loc[every["source_row"].isin(bad)].groupby("_number")["source_row"].apply(list)
    )
    # Grouped as the spreadsheet names them: RM vendor ids differ per location, so a bill whose
    # lines span locations would otherwise split silently into two invoices.
    resolved = resolved.assign(
        _inv=normalize_org(resolved["vendor_name"]) + "|" + resolved["invoice_number"]
    )
    for index in resolved.index[resolved["invoice_number"].isin(bad_invoices.index)]:
        row = int(resolved.at[index, "source_row"])
        if row in bad:
            continue
        number = str(resolved.at[index, "invoice_number"])
        rows = ", ".join(str(r) for r in bad_invoices[number])
        issues.append(
            Issue(
                IssueCode.INCONSISTENT_INVOICE,
                f'held back: another line of invoice "{number}" was rejected (row '
                f"{rows}); an invoice is posted whole or not at all",
                source_file,
                row,
                "invoice number",
                number,
            )
        )
    good = resolved[~resolved["source_row"].isin(_bad_rows(issues))]

    invoices: list[dict[str, Any]] = []
    for _, group in good.groupby("_inv", sort=False):
        first = group.iloc[0]
        rows = [int(r) for r in group["source_row"]]
        problem = _invoice_problem(group)
        if problem:
            code, message = problem
            issues += [
                Issue(code, message, source_file, r, "invoice number", str(first["invoice_number"]))
                for r in rows
            ]
            continue
        invoices.append(_invoice_record(group, integration_id, source_file, due_days_default))
    frame = pd.DataFrame(invoices, columns=INVOICE_COLUMNS)
    return TransformResult(
        invoices=frame,
        charges=pd.DataFrame(columns=CHARGE_COLUMNS),
        issues=sorted(issues, key=lambda i: i.source_row),
    )


def _invoice_problem(group: pd.DataFrame) -> tuple[IssueCode, str] | None:
    number = group["invoice_number"].iloc[0]
    if group["location_id"].nunique() > 1:
        return IssueCode.MIXED_LOCATION, (
            f'invoice "{number}" has lines in more than one Rent Manager location; '
            "split it into one bill per location"
        )
    for column in ("invoice_date", "due_date", "post_date"):
        if group[column].nunique(dropna=True) > 1:
            return IssueCode.INCONSISTENT_INVOICE, (
                f'invoice "{number}" has different {column.replace("_", " ")}s on its lines'
            )
    total = int(group["amount_cents"].sum())
    if total < 0:
        return IssueCode.NEGATIVE_TOTAL, (
            f'invoice "{number}" totals {total / 100:,.2f}: Propexo takes bills with a total of 0 '
            "or more; enter a vendor credit in Rent Manager instead"
        )
    return None


def _invoice_record(
    group: pd.DataFrame, integration_id: str, source_file: str, due_days_default: int
) -> dict[str, Any]:
    first = group.iloc[0]
    invoice_date = str(first["invoice_date"])
    defaulted: list[str] = []
    due = group["due_date"].dropna()
    if due.empty:
        due_date = (date.fromisoformat(invoice_date) + timedelta(days=due_days_default)).isoformat()
        defaulted.append(f"due_date = invoice date + {due_days_default} days")
    else:
        due_date = str(due.iloc[0])
    post = group["post_date"].dropna()
    if post.empty:
        post_date = invoice_date
        defaulted.append("post_date = invoice date")
    else:
        post_date = str(post.iloc[0])
    rows = [int(r) for r in group["source_row"]]
    items = [
        {
            "amount_in_cents": int(line.amount_cents),
            "property_id": str(line.property_id),
            "financial_account_id": str(line.financial_account_id),
            **({"notes": str(line.description)} if pd.notna(line.description) else {}),
        }
        for line in group.itertuples(index=False)
    ]
    total = sum(item["amount_in_cents"] for item in items)
    payload = {
        "integration_id": integration_id,
        "vendor_id": str(first["vendor_id"]),
        "location_id": str(first["location_id"]),
        "invoice_date": invoice_date,
        "due_date": due_date,
        "post_date": post_date,
        "total_amount_in_cents": total,
        "invoice_items": items,
        "invoice_number": str(first["invoice_number"]),
        "notes": f"tieout: {source_file} rows {_row_span(rows)}",
    }
    key = f"invoice:{integration_id}:{first['vendor_id']}:{first['invoice_number']}"
    hashed = {k: v for k, v in payload.items() if k != "notes"}  # notes name the file: not content
    return {
        "record_key": key,
        "kind": "invoice",
        "integration_id": integration_id,
        "vendor_id": str(first["vendor_id"]),
        "location_id": str(first["location_id"]),
        "invoice_number": str(first["invoice_number"]),
        "total_amount_in_cents": total,
        "amount_cents": total,
        "content_hash": content_hash(hashed),
        "payload": payload,
        "source_rows": rows,
        "source_file": source_file,
        "defaulted": defaulted,
    }


def _row_span(rows: list[int]) -> str:
    rows = sorted(rows)
    return f"{rows[0]}-{rows[-1]}" if len(rows) > 1 else str(rows[0])


# --- rent rolls → charges and credits -----------------------------------------------------------

CHARGE_COLUMNS = [
    "record_key",
    "kind",
    "integration_id",
    "location_id",
    "reference_number",
    "amount_cents",
    "content_hash",
    "payload",
    "source_rows",
    "source_file",
    "resident_id",
    "charge_code_id",
    "transaction_date",
    "property_id",
    "charge_notes",
]


def resident_lookup(refs: RefData, period_start: date | None) -> pd.DataFrame:
    """(property, unit number, person name) → resident id, from leases current in the period."""
    leases = refs.leases
    current = leases["status"].isin(["ACTIVE", "PENDING", None]) | leases["status"].isna()
    if period_start is not None:
        moved_out = pd.to_datetime(leases["move_out_date"], errors="coerce")
        current &= moved_out.isna() | (moved_out >= pd.Timestamp(period_start))
    units = refs.units.rename(columns={"id": "unit_id", "number": "unit_number"})
    people = refs.residents.rename(columns={"id": "resident_id", "property_id": "res_property"})
    joined = (
        leases[current]
        .merge(units[["unit_id", "unit_number"]], on="unit_id", how="inner")
        .merge(people, on="resident_id", how="inner")
    )
    name = joined["first_name"].fillna("") + " " + joined["last_name"].fillna("")
    return pd.DataFrame(
        {
            "property_id": joined["property_id"].fillna(joined["res_property"]),
            "_unit": normalize_unit(joined["unit_number"].astype(str)),
            "_key": normalize_person(name),
            "id": joined["resident_id"],
            "label": name,
        }
    ).drop_duplicates()


_IDENTITY = ["resident_id", "charge_code_id", "transaction_date"]  # what names a charge
_LINE_CONTENT = [*_IDENTITY, "notes"]
_CHARGE_CONTENT = [*_LINE_CONTENT, "charge_code"]  # default notes name the code as written


def _distinct_contents(frame: pd.DataFrame, columns: list[str]) -> tuple[np.ndarray, pd.DataFrame]:
    """(code per row, the distinct combinations of ``columns``): a million charge lines hold
    a few tens of thousands of (resident, charge code, date, notes), so text work is done on
    those and the rows share it."""
    codes, firsts = group_codes(frame, columns)
    return codes, frame[columns].iloc[firsts].reset_index(drop=True)


def reference_numbers(
    frame: pd.DataFrame,
    integration_id: str,
    contents: tuple[np.ndarray, pd.DataFrame] | None = None,
) -> pd.Series:
    """Deterministic reference numbers for charges whose source has none (see
    :func:`reference_bits` for how they are derived)."""
    return _reference_text(reference_bits(frame, integration_id, contents), frame.index)


def _reference_text(bits: np.ndarray, index: pd.Index) -> pd.Series:
    """``TO`` + the top 50 bits in base32."""
    size = REFERENCE_LENGTH - len(REFERENCE_PREFIX)
    return base32_column(bits, size, REFERENCE_PREFIX).set_axis(index)


def reference_bits(
    frame: pd.DataFrame,
    integration_id: str,
    contents: tuple[np.ndarray, pd.DataFrame] | None = None,
) -> np.ndarray:
    """The 64 bits behind each line's reference number.

    Derived from what *identifies* the line, never from what it says: the integration, the
    resident, the charge code, the transaction date (the period), and the line's ordinal among
    lines of the same identity in file order. So a corrected amount or note keeps its number
    and is caught as "same key, other content" (a conflict), instead of becoming a new charge.

    The number is ``TO`` + the top 50 bits, in base32, of ``fingerprint64([sha(integration),
    sha(resident), sha(code), sha(date), ordinal])``, where ``sha(x)`` is the first 8 bytes of
    sha256 of the text: computed column-wise, with sha256 once per distinct value.
    ``contents`` is ``_distinct_contents`` of the frame over at least those columns, when the
    caller has it already.
    """
    codes, contents_frame = contents or _distinct_contents(frame, _IDENTITY)
    per_content = fingerprint64(
        [
            digest64(pd.Series([integration_id] * len(contents_frame), dtype=object)),
            *(digest64(contents_frame[column]) for column in _IDENTITY),
        ]
    )
    identity = per_content[codes]
    ordinal = ordinals(identity, frame["source_row"].to_numpy(dtype=np.int64))
    return fingerprint64([int_part(ordinal)], start=identity)


_NAME_COLUMNS = ["property_name", "unit", "resident_name", "charge_code"]
_ID_COLUMNS = ["property_id", "location_id", "resident_id", "charge_code_id"]


def _resolve_charge_names(
    valid: pd.DataFrame, refs: RefData, source_file: str, period_start: date | None
) -> tuple[pd.DataFrame, list[Issue]]:
    """Property, resident and charge code IDs for every line, resolved once per distinct
    (property, unit, resident, charge code); every line of a name that does not resolve gets
    its own issue."""
    codes, firsts = group_codes(valid, _NAME_COLUMNS)
    names = valid[_NAME_COLUMNS].iloc[firsts].reset_index(drop=True)
    names["source_row"] = np.arange(len(names))  # the combination's number, until expanded
    ids, issues = _resolve_names(names, refs, source_file, period_start)
    resolved = valid.copy()
    for column in _ID_COLUMNS:
        resolved[column] = spread(codes, ids[column].astype("str"), valid.index)
    if not issues:
        return resolved, []
    failing = np.fromiter({i.source_row for i in issues}, dtype=np.int64)
    hit = np.isin(codes, failing)
    rows_of = pd.Series(valid["source_row"].to_numpy()[hit]).groupby(codes[hit]).agg(list).to_dict()
    return resolved, [
        replace(issue, source_row=int(row)) for issue in issues for row in rows_of[issue.source_row]
    ]


def _resolve_names(
    names: pd.DataFrame, refs: RefData, source_file: str, period_start: date | None
) -> tuple[pd.DataFrame, list[Issue]]:
    resolved, issues = resolve_properties(names, refs, source_file)
    lookup = resident_lookup(refs, period_start)
    todo = resolved["property_id"].notna()
    left = pd.DataFrame(
        {
            "property_id": resolved["property_id"],
            "_unit": normalize_unit(resolved["unit"].astype(str)),
            "_key": normalize_person(
                _apply_aliases(
                    resolved["resident_name"], refs.aliases.get("residents"), normalize_person
                )
            ),
        },
        index=resolved.index,
    )[todo]
    ids, count, labels = match(left, lookup, ["property_id", "_unit", "_key"])
    resolved["resident_id"] = ids.reindex(resolved.index)
    people = refs.residents["first_name"].fillna("") + " " + refs.residents["last_name"].fillna("")
    issues += _resolution_issues(
        resolved[todo],
        ids,
        count,
        labels,
        column="resident_name",
        what="resident",
        code=IssueCode.UNKNOWN_RESIDENT,
        mapping_file="residents",
        choices=people,
        source_file=source_file,
    )
    codes = refs.charge_codes
    resolved, found = _resolve_in_location(
        resolved,
        "charge_code",
        codes,
        [codes["name"]],
        refs.aliases.get("charge_codes"),
        norm=normalize_org,
        out_column="charge_code_id",
        what="charge code",
        code=IssueCode.UNKNOWN_CHARGE_CODE,
        mapping_file="charge_codes",
        source_file=source_file,
    )
    return resolved, issues + found


def transform_charges(
    validated: ValidateResult,
    refs: RefData,
    *,
    integration_id: str,
    source_file: str,
    period_start: date | None = None,
) -> TransformResult:
    """Resolve charge lines; negative lines become credits; every line gets a reference number."""
    resolved, issues = _resolve_charge_names(validated.valid, refs, source_file, period_start)
    # A rent-roll row is posted whole or not at all, like an invoice.
    bad = _bad_rows(issues)
    good = resolved[~resolved["source_row"].isin(bad)].copy() if bad else resolved
    if good.empty:
        return TransformResult(
            invoices=pd.DataFrame(columns=INVOICE_COLUMNS),
            charges=pd.DataFrame(columns=CHARGE_COLUMNS),
            issues=issues,
        )
    contents = _distinct_contents(good, _CHARGE_CONTENT)
    bits = reference_bits(good, integration_id, contents)
    derived = _reference_text(bits, good.index)
    given = good["reference_number"]
    all_derived = bool(given.isna().all())
    good["reference_number"] = derived if all_derived else given.fillna(derived)
    frame = charge_records(good, integration_id, source_file, contents)
    if all_derived:
        # A derived number is its top 50 bits, so equal keys are equal (kind, bits): no need
        # to hash a million strings to find them.
        credit = (good["amount_cents"].to_numpy(dtype=np.int64) < 0).astype(np.uint64)
        size = 5 * (REFERENCE_LENGTH - len(REFERENCE_PREFIX))
        same = (bits >> np.uint64(64 - size)) | (credit << np.uint64(size))
        dupes = duplicated_all(pd.Series(same, index=frame.index))
    else:
        dupes = duplicated_all(frame["record_key"])
    for record in frame[dupes].itertuples():
        issues.append(
            Issue(
                IssueCode.CONFLICT,
                f'reference number "{record.reference_number}" is used by more than '
                "one line of this file",
                source_file,
                record.source_rows[0],
                "reference number",
                str(record.reference_number),
            )
        )
    return TransformResult(
        invoices=pd.DataFrame(columns=INVOICE_COLUMNS),
        charges=frame[~dupes],
        issues=sorted(issues, key=lambda i: i.source_row),
    )


def json_escape(values: pd.Series) -> pd.Series:
    """Text as it goes between a JSON string's quotes (backslashes, quotes, control characters);
    only the values that need it are touched."""
    text = values.astype("str")
    special = text.str.contains(r'[\\"\x00-\x1f]', regex=True)
    if special.any():
        fixed = text[special].str.replace("\\", "\\\\", regex=False)
        fixed = fixed.str.replace('"', '\\"', regex=False)
        text = text.mask(special, fixed.str.replace(r"[\x00-\x1f]", " ", regex=True))
    return text


def json_strings(values: pd.Series) -> pd.Series:
    """Values as JSON string literals, vectorized."""
    return '"' + json_escape(values) + '"'


def _join(*parts: pd.Series | pa.ChunkedArray | str) -> pa.ChunkedArray:
    """Texts and text columns concatenated row by row, in one pass (by Arrow)."""
    arrays = [
        pa.scalar(p, pa.large_string())
        if isinstance(p, str)
        else (arrow_text(p) if isinstance(p, pd.Series) else p)
        for p in parts
    ]
    return pc.binary_join_element_wise(*arrays, pa.scalar("", pa.large_string()))


def _text(array: pa.ChunkedArray, index: pd.Index) -> pd.Series:
    return pd.Series(array.to_pandas(), dtype="str").set_axis(index)


def _choose(flags: np.ndarray, yes: str, no: str) -> pa.ChunkedArray:
    """One of two texts per row (taken from a two-entry dictionary, not built a million times)."""
    return pa.chunked_array([pa.array([no, yes], pa.large_string()).take(flags.astype(np.int8))])


def charge_records(
    good: pd.DataFrame,
    integration_id: str,
    source_file: str,
    contents: tuple[np.ndarray, pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """One record per resolved line: charges, and credits for negative lines, column-wise.

    No JSON is written here: the request body is built from the record's columns (resident,
    charge code, date, notes, amount, reference) when its batch is posted. ``content_hash`` is
    a 64-bit fingerprint (16 hex digits) of what the body says beyond the record key: the same
    key with another digest is a conflict."""
    amount = good["amount_cents"].to_numpy(dtype=np.int64)
    credit = amount < 0
    codes, contents_frame = contents or _distinct_contents(good, _CHARGE_CONTENT)
    dates = contents_frame["transaction_date"].astype("str")
    notes = contents_frame["notes"].astype("str")
    notes = notes.fillna(
        _text(_join(contents_frame["charge_code"], " ", dates.str.slice(0, 7)), notes.index)
    )
    # No JSON text per line: the body is built from these columns when its batch is posted
    # (pipelines.load.charge_body), at most a few hundred records a minute.
    reference = good["reference_number"].astype("str")
    reference_text = arrow_text(reference)
    # Kind, integration and reference are the record key, so the digest leaves them out.
    per_content = fingerprint64(
        [
            digest64(contents_frame["resident_id"]),
            digest64(contents_frame["charge_code_id"]),
            digest64(dates),
            digest64(notes),
        ]
    )
    digest = fingerprint64([int_part(np.abs(amount))], start=per_content[codes])
    kind = _choose(credit, "credit", "charge")
    frame = pd.DataFrame(
        {
            "record_key": _text(
                _join(kind, ":" + integration_id + ":", reference_text), good.index
            ),
            "kind": _text(kind, good.index),
            "integration_id": integration_id,
            "location_id": good["location_id"].astype("str"),
            "reference_number": reference,
            "amount_cents": pd.Series(amount, index=good.index),
            "content_hash": hex_column(digest).set_axis(good.index),
            "payload": None,
            "source_rows": row_lists(good["source_row"].to_numpy()).set_axis(good.index),
            "source_file": source_file,
            "resident_id": good["resident_id"].astype("str"),
            "charge_code_id": good["charge_code_id"].astype("str"),
            "transaction_date": good["transaction_date"].astype("str"),
            "property_id": good["property_id"].astype("str"),
            "charge_notes": _text(arrow_text(notes).take(pa.array(codes)), good.index),
        },
        columns=CHARGE_COLUMNS,
    )
    return frame.reset_index(drop=True)


def chunk_by_location(charges: pd.DataFrame, batch_size: int) -> list[pd.DataFrame]:
    """Charges grouped by (integration, RM location) and cut into batches of at most ``batch_size``.

    The batch endpoint refuses mixed locations, so no batch ever spans two.
    """
    batches: list[pd.DataFrame] = []
    for _, group in charges.groupby(["integration_id", "location_id"], sort=True):
        for start in range(0, len(group), batch_size):
            batches.append(group.iloc[start : start + batch_size])
    return batches
