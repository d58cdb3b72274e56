"""The ledger's stores, each through the Ledger that mixes them in, on both engines: what tieout
remembers of Propexo (ledger.cache), its runs and reviews (ledger.runs), the layouts a person
confirmed (ledger.layouts); and the PostgreSQL engine's own helpers (ledger.postgres)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pandas as pd
import pytest

from pipelines.core.hints import AliasHints, shell_word
from pipelines.ledger import Ledger
from pipelines.ledger.cache import SyncCursor, _seconds_between
from pipelines.ledger.layouts import LayoutStore
from pipelines.ledger.postgres import _pg, redact
from pipelines.ledger.runs import RunStore
from pipelines.runs.intake import inbox_items

# --- ledger.cache --------------------------------------------------------------------------------


def test_a_cursor_covers_only_a_window_inside_the_one_fetched() -> None:
    assert not SyncCursor().covers("2026-01-01", "2026-01-31")
    fetched = SyncCursor("2026-02-01T00:00:00Z", ("2026-01-01", "2026-03-31"))
    assert fetched.covers("2026-01-01", "2026-03-31")
    assert fetched.covers("2026-02-01", "2026-02-28")
    assert not fetched.covers("2025-12-31", "2026-01-31")
    assert not fetched.covers("2026-03-01", "2026-04-01")


def test_meta_cursors_and_refs_round_trip(ledger_url: str) -> None:
    with Ledger(ledger_url) as ledger:
        assert ledger.get_meta("a key") is None
        ledger.set_meta("a key", "one")
        ledger.set_meta("a key", "two")  # replaced, not added
        assert ledger.get_meta("a key") == "two"
        ledger.erase_meta("a key")
        assert ledger.get_meta("a key") is None

        assert ledger.cursor("int_1", "invoice") == SyncCursor()
        saved = SyncCursor("2026-02-01T00:00:00Z", ("2026-01-01", "2026-03-31"))
        ledger.save_cursor("int_1", "invoice", saved)
        ledger.save_cursor("int_1", "charge", SyncCursor("2026-01-05T00:00:00Z"))
        assert ledger.cursor("int_1", "invoice") == saved
        assert ledger.cursor("int_1", "charge") == SyncCursor("2026-01-05T00:00:00Z")
        assert ledger.cursor("int_2", "invoice") == SyncCursor()  # per integration

        assert ledger.cached_refs("int_1") is None
        ledger.save_refs("int_1", {"vendors": [{"id": "v1", "name": "Acme"}]})
        cached = ledger.cached_refs("int_1")
        assert cached is not None
        assert cached[1] == {"vendors": [{"id": "v1", "name": "Acme"}]}
        assert cached[0].endswith("Z")


def test_a_manual_sync_is_proven_only_from_a_request_before_it(ledger_url: str) -> None:
    """A manual SYNC_COMPLETE completes the oldest open request made before it (the sync
    started after that request); one with no request proves no start; a scheduled one started
    after the same schedule's previous completion; an unfinished one proves nothing."""
    with Ledger(ledger_url) as ledger:
        assert ledger.proven_syncs("int_1").empty
        ledger.record_sync_complete(
            "int_1", schedule_id=None, finished=True, models=["invoices"], at="2026-01-01T00:00:01Z"
        )
        assert ledger.proven_syncs("int_1").empty  # nobody asked: its start is unknown

        ledger.request_sync("int_1", "2026-01-01T00:00:10Z")
        ledger.request_sync("int_1", "2026-01-01T00:00:20Z")
        assert ledger.open_sync_requests("int_1") == 2
        ledger.record_sync_complete(
            "int_1", schedule_id=None, finished=True, models=["invoices"], at="2026-01-01T00:00:15Z"
        )
        assert ledger.open_sync_requests("int_1") == 1
        proven = ledger.proven_syncs("int_1")
        assert proven["started_after"].tolist() == ["2026-01-01T00:00:10Z"]
        assert proven["models"].tolist() == [["invoices"]]

        ledger.record_sync_complete(
            "int_1", schedule_id=None, finished=False, models=None, at="2026-01-01T00:00:25Z"
        )
        assert len(ledger.proven_syncs("int_1")) == 1  # not finished: proves nothing

        for at in ("2026-01-01T01:00:00Z", "2026-01-01T02:00:00Z"):
            ledger.record_sync_complete(
                "int_1", schedule_id="sched_1", finished=True, models=["charges"], at=at
            )
        scheduled = ledger.proven_syncs("int_1").iloc[-1]
        # The first of a schedule has no previous completion: only the second is proven.
        assert scheduled["started_after"] == "2026-01-01T01:00:00Z"
        assert scheduled["completed_at"] == "2026-01-01T02:00:00Z"
        assert ledger.proven_syncs("int_2").empty


