"""The desk's work behind each page, run in a worker thread: each calls the functions the
command line calls (:mod:`pipelines.cli.items`, :mod:`pipelines.cli.alias`,
:mod:`pipelines.cli.layout`, :mod:`pipelines.runs`, :mod:`pipelines.reporting`) and returns
what the page shows, or the lines said to the person who acted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipelines.core.errors import InputError, TieoutError
from pipelines.desk.app import Desk
from pipelines.desk.auth import Session
from pipelines.desk.running import Progress
from pipelines.ledger.desk import dropped_by, events, held_layouts, periods

SAID_LINES = 12  # a run's lines shown after it (the rest are in its report)


def inbox_shas(desk: Desk) -> dict[str, Path]:
    """The files waiting in the inbox, by content."""
    from pipelines.reading.grids import fingerprint
    from pipelines.runs.inbox import list_inbox

    found = {}
    for path in list_inbox(desk.settings.inbox_dir):
        try:
            found[fingerprint(path).sha256] = path
        except (OSError, TieoutError):  # taken by a run since the listing
            continue
    return found


def inbox_files(desk: Desk) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The files in the inbox (waiting, or held and why), and the files dropped on the desk
    with their state now: waiting, held, posted (taken in) or refused."""
    from pipelines.cli.items import open_items

    settings = desk.settings
    waiting_here = inbox_shas(desk)
    held: dict[str, str] = {}
    for item in open_items(settings, records=False):
        if item["cause"] == "awaiting_approval":
            held[str(item["file_sha256"])] = "awaiting approval"
    with desk.ledger(readonly=True) as ledger:
        for sha in held_layouts(ledger):
            held.setdefault(sha, "its layout awaits confirmation")
        dropped = events(ledger, action="upload")[-50:]
        taken = {e["subject"] for e in dropped if ledger.file_of(e["subject"]) is not None}
        # Taken in: posted when any of its rows became a record (at once, or by a retry).
        posted = {
            sha
            for sha in taken
            if not ledger.records(files=[sha], columns=["record_key"], bodies=False).empty
        }

    def state(sha: str) -> str:
        if sha in taken:
            return "posted" if sha in posted else "refused"
        if sha in waiting_here and sha in held:
            return "held"
        return "waiting" if sha in waiting_here else "taken in"

    waiting = [
        {
            "name": path.name,
            "bytes": path.stat().st_size if path.exists() else 0,
            "state": "held" if sha in held else "waiting",
            "why": held.get(sha, "the next run takes it in"),
        }
        for sha, path in sorted(waiting_here.items(), key=lambda kv: kv[1].name)
    ]
    rows = [
        {
            "name": e["detail"].get("name"),
            "by": e["by"],
            "at": e["at"],
            "sha256": e["subject"],
            "state": state(e["subject"]),
        }
        for e in reversed(dropped)
    ]
    return waiting, rows


def _said(lines: list[str], outcome: Any) -> list[str]:
    shown = lines[-SAID_LINES:]
    if outcome.report_dir is not None:
        verdict = outcome.summary.get("verdict")
        shown.append(f"run {outcome.run_id}: {verdict}; its report is under Runs and reports")
    return shown


def run_inbox(desk: Desk, session: Session, progress: Progress) -> list[str]:
    """`tieout run`: every ready file in the inbox (in the desk's run thread, ``progress``
    told each line and how far the posting is)."""
    from pipelines.runs.pipeline import run as run_pipeline

    outcome = run_pipeline(desk.settings, say=progress.say, on_progress=progress.posting)
    desk.record(session, "run", str(outcome.run_id or ""), exit_code=outcome.exit_code)
    if outcome.report_dir is None:
        return ["nothing to do: the inbox has no ready files", *progress.lines[-SAID_LINES:]]
    return _said(progress.lines, outcome)


def _what(item: dict[str, Any]) -> str:
    rows = ", ".join(str(r) for r in item.get("rows") or ())
    return f"{item.get('file_name') or ''}" + (f" row {rows}" if rows else "")


