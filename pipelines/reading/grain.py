"""Grain checks: what one row of a file stands for, before any money moves.

A charge roll has one row per resident (per charge, for a long sheet). Reports that carry the
same headers but another grain are refused as a whole, once, with their evidence: a tenant
directory (one row per person, the unit's rent repeated on every occupant's row), an event log
(one dated row per move-in, move-out, notice or renewal), or a roll with several rows for one
resident. Rows of residents who no longer live there, or not yet, are never charged. Pure.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from pipelines.core.models import GrainFinding, whole
from pipelines.core.parsing import dollars, parse_money
from pipelines.reading.layout import Layout
from pipelines.reading.profiles import normalize_header

NOT_CURRENT = "not a current resident"

# A resident status that is never charged: gone, or not yet there.
_NOT_CURRENT_STATUS = re.compile(r"^(past|former|evicted|future|applicants?|moved out)(\s|$)")
# Cells of an event column, normalized ("Move-out" → "move out").
EVENT_WORDS = frozenset(
    {
        "move in",
        "move out",
        "moved in",
        "moved out",
        "notice",
        "notice given",
        "notice to vacate",
        "renewal",
        "renewed",
        "lease renewal",
        "eviction",
        "eviction filed",
        "transfer",
        "unit transfer",
        "lease signed",
    }
)
EVENT_HEADERS = frozenset({"event", "events", "event type", "activity", "activity type"})
# Occupants who are not the lease holder: a directory lists them, a charge roll does not.
_OCCUPANT = r"\b(?:other\s+)?occupants?\b|\broommates?\b|\bguarantors?\b"


def _of_residents(layout: Layout) -> bool:
    """A file of residents' rows (a rent roll, a charge sheet): the grain checks are for it."""
    return "resident_name" in layout.columns.values()


def _status_columns(layout: Layout) -> list[int]:
    """The mapped status column and every column whose header says it is a status."""
    found = [i for i, name in layout.columns.items() if name == "status"]
    found += [
        i for i, cell in enumerate(layout.cells) if "status" in normalize_header(cell).split()
    ]
    return sorted(set(found))


def not_current_rows(text: pd.DataFrame, layout: Layout) -> pd.Series:
    """Rows whose resident status is past, former, evicted, future or applicant."""
    out = pd.Series(False, index=text.index)
    if not _of_residents(layout):
        return out
    for i in _status_columns(layout):
        if i in text.columns:
            # One regex per distinct status, so a million rows cost one hash each.
            distinct = text[i].unique()
            gone = [v for v in distinct if _NOT_CURRENT_STATUS.match(normalize_header(v))]
            if gone:
                out |= text[i].isin(gone)
    return out


def _rows_text(rows: pd.Series) -> str:
    listed = ", ".join(str(int(r)) for r in rows[:4])
    return listed + (f" and {len(rows) - 4} more" if len(rows) > 4 else "")


def _event_log(text: pd.DataFrame, layout: Layout) -> GrainFinding | None:
    """A column of events (Move-in, Move-out, Notice, Renewal), or a column headed Event."""
    source_rows = pd.Series(text.index.to_numpy(dtype=np.int64) + 1)
    # Mapped and charged columns hold names and amounts, not events: only the others are
    # counted (a million-row charge sheet maps every column, and costs nothing here).
    skip = set(_status_columns(layout)) | set(layout.columns) | set(layout.charge_columns)
    for i, cell in enumerate(layout.cells):
        if i in skip or i not in text.columns:
            continue
        counted = text[i].value_counts()
        counted = counted[counted.index != ""]
        is_event = [normalize_header(v) in EVENT_WORDS for v in counted.index]
        events = int(counted[is_event].sum()) if len(counted) else 0
        headed = normalize_header(cell) in EVENT_HEADERS and len(counted) > 0
        if not headed and not (events >= 2 and events * 2 >= int(counted.sum())):
            continue
        filled = text[i].ne("")
        shown = text.loc[filled, i].value_counts().head(4)
        counts = ", ".join(f"{v} {n}" for v, n in shown.items())
        at = source_rows[filled.to_numpy()]
        return GrainFinding(
            "event log",
            f"reads as an event log (one dated row per event), not a charge roll: its "
            f"{' '.join(cell.split())!r} column lists events ({counts}) on rows {_rows_text(at)}",
            tuple(int(r) for r in at[:20]),
        )
    return None