def test_a_redelivery_is_counted_not_recorded_unless_a_sync_was_asked_since(
    ledger_url: str,
) -> None:
    with Ledger(ledger_url) as ledger:
        assert ledger.last_webhook_at() is None
        with ledger.db.transaction():
            assert ledger.record_delivery("d" * 64, redelivery_s=3600) is True
        with ledger.db.transaction():
            assert ledger.record_delivery("d" * 64, redelivery_s=3600) is False
        with ledger.db.transaction():
            assert ledger.record_delivery("e" * 64, redelivery_s=3600) is True  # another body
        ledger.request_sync("int_1", "2999-01-01T00:00:00Z")  # a sync asked since
        with ledger.db.transaction():
            assert ledger.record_delivery("d" * 64, redelivery_s=3600) is True
        count = ledger.db.execute(
            "SELECT deliveries FROM webhook_deliveries WHERE digest = ?", ("d" * 64,)
        ).fetchone()[0]
        assert count == 1  # recorded afresh
        ledger.record_webhook("SYNC_COMPLETE", "{}")
        assert ledger.last_webhook_at() is not None


def test_synced_records_fill_missing_columns_and_leave_out_stale_ones(ledger_url: str) -> None:
    with Ledger(ledger_url) as ledger:
        ledger.upsert_synced("invoice", pd.DataFrame())  # nothing: nothing written
        assert ledger.synced("invoice", ["id", "total"]).empty
        ledger.upsert_synced(
            "invoice", pd.DataFrame([{"id": "a", "total": 1}, {"id": "b", "total": 2}])
        )
        ledger.upsert_synced("invoice", pd.DataFrame([{"id": "a", "total": 10}]))  # newer copy
        frame = ledger.synced("invoice", ["id", "total", "notes"])
        assert sorted(zip(frame["id"], frame["total"], strict=True)) == [("a", 10), ("b", 2)]
        assert frame["notes"].isna().all()
        ledger.mark_stale("invoice", ["b"])
        assert ledger.synced("invoice", ["id"])["id"].tolist() == ["a"]
        ledger.mark_stale("invoice", [])  # a later sync saw it again
        assert sorted(ledger.synced("invoice", ["id"])["id"]) == ["a", "b"]
        assert ledger.synced("charge", ["id"]).empty


def test_seconds_between_ledger_stamps() -> None:
    assert _seconds_between("2026-01-01T00:00:00.000000Z", "2026-01-01T00:01:00.500000Z") == 60.5


# --- ledger.runs ---------------------------------------------------------------------------------


def test_runs_signoffs_and_drops(ledger_url: str) -> None:
    assert issubclass(Ledger, RunStore)
    with Ledger(ledger_url) as ledger:
        assert ledger.last_run_id() is None
        ledger.start_run("r1", dry_run=False, pid=os.getpid())
        time.sleep(0.002)  # the runs' start stamps order them (microseconds)
        ledger.start_run("r2", dry_run=True, pid=os.getpid())
        ledger.finish_run("r1", 0)
        assert ledger.last_run_id() == "r1"  # a dry run is no run to report on
        runs = ledger.runs().set_index("run_id")
        assert int(runs.loc["r1", "exit_code"]) == 0
        assert pd.isna(runs.loc["r2", "finished_at"])

        assert ledger.signoffs("period-2026-01") == []
        first = ledger.add_signoff("period-2026-01", "ana", "tied out")
        ledger.add_signoff("period-2026-01", "ben")
        said = ledger.signoffs("period-2026-01")
        assert [(s["by"], s["note"]) for s in said] == [("ana", "tied out"), ("ben", None)]
        assert said[0]["at"] == first["at"]

        ledger.record_drop("r1", "bills.csv", "f" * 64, "already processed", "r0")
        drops = ledger.drops("r1")
        assert drops[["name", "reason", "first_run_id"]].values.tolist() == [
            ["bills.csv", "already processed", "r0"]
        ]
        assert ledger.drops("r2").empty
        assert ledger.file_run("f" * 64) is None  # a drop is not a file taken


# --- ledger.layouts ------------------------------------------------------------------------------


def _facts(fingerprint: str, profile: str = "rent_roll_a") -> dict[str, object]:
    return {"fingerprint": fingerprint, "profile": profile, "kind": "charge", "columns": ["Unit"]}


