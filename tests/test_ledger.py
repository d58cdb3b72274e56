"""The ledger on its own: the set-based write-back of reconcile's outcomes."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.core.errors import LedgerError
from pipelines.ledger import Ledger


def _staged(path: Path | str, n: int) -> Ledger:
    ledger = Ledger(path)
    keys = [f"charge:i:TO{i:04d}" for i in range(n)]
    ledger.stage_records(
        "r1",
        None,
        pd.DataFrame(
            {
                "record_key": keys,
                "kind": "charge",
                "integration_id": "i",
                "location_id": "L",
                "amount_cents": 100,
                "content_hash": "h",
                "payload": [json.dumps({"n": i}) for i in range(n)],
                "source_rows": [[i + 2] for i in range(n)],
                "source_file": "f.csv",
                "reference_number": [k.rsplit(":", 1)[1] for k in keys],
            }
        ),
    )
    ledger.transition(keys, "confirmed")
    return ledger


def test_outcomes_are_written_back_in_one_statement_with_an_event_per_change(
    tmp_path: Path,
) -> None:
    """#19: reconcile wrote one transaction per record; now one set-based update."""
    ledger = _staged(tmp_path / "ledger.sqlite", 4)
    statements: list[str] = []
    ledger.db.connection.set_trace_callback(statements.append)
    changed = ledger.apply_outcomes(
        pd.DataFrame(
            {
                "record_key": ["charge:i:TO0000", "charge:i:TO0001", "charge:i:TO0002"],
                "state": ["matched", "missing", "confirmed"],
                "propexo_id": ["p0", None, "p2"],
                "found_amount_cents": [100, None, 100],
                "note": [None, "not in Propexo after a complete sync", None],
            }
        ),
        run_id="r2",
    )
    ledger.db.connection.set_trace_callback(None)
    assert changed == 2
    updates = [s for s in statements if s.lstrip().upper().startswith("UPDATE RECORDS")]
    assert len(updates) == 1  # one statement for every outcome
    records = ledger.records().set_index("record_key")
    assert records.loc["charge:i:TO0000", ["state", "propexo_id"]].tolist() == ["matched", "p0"]
    assert records.loc["charge:i:TO0001", "state"] == "missing"
    assert records.loc["charge:i:TO0001", "note"] == "not in Propexo after a complete sync"
    assert records.loc["charge:i:TO0002", "propexo_id"] == "p2"  # fields, no state change
    assert records.loc["charge:i:TO0003", "state"] == "confirmed"  # not in the outcomes
    assert records["reconciled_at"].notna().sum() == 3
    to_states = [e[2] for e in ledger.events("charge:i:TO0000")]
    assert to_states[-1] == "matched"
    assert [e[2] for e in ledger.events("charge:i:TO0002")][-1] == "confirmed"  # no new event
    assert len(ledger.events("charge:i:TO0002")) == len(ledger.events("charge:i:TO0003"))
    with pytest.raises(LedgerError, match="unknown state"):
        ledger.apply_outcomes(pd.DataFrame({"record_key": ["charge:i:TO0003"], "state": ["gone"]}))
    with pytest.raises(LedgerError, match="two outcomes for one record"):
        ledger.apply_outcomes(
            pd.DataFrame({"record_key": ["charge:i:TO0003"] * 2, "state": ["matched"] * 2})
        )
    with pytest.raises(LedgerError, match="1 of reconcile's outcomes name no record"):
        ledger.apply_outcomes(
            pd.DataFrame(
                {"record_key": ["charge:i:TO0003", "charge:i:gone"], "state": ["matched"] * 2}
            )
        )
    assert ledger.records().set_index("record_key").loc["charge:i:TO0003", "state"] == "confirmed"
    ledger.close()


