"""Vendor bills → invoices: names resolved, lines grouped into one invoice per (vendor, number)."""

from __future__ import annotations

from datetime import date
from typing import Any

import pandas as pd

from pipelines.core.kind import KindContext
from pipelines.core.models import Issue, IssueCode, TransformResult, ValidateResult, whole
from pipelines.kinds.invoice.payloads import INVOICE_COLUMNS, encode_invoice
from pipelines.kinds.invoice.schemas import ResolvedBillLine
from pipelines.resolving.refs import RefData
from pipelines.resolving.transform import (
    bad_rows,
    normalize_org,
    resolve_named,
    resolve_properties,
)
from schemas import conforms


def transform_bills(
    lines: ValidateResult, refs: RefData, ctx: KindContext, source_file: str, period: date | None
) -> TransformResult:
    """Resolve bill lines and group them into one invoice per (vendor, invoice number) (bills
    carry their own dates: ``period`` is not used)."""
    integration_id, due_days_default = ctx.integration_id, ctx.due_days_default
    resolved, issues = resolve_properties(lines.valid, refs, source_file)
    for column, alias_kind in (("vendor_name", "vendor"), ("gl_account", "gl_account")):
        resolved, found = resolve_named(resolved, column, alias_kind, refs, source_file)
        issues += found

    # An invoice is posted whole or not at all: one bad line holds back every line with the same
    # invoice number (even under another spelling of the vendor, which may be the bad part).
    every = lines.lines.assign(_number=lines.lines["invoice_number"].fillna(""))
    bad = bad_rows(issues) | bad_rows(lines.issues)
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
    return TransformResult(records=frame, issues=sorted(issues, key=lambda i: i.source_row))


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
