"""Charge reference numbers: ``TO`` and ten base-32 digits derived from what names a charge
(integration, resident, charge code, date, and its ordinal among equal lines), so the same
line in a file dropped again gets the same number, and Propexo's records can be told ours.

A file read alone numbers equal lines in file order (:func:`reference_bits`). Against the
ledger, :func:`match_posted` gives the ordinals back by content: among the lines of one
identity, a line saying what a posted record says takes its number, whatever its place in the
file; only the rest are paired with what was posted and differs (a conflict) or given ordinals
no posted record holds (new). So a sheet re-exported in another order, or with a line added,
posts only what is new.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePath

import numpy as np
import pandas as pd

from pipelines.core.columns import (
    base32_column,
    digest64,
    fingerprint64,
    int_part,
    ordinals,
)
from pipelines.core.kind import ReadWhere
from pipelines.core.parsing import format_cents
from pipelines.kinds.charge.payloads import IDENTITY, distinct_contents

REFERENCE_PREFIX = "TO"


REFERENCE_LENGTH = 12


def reference_numbers(
    frame: pd.DataFrame,
    integration_id: str,
    contents: tuple[np.ndarray, pd.DataFrame] | None = None,
) -> pd.Series:
    """Deterministic reference numbers for charges whose source has none (see
    :func:`reference_bits` for how they are derived)."""
    return reference_text(reference_bits(frame, integration_id, contents), frame.index)


def reference_text(bits: np.ndarray, index: pd.Index) -> pd.Series:
    """``TO`` + the top 50 bits in base32."""
    size = REFERENCE_LENGTH - len(REFERENCE_PREFIX)
    return base32_column(bits, size, REFERENCE_PREFIX).set_axis(index)


def reference_bits(
    frame: pd.DataFrame,
    integration_id: str,
    contents: tuple[np.ndarray, pd.DataFrame] | None = None,
) -> np.ndarray:
    """The 64 bits behind each line's reference number.

    Derived from what *identifies* the line, never from what it says: the integration, the
    resident, the charge code, the transaction date (the period), and the line's ordinal among
    lines of the same identity in file order. So a corrected amount or note keeps its number
    and is caught as "same key, other content" (a conflict), instead of becoming a new charge.

    The number is ``TO`` + the top 50 bits, in base32, of ``fingerprint64([sha(integration),
    sha(resident), sha(code), sha(date), ordinal])``, where ``sha(x)`` is the first 8 bytes of
    sha256 of the text: computed column-wise, with sha256 once per distinct value.
    ``contents`` is ``distinct_contents`` of the frame over at least those columns, when the
    caller has it already.
    """
    codes, contents_frame = contents or distinct_contents(frame, IDENTITY)
    per_content = fingerprint64(
        [
            digest64(pd.Series([integration_id] * len(contents_frame), dtype=object)),
            *(digest64(contents_frame[column]) for column in IDENTITY),
        ]
    )
    identity = per_content[codes]
    ordinal = ordinals(identity, frame["source_row"].to_numpy(dtype=np.int64))
    return fingerprint64([int_part(ordinal)], start=identity)


def identity_bits(frame: pd.DataFrame, integration_id: str) -> np.ndarray:
    """Per row, the fold of (integration, resident, charge code, date) that
    :func:`reference_bits` continues with the ordinal."""
    return fingerprint64(
        [
            digest64(pd.Series([integration_id] * len(frame), dtype=object)),
            *(digest64(frame[column].reset_index(drop=True)) for column in IDENTITY),
        ]
    )


def numbered(identity: np.ndarray, ordinal: np.ndarray, index: pd.Index) -> pd.Series:
    """The reference number of each (identity, ordinal)."""
    return reference_text(fingerprint64([int_part(ordinal)], start=identity), index)


@dataclass(frozen=True)
class Unmatched:
    """A record posted before, of an identity a file has lines of, that no line of the file
    says: reported, nothing is done about it."""

    record_key: str
    reference_number: str
    amount_cents: int
    first_run_id: str
    source_file: str


@dataclass(frozen=True)
class Matched:
    """What :func:`match_posted` found: each line's reference number (changed where the
    ledger decides), the posted records of the same source no line matched, and the lines
    that say exactly what a record posted from another source says (line index → that
    record's reference number): a second charge, or the same one again, is a person's call."""

    reference_number: pd.Series
    unmatched: list[Unmatched]
    second: dict[object, str] = field(default_factory=dict)


def source_stem(name: object) -> str:
    """A file's name as the source it is a version of: without its folder and extension,
    case-folded (``Rent Roll.xlsx`` re-saved as ``rent roll.csv`` is the same source)."""
    return PurePath(str(name)).stem.casefold().strip()


def same_sources(file_name: str, posted_sources: pd.Series, matched_sources: pd.Series) -> set[str]:
    """Which earlier files (by name) a file is a version of: the same name (see
    :func:`source_stem`), or one whose posted lines (of the file's dates) it restates for
    more than half (by identity: a changed amount still restates its line). A file that
    restates no more than half of another is another source: a line of it identical to one of
    that file's is a question, and what it lacks of that file is none of its business."""
    stem = source_stem(file_name)
    held = posted_sources.astype(str).value_counts()
    hit = {str(k): int(v) for k, v in matched_sources.astype(str).value_counts().items()}
    return {
        str(name)
        for name, count in held.items()
        if source_stem(name) == stem or 2 * hit.get(str(name), 0) > int(count)
    }


def match_posted(lines: pd.DataFrame, posted: pd.DataFrame, integration_id: str) -> Matched:
    """Reference numbers for a file's charge lines, given the ledger's ``posted`` records of
    the same identities (resident, charge code, date).

    Only lines numbered by :func:`reference_bits` (the source gave none) of an identity the
    ledger holds are renumbered. Within an identity, in this order:

    1. a line with the content (kind and digest) of a posted record takes its number, the
       n-th such line the n-th such record;
    2. of the rest, a line with the amount of a posted record takes its number (the notes
       changed, or the record was adopted from Propexo, its notes unknown);
    3. the rest are paired in order with posted records still unmatched: the same number
       with another content, a conflict (held, never posted);
    4. lines left over take the lowest ordinals no posted record holds: new charges.

    A line paired in step 1 or 2 (the same identity and amount: notes are not content) with a
    record posted from another source (:func:`same_sources`) is returned in
    :attr:`Matched.second`. Posted records of the file's own sources left over
    are returned as :class:`Unmatched`; those of other sources are not.
    ``lines`` is the staged frame (``kind``, ``reference_number``, ``content_hash``,
    ``amount_cents``, ``source_rows``, ``source_file`` and the identity columns); ``posted``
    the ledger's rows (the same, with ``run_id`` and ``seq``, the order they were staged in).
    """
    references = lines["reference_number"].astype(str).copy()
    if lines.empty or posted.empty:
        return Matched(references, [])
    line_identity = identity_bits(lines, integration_id)
    first_row = np.array([int(rows[0]) for rows in lines["source_rows"]], dtype=np.int64)
    own = numbered(line_identity, ordinals(line_identity, first_row), lines.index)
    held = pd.Series(identity_bits(posted, integration_id), index=posted.index)
    derived = (own == references).to_numpy() & np.isin(line_identity, held.to_numpy())
    if not derived.any():
        return Matched(references, [])
    mine = pd.DataFrame(
        {
            "identity": line_identity[derived],
            "kind": lines["kind"].to_numpy()[derived],
            "content": lines["content_hash"].astype(str).to_numpy()[derived],
            "amount": lines["amount_cents"].to_numpy(dtype=np.int64)[derived],
            "order": first_row[derived],
        },
        index=lines.index[derived],
    ).sort_values("order", kind="stable")
    theirs = pd.DataFrame(
        {
            "identity": held.to_numpy(),
            "kind": posted["kind"].to_numpy(),
            "content": posted["content_hash"].astype(str).to_numpy(),
            "amount": posted["amount_cents"].to_numpy(dtype=np.int64),
            "order": posted["seq"].to_numpy(dtype=np.int64),
            "reference": posted["reference_number"].astype(str).to_numpy(),
            "source": posted["source_file"].astype(str).to_numpy(),
        },
        index=posted.index,
    ).sort_values("order", kind="stable")
    taken: dict[object, str] = {}
    identical: dict[object, str] = {}
    steps = (["identity", "kind", "content"], ["identity", "kind", "amount"], ["identity"])
    for step, keys in enumerate(steps):
        left = mine.drop(index=list(taken))
        right = theirs[~theirs["reference"].isin(set(taken.values()))]
        if left.empty or right.empty:
            break
        pairs = (
            left.assign(n=left.groupby(keys).cumcount())
            .reset_index(names="line")
            .merge(
                right.assign(n=right.groupby(keys).cumcount())[[*keys, "n", "reference"]],
                on=[*keys, "n"],
            )
        )
        taken.update(zip(pairs["line"], pairs["reference"], strict=True))
        if step <= 1:  # the lines that say what a posted record says (notes aside)
            identical = dict(taken)
    if taken:
        references.update(pd.Series(taken, dtype=object))
    new = mine.drop(index=list(taken))
    if not new.empty:
        references.update(_fresh_numbers(new, theirs))
    source_of = dict(zip(theirs["reference"], theirs["source"], strict=True))
    file_name = str(lines["source_file"].iloc[0]) if "source_file" in lines.columns else ""
    same = same_sources(
        file_name, theirs["source"], pd.Series([source_of[r] for r in taken.values()], dtype=object)
    )
    second = {line: ref for line, ref in identical.items() if source_of[ref] not in same}
    unpaired = ~theirs["reference"].isin(set(taken.values())) & theirs["source"].isin(same)
    left_over = posted.loc[theirs.index[unpaired]]
    unmatched = [
        Unmatched(str(key), str(reference), int(cents), str(run), str(file))
        for key, reference, cents, run, file in zip(
            left_over["record_key"],
            left_over["reference_number"],
            left_over["amount_cents"].astype("int64"),
            left_over["run_id"],
            left_over["source_file"],
            strict=True,
        )
    ]
    return Matched(references, unmatched, second)


def _fresh_numbers(new: pd.DataFrame, posted: pd.DataFrame) -> pd.Series:
    """For lines of identities the ledger holds that match nothing posted: the lowest
    ordinals whose numbers no posted record of the identity holds, in file order."""
    needed = new.groupby("identity").size()
    held = posted.groupby("identity").size().reindex(needed.index, fill_value=0)
    tries = (needed + held).to_numpy()  # enough ordinals to find ``needed`` free ones
    identity = np.repeat(needed.index.to_numpy(dtype=np.uint64), tries)
    ordinal = np.concatenate([np.arange(n, dtype=np.int64) for n in tries])
    candidates = pd.DataFrame(
        {
            "identity": identity,
            "reference": numbered(identity, ordinal, pd.RangeIndex(len(identity))),
        }
    )
    free = candidates[~candidates["reference"].isin(set(posted["reference"]))]
    free = free.assign(n=free.groupby("identity").cumcount())
    lines = new.assign(n=new.groupby("identity").cumcount()).reset_index(names="line")
    chosen = lines.merge(free, on=["identity", "n"])
    return pd.Series(chosen["reference"].to_numpy(), index=chosen["line"].to_numpy())


# What matching reads of the records posted before (:func:`renumber`).
POSTED_COLUMNS = (
    "record_key",
    "kind",
    "reference_number",
    "content_hash",
    "amount_cents",
    "resident_id",
    "charge_code_id",
    "transaction_date",
    "run_id",
    "source_file",
)


# A line's digest while it is held as a question (:func:`renumber`): never a record's, so
# staging meets its key with "another content" and hands it to the kind's conflict_issues.
SECOND_CHARGE = "second-charge?"


def renumber(frame: pd.DataFrame, read_where: ReadWhere) -> list[str]:
    """The charge kind's :attr:`Kind.renumber`: ``frame``'s charge lines renumbered in place
    against the ledger's records of their dates (:func:`match_posted`), ``record_key`` and
    ``reference_number`` alike. Then, in place too: a line that takes the number of a posted
    record of its identity with the same amount takes that record's digest (only the notes
    differ, and they come from how the file spelled the code: not a change); a line identical
    to a record posted from another source is marked :data:`SECOND_CHARGE` (held, a
    question). Returns a line for each posted record of the same source no line matched."""
    if "resident_id" not in frame.columns:
        return []
    charges = frame[frame["resident_id"].notna().to_numpy(dtype=bool)]  # charges, credits
    if charges.empty:
        return []
    dates = sorted({str(d) for d in charges["transaction_date"].dropna()})
    posted = read_where(POSTED_COLUMNS, "transaction_date", dates)
    posted = posted[posted["resident_id"].notna().to_numpy(dtype=bool)].reset_index(drop=True)
    if posted.empty:
        return []
    integration_id = str(charges["integration_id"].iloc[0])
    matched = match_posted(charges, posted, integration_id)
    changed = matched.reference_number != charges["reference_number"].astype(str)
    if changed.any():
        moved = changed[changed].index
        frame.loc[moved, "reference_number"] = matched.reference_number[moved]
        frame.loc[moved, "record_key"] = (
            frame.loc[moved, "kind"].astype(str)
            + ":"
            + integration_id
            + ":"
            + matched.reference_number[moved]
        )
    _lend_digests(frame, charges.index, posted)
    if matched.second:
        frame.loc[list(matched.second), "content_hash"] = SECOND_CHARGE
    return [unmatched_text(gone) for gone in matched.unmatched]


def _lend_digests(frame: pd.DataFrame, lines: pd.Index, posted: pd.DataFrame) -> None:
    """A line whose key is a posted record's, of the same resident, code, date and amount,
    says what that record says: it takes the record's digest (its notes may differ)."""
    same = ["record_key", "resident_id", "charge_code_id", "transaction_date", "amount_cents"]
    mine = frame.loc[lines, same].astype(str).reset_index(names="line")
    theirs = posted[[*same, "content_hash"]].astype(str)
    pairs = mine.merge(theirs, on=same)
    if not pairs.empty:
        frame.loc[pairs["line"].to_numpy(), "content_hash"] = pairs["content_hash"].to_numpy()


def unmatched_text(gone: Unmatched) -> str:
    """What a person reads about a posted record that a later version of its file has no
    line for: said, never undone (it may be right, and reversing a correct record is a
    mistake no tool should advise)."""
    word = "credit" if gone.record_key.startswith("credit:") else "charge"
    amount = format_cents(abs(gone.amount_cents), "dollar")
    return (
        f"the {word} {gone.reference_number} ({amount}), posted in run {gone.first_run_id} "
        f"from {gone.source_file}, has no line in this file with the same resident, charge "
        "code and date: it stays as posted; is it still due? (nothing was done about it)"
    )
