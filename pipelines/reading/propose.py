"""A layout proposed for a rent roll no profile reads (#38): each column's role, with the
evidence for it, and the rows and total that reading would use. Nothing moves on it: the file
is held until a person confirms the proposal (`tieout layout accept FILE`, corrected in the
same command), which then becomes a profile (:func:`proposal_profile`).

Roles are told from the values' shape as much as from header words: a unit column holds short
tokens with digits, mostly one per row (a care-level column of ``AL``/``IL`` is not one); a
resident column holds person names (``Last, First``), or a last-name and a first-name column
are joined (a first-name column alone names nobody). A money column is charged when its header
names a charge; never when it is a deposit, a balance, a market rate, a row total, or repeats
another charged column's money row by row (charging both would double the rent).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.core.errors import InputError
from pipelines.core.hints import shell_word
from pipelines.core.models import printable
from pipelines.core.parsing import dollars, parse_money
from pipelines.reading.grids import read_grids
from pipelines.reading.layout import HEADER_SCAN_ROWS
from pipelines.reading.profiles import Profile, normalize_header
from pipelines.reading.proposal_text import CHARGED, proposal_lines, proposal_profile
from pipelines.reading.propose_table import as_unit_text as _as_unit_text
from pipelines.reading.propose_table import filled as _filled
from pipelines.reading.propose_table import (
    group_rows,
    header_rows,
    joined_headers,
    total_row,
)
from pipelines.reading.propose_table import samples as _samples
from pipelines.reading.propose_table import share as _share

ROLES = (
    "unit",
    "resident",
    "property",
    "period",
    "charge",
    "one_time",
    "credit",
    "not_charged",
    "unknown",
)

# What a person sees and the profile a confirmation becomes live in proposal_text; said here too.
__all__ = [
    "CHARGED",
    "ROLES",
    "Column",
    "LayoutHeld",
    "Proposal",
    "proposal_lines",
    "proposal_profile",
    "propose_layout",
]

_UNIT_WORDS = re.compile(r"\b(unit|units|apt|apartment|suite|ste|space|room|rm|door|lot)\b")
_PROPERTY_WORDS = re.compile(r"\b(property|community|building|bldg|complex|facility|site|prop)\b")
_RESIDENT_WORDS = re.compile(r"\b(resident|tenant|occupant|lessee|renter|customer|name)\b")
_FIRST = re.compile(r"\bfirst\b|\bgiven\b")
_LAST = re.compile(r"\blast\b|\bsurname\b|\bfamily\b")
_PERIOD_WORDS = re.compile(r"\b(period|billing month|month)\b")
_ONE_TIME = re.compile(
    r"\b(one time|onetime|residency fee|community fee|entrance fee|move in fee|application"
    r"|non refundable|setup)\b"
)
_CREDIT = re.compile(r"\b(concessions?|discounts?|credits?|waiver|abatement)\b")
_CHARGE_WORDS = re.compile(r"\b(rent|rate|charges?|fees?|care|services?|accommodation)\b")
# Of two columns holding the same money, the one a person would charge: the rent, the month.
_PREFERRED = re.compile(r"\b(rent|monthly)\b")
_ROW_TOTAL = re.compile(r"\btotals?\b|\bdue\b")
# Families that are never charged, with why (the first that matches says it).
_NOT_CHARGED = (
    (re.compile(r"\bdeposits?\b"), "a deposit is held, not charged"),
    (re.compile(r"\bbalance\b|\bpast due\b|\bdelinquen|\bowed\b"), "a balance owed, not a charge"),
    (
        re.compile(r"\bmarket\b|\basking\b|\bbudget|\bstd\b|\bstandard\b|\bstreet\b"),
        "a market rate: what the unit would rent for, not what the resident is charged",
    ),
    (re.compile(r"\bpaid\b|\bpayments?\b|\breceived\b|\bprepaid\b"), "payments, not charges"),
    (re.compile(r"\bsq\s*ft\b|\bsqft\b|\bsquare\b"), "a size, not money"),
)
_UNIT_VALUE = re.compile(r"^[A-Za-z]{0,4}[-# ]?\d{1,5}[A-Za-z]?([-/]\d{1,4}[A-Za-z]?)?$")
_FULL_NAME = re.compile(
    r"^[A-Za-z][A-Za-z'’.-]+(\s+[A-Za-z][A-Za-z'’.-]*)*,\s*[A-Za-z][A-Za-z'’. -]*$"
    r"|^[A-Z][a-z'’.-]+(\s+[A-Z]\.?)?\s+[A-Z][A-Za-z'’-]+$"
)
_ONE_WORD = re.compile(r"^[A-Za-z][A-Za-z'’.-]*$")
_DATE = re.compile(r"^\d{1,4}[/-]\d{1,4}([/-]\d{1,4})?(\s|T|$)")
_VACANT = re.compile(r"^\W*(vacant|model|down|admin|employee unit)\b", re.IGNORECASE)
_SHARE = 0.8  # of a column's filled cells that must have a shape for it to count


class LayoutHeld(InputError):
    """A file of no known layout, held with a proposal until a person confirms it."""

    def __init__(self, message: str, proposal: Proposal) -> None:
        super().__init__(message)
        self.proposal = proposal


@dataclass(frozen=True)
class Column:
    """One column of a proposal: its role and why."""

    position: int
    header: str
    role: str
    evidence: str
    sum_cents: int | None = None
    stated_total_cents: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "header": self.header,
            "role": self.role,
            "evidence": self.evidence,
            "sum_cents": self.sum_cents,
            "stated_total_cents": self.stated_total_cents,
        }


@dataclass(frozen=True)
class Proposal:
    """A proposed reading of one sheet: its columns' roles, the rows it would use (a unit and a
    resident, not vacant, above the total row) and their charged total."""

    file_name: str
    sheet: str | None
    header_rows: tuple[int, ...]  # 1-based
    columns: tuple[Column, ...]
    rows_used: int
    total_cents: int
    total_row: int | None  # 1-based: the file's own total row
    stated_total_cents: int | None  # the total row's sum over the charged columns

    def of(self, *roles: str) -> list[Column]:
        return [c for c in self.columns if c.role in roles]

    @property
    def key(self) -> str:
        """What names this layout whatever its rows: its sheet and headers."""
        data = {"sheet": self.sheet, "headers": [normalize_header(c.header) for c in self.columns]}
        text = json.dumps(data, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:10]

    @property
    def usable(self) -> bool:
        """Whether there is something to confirm: units, residents and money."""
        return bool(self.of("unit") and self.of("resident") and self.rows_used) and any(
            c.sum_cents is not None for c in self.columns
        )

    def as_dict(self) -> dict[str, Any]:
        """The ``layout.proposal`` contract of `check --json`."""
        return {
            "sheet": self.sheet,
            "header_rows": list(self.header_rows),
            "columns": [c.as_dict() for c in self.columns],
            "rows_used": self.rows_used,
            "total_cents": self.total_cents,
            "total_row": self.total_row,
            "stated_total_cents": self.stated_total_cents,
        }


# --- the proposal ---------------------------------------------------------------------------------


def propose_layout(
    path: Path, sheet: str | None = None, roles: dict[str, str] | None = None
) -> Proposal | None:
    """The proposal for a file (its sheet with the most usable rows, or ``sheet``); None when
    no sheet holds units, residents and money. ``roles``: a person's corrections, header →
    role (headers compared normalized; one that names no column is an error)."""
    grids = [(name, grid) for name, grid in read_grids(path) if not grid.empty]
    if sheet is not None:
        grids = [(name, grid) for name, grid in grids if name == sheet]
        if not grids:
            raise InputError(f"{printable(path.name)}: no sheet called {sheet!r} with rows")
    wanted = {normalize_header(h): r for h, r in (roles or {}).items()}
    best: Proposal | None = None
    for name, grid in grids:
        proposal = _propose_sheet(printable(path.name), name, grid, wanted)
        if proposal is not None and (best is None or proposal.rows_used > best.rows_used):
            best = proposal
    if best is not None and wanted:
        headers = {normalize_header(c.header) for c in best.columns}
        missing = [h for h in roles or {} if normalize_header(h) not in headers]
        if missing:
            raise InputError(
                f"{printable(path.name)}: no column called {', '.join(map(repr, missing))}; "
                f"its columns: {', '.join(repr(c.header) for c in best.columns)}"
            )
    return best


def _propose_sheet(
    file_name: str, sheet: str | None, grid: pd.DataFrame, wanted: dict[str, str]
) -> Proposal | None:
    table = grid.dropna(how="all", axis=1).reset_index(drop=True)
    table.columns = pd.RangeIndex(table.shape[1])
    top = table.head(HEADER_SCAN_ROWS).fillna("").astype(str)
    rows = header_rows(top)
    if rows is None:
        return None
    at = rows[-1]
    headers = joined_headers(top, rows)
    body = table.iloc[at + 1 :]
    if body.empty:
        return None  # a header and nothing under it: no rows to propose a reading of
    text = body.astype(object).where(body.notna(), "").astype(str).apply(lambda c: c.str.strip())
    total_at = total_row(text)
    if total_at is not None:
        body, text = body.loc[: total_at - 1], text.loc[: total_at - 1]
    data = (text.ne("").sum(axis=1) >= 2) & ~group_rows(text)
    segments = (~data).cumsum()  # a group, blank or stray row ends a unit's rows
    body, text = body[data], text[data]
    if body.empty:
        return None
    named = [i for i, h in enumerate(headers) if h]
    roles = _roles(headers, named, body, text, wanted)
    unit = next((i for i, (role, _) in roles.items() if role == "unit"), None)
    residents = [i for i, (role, _) in roles.items() if role == "resident"]
    if unit is None or not residents:
        return _proposal(file_name, sheet, rows, headers, roles, {}, {}, 0, 0, total_at, None)
    who = text[residents].agg(" ".join, axis=1).str.strip()
    # A lone second resident's row (no unit) right under a resident's row is of that unit.
    units = text[unit].where(text[unit].ne("")).groupby(segments[data]).ffill().fillna("")
    text = text.copy()
    text[unit] = units
    used = text[unit].ne("") & who.ne("") & ~who.str.match(_VACANT)
    if (text.loc[used, unit] + "\x00" + who[used]).duplicated().any():
        # A resident on several rows of a unit: one row per charge (a charge code column and
        # an amount), not a roll of charge columns; a profile reads it, no proposal does.
        return None
    cents = {
        i: parse_money(body[i].astype(object))[0].fillna(0).astype("int64")
        for i, (role, _) in roles.items()
        if role not in ("unit", "resident", "property", "period") and _is_money(body[i])
    }
    stated = _stated(table, total_at, cents)
    roles = _money_roles(headers, roles, cents, stated, wanted)
    charged = [i for i in cents if roles[i][0] in CHARGED]
    total = int(sum(int(cents[i][used].sum()) for i in charged))
    figures = [v for i in charged if (v := stated.get(i)) is not None]
    stated_sum = sum(figures) if total_at is not None and figures else None
    return _proposal(
        file_name, sheet, rows, headers, roles, cents, stated, int(used.sum()), total, total_at,
        stated_sum,
    )  # fmt: skip


def _proposal(
    file_name: str,
    sheet: str | None,
    rows: tuple[int, ...],
    headers: list[str],
    roles: dict[int, tuple[str, str]],
    cents: dict[int, pd.Series],
    stated: dict[int, int | None],
    rows_used: int,
    total: int,
    total_at: int | None,
    stated_sum: int | None,
) -> Proposal:
    columns = tuple(
        Column(
            i,
            headers[i],
            role,
            evidence,
            int(cents[i].sum()) if i in cents else None,
            stated.get(i),
        )
        for i, (role, evidence) in sorted(roles.items())
    )
    total_line = total_at + 1 if total_at is not None else None  # as a person counts rows
    header_at = tuple(r + 1 for r in rows)  # as a person counts rows
    return Proposal(file_name, sheet, header_at, columns, rows_used, total, total_line, stated_sum)


def _is_money(cells: pd.Series) -> bool:
    values = _filled(cells)
    if values.empty or _share(values, _DATE) > 0.5:
        return False
    _, errors = parse_money(cells[cells.notna()].astype(object))
    return bool(errors[_filled(cells).index].isna().mean() >= _SHARE)


def _stated(
    table: pd.DataFrame, total_at: int | None, cents: dict[int, pd.Series]
) -> dict[int, int | None]:
    if total_at is None:
        return {}
    row = table.loc[[total_at], list(cents)]
    out: dict[int, int | None] = {}
    for i in cents:
        value, error = parse_money(row[i].astype(object))
        out[i] = (
            None if pd.isna(value.iloc[0]) or not pd.isna(error.iloc[0]) else int(value.iloc[0])
        )
    return out


def _unit_roles(
    named: list[int], words: dict[int, str], values: dict[int, pd.Series], said: dict[int, str]
) -> dict[int, tuple[str, str]]:
    """The unit column: short tokens with digits, mostly one per row (the header's word
    helps); a column whose header says unit but whose values are no unit numbers is not it."""
    roles: dict[int, tuple[str, str]] = {}
    unit_scores: dict[int, int] = {}
    for i in named:
        v = values[i]
        shaped = _share(v, _UNIT_VALUE) >= _SHARE and v.str.contains(r"\d").mean() >= _SHARE
        distinct = v.nunique() >= 0.6 * len(v) if len(v) else False
        decimals = v.str.contains(r"\.\d{2}$").mean() > 0.5 if len(v) else False
        score = 3 * bool(_UNIT_WORDS.search(words[i])) + 2 * (shaped and distinct)
        unit_scores[i] = score if shaped and distinct and not decimals else 0
    forced = [i for i, r in said.items() if r == "unit"]
    unit = forced[0] if forced else max(unit_scores, key=lambda i: unit_scores[i], default=None)
    if unit is not None and (forced or unit_scores[unit] >= 2):
        why = "set by you" if forced else _unit_evidence(words[unit], values[unit])
        roles[unit] = ("unit", why)
    for i in named:
        if i not in roles and _UNIT_WORDS.search(words[i]) and unit_scores[i] == 0:
            roles[i] = (
                "not_charged",
                f"not a unit: its values ({_samples(values[i])}) are no unit numbers",
            )
    return roles


def _roles(
    headers: list[str],
    named: list[int],
    body: pd.DataFrame,
    text: pd.DataFrame,
    wanted: dict[str, str],
) -> dict[int, tuple[str, str]]:
    """The roles of the columns that are not money: unit, resident, property, period; every
    other column is decided later (money) or not charged (text, dates)."""
    roles: dict[int, tuple[str, str]] = {}
    said = {
        i: wanted[normalize_header(headers[i])]
        for i in named
        if normalize_header(headers[i]) in wanted
    }
    words = {i: normalize_header(headers[i]) for i in named}
    values = {i: _filled(body[i].map(_as_unit_text)) for i in named}
    roles.update(_unit_roles(named, words, values, said))
    # Residents: person names in one column, else a last-name and a first-name column joined.
    free = [i for i in named if i not in roles]
    forced = [i for i, r in said.items() if r == "resident"]
    full = [
        i
        for i in free
        if _share(values[i], _FULL_NAME) >= 0.6
        and values[i].nunique() > 1
        and not _PROPERTY_WORDS.search(words[i])
    ]
    lasts = [i for i in free if _LAST.search(words[i]) and _share(values[i], _ONE_WORD) >= _SHARE]
    firsts = [i for i in free if _FIRST.search(words[i]) and _share(values[i], _ONE_WORD) >= _SHARE]
    if forced:
        for i in forced:
            roles[i] = ("resident", "set by you")
    elif full:
        best = max(full, key=lambda i: (bool(_RESIDENT_WORDS.search(words[i])), -i))
        roles[best] = ("resident", f"person names ({_samples(values[best])})")
    elif lasts and firsts:
        last, first = lasts[0], firsts[0]
        roles[last] = (
            "resident",
            f"last names ({_samples(values[last])}), joined with {headers[first]!r} as "
            "'Last, First'",
        )
        roles[first] = (
            "resident",
            f"first names ({_samples(values[first])}), joined after {headers[last]!r}",
        )
    for i in firsts:
        if i not in roles:
            roles[i] = ("not_charged", "first names alone: they name no one without a last name")
    # The property: a header that says so, over text that is not a unit nor a name.
    for i in named:
        if i in roles:
            continue
        if said.get(i) == "property" or (
            _PROPERTY_WORDS.search(words[i])
            and _share(values[i], re.compile(r".*[A-Za-z]{3}")) >= _SHARE
            and "property" not in {r for r, _ in roles.values()}
        ):
            why = (
                "set by you"
                if said.get(i)
                else f"header {headers[i]!r}; values {_samples(values[i])}"
            )
            roles[i] = ("property", why)
        elif _PERIOD_WORDS.search(words[i]) and _share(values[i], _DATE) >= _SHARE:
            roles[i] = ("period", f"dates ({_samples(values[i])}) under {headers[i]!r}")
    for i in named:
        if i in roles or _is_money(body[i]):
            continue
        if values[i].empty:
            roles[i] = ("not_charged", "empty")
        elif _share(values[i], _DATE) >= _SHARE:
            roles[i] = ("not_charged", f"dates ({_samples(values[i])}), not money")
        else:
            kinds = values[i].nunique()
            roles[i] = (
                "not_charged",
                f"text, not money ({_samples(values[i])}; {kinds} different on "
                f"{len(values[i])} rows)",
            )
    for i in named:
        roles.setdefault(i, ("unknown", ""))  # money: decided by _money_roles
    return roles


def _unit_evidence(words: str, values: pd.Series) -> str:
    header = "header says unit; " if _UNIT_WORDS.search(words) else ""
    return f"{header}unit numbers ({_samples(values)}), {values.nunique()} different"


def _money_roles(
    headers: list[str],
    roles: dict[int, tuple[str, str]],
    cents: dict[int, pd.Series],
    stated: dict[int, int | None],
    wanted: dict[str, str],
) -> dict[int, tuple[str, str]]:
    """Each money column's role: charged when its header names a charge, else why not."""
    out = dict(roles)
    vocabulary = Profile(name="", kind="charge", description="", columns={}, required=())
    first_pass: dict[int, tuple[str, str]] = {}
    for i, money in cents.items():
        name = normalize_header(headers[i])
        family = next((why for pattern, why in _NOT_CHARGED if pattern.search(name)), None)
        if family is not None:
            first_pass[i] = ("not_charged", family)
        elif _ONE_TIME.search(name):
            first_pass[i] = ("one_time", "a one-time fee: not charged every period")
        elif _CREDIT.search(name) or ((money < 0).any() and not (money > 0).any()):
            first_pass[i] = ("credit", "a concession or credit: posted as a credit")
        elif _ROW_TOTAL.search(name):
            first_pass[i] = ("not_charged", "a row-total column")
        elif vocabulary.charges_header(headers[i]) or _CHARGE_WORDS.search(name):
            first_pass[i] = ("charge", f"header {headers[i]!r} names a charge")
        else:
            first_pass[i] = ("unknown", "money, but its header names no known charge")

    def preferred(i: int) -> tuple[bool, bool, int]:
        ties = stated.get(i) is not None and stated.get(i) == int(cents[i].sum())
        return (not ties, not _PREFERRED.search(normalize_header(headers[i])), i)

    charged = sorted((i for i, (role, _) in first_pass.items() if role in CHARGED), key=preferred)
    twins: dict[int, int] = {}
    for i in charged:
        twin = next(
            (
                j
                for j in charged[: charged.index(i)]
                if j not in twins and cents[j].equals(cents[i])
            ),
            None,
        )
        if twin is not None and cents[i].ne(0).any():
            twins[i] = twin
    kept = [i for i in charged if i not in twins]
    for i, money in cents.items():
        role, why = first_pass[i]
        said = wanted.get(normalize_header(headers[i]))
        if said is not None:
            role, why = said, "set by you"
        elif i in twins:
            role = "not_charged"
            why = (
                f"repeats column {headers[twins[i]]!r} (the same money on every row: charging "
                "both would double it)"
            )
        elif role == "unknown" or why == "a row-total column":
            others = [j for j in kept if j != i]
            summed = sum((cents[j] for j in others), start=pd.Series(0, index=money.index))
            if others and money.ne(0).any() and summed.equals(money):
                names = " + ".join(repr(headers[j]) for j in others)
                role, why = "not_charged", f"a row-total column: each row is {names}"
        out[i] = (role, _money_evidence(why, money, stated.get(i)))
    if wanted:
        _refuse_doubled(headers, out, cents)
    return out


def _refuse_doubled(
    headers: list[str], roles: dict[int, tuple[str, str]], cents: dict[int, pd.Series]
) -> None:
    """A person's corrections never charge the same money twice: two charged columns that
    hold the same amounts on every row (an "Actual Rate" and the month's "Apartment Charges")
    are refused, naming the one to leave out."""
    charged = [i for i in cents if roles[i][0] in CHARGED and cents[i].ne(0).any()]
    for n, i in enumerate(charged):
        for j in charged[n + 1 :]:
            if cents[i].equals(cents[j]):
                raise InputError(
                    f"{headers[i]!r} and {headers[j]!r} hold the same money on every row: "
                    f"charging both would double it; leave one out with --not-charge "
                    f"{shell_word(headers[i])}"
                )


def _money_evidence(why: str, cents: pd.Series, stated: int | None) -> str:
    total = int(cents.sum())
    said = f"{why}; sums to {dollars(total)}"
    if stated is None:
        return said + "; the file states no total for it"
    if stated == total:
        return said + f"; ties to the file's own total {dollars(stated)}"
    return (
        said
        + f"; the file's own total says {dollars(stated)} (differs by {dollars(stated - total)})"
    )
