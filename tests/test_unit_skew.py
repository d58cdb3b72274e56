"""Propexo's data clock, measured on records tieout wrote: whatever the true offset, the
bounds contain it; records tied by a key two of them share say nothing; the newest
measurement is kept in the ledger and read back."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipelines.ledger import Ledger
from pipelines.reconciling.skew import (
    DATA_CLOCK_META,
    WITNESSES_MAX,
    DataClock,
    allowance_s,
    data_clock,
    last_measured,
    measure,
)

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


def stamp(seconds: float) -> str:
    return (T0 + dt.timedelta(seconds=seconds)).isoformat()


def frames(
    writes: list[tuple[float, float, float]], offset: float
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Ours and theirs for writes (sent, created on our clock, confirmed), Propexo's clock
    ``offset`` seconds ahead of ours."""
    ours = pd.DataFrame(
        {
            "created_record_id": [f"id-{i}" for i in range(len(writes))],
            "sent_at": [stamp(s) for s, _, _ in writes],
            "confirmed_at": [stamp(c) for _, _, c in writes],
        }
    )
    theirs = pd.DataFrame(
        {
            "id": [f"id-{i}" for i in range(len(writes))],
            "created_at": [stamp(m + offset) for _, m, _ in writes],
        }
    )
    return ours, theirs


WRITE = st.tuples(st.integers(0, 10_000), st.integers(0, 5_000), st.integers(0, 5_000)).map(
    lambda t: (float(t[0]), float(t[0] + t[1]), float(t[0] + t[1] + t[2]))
)


@given(st.lists(WRITE, min_size=1, max_size=20), st.integers(-7200, 7200))
def test_the_true_offset_always_lies_within_the_bounds(
    writes: list[tuple[float, float, float]], offset: int
) -> None:
    measured = measure(*frames(writes, offset))
    assert measured is not None
    assert measured.low_s <= offset <= measured.high_s
    assert measured.witnesses == len(writes)
    assert measured.worst_s >= abs(offset) or measured.low_s <= 0 <= measured.high_s
    assert measured.low_s <= measured.estimate_s <= measured.high_s


def test_a_clock_ahead_and_one_behind_are_estimated_nearest_to_zero() -> None:
    assert DataClock(30.0, 40.0, 3).estimate_s == 30.0
    assert DataClock(-40.0, -30.0, 3).estimate_s == -30.0
    assert DataClock(-5.0, 7.0, 3).estimate_s == 0.0
    assert DataClock(-50.0, 7.0, 1).worst_s == 50.0


def test_nothing_to_measure_is_none_not_zero() -> None:
    ours, theirs = frames([(0.0, 1.0, 2.0)], 0)
    assert measure(ours.iloc[:0], theirs) is None
    assert measure(ours, theirs.iloc[:0]) is None
    assert measure(ours, theirs.drop(columns="created_at")) is None
    # No record in both: nothing says what the clock is.
    assert measure(ours, theirs.assign(id=["someone-else"])) is None
    # A record never sent (no intent time) witnesses nothing.
    assert measure(ours.assign(sent_at=[None]), theirs) is None


def test_a_key_two_records_share_witnesses_nothing() -> None:
    ours = pd.DataFrame(
        {
            "invoice_number": ["INV-1", "INV-1", "INV-2"],
            "sent_at": [stamp(0), stamp(0), stamp(100)],
            "confirmed_at": [stamp(2), stamp(2), stamp(102)],
        }
    )
    theirs = pd.DataFrame(
        {
            "invoice_number": ["INV-1", "INV-1", "INV-2"],
            "created_at": [stamp(-9000), stamp(9000), stamp(101 + 60)],
        }
    )
    measured = measure(ours, theirs)
    assert measured is not None
    assert measured.witnesses == 1
    assert measured.low_s == pytest.approx(161.0 - 102.0)
    assert measured.high_s == pytest.approx(161.0 - 100.0)


def test_records_are_tied_by_any_identity_they_have() -> None:
    ours = pd.DataFrame(
        {
            "propexo_id": ["p1", None],
            "reference_number": [None, "REF-2"],
            "sent_at": [stamp(0), stamp(10)],
            "confirmed_at": [stamp(1), stamp(11)],
        }
    )
    theirs = pd.DataFrame(
        {
            "id": ["p1", "p2"],
            "reference_number": ["X", "REF-2"],
            "created_at": [stamp(0.5 + 20), stamp(10.5 + 20)],
        }
    )
    measured = measure(ours, theirs)
    assert measured is not None
    assert measured.witnesses == 2
    assert measured.low_s <= 20 <= measured.high_s


def test_a_write_never_confirmed_still_bounds_the_clock_from_one_side() -> None:
    ours, theirs = frames([(0.0, 5.0, 9.0)], -30)
    measured = measure(ours.assign(confirmed_at=[None]), theirs)
    assert measured is not None
    assert measured.high_s == pytest.approx(-25.0)
    assert measured.low_s <= measured.high_s


def test_bounds_that_disagree_are_both_kept_in_order() -> None:
    # Two writes whose windows do not overlap (a clock stepped between them).
    ours, theirs = frames([(0.0, 1.0, 2.0), (100.0, 101.0, 102.0)], 0)
    theirs.loc[1, "created_at"] = stamp(101 + 500)
    measured = measure(ours, theirs)
    assert measured is not None
    assert measured.low_s <= measured.high_s
    assert measured.worst_s == pytest.approx(500.0 - 1.0)


def test_only_the_newest_writes_are_witnesses() -> None:
    writes = [(float(i), float(i) + 0.5, float(i) + 1) for i in range(WITNESSES_MAX + 5)]
    measured = measure(*frames(writes, 0))
    assert measured is not None
    assert measured.witnesses == WITNESSES_MAX


@pytest.mark.parametrize(
    "text",
    [None, "", "not json", "[]", '{"low_s": 1}', '{"low_s": "x", "high_s": 1, "witnesses": 1}'],
)
def test_a_kept_measurement_that_is_not_one_reads_as_none(text: str | None) -> None:
    assert DataClock.from_json(text) is None


def test_a_measurement_round_trips_through_json() -> None:
    clock = DataClock(-1.5, 2.25, 7)
    assert DataClock.from_json(clock.to_json()) == clock


def test_the_allowance_widens_by_the_worst_the_bounds_allow() -> None:
    assert allowance_s(120.0, None) == 120.0
    assert allowance_s(120.0, DataClock(-300.0, 10.0, 2)) == 420.0


def test_the_newest_measurement_is_kept_and_used_when_nothing_new_says_otherwise(
    tmp_path: Path,
) -> None:
    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        assert last_measured(ledger) is None
        assert data_clock(ledger, *frames([], 0)) is None
        ours, theirs = frames([(0.0, 1.0, 2.0)], 45)
        measured = data_clock(ledger, ours, theirs)
        assert measured is not None and measured.low_s <= 45 <= measured.high_s
        kept = last_measured(ledger)
        assert kept is not None
        assert kept[0] == measured
        assert kept[1]  # when it was taken
        # Frames with no record of ours in them: the kept measurement stands.
        assert data_clock(ledger, ours, theirs.assign(id=["nobody"])) == measured
        ledger.set_meta(DATA_CLOCK_META, json.dumps({"low_s": 1}))
        assert last_measured(ledger) is None
