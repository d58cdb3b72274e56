"""Staff aliases: the spreadsheet's spelling of a name, then the name Propexo knows, one line
per spelling in ``<data_dir>/mappings/<kind>s.csv``.

The files are checked every time they are read: the header line, the number of fields on each
line (an unquoted ``Jesup, Morgan,Morgan Jessup`` is three fields), repeated or conflicting
spellings, and (with Propexo's names at hand) targets Propexo does not know. Each problem is
one :class:`AliasProblem` naming the file and the line; a run does not read names past one.
``tieout alias add`` writes a line, quoted, after checking its target.
"""

from __future__ import annotations

import csv
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from rapidfuzz import fuzz, process

from pipelines.core.errors import ConfigError, InputError
from pipelines.core.hints import ALIAS_FILES
from pipelines.core.models import IssueCode
from pipelines.core.references import REFERENCES, Read
from pipelines.ledger import Ledger
from pipelines.resolving.refs import RefData
from pipelines.resolving.transform import (
    ALIAS_NORMS,
    normalize_person,
    propexo_names,
    resident_lookup,
)

HEADER = ("spreadsheet_name", "propexo_name")
FILE_PREAMBLE = (
    "# One line per spreadsheet spelling: the name in the file, then the name Propexo knows.\n"
)
# Which kind of alias settles a rejected row, by the row's issue code.
KIND_OF_ISSUE: Mapping[str, str] = Read(
    lambda: (
        {
            IssueCode.UNKNOWN_PROPERTY.value: "property",
            IssueCode.UNKNOWN_RESIDENT.value: "resident",
        }
        | {named.code.value: alias for alias, named in REFERENCES.names().items()}
    )
)
# A suggestion is taken without asking (`alias accept --yes`) only when it is spelled this
# close to the name (rapidfuzz ratio, 0-100) and no other suggestion comes within SURE_MARGIN.
SURE_SCORE = 85.0
SURE_MARGIN = 10.0
ALIAS_COLUMNS = ["spreadsheet_name", "propexo_name", "line"]


@dataclass(frozen=True)
class AliasProblem:
    """One thing wrong in an alias file, at one line (None: the whole file)."""

    path: Path
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.path}, line {self.line}" if self.line is not None else str(self.path)
        return f"{where}: {self.message}"


@dataclass(frozen=True)
class AliasFiles:
    """Every alias file of a mappings folder, as read: the aliases of each file (by file
    stem, as :class:`~pipelines.resolving.refs.RefData` keeps them) with their line numbers, and
    every problem found."""

    folder: Path
    frames: dict[str, pd.DataFrame] = field(default_factory=dict)
    problems: tuple[AliasProblem, ...] = ()


def _empty() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in ALIAS_COLUMNS})


def _fields(text: str) -> list[str]:
    return next(csv.reader([text], strict=True), [])


