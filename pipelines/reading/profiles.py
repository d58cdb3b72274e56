"""Source profiles: data files that map one export format onto tieout's canonical columns.

A profile (``data/profiles/*.toml``) says which header texts mean which canonical column, which
rows are not data (titles, group rows, subtotals, totals, legends), and for rent rolls whether
charges come one per row or one per *column* (each column a charge code). The profile of a file
is found from its headers; the file name or the config can name one instead.
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pipelines.core.columns import RENT_NAMES, bare_charge_name, charge_forms
from pipelines.core.columns import normalize_header as normalize_header  # noqa: PLC0414 (kept here)
from pipelines.core.config import Settings
from pipelines.core.errors import ConfigError
from pipelines.core.kind import Kind, Kinds
from pipelines.core.models import SourceKind

BUILTIN_PROFILES_DIR = Path(__file__).resolve().parents[2] / "data" / "profiles"


# Columns of a rent roll that are charged when no profile says otherwise: billed amounts only.
# A header is a charge when one of these phrases is the whole header or a whole word run of it.
CHARGE_VOCABULARY = (
    "rent",
    "base rent",
    "rent income",
    "tenant rent",
    "resident rent",
    "section 8",
    "section 8 rent",
    "hap",
    "housing assistance",
    "housing assistance rent",
    "subsidy",
    "pet rent",
    "pet fee",
    "parking",
    "garage",
    "carport",
    "storage",
    "utilities",
    "utility",
    "water",
    "sewer",
    "trash",
    "valet trash",
    "water sewer trash",
    "water sewer",
    "electric",
    "gas",
    "cable",
    "internet",
    "rubs",
    "pest control",
    "concession",
    "concessions",
    "discount",
    "renters insurance",
    "amenity fee",
    "admin fee",
    "hoa",
    "late fee",
    "month to month fee",
    "mtm fee",
    *sorted(RENT_NAMES),
)
# The vocabulary's names without qualifying words, compared with a header's own (see
# ``columns.bare_charge_name``): "Parking Fee" is the parking, "Pet Fee - Recurring" the pet fee.
_BARE_CHARGES = frozenset(bare_charge_name(p) or p for p in CHARGE_VOCABULARY)
# Families that are never charges, whatever else the header says: they describe the lease,
# the unit or the account, or they total the row. Recognised by name and left out silently.
NON_CHARGE_PATTERNS = (
    r"\bmarket\b",
    r"\bdeposits?\b",
    r"\bbalance\b",
    r"\bpast due\b",
    r"\bdelinquen",
    r"\breceived\b",
    r"\bpaid\b",
    r"\bpayments?\b",
    r"\bprepaid\b",
    r"\bsq\s*ft\b|\bsqft\b|\bsquare\b",
    r"\bdates?\b|\bfrom\b|\bto\b|\bstart\b|\bend\b|\bexpires?\b|\bmove\b",
    r"\bcount\b|\bnsf\b|#",
    r"\bid\b|\bcode\b|\bzip\b|\bphone\b|\bemail\b|\baddress\b",
    r"\btotals?\b",
    r"\bbd\b|\bba\b|\bbeds?\b|\bbaths?\b",
    r"\btags?\b|\bamenities\b|\bnotes?\b|\bstatus\b|\bflag\b|\byes\b",
)
_NON_CHARGE = re.compile("|".join(NON_CHARGE_PATTERNS))


def is_non_charge(header: str) -> bool:
    """A header of a family that is never charged (deposit, market rent, balance, dates, …)."""
    return bool(_NON_CHARGE.search(normalize_header(header)))


@dataclass(frozen=True)
class Profile:
    """One export format."""

    name: str
    kind: SourceKind
    description: str
    columns: dict[str, tuple[str, ...]]
    required: tuple[str, ...]
    charge_mode: Literal["rows", "columns"] = "rows"
    charge_columns_ignore: tuple[str, ...] = ()
    # Headers charged by this profile, besides CHARGE_VOCABULARY (normalized, whole header).
    charge_columns_include: tuple[str, ...] = ()
    total_patterns: tuple[str, ...] = (r"^\s*(grand\s+)?totals?\b",)
    subtotal_patterns: tuple[str, ...] = (r"^\s*sub-?totals?\b", r"^\s*\d+\s+units?\b")
    group_patterns: tuple[str, ...] = (r"^\s*->",)
    group_sets: str | None = None
    group_strip: str | None = None
    fill_down: tuple[str, ...] = ()
    vacant_patterns: tuple[str, ...] = (r"^\W*vacant",)  # "VACANT", "*Vacant"
    # Section banners, one text on a row ("Current/Notice/Vacant Residents"): notes.
    note_patterns: tuple[str, ...] = ()
    # Banners of a section of residents who are not current ("Future Residents/Applicants"):
    # every row under one, up to the next banner, is skipped, never charged.
    not_current_patterns: tuple[str, ...] = ()
    # The row that begins a summary block after the data ("Summary Groups"): it and every row
    # below it are notes, whatever they hold.
    summary_patterns: tuple[str, ...] = ()
    # A narrow profile ("Rent Roll Charges Summary"): it applies only to a file whose title
    # block (or name) matches one of these, so it never claims another export's columns.
    title_patterns: tuple[str, ...] = ()
    # Charge columns only by the profile's own ``include`` (or a charge code), never by the
    # general vocabulary: a profile whose own charge names mark its files.
    charge_columns_only: bool = False
    period_patterns: tuple[str, ...] = (
        # "As of 12/01/2026", "As Of = 10/31/2023", "As of Date: 01/31/2024 12:00:00 AM"
        r"(?i)\bas\s+of(?:\s+date)?\s*[:=]?\s*"
        r"(?P<date>\d{1,2}/\d{1,2}/\d{2,4}|\d{4}-\d{2}-\d{2})",
        r"(?i)\bperiod:?\s*(?P<month>[A-Za-z]+)\s+(?P<year>\d{4})",
        # Yardi's "Period: 01/24" and "Period = 01/2024"
        r"(?i)\bperiod\s*[:=]?\s*(?P<mnum>\d{1,2})/(?P<year>\d{4}|\d{2})(?![\d/])",
        r"(?i)\bfor\s+(?P<month>[A-Za-z]+)\s+(?P<year>\d{4})",
        r"(?i)\bmonth\s*year\s*=?\s*(?P<mnum>\d{1,2})/(?P<year>\d{4})",
    )
    file_name_hints: tuple[str, ...] = ()
    # Columns whose cells are joined into one canonical column ("Last Name" and "First Name"
    # as resident_name "Last, First"): canonical → headers, the first one mapped under
    # [columns] (a layout confirmed from a proposal, #38).
    join: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # The registered kind its ``kind`` names (given when it is loaded).
    spec: Kind | None = field(default=None, compare=False, repr=False)

    def charges_header(self, header: str, known_codes: frozenset[str] = frozenset()) -> bool:
        """Whether a column with this header is a charge: named by the profile or the charge
        vocabulary, or (online) the name of a Propexo charge code or one of its aliases; never
        a known non-charge family."""
        name = normalize_header(header)
        if not name or name in {normalize_header(x) for x in self.charge_columns_ignore}:
            return False
        if name in {normalize_header(x) for x in self.charge_columns_include}:
            return True
        if is_non_charge(name):
            return False
        if name in known_codes:
            return True
        if self.charge_columns_only:
            return False
        # Through an account prefix ("REV: Parking Fee", "4010 - Pet Rent") and qualifying
        # words, but only to a name of the vocabulary or an alias, never to any word left over.
        if any(f in CHARGE_VOCABULARY or f in known_codes for f in charge_forms(header)):
            return True
        bare = bare_charge_name(header)
        return bool(bare) and (bare in _BARE_CHARGES or bare in known_codes)

    def applies_to(self, title: str, file_name: str) -> bool:
        """Whether a narrow profile's title patterns match the file's title block or name
        (a profile without any applies to every file)."""
        return not self.title_patterns or any(
            re.search(p, text, flags=re.IGNORECASE)
            for p in self.title_patterns
            for text in (title, file_name)
        )

    def names_charge(self, header: str, known_codes: frozenset[str] = frozenset()) -> bool:
        """Whether the profile's own ``[charges] include`` or a charge code's name or alias
        names this header as a charge (not only the general vocabulary)."""
        name = normalize_header(header)
        own = {normalize_header(x) for x in self.charge_columns_include}
        return bool(name) and (name in own or name in known_codes)

    def own_names(self) -> dict[str, str]:
        """The header texts this profile's own file declares (normalized) → canonical column:
        what a strict match reads columns by, never a general vocabulary."""
        return {
            normalize_header(alias): canonical
            for canonical, aliases in self.columns.items()
            for alias in (canonical, *aliases)
        }

    def charged_by_own_name(self, header: str) -> bool:
        """Whether the profile's own ``[charges] include`` names this header."""
        return normalize_header(header) in {
            normalize_header(x) for x in self.charge_columns_include
        }

    def known_not_charge(self, header: str) -> bool:
        """A header the profile ignores, or of a family that is never a charge."""
        name = normalize_header(header)
        ignored = {normalize_header(x) for x in self.charge_columns_ignore}
        return bool(name) and (name in ignored or is_non_charge(name))

    def alias_map(self) -> dict[str, str]:
        """Normalized header text → canonical column."""
        mapping: dict[str, str] = {}
        for canonical, aliases in self.columns.items():
            for alias in (canonical, *aliases):
                mapping[normalize_header(alias)] = canonical
        return mapping


