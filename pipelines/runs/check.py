"""`tieout check`: what one file would become, without posting anything."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.core.config import Settings
from pipelines.core.disk import write_atomically
from pipelines.core.errors import InputError, TieoutError, UnreachableError
from pipelines.core.models import (
    ExtractResult,
    FileResult,
    Issue,
    IssueCode,
    RunOutcome,
    Say,
    printable,
    whole,
)
from pipelines.core.parsing import dollars
from pipelines.kinds import registered
from pipelines.ledger import Ledger
from pipelines.posting.load import describe_plan
from pipelines.posting.propexo import make_client, verify_token
from pipelines.reading.grids import fingerprint
from pipelines.reading.profiles import (
    Profile,
    profiles_for,
)
from pipelines.reading.propose import LayoutHeld
from pipelines.reconciling.before_send import issues_for_conflicts
from pipelines.resolving.refcache import reference_data
from pipelines.resolving.refs import (
    RefData,
)
from pipelines.runs.files import (
    accept_command,
    account_rows,
    decide_layout,
    errors_file_bytes,
    layout_preview,
    preview_lines,
    process_file,
    proposal_preview,
)
from pipelines.runs.inbox import (
    list_inbox,
)


@dataclass(frozen=True)
class CheckResult:
    """What `tieout check` found in one file: its summary (the ``--json`` contract, less
    where the rejects file went) and that rejects file's bytes; the caller writes files."""

    path: Path
    summary: dict[str, Any]
    errors_csv: bytes | None  # <name>.errors.csv, when any row was rejected
    online: bool = True  # names were checked against Propexo

    @property
    def errors_path(self) -> Path | None:
        """Where the rejects file goes: beside the file."""
        return self.path.with_name(self.path.name + ".errors.csv") if self.errors_csv else None

    @property
    def stale_errors_path(self) -> Path | None:
        """A rejects file beside a file that now checks clean online: it no longer says
        anything true, so it goes (offline, names are unchecked, so it stays)."""
        old = self.path.with_name(self.path.name + ".errors.csv")
        clean = self.errors_csv is None and self.online
        return old if clean and old.exists() else None


def group_causes(issues: list[Issue]) -> list[dict[str, Any]]:
    """One entry per distinct reason, with every row it is given for (first row first): two
    unknown charge codes on eight rows are two causes, not eight lines."""
    rows: dict[str, list[int]] = {}
    for issue in sorted(issues, key=lambda i: i.source_row):
        found = rows.setdefault(issue.message, [])
        if issue.source_row not in found:
            found.append(issue.source_row)
    return [{"reason": reason, "rows": found} for reason, found in rows.items()]


def rows_label(rows: list[int]) -> str:
    """ "row 4" or "rows 4, 5, 9"."""
    return ("row " if len(rows) == 1 else "rows ") + ", ".join(str(r) for r in rows)


