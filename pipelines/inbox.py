"""The drop folder: which files are ready, and where they go afterwards. Nothing is ever deleted."""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime
from pathlib import Path

IGNORED_SUFFIXES = (".tmp", ".part", ".crdownload", ".partial", ".errors.csv")
SUPPORTED_SUFFIXES = (".csv", ".txt", ".xlsx", ".xlsm")


def is_candidate(path: Path) -> bool:
    """Files staff drop, not lock files, temp files, dotfiles or our own errors files."""
    name = path.name
    if not path.is_file() or name.startswith((".", "~$")):
        return False
    return not name.lower().endswith(IGNORED_SUFFIXES)


def list_inbox(inbox: Path) -> list[Path]:
    """Candidate files in the inbox, oldest first (ties by name), not recursing."""
    if not inbox.is_dir():
        return []
    files = [p for p in inbox.iterdir() if is_candidate(p)]
    return sorted(files, key=lambda p: (p.stat().st_mtime, p.name))


def safe_name(name: str) -> str:
    """A file name that cannot escape its folder or confuse a terminal."""
    base = Path(name.replace("\\", "/")).name
    base = re.sub(r"[\x00-\x1f\x7f]", "_", base).strip(" .") or "unnamed"
    if len(base) > 180:
        stem, dot, suffix = base.rpartition(".")
        base = (stem[: 170 - len(suffix)] + dot + suffix) if dot else base[:180]
    return base


def unique_target(folder: Path, name: str) -> Path:
    """``folder/name``, or ``name (2)``, ``name (3)``… when that is taken: never overwrite."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / safe_name(name)
    stem, suffix = target.stem, target.suffix
    n = 2
    while target.exists():
        target = folder / f"{stem} ({n}){suffix}"
        n += 1
    return target


def move_file(path: Path, folder: Path) -> Path:
    """Move a processed file into ``folder`` without overwriting anything; returns where it went."""
    target = unique_target(folder, path.name)
    shutil.move(str(path), str(target))
    return target


def archive_folder(archive_dir: Path, when: datetime | None = None) -> Path:
    """``data/archive/<YYYY-MM-DD>/``."""
    day = (when or datetime.now(tz=UTC)).strftime("%Y-%m-%d")
    return archive_dir / day
