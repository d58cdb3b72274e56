"""Transform: names → Propexo IDs, bill lines → invoices, charge lines → charges and credits.

Pure functions over frames. Resolution is a merge against lookup frames built from
:class:`~pipelines.resolving.refs.RefData`: a normalized exact match, after staff aliases are
applied. It never guesses: no match is a rejected row with the closest candidates as
suggestions, and two matches are rejected as ambiguous.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
from rapidfuzz import fuzz, process

from pipelines.core.columns import (
    charge_code_name,
    distinct,
    duplicated_all,
    group_codes,
    per_distinct,
    spread,
)
from pipelines.core.models import Issue, IssueCode, TransformResult, ValidateResult, whole
from pipelines.posting.payloads import (
    CHARGE_COLUMNS,
    CHARGE_CONTENT,
    INVOICE_COLUMNS,
    distinct_contents,
    encode_charges,
    encode_invoice,
)
from pipelines.resolving.hints import AliasHints
from pipelines.resolving.references import (
    REFERENCE_LENGTH,
    REFERENCE_PREFIX,
    reference_bits,
    reference_text,
)
from pipelines.resolving.refs import RefData
from schemas import conforms
from schemas.charges import ResolvedCharge
from schemas.vendor_bill import ResolvedBillLine

_ORG_SUFFIXES = r"\b(llc|l l c|inc|incorporated|co|company|corp|corporation|ltd|lp|pllc)\b"


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
    kind: str,
    choices: pd.Series,
    source_file: str,
    hints: AliasHints,
    scope: pd.Series | None = None,
) -> list[Issue]:
    """One issue per row whose name did not resolve; ``kind`` is the alias kind
    (``tieout alias add KIND``) that would fix it."""
    issues: list[Issue] = []
    for index in frame.index[ids.isna()]:
        value = str(frame.at[index, column])
        row = whole(frame.at[index, "source_row"])
        if count[index] > 1:
            issues.append(
                Issue(
                    IssueCode.AMBIGUOUS,
                    f'{what} "{value}" matches more than one Propexo record '
                    f"({labels[index]}); {hints.ambiguous(kind, value)}",
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
        hint = f"; did you mean {', '.join(repr(o) for o in options)}?" if options else "."
        issues.append(
            Issue(
                code,
                f'{what} "{value}" is not known to Propexo{hint} '
                + hints.unknown(kind, value, options[0] if options else None),
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
        kind="property",
        choices=props["name"],
        source_file=source_file,
        hints=refs.hints,
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
    kind: str,
    source_file: str,
    hints: AliasHints,
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
        kind=kind,
        choices=choices,
        source_file=source_file,
        hints=hints,
    )
    return out, issues


def _bad_rows(issues: list[Issue]) -> set[int]:
    return {i.source_row for i in issues}


# --- vendor bills → invoices --------------------------------------------------------------------


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
        kind="vendor",
        source_file=source_file,
        hints=refs.hints,
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
        kind="gl_account",
        source_file=source_file,
        hints=refs.hints,
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
        row = whole(resolved.at[index, "source_row"])
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
    conforms(ResolvedBillLine, good, "resolved bill lines")

    invoices: list[dict[str, Any]] = []
    for _, group in good.groupby("_inv", sort=False):
        first = group.iloc[0]
        line_rows = [whole(r) for r in group["source_row"]]
        problem = _invoice_problem(group)
        if problem:
            code, message = problem
            issues += [
                Issue(code, message, source_file, r, "invoice number", str(first["invoice_number"]))
                for r in line_rows
            ]
            continue
        invoices.append(encode_invoice(group, integration_id, source_file, due_days_default))
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


# --- rent rolls → charges and credits -----------------------------------------------------------


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


def plain_charge_names(
    values: pd.Series, code_names: pd.Series, aliases: pd.DataFrame | None
) -> pd.Series:
    """A charge column's header that is neither a charge code's name nor an alias, but whose
    plain name is a code's ("Monthly Rent" → "Rent", "REV: Parking" → "Parking"): that name.
    An alias in charge_codes.csv always wins; any other header is kept as written."""
    known = set(normalize_org(code_names.dropna().astype(str)))
    if aliases is not None and not aliases.empty:
        known |= set(normalize_org(aliases["spreadsheet_name"].astype(str)))
    distinct = pd.Series(values.dropna().astype(str).unique(), dtype=object)
    if distinct.empty:
        return values
    plain = distinct.map(charge_code_name)
    taken = ~normalize_org(distinct).isin(known) & normalize_org(plain).isin(known)
    table = dict(zip(distinct[taken], plain[taken], strict=True))
    return values.map(lambda v: table.get(str(v), v) if isinstance(v, str) else v)


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
        kind="resident",
        choices=people,
        source_file=source_file,
        hints=refs.hints,
    )
    codes = refs.charge_codes
    resolved = resolved.assign(
        charge_code=plain_charge_names(
            resolved["charge_code"], codes["name"], refs.aliases.get("charge_codes")
        )
    )
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
        kind="charge_code",
        source_file=source_file,
        hints=refs.hints,
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
    conforms(ResolvedCharge, good, "resolved charge lines")
    if good.empty:
        return TransformResult(
            invoices=pd.DataFrame(columns=INVOICE_COLUMNS),
            charges=pd.DataFrame(columns=CHARGE_COLUMNS),
            issues=issues,
        )
    contents = distinct_contents(good, CHARGE_CONTENT)
    bits = reference_bits(good, integration_id, contents)
    derived = reference_text(bits, good.index)
    given = good["reference_number"]
    all_derived = bool(given.isna().all())
    good["reference_number"] = derived if all_derived else given.fillna(derived)
    frame = encode_charges(good, integration_id, source_file, contents)
    if all_derived:
        # A derived number is its top 50 bits, so equal keys are equal (kind, bits): no need
        # to hash a million strings to find them.
        credit = (good["amount_cents"].to_numpy(dtype=np.int64) < 0).astype(np.uint64)
        size = 5 * (REFERENCE_LENGTH - len(REFERENCE_PREFIX))
        same = (bits >> np.uint64(64 - size)) | (credit << np.uint64(size))
        dupes = duplicated_all(pd.Series(same, index=frame.index))
    else:
        dupes = duplicated_all(frame["record_key"])
    for reference, rows in zip(
        frame.loc[dupes, "reference_number"], frame.loc[dupes, "source_rows"], strict=True
    ):
        issues.append(
            Issue(
                IssueCode.CONFLICT,
                f'reference number "{reference}" is used by more than one line of this file',
                source_file,
                whole(rows[0]),
                "reference number",
                str(reference),
            )
        )
    return TransformResult(
        invoices=pd.DataFrame(columns=INVOICE_COLUMNS),
        charges=frame[~dupes],
        issues=sorted(issues, key=lambda i: i.source_row),
    )


# --- Propexo's names, as an alias's target is matched ---------------------------------------------

# How each kind of alias compares names: as the resolvers above do.
ALIAS_NORMS: dict[str, Any] = {
    "vendor": normalize_org,
    "property": normalize_org,
    "gl_account": _basic,
    "charge_code": normalize_org,
    "resident": normalize_person,
}


def propexo_names(refs: RefData, kind: str) -> pd.DataFrame:
    """Every name of one alias kind that Propexo answers to (``_key`` as the resolvers compare
    it) with the name tieout shows for it (``label``; a resident's "First Last")."""
    norm = ALIAS_NORMS[kind]
    if kind == "vendor":
        frames = [(refs.vendors["name"], refs.vendors["name"])]
    elif kind == "property":
        props = refs.properties
        frames = [(props["name"], props["name"]), (props["code"], props["name"])]
    elif kind == "charge_code":
        frames = [(refs.charge_codes["name"], refs.charge_codes["name"])]
    elif kind == "gl_account":
        gl = refs.financial_accounts
        both = gl["account_number"].astype(str) + " " + gl["name"]
        frames = [(gl["account_number"], gl["name"]), (gl["name"], gl["name"]), (both, gl["name"])]
    else:
        people = refs.residents
        name = people["first_name"].fillna("") + " " + people["last_name"].fillna("")
        frames = [(name.str.strip(), name.str.strip())]
    names = pd.concat(
        [pd.DataFrame({"name": n.astype(object), "label": label}) for n, label in frames],
        ignore_index=True,
    ).dropna()
    names["_key"] = norm(names["name"].astype(str)).astype(object)
    names = names[names["_key"].ne("") & names["label"].astype(str).str.strip().ne("")]
    return names[["_key", "label"]].drop_duplicates().reset_index(drop=True)
