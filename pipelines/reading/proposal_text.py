"""What a person sees of a proposal before confirming it (one screen, the exact command last),
and the profile a confirmed proposal becomes (#38)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from pipelines.core.errors import InputError
from pipelines.core.models import printable
from pipelines.core.parsing import dollars
from pipelines.reading.profiles import normalize_header

if TYPE_CHECKING:
    from pipelines.reading.propose import Proposal

CHARGED = ("charge", "credit")  # the roles whose money a confirmed layout posts


def proposal_lines(name: str, proposal: dict[str, Any], command: str | None) -> list[str]:
    """A proposal (:meth:`Proposal.as_dict`) as a clerk reads it before confirming: one line
    per column, the rows and total against the file's own, and the exact command last (it
    fits one screen)."""
    sheet = proposal.get("sheet")
    where = f"sheet {sheet!r}, " if sheet else ""
    lines = [
        f"{name}: held, not posted: no known layout; tieout proposes "
        f"({where}header on row {proposal['header_rows'][0]}):"
    ]
    columns = proposal["columns"]
    width = min(max((len(c["header"]) for c in columns), default=0), 34)
    for c in columns:
        header = printable(c["header"])
        lines.append(f"  {header:<{width}}  {c['role']:<11}  {printable(c['evidence'])}")
    stated = proposal.get("stated_total_cents")
    own = (
        f"; the file's own total row (row {proposal['total_row']}) says {dollars(stated)}"
        if stated is not None
        else "; the file has no total row to tie it to"
    )
    lines.append(
        f"  would post {proposal['rows_used']:,} rows, {dollars(proposal['total_cents'])}{own}"
    )
    if command:
        lines.append(
            "  to correct it, add to the command: --charge H, --not-charge H, --unit H, "
            "--resident H, --property H (H: a header above)"
        )
        lines.append(f"  nothing moves until you confirm it: {command}")
    return lines


def _toml_string(value: str) -> str:
    text = value.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + re.sub(r"[\x00-\x1f\x7f]", lambda m: f"\\u{ord(m.group()):04x}", text) + '"'


def _toml_list(values: list[str]) -> str:
    return "[" + ", ".join(_toml_string(v) for v in values) + "]"


def proposal_profile(proposal: Proposal, name: str, by: str) -> str:
    """The profile a confirmed proposal becomes: its mapped columns by their own headers, its
    charged columns included and every other column ignored by name, so the profile reads its
    layout strictly (every column explained) and nothing else."""
    unit = proposal.of("unit")[0]
    residents = proposal.of("resident")
    prop = proposal.of("property")
    charged = proposal.of(*CHARGED)
    if not charged:
        raise InputError(
            f"{proposal.file_name}: nothing would be charged: name a charge column with --charge"
        )
    mapped = {c.position for c in (unit, *residents, *prop)}
    ignored = [
        normalize_header(c.header)
        for c in proposal.columns
        if c.position not in mapped and c.role not in CHARGED
    ]
    ignored += [normalize_header(c.header) for c in residents[1:]]
    required = ["unit", "resident_name"] + (["property_name"] if prop else [])
    lines = [
        f"# Confirmed by {printable(by)} from {proposal.file_name}"
        + (f" (sheet {proposal.sheet!r})" if proposal.sheet else "")
        + f", header on row {proposal.header_rows[0]}.",
        *(f"#   {printable(c.header)}: {c.role}" for c in proposal.columns),
        f"name = {_toml_string(name)}",
        'kind = "charge"',
        f"description = {_toml_string(f'confirmed layout of {proposal.file_name}')}",
        f"required = {_toml_list(required)}",
        "",
        "[columns]",
        f"unit = {_toml_list([normalize_header(unit.header)])}",
        f"resident_name = {_toml_list([normalize_header(residents[0].header)])}",
    ]
    if prop:
        lines.append(f"property_name = {_toml_list([normalize_header(prop[0].header)])}")
    if len(residents) > 1:
        joined = [normalize_header(c.header) for c in residents]
        lines += ["", "[join]", f"resident_name = {_toml_list(joined)}"]
    lines += [
        "",
        "[charges]",
        'mode = "columns"',
        f"include = {_toml_list([normalize_header(c.header) for c in charged])}",
        f"ignore = {_toml_list(list(dict.fromkeys(h for h in ignored if h)))}",
    ]
    return "\n".join(lines) + "\n"