def test_only_outcomes_that_change_something_are_written_back() -> None:
    """A reconcile of a ledger already matched rewrites nothing (#19: a million matched
    records were rewritten by every reconcile)."""
    from pipelines.reconciling.writeback import changed_outcomes

    records = pd.DataFrame(
        {
            "record_key": ["a", "b", "c", "d"],
            "state": ["matched", "confirmed", "matched", "missing"],
            "propexo_id": ["p1", None, "p3", None],
            "found_amount_cents": [100.0, None, 300.0, None],
            "note": [None, None, None, "not in Propexo"],
        }
    )
    outcomes = pd.DataFrame(
        {
            "record_key": ["a", "b", "c", "d"],
            "state": ["matched", "matched", "mismatched", "missing"],
            "propexo_id": ["p1", "p2", "p3", None],
            "found_amount_cents": [100, 200, 301, None],
            "note": [None, None, "amount differs", "not in Propexo"],
        }
    )
    assert changed_outcomes(outcomes, records)["record_key"].tolist() == ["b", "c"]
    assert changed_outcomes(outcomes.iloc[:0], records).empty


def test_records_reads_only_the_columns_asked_for(ledger_url: str) -> None:
    ledger = _staged(ledger_url, 2)
    frame = ledger.records(columns=["record_key", "state", "amount_cents"])
    assert list(frame.columns) == ["record_key", "state", "amount_cents"]
    assert frame["state"].tolist() == ["confirmed", "confirmed"]
    with pytest.raises(LedgerError, match="no such record column"):
        ledger.records(columns=["record_key; DROP TABLE records"])
    ledger.close()


def test_a_state_change_for_many_keys_is_a_few_statements_not_one_per_key(tmp_path: Path) -> None:
    """#17: `transition` ran a SELECT, an UPDATE and an INSERT per key."""
    ledger = _staged(tmp_path / "ledger.sqlite", 1200)
    keys = [f"charge:i:TO{i:04d}" for i in range(1200)]
    statements: list[str] = []
    ledger.db.connection.set_trace_callback(statements.append)
    ledger.transition(keys, "matched", run_id="r2", note="seen")
    ledger.db.connection.set_trace_callback(None)
    updates = [s for s in statements if s.lstrip().upper().startswith("UPDATE RECORDS")]
    assert len(updates) == 3  # 500 keys a statement
    frame = ledger.records(columns=["record_key", "state", "note"])
    assert set(frame["state"]) == {"matched"} and set(frame["note"]) == {"seen"}
    assert [e[1:3] for e in ledger.events(keys[-1])][-1] == ("confirmed", "matched")
    ledger.close()


def test_staging_finds_known_keys_whether_the_ledger_is_smaller_or_larger(
    ledger_url: str,
) -> None:
    """#19: a ledger with fewer records than the keys staged is read whole (its key column)
    rather than asked key by key; either way a known key with other content is a conflict,
    a known key with the same content is left alone, and a new key is staged."""
    ledger = _staged(ledger_url, 3)  # TO0000..TO0002, 100 cents, hash "h"

    def frame(numbers: list[int], digest: str) -> pd.DataFrame:
        keys = [f"charge:i:TO{i:04d}" for i in numbers]
        return pd.DataFrame(
            {
                "record_key": keys,
                "kind": "charge",
                "integration_id": "i",
                "location_id": "L",
                "amount_cents": 100,
                "content_hash": digest,
                "payload": None,
                "source_rows": [[i + 2] for i in numbers],
                "source_file": "g.csv",
                "reference_number": [k.rsplit(":", 1)[1] for k in keys],
            }
        )

    # 1 key (2 with its twin) against 3 records: asked by key.
    staged, conflicts = ledger.stage_records("r2", None, frame([1], "other"))
    assert staged == [] and [c.record_key for c in conflicts] == ["charge:i:TO0001"]
    # 6 keys (12 with twins) against 3 records: the key column read whole.
    staged, conflicts = ledger.stage_records("r3", None, frame([0, 2, 3, 4, 5, 6], "h"))
    assert staged == [f"charge:i:TO{i:04d}" for i in (3, 4, 5, 6)] and conflicts == []
    # A credit now where a charge was: found as its twin, a conflict.
    twin = frame([2], "h").assign(record_key="credit:i:TO0002", kind="credit")
    twin = pd.concat([twin, frame([7, 8, 9, 10, 11, 12, 13], "h")], ignore_index=True)
    staged, conflicts = ledger.stage_records("r4", None, twin)
    assert [c.record_key for c in conflicts] == ["credit:i:TO0002"] and len(staged) == 7
    assert ledger.records(states=["ready"])["payload"].isna().all()  # no body stored
    events = ledger.db.execute("SELECT count(*) FROM events WHERE to_state = 'ready'").fetchone()
    assert events[0] == 3 + 4 + 7  # one per record staged, none for the ones left alone
    ledger.close()


