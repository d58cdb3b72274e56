"""A billing period's workpaper as the month's truth (#36): each source line counted once, every
settlement shown, every check holding or the item that keeps it open named; sign-offs that
record the figures they signed.

Pure: the versions of a period's files (the latest of each name supersedes the earlier; an
identical re-drop is no version), each latest version's accounting with what was settled and
what is open, and the period's one verdict. ``publish.build_period`` composes it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pandas as pd

from pipelines.reading.totals import is_tied
from pipelines.reporting.verdict import ATTENTION, COMPLETE, WAITING, _reason

# The causes whose rows a file's accounting counts as rejected: settled by a person (not to be
# posted), their amount is settled, not rejected.
ROW_CAUSES = frozenset(
    {
        "rejected_row",
        "unknown_vendor",
        "unknown_property",
        "unknown_gl_account",
        "unknown_charge_code",
        "unknown_resident",
        "ambiguous_name",
        "conflict",
    }
)
# A file's figures, as a sign-off signs them (see :func:`figures_hash`).
FILE_FIGURES = (
    "name",
    "sha256",
    "stated_total_cents",
    "source_total_cents",
    "rows_used",
    "rows_rejected",
    "posted_total_cents",
    "pending_total_cents",
    "previously_posted_cents",
    "rejected_total_cents",
    "rejected_open_cents",
    "settled_cents",
    "open_items",
    "ties_out",
)


def versions(
    files: pd.DataFrame, supersedes: dict[str, list[str]] | None = None
) -> tuple[pd.DataFrame, dict[str, list[dict[str, Any]]]]:
    """The latest version of each file of the period, and the versions each superseded (its
    name → [{sha256, name, run_id, processed_at, source_total_cents}], oldest first). A file is
    a later version of another of the same name processed before it, or of the files it
    corrected (``supersedes``: sha256 → the earlier files', as the run that took it found
    them: records of the same keys)."""
    if files.empty:
        return files, {}
    ordered = files.sort_values("processed_at", kind="stable")
    rows = ordered.to_dict("records")
    by_sha = {str(f["sha256"]): f for f in rows}
    # Versions of one source are joined whichever way they were found (a name, or a file
    # restating another), so a chain through a re-export under another name is one source:
    # its latest version alone is counted.
    parent = {sha: sha for sha in by_sha}

    def root(sha: str) -> str:
        while parent[sha] != sha:
            parent[sha] = parent[parent[sha]]
            sha = parent[sha]
        return sha

    def join(a: str, b: str) -> None:
        parent[root(a)] = root(b)

    last_of_name: dict[str, str] = {}
    for f in rows:
        sha = str(f["sha256"])
        before = last_of_name.get(str(f["name"]))
        if before is not None:
            join(before, sha)
        for old in (supersedes or {}).get(sha, []):
            if old in by_sha and old != sha:
                join(old, sha)
        last_of_name[str(f["name"])] = sha
    newest: dict[str, str] = {}  # a source's root → its latest version (processed last)
    for f in rows:
        newest[root(str(f["sha256"]))] = str(f["sha256"])
    newer = {sha: newest[root(sha)] for sha in by_sha if newest[root(sha)] != sha}

    def final(sha: str) -> str:
        return newer.get(sha, sha)

    latest = ordered[~ordered["sha256"].astype(str).isin(set(newer))]
    earlier: dict[str, list[dict[str, Any]]] = {}
    for f in rows:
        sha = str(f["sha256"])
        if sha in newer:
            earlier.setdefault(str(by_sha[final(sha)]["name"]), []).append(
                {
                    "sha256": sha,
                    "name": f["name"],
                    "run_id": f["run_id"],
                    "processed_at": f["processed_at"],
                    "source_total_cents": int(f["source_total_cents"]),
                }
            )
    return latest.reset_index(drop=True), earlier


def latest_accounting(
    latest: pd.DataFrame, passes: pd.DataFrame, records: pd.DataFrame
) -> pd.DataFrame:
    """Each latest version's accounting as its last pass saw it (a retry's, else its first
    take's); its previously posted lines are only those another file posted (its own earlier
    passes' records are its own, counted as posted)."""
    rows = []
    for f in latest.to_dict("records"):
        mine = passes[passes["sha256"] == f["sha256"]] if not passes.empty else passes
        acc = mine.sort_values("processed_at").iloc[-1].to_dict() if not mine.empty else dict(f)
        own = records[records["file_sha256"] == f["sha256"]] if not records.empty else records
        before = (
            int(own.loc[own["run_id"] != acc["run_id"], "amount_cents"].sum()) if len(own) else 0
        )
        previously = int(acc.get("previously_posted_cents") or 0)
        if not mine.empty:
            previously -= before
        rows.append(
            {**acc, "processed_at": f["processed_at"], "previously_posted_cents": previously}
        )
    return pd.DataFrame(rows, columns=list(latest.columns))


def settled_of(items: list[dict[str, Any]], sha256: str) -> list[dict[str, Any]]:
    """A file's settled items: by which run, or by whom, when, with the note."""
    return [
        {
            "id": i["id"],
            "cause": i["cause"],
            "rows": i["rows"],
            "amount_cents": i["amount_cents"],
            "state": i["state"],
            "settled_in_run": i["settled_in_run"],
            "by": i["decided_by"],
            "at": i["state_at"],
            "note": i["note"],
        }
        for i in items
        if i["sha256"] == sha256 and i["state"] != "open"
    ]