def _directory(rows: pd.DataFrame, layout: Layout, text: pd.DataFrame) -> GrainFinding | None:
    """Several rows of one unit repeating the same amount for different people."""
    keyed = _keyed(rows)
    if keyed is None:
        return None
    for header in layout.charge_columns.values():
        if header not in rows:
            continue
        cents, _ = parse_money(rows[header].astype(object))
        frame = keyed.assign(cents=cents.reindex(keyed.index).to_numpy())
        frame = frame[frame["cents"].notna() & frame["cents"].ne(0)]
        groups = frame.groupby(["property", "unit", "cents"], sort=False)
        people = groups["resident"].transform("nunique")
        repeated = frame[people >= 2]
        if repeated.empty:
            continue
        by_unit = repeated.groupby(["property", "unit", "cents"], sort=False)
        again_rows = int(len(repeated) - by_unit.ngroups)
        again_cents = int((by_unit["cents"].first() * (by_unit.size() - 1)).astype("int64").sum())
        (_, unit, amount), first = next(iter(by_unit))
        prop = str(first["shown"].iloc[0])
        where = f"unit {unit}" + (f" at {prop}" if prop else "")
        names = "; ".join(dict.fromkeys(first["resident"].astype(str)))[:120]
        occupants = _occupant_note(text, layout)
        return GrainFinding(
            "directory",
            f"reads as a tenant directory (one row per person), not a charge roll: "
            f"{by_unit.ngroups} units list the same {header} on several people's rows ({where}: "
            f"rows {_rows_text(first['source_row'])} each {dollars(whole(amount))}, for {names})"
            f"{occupants}; {again_rows} rows, {dollars(again_cents)}, would be charged again",
            tuple(int(r) for r in repeated["source_row"][:20]),
        )
    return None


def _keyed(rows: pd.DataFrame) -> pd.DataFrame | None:
    """(property, unit, resident, source_row) of the rows that name a unit and a resident."""
    if "unit" not in rows or "resident_name" not in rows:
        return None

    def clean(column: str) -> pd.Series:
        if column not in rows:
            return pd.Series("", index=rows.index)
        cells = rows[column].astype(object).where(rows[column].notna(), "")
        return cells.astype(str).str.strip().str.replace(r"\.0$", "", regex=True)

    keyed = pd.DataFrame(
        {
            "property": clean("property_name").str.lower(),
            "shown": clean("property_name"),
            "unit": clean("unit"),
            "resident": clean("resident_name"),
            "source_row": rows["source_row"],
        }
    )
    named = keyed["unit"].ne("") & keyed["resident"].ne("")
    named &= ~keyed["resident"].str.match(r"(?i)^\s*vacant")
    return keyed[named]


def _occupant_note(text: pd.DataFrame, layout: Layout) -> str:
    for i, cell in enumerate(layout.cells):
        if i not in text.columns or i in layout.columns:
            continue
        hits = text[i].str.contains(_OCCUPANT, case=False, regex=True, na=False)
        if hits.any():
            value = str(text.loc[hits, i].iloc[0])
            return (
                f"; its {' '.join(cell.split())!r} column says {value!r} on {int(hits.sum())} rows"
            )
    return ""


def _several_rows(rows: pd.DataFrame, layout: Layout) -> GrainFinding | None:
    """One resident on several rows of a roll with one column per charge."""
    keyed = _keyed(rows)
    if keyed is None or not layout.charge_columns:
        return None
    charged = [h for h in layout.charge_columns.values() if h in rows]
    has_charge = (
        rows[charged].astype(object).notna()
        & rows[charged].astype(str).apply(lambda c: c.str.strip().ne(""))
    ).any(axis=1)
    keyed = keyed[has_charge.reindex(keyed.index, fill_value=False).to_numpy()]
    keyed = keyed.assign(who=keyed["resident"].str.lower())
    twice = keyed[keyed.duplicated(["property", "unit", "who"], keep=False)]
    if twice.empty:
        return None
    (_, unit, _), first = next(iter(twice.groupby(["property", "unit", "who"], sort=False)))
    prop = str(first["shown"].iloc[0])
    people = twice.groupby(["property", "unit", "who"]).ngroups
    where = f"unit {unit}" + (f" at {prop}" if prop else "")
    return GrainFinding(
        "grain",
        f"has more than one row for {people} residents ({first['resident'].iloc[0]}, {where}: "
        f"rows {_rows_text(first['source_row'])}); a roll with one column per charge has one row "
        "per resident. If this export has one row per charge, its profile must say so "
        '([charges] mode = "rows" with a charge code column)',
        tuple(int(r) for r in twice["source_row"][:20]),
    )


def grain_findings(
    rows: pd.DataFrame, text: pd.DataFrame, layout: Layout
) -> tuple[GrainFinding, ...]:
    """Whole-file grain problems of a charge file (``rows``: its data rows' canonical columns,
    charge columns by header and ``source_row``; ``text``: the cells as text, by column
    position, of every row that is a resident's, current or not, indexed by source row - 1).
    Each refuses the file."""
    if not _of_residents(layout) or text.empty:
        return ()
    found = [_event_log(text, layout)]
    if layout.profile.charge_mode == "columns":
        found.append(_directory(rows, layout, text))
        if found[-1] is None:
            found.append(_several_rows(rows, layout))
    return tuple(f for f in found if f is not None)


# --- what a file is, when it is not an input -----------------------------------------------------