def item_groups(desk: Desk) -> tuple[list[dict[str, Any]], int, str | None]:
    """`tieout todo` grouped by cause, each item with the actions it allows and the choices of
    name tieout offers (`tieout alias accept`'s suggestions)."""
    from pipelines.cli.alias import alias_context
    from pipelines.cli.items import open_items
    from pipelines.resolving.aliases import suggestions
    from pipelines.runs.items import CAUSES, RETRYABLE, settle_command

    settings = desk.settings
    found = open_items(settings)
    offers: dict[tuple[str, str], list[str]] = {}
    problem = None
    if any(str(i["cause"]).startswith("unknown_") for i in found):
        try:
            refs, files, unknown, places = alias_context(settings)
            for offer in suggestions(refs, unknown, files, places):
                choices = [offer.target, *offer.others] if offer.target else []
                offers[(offer.kind, offer.name)] = list(dict.fromkeys(choices))
        except TieoutError as exc:
            problem = f"no suggestions now: {exc}"
    order = {cause: n for n, cause in enumerate(CAUSES)}
    groups: dict[str, list[dict[str, Any]]] = {}
    for item in found:
        cause = str(item["cause"])
        detail = item.get("detail") or {}
        command, then = settle_command(item, str(settings.inbox_dir))
        kind = str(detail.get("kind") or cause.removeprefix("unknown_"))
        groups.setdefault(cause, []).append(
            {
                **item,
                "what": _what(item),
                "name": detail.get("name"),
                "kind": kind,
                "reasons": detail.get("reasons") or [],
                "command": command + (f", then {then}" if then else ""),
                "choices": offers.get((kind, str(detail.get("name") or "")), []),
                "alias": cause.startswith("unknown_"),
                "retry": cause in RETRYABLE
                and cause not in {"awaiting_approval", "held_layout"}
                and bool(item.get("file_name")),
                "settle": cause in {"conflict", "write_refused", "rejected_row", "refused_file"},
                "record_key": detail.get("record_key"),
                "resolve": cause in IN_DOUBT_CAUSES and bool(detail.get("record_key")),
                "send_again": cause == "write_refused" and bool(detail.get("record_key")),
            }
        )
    _with_evidence(desk, [i for g in groups.values() for i in g if i["resolve"]])
    out = []
    for cause in sorted(groups, key=lambda c: (order.get(c, len(order)), c)):
        group = groups[cause]
        out.append(
            {
                "cause": cause,
                "title": CAUSES.get(cause, cause),
                "items": group,
                "rows": sum(len(i.get("rows") or ()) for i in group),
                "cents": sum(int(i.get("amount_cents") or 0) for i in group),
            }
        )
    return out, sum(int(i.get("amount_cents") or 0) for i in found), problem


# The items a person settles by looking in Rent Manager: `tieout resolve KEY --present|--absent`.
IN_DOUBT_CAUSES = frozenset({"in_doubt", "answer_for_another_write", "held"})


def _with_evidence(desk: Desk, items: list[dict[str, Any]]) -> None:
    """Each record in doubt with what tieout knows of it (`tieout resolve` prints the same
    before it settles): its POST, the write log's searches, the syncs since."""
    from pipelines.reconciling.resolve import evidence

    if not items:
        return
    keys = [str(i["record_key"]) for i in items]
    by_key: dict[str, list[str]] = {}
    with desk.ledger(readonly=True) as ledger:
        current: list[str] = []
        for line in evidence(ledger, keys, desk.settings.integration_id):
            if not line.startswith(" "):
                current = by_key.setdefault(line.split(" ", 1)[0], [])
            current.append(line.strip())
    for item in items:
        item["evidence"] = by_key.get(str(item["record_key"]), [])


def resolve_record(
    desk: Desk, session: Session, key: str, found: str, rm_id: str, note: str
) -> list[str]:
    """`tieout resolve KEY --present [--rm-id ID]` or `--absent`, with the note as the reason,
    after the person looked in Rent Manager."""
    from pipelines.reconciling.resolve import settle_by_hand

    if found not in ("present", "absent"):
        raise InputError("say what you found in Rent Manager: present or absent")
    if not key:
        raise InputError("choose a record in doubt to settle")
    present = found == "present"
    reason = f"{note or 'looked in Rent Manager'} ({session.name}, on the desk)"
    with desk.ledger() as ledger, ledger.lock("resolve"):
        settle_by_hand(ledger, [key], present=present, rm_id=rm_id or None, reason=reason)
    desk.record(session, "resolve", key, found=found, rm_id=rm_id or None, note=note)
    then = "reconcile matches it" if present else "the next run sends it again"
    return [f"{key}: settled as {found} in Rent Manager by {session.name}; {then}"]


def send_record_again(desk: Desk, session: Session, key: str, note: str) -> list[str]:
    """`tieout resolve KEY --send-again`: a write Propexo refused, once its cause is fixed."""
    from pipelines.reconciling.resolve import send_again

    if not key:
        raise InputError("choose a refused write to send again")
    reason = f"{note or 'sent again by a person'} ({session.name}, on the desk)"
    with desk.ledger() as ledger, ledger.lock("resolve"):
        send_again(ledger, [key], reason=reason)
    desk.record(session, "send_again", key, note=note)
    return [f"{key}: made ready by {session.name}; the next run sends it"]