_CELLS = st.one_of(st.none(), st.text(max_size=12))
_NUMBERS = st.one_of(st.none(), st.integers(min_value=-(2**63), max_value=2**63 - 1))


@settings(max_examples=150, deadline=None)
@given(
    rows=st.lists(st.tuples(_CELLS, _NUMBERS, _CELLS, _NUMBERS), max_size=30),
    stray=st.sampled_from([None, "text", 1.5]),
)
def test_records_read_column_wise_are_the_frame_pandas_reads(
    rows: list[tuple[object, ...]], stray: object
) -> None:
    """#19: a million records are read back column-wise through Arrow (a second instead of
    five). For any text, any whole number and any NULLs, the frame is the one pandas'
    read_sql_query makes; a value not of its column's type (text or a fraction where a whole
    number is declared) falls back to pandas itself."""
    import sqlite3
    import tempfile

    from pipelines.ledger.database import SqliteDatabase

    with tempfile.TemporaryDirectory() as folder:
        db = SqliteDatabase(Path(folder) / "t.sqlite")
        db.script("CREATE TABLE t (a TEXT, n INTEGER, b TEXT, m INTEGER)")
        if stray is not None:
            rows = [*rows, ("x", stray, None, 1)]
        db.executemany("INSERT INTO t VALUES (?, ?, ?, ?)", rows)
        sql = "SELECT a, n, b, m FROM t ORDER BY rowid"
        expected = pd.read_sql_query(sql, sqlite3.connect(Path(folder) / "t.sqlite"))
        got = db.read_frame(sql, integers={"n", "m"})
        db.close()
    pd.testing.assert_frame_equal(got, expected)


def test_the_records_whole_number_columns_are_the_tables_own(tmp_path: Path) -> None:
    """What the column-wise read takes for whole numbers is what the table declares."""
    from pipelines.core.record_columns import RECORD

    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        declared = ledger.db.execute("PRAGMA table_info(records)").fetchall()
    integers = {str(row[1]) for row in declared if str(row[2]).upper() == "INTEGER"}
    assert integers == RECORD.integers()