def read_alias_file(path: Path, kind: str) -> tuple[pd.DataFrame, list[AliasProblem]]:
    """One alias file's lines (``spreadsheet_name``, ``propexo_name``, ``line``) and its
    problems; a file with a problem in its header yields no aliases."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        return _empty(), [
            AliasProblem(path, None, "is not UTF-8 text; save it as CSV UTF-8 and try again")
        ]
    problems: list[AliasProblem] = []
    header: list[str] | None = None
    rows: list[tuple[str, str, int]] = []
    norm = ALIAS_NORMS[kind]
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            cells = [c.strip() for c in _fields(raw)]
        except csv.Error as exc:
            problems.append(AliasProblem(path, number, f"cannot be read as CSV ({exc})"))
            continue
        if header is None:
            header = [c.lower() for c in cells]
            if not set(HEADER) <= set(header):
                problems.append(
                    AliasProblem(
                        path,
                        number,
                        f"should be the header line {','.join(HEADER)} but reads {stripped!r}; "
                        f"add that line above the aliases",
                    )
                )
                return _empty(), problems
            continue
        if len(cells) != len(header):
            quoted = f'"{cells[0]}, {cells[1]}",{",".join(cells[2:])}' if len(cells) > 2 else ""
            example = f" (e.g. {quoted})" if quoted and len(header) == 2 else ""
            problems.append(
                AliasProblem(
                    path,
                    number,
                    f"has {len(cells)} fields where the header has {len(header)}: {stripped!r}; "
                    f"a name with a comma goes in double quotes{example}",
                )
            )
            continue
        named = dict(zip(header, cells, strict=True))
        name, target = named["spreadsheet_name"], named["propexo_name"]
        if not name or not target:
            empty = "spreadsheet_name" if not name else "propexo_name"
            problems.append(AliasProblem(path, number, f"has no {empty}: {stripped!r}"))
            continue
        rows.append((name, target, number))
    frame = pd.DataFrame(rows, columns=ALIAS_COLUMNS).astype(object) if rows else _empty()
    if not frame.empty:
        keys = norm(frame["spreadsheet_name"]).astype(object)
        targets = norm(frame["propexo_name"]).astype(object)
        first: dict[str, int] = {}
        for position, key in enumerate(keys):
            if key not in first:
                first[key] = position
                continue
            was = frame.iloc[first[key]]
            now = frame.iloc[position]
            if targets.iloc[position] == targets.iloc[first[key]]:
                message = f'repeats line {was["line"]} ("{was["spreadsheet_name"]}"); delete one'
            else:
                message = (
                    f'"{now["spreadsheet_name"]}" → "{now["propexo_name"]}" conflicts with line '
                    f'{was["line"]} ("{was["spreadsheet_name"]}" → "{was["propexo_name"]}"); '
                    "keep the right one"
                )
            problems.append(AliasProblem(path, int(now["line"]), message))
    return frame, problems


def read_aliases(mappings_dir: Path | None) -> AliasFiles:
    """Every alias file in ``mappings_dir`` (missing files are no aliases), checked."""
    if mappings_dir is None:
        return AliasFiles(Path())
    frames: dict[str, pd.DataFrame] = {}
    problems: list[AliasProblem] = []
    for kind, stem in ALIAS_FILES.items():
        path = mappings_dir / f"{stem}.csv"
        if not path.exists():
            continue
        frame, found = read_alias_file(path, kind)
        problems += found
        if not frame.empty:
            frames[stem] = frame
    return AliasFiles(mappings_dir, frames, tuple(problems))


def closest(
    refs: RefData,
    kind: str,
    name: str,
    limit: int = 3,
    among: Collection[str] | None = None,
) -> list[tuple[str, float]]:
    """Propexo's names of one kind closest to ``name`` (label, score 0-100), best first;
    ``among``: only these labels (a resident: who lives where the rows are)."""
    names = propexo_names(refs, kind)
    if among is not None:
        names = names[names["label"].isin(list(among))].reset_index(drop=True)
    if names.empty:
        return []
    key = str(ALIAS_NORMS[kind](pd.Series([name])).iloc[0])
    found = process.extract(key, list(names["_key"]), scorer=fuzz.WRatio, limit=limit * 3)
    best: dict[str, float] = {}
    for _, score, position in found:
        label = str(names["label"].iloc[position])
        best[label] = max(best.get(label, 0.0), float(score))
    ranked = sorted(best.items(), key=lambda item: -item[1])
    return [(label, score) for label, score in ranked[:limit] if score >= 50]


def known_target(refs: RefData, kind: str, target: str) -> str | None:
    """The name Propexo shows for ``target`` when it knows it (one label), else None."""
    names = propexo_names(refs, kind)
    key = str(ALIAS_NORMS[kind](pd.Series([target])).iloc[0])
    labels = sorted(set(names.loc[names["_key"].eq(key), "label"].astype(str)))
    if not labels:
        return None
    return labels[0] if len(labels) == 1 else target


def unknown_targets(refs: RefData, files: AliasFiles) -> list[AliasProblem]:
    """Alias lines whose Propexo name Propexo does not know (with the closest it does)."""
    problems: list[AliasProblem] = []
    for kind, stem in ALIAS_FILES.items():
        frame = files.frames.get(stem)
        if frame is None:
            continue
        known = set(propexo_names(refs, kind)["_key"])
        keys = ALIAS_NORMS[kind](frame["propexo_name"])
        for target, key, line in zip(frame["propexo_name"], keys, frame["line"], strict=True):
            if key in known:
                continue
            options = closest(refs, kind, str(target))
            hint = f'; did you mean "{options[0][0]}"?' if options else ""
            problems.append(
                AliasProblem(
                    files.folder / f"{stem}.csv",
                    int(line),
                    f'propexo_name "{target}" is not a {kind.replace("_", " ")} Propexo '
                    f"knows{hint}",
                )
            )
    return problems


def problems_text(problems: list[AliasProblem] | tuple[AliasProblem, ...]) -> str:
    """One line per problem, and the next step."""
    lines = "\n".join(f"  {p}" for p in problems)
    count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
    return (
        f"the alias files have {count}, so no name was resolved and nothing was posted:\n"
        f"{lines}\nfix or delete those lines (`tieout alias list` shows every alias)"
    )


def raise_if_problems(problems: list[AliasProblem] | tuple[AliasProblem, ...]) -> None:
    if problems:
        raise ConfigError(problems_text(problems))


# --- writing ---------------------------------------------------------------------------------


def _csv_field(text: str) -> str:
    """A field quoted when a reader would otherwise split it or take it for a comment."""
    if any(c in text for c in ',"\r\n') or text.startswith("#") or text != text.strip():
        return '"' + text.replace('"', '""') + '"'
    return text


@dataclass(frozen=True)
class Written:
    """Where an alias is: its file and line; ``added`` False when the line was already there."""

    path: Path
    line: int
    added: bool


def write_alias(mappings_dir: Path, kind: str, name: str, target: str) -> Written:
    """Add ``name → target`` to ``kind``'s alias file (created with its header when missing).

    A file with problems is not written to; a spelling already aliased to another target is a
    conflict, named with its line; the same alias again is left as it is."""
    path = mappings_dir / f"{ALIAS_FILES[kind]}.csv"
    if path.exists():
        frame, problems = read_alias_file(path, kind)
        raise_if_problems(problems)
        norm = ALIAS_NORMS[kind]
        same = frame[norm(frame["spreadsheet_name"]).eq(norm(pd.Series([name])).iloc[0]).values]
        if not same.empty:
            line = same.iloc[0]
            if norm(pd.Series([line["propexo_name"]])).iloc[0] == norm(pd.Series([target])).iloc[0]:
                return Written(path, int(line["line"]), added=False)
            raise InputError(
                f'{path}, line {line["line"]} already aliases "{line["spreadsheet_name"]}" to '
                f'"{line["propexo_name"]}"; edit or delete that line first'
            )
        text = path.read_text(encoding="utf-8-sig")
    else:
        mappings_dir.mkdir(parents=True, exist_ok=True)
        text = FILE_PREAMBLE + ",".join(HEADER) + "\n"
    if text and not text.endswith("\n"):
        text += "\n"
    text += f"{_csv_field(name)},{_csv_field(target)}\n"
    path.write_text(text, encoding="utf-8")
    return Written(path, len(text.splitlines()), added=True)


# --- what an alias settles -------------------------------------------------------------------


UNKNOWN_NAME_COLUMNS = ["kind", "name", "source_file", "source_row", "amount_text", "run_id"]


def open_unknown_names(ledger: Ledger) -> pd.DataFrame:
    """Rows rejected for a name Propexo does not know, in the newest run that processed each
    file (a file processed again since says what is still open): ``kind`` (the alias kind),
    ``name`` (as the file spells it), ``source_file``, ``source_row``, ``amount_text``,
    ``run_id``. The one place that decides what is open; an open-items store replaces it."""
    runs = ledger.runs()
    if runs.empty:
        return pd.DataFrame(columns=UNKNOWN_NAME_COLUMNS)
    newest: dict[str, str] = {}
    for run_id in runs.loc[runs["dry_run"].astype(int).eq(0), "run_id"]:
        for name in ledger.files(str(run_id))["name"]:
            newest[str(name)] = str(run_id)
    frames = []
    for run_id in sorted(set(newest.values())):
        rejects = ledger.rejects(run_id)
        rejects = rejects[
            rejects["code"].isin(list(KIND_OF_ISSUE))
            & rejects["source_file"].map(lambda f, r=run_id: newest.get(str(f)) == r)
        ]
        if not rejects.empty:
            frames.append(rejects.assign(run_id=run_id))
    if not frames:
        return pd.DataFrame(columns=UNKNOWN_NAME_COLUMNS)
    found = pd.concat(frames, ignore_index=True)
    found["kind"] = found["code"].map(dict(KIND_OF_ISSUE))
    found["name"] = found["value"].astype(str)
    found = found.drop_duplicates(["kind", "name", "source_file", "source_row"])
    return found[UNKNOWN_NAME_COLUMNS].reset_index(drop=True)


def rows_named(unknown: pd.DataFrame, kind: str, name: str) -> pd.DataFrame:
    """The open rows whose ``kind`` name is ``name`` (compared as the resolver compares)."""
    if unknown.empty:
        return unknown
    norm = ALIAS_NORMS[kind]
    mine = unknown[unknown["kind"].eq(kind)]
    key = norm(pd.Series([name])).iloc[0]
    named: pd.DataFrame = mine[norm(mine["name"]).eq(key).to_numpy()]
    return named


def rows_text(rows: pd.DataFrame) -> str:
    """ "vendor_bills.csv rows 5, 6 (1,126.59; 512.07)", one part per file."""
    parts = []
    for file_name, group in rows.groupby("source_file", sort=True):
        numbers = ", ".join(str(int(r)) for r in sorted(group["source_row"]))
        amounts = [str(a) for a in group.sort_values("source_row")["amount_text"] if a]
        shown = f" ({'; '.join(amounts)})" if amounts else ""
        word = "row" if len(group) == 1 else "rows"
        parts.append(f"{file_name} {word} {numbers}{shown}")
    return "; ".join(parts)


@dataclass(frozen=True)
class Suggestion:
    """The best Propexo name for one open unknown name, and whether it is sure enough to
    take without asking."""

    kind: str
    name: str
    target: str | None
    sure: bool
    others: tuple[str, ...]
    rows: pd.DataFrame


def suggestions(
    refs: RefData,
    unknown: pd.DataFrame,
    files: AliasFiles,
    places: Mapping[str, list[Place]] | None = None,
) -> list[Suggestion]:
    """One suggestion per distinct open unknown name not aliased yet, in file order. A
    resident whose rows' places are known (``places``, by :func:`resident_places`) is
    offered only the residents living there."""
    out: list[Suggestion] = []
    seen: set[tuple[str, str]] = set()
    for kind, name in zip(unknown["kind"], unknown["name"], strict=True):
        norm = ALIAS_NORMS[kind]
        key = str(norm(pd.Series([name])).iloc[0])
        if (kind, key) in seen:
            continue
        seen.add((kind, key))
        aliased = files.frames.get(ALIAS_FILES[kind])
        if aliased is not None and key in set(norm(aliased["spreadsheet_name"])):
            continue
        where = (places or {}).get(key) if kind == "resident" else None
        options = closest(refs, kind, name, among=residents_at(refs, where) if where else None)
        top = options[0] if options else None
        # Sure is judged letter by letter (plain edit distance): WRatio, which ranks the
        # options, scores "Zq Services" high against any "… Services".
        spelled = [fuzz.ratio(key, str(norm(pd.Series([label])).iloc[0])) for label, _ in options]
        sure = (
            top is not None
            and spelled[0] >= SURE_SCORE
            and all(other <= spelled[0] - SURE_MARGIN for other in spelled[1:])
        )
        out.append(
            Suggestion(
                kind,
                name,
                top[0] if top else None,
                sure,
                tuple(label for label, _ in options[1:]),
                rows_named(unknown, kind, name),
            )
        )
    return out


# --- where a resident lives ------------------------------------------------------------------

# A row's place: (property id, unit as the resolver compares it, "Oak Ridge unit 302").
Place = tuple[str, str, str]


def resident_places(ledger: Ledger) -> dict[str, list[Place]]:
    """The places of the open rows of each unknown resident name (keyed as the resolver
    compares names), from the open items that hold them."""
    found: dict[str, list[Place]] = {}
    for item in ledger.items():
        if item["cause"] != "unknown_resident":
            continue
        detail = item["detail"] or {}
        key = str(normalize_person(pd.Series([str(detail.get("name", ""))])).iloc[0])
        for place in detail.get("places") or ():
            spot: Place = (str(place[0]), str(place[1]), str(place[2]))
            if spot not in found.setdefault(key, []):
                found[key].append(spot)
    return found


def places_named(places: Mapping[str, list[Place]], name: str) -> list[Place]:
    """The places of the open rows naming resident ``name`` (compared as the resolver does)."""
    return list(places.get(str(normalize_person(pd.Series([name])).iloc[0]), []))


def _homes(refs: RefData) -> pd.DataFrame:
    """Every current resident's (property id, unit, label)."""
    homes = resident_lookup(refs, None)
    return homes.assign(label=homes["label"].astype(str).str.strip())