def _to_confirm_online(result: FileResult) -> tuple[list[Issue], list[dict[str, Any]]]:
    """Offline, what only Propexo can decide is to confirm online, not rejected: the property
    a rent roll's title names (when its rows name none) and the unit of a row under a property
    that may be a single-family home. Returns the issues still rejected, and the rest as
    ``{reason, rows}``."""
    extract = result.extract
    # A rent roll's rows name residents; a bill's do not (and its property is never a title's).
    if extract.rows.empty or "resident_name" not in extract.rows:
        return result.issues, []
    rows = extract.rows
    named = rows.get("property_name")
    no_property = named is None or not (named.notna() & named.astype(str).str.strip().ne("")).any()
    unit_words = {"unit", extract.cells.get("unit", ("unit", ""))[0]}
    has_property = set()
    if named is not None:
        text = named.astype(str).str.strip()
        has_property = set(rows.loc[named.notna() & text.ne(""), "source_row"].astype(int))
    confirm: dict[str, list[int]] = {}
    kept: list[Issue] = []
    for issue in result.issues:
        reason = None
        if issue.code == IssueCode.MISSING_VALUE and issue.column == "property":
            if no_property and extract.title.strip():
                reason = (
                    f"property from the title ({extract.title.strip()[:80]!r}): Propexo decides "
                    "which property it names"
                )
        elif (
            issue.code == IssueCode.MISSING_VALUE
            and issue.column in unit_words
            and issue.source_row in has_property
        ):
            reason = "no unit: the only unit of its property, if Propexo has it as one home"
        if reason is None:
            kept.append(issue)
        else:
            confirm.setdefault(reason, []).append(issue.source_row)
    return kept, [{"reason": r, "rows": sorted(set(n))} for r, n in confirm.items()]


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
    source = fingerprint(path)
    try:
        result = process_file(
            source, profiles_for(settings, registered()), refs, settings, by_headers
        )
    except LayoutHeld as exc:
        preview = proposal_preview(source, exc.proposal, accept_command(path, settings))
        return CheckResult(
            path, held_summary(preview, offline=refs is None), None, refs is not None
        )
    decision = decide_layout(result.extract, _confirmation_of(result.extract, layouts))
    preview = layout_preview(
        result, decision, None if decision.confirmed else accept_command(path, settings)
    )
    issues, to_confirm = (result.issues, []) if refs is not None else _to_confirm_online(result)
    o = account_rows(result.extract, result.validated, issues) if to_confirm else result.outcome
    rejected = pd.DataFrame(
        [(i.source_row, i.message) for i in issues], columns=["source_row", "message"]
    )
    valid = result.validated.valid
    bad_rows = set(rejected["source_row"])
    valid = valid[~valid["source_row"].isin(bad_rows)]
    rows = json.loads(valid.to_json(orient="records", date_format="iso"))
    errors_csv = errors_file_bytes(result, issues) if issues else None
    summary = {
        "name": o.name,
        "sha256": o.sha256,
        "profile": o.profile,
        "kind": o.kind,
        "offline": refs is None,
        "names": "property, unit, resident and charge code"
        if "resident_name" in result.extract.rows
        else "vendor, property and GL account",
        "rows_read": o.rows_read,
        "rows_used": o.rows_used,
        "rows_rejected": o.rows_rejected,
        "rows_skipped": o.rows_skipped,
        # Offline every row not rejected waits for Propexo to know its names.
        "rows_to_confirm": o.rows_used if refs is None else 0,
        "to_confirm": to_confirm,
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
        "causes": group_causes(issues),
        "records": len(result.records),
        "layout": {**preview["layout"], "command": preview["command"]},
    }
    return CheckResult(path, summary, errors_csv, online=refs is not None)


@dataclass(frozen=True)
class CheckedFiles:
    """What `tieout check` found in its files: each file's summary (the ``--json`` contract:
    :func:`check_file`'s, with ``errors_file``, where its rejects file was written, and
    ``removed``, the stale rejects file it removed) and, when Propexo could not be reached,
    why the names were read offline."""

    files: list[dict[str, Any]]
    unreachable: UnreachableError | None = None

    @property
    def exit_code(self) -> int:
        """2 when Propexo was unreachable; else 0 when every data row is usable and no file is
        held with a proposal (which needs a person, as a rejected row does), 1 otherwise."""
        if self.unreachable is not None:
            return 2
        return 0 if all(r["rows_rejected"] == 0 and not r.get("held") for r in self.files) else 1