# Reports that are not rent rolls nor bill exports, by what their title says. A title that
# calls itself a rent roll or a charges report is never one of them ("Rent Roll - Occupied and
# Vacant").
_NOT_INPUT_TITLES: tuple[tuple[str, str], ...] = (
    ("tenant directory", r"\bdirectory\b|\b(tenant|resident)s?\s+contacts?\b|\bcontact\s+list\b"),
    ("census", r"\bcensus\b"),
    ("vacancy report", r"\bvacanc(y|ies)\b|\bvacant\s+units?\b|\bavailable\s+units?\b"),
    # Not "Budget Self Storage": a budget by the words that go with one.
    (
        "12-month budget",
        r"\b(annual|operating|capital|12[- ]month|yearly|\d{4})\s+budget\b"
        r"|^\s*budgets?\s*(fy|\d{4}|$)"
        r"|\bbudget\s+(report|worksheet|vs\.?|variance|comparison)\b",
    ),
    (
        "leasing activity report",
        r"\bleasing\s+activity\b|\btraffic\s+(report|summary|log)\b|\bguest\s+cards?\b",
    ),
    ("general ledger", r"\bgeneral\s+ledger\b|\btrial\s+balance\b|\bgl\s+detail\b"),
    ("work order log", r"\bwork\s*orders?\b|\b(service|maintenance)\s+requests?\b"),
)
_AN_INPUT_TITLE = re.compile(r"\brent\s*roll\b|\bcharges?\b|\bbills?\b|\binvoices?\b|\bpayables?\b")
_MONTH_HEADER = re.compile(
    r"^(jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?(\s*[-/ ]?\s*\d{2,4})?$"
)
_DAILY = re.compile(r"\b(daily|per\s+day|per\s+diem|day\s+rate)\b")


def _header_signature(headers: list[str]) -> tuple[str, str] | None:
    """What a header row alone shows a file to be, and the columns that show it."""
    names = [normalize_header(h) for h in headers if h.strip()]
    shown = {normalize_header(h): " ".join(h.split()) for h in headers if h.strip()}

    def said(found: list[str]) -> str:
        return ", ".join(repr(shown[n]) for n in found[:4])

    months = [n for n in names if _MONTH_HEADER.match(n)]
    if len(months) >= 6:
        return "12-month budget", f"its columns are months ({said(months)}, …)"
    rules = (
        ("vacancy report", r"\bdays?\s+vacant\b|\bvacant\s+(since|days)\b|\bmake\s+ready\b"),
        ("leasing activity report", r"\bprospects?\b|\blead\s+source\b|\bguest\s+cards?\b"),
        ("work order log", r"^wo\b|\bwork\s*orders?\b|\bpriority\b"),
        ("census", r"\bcensus\b"),
    )
    for what, pattern in rules:
        found = [n for n in names if re.search(pattern, n)]
        if found:
            return what, f"its {said(found)} column{'s' if len(found) > 1 else ''}"
    debit = [n for n in names if re.search(r"\bdebits?\b|\bcredits?\b", n)]
    if len({re.sub(r"s$", "", d.split()[-1]) for d in debit}) >= 2:
        return "general ledger", f"its {said(debit)} columns"
    contact = [n for n in names if re.search(r"\bphone\b|\bemail\b|\be-mail\b|\bcell\b", n)]
    money = [n for n in names if re.search(r"\brent\b|\bcharges?\b|\bamount\b|\bfees?\b", n)]
    if contact and not money:
        return "tenant directory", f"its {said(contact)} columns and no charge column"
    return None


def not_an_input(
    title_lines: list[str], headers: list[str], read: bool = False
) -> GrainFinding | None:
    """A report that is not an input (a directory, census, vacancy report, budget, leasing
    activity, general ledger or work order log), or a rent roll of daily rates: what it is,
    and what shows it. ``read``: a profile reads its header, so only its title (or a daily
    rate column) can say it is not a rent roll; otherwise its header's columns can too."""
    title = " ".join(line for line in title_lines if line.strip())
    if title and not _AN_INPUT_TITLE.search(title.lower()):
        for what, pattern in _NOT_INPUT_TITLES:
            match = re.search(pattern, title, flags=re.IGNORECASE)
            if match:
                line = next(x for x in title_lines if re.search(pattern, x, flags=re.IGNORECASE))
                return GrainFinding(what, f"this is a {what}: its title says {line.strip()!r}")
    daily = [" ".join(h.split()) for h in headers if _DAILY.search(normalize_header(h))]
    if daily and not any("month" in normalize_header(h) for h in headers):
        return GrainFinding(
            "daily rates",
            f"this is a rent roll with daily rates: its {daily[0]!r} column states a rate per "
            "day, and tieout charges a month's amounts",
        )
    if read:
        return None
    signature = _header_signature(headers)
    if signature is None:
        return None
    what, why = signature
    article = "an" if what[0] in "aeiou" else "a"
    return GrainFinding(what, f"this is {article} {what}: {why}")
