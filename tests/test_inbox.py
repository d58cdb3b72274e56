"""The inbox: which files are taken, when, and where they go; nothing overwritten."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipelines.runs.inbox import complete_files, move_file, safe_name


def test_only_complete_files_are_taken(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    done = inbox / "bills.csv"
    done.write_text("complete")
    growing = inbox / "roll.xlsx"
    growing.write_bytes(b"PK partial")
    for ignored in (
        "~$roll.xlsx",
        ".hidden.csv",
        "download.csv.crdownload",
        "x.part",
        "y.tmp",
        "bills.csv.errors.csv",
    ):
        (inbox / ignored).write_text("ignore me")

    def still_copying(seconds: float) -> None:
        with growing.open("ab") as handle:  # the copy is still going on between the two looks
            handle.write(b"more bytes")

    complete, busy = complete_files(inbox, 0.01, sleep=still_copying)
    assert complete == [done]
    assert busy == [growing]


def test_moves_never_overwrite_and_names_stay_inside_their_folder(tmp_path: Path) -> None:
    assert safe_name("../../etc/passwd") == "passwd"
    assert safe_name("bills\x07\x1b.csv") == "bills__.csv"
    assert len(safe_name("x" * 400 + ".csv")) <= 180
    folder = tmp_path / "archive"
    for _ in range(3):
        source = tmp_path / "bills.csv"
        source.write_text("same name")
        move_file(source, folder)
    assert sorted(p.name for p in folder.iterdir()) == [
        "bills (2).csv",
        "bills (3).csv",
        "bills.csv",
    ]


def test_a_file_that_changes_after_it_was_read_is_not_archived(tmp_path: Path) -> None:
    from pipelines.reading.grids import fingerprint
    from pipelines.runs.inbox import changed_since

    path = tmp_path / "bills.csv"
    path.write_text("a,b\n1,2\n")
    source = fingerprint(path)
    assert not changed_since(source)
    with path.open("a") as more:
        more.write("3,4\n")
    assert changed_since(source)


def test_a_file_another_worker_takes_while_the_inbox_is_listed_is_left_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Workers share an inbox (#18): a file moved away between the listing and its stat is
    not an error for this worker."""
    from pipelines.runs import inbox

    (tmp_path / "a.csv").write_text("x")
    (tmp_path / "b.csv").write_text("y")
    real = Path.stat

    def stat(path: Path, **kwargs: bool) -> os.stat_result:
        if path.name == "a.csv":
            raise FileNotFoundError(path)
        return real(path, **kwargs)

    monkeypatch.setattr(Path, "stat", stat)
    assert inbox.list_inbox(tmp_path) == [tmp_path / "b.csv"]
