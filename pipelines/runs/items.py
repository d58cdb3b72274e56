"""Open items: every exception a run meets stays an item until it is settled (#27).

An item is one thing a person must act on: a rejected row, a name Propexo does not know (one
item per distinct name, with all its rows), a conflict, a refused file, a held layout, a file
awaiting approval. Its id is derived from what it is (cause, file content, row or name), so the
same exception met again is the same item. Its state is the ledger's events: open → settled
(by a later run's posting, or by a person's decision) or superseded (by a corrected file).

Pure: items built from a file's issues, grouped for `tieout todo`, each with the command that
settles it (an item and its states: :class:`pipelines.core.models.OpenItem`). The ledger keeps
them (:class:`pipelines.ledger.items.ItemStore`).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any

import pandas as pd

from pipelines.core.models import Issue, IssueCode, OpenItem
from pipelines.core.parsing import parse_money
from pipelines.ledger.items import item_id  # the ledger's: records' items are made there too

# Names Propexo does not know: the alias kind (`tieout alias add KIND …`) of each code.
NAME_KINDS: dict[StrEnum, str] = {
    IssueCode.UNKNOWN_VENDOR: "vendor",
    IssueCode.UNKNOWN_PROPERTY: "property",
    IssueCode.UNKNOWN_GL_ACCOUNT: "gl_account",
    IssueCode.UNKNOWN_CHARGE_CODE: "charge_code",
    IssueCode.UNKNOWN_RESIDENT: "resident",
}

# What each cause is called, in the order `tieout todo` lists them.
CAUSES = {
    "unknown_vendor": "vendors Propexo does not know",
    "unknown_property": "properties Propexo does not know",
    "unknown_gl_account": "GL accounts Propexo does not know",
    "unknown_charge_code": "charge codes Propexo does not know",
    "unknown_resident": "residents Propexo does not know",
    "ambiguous_name": "names that match more than one Propexo record",
    "rejected_row": "rows rejected for what they hold",
    "conflict": "rows that change what was posted before (conflicts)",
    "second_charge": "lines identical to one posted from another file (a second one?)",
    "refused_file": "files refused as a whole",
    "held_layout": "files held until a person confirms their layout",
    "awaiting_approval": "files awaiting approval before posting",
    "in_doubt": "records in doubt",
    "write_refused": "writes Propexo refused",
    "write_failed": "writes Propexo says failed (its data or write log will tell)",
    "refused_link": "links in the inbox refused (what they point at is not read)",
    "empty_file": "empty files left in the inbox",
    "held": "records held: their absence from Propexo is not proven (never sent)",
    "answer_for_another_write": "records whose answer was another write's (in doubt)",
}
# The causes a file's own pass decides: met again → still open; not met → settled by that run.
FILE_CAUSES = frozenset(
    {
        "unknown_vendor",
        "unknown_property",
        "unknown_gl_account",
        "unknown_charge_code",
        "unknown_resident",
        "ambiguous_name",
        "rejected_row",
        "conflict",
        "second_charge",
        "refused_file",
        "held_layout",
    }
)
# The causes `tieout retry` (and a file dropped again) can settle by reading the file again.
RETRYABLE = FILE_CAUSES | {"awaiting_approval"}
# Held files lie in the inbox, not in the archive: the next run takes them, not a retry.
IN_INBOX = frozenset({"held_layout", "awaiting_approval"})
# What the inbox itself holds that no run can take: met again, still open; gone, settled.
INBOX_CAUSES = frozenset({"refused_link", "empty_file"})


def new_item(
    cause: str,
    file_sha256: str | None,
    file_name: str | None,
    what: object,
    **fields: Any,
) -> OpenItem:
    """An item of any cause (a new cause is one call: its detail is free-form JSON)."""
    return OpenItem(item_id(cause, file_sha256, what), cause, file_sha256, file_name, **fields)


_SUGGESTED = re.compile(r"""did you mean ('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")""")


def suggestion_in(message: str) -> str | None:
    """The first name a resolution message suggests ("did you mean 'X', 'Y'?" → X)."""
    found = _SUGGESTED.search(message)
    if found is None:
        return None
    value = ast.literal_eval(found.group(1))
    return str(value) if value else None


def file_items(
    file_name: str,
    file_sha256: str,
    issues: Iterable[Issue],
    *,
    sheet: str | None = None,
    cents_by_row: Mapping[int, int] | None = None,
    amounts_as_shown: Mapping[int, str] | None = None,
    cells_by_row: Mapping[int, Mapping[str, Any]] | None = None,
    implied_by_row: Mapping[int, Mapping[str, Any]] | None = None,
) -> list[OpenItem]:
    """A file's exceptions as items: a row that changes a posted record is a conflict; a row
    with any problem besides an unknown name is a rejected row (all its reasons); the other rows
    belong to the item of each unknown name they hold (one per distinct name).

    ``implied_by_row``: a row whose amount cannot be read, under a total row of the file: the
    amount that total implies for it (:func:`implied_amounts`), its item's amount."""
    implied_by_row = implied_by_row or {}
    cents_by_row = {
        **{r: int(i["amount_cents"]) for r, i in implied_by_row.items()},
        **(cents_by_row or {}),
    }
    amounts_as_shown = amounts_as_shown or {}
    cells_by_row = cells_by_row or {}
    by_row: dict[int, list[Issue]] = {}
    for issue in issues:
        by_row.setdefault(issue.source_row, []).append(issue)
    items: list[OpenItem] = []
    names: dict[tuple[str, str], dict[str, Any]] = {}
    for row, found in sorted(by_row.items()):
        codes = {i.code for i in found}
        base = {
            "sheet": sheet,
            "amount_cents": int(cents_by_row.get(row, 0)),
            "amount_text": amounts_as_shown.get(row),
        }
        held = codes & {IssueCode.CONFLICT, IssueCode.SECOND_CHARGE}
        if held:
            cause = "conflict" if IssueCode.CONFLICT in held else "second_charge"
            # A roll's row holds several lines: what is held is the lines in question.
            lines = _line_cents([i for i in found if i.code in held])
            if lines is not None:
                base["amount_cents"] = lines
            items.append(
                new_item(
                    cause,
                    file_sha256,
                    file_name,
                    row,
                    rows=(row,),
                    detail={"reasons": _reasons(found)},
                    **base,
                )
            )
        elif codes - set(NAME_KINDS) - {IssueCode.AMBIGUOUS} or row < 0:
            items.append(
                new_item(
                    "rejected_row",
                    file_sha256,
                    file_name,
                    row,
                    rows=(row,),
                    detail={
                        "reasons": _reasons(found),
                        "codes": sorted(c.value for c in codes),
                        "cells": {str(k): str(v) for k, v in cells_by_row.get(row, {}).items()},
                        **({"implied": dict(implied_by_row[row])} if row in implied_by_row else {}),
                    },
                    **base,
                )
            )
        else:
            for issue in found:
                kind = NAME_KINDS.get(issue.code) or str(issue.column or "name")
                cause = (
                    "ambiguous_name"
                    if issue.code == IssueCode.AMBIGUOUS
                    else f"unknown_{NAME_KINDS[issue.code]}"
                )
                name = str(issue.value or "")
                entry = names.setdefault(
                    (cause, name),
                    {
                        "kind": kind.replace(" ", "_"),
                        "name": name,
                        "rows": [],
                        "cents": 0,
                        "suggestion": suggestion_in(issue.message),
                        "reason": issue.message,
                        "places": [],
                    },
                )
                if issue.place is not None and list(issue.place) not in entry["places"]:
                    entry["places"].append(list(issue.place))
                if row not in entry["rows"]:
                    entry["rows"].append(row)
                    entry["cents"] += int(cents_by_row.get(row, 0))
    for (cause, name), entry in names.items():
        items.append(
            new_item(
                cause,
                file_sha256,
                file_name,
                name,
                rows=tuple(entry["rows"]),
                amount_cents=entry["cents"],
                sheet=sheet,
                detail={
                    "kind": entry["kind"],
                    "name": name,
                    "suggestion": entry["suggestion"],
                    "reasons": [entry["reason"]],
                    **({"places": entry["places"]} if entry["places"] else {}),
                },
            )
        )
    return items


def implied_amounts(file_totals: Iterable[Mapping[str, Any]]) -> dict[int, dict[str, Any]]:
    """Rows whose amount cannot be read, under a total row of the file: what that total implies
    for them (its stated amount less what its readable lines add up to). One such row carries
    the whole rest; several share it, the first row carrying it (the others name that row), so
    the amounts at stake add up to the rest once."""
    implied: dict[int, dict[str, Any]] = {}
    for total in file_totals:
        if total.get("checked", True) or not total.get("unreadable"):
            continue
        rest = int(total["stated_cents"]) - int(total["computed_cents"])
        shown = [int(u["source_row"]) for u in total["unreadable"]]
        for n, row in enumerate(shown):
            if row in implied:
                continue
            implied[row] = {
                "amount_cents": rest if n == 0 else 0,
                "total_row": int(total["source_row"]),
                "stated_cents": int(total["stated_cents"]),
                "readable_cents": int(total["computed_cents"]),
                "rows": shown,
                "rows_unreadable": int(total.get("unreadable_rows") or len(shown)),
            }
    return implied


def _line_cents(issues: list[Issue]) -> int | None:
    """The amounts of the lines a row's conflicts hold back (their ``amount`` values), or
    None when they name none (an invoice's line is its row)."""
    amounts = [i.value for i in issues if i.column == "amount" and i.value]
    if not amounts:
        return None
    cents, _ = parse_money(pd.Series(amounts, dtype=object))
    return int(cents.fillna(0).abs().sum())


def _reasons(issues: list[Issue]) -> list[str]:
    return list(dict.fromkeys(i.message for i in issues))


def quoted(text: str) -> str:
    """A shell word in double quotes, as a person would type it."""
    return '"' + re.sub(r'(["\\$`])', r"\\\1", text) + '"'


def settle_command(
    item: Mapping[str, Any], inbox: str, tieout: str = "tieout"
) -> tuple[str, str | None]:
    """The one command that settles an item, and what to run after it (or None). ``tieout``:
    the command as the person runs it (with ``--data-dir`` when theirs is not the default), so
    that each command works as printed."""
    cause = str(item["cause"])
    detail = item.get("detail") or {}
    file_name = str(item.get("file_name") or "")
    path = str(detail.get("path") or "")
    retry = f"{tieout} retry {quoted(file_name)}" if file_name else None
    settle = f'{tieout} settle {item["item_id"]} --by NAME --note "what was done"'
    if cause.startswith("unknown_") or cause == "ambiguous_name":
        target = detail.get("suggestion") or "<the name in Propexo>"
        kind = detail.get("kind") or cause.removeprefix("unknown_")
        return (
            f"{tieout} alias add {kind} {quoted(str(detail.get('name', '')))} {quoted(target)}",
            retry,
        )
    if cause == "rejected_row":
        rows = ", ".join(str(r) for r in item.get("rows") or ())
        if set(detail.get("codes") or ()) == {IssueCode.INCONSISTENT_INVOICE.value}:
            # Nothing is wrong in the row itself: it goes with its invoice's rejected line.
            return (
                f"nothing to correct in row {rows}: it is held back with the rejected line of "
                "its invoice, and posts with it once that line is settled",
                retry,
            )
        return (f"correct row {rows} of {file_name} and drop the file into {inbox}", None)
    if cause == "refused_file":
        if detail.get("fix"):  # tieout knows the one command (an alias): then read it again
            return (str(detail["fix"]), retry)
        return (f"correct {path or file_name} and drop it into {inbox} again", None)
    if cause == "held_layout":
        accept = detail.get("command") or f"{tieout} layout accept {quoted(path or file_name)}"
        return (str(accept), f"{tieout} run")
    if cause == "awaiting_approval":
        return (f"{tieout} approve {quoted(file_name)} --by NAME", None)
    if cause in ("in_doubt", "answer_for_another_write"):
        key = str(detail.get("record_key", "KEY"))
        resolve = f"{tieout} resolve {quoted(key)}"
        return (
            f"{tieout} reconcile",
            f"if it stays in doubt, look in Rent Manager: {resolve} --present if it is there, "
            f"or {resolve} --absent if it is not",
        )
    if cause == "held":
        # Never sent: its absence from Propexo is not proven yet. Each run looks again.
        key = str(detail.get("record_key", "KEY"))
        resolve = f"{tieout} resolve {quoted(key)}"
        return (
            f"{tieout} run",
            f"if it stays held, look in Rent Manager: {resolve} --present if it is there, "
            f"or {resolve} --absent if it is not",
        )
    if cause == "write_failed":
        # A PMS may apply a write Propexo calls failed: reconcile looks for it in Propexo's
        # data first; only what it does not find is a person's to settle.
        return (f"{tieout} reconcile", settle)
    if cause == "write_refused":
        key = str(detail.get("record_key", "KEY"))
        return (f"{tieout} resolve {quoted(key)} --send-again", f"{tieout} run")
    if cause == "refused_link":
        # The link replaced by a copy of what it points at (a file of its own, in the inbox).
        at = quoted(path)
        copy = quoted(f"{path}.part")  # a name the inbox leaves alone
        return (f"cp -L {at} {copy} && mv {copy} {at}", f"{tieout} run")
    if cause == "empty_file":
        return (f"rm {quoted(path)}", f"{tieout} run")
    # A conflict, a write reported failed: a person decides (after looking in Rent Manager).
    return (settle, None)


def todo_lines(items: list[dict[str, Any]], inbox: str, tieout: str = "tieout") -> list[str]:
    """`tieout todo`: one line per cause (items, rows, amount), then each item with its id
    (for `tieout settle ID`) and the command that settles it, then the total at stake."""
    from pipelines.core.parsing import dollars

    if not items:
        return ["nothing open: every exception is settled"]
    lines: list[str] = []
    order = {cause: n for n, cause in enumerate(CAUSES)}
    groups: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        groups.setdefault(str(item["cause"]), []).append(item)
    for cause in sorted(groups, key=lambda c: (order.get(c, len(order)), c)):
        group = groups[cause]
        rows = sum(len(i.get("rows") or ()) for i in group)
        cents = sum(int(i.get("amount_cents") or 0) for i in group)
        lines.append(f"{CAUSES.get(cause, cause)}: {len(group)} ({rows} rows, {dollars(cents)})")
        for item in sorted(group, key=_place):
            command, then = settle_command(item, inbox, tieout)
            what = _what(item)
            lines.append(
                f"  {item['item_id']} {what}: {command}" + (f", then {then}" if then else "")
            )
    total = sum(int(i.get("amount_cents") or 0) for i in items)
    lines.append(f"open: {len(items)} items, {dollars(total)} at stake (`{tieout} todo`)")
    return lines


def _place(item: Mapping[str, Any]) -> tuple[str, int]:
    """Where an item is: its file, then its first row (the order a person reads them in)."""
    rows = list(item.get("rows") or [0])
    return (str(item.get("file_name") or ""), int(rows[0]))


def _what(item: Mapping[str, Any]) -> str:
    from pipelines.core.parsing import dollars

    detail = item.get("detail") or {}
    rows = ", ".join(str(r) for r in item.get("rows") or ())
    where = f"{item.get('file_name') or ''}" + (f" row {rows}" if rows else "")
    if detail.get("name"):
        return f'"{detail["name"]}" ({where})'
    implied = detail.get("implied")
    if item.get("amount_text") and implied:
        return (
            f"{where} ({item['amount_text']}; its total row {implied['total_row']} says "
            f"{dollars(int(implied['stated_cents']))}, its readable lines "
            f"{dollars(int(implied['readable_cents']))})"
        )
    reasons = detail.get("reasons") or []
    if item.get("cause") in ("conflict", "second_charge") and reasons:
        # What changed, in the line's own amounts ("this line was $1,126.59, now $1,150.00").
        return f"{where} ({str(reasons[0]).split('. ')[0]})"
    if item.get("amount_text"):
        return f"{where} ({item['amount_text']})"
    if detail.get("reason"):
        return f"{where} ({detail['reason']})"
    return where


def todo_json(items: list[dict[str, Any]], inbox: str, tieout: str = "tieout") -> dict[str, Any]:
    """`tieout todo --json`: ``{items: [{id, cause, file, rows, amount_cents, command}],
    amount_cents}``."""
    out = []
    for item in items:
        command, then = settle_command(item, inbox, tieout)
        out.append(
            {
                "id": item["item_id"],
                "cause": item["cause"],
                "file": item.get("file_name"),
                "sha256": item.get("file_sha256"),
                "rows": list(item.get("rows") or ()),
                "amount_cents": int(item.get("amount_cents") or 0),
                "amount_text": item.get("amount_text"),
                "command": command,
                "then": then,
                "first_seen": item.get("first_seen"),
                "last_seen": item.get("last_seen"),
                "detail": dict(item.get("detail") or {}),
            }
        )
    return {"items": out, "amount_cents": sum(i["amount_cents"] for i in out)}