def check_files(
    settings: Settings,
    paths: Sequence[Path],
    *,
    offline: bool,
    on_unreachable: Callable[[UnreachableError], None] | None = None,
) -> CheckedFiles:
    """`tieout check` composed: the token verified and reference data read (unless
    ``offline``; Propexo unreachable, ``on_unreachable`` is told and the files are read
    offline), each file checked, its rejects file written beside it, and a rejects file left
    by an earlier check of a file that now checks clean removed."""
    for path in paths:
        if not path.exists():
            raise InputError(f"{path}: no such file")
    refs = None
    unreachable = None
    if not offline:
        try:
            with make_client(settings) as client:
                # The token is checked even when reference data is cached: a wrong token
                # must not pass `check` and fail at the first post.
                verify_token(client, settings)
                with Ledger(settings.ledger) as ledger:
                    refs = reference_data(ledger, client, settings)
        except UnreachableError as exc:
            unreachable = exc
            if on_unreachable is not None:
                on_unreachable(exc)
    results = []
    layouts = standing_confirmations(settings)
    for path in paths:
        checked = check_file(path, settings, refs, layouts)
        if checked.errors_csv is not None and checked.errors_path is not None:
            write_atomically(checked.errors_path, checked.errors_csv)
        stale = checked.stale_errors_path
        if stale is not None:
            stale.unlink()
        errors_file = str(checked.errors_path) if checked.errors_path else None
        results.append({**checked.summary, "errors_file": errors_file, "removed": str(stale or "")})
    return CheckedFiles(results, unreachable)


def held_summary(preview: dict[str, Any], *, offline: bool) -> dict[str, Any]:
    """`check --json` for a file held with a proposal: nothing read as lines yet (every count
    0), ``held`` true, and ``layout.proposal`` with each column's role and evidence, the rows
    it would use and their total."""
    layout = preview["layout"]
    return {
        "name": preview["name"],
        "sha256": preview["sha256"],
        "profile": None,
        "kind": layout["kind"],
        "offline": offline,
        "held": True,
        "names": "property, unit, resident and charge code",
        "rows_read": 0,
        "rows_used": 0,
        "rows_rejected": 0,
        "rows_skipped": 0,
        "rows_to_confirm": 0,
        "to_confirm": [],
        "skipped_by_kind": {},
        "source_total_cents": 0,
        "rejected_total_cents": 0,
        "period": None,
        "period_source": None,
        "notices": [],
        "columns_not_charged": [],
        "file_totals": [],
        "rows": [],
        "rejected": [],
        "causes": [],
        "records": 0,
        "layout": {**layout, "command": preview["command"]},
    }


def dry_run_plan(settings: Settings, inbox: Path, profiles: list[Profile], say: Say) -> RunOutcome:
    """What a run would post, and how long it would take; writes nothing anywhere. Each
    file's records are staged in the read-only ledger as a run would stage them, so a record
    key posted before with other content is a conflict here too."""
    rejected = 0
    with Ledger(settings.ledger, readonly=True) as ledger:
        with make_client(settings) as client:
            refs = reference_data(ledger, client, settings)
            for path in list_inbox(inbox):
                try:
                    result = process_file(
                        fingerprint(path), profiles, refs, settings, ledger.confirmed_profiles()
                    )
                except LayoutHeld as exc:
                    held = proposal_preview(
                        fingerprint(path), exc.proposal, accept_command(path, settings)
                    )
                    for line in preview_lines(held):
                        say(line)
                    continue
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
                staged, conflicts = ledger.stage_records(
                    "dry-run", None, result.records, registered()
                )
                found = issues_for_conflicts(
                    registered(), conflicts, result.records, result.source.name
                )
                if found:
                    issues = [*result.issues, *found]
                    o = account_rows(result.extract, result.validated, issues)
                else:
                    o = result.outcome
                rejected += o.rows_rejected
                before = len(result.records) - len(staged) - len(conflicts)
                say(
                    f"{o.name}: {o.rows_used} rows usable, {o.rows_rejected} rejected, "
                    f"{o.rows_skipped} skipped"
                    + (f"; {before} records already posted before" if before else "")
                )
                for cause in group_causes(found):
                    say(f"  {rows_label(cause['rows'])}, {cause['reason']}")
            plan = describe_plan(
                registered().plan_requests(ledger.records(states=["ready"]), settings.batch_size),
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
                f"{entry['records']} records, {dollars(entry['amount_cents'])}"
            )
    # As the run would: rows it would reject make it exit 1.
    return RunOutcome(None, 1 if rejected else 0, None, {"plan": plan})
