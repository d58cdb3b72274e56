"""Files held for a person: a layout not yet confirmed (or no known layout, with tieout's
proposal), or a file awaiting approval (maker and checker). A held file stays in the inbox,
said once, an open item with what it would post and the command that moves it on."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pipelines.core.models import (
    FileResult,
    SourceFile,
)
from pipelines.core.parsing import dollars
from pipelines.ledger import Ledger
from pipelines.reading.propose import LayoutHeld
from pipelines.reporting import report as reporting
from pipelines.resolving.refs import RefData
from pipelines.runs.context import RunContext
from pipelines.runs.files import (
    LayoutDecision,
    accept_command,
    layout_preview,
    preview_lines,
    proposal_preview,
)
from pipelines.runs.inbox import (
    inbox_of,
    is_taken,
    put_back,
)
from pipelines.runs.items import new_item

log = logging.getLogger("tieout")


def hold(result: FileResult, decision: LayoutDecision, run: RunContext) -> None:
    """Nothing moves on a guess: the file stays in the inbox until a person confirms its
    layout; what it would do is said once, and recorded for the run's report."""
    source = result.source
    preview = layout_preview(
        result, decision, accept_command(_dropped_path(source.path), run.settings)
    )
    # An open item until the layout is confirmed and the file taken in (its pass settles it),
    # at what the file states (its own total row), else what its lines would post.
    stated = reporting.stated_total(list(result.extract.file_totals))
    amount = result.outcome.source_total_cents if stated is None else stated
    _held_preview(preview, source, run, amount, result.extract.sheet)


def _held_preview(
    preview: dict[str, Any],
    source: SourceFile,
    run: RunContext,
    amount: int | None = None,
    sheet: str | None = None,
) -> None:
    """A held file, said once and kept: its preview for the run's report, and an open item
    (``held_layout``) with what it would post (``amount``: what the file states, when known)
    and the command that confirms it."""
    ledger, run_id, say = run.ledger, run.run_id, run.say
    ledger.record_layout_use(run_id, source.sha256, source.name, preview, held=True)
    item = new_item(
        "held_layout",
        source.sha256,
        source.name,
        "file",
        amount_cents=int(preview.get("source_total_cents") or 0) if amount is None else amount,
        sheet=sheet,
        detail={
            "path": str(_dropped_path(source.path)),
            "command": preview.get("command"),
            "reason": "its layout is not confirmed",
            "proposal": preview["layout"].get("proposal"),
            "fingerprint": preview["layout"].get("fingerprint"),
        },
    )
    ledger.observe_items(run_id, [item])
    for line in preview_lines(preview):
        say(line)
    log.info("layout held", extra={"run_id": run_id, "file": source.name})


def hold_proposal(exc: LayoutHeld, source: SourceFile, run: RunContext) -> tuple[bool, bool]:
    """A file of no known layout, held with tieout's proposal until a person confirms it."""
    command = accept_command(_dropped_path(source.path), run.settings)
    _held_preview(proposal_preview(source, exc.proposal, command), source, run)
    return left_in_inbox(source.path, run.in_place)


def settle_held(ledger: Ledger, run_id: str, source: SourceFile, decision: LayoutDecision) -> None:
    """A file held before whose layout a person has confirmed since: its item is settled."""
    ledger.observe_items(
        run_id,
        [],
        file_sha256=source.sha256,
        decides={"held_layout"},
        note=f"its layout was confirmed ({decision.confirmed_by})",
    )


def left_in_inbox(path: Path, in_place: bool) -> tuple[bool, bool]:
    """A held file stays where the clerk dropped it (an archived copy, where it lies)."""
    if not in_place:
        put_back(path)
    return True, True


def _dropped_path(path: Path) -> Path:
    """Where a held file lies for the clerk: back in the inbox it was taken from."""
    return inbox_of(path) / path.name if is_taken(path) else path


def confirmation(ledger: Ledger, result: FileResult) -> dict[str, Any] | None:
    """The confirmation the ledger holds for the layout of a read file (None: none)."""
    facts = result.extract.layout
    return ledger.confirmed_layout(facts.fingerprint) if facts is not None else None


def held_for_approval(
    source: SourceFile, result: FileResult, run: RunContext, refs: RefData
) -> bool:
    """Maker and checker (``approve_each_file``): a file whose rows are ready stays in the inbox,
    an open item with its preview, until a person approves it; then it is taken in as any."""
    ledger, settings, run_id, say = run.ledger, run.settings, run.run_id, run.say
    if not settings.approve_each_file or result.records.empty:
        return False
    if ledger.approved(source.sha256) is not None:
        return False
    records = result.records
    names = dict(zip(refs.locations["id"], refs.locations["name"], strict=True))
    by_location = records.groupby(records["location_id"].astype(str))["amount_cents"].sum()
    preview = {
        "lines": int(records["source_rows"].map(len).sum()),
        "records": len(records),
        "total_cents": int(records["amount_cents"].sum()),
        "by_location": {names.get(k, k): int(v) for k, v in by_location.items()},
        "file_totals": [
            {k: t.get(k) for k in ("column", "stated_cents", "computed_cents", "difference_cents")}
            for t in result.extract.file_totals
        ],
        "rows_rejected": result.outcome.rows_rejected,
    }
    ledger.observe_items(
        run_id,
        [
            new_item(
                "awaiting_approval",
                source.sha256,
                source.name,
                "file",
                amount_cents=preview["total_cents"],
                detail={"preview": preview, "path": str(_dropped_path(source.path))},
            )
        ],
    )
    say(
        f"{source.name}: held for approval, {preview['records']} records "
        f"({dollars(preview['total_cents'])}); it stays in the inbox until "
        f'`tieout approve "{source.name}" --by NAME`'
    )
    return True