def _flag(value: object, key: str, path: Path) -> bool:
    if isinstance(value, bool):
        return value
    raise ConfigError(f"profile {path}: {key} must be true or false")


def _tuple(value: object, key: str, path: Path) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ConfigError(f"{path}: {key} must be a list of strings")


PROFILE_KEYS = {
    "": {
        "name",
        "kind",
        "description",
        "required",
        "columns",
        "rows",
        "charges",
        "period_patterns",
        "file_name_hints",
        "join",
    },
    "rows": {
        "total",
        "subtotal",
        "group",
        "group_sets",
        "group_strip",
        "fill_down",
        "vacant",
        "note",
        "not_current",
        "summary",
        "title",
    },
    "charges": {"mode", "ignore", "include", "only"},
}


def _refuse_unknown_keys(path: Path, raw: dict[str, Any]) -> None:
    """A misspelled key is an error naming it and its line, never silently ignored."""
    for table, allowed in PROFILE_KEYS.items():
        section = raw.get(table, {}) if table else raw
        if not isinstance(section, dict):
            raise ConfigError(f"profile {path}: [{table}] must be a table")
        for key in section:
            if key not in allowed:
                line = _line_of(path, key)
                where = f"[{table}] " if table else ""
                raise ConfigError(
                    f"profile {path}{line}: unknown key {where}{key!r}; "
                    f"known: {', '.join(sorted(allowed))}"
                )


