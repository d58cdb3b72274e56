"""Rent rolls → charges and credits: residents and charge codes resolved, reference numbers."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import numpy as np
import pandas as pd

from pipelines.core.columns import charge_code_name, duplicated_all, group_codes, spread
from pipelines.core.kind import KindContext
from pipelines.core.models import Issue, IssueCode, TransformResult, ValidateResult, whole
from pipelines.kinds.charge.payloads import (
    CHARGE_COLUMNS,
    CHARGE_CONTENT,
    distinct_contents,
    encode_charges,
)
from pipelines.kinds.charge.references import (
    REFERENCE_LENGTH,
    REFERENCE_PREFIX,
    reference_bits,
    reference_text,
)
from pipelines.kinds.charge.schemas import ResolvedCharge
from pipelines.resolving.refs import RefData
from pipelines.resolving.transform import (
    bad_rows,
    normalize_org,
    resolve_named,
    resolve_properties,
    resolve_residents,
)
from schemas import conforms

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
    """A charge line's names: its property, its resident (in that property's unit) and its
    charge code (in the property's location), each by the shared resolvers."""
    resolved, issues = resolve_properties(names, refs, source_file)
    resolved, found = resolve_residents(resolved, refs, source_file, period_start)
    issues += found
    codes = refs.charge_codes
    resolved = resolved.assign(
        charge_code=plain_charge_names(
            resolved["charge_code"], codes["name"], refs.aliases.get("charge_codes")
        )
    )
    resolved, found = resolve_named(resolved, "charge_code", "charge_code", refs, source_file)
    return resolved, issues + found


def transform_charges(
    lines: ValidateResult, refs: RefData, ctx: KindContext, source_file: str, period: date | None
) -> TransformResult:
    """Resolve charge lines (residents by the leases current in ``period``); negative lines
    become credits; every line gets a reference number."""
    integration_id, period_start = ctx.integration_id, period
    resolved, issues = _resolve_charge_names(lines.valid, refs, source_file, period_start)
    # A rent-roll row is posted whole or not at all, like an invoice.
    bad = bad_rows(issues)
    good = resolved[~resolved["source_row"].isin(bad)].copy() if bad else resolved
    conforms(ResolvedCharge, good, "resolved charge lines")
    if good.empty:
        return TransformResult(records=pd.DataFrame(columns=CHARGE_COLUMNS), issues=issues)
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
    return TransformResult(records=frame[~dupes], issues=sorted(issues, key=lambda i: i.source_row))