def test_state_changes_made_together_commit_once_and_are_logged_after(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """#19: posting commits the intents of every free slot, and the outcomes of every answer
    in, as one transaction each: one disk sync for many POSTs. Nothing is logged (or seen by
    another connection) before that commit; a failure inside undoes the whole block."""
    path = tmp_path / "ledger.sqlite"
    ledger = _staged(path, 3)
    keys = [f"charge:i:TO{i:04d}" for i in range(3)]
    statements: list[str] = []
    ledger.db.connection.set_trace_callback(statements.append)
    with caplog.at_level("INFO", logger="tieout"), ledger.together():
        for key in keys:
            ledger.transition([key], "sending", run_id="r2")
        assert not [r for r in caplog.records if r.getMessage() == "state change"]
        with Ledger(path, readonly=True) as other:  # a snapshot of what is committed
            assert set(other.records()["state"]) == {"confirmed"}
    ledger.db.connection.set_trace_callback(None)
    assert [s.upper() for s in statements].count("COMMIT") == 1
    assert len([r for r in caplog.records if r.getMessage() == "state change"]) == 3
    assert set(ledger.records()["state"]) == {"sending"}

    with pytest.raises(LedgerError, match="no record"), ledger.together():
        ledger.transition([keys[0]], "ready")
        ledger.transition(["charge:i:nope"], "ready")
    assert set(ledger.records()["state"]) == {"sending"}  # the first change undone too
    ledger.close()


def test_a_transaction_inside_another_is_a_savepoint(ledger_url: str) -> None:
    """SQLite transactions nest as psycopg's do: the inner block's failure undoes only it."""
    ledger = _staged(ledger_url, 2)
    with ledger.db.transaction():
        ledger.transition(["charge:i:TO0000"], "sending")
        with pytest.raises(LedgerError), ledger.db.transaction():
            ledger.transition(["charge:i:TO0001"], "sending")
            raise LedgerError("inner")
    states = ledger.records().set_index("record_key")["state"]
    assert states.to_dict() == {"charge:i:TO0000": "sending", "charge:i:TO0001": "confirmed"}
    ledger.close()


def test_a_state_change_sets_only_the_ledgers_own_fields(ledger_url: str) -> None:
    """No caller-chosen column name reaches SQL; an unknown key or state changes nothing."""
    with _staged(ledger_url, 2) as ledger:
        with pytest.raises(LedgerError, match="cannot set"):
            ledger.transition(["charge:i:TO0000"], "matched", **{"state = 'x' --": 1})
        with pytest.raises(LedgerError, match="unknown state"):
            ledger.transition(["charge:i:TO0000"], "gone")
        with pytest.raises(LedgerError, match="no record 'nope'"):
            ledger.transition(["charge:i:TO0000", "nope"], "matched")
        # all or nothing: the known key did not move either
        assert ledger.records(columns=["state"])["state"].tolist() == ["confirmed"] * 2


def test_the_ledger_opens_from_its_url_and_keeps_typed_read_cursors(tmp_path: Path) -> None:
    from pipelines.core.config import load_settings
    from pipelines.core.errors import ConfigError
    from pipelines.ledger import SyncCursor

    settings = load_settings(env={"TIEOUT_DATA_DIR": str(tmp_path)}, config_path=None)
    assert settings.ledger == f"sqlite:///{tmp_path}/ledger.sqlite"
    elsewhere = tmp_path / "shared" / "books.sqlite"
    moved = load_settings(env={"TIEOUT_LEDGER_URL": f"sqlite:///{elsewhere}"})
    assert moved.ledger_path == elsewhere
    with pytest.raises(ConfigError, match="ledger_url"):
        load_settings(env={"TIEOUT_LEDGER_URL": "mysql://db/tieout"})
    with Ledger(moved.ledger) as ledger:
        assert ledger.cursor("i", "charge") == SyncCursor()
        ledger.save_cursor(
            "i", "charge", SyncCursor("2026-11-01T00:00:00Z", ("2026-10-01", "2026-11-30"))
        )
        ledger.save_cursor(
            "i", "charge", SyncCursor("2026-11-02T00:00:00Z", ("2026-10-01", "2026-12-31"))
        )
        cursor = ledger.cursor("i", "charge")
        assert cursor.newest == "2026-11-02T00:00:00Z"
        assert cursor.covers("2026-12-01", "2026-12-31") and not cursor.covers(
            "2026-09-30", "2026-10-02"
        )
        assert ledger.cursor("other", "charge") == SyncCursor()  # per integration
    assert elsewhere.exists()


def test_the_ledger_behaves_the_same_on_every_engine(ledger_url: str) -> None:
    """#18: one ledger API over SQLite and PostgreSQL: staging, conflicts, state changes with
    events, the set-based write-back, reads in staging order, caches, cursors and the lock."""
    from pipelines.core.errors import LockHeldError
    from pipelines.ledger import SyncCursor

    with _staged(ledger_url, 3) as ledger:
        keys = [f"charge:i:TO{i:04d}" for i in range(3)]
        # staged in order, each with its events; amounts as whole numbers
        frame = ledger.records(columns=["record_key", "state", "amount_cents"])
        assert frame["record_key"].tolist() == keys
        assert frame["amount_cents"].dtype == "int64" and set(frame["state"]) == {"confirmed"}
        assert [e[2] for e in ledger.events(keys[0])] == ["ready", "confirmed"]
        # the same key with other content is a conflict, never staged twice
        again = pd.DataFrame(
            {
                "record_key": [keys[0]],
                "kind": "charge",
                "integration_id": "i",
                "amount_cents": 999,
                "content_hash": "other",
                "payload": [json.dumps({"n": 0})],
                "source_rows": [[2]],
                "source_file": "g.csv",
            }
        )
        staged, conflicts = ledger.stage_records("r2", None, again)
        assert staged == [] and [(c.record_key, c.previous_cents) for c in conflicts] == [
            (keys[0], 100)
        ]
        # the write-back: one changed, one unchanged, amounts and notes kept
        changed = ledger.apply_outcomes(
            pd.DataFrame(
                {
                    "record_key": keys[:2],
                    "state": ["matched", "confirmed"],
                    "propexo_id": ["p0", None],
                    "found_amount_cents": [100, None],
                    "note": [None, "waiting"],
                }
            ),
            run_id="r3",
        )
        assert changed == 1
        records = ledger.records().set_index("record_key")
        assert records.loc[keys[0], "state"] == "matched"
        assert records.loc[keys[0], "found_amount_cents"] == 100
        assert records.loc[keys[1], "note"] == "waiting"
        assert records.loc[keys[0], "source_rows"] == [2]
        assert ledger.by_state() == {
            "confirmed": {"count": 2, "amount_cents": 200},
            "matched": {"count": 1, "amount_cents": 100},
        }
        assert ledger.touched_keys("r3") == [keys[0]]
        # caches, cursors, runs and files
        ledger.save_refs("i", {"vendors": [{"id": "v1"}]})
        ledger.save_refs("i", {"vendors": [{"id": "v2"}]})
        assert ledger.cached_refs("i")[1] == {"vendors": [{"id": "v2"}]}  # type: ignore[index]
        ledger.save_cursor("i", "charge", SyncCursor("2026-11-01T00:00:00Z", ("a", "b")))
        assert ledger.cursor("i", "charge").window == ("a", "b")
        ledger.start_run("r9", dry_run=False, pid=1)
        ledger.finish_run("r9", 0)
        assert ledger.last_run_id() == "r9"
        # one run at a time on a ledger, whichever process (or host) holds it
        with ledger.lock("run"), Ledger(ledger_url) as other, pytest.raises(LockHeldError):
            other.lock("run").__enter__()
        with Ledger(ledger_url) as other, other.lock("run"):
            pass  # released when the first holder's block ended


def test_a_sqlite_ledger_copies_to_postgresql_verified(tmp_path: Path, postgresql_url: str) -> None:
    """#18 `tieout ledger copy --to`: every table, ids and staging order kept, verified by
    counts and sums per state; the copy carries on where the old ledger stopped."""
    from click.testing import CliRunner

    from pipelines.cli.main import cli
    from pipelines.core.errors import LedgerError
    from pipelines.ledger.copy import copy_ledger

    source_path = tmp_path / "ledger.sqlite"
    with _staged(source_path, 5) as source:
        source.transition(["charge:i:TO0001"], "matched", run_id="r2", note="seen")
        source.save_refs("i", {"vendors": [{"id": "v1"}]})
        source.start_run("r2", dry_run=False, pid=1)
        expected = source.records(columns=["record_key", "state", "amount_cents", "note"])
        events = source.events("charge:i:TO0001")
    target = postgresql_url
    result = CliRunner().invoke(
        cli, ["--data-dir", str(tmp_path), "ledger", "copy", "--to", target]
    )
    assert result.exit_code == 0, result.output
    assert "copied 5 records" in result.output and "verified" in result.output
    with Ledger(target) as copy:
        got = copy.records(columns=["record_key", "state", "amount_cents", "note"])
        pd.testing.assert_frame_equal(got, expected)
        assert copy.events("charge:i:TO0001") == events
        assert copy.cached_refs("i")[1] == {"vendors": [{"id": "v1"}]}  # type: ignore[index]
        assert copy.last_run_id() == "r2"
        # new events continue after the copied ids
        copy.transition(["charge:i:TO0002"], "missing", run_id="r3")
        assert [e[2] for e in copy.events("charge:i:TO0002")][-1] == "missing"
        # a second copy into a ledger that holds records is refused
        with Ledger(source_path) as source, pytest.raises(LedgerError, match="already holds"):
            copy_ledger(source, copy)


def test_the_copy_knows_every_table_and_every_engine_numbered_one() -> None:
    import re

    from pipelines.ledger.copy import IDENTITY, TABLES
    from pipelines.ledger.schema import LATER_TABLES, base_tables

    ddl = base_tables() + "".join(LATER_TABLES)
    tables = set(re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)", ddl))
    numbered = set(
        re.findall(
            r"CREATE TABLE IF NOT EXISTS (\w+) \(\s+id INTEGER PRIMARY KEY AUTOINCREMENT", ddl
        )
    )
    assert set(TABLES) == tables
    assert set(IDENTITY) == numbered


def test_a_ledger_opens_only_at_this_tieouts_schema_and_migrate_brings_it_there(
    ledger_url: str, tmp_path: Path
) -> None:
    """#18: Alembic revisions; an older ledger (here: one from before migrations) is refused in
    one line until `tieout ledger migrate`, which keeps its records; a newer one is refused."""
    from click.testing import CliRunner

    from pipelines.cli.main import cli
    from pipelines.ledger import migrations
    from pipelines.ledger.database import connect

    _staged(ledger_url, 2).close()
    db = connect(ledger_url)
    db.execute("DROP TABLE alembic_version")  # as a ledger created before migrations
    db.close()
    with pytest.raises(LedgerError, match=r"from before migrations.*tieout ledger migrate"):
        Ledger(ledger_url)
    runner = CliRunner()
    env = {"TIEOUT_LEDGER_URL": ledger_url, "TIEOUT_CONFIG": str(tmp_path / "none.toml")}
    result = runner.invoke(cli, ["--data-dir", str(tmp_path), "ledger", "migrate"], env=env)
    assert result.exit_code == 0, result.output
    assert f"is at schema {migrations.head()} (was from before migrations)" in result.output
    with Ledger(ledger_url) as ledger:
        assert ledger.by_state() == {"confirmed": {"count": 2, "amount_cents": 200}}
        assert "claimed_by" in ledger.db.columns("claims")  # revision 0002 (#18)
    db = connect(ledger_url)
    db.execute("DROP TABLE claims")
    for table in ("open_items", "item_events", "file_passes"):  # revision 0003 makes them
        db.execute(f"DROP TABLE {table}")
    db.execute("UPDATE alembic_version SET version_num = '0001'")  # one revision behind
    db.close()
    with pytest.raises(LedgerError, match=r"schema 0001, older.*tieout ledger migrate"):
        Ledger(ledger_url)
    result = runner.invoke(cli, ["--data-dir", str(tmp_path), "ledger", "migrate"], env=env)
    assert f"is at schema {migrations.head()} (was 0001)" in result.output, result.output
    with Ledger(ledger_url) as ledger:
        assert "claimed_by" in ledger.db.columns("claims")
        assert "decided_by" in ledger.db.columns("item_events")  # revision 0003 (#27)
    db = connect(ledger_url)
    db.execute("UPDATE alembic_version SET version_num = '9999'")
    db.close()
    with pytest.raises(LedgerError, match="newer tieout"):
        Ledger(ledger_url)
    status = runner.invoke(cli, ["--data-dir", str(tmp_path), "status"], env=env)
    assert status.exit_code == 2 and "newer tieout" in status.output
    assert "Traceback" not in status.output


def test_several_processes_opening_a_new_ledger_at_once_all_get_it(ledger_url: str) -> None:
    """Two workers starting on a new PostgreSQL ledger collided in its catalog ("type runs
    already exists"); whoever creates the tables now does it alone."""
    from concurrent.futures import ThreadPoolExecutor

    def open_it(readonly: bool) -> bool:
        with Ledger(ledger_url, readonly=readonly) as ledger:
            return ledger.is_empty()

    with ThreadPoolExecutor(6) as pool:
        assert list(pool.map(open_it, [False, True, False, True, False, True])) == [True] * 6


# --- workers side by side (#18) ------------------------------------------------------------------

HOLD_A_CLAIM = """
import sys, time
from pipelines.ledger import Ledger
ledger = Ledger(sys.argv[1])
with ledger.claim("f" * 64, "rent.csv") as mine:
    print("claimed" if mine else "refused", flush=True)
    time.sleep(60)  # the scenario: a worker holding its claim until it is killed
"""


def test_a_file_claimed_by_one_worker_is_skipped_by_another_until_that_worker_dies(
    postgresql_url: str,
) -> None:
    """Claims are rows held with SELECT … FOR UPDATE SKIP LOCKED: a second worker is told no at
    once (it does not wait), and a worker killed mid-file loses its claim with its session."""
    import subprocess
    import sys

    url = postgresql_url
    Ledger(url).close()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_A_CLAIM, url], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "claimed"
        with Ledger(url) as other:
            with other.claim("f" * 64, "rent.csv") as mine:
                assert mine is False
            with other.claim("e" * 64, "bills.csv") as mine:
                assert mine is True  # another file is free
            holder.kill()  # SIGKILL: no cleanup, the server ends its session
            holder.wait()
            # The server notices the closed connection a moment after the process is gone
            # (CI saw the claim still held right after `wait`): it is free within seconds.
            deadline = time.monotonic() + 10
            while True:
                with other.claim("f" * 64, "rent.csv") as mine:
                    if mine or time.monotonic() > deadline:
                        break
                time.sleep(0.05)  # PostgreSQL ends the dead session's lock (no sandbox here)
            assert mine is True
            claimed = other.db.execute(
                "SELECT claimed_by, finished_at FROM claims WHERE sha256 = ?", ["f" * 64]
            ).fetchone()
            assert claimed[0].endswith(f":{os.getpid()}") and claimed[1] is not None
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()