def _line_of(path: Path, key: str) -> str:
    for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if re.match(rf"\s*{re.escape(key)}\s*=", text):
            return f", line {number}"
    return ""


def profile_name(path: Path) -> str:
    """The name a profile file gives itself (its ``name``, else its file name)."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"profile {path}: {exc}") from exc
    return str(raw.get("name", path.stem))


def load_profile(path: Path, kinds: Kinds) -> Profile:
    """Read one profile file, checking it enough that a typo gives a clear message; its
    ``kind`` must be one of ``kinds``, whose source columns it maps."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"profile {path}: {exc}") from exc
    _refuse_unknown_keys(path, raw)
    kind = raw.get("kind")
    if kind not in kinds.source_columns:
        names = " or ".join(repr(k) for k in sorted(kinds.source_columns))
        raise ConfigError(f"profile {path}: kind must be {names}, got {kind!r}")
    known = kinds.source_columns[kind]
    columns_raw = raw.get("columns", {})
    unknown = sorted(set(columns_raw) - set(known))
    if unknown:
        raise ConfigError(
            f"profile {path}: unknown canonical columns {unknown}; known: {list(known)}"
        )
    columns = {k: _tuple(v, f"columns.{k}", path) for k, v in columns_raw.items()}
    join = {k: _tuple(v, f"join.{k}", path) for k, v in raw.get("join", {}).items()}
    if set(join) - set(columns):
        raise ConfigError(
            f"profile {path}: [join] names columns not mapped under [columns]: "
            f"{sorted(set(join) - set(columns))}"
        )
    rows = raw.get("rows", {})
    charges = raw.get("charges", {})
    defaults = Profile(name="", kind="", description="", columns={}, required=())
    mode = charges.get("mode", "rows")
    if mode not in ("rows", "columns"):
        raise ConfigError(f"profile {path}: charges.mode must be 'rows' or 'columns'")
    if mode == "columns" and ({"amount", "charge_code"} & set(columns_raw)):
        named = {"amount": "an amount column", "charge_code": "a charge_code column"}
        mapped = " or ".join(named[c] for c in sorted(named) if c in columns_raw)
        raise ConfigError(
            f"profile {path}: charges.mode = 'columns' charges one column per charge code "
            f"(its header is the code), so it cannot also map {mapped}; use mode = 'rows' "
            "with a charge_code and an amount column"
        )
    return Profile(
        spec=kinds.source(str(kind)),
        name=str(raw.get("name", path.stem)),
        kind=str(kind),
        description=str(raw.get("description", "")),
        columns=columns,
        required=_tuple(raw.get("required", []), "required", path),
        charge_mode=mode,
        charge_columns_ignore=_tuple(charges.get("ignore", []), "charges.ignore", path),
        charge_columns_include=_tuple(charges.get("include", []), "charges.include", path),
        total_patterns=_tuple(rows.get("total", list(defaults.total_patterns)), "rows.total", path),
        subtotal_patterns=_tuple(
            rows.get("subtotal", list(defaults.subtotal_patterns)), "rows.subtotal", path
        ),
        group_patterns=_tuple(rows.get("group", list(defaults.group_patterns)), "rows.group", path),
        group_sets=rows.get("group_sets"),
        group_strip=rows.get("group_strip"),
        fill_down=_tuple(rows.get("fill_down", []), "rows.fill_down", path),
        vacant_patterns=_tuple(
            rows.get("vacant", list(defaults.vacant_patterns)), "rows.vacant", path
        ),
        note_patterns=_tuple(rows.get("note", []), "rows.note", path),
        not_current_patterns=_tuple(rows.get("not_current", []), "rows.not_current", path),
        summary_patterns=_tuple(rows.get("summary", []), "rows.summary", path),
        title_patterns=_tuple(rows.get("title", []), "rows.title", path),
        charge_columns_only=_flag(charges.get("only", False), "charges.only", path),
        period_patterns=_tuple(
            raw.get("period_patterns", list(defaults.period_patterns)), "period_patterns", path
        ),
        file_name_hints=_tuple(raw.get("file_name_hints", []), "file_name_hints", path),
        join=join,
    )


