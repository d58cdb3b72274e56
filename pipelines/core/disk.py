"""Files written whole or not at all (reports, rejects files, the index, the webhook secret),
and who may read what tieout writes: its owner only (``0600`` files, ``0700`` folders), or, for
the reports, a group named in ``shared_reports_group`` (``0640`` / ``0750``)."""

from __future__ import annotations

import grp
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from pipelines.core.errors import ConfigError

FILE_MODE = 0o600  # every file tieout writes, unless shared with a group
FOLDER_MODE = 0o700
OWNER_ONLY_UMASK = 0o077
SHARED_FILE_MODE = 0o640
SHARED_FOLDER_MODE = 0o750


def owner_only() -> int:
    """Make everything this process creates from now on owner-only (``umask 077``): the
    command line's first step, so a file written by any library (a log handler, SQLite, a
    copy) is private too. Returns the previous umask, to put back in-process."""
    return os.umask(OWNER_ONLY_UMASK)


def write_atomically(path: Path, data: bytes, *, mode: int = FILE_MODE) -> None:
    """Write ``path`` whole or not at all: through a temporary file of a name no other writer
    uses (workers sharing a data folder rewrite the same index at once), flushed, then
    atomically put in place. A reader sees the old file or the new one, never a part.
    ``mode`` (owner-only by default) is the file's from its first byte."""
    path.parent.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        Path(name).chmod(mode)  # mkstemp's own is 0600 already; a caller may ask for another
        Path(name).replace(path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise


def group_id(group: str) -> int:
    """The id of a group this user may give files to; a ConfigError naming the setting when
    there is no such group or the user is not in it."""
    try:
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        raise ConfigError(f"shared_reports_group: no group named {group!r} on this host") from None
    if os.geteuid() != 0 and gid != os.getegid() and gid not in os.getgroups():
        raise ConfigError(
            f"shared_reports_group: this user is not a member of group {group!r}, so cannot "
            "give it the reports; add the user to it, or unset shared_reports_group"
        )
    return gid


def share_with_group(paths: Iterable[Path], group: str, *, traverse: Iterable[Path] = ()) -> None:
    """Give ``paths`` (folders and files) to ``group``, readable by it (``0750`` / ``0640``);
    the ``traverse`` folders above them only passable by it (``0710``: not listed)."""
    gid = group_id(group)
    for folder in traverse:
        os.chown(folder, -1, gid)
        folder.chmod(0o710)
    for path in paths:
        os.chown(path, -1, gid)
        path.chmod(SHARED_FOLDER_MODE if path.is_dir() else SHARED_FILE_MODE)
