"""Resolving names → Propexo IDs: the building blocks every kind's transform uses (properties,
residents, and names kept per Rent Manager location: vendors, GL accounts, charge codes).

Pure functions over frames. Resolution is a merge against lookup frames built from
:class:`~pipelines.resolving.refs.RefData`: a normalized exact match, after staff aliases are
applied. It never guesses: no match is a rejected row with the closest candidates as
suggestions, and two matches are rejected as ambiguous.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date
from enum import StrEnum
from typing import Any

import pandas as pd
from rapidfuzz import fuzz, process

from pipelines.core.columns import (
    distinct,
    group_codes,
    per_distinct,
    spread,
)
from pipelines.core.hints import AliasHints
from pipelines.core.models import Issue, IssueCode, whole
from pipelines.core.references import REFERENCES, NameKind, Read
from pipelines.resolving.refs import RefData

_ORG_SUFFIXES = r"\b(llc|l l c|inc|incorporated|co|company|corp|corporation|ltd|lp|pllc)\b"


# --- normalization ------------------------------------------------------------------------------


def normalize_text(values: pd.Series) -> pd.Series:
    s = values.astype("string").str.lower().str.replace("&", " and ", regex=False)
    s = s.str.replace(r"[^a-z0-9# ]+", " ", regex=True)
    return s.str.replace(r"\s+", " ", regex=True).str.strip()


@distinct
def normalize_org(values: pd.Series) -> pd.Series:
    """'ACME Plumbing, L.L.C.' and 'Acme plumbing LLC' → 'acme plumbing'."""
    s = normalize_text(values.astype("string").str.replace(".", "", regex=False))
    s = s.str.replace(_ORG_SUFFIXES, " ", regex=True).str.replace("#", " ", regex=False)
    return s.str.replace(r"\s+", " ", regex=True).str.strip()


@distinct
def normalize_person(values: pd.Series) -> pd.Series:
    """'Smith, John' and 'john  SMITH' → 'john smith'."""
    s = values.astype("string").str.strip()
    flipped = s.str.extract(r"^(?P<last>[^,]+),\s*(?P<first>.+)$")
    s = s.where(flipped["last"].isna(), flipped["first"] + " " + flipped["last"])
    return normalize_text(s.str.replace(".", "", regex=False))


@distinct
def normalize_unit(values: pd.Series) -> pd.Series:
    """'#204', 'Unit 204', 'Apt. 204' → '204'."""
    s = normalize_text(values).str.replace(r"^(unit|apt|apartment|suite|ste)\b", "", regex=True)
    return s.str.replace(r"[#\s]", "", regex=True)


def apply_aliases(values: pd.Series, aliases: pd.DataFrame | None, norm: Any) -> pd.Series:
    """Staff aliases win over everything: the spreadsheet spelling becomes the Propexo name."""
    if aliases is None or aliases.empty:
        return values
    table = dict(zip(norm(aliases["spreadsheet_name"]), aliases["propexo_name"], strict=True))
    mapped = norm(values).map(table)
    return values.where(mapped.isna(), mapped)


# --- matching -----------------------------------------------------------------------------------


def match(
    left: pd.DataFrame, lookup: pd.DataFrame, keys: list[str]
) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Exact match of ``left[keys]`` against ``lookup[keys]``.

    Returns ``(id, count, labels)`` aligned with ``left``: ``id`` when exactly one Propexo record
    matches, ``count`` of distinct matches (0 none, 2+ ambiguous), and the matching labels.
    """
    known = lookup.dropna(subset=keys)
    grouped = (
        known.groupby(keys, dropna=False).agg(id=("id", "first"), count=("id", "nunique"))
    ).reset_index()
    # Labels only matter to the message about an ambiguous name.
    ambiguous = grouped.loc[grouped["count"] > 1, keys]
    labels = (
        known.merge(ambiguous, on=keys)
        .groupby(keys, dropna=False)["label"]
        .agg(lambda x: ", ".join(sorted(set(map(str, x)))))
        .rename("labels")
        .reset_index()
    )
    grouped = grouped.merge(labels, on=keys, how="left")
    # Each distinct key is matched once; the rows share its answer.
    codes, firsts = group_codes(left, keys)
    merged = (
        left[keys]
        .iloc[firsts]
        .reset_index(drop=True)
        .merge(grouped, on=keys, how="left", validate="many_to_one")
    )
    count = spread(codes, merged["count"].fillna(0).astype(int), left.index)
    ids = spread(codes, merged["id"], left.index).where(count.eq(1))
    return ids, count, spread(codes, merged["labels"], left.index)