def residents_at(refs: RefData, places: Collection[Place]) -> list[str]:
    """The names of the residents Propexo has at ``places``."""
    homes = _homes(refs)
    spots = {(p, u) for p, u, _ in places}
    here = [(p, u) in spots for p, u in zip(homes["property_id"], homes["_unit"], strict=True)]
    return sorted(set(homes.loc[here, "label"]))


def misplaced_resident(refs: RefData, target: str, places: Collection[Place]) -> str | None:
    """Why a resident alias to ``target`` would not settle rows at ``places`` (the target
    lives elsewhere), or None when it lives at one of them."""
    if not places:
        return None
    homes = _homes(refs)
    key = str(normalize_person(pd.Series([target])).iloc[0])
    theirs = homes[homes["_key"].eq(key)]
    spots = {(p, u) for p, u, _ in places}
    if any((p, u) in spots for p, u in zip(theirs["property_id"], theirs["_unit"], strict=True)):
        return None
    props = refs.properties
    names = {str(p): str(n) for p, n in zip(props["id"], props["name"], strict=True)}
    lives = sorted(
        {
            f"{names.get(str(p), str(p))} unit {u}"
            for p, u in zip(theirs["property_id"], theirs["_unit"], strict=True)
        }
    )
    where = ", ".join(w for _, _, w in places)
    present = residents_at(refs, places)
    there = (
        "Propexo has " + ", ".join(f'"{n}"' for n in present) + " there"
        if present
        else "Propexo has no current resident there"
    )
    lives_text = f"lives in {', '.join(lives)}" if lives else "has no current lease"
    return (
        f'"{target}" {lives_text}, not in {where} where the rows are ({there}); '
        "an alias to them would post these rows to another tenant's account"
    )
