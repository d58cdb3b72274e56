"""The drop folder: which files are ready, how one is taken, and where it goes afterwards.
Nothing is ever deleted.

A settled file is *taken* by renaming it out of the inbox into a folder of its own under the
inbox's private ``.processing/`` folder (the maildir way) before it is read: a file put in the
inbox later under the same name (a newer version, replaced atomically) is a new file there,
read by the next run, and never archived unread in place of the one that was read. A run that
dies leaves its file in ``.processing/``, and the next run takes it from there. The folder is
beside the files it takes (a rename never crosses file systems), so workers sharing an inbox
also share it, and any of them can finish a file a dead one had taken.

A file that was read is kept under its content, ``<sha8>-<name>`` (:func:`keep_version`), so a
later version of the same name is kept beside it, never in its place, and its taken folder is
removed: no hidden folder outlives its run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from stat import S_ISREG

from pipelines.core.disk import FILE_MODE, FOLDER_MODE
from pipelines.core.errors import InputError
from pipelines.core.models import (
    CONTROL_CHARACTERS,
    SourceFile,
    printable,
)
from pipelines.core.versions import original_name, sha256_of, versioned_name
from pipelines.reading.grids import fingerprint

PROCESSING = ".processing"  # under the inbox; a dot folder, so never a candidate itself
IGNORED_SUFFIXES = (".tmp", ".part", ".crdownload", ".partial", ".errors.csv")


def is_candidate(path: Path) -> bool:
    """Files staff drop, not lock files, temp files, dotfiles or our own errors files."""
    name = path.name
    if not path.is_file() or name.startswith((".", "~$")):
        return False
    return not name.lower().endswith(IGNORED_SUFFIXES)


def is_hard_link(path: Path) -> bool:
    """Whether ``path`` is a regular file with another name too (a link count over 1): its
    other name may be anywhere on the file system, so it is refused like a symbolic link to
    outside the inbox, and never read."""
    try:
        stat = path.lstat()
    except OSError:
        return False
    return S_ISREG(stat.st_mode) and stat.st_nlink > 1


def leads_outside(path: Path, inbox: Path) -> bool:
    """Whether ``path`` is a symbolic link to something outside ``inbox`` (or to nothing), or
    a hard link (:func:`is_hard_link`): such a file is refused and left, and what it points at
    is never opened. Only the links are followed (``resolve``), no file is read."""
    if not path.is_symlink():
        return is_hard_link(path)
    try:
        target = path.resolve(strict=True)
        return not target.is_relative_to(inbox.resolve(strict=True))
    except (OSError, RuntimeError):  # a broken link, or a loop
        return True


def links_outside(inbox: Path) -> list[Path]:
    """The inbox's links to files outside it (see :func:`leads_outside`), by name."""
    if not inbox.is_dir():
        return []
    return sorted(p for p in inbox.iterdir() if leads_outside(p, inbox))


def refused_link_text(path: Path) -> str:
    """What a run says of a link it refuses, with the next step."""
    if not path.is_symlink():
        return (
            f"{printable(path.name)}: a hard link (the same file has another name, maybe "
            "outside the inbox); refused and left where it is, and not read. Copy the file "
            f"itself into {path.parent}"
        )
    return (
        f"{printable(path.name)}: a link to a file outside the inbox; refused and left where "
        f"it is, and what it points at is not read. Copy the file itself into {path.parent}"
    )


def list_inbox(inbox: Path) -> list[Path]:
    """Candidate files in the inbox, oldest first (ties by name), not recursing; never a link
    to a file outside it."""
    if not inbox.is_dir():
        return []
    found = []
    for path in inbox.iterdir():
        try:
            if leads_outside(path, inbox):
                continue
            if is_candidate(path):
                found.append((path.stat().st_mtime, path.name, path))
        except OSError:
            continue  # gone since the listing: another worker took it in
    return [path for _, _, path in sorted(found)]


def safe_name(name: str) -> str:
    """A file name that cannot escape its folder or confuse a terminal."""
    base = Path(name.replace("\\", "/")).name
    base = CONTROL_CHARACTERS.sub("_", base).strip(" .") or "unnamed"
    if len(base) > 180:
        stem, dot, suffix = base.rpartition(".")
        base = (stem[: 170 - len(suffix)] + dot + suffix) if dot else base[:180]
    return base