def suggest(value: str, choices: list[str], limit: int = 3) -> list[str]:
    """The closest names (best first) for a clerk to pick from."""
    found = process.extract(value, choices, scorer=fuzz.WRatio, limit=limit)
    return [str(choice) for choice, score, _ in found if score >= 50]


def resolution_issues(
    frame: pd.DataFrame,
    ids: pd.Series,
    count: pd.Series,
    labels: pd.Series,
    *,
    column: str,
    what: str,
    code: StrEnum,
    kind: str,
    choices: pd.Series,
    source_file: str,
    hints: AliasHints,
    pools: pd.Series | None = None,
    places: pd.Series | None = None,
) -> list[Issue]:
    """One issue per row whose name did not resolve; ``kind`` is the alias kind
    (``tieout alias add KIND``) that would fix it. ``pools``: per row, the only names it may
    be suggested (a resident: who Propexo has in the row's unit), instead of ``choices``;
    ``places``: per row, where it is (:attr:`Issue.place`), said when nothing is suggested."""
    issues: list[Issue] = []
    for index in frame.index[ids.isna()]:
        value = str(frame.at[index, column])
        row = whole(frame.at[index, "source_row"])
        if count[index] > 1:
            issues.append(
                Issue(
                    IssueCode.AMBIGUOUS,
                    f'{what} "{value}" matches more than one Propexo record '
                    f"({labels[index]}); {hints.ambiguous(kind, value)}",
                    source_file,
                    row,
                    what,
                    value,
                )
            )
            continue
        pool = list(pools[index]) if pools is not None else list(choices.dropna().astype(str))
        options = suggest(value, sorted(set(pool)))
        place = places[index] if places is not None else None
        if options:
            hint = f"; did you mean {', '.join(repr(o) for o in options)}?"
        elif place is not None:
            there = ", ".join(repr(name) for name in sorted(set(pool)))
            hint = (
                f" in {place[2]}: Propexo has {there} there."
                if there
                else f" in {place[2]}: Propexo has no current resident there."
            )
        else:
            hint = "."
        issues.append(
            Issue(
                code,
                f'{what} "{value}" is not known to Propexo{hint} '
                + hints.unknown(kind, value, options[0] if options else None),
                source_file,
                row,
                what,
                value,
                place=place,
            )
        )
    return issues


def _lookup(
    frame: pd.DataFrame, key_values: dict[str, pd.Series], label: pd.Series
) -> pd.DataFrame:
    out = pd.DataFrame({**key_values, "id": frame["id"], "label": label})
    return out


def resolve_properties(
    frame: pd.DataFrame, refs: RefData, source_file: str
) -> tuple[pd.DataFrame, list[Issue]]:
    """Add ``property_id`` and ``location_id`` (matched by property name or code)."""
    props = refs.properties
    lookup = pd.concat(
        [
            _lookup(props, {"_key": normalize_org(props["name"])}, props["name"]),
            _lookup(props, {"_key": normalize_org(props["code"].fillna(""))}, props["name"]),
        ]
    ).drop_duplicates()
    lookup = lookup[lookup["_key"].ne("")]
    left = pd.DataFrame(
        {
            "_key": normalize_org(
                apply_aliases(frame["property_name"], refs.aliases.get("properties"), normalize_org)
            )
        },
        index=frame.index,
    )
    ids, count, labels = match(left, lookup, ["_key"])
    out = frame.copy()
    out["property_id"] = ids
    location_of = dict(zip(props["id"], props["location_id"], strict=True))
    out["location_id"] = per_distinct(lambda found: found.map(location_of), ids)
    issues = resolution_issues(
        out,
        ids,
        count,
        labels,
        column="property_name",
        what="property",
        code=IssueCode.UNKNOWN_PROPERTY,
        kind="property",
        choices=props["name"],
        source_file=source_file,
        hints=refs.hints,
    )
    return out, issues