def test_one_worker_at_a_time_talks_to_an_integration(postgresql_url: str) -> None:
    """The turn is a blocking advisory lock per integration: the second worker waits for the
    first, another integration's worker does not."""
    import threading
    import time

    url = postgresql_url
    order: list[str] = []
    with Ledger(url) as first, Ledger(url) as second, Ledger(url) as third:

        def wait_for_turn(ledger: Ledger, integration: str, name: str) -> None:
            with ledger.turn(integration):
                order.append(name)

        with first.turn("int_a"):
            waiting = threading.Thread(target=wait_for_turn, args=(second, "int_a", "second"))
            waiting.start()
            wait_for_turn(third, "int_b", "other integration")
            time.sleep(0.3)  # the scenario: the turn is held while the others ask for theirs
            order.append("first done")
        waiting.join(5)
    assert order == ["other integration", "first done", "second"]


def test_a_ledger_keeps_one_integrations_records(ledger_url: str, tmp_path: Path) -> None:
    with Ledger(ledger_url) as ledger:
        ledger.belongs_to("int_a")
        ledger.belongs_to("int_a")
        with pytest.raises(LedgerError, match=r"integration int_a, not int_b.*own ledger_url"):
            ledger.belongs_to("int_b")
    # A ledger from before the check: its records say whose it is.
    with _staged(tmp_path / "older.sqlite", 2) as older:
        older.db.execute("DELETE FROM meta WHERE key = 'integration_id'")
        with pytest.raises(LedgerError, match="integration i, not int_b"):
            older.belongs_to("int_b")


