"""Report: the audit trail of a run, built from the ledger by pure functions.

``build_report`` turns ledger frames into a :class:`RunReport`; the ``render_*`` functions turn
that into bytes (HTML, XLSX, JSON, CSV). Writing the files is the caller's job.

Control totals that must tie out:

* per file: ``source_total = posted + pending + rejected + previously_posted`` (pending being
  anything not yet confirmed: in doubt, failed, submitted, conflicting);
* per location and per run:
  ``posted = matched + awaiting_sync + missing + mismatched + duplicated``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.core.hints import AliasHints
from pipelines.core.kind import Kinds
from pipelines.core.models import AWAITING_SYNC, POSTED, exit_code_of
from pipelines.core.parsing import dollars
from pipelines.ledger.runs import REJECT_COLUMNS
from pipelines.reading.totals import is_tied, total_text, with_plain_figures
from pipelines.reporting.tables import (
    POSTED_COLUMNS,
    _posted_frame,
    blank,
    record_lines,
    rejected_rows,
)
from pipelines.reporting.verdict import (
    ATTENTION,
    COMPLETE,
    FAILED_WORDS,
    HOLDING,
    INBOX_REASONS,
    WAITING,
    _reason,
    _with_items,
    decide_verdict,
    verdict_now,
)

# Names other modules import from here (the verdict and the tables have modules of their own).
__all__ = [
    "ATTENTION",
    "COMPLETE",
    "FAILED_WORDS",
    "HOLDING",
    "INBOX_REASONS",
    "POSTED_COLUMNS",
    "TEMPLATES",
    "WAITING",
    "RunReport",
    "blank",
    "build_report",
    "decide_verdict",
    "item_summary",
    "not_charged_text",
    "rejected_rows",
    "stated_total",
    "verdict_now",
]

TEMPLATES = Path(__file__).resolve().parent / "templates"


def _json_list(value: Any) -> list[Any]:
    if isinstance(value, str) and value:
        return list(json.loads(value))
    return list(value) if isinstance(value, list | tuple) else []


def not_charged_text(column: dict[str, Any], hints: AliasHints | None = None) -> str:
    """One line for a column of amounts that was not charged, and how to make it a charge
    (the run, `check` and the report say it in these words). A column its layout says is not
    a charge (``by_layout``: a person's --not-charge, a profile's ignore) gets no such advice."""
    if column.get("by_layout"):
        return (
            f'column "{column["header"]}" holds amounts ({column["cells"]} cells, '
            f"{dollars(column['total_cents'])}) and is not charged: its layout says so"
        )
    return (
        f'column "{column["header"]}" holds amounts ({column["cells"]} cells, '
        f"{dollars(column['total_cents'])}) but is not a known charge, so it was not "
        f"charged; to charge it, {(hints or AliasHints()).charge_column(str(column['header']))}"
    )


@dataclass(frozen=True)
class RunReport:
    """Everything the report shows, as data."""

    summary: dict[str, Any]
    files: pd.DataFrame
    control: pd.DataFrame
    by_location: pd.DataFrame
    posted: pd.DataFrame
    rejected: pd.DataFrame


def _reconciliation(records: pd.DataFrame) -> dict[str, int]:
    state = records["state"] if not records.empty else pd.Series(dtype=object)
    amount = records["amount_cents"] if not records.empty else pd.Series(dtype="int64")
    return {
        "matched": int(state.eq("matched").sum()),
        "awaiting_sync": int(state.isin(AWAITING_SYNC).sum()),
        "missing": int(state.eq("missing").sum()),
        "mismatched": int(state.eq("mismatched").sum()),
        "duplicated": int(state.eq("duplicated").sum()),
        "unverifiable": int(state.eq("unverifiable").sum()),
        "matched_total_cents": int(amount[state.eq("matched")].sum()),
    }


def _amount(records: pd.DataFrame, states: tuple[str, ...]) -> int:
    if records.empty:
        return 0
    return int(records.loc[records["state"].isin(states), "amount_cents"].sum())


def stated_total(file_totals: list[dict[str, Any]]) -> int | None:
    """What a file's own last total row says all its lines add up to (its "row totals"
    figure, else the sum of its figures per amount column), or None without a total row of
    the whole file."""
    last = [t for t in file_totals if t.get("kind", "total") == "total"]
    if not last:
        return None
    at = max(int(t["source_row"]) for t in last)
    on_row = [t for t in last if int(t["source_row"]) == at]
    if any(t.get("unit") for t in on_row):
        return None  # one unit's own Total row (Yardi), not the file's
    # A row-total column that also counts columns not charged (a one-time fee) is not what
    # the charged lines add up to: its per-column figures are.
    on_row = [t for t in on_row if not t.get("also_sums")]
    whole = [t for t in on_row if t.get("column") == "row totals"]
    return int(sum(int(t["stated_cents"]) for t in (whole or on_row)))


LAYOUT_PROVENANCE = ("fingerprint", "profile", "confirmed_by", "layout_id")


def _layouts_of_run(
    uses: pd.DataFrame | None,
) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """Each posted file's layout (by sha256), and the files held for a person to confirm."""
    used: dict[str, dict[str, Any]] = {}
    held: list[dict[str, Any]] = []
    if uses is None or uses.empty:
        return used, held
    for use in uses.to_dict("records"):
        preview = json.loads(str(use["preview"]))
        if int(use["held"]):
            held.append(preview)
        else:
            used[str(use["sha256"])] = preview["layout"]
    return used, held


