"""`tieout check`: what one file would become, without posting anything."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines import report as reporting
from pipelines.config import Settings
from pipelines.errors import InputError, TieoutError
from pipelines.files import (
    accept_command,
    decide_layout,
    errors_file_bytes,
    layout_preview,
    preview_lines,
    process_file,
    profiles_for,
)
from pipelines.flows import plan_requests
from pipelines.grids import fingerprint
from pipelines.inbox import (
    list_inbox,
)
from pipelines.ledger import Ledger
from pipelines.load import describe_plan
from pipelines.models import ExtractResult, RunOutcome, Say, printable, whole
from pipelines.profiles import (
    Profile,
)
from pipelines.propexo import make_client
from pipelines.refs import (
    RefData,
)
from pipelines.sync import (
    reference_data,
)


@dataclass(frozen=True)
class CheckResult:
    """What `tieout check` found in one file: its summary (the ``--json`` contract, less
    where the rejects file went) and that rejects file's bytes; the caller writes files."""

    path: Path
    summary: dict[str, Any]
    errors_csv: bytes | None  # <name>.errors.csv, when any row was rejected

    @property
    def errors_path(self) -> Path | None:
        """Where the rejects file goes: beside the file."""
        return self.path.with_name(self.path.name + ".errors.csv") if self.errors_csv else None


def standing_confirmations(settings: Settings) -> pd.DataFrame | None:
    """The layouts a person confirmed, read from the ledger when there is one (never
    created here); None when there is none to read."""
    if settings.ledger_is_file and not settings.ledger_path.exists():
        return None
    try:
        with Ledger(settings.ledger, readonly=True) as ledger:
            return ledger.confirmed_layouts()
    except TieoutError:
        return None


def _confirmation_of(extract: ExtractResult, layouts: pd.DataFrame | None) -> dict[str, Any] | None:
    if layouts is None or layouts.empty or extract.layout is None:
        return None
    mine = layouts[layouts["fingerprint"] == extract.layout.fingerprint]
    return {str(k): v for k, v in mine.iloc[0].to_dict().items()} if len(mine) else None


def check_file(
    path: Path,
    settings: Settings,
    refs: RefData | None,
    layouts: pd.DataFrame | None = None,
) -> CheckResult:
    """What `tieout check` says about one file; writes nothing. ``layouts``: the standing
    confirmations (:func:`standing_confirmations`), to say whether its layout is confirmed."""
    by_headers = (
        {str(k): str(v) for k, v in zip(layouts["header_key"], layouts["profile"], strict=True)}
        if layouts is not None
        else None
    )
    result = process_file(fingerprint(path), profiles_for(settings), refs, settings, by_headers)
    decision = decide_layout(result.extract, _confirmation_of(result.extract, layouts))
    preview = layout_preview(
        result, decision, None if decision.confirmed else accept_command(path, settings)
    )
    o = result.outcome
    rejected = pd.DataFrame(
        [(i.source_row, i.message) for i in result.issues], columns=["source_row", "message"]
    )
    valid = result.validated.valid
    bad_rows = set(rejected["source_row"])
    valid = valid[~valid["source_row"].isin(bad_rows)]
    rows = json.loads(valid.to_json(orient="records", date_format="iso"))
    errors_csv = errors_file_bytes(result, result.issues) if result.issues else None
    summary = {
        "name": o.name,
        "sha256": o.sha256,
        "profile": o.profile,
        "kind": o.kind,
        "rows_read": o.rows_read,
        "rows_used": o.rows_used,
        "rows_rejected": o.rows_rejected,
        "rows_skipped": o.rows_skipped,
        "skipped_by_kind": o.skipped_by_kind,
        "source_total_cents": o.source_total_cents,
        "rejected_total_cents": o.rejected_total_cents,
        "period": result.extract.period.isoformat() if result.extract.period else None,
        "period_source": result.extract.period_source,
        "notices": list(result.extract.notices),
        "columns_not_charged": list(result.extract.columns_not_charged),
        "file_totals": list(result.extract.file_totals),
        "rows": rows,
        "rejected": [
            {"source_row": whole(r), "reasons": list(dict.fromkeys(g["message"]))}
            for r, g in rejected.groupby("source_row")
        ],
        "records": len(result.records),
        "layout": {**preview["layout"], "command": preview["command"]},
    }
    return CheckResult(path, summary, errors_csv)


def dry_run_plan(settings: Settings, inbox: Path, profiles: list[Profile], say: Say) -> RunOutcome:
    """What a run would post, and how long it would take; writes nothing anywhere."""
    with Ledger(settings.ledger, readonly=True) as ledger:
        plan_frames = []
        with make_client(settings) as client:
            refs = reference_data(ledger, client, settings)
            for path in list_inbox(inbox):
                try:
                    result = process_file(
                        fingerprint(path), profiles, refs, settings, ledger.confirmed_profiles()
                    )
                except InputError as exc:
                    say(f"{printable(path.name)}: {exc}")
                    continue
                decision = decide_layout(
                    result.extract, _confirmation_of(result.extract, ledger.confirmed_layouts())
                )
                if not decision.confirmed:
                    preview = layout_preview(result, decision, accept_command(path, settings))
                    for line in preview_lines(preview):
                        say(line)
                    continue
                o = result.outcome
                say(
                    f"{o.name}: {o.rows_used} rows usable, {o.rows_rejected} rejected, "
                    f"{o.rows_skipped} skipped"
                )
                plan_frames.append(result.records)
            ledger_id = "dry-run"
            for frame in plan_frames:
                ledger.stage_records(ledger_id, None, frame)
            plan = describe_plan(
                plan_requests(ledger.records(states=["ready"]), settings.batch_size),
                client.limiter.limit or 150,
            )
        names = {
            str(k): str(v)
            for k, v in zip(refs.locations["id"], refs.locations["name"], strict=True)
        }
        say(
            f"would send {plan['requests']} requests carrying {plan['records']} records "
            f"(about {plan['estimated_minutes']} min at the current rate limit)"
        )
        for location_id, entry in plan["by_location"].items():
            say(
                f"  {names.get(location_id, location_id)}: {entry['requests']} requests, "
                f"{entry['records']} records, {reporting.dollars(entry['amount_cents'])}"
            )
    return RunOutcome(None, 0, None, {"plan": plan})