def test_two_workers_staging_the_same_lines_at_once_stage_each_once(ledger_url: str) -> None:
    """Staging reads which keys exist and writes the new ones as one step: two workers staging
    overlapping files at once (PostgreSQL) never fail on a duplicate key or stage one twice."""
    from concurrent.futures import ThreadPoolExecutor

    Ledger(ledger_url).close()
    keys = [f"charge:i:TO{i:05d}" for i in range(3_000)]

    def stage(part: slice) -> int:
        chosen = keys[part]
        frame = pd.DataFrame(
            {
                "record_key": chosen,
                "kind": "charge",
                "integration_id": "i",
                "location_id": "L",
                "amount_cents": 100,
                "content_hash": "h",
                "payload": "{}",
                "source_rows": [[2]] * len(chosen),
                "source_file": "f.csv",
                "reference_number": [k.rsplit(":", 1)[1] for k in chosen],
            }
        )
        with Ledger(ledger_url) as ledger:
            staged, conflicts = ledger.stage_records("r", None, frame)
            assert not conflicts
            return len(staged)

    with ThreadPoolExecutor(4) as pool:
        staged = list(pool.map(stage, [slice(0, 2_000), slice(1_000, 3_000)] * 2))
    assert sum(staged) == 3_000
    with Ledger(ledger_url) as ledger:
        assert ledger.by_state()["ready"]["count"] == 3_000


