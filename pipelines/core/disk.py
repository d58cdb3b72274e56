"""Files written whole or not at all (reports, rejects files, the index, the webhook secret)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomically(path: Path, data: bytes, *, mode: int | None = None) -> None:
    """Write ``path`` whole or not at all: through a temporary file of a name no other writer
    uses (workers sharing a data folder rewrite the same index at once), flushed, then
    atomically put in place. A reader sees the old file or the new one, never a part.
    ``mode`` (e.g. ``0o600``) is the file's from its first byte."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        # mkstemp makes it owner-only; a report or rejects file is as readable as any other
        Path(name).chmod(mode if mode is not None else 0o666 & ~_UMASK)
        Path(name).replace(path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise


def _read_umask() -> int:
    # Read once, at import (before any thread starts): os.umask can only be read by setting it.
    current = os.umask(0o022)
    os.umask(current)
    return current


_UMASK = _read_umask()
