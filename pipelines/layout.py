"""Where a grid's header is and what its columns mean: each profile's header aliases tried
against the first rows (two-row headers joined), the best match kept."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pipelines.columns import vocabulary_column
from pipelines.profiles import Profile, is_non_charge, normalize_header

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
            combined = [
                f"{u} {lo}".strip() if lo else own
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
    best: tuple[tuple[int, int, int, int, int, int], Layout] | None = None
    name = _compact(file_name)
    top = grid.head(HEADER_SCAN_ROWS).fillna("").astype(str)
    for rows, cells, leaves in header_candidates(grid):
        # A hint in the file's name or in its title above the header ("Rent Roll with Lease
        # Charges"); the longest hint found is the most specific ("lease charges" over "charge").
        title = _compact(" ".join(" ".join(r) for r in top.iloc[: rows[0]].to_numpy().tolist()))
        for profile in candidates:
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
            key = (own, *layout.score, hinted, -len(rows), -rows[0])
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


ROW_TOTAL_HEADERS = {"total", "totals", "total charges", "total amount", "row total"}
