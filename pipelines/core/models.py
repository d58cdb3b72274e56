"""Plain data shared by the stages: issue records and each stage's typed result."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, SupportsInt

import pandas as pd

if TYPE_CHECKING:
    from pipelines.reading.layout import LayoutFacts

# A source kind (what a profile's ``kind`` names) and a record kind (the ledger's ``kind``):
# each registered kind's own names (pipelines.kinds), never listed here.
SourceKind = str
Say = Callable[[str], None]  # where a stage tells the person what it did


def whole(value: object) -> int:
    """A cell known to hold a whole number (Python, NumPy or pandas, or its text) as an int."""
    if isinstance(value, SupportsInt | str):
        return int(value)
    raise TypeError(f"not a whole number: {value!r}")


def exit_code_of(value: object) -> int | None:
    """A run's exit code as an int, or None when it has none (it has not finished): a ledger
    column read through pandas may hold 1.0, NaN or None."""
    if isinstance(value, str):
        return int(value) if value.strip() else None
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    return whole(value)


def utcnow() -> str:
    """Ledger timestamps: ISO 8601 UTC with microseconds (they sort as text)."""
    return datetime.now(tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class RecordState(StrEnum):
    """Where a record is on its way into Rent Manager (see ARCHITECTURE.md, "Ledger states").

    ready → sending → submitted → confirmed | failed | partial → matched | missing |
    mismatched | duplicated | unverifiable; sending → refused → (a person) ready
    """

    READY = "ready"  # staged, never sent
    SENDING = "sending"  # its POST may have gone out: in doubt until proven either way
    SUBMITTED = "submitted"  # Propexo accepted the write; its job is being followed
    CONFIRMED = "confirmed"  # the job finished: Propexo says it was written
    FAILED = "failed"  # Propexo refused it; never re-sent by itself
    # Propexo refused the request itself (a 4xx such as 400/422, with its reason): nothing was
    # written. Open until a person fixes the cause and sends it again (`resolve --send-again`).
    REFUSED = "refused"
    PARTIAL = "partial"  # its batch partly failed: which lines landed is not known
    MATCHED = "matched"  # found in a sync, as sent
    MISSING = "missing"  # a sync that must have seen it did not
    MISMATCHED = "mismatched"  # found, but not as sent
    DUPLICATED = "duplicated"  # found more than once
    UNVERIFIABLE = "unverifiable"  # outside every sync's reach: no sync can prove it either way
    # Never sent, and not sent while its absence from Propexo is not proven: a ledger that is
    # new, restored or rebuilt may not know a write Propexo holds (#37). Each run looks again;
    # a person may decide (`tieout resolve KEY --present|--absent`).
    HELD = "held"


# Written, but whether it landed is not known yet: never re-sent until its absence is proven.
IN_DOUBT = (RecordState.SENDING, RecordState.PARTIAL)
# Propexo said it was written (what reconcile looks for in the synced data).
POSTED = (
    RecordState.CONFIRMED,
    RecordState.MATCHED,
    RecordState.MISMATCHED,
    RecordState.MISSING,
    RecordState.DUPLICATED,
    RecordState.UNVERIFIABLE,
)
# Posted but not yet seen by a sync that settles it.
AWAITING_SYNC = (RecordState.CONFIRMED, RecordState.PARTIAL, RecordState.UNVERIFIABLE)
# Not finished by the run that staged or sent it (the run exits 1 until they are).
UNFINISHED = (
    RecordState.READY,
    RecordState.HELD,
    RecordState.SENDING,
    RecordState.SUBMITTED,
    RecordState.FAILED,
    RecordState.REFUSED,
    RecordState.PARTIAL,
)


class IssueCode(StrEnum):
    """Why a row (or a record) did not go through. Stable: reports and scripts key on these."""

    MISSING_VALUE = "MISSING_VALUE"
    BAD_AMOUNT = "BAD_AMOUNT"
    BAD_DATE = "BAD_DATE"
    SENTINEL_DATE = "SENTINEL_DATE"
    SCHEMA_CHECK = "SCHEMA_CHECK"
    UNKNOWN_VENDOR = "UNKNOWN_VENDOR"
    UNKNOWN_PROPERTY = "UNKNOWN_PROPERTY"
    UNKNOWN_GL_ACCOUNT = "UNKNOWN_GL_ACCOUNT"
    UNKNOWN_CHARGE_CODE = "UNKNOWN_CHARGE_CODE"
    UNKNOWN_RESIDENT = "UNKNOWN_RESIDENT"
    AMBIGUOUS = "AMBIGUOUS"
    MIXED_LOCATION = "MIXED_LOCATION"
    NEGATIVE_TOTAL = "NEGATIVE_TOTAL"
    INCONSISTENT_INVOICE = "INCONSISTENT_INVOICE"
    CONFLICT = "CONFLICT"
    SECOND_CHARGE = "SECOND_CHARGE"  # identical to a record posted from another file: a question
    API_REJECTED = "API_REJECTED"
    NOT_SYNCED = "NOT_SYNCED"


@dataclass(frozen=True)
class Issue:
    """One problem with one source row, in words a clerk understands. Its ``code`` is one of
    :class:`IssueCode`, or of the codes a kind declares (``Kind.issue_codes``, a ``StrEnum``
    of its own: a new kind's problem needs no edit here)."""

    code: StrEnum
    message: str
    source_file: str
    source_row: int
    column: str | None = None
    value: str | None = None
    # Where the row is, for a name Propexo keeps per place (a resident: property id, unit,
    # and the words "Oak Ridge unit 302"): an alias may only point at someone there.
    place: tuple[str, str, str] | None = None


# C0 and C1 control characters, and the bidirectional overrides that reorder what a line
# shows ("\u202e" makes "fdp.csv" read backwards).
CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def printable(text: str, keep: str = "") -> str:
    """``text`` with each control character written as its escape (``\x1b``, ``\n``), except
    those in ``keep``: a name or cell shown to a person cannot send terminal codes, forge a
    line of output, or break a workbook (openpyxl refuses control characters)."""

    def escaped(match: re.Match[str]) -> str:
        char = match.group()
        if char in keep:
            return char
        code = ord(char)
        return _NAMED.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")

    return CONTROL_CHARACTERS.sub(escaped, text)


@dataclass(frozen=True)
class SourceFile:
    """An input file as found: where it is, what it is called (as shown: see
    :func:`printable`; ``path`` is the file itself), and its content hash."""

    path: Path
    name: str
    sha256: str
    size_bytes: int
    mtime_ns: int = 0  # when it was fingerprinted: a file still being written changes it


@dataclass(frozen=True)
class GrainFinding:
    """A whole-file grain problem (a directory, an event log, several rows per resident),
    with the rows that show it."""

    check: str
    message: str
    rows: tuple[int, ...] = ()


@dataclass(frozen=True)
class ExtractResult:
    """A file read into a raw frame of canonical columns, with every non-data row accounted for.

    ``rows`` holds one row per data row (text cells, or typed cells from XLSX), with
    ``source_row`` the 1-based row number a person sees. ``skipped`` lists the non-data rows with
    their kind (title, blank, header, group, subtotal, total, zero_amount, vacant, ...).
    """

    source: SourceFile
    profile: str
    kind: SourceKind
    sheet: str | None
    rows: pd.DataFrame
    skipped: pd.DataFrame
    rows_read: int
    period: date | None = None
    period_source: str | None = None  # "title", "file name" or "--period"
    title: str = ""  # the text above the header (report name, period, property, ...)
    title_property: str | None = None  # the one property the title block names, if it does
    charge_columns: tuple[str, ...] = ()
    vacant_patterns: tuple[str, ...] = (r"^\s*vacant",)
    notices: tuple[str, ...] = ()  # what was surprising about the file, said once
    # Columns holding amounts that are not known charges: {header, cells, total_cents}.
    columns_not_charged: tuple[dict[str, Any], ...] = ()
    # The file's own total row against its lines: {column, stated_cents, computed_cents, ...}.
    file_totals: tuple[dict[str, Any], ...] = ()
    # Field → (header as the file writes it, column letter): "Rent" → ("Rent", "H").
    cells: dict[str, tuple[str, str]] = field(default_factory=dict)
    header_rows: tuple[int, ...] = ()  # 1-based, as a person sees them
    # The layout's fingerprint and what its profile makes of its columns; grain problems.
    layout: LayoutFacts | None = None
    grain: tuple[GrainFinding, ...] = ()


@dataclass(frozen=True)
class ValidateResult:
    """Normalized lines that passed every check, and the issues of those that did not.

    ``skipped`` adds the rows found to be non-data only once their amounts were read (every
    amount zero, a vacant unit). ``lines`` holds every normalized line, valid or not, so that a
    rejected row's dollars still count in the file's control total and the other lines of a
    half-bad invoice can be held back with it.
    """

    kind: SourceKind
    lines: pd.DataFrame
    valid: pd.DataFrame
    issues: list[Issue]
    skipped: pd.DataFrame


@dataclass(frozen=True)
class TransformResult:
    """Records ready to post (one row each), and the source rows that could not be resolved."""

    records: pd.DataFrame  # of the kind's own record columns
    issues: list[Issue]


@dataclass(frozen=True)
class FileOutcome:
    """The row accounting of one input file; it always adds up."""

    name: str
    sha256: str
    profile: str
    kind: str
    rows_read: int
    rows_used: int
    rows_rejected: int
    rows_skipped: int
    skipped_by_kind: dict[str, int]
    source_total_cents: int
    rejected_total_cents: int
    previously_posted_cents: int = 0
    columns_not_charged: tuple[dict[str, Any], ...] = ()
    file_totals: tuple[dict[str, Any], ...] = ()
    period: str | None = None  # YYYY-MM-DD, the first of the billing month
    period_source: str | None = None
    sheet: str | None = None  # the workbook sheet the data came from (None for CSV)

    def __post_init__(self) -> None:
        if self.rows_read != self.rows_used + self.rows_rejected + self.rows_skipped:
            raise AssertionError(f"row accounting does not add up for {self.name}")


@dataclass(frozen=True)
class LoadResult:
    """What one posting pass did."""

    requests: int
    submitted: int
    confirmed: int
    failed: int
    in_doubt: int
    rate_limited: int
    seconds: float


@dataclass(frozen=True)
class ReconcileResult:
    """Ledger records against synced Propexo records: counts by outcome."""

    matched: int
    awaiting_sync: int
    missing: int
    mismatched: int
    duplicated: int
    unexpected: int
    matched_total_cents: int
    details: pd.DataFrame
    unverifiable: int = 0  # outside every proven sync's date window: never called missing


@dataclass(frozen=True)
class PostRequest:
    """One write request: where it goes, what it carries, and which ledger records it holds."""

    path: str
    body: dict[str, Any]
    keys: list[str]
    kind: str
    location_id: str | None
    amount_cents: int


@dataclass(frozen=True)
class FileResult:
    """One file through extract, validate and (when refs are given) transform."""

    source: SourceFile
    extract: ExtractResult
    validated: ValidateResult
    records: pd.DataFrame
    issues: list[Issue]
    outcome: FileOutcome


@dataclass(frozen=True)
class RunOutcome:
    run_id: str | None
    exit_code: int
    report_dir: Path | None
    summary: dict[str, Any]


# An open item's states (#27): its events in the ledger (pipelines.ledger.items), the items
# built from a run's exceptions in pipelines.runs.items.
OPEN, SEEN, SETTLED, SUPERSEDED = "open", "seen", "settled", "superseded"


@dataclass(frozen=True)
class OpenItem:
    """One exception, as a run meets it."""

    item_id: str
    cause: str
    file_sha256: str | None
    file_name: str | None
    rows: tuple[int, ...] = ()
    amount_cents: int = 0
    amount_text: str | None = None
    sheet: str | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)