def test_a_ledger_another_worker_creates_between_two_reads_opens(
    ledger_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by the multi-worker test: a worker read "no revision" just before another
    committed the new ledger, then saw its tables, and took it for a ledger from before
    migrations (exit 2). Both are read again under the schema lock now."""
    from pipelines.ledger import schema
    from pipelines.ledger.database import Database

    Ledger(ledger_url).close()
    real, reads = schema.revision_of, []

    def revision_of(db: Database) -> str | None:
        reads.append(db)  # the first read: a moment before the other worker's commit
        return None if len(reads) == 1 else real(db)

    monkeypatch.setattr(schema, "revision_of", revision_of)
    with Ledger(ledger_url) as ledger:
        assert ledger.is_empty()


def _described(url: str) -> dict[str, object]:
    """Every table's columns (name, type, nullability, default, key) and indexes, as the
    database itself reports them."""
    import sqlalchemy as sa

    from pipelines.ledger import migrations

    engine = sa.create_engine(migrations.sqlalchemy_url(url))
    try:
        inspector = sa.inspect(engine)
        return {
            table: (
                sorted(
                    (c["name"], str(c["type"]), c["nullable"], str(c.get("default")))
                    for c in inspector.get_columns(table)
                ),
                inspector.get_pk_constraint(table)["constrained_columns"],
                sorted((i["name"], tuple(i["column_names"])) for i in inspector.get_indexes(table)),
            )
            for table in sorted(inspector.get_table_names())
            if table != "alembic_version"
        }
    finally:
        engine.dispose()


def test_a_ledger_migrated_from_the_first_revision_equals_one_created_at_head(
    ledger_url: str, tmp_path: Path
) -> None:
    """#29: each revision carries its own frozen DDL, so history cannot move under a ledger:
    one upgraded revision by revision from the first equals one created from today's schema
    declaration (what a read-only ledger is made from)."""
    from alembic import command
    from sqlalchemy import create_engine

    from pipelines.ledger import migrations, schema
    from pipelines.ledger.database import connect
    from tests.postgres import fresh_database

    engine = create_engine(migrations.sqlalchemy_url(ledger_url))
    try:
        with engine.begin() as connection:
            settings = migrations.config()
            settings.attributes["connection"] = connection
            command.upgrade(settings, "0001")
            command.upgrade(settings, "head")
    finally:
        engine.dispose()
    if ledger_url.startswith("sqlite"):
        declared_url = f"sqlite:///{tmp_path / 'declared.sqlite'}"
    else:
        declared_url = fresh_database(ledger_url.rsplit("/", 1)[0] + "/postgres")
    db = connect(declared_url)
    schema.create(db)
    db.close()
    assert _described(ledger_url) == _described(declared_url)
