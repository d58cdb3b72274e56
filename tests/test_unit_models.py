"""Small shared pieces, unit by unit: what a person is shown cannot carry control characters;
whole numbers and exit codes read from a ledger column whatever pandas made of them; the
record states' groups say what they promise; run logs hold only whitelisted fields, owner-only,
pruned by count; one process at a time holds the lock and the second is told who."""

from __future__ import annotations

import errno
import json
import logging
import os
import stat
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipelines.core.errors import LockHeldError
from pipelines.core.lock import run_lock
from pipelines.core.logs import FIELDS, LOGGER, JsonLines, RunLogFile, prune, run_log
from pipelines.core.models import (
    AWAITING_SYNC,
    CONTROL_CHARACTERS,
    IN_DOUBT,
    POSTED,
    UNFINISHED,
    RecordState,
    exit_code_of,
    printable,
    utcnow,
    whole,
)


@given(st.text(max_size=60))
def test_printable_text_has_no_control_character_and_keeps_the_rest(text: str) -> None:
    shown = printable(text)
    assert not CONTROL_CHARACTERS.search(shown)
    if not CONTROL_CHARACTERS.search(text):
        assert shown == text


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("a\nb", "a\\nb"),
        ("\r\t", "\\r\\t"),
        ("\x1b[31mred", "\\x1b[31mred"),
        ("\x9b", "\\x9b"),
        ("fdp.\u202ecsv", "fdp.\\u202ecsv"),
        ("\u2066x\u2069", "\\u2066x\\u2069"),
        ("Café — ok", "Café — ok"),
    ],
)
def test_each_control_character_is_written_as_its_escape(text: str, shown: str) -> None:
    assert printable(text) == shown


def test_characters_asked_to_be_kept_are_kept() -> None:
    assert printable("line one\nline\ttwo\x1b", keep="\n") == "line one\nline\\ttwo\\x1b"


@pytest.mark.parametrize(
    ("value", "number"),
    [(3, 3), (np.int64(4), 4), ("12", 12), (7.0, 7), (np.uint8(9), 9), (True, 1)],
)
def test_whole_numbers_from_any_cell(value: object, number: int) -> None:
    assert whole(value) == number


def test_what_is_not_a_whole_number_is_refused() -> None:
    with pytest.raises(TypeError, match="not a whole number: None"):
        whole(None)
    with pytest.raises(ValueError):
        whole("twelve")


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (0, 0),
        (1.0, 1),
        (np.int64(3), 3),
        ("2", 2),
        ("", None),
        ("  ", None),
        (None, None),
        (float("nan"), None),
        (pd.NA, None),
        (pd.NaT, None),
    ],
)
def test_a_run_s_exit_code_is_none_until_it_has_one(value: object, code: int | None) -> None:
    assert exit_code_of(value) == code


def test_ledger_timestamps_sort_as_text_and_read_back_as_utc() -> None:
    first, second = utcnow(), utcnow()
    assert first <= second
    assert first.endswith("Z") and len(first) == len("2026-03-01T00:00:00.000000Z")
    assert datetime.strptime(first, "%Y-%m-%dT%H:%M:%S.%fZ")


def test_the_groups_of_states_say_what_they_promise() -> None:
    # In doubt is never finished and never posted by itself: never re-sent blindly.
    assert set(IN_DOUBT) <= set(UNFINISHED)
    assert RecordState.SENDING not in POSTED
    # Whatever a sync may still settle was posted or is in doubt.
    assert set(AWAITING_SYNC) <= set(POSTED) | set(IN_DOUBT)
    # Every state is finished or not, and those a sync settles are finished.
    sync_outcomes = {"matched", "missing", "mismatched", "duplicated", "unverifiable"}
    assert sync_outcomes <= {s.value for s in POSTED}
    assert not sync_outcomes & {s.value for s in UNFINISHED}
    assert RecordState("held") is RecordState.HELD


# --- run logs ---------------------------------------------------------------------------------


def test_a_run_log_holds_one_json_line_per_event_with_whitelisted_fields_only(
    tmp_path: Path,
) -> None:
    logger = logging.getLogger(LOGGER)
    before = logger.level
    with run_log(tmp_path / "logs", "run-1") as path:
        logger.info("posted", extra={"run_id": "run-1", "record_key": "k", "token": "SECRET"})
        logger.debug("not kept")
        logger.warning("slow", extra={"requests": 3, "path": Path("/x")})
    assert logger.level == before
    assert not any(isinstance(h, RunLogFile) for h in logger.handlers)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["event"] for line in lines] == ["posted", "slow"]
    assert lines[0]["run_id"] == "run-1" and lines[0]["record_key"] == "k"
    assert "token" not in lines[0] and "SECRET" not in path.read_text()
    assert lines[1]["level"] == "warning" and lines[1]["path"] == "/x"
    assert set(lines[1]) <= {"ts", "level", "event", *FIELDS}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_the_formatter_leaves_out_fields_that_are_not_set() -> None:
    record = logging.LogRecord(LOGGER, logging.INFO, __file__, 1, "hello %s", ("there",), None)
    record.created = 0.0
    line = json.loads(JsonLines().format(record))
    assert line == {"ts": "1970-01-01T00:00:00.000+00:00", "level": "info", "event": "hello there"}


def test_only_the_newest_logs_are_kept(tmp_path: Path) -> None:
    for i in range(5):
        log = tmp_path / f"run-{i}.jsonl"
        log.write_text("{}\n")
        os.utime(log, (1000 + i, 1000 + i))
    (tmp_path / "notes.txt").write_text("not a log")
    prune(tmp_path, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "run-3.jsonl", "run-4.jsonl"]


def test_a_full_disk_stops_the_command_but_another_write_failure_loses_one_line(
    tmp_path: Path,
) -> None:
    handler = RunLogFile(tmp_path / "r.jsonl", encoding="utf-8")
    record = logging.LogRecord(LOGGER, logging.INFO, __file__, 1, "x", (), None)
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:
            with pytest.raises(OSError, match="No space left"):
                handler.handleError(record)
        try:
            raise OSError(errno.EIO, "I/O error")
        except OSError:
            handler.handleError(record)  # said nowhere, the run goes on
    finally:
        handler.close()


# --- the run lock -----------------------------------------------------------------------------


def test_a_second_holder_is_refused_naming_the_first(tmp_path: Path) -> None:
    lock = tmp_path / "data" / "tieout.lock"
    with run_lock(lock, "run"):
        holder = json.loads(lock.read_text())
        assert holder["pid"] == os.getpid() and holder["command"] == "run"
        with (
            pytest.raises(LockHeldError, match=r"another tieout run is running \(pid \d+") as e,
            run_lock(lock, "check"),
        ):
            pass  # pragma: no cover - never entered
        assert e.value.exit_code == 3
        assert "try again when it has finished" in str(e.value)
    # Released: the next command takes it, and the file names the new holder.
    with run_lock(lock, "report"):
        assert json.loads(lock.read_text())["command"] == "report"


def test_a_holder_whose_file_says_nothing_readable_is_still_refused_in_words(
    tmp_path: Path,
) -> None:
    lock = tmp_path / "tieout.lock"
    with run_lock(lock, "run"):
        lock.write_text("garbage{")
        with (
            pytest.raises(LockHeldError, match=r"another tieout process is running \(pid \?"),
            run_lock(lock, "check"),
        ):
            pass  # pragma: no cover - never entered