def period_figures(
    summary: dict[str, Any],
    earlier: dict[str, list[dict[str, Any]]],
    record_items: list[dict[str, Any]],
) -> tuple[
    list[dict[str, Any]], list[dict[str, Any]], str, list[dict[str, Any]], list[dict[str, Any]]
]:
    """Per file: stated total, lines, posted, previously posted, rejected, settled, open, the
    versions it superseded, and whether its check holds; the Checks rows; the verdict and its
    reasons, each naming the items that keep the period open; the open items (id, cause,
    file, rows, amount)."""
    items = list(summary.get("items") or [])
    open_items = [i for i in items if i["state"] == "open"] + [
        {**i, "id": i["item_id"], "file": i.get("file_name"), "sha256": i.get("file_sha256")}
        for i in record_items
    ]
    files: list[dict[str, Any]] = []
    for f in summary["files"]:
        settled = settled_of(items, f["sha256"])
        by_person = sum(
            int(s["amount_cents"]) for s in settled if s["by"] and s["cause"] in ROW_CAUSES
        )
        settled_cents = min(by_person, int(f["rejected_total_cents"]))
        rejected = int(f["rejected_total_cents"]) - settled_cents
        mine_open = [i for i in open_items if i.get("sha256") == f["sha256"]]
        # A total its unreadable rows keep from tying holds once a person settled those rows.
        decided_rows = {r for s in settled if s["by"] for r in s["rows"]}
        totals_hold = all(
            is_tied(t)
            or (
                not t.get("checked", True)
                and t.get("unreadable")
                and all(int(u["source_row"]) in decided_rows for u in t["unreadable"])
            )
            for t in f["file_totals"]
        )
        holds = bool(
            f["source_total_cents"]
            == f["posted_total_cents"]
            + f["pending_total_cents"]
            + rejected
            + settled_cents
            + f["previously_posted_cents"]
            and totals_hold
        )
        files.append(
            {
                **f,
                "lines": f["rows_used"],
                "rejected_open_cents": rejected,
                "settled_cents": settled_cents,
                "settled": settled,
                "open_items": [i["id"] for i in mine_open],
                "open_cents": sum(int(i["amount_cents"]) for i in mine_open),
                "superseded_versions": earlier.get(str(f["name"]), []),
                "ties_out": holds,
            }
        )
    control = [
        {
            "level": "file",
            "name": f["name"],
            "source_total_cents": f["source_total_cents"],
            "stated_total_cents": f["stated_total_cents"],
            "posted_total_cents": f["posted_total_cents"],
            "pending_total_cents": f["pending_total_cents"],
            "rejected_total_cents": f["rejected_open_cents"],
            "settled_cents": f["settled_cents"],
            "previously_posted_cents": f["previously_posted_cents"],
            "ties_out": f["ties_out"],
            "identity": "source = posted + pending + rejected + settled + previously posted "
            "(the latest version of the file); the file's own total rows tie",
        }
        for f in files
    ]
    verdict, reasons = _verdict(summary, files, open_items)
    listed = [
        {
            "id": i["id"],
            "cause": i["cause"],
            "file": i.get("file"),
            "rows": list(i.get("rows") or []),
            "amount_cents": int(i.get("amount_cents") or 0),
        }
        for i in open_items
    ]
    return files, control, verdict, reasons, listed


def posted_ties(summary: dict[str, Any]) -> bool:
    """posted = matched + awaiting sync + missing + mismatched + duplicated, to the cent."""
    amounts = summary["records"]["amount_by_state"]
    parts = ("matched", "confirmed", "unverifiable", "missing", "mismatched", "duplicated")
    return int(summary["totals"]["posted_total_cents"]) == sum(
        int(amounts.get(state, 0)) for state in parts
    )


def _verdict(
    summary: dict[str, Any], files: list[dict[str, Any]], open_items: list[dict[str, Any]]
) -> tuple[str, list[dict[str, Any]]]:
    reasons: list[dict[str, Any]] = []
    for item in open_items:
        where = f"{item.get('file') or ''}" + (
            f" row {', '.join(str(r) for r in item['rows'])}" if item.get("rows") else ""
        )
        reasons.append(
            _reason(
                f"open item {item['id']} ({str(item['cause']).replace('_', ' ')}, {where}) "
                "keeps the period open",
                1,
                int(item.get("amount_cents") or 0),
            )
        )
    for f in files:
        if not f["ties_out"] and not f["open_items"]:
            reasons.append(_reason(f"the check of {f['name']} does not hold", 1, 0))
        elif not f["ties_out"]:
            reasons.append(
                _reason(
                    f"the check of {f['name']} does not hold while "
                    f"{', '.join(f['open_items'])} is open",
                    1,
                    0,
                )
            )
    by_state = summary["records"]["by_state"]
    wrong = {s: n for s, n in by_state.items() if s in ("missing", "mismatched", "duplicated")}
    for state, count in wrong.items():
        reasons.append(_reason(f"records {state} in Propexo", count, 0))
    if reasons:
        return ATTENTION, reasons
    waiting = sum(n for s, n in by_state.items() if s in ("confirmed", "unverifiable"))
    if waiting:
        return WAITING, [_reason("posted, awaiting Propexo's next sync", waiting, 0)]
    return COMPLETE, []


def figures_hash(summary: dict[str, Any]) -> str:
    """The sha256 of a workpaper's figures: each file's version and money, the totals, the
    open items, the checks and the verdict. Not when it was rendered, who signed it, or what a
    sync adds (states from confirmed to matched, Rent Manager ids): what a sign-off signs, and
    what "changed since sign-off" compares."""
    kept = {
        "files": [{k: f.get(k) for k in FILE_FIGURES} for f in summary.get("files") or []],
        "totals": summary.get("totals"),
        "open_items": summary.get("open_items")
        or [i.get("id") for i in summary.get("items") or [] if i.get("state") == "open"],
        "ties_out": summary.get("ties_out"),
        "verdict": summary.get("verdict_now") or summary.get("verdict"),
    }
    text = json.dumps(kept, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()