def unique_target(folder: Path, name: str) -> Path:
    """``folder/name``, or ``name (2)``, ``name (3)``… when that is taken: never overwrite."""
    folder.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
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
    target.chmod(FILE_MODE)  # an archived roll is tieout's now: owner-only, whoever dropped it
    return target


def keep_version(path: Path, folder: Path, *, copy: bool = False) -> Path:
    """Move (``copy``: copy) a file that was read into ``folder`` under its content's name,
    ``<sha8>-<name>`` (:func:`versions.versioned_name`), and return where it is kept. Nothing
    is overwritten: the name is claimed by an exclusive link (or an exclusive create, across
    file systems); when a file of that name is already there with the same bytes, this version
    is already kept and ``path`` goes; one with other bytes (a sha8 shared by two versions)
    leaves this one a numbered name beside it."""
    sha = sha256_of(path)
    if sha is None:
        raise InputError(f"{printable(path.name)}: cannot be read to be archived")
    folder.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
    name = safe_name(original_name(path.name, sha))  # a kept version keeps its one prefix
    target = folder / safe_name(versioned_name(sha, name))
    while not _place(path, target, link=not copy):
        if sha256_of(target) == sha:
            break  # the same bytes, kept already (the same version read again)
        target = unique_target(folder, target.name)
    target.chmod(FILE_MODE)  # a kept version is tieout's: owner-only, whoever dropped it
    if not copy:
        path.unlink()
    return target


def _place(path: Path, target: Path, *, link: bool) -> bool:
    """``path``'s bytes at ``target`` unless something is there already (False): a hard link
    when ``link`` (a move's first half), else a copy."""
    try:
        if link:
            os.link(path, target, follow_symlinks=False)
            return True
    except FileExistsError:
        return False
    except OSError:
        pass  # another file system, or one without hard links: copy, still exclusively
    try:
        with path.open("rb") as source, target.open("xb") as out:
            shutil.copyfileobj(source, out, 1 << 20)
            out.flush()
            os.fsync(out.fileno())
    except FileExistsError:
        return False
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    shutil.copystat(path, target)
    return True


def recover_kept(folders: list[Path]) -> list[Path]:
    """Files left in a hidden ``.processing/<tmp>/`` folder of the archive or the rejected
    folder (a run before the kept-version layout read archived copies again there, and left
    them): each moved to its kept name in the folder that holds ``.processing``, so no version
    stays hidden; returns where they are now. ``folders`` are the rejected folder and the
    archive's day folders; nothing there is read as a new file."""
    kept: list[Path] = []
    for folder in folders:
        hidden = folder / PROCESSING
        if not hidden.is_dir():
            continue
        for own in sorted(hidden.iterdir()):
            for path in sorted(own.iterdir()) if own.is_dir() else ():
                if path.is_file() and not path.is_symlink():
                    kept.append(keep_version(path, folder))
                    release(path)
        with contextlib.suppress(OSError):
            hidden.rmdir()
    return kept


def archive_folder(archive_dir: Path, when: datetime | None = None) -> Path:
    """``data/archive/<YYYY-MM-DD>/``."""
    day = (when or datetime.now(tz=UTC)).strftime("%Y-%m-%d")
    return archive_dir / day


def open_for_writing(paths: list[Path], proc: Path = Path("/proc")) -> set[Path]:
    """Which of ``paths`` some process holds open for writing, where the platform can tell
    (Linux: ``/proc/<pid>/fd`` and the access mode in ``fdinfo``). Elsewhere: none known, and
    the size/mtime settling and the check after reading still apply."""
    if not paths or not proc.is_dir():
        return set()
    wanted: dict[str, Path] = {}
    for path in paths:
        try:
            wanted[str(path.resolve())] = path
        except OSError:
            continue
    busy: set[Path] = set()
    for pid in proc.iterdir():
        if not pid.name.isdigit():
            continue
        try:
            fds = list((pid / "fd").iterdir())
        except OSError:
            continue  # gone, or not ours to look at
        for fd in fds:
            try:
                target = str(fd.readlink())
            except OSError:
                continue
            if target not in wanted:
                continue
            try:
                flags = (pid / "fdinfo" / fd.name).read_text().split("flags:")[1].split()[0]
            except (OSError, IndexError):
                busy.add(wanted[target])  # cannot tell how it is open: assume writing
                continue
            if int(flags, 8) & (os.O_WRONLY | os.O_RDWR):
                busy.add(wanted[target])
    return busy


