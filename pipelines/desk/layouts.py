"""The desk's Layouts page, run in a worker thread: the files held for their layout, each
held file of no known layout as its proposal's table (header, sample values, sum, the file's
own total, the proposed role) with the roles changeable in place, and the confirmation, which
is `tieout layout accept FILE [--charge H] [--not-charge H] [--unit H] [--resident H]
[--property H]` (:func:`pipelines.cli.layout.accept_layout`); the confirmed layouts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.core.errors import InputError
from pipelines.desk.app import Desk
from pipelines.desk.auth import Session
from pipelines.desk.views import inbox_shas
from pipelines.ledger.desk import held_layouts

# The roles a person may give a column, as `layout accept`'s options give them.
CHOICES = {
    "charge": "charged (--charge)",
    "not_charged": "not charged (--not-charge)",
    "unit": "the unit (--unit)",
    "resident": "the resident (--resident)",
    "property": "the property (--property)",
}
ONE_COLUMN = ("unit", "resident", "property")  # one header each, as the options take them
SAMPLES = 3


def _samples(path: Path, proposal: Any) -> dict[int, list[str]]:
    """The first few distinct values under each column of the proposal's table (as a person
    reads them, above the file's own total row)."""
    from pipelines.core.models import printable
    from pipelines.reading.grids import read_grids

    grids = [grid for name, grid in read_grids(path) if name == proposal.sheet]
    if not grids:
        return {}
    table = grids[0].dropna(how="all", axis=1).reset_index(drop=True)
    table.columns = pd.RangeIndex(table.shape[1])
    end = (proposal.total_row - 1) if proposal.total_row else len(table)
    body = table.iloc[proposal.header_rows[0] : end]
    found: dict[int, list[str]] = {}
    for column in proposal.columns:
        cells = body[column.position].dropna().astype(str).str.strip()
        distinct = cells[cells.ne("")].drop_duplicates().head(SAMPLES)
        found[column.position] = [printable(v)[:30] for v in distinct]
    return found


def proposal_table(path: Path) -> dict[str, Any] | None:
    """The held file's proposal (:func:`pipelines.reading.propose.propose_layout`, the
    function a run and `layout accept` call) as the page's table, or None."""
    from pipelines.reading.propose import propose_layout

    proposal = propose_layout(path)
    if proposal is None or not proposal.usable:
        return None
    samples = _samples(path, proposal)
    columns = [
        {
            "index": n,
            **column.as_dict(),
            "samples": samples.get(column.position, []),
            "choices": CHOICES
            if column.role in CHOICES
            else {column.role: f"{column.role.replace('_', ' ')} (as proposed)", **CHOICES},
        }
        for n, column in enumerate(proposal.columns)
    ]
    return {**proposal.as_dict(), "columns": columns}


def layout_page(desk: Desk) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The held files still in the inbox with their previews (and their proposal's table when
    no profile reads them), and the confirmed layouts with who confirmed them and when."""
    waiting = inbox_shas(desk)
    with desk.ledger(readonly=True) as ledger:
        held = [
            {"sha256": sha, **use, "path": waiting[sha]}
            for sha, use in held_layouts(ledger).items()
            if sha in waiting
        ]
        confirmed = [
            {str(k): v for k, v in r.items()} for r in ledger.confirmed_layouts().to_dict("records")
        ]
    for h in held:
        proposed = (h["preview"].get("layout") or {}).get("proposal")
        h["table"] = proposal_table(h["path"]) if proposed else None
    return held, confirmed


def corrections_of(path: Path, roles: dict[int, str]) -> dict[str, str]:
    """The roles chosen on the page (column index → role) as `layout accept`'s corrections:
    the columns whose role differs from the proposal's, each by its header, as the options
    --charge, --not-charge, --unit, --resident and --property name them."""
    from pipelines.cli.layout import _corrections
    from pipelines.reading.propose import propose_layout

    proposal = propose_layout(path)
    if proposal is None:
        raise InputError(f"{path.name}: tieout no longer proposes a layout for it")
    if set(roles) - set(range(len(proposal.columns))):
        raise InputError(
            f"{path.name}: its columns changed since the page was loaded: load it again"
        )
    chosen: dict[str, list[str]] = {role: [] for role in CHOICES}
    for n, column in enumerate(proposal.columns):
        role = roles.get(n, column.role)
        if role == column.role:
            continue
        if role not in CHOICES:
            raise InputError(f"{column.header!r}: choose one of the roles offered")
        chosen[role].append(column.header)
    for role in ONE_COLUMN:
        if len(chosen[role]) > 1:
            raise InputError(
                f"one column at a time is made the {role}: {', '.join(chosen[role])} were chosen"
            )
    single = {role: next(iter(chosen[role]), None) for role in ONE_COLUMN}
    return _corrections(
        tuple(chosen["charge"]),
        tuple(chosen["not_charged"]),
        single["unit"],
        single["resident"],
        single["property"],
    )


def confirm_layout(
    desk: Desk, session: Session, sha256: str, roles: dict[int, str] | None = None
) -> list[str]:
    """`tieout layout accept FILE` (with the corrections chosen on the page) for the held file
    of this content in the inbox, as the signed-in user."""
    from pipelines.cli.layout import accept_layout

    path = inbox_shas(desk).get(sha256)
    if path is None:
        raise InputError("that file is no longer in the inbox: nothing to confirm")
    corrections = corrections_of(path, roles) if roles else {}
    accepted = accept_layout(desk.settings, path, session.name, corrections)
    desk.record(session, "layout", sha256, layout_id=accepted["layout_id"], corrections=corrections)
    layout = accepted["preview"]["layout"]
    changed = "; ".join(f"{h} → {r.replace('_', ' ')}" for h, r in corrections.items())
    return [
        f"layout {accepted['layout_id']} ({accepted['facts'].fingerprint}) confirmed by "
        f"{session.name}" + (f" with {changed}" if changed else "")
        + f": would charge {', '.join(layout.get('charged') or []) or 'nothing'}; "
        f"{path.name} is taken in by the next run"
    ]  # fmt: skip
