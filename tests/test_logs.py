"""Run logs: one JSON-lines file per run, only the whitelisted fields, the oldest pruned."""

from __future__ import annotations

import errno
import json
import logging
import os
from pathlib import Path

import pytest

from pipelines.core.logs import RunLogFile, prune, run_log

log = logging.getLogger("tieout")


def test_a_run_log_holds_one_json_line_per_event_with_only_the_known_fields(
    tmp_path: Path,
) -> None:
    logs_dir = tmp_path / "logs"
    with run_log(logs_dir, "run-1") as path:
        log.info(
            "state change",
            extra={"run_id": "run-1", "record_key": "invoice:i:7", "to_state": "confirmed"},
        )
        log.info("a secret never logged", extra={"token": "s3cret", "row": 4})
        log.debug("below INFO: not written")
    assert path == logs_dir / "run-1.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["event"] for line in lines] == ["state change", "a secret never logged"]
    assert lines[0]["record_key"] == "invoice:i:7"
    assert lines[0]["level"] == "info"
    assert lines[1]["row"] == 4
    assert "token" not in lines[1]
    assert "s3cret" not in path.read_text()
    # The block's handler is gone: later events reach no run log.
    log.info("after the run")
    assert "after the run" not in path.read_text()


def test_the_oldest_run_logs_are_pruned_and_nothing_else(tmp_path: Path) -> None:
    logs_dir = tmp_path / "logs"
    logs_dir.mkdir()
    for n in range(5):
        old = logs_dir / f"run-{n}.jsonl"
        old.write_text("{}\n")
        os.utime(old, (1_000_000 + n, 1_000_000 + n))
    other = logs_dir / "notes.txt"
    other.write_text("kept")
    with run_log(logs_dir, "run-5", keep=3) as path:
        log.info("newest")
    kept = sorted(p.name for p in logs_dir.iterdir())
    assert kept == ["notes.txt", "run-3.jsonl", "run-4.jsonl", path.name]
    prune(logs_dir, keep=1)
    assert sorted(p.name for p in logs_dir.iterdir()) == ["notes.txt", path.name]


def test_a_full_disk_stops_the_command_and_other_write_failures_lose_one_line(
    tmp_path: Path,
) -> None:
    handler = RunLogFile(tmp_path / "run.jsonl", encoding="utf-8")
    record = logging.LogRecord("tieout", logging.INFO, __file__, 1, "event", None, None)
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:
            with pytest.raises(OSError, match="No space left"):
                handler.handleError(record)
        try:
            raise OSError(errno.EIO, "I/O error")
        except OSError:
            handler.handleError(record)  # no traceback printed, nothing raised
    finally:
        handler.close()