def test_a_layout_is_confirmed_once_and_forgotten_as_an_event(ledger_url: str) -> None:
    assert issubclass(Ledger, LayoutStore)
    with Ledger(ledger_url) as ledger:
        empty = ledger.layouts_stamp()
        assert empty == (0, 0, 0)
        layout_id, new = ledger.confirm_layout(
            _facts("fp1"), "unit|rent", "ana", "a.xlsx", "a" * 64
        )
        assert new
        again, new_again = ledger.confirm_layout(
            _facts("fp1", "other"), "unit|rent", "ben", "b.xlsx", "b" * 64
        )
        assert (again, new_again) == (layout_id, False)  # the first confirmation stands
        kept = ledger.confirmed_layout("fp1")
        assert kept is not None and kept["confirmed_by"] == "ana"
        assert ledger.layout_by_id(layout_id)["facts"]["columns"] == ["Unit"]  # type: ignore[index]
        assert ledger.confirmed_profiles() == {"unit|rent": "rent_roll_a"}
        stamp = ledger.layouts_stamp()
        assert stamp != empty

        ledger.record_layout_use(
            "r1", "a" * 64, "a.xlsx", {"layout": {"fingerprint": "fp1"}}, held=False,
            layout_id=layout_id, confirmed_by="ana",
        )  # fmt: skip
        ledger.record_layout_use(
            "r1", "c" * 64, "c.xlsx", {"layout": {"fingerprint": "fp2"}}, held=True
        )
        uses = ledger.layout_uses("r1")
        assert uses["held"].astype(int).tolist() == [0, 1]
        assert uses["fingerprint"].tolist() == ["fp1", "fp2"]

        assert ledger.forget_layout(layout_id) is True
        assert ledger.forget_layout(layout_id) is False  # already forgotten
        assert ledger.forget_layout(999) is False
        assert ledger.confirmed_layout("fp1") is None
        assert ledger.layout_by_id(layout_id) is None
        assert ledger.confirmed_layouts().empty
        assert ledger.layouts_stamp() != stamp  # what `watch` waits on changed
        renewed, fresh = ledger.confirm_layout(
            _facts("fp1"), "unit|rent", "ben", "a.xlsx", "a" * 64
        )
        assert fresh and renewed != layout_id


# --- ledger.postgres -----------------------------------------------------------------------------


def test_a_server_url_is_redacted_for_messages() -> None:
    assert redact("postgresql://tieout:s3cr%40t@db.internal:5432/ledger") == (
        "postgresql://tieout:***@db.internal:5432/ledger"
    )
    assert redact("postgresql://db.internal/ledger") == "postgresql://db.internal/ledger"
    assert (
        redact("postgresql://tieout@db.internal/ledger") == "postgresql://tieout@db.internal/ledger"
    )


def test_placeholders_become_psycopgs_and_a_literal_percent_is_doubled() -> None:
    assert _pg("SELECT * FROM t WHERE a = ? AND b LIKE 'x%'") == (
        "SELECT * FROM t WHERE a = %s AND b LIKE 'x%%'"
    )


# --- core.hints ----------------------------------------------------------------------------------


def test_alias_hints_name_a_non_default_data_folder_and_quote_names() -> None:
    default = AliasHints()
    assert default.add("vendor", "Acme, Inc", "ACME Plumbing LLC") == (
        'tieout alias add vendor "Acme, Inc" "ACME Plumbing LLC"'
    )
    other = AliasHints(Path("/srv/my data"))
    assert other.command == "tieout --data-dir '/srv/my data'"
    assert other.file("gl_account") == Path("/srv/my data/mappings/gl_accounts.csv")
    unknown = other.unknown("property", "Maple Ct", None)
    assert "tieout --data-dir '/srv/my data' refs show properties" in unknown
    assert '"<Propexo name>"' in unknown
    assert "refs show vendors --search" in default.ambiguous("vendor", "Acme")
    column = default.charge_column("Pet Fee")
    assert '"Pet Fee" "<Propexo charge code>"' in column
    assert "mappings/charge_codes.csv" in column


def test_a_shell_word_reads_back_as_the_same_text() -> None:
    import shlex

    for text in ("Acme", "Acme, Inc", 'say "hi"', "it's", "$HOME", "a\\b", "", "50% off!"):
        assert shlex.split(shell_word(text)) == [text], text
    assert shell_word("Acme, Inc") == '"Acme, Inc"'


# --- runs.intake ---------------------------------------------------------------------------------


def test_inbox_items_name_refused_links_and_empty_files_past_the_settle_time(
    tmp_path: Path,
) -> None:
    link, empty, fresh, full = (tmp_path / n for n in ("l.csv", "e.csv", "f.csv", "x.csv"))
    empty.write_text("")
    fresh.write_text("")
    full.write_text("a,b\n")
    gone = tmp_path / "gone.csv"  # listed, then removed before it is looked at
    now = time.time()
    os.utime(empty, (now - 60, now - 60))
    os.utime(full, (now - 60, now - 60))
    items = inbox_items([link], [empty, fresh, full, gone], settle_s=30, now=now)
    by_cause = {i.cause: i for i in items}
    assert sorted(by_cause) == ["empty_file", "refused_link"]
    assert "outside the inbox" in by_cause["refused_link"].detail["reason"]
    assert by_cause["empty_file"].detail["path"] == str(empty)
    assert "empty for 60s" in by_cause["empty_file"].detail["reason"]
    assert inbox_items([], [empty], settle_s=120, now=now) == []  # not settled yet


@pytest.mark.parametrize("count", [0, 3])
def test_no_link_no_item(tmp_path: Path, count: int) -> None:
    files = [tmp_path / f"{n}.csv" for n in range(count)]
    for path in files:
        path.write_text("a\n")
    assert inbox_items([], files, settle_s=0) == []
