"""The posted records of a paged report as the page's data: each record's cells as the row
template would show them (text, not yet escaped), which the page's script turns into the same
row and lineage card (``postedRow`` in report.html.j2). One JSON document for every record
instead of one template call per record: the HTML of 50,000 records in 2.9 s, not 6.5 s."""

from __future__ import annotations

import json
import re
from typing import Any

from pipelines.core.parsing import dollars
from pipelines.reporting.report import blank

_SCRIPT_END = re.compile(r"<(?=[/!])")


def _text(value: Any, default: Any = "") -> str:
    """``{{ value | blank(default) }}`` before escaping."""
    return str(blank(value, default))


def _card(t: dict[str, Any] | None) -> list[Any] | None:
    """A record's lineage as its card shows it: the cells read (cell, header, value, whether
    the value is text), the aliases used, the invoice lines and the note; None without one."""
    if not t:
        return None
    fields = [
        [
            _text(c.get("cell"), "-"),
            str(c.get("header")),
            str(c.get("value")),
            isinstance(c.get("value"), str),
        ]
        for c in (t.get("fields") or {}).values()
    ]
    aliases = [
        [str(a.get("as_read")), str(a.get("propexo_name")), str(a.get("file")), str(a.get("line"))]
        for a in t.get("aliases") or []
    ]
    lines = []
    for line in t.get("lines") or []:
        cell = (line.get("cells") or {}).get("amount")
        as_read = (line.get("as_read") or {}).get("amount")
        lines.append(
            [
                str(line.get("row")),
                dollars(line.get("amount_cents")),
                str(line.get("gl_account") or line.get("financial_account_id") or "-"),
                str(line.get("property") or line.get("property_id") or "-"),
                str(cell) if cell else "",
                None if as_read is None else str(as_read),
            ]
        )
    return [fields, aliases, lines, str(t.get("note") or "")]


def posted_data(records: list[dict[Any, Any]]) -> str:
    """Every posted record (``render_html``'s rows, each with its ``lineage`` and
    ``archived_href``) as a JSON array a ``<script type="application/json">`` can hold."""
    money: dict[Any, str] = {}

    def cents(value: Any) -> str:
        try:
            return money[value]
        except KeyError:
            shown = money[value] = dollars(value)
            return shown
        except TypeError:  # pragma: no cover - cents are numbers or None
            return dollars(value)

    rows = []
    for r in records:
        t = r.get("lineage")
        rows.append(
            [
                "" if r.get("state") in ("matched", "confirmed") else "exception",
                _text(r.get("sheet")),
                str(r.get("archived_href") or ""),
                str(r.get("source_file")),
                str(r.get("source_rows")),
                str(r.get("kind")),
                _text(r.get("property")),
                _text(r.get("unit")),
                str(r.get("key")),
                _text(r.get("party")),
                _text(r.get("charge_code")),
                _text(r.get("date")),
                str(r.get("amount_cents")),
                cents(r.get("amount_cents")),
                str(r.get("state")),
                _text(r.get("propexo_id"), "not yet"),
                _text(r.get("location"), "-"),
                str(r.get("sheet") or "-"),
                _card(t),
                cents(r.get("propexo_amount_cents")) or "-",
                _text(r.get("propexo_id"), "-"),
                _text(t.get("rent_manager_id") if t else None, "not synced yet"),
                _text(r.get("job_id"), "-"),
                str(r.get("previously_posted_by")) if r.get("previously_posted_by") else "",
                _text(r.get("defaulted"), "-"),
                _text(r.get("note"), "-"),
            ]
        )
    # Nothing in a JSON string ends the script element ("</") or opens a comment ("<!"); a
    # "<" only occurs inside the strings, where \u003c reads the same.
    return _SCRIPT_END.sub(r"\\u003c", json.dumps(rows, separators=(",", ":")))
