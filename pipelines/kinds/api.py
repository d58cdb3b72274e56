"""What a record kind may use: its public face (as httpx's ``__init__.__all__`` is its). A
kind's package, built in or a plug-in, imports from here and nothing else of tieout's;
everything else is the stages' own and may change without notice. ``tests/test_kinds_api.py``
guards the list, and ``tests/test_a_kind_from_outside.py`` builds a kind from it alone.

- The kind: :class:`Kind` (its fields), :func:`define` (a kind from its module's functions,
  the common case's defaults for the rest: :class:`Common`), :func:`register`, the
  :class:`KindContext` its functions are given, :class:`Draft`, its ledger :class:`Column` s,
  the Propexo lists it resolves names against (:class:`RefList`) and its kinds of names
  (:class:`NameKind`: resolved per location, aliased with `tieout alias add`).
- What its functions take and give: :class:`ExtractResult`, :class:`ValidateResult`,
  :class:`TransformResult`, :class:`PostRequest`, :class:`Issue` and :class:`IssueCode`,
  :class:`Conflict`, :class:`SyncCursor`, :class:`RefData`.
- Shared building blocks: reading values and checking lines (``parse_*``, ``*_issues``,
  ``text_columns``, ``valid_lines``), resolving names to Propexo ids (``resolve_*``,
  ``normalize_unit``, ``bad_rows``), bodies and digests (``content_hash``, ``stored_body``),
  Propexo's records read back (``fetch_synced``, ``newest_stamp``), matching's outcomes
  (``outcomes_frame``, ``aligned_verdict``, ``absence_note``, ``DETAIL_COLUMNS``), and the
  schemas' base models and limits (``Line``, ``SyncedRecord``, ``ISO_DATE``, …).
"""

from __future__ import annotations

from pipelines.core.kind import Draft, Found, Kind, KindContext, ReadWhere
from pipelines.core.models import (
    ExtractResult,
    Issue,
    IssueCode,
    PostRequest,
    TransformResult,
    ValidateResult,
    whole,
)
from pipelines.core.parsing import format_cents, parse_dates, parse_money
from pipelines.core.record_columns import Column
from pipelines.core.references import NameKind, RefList
from pipelines.kinds import register, registered, unregister
from pipelines.kinds.common import Common, define
from pipelines.ledger import Conflict, SyncCursor
from pipelines.posting.payloads import content_hash, stored_body
from pipelines.reading.extract import own_period
from pipelines.reading.validate import (
    as_text,
    cell_prefix,
    line_frame,
    parse_amounts,
    parse_dated,
    parse_issues,
    schema_issues,
    sorted_issues,
    text_columns,
    valid_lines,
    validated,
)
from pipelines.reconciling.reconcile import (
    DETAIL_COLUMNS,
    absence_note,
    aligned_verdict,
    outcomes_frame,
)
from pipelines.resolving.refs import RefData, fetch_synced, newest_stamp
from pipelines.resolving.transform import (
    bad_rows,
    normalize_unit,
    resolve_named,
    resolve_properties,
    resolve_residents,
)
from schemas.common import (
    CHECK_WORDS,
    ISO_DATE,
    MAX_NAME,
    MAX_NOTES,
    MAX_REFERENCE,
    Line,
    SyncedRecord,
)

__all__ = [
    "CHECK_WORDS",
    "DETAIL_COLUMNS",
    "ISO_DATE",
    "MAX_NAME",
    "MAX_NOTES",
    "MAX_REFERENCE",
    "Column",
    "Common",
    "Conflict",
    "Draft",
    "ExtractResult",
    "Found",
    "Issue",
    "IssueCode",
    "Kind",
    "KindContext",
    "Line",
    "NameKind",
    "PostRequest",
    "ReadWhere",
    "RefData",
    "RefList",
    "SyncCursor",
    "SyncedRecord",
    "TransformResult",
    "ValidateResult",
    "absence_note",
    "aligned_verdict",
    "as_text",
    "bad_rows",
    "cell_prefix",
    "content_hash",
    "define",
    "fetch_synced",
    "format_cents",
    "line_frame",
    "newest_stamp",
    "normalize_unit",
    "outcomes_frame",
    "own_period",
    "parse_amounts",
    "parse_dated",
    "parse_dates",
    "parse_issues",
    "parse_money",
    "register",
    "registered",
    "resolve_named",
    "resolve_properties",
    "resolve_residents",
    "schema_issues",
    "sorted_issues",
    "stored_body",
    "text_columns",
    "unregister",
    "valid_lines",
    "validated",
    "whole",
]