def item_summary(item: dict[str, Any]) -> dict[str, Any]:
    """An item as a report shows it: what it is, and what became of it."""
    state = str(item.get("state") or "open")
    by = blank(item.get("decided_by"), None)
    settled_run = blank(item.get("state_run_id"), None)
    if state == "open":
        outcome = "open"
    elif by:
        outcome = f"{state} by {by} at {str(item.get('state_at'))[:19].replace('T', ' ')} UTC"
    else:
        outcome = f"{state} in run {settled_run}"
    detail = item.get("detail") or {}
    return {
        "id": item.get("item_id"),
        "cause": item.get("cause"),
        "file": item.get("file_name"),
        "sha256": item.get("file_sha256"),
        "rows": list(item.get("rows") or ()),
        "name": detail.get("name"),
        "reasons": list(detail.get("reasons") or ()),
        "amount_cents": int(item.get("amount_cents") or 0),
        "amount_text": blank(item.get("amount_text"), None),
        "state": state,
        "settled_in_run": settled_run if state != "open" and not by else None,
        "decided_by": by,
        "state_at": blank(item.get("state_at"), None),
        "note": blank(item.get("note"), None),
        "outcome": outcome,
        "first_seen": blank(item.get("first_seen"), None),
        "last_seen": blank(item.get("last_seen"), None),
    }


def build_report(
    run: dict[str, Any],
    files: pd.DataFrame,
    drops: pd.DataFrame,
    records: pd.DataFrame,
    rejects: pd.DataFrame,
    locations: dict[str, str],
    unexpected: int = 0,
    *,
    now: datetime | None = None,
    grace_s: float = 120.0,
    provenance: dict[str, Any] | None = None,
    names: dict[str, dict[str, str]] | None = None,
    signoffs: list[dict[str, Any]] | None = None,
    layout_uses: pd.DataFrame | None = None,
    items: list[dict[str, Any]] | None = None,
    lineage: list[dict[str, Any]] | None = None,
    kinds: Kinds | None = None,
) -> RunReport:
    """The report of one run (or of a period's files), from what the ledger holds for it;
    ``signoffs``: the reviews a person recorded of it (`tieout signoff`); ``items``: the open
    items the run met, each in its state now (settled later, and by which run or person);
    ``lineage``: each record's lineage as `tieout trace` builds it (summary.json carries it);
    ``kinds``: what says a record's lines (a bill's properties are its lines')."""
    used_layouts, held_layouts = _layouts_of_run(layout_uses)
    file_rows, file_checks = _file_rows(files, records, used_layouts)
    location_rows, location_checks = _location_rows(records, locations)
    totals, run_check = _run_totals(run, file_rows, records)
    control = pd.DataFrame([*file_checks, *location_checks, run_check])
    now = now or datetime.now(tz=UTC)
    verdict, reasons = decide_verdict(
        file_rows,
        drops,
        records,
        unexpected,
        now,
        grace_s,
        held_layouts,
        stopped=run.get("stopped") or None,
    )
    met = [item_summary(i) for i in items or []]
    verdict, reasons = _held_back(verdict, reasons, met, items or [])
    verdict, reasons = _with_items(verdict, reasons, met, items or [])
    now_verdict, now_reasons = verdict_now(met, file_rows, drops, records, unexpected, now, grace_s)
    summary = {
        "run_id": run.get("run_id"),
        "verdict": verdict,
        "verdict_reasons": reasons,
        "provenance": {**(provenance or {}), "layouts": _confirmations(file_rows)},
        "held_layouts": held_layouts,
        "verdict_now": now_verdict,
        "verdict_now_reasons": now_reasons,
        "items": met,
        "approvals": [
            {"file": i["file"], "by": i["decided_by"], "at": i["state_at"]}
            for i in met
            if i["cause"] == "awaiting_approval" and i["decided_by"]
        ],
        "started_at": run.get("started_at"),
        "finished_at": run.get("finished_at"),
        "exit_code": exit_code_of(run.get("exit_code")),
        "stopped": run.get("stopped") or None,
        "files": file_rows,
        **_drops(drops),
        "totals": totals,
        "records": _record_counts(records),
        "reconciliation": {**_reconciliation(records), "unexpected": unexpected},
        "by_location": location_rows,
        "ties_out": bool(control["ties_out"].all()) if not control.empty else True,
        "signoffs": list(signoffs or []),
        "lineage": list(lineage or []),
    }
    posted_frame = _posted_frame(
        records,
        locations,
        names,
        {str(f["sha256"]): str(f.get("moved_to") or "") for f in file_rows},
        {str(f["sha256"]): str(f.get("sheet") or "") for f in file_rows},
        run_id=str(run.get("run_id")),
        rent_manager_ids={
            str(t["record_key"]): t.get("rent_manager_id") for t in lineage or [] if t
        },
        lines_of=record_lines(kinds),
    )
    rejected = rejects.copy() if not rejects.empty else pd.DataFrame(columns=list(REJECT_COLUMNS))
    return RunReport(
        summary,
        pd.DataFrame(file_rows),
        control,
        pd.DataFrame(location_rows),
        posted_frame,
        rejected,
    )