def _look(paths: list[Path]) -> dict[Path, tuple[int, float]]:
    seen: dict[Path, tuple[int, float]] = {}
    for path in paths:
        try:
            stat = path.stat()
        except OSError:
            continue  # moved or deleted between listing and looking
        seen[path] = (stat.st_size, stat.st_mtime)
    return seen


def complete_files(
    inbox: Path, settle_s: float, sleep: Callable[[float], None] = time.sleep
) -> tuple[list[Path], list[Path]]:
    """Files whose size and mtime are the same across two looks ``settle_s`` apart.

    Returns (complete, still being written). A file still growing, being copied or being saved
    by Excel is left for the next run.
    """
    first = _look(list_inbox(inbox))
    if not first:
        return [], []
    sleep(settle_s)
    second = _look(list_inbox(inbox))
    complete = [p for p, look in first.items() if second.get(p) == look and look[0] > 0]
    writing = open_for_writing(complete)
    complete = [p for p in complete if p not in writing]
    busy = [p for p in second if p not in complete]
    return complete, busy


def changed_since(source: SourceFile) -> bool:
    """Whether the file is no longer the one that was fingerprinted (size, mtime or content)."""
    try:
        stat = source.path.stat()
    except OSError:
        return True
    if stat.st_size != source.size_bytes or stat.st_mtime_ns != (
        source.mtime_ns or stat.st_mtime_ns
    ):
        return True
    return fingerprint(source.path).sha256 != source.sha256


def processing_dir(inbox: Path) -> Path:
    """Where files taken from ``inbox`` are read (owner-only)."""
    return inbox / PROCESSING


def take_file(path: Path) -> Path | None:
    """Rename an inbox file into a new folder of its own under the processing folder, keeping
    its name; returns where it is now, or None when it is gone (another worker took it).

    The rename is one atomic step on one file system: what is read afterwards is exactly what
    was in the inbox at that moment, and nothing put in the inbox later can take its place."""
    folder = processing_dir(path.parent)
    for attempt in range(3):  # another worker may remove the (empty) folder in between
        folder.mkdir(mode=0o700, exist_ok=True)
        try:
            own = Path(tempfile.mkdtemp(prefix="", dir=folder))  # unique: never a shared name
            break
        except FileNotFoundError:
            if attempt == 2:
                raise
    target = own / path.name  # its own name: what the clerk dropped is what tieout shows
    try:
        path.rename(target)
    except FileNotFoundError:
        release(target)
        return None
    return target


def taken_files(inbox: Path) -> list[Path]:
    """Files a run took from ``inbox`` and did not finish (it died): oldest first."""
    folder = processing_dir(inbox)
    if not folder.is_dir():
        return []
    found = []
    for own in folder.iterdir():
        try:
            for path in own.iterdir() if own.is_dir() else ():
                if path.is_file():
                    found.append((path.stat().st_mtime, path.name, path))
        except OSError:
            continue  # finished by another worker since the listing
    return [path for _, _, path in sorted(found)]


def is_taken(path: Path) -> bool:
    """Whether ``path`` is a file in a processing folder (taken, not in the inbox itself)."""
    return path.parent.parent.name == PROCESSING


def inbox_of(path: Path) -> Path:
    """The inbox a file is in, or was taken from."""
    return path.parent.parent.parent if is_taken(path) else path.parent


def release(path: Path) -> None:
    """Remove a taken file's own folder once the file has moved on, and the processing folder
    when nothing else is in it (the inbox staff see holds only what they dropped)."""
    if is_taken(path):
        for folder in (path.parent, path.parent.parent):
            with contextlib.suppress(OSError):  # not empty, or already gone
                folder.rmdir()


def put_back(path: Path) -> Path:
    """A taken file returned to its inbox (never overwriting a newer one of the same name), to
    be read again once it has settled."""
    target = move_file(path, inbox_of(path))
    release(path)
    return target


def archive_taken(source: SourceFile, folder: Path) -> tuple[Path, Path | None]:
    """Move a taken file that was read into ``folder`` as its kept version
    (:func:`keep_version`), and check by sha256 that what was moved
    is what was read. Returns (where it went, a copy put back in the inbox when it was not
    what was read: it changed after the read, so it is read again)."""
    inbox = inbox_of(source.path)
    target = keep_version(source.path, folder)
    release(source.path)
    if sha256_of(target) == source.sha256:
        return target, None
    again = unique_target(inbox, source.name)
    shutil.copy2(target, again)
    again.chmod(FILE_MODE)
    return target, again
