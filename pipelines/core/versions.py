"""Every version of a file read is kept under its content: ``<sha8>-<name>`` in its folder
(``data/archive/<YYYY-MM-DD>/`` or ``data/rejected/``), where ``sha8`` is the first 8 hex
digits of its sha256. Two versions of one name never share a path, so nothing that points at a
version (a report, ``summary.json``, ``tieout trace``, an errors file) is ever pointed at other
bytes later.

Ledgers written before this layout recorded plain names (``archive/<date>/bills.csv``) and,
for files read again in place, a hidden ``.processing/<tmp>/`` folder; :func:`locate` still
finds those versions, by their sha256, where they are or where a later run put them.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

PROCESSING = ".processing"  # a folder's private place for files being taken in
SHA8 = 8


def versioned_name(sha256: str, name: str) -> str:
    """``<sha8>-<name>``: the name a version of ``name`` with this content is kept under."""
    return f"{sha256[:SHA8]}-{name}"


def original_name(name: str, sha256: str) -> str:
    """The name a file was dropped under, from its kept version's name (the name itself
    when it is not a kept version's of this content)."""
    prefix = f"{sha256[:SHA8]}-"
    return name[len(prefix) :] if sha256 and name.startswith(prefix) else name


def sha256_of(path: Path) -> str | None:
    """The file's sha256, or None when it cannot be read."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest()


def is_kept_version(path: Path, sha256: str) -> bool:
    """Whether ``path`` is named as the kept version of this content (such a path is never
    given other bytes, so it need not be read to be trusted; trace reads it anyway)."""
    return bool(sha256) and path.name.startswith(f"{sha256[:SHA8]}-")


def candidates(recorded: Path, sha256: str) -> list[Path]:
    """Where the version with ``sha256`` recorded at ``recorded`` may be, in order: the path
    itself; its kept name beside it; and, for a path inside a hidden ``.processing/<tmp>/``
    folder (a ledger written before this layout), its kept name in the folder that holds
    ``.processing``."""
    name = original_name(recorded.name, sha256)
    found = [recorded, recorded.parent / versioned_name(sha256, name)]
    if recorded.parent.parent.name == PROCESSING:
        found.append(recorded.parent.parent.parent / versioned_name(sha256, name))
    return list(dict.fromkeys(found))


def locate(recorded: str | Path | None, sha256: str) -> Path | None:
    """The file holding the bytes with ``sha256`` that a run recorded at ``recorded``, or None
    when no such file is there (sha256 checked: a path now holding other bytes is not it)."""
    if not recorded or not sha256:
        return None
    for path in candidates(Path(recorded), sha256):
        if path.is_file() and sha256_of(path) == sha256:
            return path
    return None
