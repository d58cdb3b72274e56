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
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from pipelines.core.models import OPEN, Issue, IssueCode, OpenItem

# Names Propexo does not know: the alias kind (`tieout alias add KIND …`) of each code.
NAME_KINDS = {
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
    "refused_file": "files refused as a whole",
    "held_layout": "files held until a person confirms their layout",
    "awaiting_approval": "files awaiting approval before posting",
    "in_doubt": "records in doubt",
    "write_refused": "writes Propexo refused",
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
        "refused_file",
    }
)
# The causes `tieout retry` (and a file dropped again) can settle by reading the file again.
RETRYABLE = FILE_CAUSES | {"awaiting_approval", "held_layout"}


def item_id(cause: str, file_sha256: str | None, what: object) -> str:
    """Stable: the same exception met again (a retry, the same file dropped again) is the same
    item. ``what`` is the row number, the name, or the record key."""
    text = f"{cause}|{file_sha256 or ''}|{what}"
    return "it-" + hashlib.sha256(text.encode()).hexdigest()[:12]


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
) -> list[OpenItem]:
    """A file's exceptions as items: a row that changes a posted record is a conflict; a row
    with any problem besides an unknown name is a rejected row (all its reasons); the other rows
    belong to the item of each unknown name they hold (one per distinct name)."""
    cents_by_row = cents_by_row or {}
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
        if IssueCode.CONFLICT in codes:
            items.append(
                new_item(
                    "conflict",
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
                    },
                )
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
                },
            )
        )
    return items


def record_items(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Records in doubt and writes Propexo refused, as items. Their state is the record's
    own (its events are the ledger's events): settled when `reconcile` or `resolve` settles
    the record. (A refused write made re-sendable is `tieout retry`'s to send: the hook.)"""
    out = []
    for record in records:
        state = str(record["state"])
        cause = {"failed": "write_refused", "held": "held"}.get(state, "in_doubt")
        another = [e for e in _errors(record.get("errors")) if e.startswith(ANOTHER_WRITE)]
        if cause == "in_doubt" and another:
            cause = "answer_for_another_write"
        rows = record.get("source_rows") or []
        if isinstance(rows, str):
            rows = json.loads(rows or "[]")
        out.append(
            {
                "item_id": item_id(cause, record.get("file_sha256"), record["record_key"]),
                "cause": cause,
                "file_sha256": record.get("file_sha256"),
                "file_name": record.get("source_file"),
                "rows": [int(r) for r in rows],
                "amount_cents": int(record.get("amount_cents") or 0),
                "amount_text": None,
                "detail": {
                    "record_key": record["record_key"],
                    "state": state,
                    "reasons": [str(record.get("note") or state), *another],
                },
                "first_seen": record.get("sent_at"),
                "last_seen": record.get("updated_at"),
                "state": OPEN,
            }
        )
    return out


ANOTHER_WRITE = "answer for another write"  # posting.load's words for such an answer


def _errors(value: Any) -> list[str]:
    """A record's ``errors`` as read from the ledger (a list, or its JSON text)."""
    if isinstance(value, str):
        try:
            value = json.loads(value or "[]")
        except ValueError:
            return [value]
    return [str(e) for e in value] if isinstance(value, list) else []


def _reasons(issues: list[Issue]) -> list[str]:
    return list(dict.fromkeys(i.message for i in issues))


def quoted(text: str) -> str:
    """A shell word in double quotes, as a person would type it."""
    return '"' + re.sub(r'(["\\$`])', r"\\\1", text) + '"'


def settle_command(item: Mapping[str, Any], inbox: str) -> tuple[str, str | None]:
    """The one command that settles an item, and what to run after it (or None)."""
    cause = str(item["cause"])
    detail = item.get("detail") or {}
    file_name = str(item.get("file_name") or "")
    retry = f"tieout retry {quoted(file_name)}" if file_name else None
    if cause.startswith("unknown_") or cause == "ambiguous_name":
        target = detail.get("suggestion") or "<the name in Propexo>"
        kind = detail.get("kind") or cause.removeprefix("unknown_")
        return (
            f"tieout alias add {kind} {quoted(str(detail.get('name', '')))} {quoted(target)}",
            retry,
        )
    if cause == "rejected_row":
        rows = ", ".join(str(r) for r in item.get("rows") or ())
        return (f"correct row {rows} of {file_name} and drop the file into {inbox}", None)
    if cause == "refused_file":
        return (f"correct {file_name} and drop it into {inbox} again", None)
    if cause == "held_layout":
        return (f"tieout layout accept {quoted(file_name)}", retry)
    if cause == "awaiting_approval":
        return (f"tieout approve {quoted(file_name)} --by NAME", None)
    if cause in ("in_doubt", "answer_for_another_write"):
        key = str(detail.get("record_key", "KEY"))
        return ("tieout reconcile", f"tieout resolve {key} --present|--absent")
    if cause == "held":
        key = str(detail.get("record_key", "KEY"))
        return ("tieout run", f"if still held, tieout resolve {key} --present|--absent")
    # A conflict, a refused write: a person decides (after correcting Rent Manager).
    return (f'tieout settle {item["item_id"]} --by NAME --note "what was done"', None)


def todo_lines(items: list[dict[str, Any]], inbox: str) -> list[str]:
    """`tieout todo`: one line per cause (items, rows, amount), then each item with the
    command that settles it, then the total at stake."""
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
            command, then = settle_command(item, inbox)
            what = _what(item)
            lines.append(f"  {what}: {command}" + (f", then {then}" if then else ""))
    total = sum(int(i.get("amount_cents") or 0) for i in items)
    lines.append(f"open: {len(items)} items, {dollars(total)} at stake (`tieout todo`)")
    return lines


def _place(item: Mapping[str, Any]) -> tuple[str, int]:
    """Where an item is: its file, then its first row (the order a person reads them in)."""
    rows = list(item.get("rows") or [0])
    return (str(item.get("file_name") or ""), int(rows[0]))


def _what(item: Mapping[str, Any]) -> str:
    detail = item.get("detail") or {}
    rows = ", ".join(str(r) for r in item.get("rows") or ())
    where = f"{item.get('file_name') or ''}" + (f" row {rows}" if rows else "")
    if detail.get("name"):
        return f'"{detail["name"]}" ({where})'
    if item.get("amount_text"):
        return f"{where} ({item['amount_text']})"
    return where


def todo_json(items: list[dict[str, Any]], inbox: str) -> dict[str, Any]:
    """`tieout todo --json`: ``{items: [{id, cause, file, rows, amount_cents, command}],
    amount_cents}``."""
    out = []
    for item in items:
        command, then = settle_command(item, inbox)
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
