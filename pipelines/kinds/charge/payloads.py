"""A charge's or credit's body is *not* stored: its parts are columns of the ledger (resident,
charge code, date, notes, amount, reference), and :func:`charge_body` builds it with
``json.dumps`` when its batch is posted, so a newline in the notes is escaped exactly as
``json.dumps`` escapes it. Its digest is a 64-bit fingerprint of those columns."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.core.columns import (
    arrow_text,
    digest64,
    fingerprint64,
    group_codes,
    hex_column,
    int_part,
    row_lists,
)
from pipelines.core.record_columns import frame_of
from pipelines.kinds.charge.columns import ATTRIBUTES


def _join(*parts: pd.Series | pa.ChunkedArray | str) -> pa.ChunkedArray:
    """Texts and text columns concatenated row by row, in one pass (by Arrow)."""
    arrays = [
        pa.scalar(p, pa.large_string())
        if isinstance(p, str)
        else (arrow_text(p) if isinstance(p, pd.Series) else p)
        for p in parts
    ]
    return pc.binary_join_element_wise(*arrays, pa.scalar("", pa.large_string()))


def _text(array: pa.ChunkedArray, index: pd.Index) -> pd.Series:
    return pd.Series(array.to_pandas(), dtype="str").set_axis(index)


def _choose(flags: np.ndarray, yes: str, no: str) -> pa.ChunkedArray:
    """One of two texts per row (taken from a two-entry dictionary, not built a million times)."""
    return pa.chunked_array([pa.array([no, yes], pa.large_string()).take(flags.astype(np.int8))])


def encode_charges(
    good: pd.DataFrame,
    integration_id: str,
    source_file: str,
    contents: tuple[np.ndarray, pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """One record per resolved line: charges, and credits for negative lines, column-wise.

    No JSON is written here: the request body is built from the record's columns (resident,
    charge code, date, notes, amount, reference) when its batch is posted. ``content_hash`` is
    a 64-bit fingerprint (16 hex digits) of what the body says beyond the record key: the same
    key with another digest is a conflict."""
    amount = good["amount_cents"].to_numpy(dtype=np.int64)
    credit = amount < 0
    codes, contents_frame = contents or distinct_contents(good, CHARGE_CONTENT)
    dates = contents_frame["transaction_date"].astype("str")
    notes = contents_frame["notes"].astype("str")
    notes = notes.fillna(
        _text(_join(contents_frame["charge_code"], " ", dates.str.slice(0, 7)), notes.index)
    )
    # No JSON text per line: the body is built from these columns when its batch is posted
    # (charge_body), at most a few hundred records a minute.
    reference = good["reference_number"].astype("str")
    reference_text = arrow_text(reference)
    # Kind, integration and reference are the record key, so the digest leaves them out.
    per_content = fingerprint64(
        [
            digest64(contents_frame["resident_id"]),
            digest64(contents_frame["charge_code_id"]),
            digest64(dates),
            digest64(notes),
        ]
    )
    digest = fingerprint64([int_part(np.abs(amount))], start=per_content[codes])
    kind = _choose(credit, "credit", "charge")
    frame = pd.DataFrame(
        {
            "record_key": _text(
                _join(kind, ":" + integration_id + ":", reference_text), good.index
            ),
            "kind": _text(kind, good.index),
            "integration_id": integration_id,
            "location_id": good["location_id"].astype("str"),
            "reference_number": reference,
            "amount_cents": pd.Series(amount, index=good.index),
            "content_hash": hex_column(digest).set_axis(good.index),
            "payload": None,
            "source_rows": row_lists(good["source_row"].to_numpy()).set_axis(good.index),
            "source_file": source_file,
            "resident_id": good["resident_id"].astype("str"),
            "charge_code_id": good["charge_code_id"].astype("str"),
            "transaction_date": good["transaction_date"].astype("str"),
            "property_id": good["property_id"].astype("str"),
            "charge_notes": _text(arrow_text(notes).take(pa.array(codes)), good.index),
        },
        columns=CHARGE_COLUMNS,
    )
    return frame.reset_index(drop=True)


def charge_body(record: Any) -> dict[str, Any]:
    """A charge's or credit's request body, built from its ledger columns when it is posted:
    what transform used to write as JSON text for every line. Credits post a positive
    amount, with ``integration_id``, to their own endpoint; charges go inside a batch. (A
    credit is a line with a negative amount: its kind was taken from its sign.)"""
    body: dict[str, Any] = {}
    if int(record.amount_cents) < 0:
        body["integration_id"] = str(record.integration_id)
    body |= {
        "resident_id": str(record.resident_id),
        "charge_code_id": str(record.charge_code_id),
        "transaction_date": f"{str(record.transaction_date)[:10]}T00:00:00.000Z",
        "notes": str(record.charge_notes),
        "amount_in_cents": abs(int(record.amount_cents)),
        "reference_number": str(record.reference_number),
    }
    return body


# What transform yields: the kind's record frame (core/record_columns.py) plus one column
# the ledger does not keep.
CHARGE_COLUMNS = [*frame_of(ATTRIBUTES), "property_id"]


IDENTITY = ["resident_id", "charge_code_id", "transaction_date"]  # what names a charge


LINE_CONTENT = [*IDENTITY, "notes"]


CHARGE_CONTENT = [*LINE_CONTENT, "charge_code"]  # default notes name the code as written


def distinct_contents(frame: pd.DataFrame, columns: list[str]) -> tuple[np.ndarray, pd.DataFrame]:
    """(code per row, the distinct combinations of ``columns``): a million charge lines hold
    a few tens of thousands of (resident, charge code, date, notes), so text work is done on
    those and the rows share it."""
    codes, firsts = group_codes(frame, columns)
    return codes, frame[columns].iloc[firsts].reset_index(drop=True)