def resolve_in_location(
    frame: pd.DataFrame,
    column: str,
    refs_frame: pd.DataFrame,
    names: list[pd.Series],
    aliases: pd.DataFrame | None,
    *,
    norm: Any,
    out_column: str,
    what: str,
    code: StrEnum,
    kind: str,
    source_file: str,
    hints: AliasHints,
    label: str = "name",
) -> tuple[pd.DataFrame, list[Issue]]:
    """Match a name within the row's RM location (vendors, GL accounts, charge codes are per
    location in Rent Manager); ``label``: the list's column a person reads."""
    lookup = pd.concat(
        [
            _lookup(
                refs_frame,
                {"_key": norm(n.fillna("")), "location_id": refs_frame["location_id"]},
                refs_frame[label],
            )
            for n in names
        ]
    ).drop_duplicates()
    lookup = lookup[lookup["_key"].ne("")]
    todo = frame["location_id"].notna()
    left = pd.DataFrame(
        {
            "_key": norm(apply_aliases(frame[column], aliases, norm)),
            "location_id": frame["location_id"],
        },
        index=frame.index,
    )[todo]
    ids, count, labels = match(left, lookup, ["_key", "location_id"])
    out = frame.copy()
    out[out_column] = ids.reindex(frame.index)
    choices = refs_frame[label]
    issues = resolution_issues(
        out[todo],
        ids,
        count,
        labels,
        column=column,
        what=what,
        code=code,
        kind=kind,
        choices=choices,
        source_file=source_file,
        hints=hints,
    )
    return out, issues


def bad_rows(issues: list[Issue]) -> set[int]:
    return {i.source_row for i in issues}


# --- vendor bills → invoices --------------------------------------------------------------------


# --- rent rolls → charges and credits -----------------------------------------------------------


# --- Propexo's names, as an alias's target is matched ---------------------------------------------

# How names are compared, by a kind of name's ``compare``: as the resolvers above do.
_NORMS: dict[str, Callable[[pd.Series], pd.Series]] = {
    "org": normalize_org,
    "text": normalize_text,
    "person": normalize_person,
}
# How each kind of alias compares names: the shared ones, then each registered kind's.
ALIAS_NORMS: Mapping[str, Callable[[pd.Series], pd.Series]] = Read(
    lambda: (
        {"property": normalize_org, "resident": normalize_person}
        | {alias: _NORMS[named.compare] for alias, named in REFERENCES.names().items()}
    )
)


def _names(refs: RefData, named: NameKind) -> list[pd.Series]:
    """The names a spreadsheet may use for each record of a kind of name's list."""
    table = getattr(refs, named.refs)
    out = []
    for first, *rest in named.names:
        names = table[first]
        for column in rest:  # "4000 Repairs": the columns' texts, a space between
            names = names.astype(str) + " " + table[column]
        out.append(names)
    return out


def propexo_names(refs: RefData, kind: str) -> pd.DataFrame:
    """Every name of one alias kind that Propexo answers to (``_key`` as the resolvers compare
    it) with the name tieout shows for it (``label``; a resident's "First Last")."""
    norm = ALIAS_NORMS[kind]
    named = REFERENCES.names().get(kind)
    if named is not None:
        label = getattr(refs, named.refs)[named.label]
        frames = [(names, label) for names in _names(refs, named)]
    elif kind == "property":
        props = refs.properties
        frames = [(props["name"], props["name"]), (props["code"], props["name"])]
    else:
        people = refs.residents
        name = people["first_name"].fillna("") + " " + people["last_name"].fillna("")
        frames = [(name.str.strip(), name.str.strip())]
    names = pd.concat(
        [pd.DataFrame({"name": n.astype(object), "label": label}) for n, label in frames],
        ignore_index=True,
    ).dropna()
    names["_key"] = norm(names["name"].astype(str)).astype(object)
    names = names[names["_key"].ne("") & names["label"].astype(str).str.strip().ne("")]
    return names[["_key", "label"]].drop_duplicates().reset_index(drop=True)


def resident_lookup(refs: RefData, period_start: date | None) -> pd.DataFrame:
    """(property, unit number, person name) → resident id, from leases current in the period."""
    leases = refs.leases
    current = leases["status"].isin(["ACTIVE", "PENDING", None]) | leases["status"].isna()
    if period_start is not None:
        moved_out = pd.to_datetime(leases["move_out_date"], errors="coerce")
        current &= moved_out.isna() | (moved_out >= pd.Timestamp(period_start))
    units = refs.units.rename(columns={"id": "unit_id", "number": "unit_number"})
    people = refs.residents.rename(columns={"id": "resident_id", "property_id": "res_property"})
    joined = (
        leases[current]
        .merge(units[["unit_id", "unit_number"]], on="unit_id", how="inner")
        .merge(people, on="resident_id", how="inner")
    )
    name = joined["first_name"].fillna("") + " " + joined["last_name"].fillna("")
    return pd.DataFrame(
        {
            "property_id": joined["property_id"].fillna(joined["res_property"]),
            "_unit": normalize_unit(joined["unit_number"].astype(str)),
            "_key": normalize_person(name),
            "id": joined["resident_id"],
            "label": name,
        }
    ).drop_duplicates()


