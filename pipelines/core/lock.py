"""One tieout process at a time: an advisory lock on ``data/tieout.lock``.

The lock is held by the kernel (``flock``), so a process that dies releases it: a stale lock
file from a dead process is simply taken over. The file names the holder for the message.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from pipelines.core.errors import LockHeldError


@contextmanager
def run_lock(path: Path, command: str) -> Iterator[None]:
    """Hold the lock for the duration of a block, or raise :class:`LockHeldError` (exit 3)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("a+", encoding="utf-8")
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            try:
                holder = json.loads(handle.read() or "{}")
            except json.JSONDecodeError:
                holder = {}
            raise LockHeldError(
                f"another tieout {holder.get('command', 'process')} is running "
                f"(pid {holder.get('pid', '?')}, started {holder.get('started_at', '?')}); "
                "try again when it has finished"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(
            json.dumps(
                {
                    "pid": os.getpid(),
                    "command": command,
                    "started_at": datetime.now(tz=UTC).isoformat(timespec="seconds"),
                }
            )
        )
        handle.flush()
        yield
    finally:
        handle.close()
