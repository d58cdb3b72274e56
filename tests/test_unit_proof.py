"""The one rule every "missing" rests on, as properties: a record is proven absent only by a
complete sync of its model that started after its write certainly ended and (for dated kinds)
saw its date; and where a version of a file is found by its content, never by its name."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipelines.core.versions import (
    PROCESSING,
    candidates,
    is_kept_version,
    locate,
    original_name,
    sha256_of,
    versioned_name,
)
from pipelines.reconciling.proof import (
    AWAITING,
    EDGE_DAYS,
    PROVEN,
    UNVERIFIABLE,
    sync_verdicts,
    write_ended,
)

T0 = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)
SCOPE = {"charge": ("resident_charges", True), "invoice": ("invoices", False)}


def at(hours: float) -> str:
    return (T0 + dt.timedelta(hours=hours)).isoformat()


def records(*rows: tuple[str, str]) -> pd.DataFrame:
    """(kind, transaction date) per record."""
    return pd.DataFrame({"kind": [k for k, _ in rows], "transaction_date": [d for _, d in rows]})


def syncs(*rows: tuple[float, float, list[str]]) -> pd.DataFrame:
    """(started after, completed at, models) per complete sync, in hours from T0."""
    return pd.DataFrame(
        {
            "started_after": [at(s) for s, _, _ in rows],
            "completed_at": [at(c) for _, c, _ in rows],
            "models": [m for _, _, m in rows],
        }
    )


def verdicts(
    recs: pd.DataFrame, done: pd.DataFrame, since_hours: list[float], window: float | None = 30.0
) -> list[str]:
    since = pd.Series([at(h) for h in since_hours], index=recs.index)
    out: list[str] = sync_verdicts(
        recs, done, since=since, window_days=window, scope=SCOPE
    ).tolist()
    return out


def test_a_complete_sync_of_the_model_started_after_the_write_proves_absence() -> None:
    recs = records(("invoice", "2026-03-10"), ("charge", "2026-03-01"))
    done = syncs((1.0, 2.0, ["invoices", "resident_charges"]))
    assert verdicts(recs, done, [0.5, 0.5]) == [PROVEN, PROVEN]


def test_a_sync_that_started_before_the_write_ended_proves_nothing() -> None:
    recs = records(("invoice", "2026-03-10"))
    assert verdicts(recs, syncs((1.0, 2.0, ["invoices"])), [1.5]) == [AWAITING]


def test_a_sync_of_another_model_proves_nothing() -> None:
    recs = records(("invoice", "2026-03-10"), ("charge", "2026-03-10"))
    done = syncs((1.0, 2.0, ["resident_charges"]))
    assert verdicts(recs, done, [0.0, 0.0]) == [AWAITING, PROVEN]


def test_a_dated_record_outside_every_sync_s_window_is_unverifiable_not_missing() -> None:
    recs = records(("charge", "2025-01-01"), ("charge", "2026-03-10"), ("invoice", "2020-01-01"))
    done = syncs((1.0, 2.0, ["resident_charges", "invoices"]))
    assert verdicts(recs, done, [0.0, 0.0, 0.0]) == [UNVERIFIABLE, PROVEN, PROVEN]
    # Without a window, a sync sees every date.
    assert verdicts(recs, done, [0.0, 0.0, 0.0], window=None) == [PROVEN] * 3


def test_the_window_is_narrowed_by_a_day_at_each_edge() -> None:
    reach = 10 - EDGE_DAYS  # days either side of the sync that surely count
    inside = (T0 + dt.timedelta(days=reach) - dt.timedelta(hours=1)).date().isoformat()
    outside = (T0 + dt.timedelta(days=10) + dt.timedelta(hours=1)).date().isoformat()
    recs = records(("charge", inside), ("charge", outside))
    assert verdicts(recs, syncs((0.0, 0.5, ["resident_charges"])), [-1, -1], window=10) == [
        PROVEN,
        UNVERIFIABLE,
    ]


def test_nothing_known_is_awaiting_and_an_unknown_end_is_never_proven() -> None:
    recs = records(("invoice", "2026-03-10"))
    assert verdicts(recs, syncs(), [0.0]) == [AWAITING]
    assert verdicts(records(), syncs((1.0, 2.0, ["invoices"])), []) == []
    since = pd.Series([None], index=recs.index)
    unknown = sync_verdicts(
        recs, syncs((1.0, 2.0, ["invoices"])), since=since, window_days=None, scope=SCOPE
    )
    assert unknown.tolist() == [AWAITING]
    # A kind no sync reports on is never proven.
    stray = records(("payment", "2026-03-10"))
    assert verdicts(stray, syncs((1.0, 2.0, ["invoices", "payments"])), [0.0]) == [AWAITING]


@given(
    st.integers(-48 * 60, 48 * 60),
    st.lists(st.tuples(st.integers(-48 * 60, 48 * 60), st.integers(0, 24 * 60)), max_size=6),
)
def test_no_sync_that_started_before_the_write_ended_can_prove_it_absent(
    ended_min: int, spans_min: list[tuple[int, int]]
) -> None:
    recs = records(("invoice", "2026-03-10"))
    done = syncs(*[(s / 60, (s + d) / 60, ["invoices"]) for s, d in spans_min])
    result = verdicts(recs, done, [ended_min / 60], window=None)[0]
    assert result == (PROVEN if any(s >= ended_min for s, _ in spans_min) else AWAITING)


def test_a_write_ends_when_it_was_confirmed_or_a_grace_after_it_went_in_doubt() -> None:
    frame = pd.DataFrame(
        {
            "state": ["posted", "sending", "sending", "failed"],
            "confirmed_at": [at(1), None, at(5), at(2)],
            "doubt_since": [None, at(3), None, None],
        }
    )
    ended = write_ended(frame, grace_s=120)
    assert ended[0] == pd.Timestamp(at(1))
    assert ended[1] == pd.Timestamp(at(3)) + pd.Timedelta(seconds=120)
    # A write still in flight with no moment of doubt has not ended (whatever else it says).
    assert pd.isna(ended[2])
    assert ended[3] == pd.Timestamp(at(2))
    without = write_ended(frame.drop(columns="doubt_since"), grace_s=120)
    assert pd.isna(without[1]) and without[0] == ended[0]


# --- versions of a file, by content ----------------------------------------------------------


SHA = hashlib.sha256(b"rows").hexdigest()


@given(st.text(min_size=1, max_size=30).filter(lambda s: "/" not in s))
def test_a_kept_name_gives_back_the_name_it_was_dropped_under(name: str) -> None:
    kept = versioned_name(SHA, name)
    assert kept == f"{SHA[:8]}-{name}"
    assert original_name(kept, SHA) == name
    assert original_name(name, SHA) == name or name.startswith(f"{SHA[:8]}-")
    assert original_name(kept, "") == kept


def test_a_path_is_a_kept_version_only_by_its_own_content_s_prefix() -> None:
    assert is_kept_version(Path("a") / versioned_name(SHA, "bills.csv"), SHA)
    assert not is_kept_version(Path("bills.csv"), SHA)
    assert not is_kept_version(Path(versioned_name(SHA, "b.csv")), "")


def test_where_a_version_may_be_in_order_once_each(tmp_path: Path) -> None:
    plain = tmp_path / "archive" / "2026-03-01" / "bills.csv"
    assert candidates(plain, SHA) == [plain, plain.parent / versioned_name(SHA, "bills.csv")]
    kept = plain.parent / versioned_name(SHA, "bills.csv")
    assert candidates(kept, SHA) == [kept]
    hidden = tmp_path / "inbox" / PROCESSING / "tmp123" / "bills.csv"
    assert candidates(hidden, SHA)[-1] == tmp_path / "inbox" / versioned_name(SHA, "bills.csv")


def test_a_version_is_located_by_its_content_never_by_its_name_alone(tmp_path: Path) -> None:
    recorded = tmp_path / "archive" / "bills.csv"
    recorded.parent.mkdir()
    assert locate(recorded, SHA) is None
    recorded.write_bytes(b"other rows")  # the same name now holds other bytes
    assert locate(recorded, SHA) is None
    kept = recorded.parent / versioned_name(SHA, "bills.csv")
    kept.write_bytes(b"rows")
    assert locate(recorded, SHA) == kept
    assert locate(str(recorded), SHA) == kept
    recorded.write_bytes(b"rows")
    assert locate(recorded, SHA) == recorded
    assert locate(None, SHA) is None
    assert locate(recorded, "") is None
    assert locate("", SHA) is None


def test_a_file_that_cannot_be_read_has_no_sha(tmp_path: Path) -> None:
    assert sha256_of(tmp_path / "absent") is None
    assert sha256_of(tmp_path) is None
    (tmp_path / "f").write_bytes(b"rows")
    assert sha256_of(tmp_path / "f") == SHA


@pytest.mark.parametrize("size", [0, 1, (1 << 20) + 7])
def test_the_sha_of_a_file_read_in_chunks_is_the_sha_of_its_bytes(
    tmp_path: Path, size: int
) -> None:
    data = bytes(i % 251 for i in range(size))
    (tmp_path / "f").write_bytes(data)
    assert sha256_of(tmp_path / "f") == hashlib.sha256(data).hexdigest()