def add_alias(
    desk: Desk, session: Session, kind: str, name: str, target: str, file: str
) -> list[str]:
    """`tieout alias add KIND NAME TARGET` (checked against Propexo's names), then
    `tieout retry FILE`."""
    from pipelines.cli.alias import alias_context
    from pipelines.core.hints import ALIAS_FILES
    from pipelines.resolving.aliases import known_target, write_alias

    if kind not in ALIAS_FILES or not name or not target:
        raise InputError("choose one of the names offered for this item")
    refs, _, _, _ = alias_context(desk.settings)
    label = known_target(refs, kind, target)
    if label is None:
        raise InputError(f'Propexo knows no {kind.replace("_", " ")} "{target}"; nothing written')
    written = write_alias(desk.settings.mappings_dir, kind, name, label)
    desk.record(session, "alias", f"{kind}:{name}", target=label, line=written.line)
    said = [f'{written.path.name}, line {written.line}: "{name}" → "{label}"']
    return said + (retry_file(desk, session, file) if file else [])


def retry_file(desk: Desk, session: Session, file: str) -> list[str]:
    """`tieout retry FILE`: its archived copy read again, the rows that now go through posted."""
    from pipelines.runs.pipeline import retry_files
    from pipelines.runs.pipeline import run as run_pipeline

    paths = retry_files(desk.settings, file, every=False)
    if not paths:
        return [f"nothing to retry in {file}: no open item a retry can settle"]
    lines: list[str] = []
    outcome = run_pipeline(desk.settings, files=paths, say=lines.append, in_place=True)
    desk.record(session, "retry", file, run_id=outcome.run_id)
    return _said(lines, outcome)


def run_page(
    desk: Desk,
) -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]], list[str]]:
    """`tieout runs`, each run's files (downloadable by content) and the period workpapers."""
    from pipelines.reporting.publish import run_summaries
    from pipelines.reporting.render import run_rows

    reports = desk.settings.reports_dir
    rows = run_rows(run_summaries(reports))
    files: dict[str, list[dict[str, Any]]] = {}
    with desk.ledger(readonly=True) as ledger:
        for row in rows:
            run_id = str(row["run_id"])
            folder = reports / run_id
            files[run_id] = [
                {"name": r["name"], "sha256": r["sha256"]}
                for r in ledger.files(run_id).to_dict("records")
            ]
            row["downloads"] = sorted(
                p.name for p in folder.glob("*") if p.suffix in {".xlsx", ".csv"}
            )
    papers = sorted(
        (p.name for p in reports.glob("period-*") if (p / "report.html").is_file()), reverse=True
    )
    return rows, files, papers


def trace_record(desk: Desk, query: str) -> list[dict[str, Any]]:
    """`tieout trace QUERY`: each record's lineage, cell → Propexo id → Rent Manager id."""
    from pipelines.kinds import registered
    from pipelines.reporting.trace import trace

    with desk.ledger(readonly=True) as ledger:
        return trace(ledger, desk.settings, query, registered())


def approval_page(desk: Desk) -> tuple[list[dict[str, Any]], list[str], list[str]]:
    """Files awaiting approval with their preview and who dropped them; what can be signed."""
    from pipelines.cli.items import open_items

    held = [
        i for i in open_items(desk.settings, records=False) if i["cause"] == "awaiting_approval"
    ]
    with desk.ledger(readonly=True) as ledger:
        for item in held:
            item["dropped_by"] = sorted(dropped_by(ledger, str(item["file_sha256"])))
        months = periods(ledger)
        runs = ledger.runs()
    run_ids = [str(r) for r in reversed(runs["run_id"].astype(str).tolist())][:20]
    return held, months, run_ids


def approve_file(desk: Desk, session: Session, sha256: str) -> list[str]:
    """`tieout approve FILE --by USER` (never the one who dropped it), then the run."""
    from pipelines.cli.items import approve_held
    from pipelines.runs.pipeline import run as run_pipeline

    paths = approve_held(desk.settings, sha256, by=session.name, note="approved on the desk")
    desk.record(session, "approve", sha256)
    lines: list[str] = []
    outcome = run_pipeline(desk.settings, files=paths, say=lines.append)
    return [f"approved by {session.name}", *_said(lines, outcome)]


def sign(desk: Desk, session: Session, subject: str, note: str, with_open_items: bool) -> list[str]:
    """`tieout signoff SUBJECT --by USER [--note N] [--with-open-items]`: refused while an item
    is open or a check does not hold, unless signed with them open and a note saying why."""
    from pipelines.kinds import registered
    from pipelines.reporting.publish import NotSigned, sign_off

    if with_open_items and not note:
        raise InputError("to sign with items open, say why in the note; nothing was signed")
    try:
        key, review, _, left_open = sign_off(
            desk.settings,
            subject,
            session.name,
            note or None,
            registered(),
            with_open_items=with_open_items,
        )
    except NotSigned as refused:
        said = str(refused).split(". Settle them", 1)[0]
        raise InputError(
            f"{said}. Settle them under Open items, or tick “sign with them open” and say why "
            "in the note"
        ) from refused
    desk.record(session, "sign_off", key, note=note, open_items=left_open)
    at = str(review["at"])[:19].replace("T", " ")
    lines = [f"{key}: signed off by {review['by']} at {at} UTC"]
    if left_open:
        lines.append(f"signed with open items: {', '.join(left_open)}")
    return lines