def resolve_residents(
    frame: pd.DataFrame, refs: RefData, source_file: str, period_start: date | None
) -> tuple[pd.DataFrame, list[Issue]]:
    """Add ``resident_id``: the ``resident_name`` living in the row's ``unit`` of its resolved
    ``property_id`` (leases current in the period), after the residents' aliases; one issue
    per row that does not resolve."""
    resolved = frame.copy()
    lookup = resident_lookup(refs, period_start)
    todo = resolved["property_id"].notna()
    left = pd.DataFrame(
        {
            "property_id": resolved["property_id"],
            "_unit": normalize_unit(resolved["unit"].astype(str)),
            "_key": normalize_person(
                apply_aliases(
                    resolved["resident_name"], refs.aliases.get("residents"), normalize_person
                )
            ),
        },
        index=resolved.index,
    )[todo]
    ids, count, labels = match(left, lookup, ["property_id", "_unit", "_key"])
    resolved["resident_id"] = ids.reindex(resolved.index)
    people = refs.residents["first_name"].fillna("") + " " + refs.residents["last_name"].fillna("")
    unresolved = ids.isna().reindex(left.index, fill_value=True).to_numpy(dtype=bool)
    pools, places = unit_residents(
        left[unresolved], lookup, refs, resolved.loc[todo, "unit"][unresolved]
    )
    issues = resolution_issues(
        resolved[todo],
        ids,
        count,
        labels,
        column="resident_name",
        what="resident",
        code=IssueCode.UNKNOWN_RESIDENT,
        kind="resident",
        choices=people,
        source_file=source_file,
        hints=refs.hints,
        pools=pools,
        places=places,
    )
    return resolved, issues


def unit_residents(
    rows: pd.DataFrame, lookup: pd.DataFrame, refs: RefData, shown: pd.Series
) -> tuple[pd.Series, pd.Series]:
    """Per row (``property_id``, ``_unit``): the residents Propexo has in that unit of that
    property in the period (the only names a row's resident may be suggested: a tenant of
    another unit or property is never offered), and the row's place ``(property_id, unit,
    "Oak Ridge unit 302")``, the unit in ``shown`` as the file writes it."""
    wanted = set(zip(rows["property_id"], rows["_unit"], strict=True))
    names: dict[tuple[object, object], tuple[str, ...]] = {}
    for p, u, label in zip(lookup["property_id"], lookup["_unit"], lookup["label"], strict=True):
        if (p, u) in wanted:
            names[(p, u)] = tuple(sorted({*names.get((p, u), ()), str(label)}))
    property_names = dict(zip(refs.properties["id"], refs.properties["name"], strict=True))
    pools = pd.Series(
        [names.get((p, u), ()) for p, u in zip(rows["property_id"], rows["_unit"], strict=True)],
        index=rows.index,
        dtype=object,
    )
    places = pd.Series(
        [
            (str(p), str(u), f"{property_names.get(p, p)} unit {str(text).strip()}")
            for p, u, text in zip(rows["property_id"], rows["_unit"], shown, strict=True)
        ],
        index=rows.index,
        dtype=object,
    )
    return pools, places


def resolve_named(
    frame: pd.DataFrame, column: str, kind: str, refs: RefData, source_file: str
) -> tuple[pd.DataFrame, list[Issue]]:
    """Resolve ``column`` as a name of one alias kind Rent Manager keeps per location
    (``vendor``, ``gl_account``, ``charge_code``), after that kind's aliases, within each row's
    ``location_id``; one issue per row that does not resolve."""
    named = REFERENCES.names()[kind]
    return resolve_in_location(
        frame,
        column,
        getattr(refs, named.refs),
        _names(refs, named),
        refs.aliases.get(named.file),
        norm=ALIAS_NORMS[kind],
        out_column=named.column,
        what=named.what,
        code=named.code,
        kind=kind,
        source_file=source_file,
        hints=refs.hints,
        label=named.label,
    )
