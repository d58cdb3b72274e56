"""Files written whole or not at all, and private from their first byte; a shared reports
group that this user cannot give files to is refused naming the setting."""

from __future__ import annotations

import grp
import os
import stat
from pathlib import Path

import pytest

from pipelines.core.disk import (
    FILE_MODE,
    FOLDER_MODE,
    OWNER_ONLY_UMASK,
    SHARED_FILE_MODE,
    SHARED_FOLDER_MODE,
    group_id,
    owner_only,
    share_with_group,
    write_atomically,
)
from pipelines.core.errors import ConfigError


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_file_is_written_whole_owner_only_and_its_folders_made(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "report.json"
    write_atomically(target, b'{"ok": true}')
    assert target.read_bytes() == b'{"ok": true}'
    assert mode(target) == FILE_MODE
    assert mode(target.parent) == FOLDER_MODE
    assert [p.name for p in target.parent.iterdir()] == ["report.json"]


def test_a_rewrite_replaces_the_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "index.json"
    write_atomically(target, b"old")
    write_atomically(target, b"new and longer", mode=SHARED_FILE_MODE)
    assert target.read_bytes() == b"new and longer"
    assert mode(target) == SHARED_FILE_MODE
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.json"]


def test_a_write_that_fails_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "secret"
    write_atomically(target, b"kept")

    def refuse(_fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", refuse)
    with pytest.raises(OSError, match="disk full"):
        write_atomically(target, b"half")
    assert target.read_bytes() == b"kept"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secret"]


def test_owner_only_sets_and_returns_the_umask() -> None:
    before = owner_only()
    try:
        assert os.umask(OWNER_ONLY_UMASK) == OWNER_ONLY_UMASK
    finally:
        os.umask(before)


def test_a_group_that_does_not_exist_is_refused_naming_the_setting() -> None:
    with pytest.raises(ConfigError, match="shared_reports_group: no group named 'no-such-grp-x'"):
        group_id("no-such-grp-x")


def test_the_users_own_group_may_be_given_the_reports(tmp_path: Path) -> None:
    name = grp.getgrgid(os.getegid()).gr_name
    assert group_id(name) == os.getegid()
    folder = tmp_path / "reports"
    folder.mkdir()
    report = folder / "summary.json"
    report.write_text("{}")
    share_with_group([folder, report], name, traverse=[tmp_path])
    assert mode(folder) == SHARED_FOLDER_MODE
    assert mode(report) == SHARED_FILE_MODE
    assert mode(tmp_path) == 0o710
    assert report.stat().st_gid == os.getegid()


def test_a_group_this_user_is_not_in_is_refused_saying_what_to_do(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    others = [
        g for g in grp.getgrall() if g.gr_gid != os.getegid() and g.gr_gid not in os.getgroups()
    ]
    if os.geteuid() == 0:
        monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert others, "the host has a group this user is not in"
    with pytest.raises(ConfigError, match=r"not a member of group .*unset shared_reports_group"):
        group_id(others[0].gr_name)
