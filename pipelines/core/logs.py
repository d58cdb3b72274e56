"""Run logs: one JSON-lines file per run in ``data/logs/``, the oldest pruned.

Each line is one event with the fields needed to trace a failure at 3 a.m. (run id, file, row,
record key, job id, state change) and nothing more: never the token, never a whole record.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from pipelines.core.disk import FILE_MODE, FOLDER_MODE

LOGGER = "tieout"
FIELDS = (
    "run_id",
    "file",
    "row",
    "record_key",
    "job_id",
    "from_state",
    "to_state",
    "code",
    "requests",
    "count",
    "path",
    "error",
)


class JsonLines(logging.Formatter):
    """``{"ts", "level", "event", <whitelisted fields>}`` per line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "event": record.getMessage(),
        }
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        return json.dumps(line, default=str)


class RunLogFile(logging.FileHandler):
    """A run log that never prints a traceback of its own: a full disk stops the command (said
    in one line by the console), any other failure to write a line loses only that line."""

    def handleError(self, record: logging.LogRecord) -> None:
        failure = sys.exc_info()[1]
        if isinstance(failure, OSError) and failure.errno in (errno.ENOSPC, errno.EDQUOT):
            raise failure


@contextmanager
def run_log(logs_dir: Path, name: str, keep: int = 200) -> Iterator[Path]:
    """Send the ``tieout`` logger's INFO events to ``logs_dir/<name>.jsonl`` for a block."""
    logs_dir.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
    path = logs_dir / f"{name}.jsonl"
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE))  # owner-only
    handler = RunLogFile(path, encoding="utf-8")
    handler.setFormatter(JsonLines())
    handler.setLevel(logging.INFO)
    logger = logging.getLogger(LOGGER)
    previous = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield path
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)
        handler.close()
        prune(logs_dir, keep)


def prune(logs_dir: Path, keep: int) -> None:
    """Keep the newest ``keep`` run logs (rotation by count; nothing else is ever deleted)."""
    logs = sorted(logs_dir.glob("*.jsonl"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in logs[keep:]:
        old.unlink(missing_ok=True)