def _file_rows(
    files: pd.DataFrame, records: pd.DataFrame, used_layouts: dict[str, dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Each file's row of the report, and its check: source = posted + pending + rejected +
    previously posted, and the file's own total rows tie."""
    file_rows: list[dict[str, Any]] = []
    checks: list[dict[str, Any]] = []
    by_file = (
        {str(sha): group for sha, group in records.groupby("file_sha256", sort=False)}
        if not records.empty
        else {}
    )
    for f in files.to_dict("records"):
        mine = by_file.get(str(f["sha256"]), records.iloc[:0])
        row = _file_row(f, mine, used_layouts)
        file_rows.append(row)
        checks.append(
            {
                "level": "file",
                "name": f["name"],
                "source_total_cents": row["source_total_cents"],
                "stated_total_cents": row["stated_total_cents"],
                "posted_total_cents": row["posted_total_cents"],
                "pending_total_cents": row["pending_total_cents"],
                "rejected_total_cents": row["rejected_total_cents"],
                "previously_posted_cents": row["previously_posted_cents"],
                "file_totals": "; ".join(total_text(t, dollars) for t in row["file_totals"]),
                "ties_out": row["ties_out"],
                "identity": "source = posted + pending + rejected + previously posted; "
                "the file's own total rows tie",
            }
        )
    return file_rows, checks


def _file_row(
    f: dict[Any, Any], mine: pd.DataFrame, used_layouts: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """One file's figures: its rows, its money by where it stands, its own total rows."""
    posted = _amount(mine, POSTED)
    staged = int(mine["amount_cents"].sum()) if not mine.empty else 0
    skipped = f["skipped_by_kind"]
    row = {
        "name": f["name"],
        "sha256": f["sha256"],
        "profile": f["profile"],
        "kind": f["kind"],
        "rows_read": int(f["rows_read"]),
        "rows_used": int(f["rows_used"]),
        "rows_rejected": int(f["rows_rejected"]),
        "rows_skipped": int(f["rows_skipped"]),
        "skipped_by_kind": json.loads(skipped) if isinstance(skipped, str) else skipped,
        "source_total_cents": int(f["source_total_cents"]),
        "rejected_total_cents": int(f["rejected_total_cents"]),
        "posted_total_cents": posted,
        "pending_total_cents": staged - posted,
        "previously_posted_cents": int(f.get("previously_posted_cents") or 0),
        "moved_to": f.get("moved_to"),
        "columns_not_charged": _json_list(f.get("columns_not_charged")),
        "file_totals": [with_plain_figures(t) for t in _json_list(f.get("file_totals"))],
        "period": blank(f.get("period"), None),
        "period_source": blank(f.get("period_source"), None),
        "sheet": blank(f.get("sheet"), None),
        "layout": used_layouts.get(str(f["sha256"])),
    }
    # The file's own total rows are part of the check: one that its lines do not tie (or
    # that cannot be tied, a line's amount unreadable) never lets the file "hold".
    row["ties_out"] = row["source_total_cents"] == (
        staged + row["rejected_total_cents"] + row["previously_posted_cents"]
    ) and all(is_tied(t) for t in row["file_totals"])
    row["stated_total_cents"] = stated_total(row["file_totals"])
    return row


def _location_rows(
    records: pd.DataFrame, locations: dict[str, str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Each location's row and its check: posted = matched + awaiting sync + missing +
    mismatched + duplicated."""
    rows: list[dict[str, Any]] = []
    checks: list[dict[str, Any]] = []
    groups = list(records.groupby("location_id", dropna=False)) if not records.empty else []
    for location_id, group in groups:
        rec = _reconciliation(group)
        posted = _amount(group, POSTED)
        parts = {
            "matched_cents": _amount(group, ("matched",)),
            "awaiting_sync_cents": _amount(group, ("confirmed", "unverifiable")),
            "missing_cents": _amount(group, ("missing",)),
            "mismatched_cents": _amount(group, ("mismatched",)),
            "duplicated_cents": _amount(group, ("duplicated",)),
        }
        name = locations.get(str(location_id), str(location_id))
        ties = posted == sum(parts.values())
        rows.append(
            {
                "location_id": location_id,
                "location": name,
                "records": len(group),
                "posted_total_cents": posted,
                **parts,
                "failed_cents": _amount(group, ("failed", "refused")),
                "in_doubt_cents": _amount(
                    group, ("sending", "submitted", "ready", "held", "partial")
                ),
                **{k: v for k, v in rec.items() if k != "matched_total_cents"},
                "ties_out": ties,
            }
        )
        checks.append(
            {
                "level": "location",
                "name": name,
                "posted_total_cents": posted,
                **parts,
                "ties_out": ties,
                "identity": "posted = matched + awaiting sync + missing + mismatched + duplicated",
            }
        )
    return rows, checks


FILE_TOTALS = (
    "rows_read",
    "rows_used",
    "rows_rejected",
    "rows_skipped",
    "source_total_cents",
    "rejected_total_cents",
    "pending_total_cents",
    "previously_posted_cents",
)


def _run_totals(
    run: dict[str, Any], file_rows: list[dict[str, Any]], records: pd.DataFrame
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The run's totals (its files' figures added up, its records' posted amount), and its
    check: posted = its parts, and every file's check holds."""
    totals: dict[str, Any] = {k: sum(int(r[k]) for r in file_rows) for k in FILE_TOTALS}
    totals["posted_total_cents"] = _amount(records, POSTED)
    run_parts = sum(
        _amount(records, (s,))
        for s in ("matched", "confirmed", "unverifiable", "missing", "mismatched", "duplicated")
    )
    check = {
        "level": "run",
        "name": str(run.get("run_id")),
        "source_total_cents": totals["source_total_cents"],
        "posted_total_cents": totals["posted_total_cents"],
        "rejected_total_cents": totals["rejected_total_cents"],
        "ties_out": totals["posted_total_cents"] == run_parts
        and all(r["ties_out"] for r in file_rows),
        "identity": "posted = matched + awaiting sync + missing + mismatched + duplicated; "
        "every file's check holds",
    }
    return totals, check


def _held_back(
    verdict: str, reasons: list[dict[str, Any]], met: list[dict[str, Any]], raw: list[Any]
) -> tuple[str, list[dict[str, Any]]]:
    """Files held until a person acts (the items that hold a whole file back, met by the
    run): what the run could not post, first among the reasons (the verdict it had after)."""
    held = [i for i, r in zip(met, raw, strict=True) if r.get("met", True)]
    held = [i for i in held if i["cause"] in HOLDING]
    if not held:
        return verdict, reasons
    return ATTENTION, [
        _reason(
            "files held until a person acts (`tieout todo`)",
            len(held),
            sum(int(i["amount_cents"]) for i in held),
        ),
        *(r for r in reasons if verdict == ATTENTION),
    ]


def _confirmations(file_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Who confirmed each file's layout, and which it was."""
    return [
        {"file": f["name"], **{k: f["layout"].get(k) for k in LAYOUT_PROVENANCE}}
        for f in file_rows
        if f.get("layout")
    ]


def _drops(drops: pd.DataFrame) -> dict[str, list[dict[Any, Any]]]:
    """Files dropped again (already processed) and files refused as a whole."""
    if drops.empty:
        return {"duplicate_drops": [], "refused_files": []}
    again = drops["first_run_id"].notna()
    return {
        "duplicate_drops": drops.loc[again, ["name", "sha256", "reason", "first_run_id"]].to_dict(
            "records"
        ),
        "refused_files": drops.loc[~again, ["name", "sha256", "reason"]]
        .fillna("")
        .to_dict("records"),
    }


def _record_counts(records: pd.DataFrame) -> dict[str, Any]:
    """The records by state: how many, and their amount."""
    by_state = records["state"].value_counts().to_dict() if not records.empty else {}
    return {
        "by_state": {str(k): int(v) for k, v in by_state.items()},
        "amount_by_state": {str(s): _amount(records, (str(s),)) for s in by_state},
        "count": len(records),
    }
