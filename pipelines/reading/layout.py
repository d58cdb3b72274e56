"""Where a grid's header is and what its columns mean: each profile's header aliases tried
against the first rows (two-row headers joined), the best match kept."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pipelines.core.columns import vocabulary_column
from pipelines.reading.profiles import Profile, is_non_charge, normalize_header

HEADER_SCAN_ROWS = 40


_VALUE_LIKE = re.compile(r"^[\s$(+-]*[\d,.]+\)?$|^\d{1,4}[/-]\d{1,2}[/-]\d{1,4}")


@dataclass(frozen=True)
class Layout:
    """Where the header is and what each column means, for one sheet under one profile."""

    profile: Profile
    header_rows: tuple[int, ...]
    columns: dict[int, str]
    charge_columns: dict[int, str]
    score: tuple[int, int]
    # Columns neither mapped, charged nor a known non-charge family: never charged, but
    # reported when they hold amounts.
    other_columns: dict[int, str] = field(default_factory=dict)
    # A per-row total column ("Total"): never charged, but its total row states the file's sum.
    row_total_column: int | None = None
    # Each mapped column's header as the file writes it ("Tenant" for resident_name).
    headers: dict[int, str] = field(default_factory=dict)
    # Columns mapped or charged only through the general header vocabulary
    # (``columns.COLUMN_VOCABULARY``, ``profiles.CHARGE_VOCABULARY``), not the profile's own
    # names nor a charge code or alias: what a person confirms before money moves.
    vocabulary: frozenset[int] = frozenset()
    # Every column's header text (two-row headers joined), and the lowest row's own text.
    cells: tuple[str, ...] = ()
    leaves: tuple[str, ...] = ()


Candidate = tuple[tuple[int, ...], list[str], list[str]]


def header_candidates(grid: pd.DataFrame) -> list[Candidate]:
    """Header texts for one-row and two-row headers near the top of the sheet.

    Each candidate is (rows, full header text per column, the lowest header row's own text).
    """
    top = grid.head(HEADER_SCAN_ROWS).fillna("").astype(str)
    out: list[Candidate] = []
    for r in range(len(top)):
        row = [c.strip() for c in top.iloc[r].tolist()]
        out.append(((r,), row, row))
        if r + 1 < len(top):
            lower = [c.strip() for c in top.iloc[r + 1].tolist()]
            # A second header row holds words, never amounts or dates.
            if not any(row) or not any(lower) or any(_VALUE_LIKE.match(c) for c in lower if c):
                continue
            spread = pd.Series(row).replace("", pd.NA).ffill().fillna("").tolist()
            # A cell merged over both rows ("Unit") reads once, not "Unit Unit".
            combined = [
                f"{u} {lo}".strip() if lo and lo != own else own
                for u, lo, own in zip(spread, lower, row, strict=True)
            ]
            out.append(((r, r + 1), combined, lower))
    return out


def match_layout(
    profile: Profile,
    rows: tuple[int, ...],
    cells: list[str],
    leaves: list[str],
    known_codes: frozenset[str] = frozenset(),
    allow_no_charges: bool = False,
) -> Layout | None:
    aliases = profile.alias_map()
    columns: dict[int, str] = {}
    for i, cell in enumerate(cells):
        canonical = aliases.get(normalize_header(cell)) if cell else None
        if canonical and canonical not in columns.values():
            columns[i] = canonical
    # A column the profile declares but did not find under its own names, found under a name
    # exports commonly give it ("Apt #", "Lessee"); never a header that names a charge code
    # (an alias in charge_codes.csv wins over the vocabulary).
    vocabulary: set[int] = set()
    wanted = [c for c in (*profile.required, *profile.columns) if c not in columns.values()]
    for i, cell in enumerate(cells):
        if i in columns or not cell or not wanted or normalize_header(cell) in known_codes:
            continue
        canonical = vocabulary_column(cell, wanted)
        if canonical is not None:
            columns[i] = canonical
            vocabulary.add(i)
            wanted.remove(canonical)
    if not columns or not set(profile.required) <= set(columns.values()):
        return None  # a header that names no column of the profile is not its header
    charge_columns: dict[int, str] = {}
    other_columns: dict[int, str] = {}
    if profile.charge_mode == "columns":
        for i, (cell, leaf) in enumerate(zip(cells, leaves, strict=True)):
            if i in columns or not cell:
                continue
            header = " ".join(cell.split())
            if profile.charges_header(cell, known_codes) or profile.charges_header(
                leaf, known_codes
            ):
                charge_columns[i] = header
                if not (
                    profile.names_charge(cell, known_codes)
                    or profile.names_charge(leaf, known_codes)
                ):
                    vocabulary.add(i)
            elif not (is_non_charge(cell) or is_non_charge(leaf)):
                other_columns[i] = header
        if not charge_columns and not allow_no_charges:
            return None
    named = len({cell for cell in cells if cell})  # merged cells repeat one name
    row_total = next(
        (
            i
            for i, cell in enumerate(cells)
            if i not in columns and normalize_header(cell) in ROW_TOTAL_HEADERS
        ),
        None,
    )
    return Layout(
        profile,
        rows,
        columns,
        charge_columns,
        score=(len(columns), named),
        other_columns=other_columns,
        row_total_column=row_total,
        headers={i: " ".join(cells[i].split()) for i in columns},
        vocabulary=frozenset(vocabulary),
        cells=tuple(cells),
        leaves=tuple(leaves),
    )


def detect_layout(
    grid: pd.DataFrame,
    profiles: list[Profile],
    file_name: str,
    profile_name: str | None = None,
    known_codes: frozenset[str] = frozenset(),
) -> Layout | None:
    """The best (profile, header rows) for a sheet: most canonical columns, then file-name hints."""
    candidates = [p for p in profiles if profile_name in (None, p.name)]
    best: tuple[tuple[int, ...], Layout] | None = None
    name = _compact(file_name)
    top = grid.head(HEADER_SCAN_ROWS).fillna("").astype(str)
    for rows, cells, leaves in header_candidates(grid):
        # A hint in the file's name or in its title above the header ("Rent Roll with Lease
        # Charges"); the longest hint found is the most specific ("lease charges" over "charge").
        above = " ".join(" ".join(r) for r in top.iloc[: rows[0]].to_numpy().tolist())
        title = _compact(above)
        for profile in candidates:
            if not profile.applies_to(" ".join(above.split()), file_name):
                continue
            layout = match_layout(profile, rows, cells, leaves, known_codes)
            if layout is None:
                continue
            hinted = max(
                (len(h) for h in map(_compact, profile.file_name_hints) if h in name or h in title),
                default=0,
            )
            # Columns found under the profile's own names first: the vocabulary only helps a
            # profile read a file, never makes it the better match.
            own = len(set(layout.columns) - layout.vocabulary)
            # Then the header that finds more charge columns: a merged group header over its
            # leaves ("Accommodation" over "Monthly") names the charge the leaf alone does not.
            key = (own, *layout.score, len(layout.charge_columns), hinted, -len(rows), -rows[0])
            if best is None or key > best[0]:
                best = (key, layout)
    return best[1] if best else None


def _compact(text: str) -> str:
    """Text as hints are compared: lower case, letters and digits only ("Lease_Charges" and
    "LeaseCharges" are "leasecharges")."""
    return re.sub(r"[^a-z0-9]+", "", text.lower())


def column_letter(labels: pd.Index, position: int) -> str:
    """The spreadsheet letter of a grid's column: its own label is its place in the sheet
    (empty columns were dropped, not renumbered). 0 → A, 25 → Z, 26 → AA."""
    label = labels[position]
    number = (int(label) if isinstance(label, (int, np.integer)) else position) + 1
    letters = ""
    while number:
        number, rest = divmod(number - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters


def cell_names(labels: pd.Index, layout: Layout) -> dict[str, tuple[str, str]]:
    """Each field's (header as the file writes it, spreadsheet column letter), so a reason can
    point at the cell: canonical names for mapped columns, the header itself for charges.

    ``labels`` are the sheet's own column positions (empty columns were dropped, not renumbered).
    """
    out = {
        name: (layout.headers.get(i, name), column_letter(labels, i))
        for i, name in layout.columns.items()
    }
    out |= {h: (h, column_letter(labels, i)) for i, h in layout.charge_columns.items()}
    return out


ROW_TOTAL_HEADERS = {
    "total",
    "totals",
    "total charges",
    "total amount",
    "row total",
    "total monthly",
}


# --- a layout as a person confirms it -----------------------------------------------------------

# A built-in profile confirms a layout by itself only when at least this share of the file's
# non-empty columns is explained by it (mapped, charged, or known never to be a charge).
STRICT_SHARE = 0.8


@dataclass(frozen=True)
class LayoutFacts:
    """What identifies a file's layout, and what reading it that way would do with its
    columns. ``why_held`` says why the profile does not confirm it by itself (empty: a strict
    match)."""

    fingerprint: str
    header_key: str  # the headers alone, whatever profile reads them
    kind: str
    sheet: str | None
    header_rows: tuple[int, ...]  # 1-based, as a person sees them
    headers: tuple[str, ...]  # every column's header, normalized ("" for none)
    profile: str
    mapping: dict[str, str]  # canonical column → header as the file writes it
    charged: tuple[str, ...]
    not_charged: tuple[str, ...]  # known never to be a charge (deposit, dates, ...)
    unknown: tuple[str, ...]  # neither mapped, charged nor known
    explained_share: float
    why_held: tuple[str, ...] = ()

    @property
    def strict(self) -> bool:
        return not self.why_held

    def as_dict(self) -> dict[str, object]:
        """The layout as JSON data (check --json, summary.json, the ledger)."""
        return {
            "fingerprint": self.fingerprint,
            "kind": self.kind,
            "sheet": self.sheet,
            "header_rows": list(self.header_rows),
            "headers": list(self.headers),
            "profile": self.profile,
            "mapping": dict(self.mapping),
            "charged": list(self.charged),
            "not_charged": list(self.not_charged),
            "unknown": list(self.unknown),
            "explained_share": round(self.explained_share, 3),
            "strict_match": self.strict,
            "why_held": list(self.why_held),
        }


def _digest(data: object) -> str:
    text = json.dumps(data, sort_keys=True, ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def describe_layout(
    layout: Layout,
    sheet: str | None,
    filled: list[bool],
    known_codes: frozenset[str] = frozenset(),
) -> LayoutFacts:
    """A layout's fingerprint and whether its profile reads it by its own names alone.

    ``filled``: per column, whether the column holds anything (its header or a cell below it).
    A strict match reads every mapped column by a header the profile's own file declares, every
    charge column by the profile's own ``include`` or a Propexo charge code (or an alias a
    person wrote), and explains at least 80% of the non-empty columns."""
    profile = layout.profile
    cells = list(layout.cells)
    leaves = list(layout.leaves) or cells
    headers = tuple(normalize_header(c) for c in cells)
    own = profile.own_names()
    why: list[str] = []
    guessed = [
        f"{layout.headers.get(i, cells[i])!r} as {canonical}"
        for i, canonical in layout.columns.items()
        if own.get(headers[i]) != canonical
    ]

    def own_charge(i: int) -> bool:
        names = (cells[i], leaves[i])
        return any(profile.charged_by_own_name(n) for n in names) or any(
            normalize_header(n) in known_codes for n in names
        )

    guessed += [
        f"{header!r} as a charge"
        for i, header in layout.charge_columns.items()
        if not own_charge(i)
    ]
    if guessed:
        why.append(
            "read through the general vocabulary, not the profile's own header names: "
            + ", ".join(guessed)
        )
    missing = [c for c in profile.required if c not in layout.columns.values()]
    if missing:
        why.append(f"required columns missing: {', '.join(missing)}")
    charged_at = set(layout.charge_columns)
    not_charged: list[str] = []
    unknown: list[str] = []
    explained = 0
    nonempty = 0
    for i, cell in enumerate(cells):
        if not (filled[i] if i < len(filled) else bool(cell)):
            continue
        nonempty += 1
        shown = " ".join(cell.split()) or f"(column {i + 1}, no header)"
        if i in layout.columns or i in charged_at or i == layout.row_total_column:
            explained += 1
        elif cell and (profile.known_not_charge(cell) or profile.known_not_charge(leaves[i])):
            explained += 1
            not_charged.append(shown)
        else:
            unknown.append(shown)
    share = explained / nonempty if nonempty else 1.0
    if share < STRICT_SHARE:
        why.append(
            f"only {explained} of its {nonempty} columns are known to {profile.name} "
            f"({share:.0%}; a strict match needs {STRICT_SHARE:.0%})"
        )
    mapping = {
        canonical: layout.headers.get(i, cells[i]) for i, canonical in layout.columns.items()
    }
    rows = tuple(r + 1 for r in layout.header_rows)
    key = {"sheet": sheet, "header_rows": list(rows), "headers": list(headers)}
    identity = {
        **key,
        "kind": profile.kind,
        "profile": profile.name,
        "mapping": {c: normalize_header(h) for c, h in mapping.items()},
        "charged": sorted(normalize_header(h) for h in layout.charge_columns.values()),
    }
    return LayoutFacts(
        fingerprint=_digest(identity),
        header_key=_digest(key),
        kind=profile.kind,
        sheet=sheet,
        header_rows=rows,
        headers=headers,
        profile=profile.name,
        mapping=mapping,
        charged=tuple(layout.charge_columns.values()),
        not_charged=tuple(not_charged),
        unknown=tuple(unknown),
        explained_share=share,
        why_held=tuple(why),
    )
