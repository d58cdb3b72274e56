"""Vendor bills → invoices: names resolved, lines grouped into one invoice per (vendor, number)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from pipelines.core.models import Issue, IssueCode, TransformResult, ValidateResult, whole
from pipelines.kinds.charge.payloads import CHARGE_COLUMNS
from pipelines.kinds.invoice.payloads import INVOICE_COLUMNS, encode_invoice
from pipelines.kinds.invoice.schemas import ResolvedBillLine
from pipelines.resolving.refs import RefData
from pipelines.resolving.transform import (
    bad_rows,
    normalize_org,
    normalize_text,
    resolve_in_location,
    resolve_properties,
)
from schemas import conforms


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
    resolved, found = resolve_in_location(
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
    resolved, found = resolve_in_location(
        resolved,
        "gl_account",
        gl,
        [gl["account_number"], gl["name"], gl["account_number"].astype(str) + " " + gl["name"]],
        refs.aliases.get("gl_accounts"),
        norm=normalize_text,
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
    bad = bad_rows(issues) | bad_rows(validated.issues)
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
    good = resolved[~resolved["source_row"].isin(bad_rows(issues))]
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