def load_profiles(*dirs: Path, kinds: Kinds) -> list[Profile]:
    """Every profile in the given folders (later folders override earlier ones by name), of
    the given kinds."""
    found: dict[str, Profile] = {}
    for folder in dirs:
        if folder.is_dir():
            for path in sorted(folder.glob("*.toml")):
                profile = load_profile(path, kinds)
                found[profile.name] = profile
    if not found:
        raise ConfigError(f"no source profiles found in {', '.join(str(d) for d in dirs)}")
    return list(found.values())


def profiles_for(settings: Settings, kinds: Kinds) -> list[Profile]:
    """Built-in profiles, overridden or extended by the data folder's own, plus the profile
    file named by ``--profile PATH`` (which then is the one used); each of one of ``kinds``."""
    profiles = load_profiles(BUILTIN_PROFILES_DIR, settings.profiles_dir, kinds=kinds)
    named = _profile_file(settings)
    if named is None:
        return profiles
    chosen = load_profile(named, kinds)
    return [p for p in profiles if p.name != chosen.name] + [chosen]


def _profile_file(settings: Settings) -> Path | None:
    value = settings.profile
    if value and (value.endswith(".toml") or "/" in value):
        path = Path(value)
        if not path.is_file():
            raise ConfigError(f"profile {value}: no such file")
        return path
    return None


def profile_for_file(settings: Settings, profiles: list[Profile], file_name: str) -> str | None:
    """The profile named explicitly (by name or file), which always wins; else the first
    ``[profiles]`` glob of tieout.toml that matches the file name; None: detect."""
    if settings.profile is not None:
        return _named_profile(settings, profiles)
    for pattern, name in settings.profile_globs:
        if fnmatch.fnmatch(file_name.lower(), pattern.lower()):
            if name not in {p.name for p in profiles}:
                raise ConfigError(f"[profiles] {pattern!r} names no profile called {name!r}")
            return name
    return None


def _named_profile(settings: Settings, profiles: list[Profile]) -> str:
    named = _profile_file(settings)
    name = profile_name(named) if named is not None else settings.profile
    if name not in {p.name for p in profiles}:
        known = ", ".join(sorted(p.name for p in profiles))
        raise ConfigError(f"no profile named {name!r}; known: {known}")
    return name
