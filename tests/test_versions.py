"""An immutable, visible archive (#36 point 3): every version of every file read is kept under
its content, ``archive/<date>/<sha8>-<name>`` (refused: ``rejected/<sha8>-<name>``), never
overwritten and never in a hidden folder once its run ends; reports, ``summary.json``,
``tieout trace`` and the errors file point at the exact bytes they describe."""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from pathlib import Path

import pytest

from pipelines.core.errors import InputError
from pipelines.core.versions import candidates, locate, original_name, versioned_name
from pipelines.runs.inbox import keep_version, recover_kept
from sandbox.server import RunningSandbox
from tests.conftest import run_cli, write_bills
from tests.test_items import env_for, never_twice, summary_of, the_bad_file


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def on_disk(data: Path, run_id: str) -> dict:  # type: ignore[type-arg]
    """A run's summary.json as it is on disk now (later runs rewrite a run's report)."""
    return json.loads((data / "reports" / run_id / "summary.json").read_text())  # type: ignore[no-any-return]


def file_links(data: Path, run_id: str) -> list[Path]:
    """Where the links of a run's report.html to its files lead."""
    folder = data / "reports" / run_id
    html = (folder / "report.html").read_text()
    hrefs = re.findall(r'<a href="([^"]+)"', html)
    kept = (data / "archive").resolve(), (data / "rejected").resolve()
    return [
        p
        for h in hrefs
        if (p := (folder / h).resolve()).is_relative_to(kept[0]) or p.is_relative_to(kept[1])
    ]


def hidden(data: Path) -> list[Path]:
    return [p for p in data.rglob("*") if p.name == ".processing"]


# --- keeping a version ---------------------------------------------------------------------------


def test_each_version_is_kept_under_its_content_and_nothing_is_overwritten(tmp_path: Path) -> None:
    folder = tmp_path / "archive" / "2026-12-05"
    first, second = tmp_path / "one", tmp_path / "two"
    first.mkdir()
    second.mkdir()
    (first / "bills.csv").write_text("version 1")
    (second / "bills.csv").write_text("version 2")
    kept_one = keep_version(first / "bills.csv", folder)
    kept_two = keep_version(second / "bills.csv", folder)
    one, two = hashlib.sha256(b"version 1").hexdigest(), hashlib.sha256(b"version 2").hexdigest()
    assert kept_one == folder / f"{one[:8]}-bills.csv" and kept_one.read_text() == "version 1"
    assert kept_two == folder / f"{two[:8]}-bills.csv" and kept_two.read_text() == "version 2"
    assert not (first / "bills.csv").exists() and not (second / "bills.csv").exists()
    # The same bytes again: that version is kept already; the one read goes.
    (first / "bills.csv").write_text("version 1")
    assert keep_version(first / "bills.csv", folder) == kept_one
    assert sorted(p.name for p in folder.iterdir()) == sorted([kept_one.name, kept_two.name])
    # A name held by other bytes (two versions sharing a sha8) is never overwritten.
    (first / "roll.csv").write_text("a roll")
    squatter = folder / versioned_name(hashlib.sha256(b"a roll").hexdigest(), "roll.csv")
    squatter.write_text("other bytes")
    kept = keep_version(first / "roll.csv", folder)
    assert kept != squatter and kept.read_text() == "a roll"
    assert squatter.read_text() == "other bytes"
    # A copy (a refused version kept in the archive too) leaves the one it copies, and a kept
    # version's name keeps its one prefix.
    again = keep_version(kept_one, tmp_path / "archive" / "2026-12-06", copy=True)
    assert again.name == kept_one.name and kept_one.read_text() == again.read_text()
    assert original_name(kept_one.name, one) == "bills.csv"
    assert original_name("bills.csv", one) == "bills.csv"


def test_across_file_systems_a_version_is_copied_exclusively_and_an_unreadable_one_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where a hard link cannot be made (another file system), the version is copied with an
    exclusive create: still never over another file."""
    import errno
    import os

    def no_links(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_links)
    folder = tmp_path / "archive"
    for text in ("version 1", "version 1", "version 2"):
        (tmp_path / "bills.csv").write_text(text)
        keep_version(tmp_path / "bills.csv", folder)
    assert sorted(p.read_text() for p in folder.iterdir()) == ["version 1", "version 2"]
    assert not (tmp_path / "bills.csv").exists()
    with pytest.raises(InputError, match="cannot be read to be archived"):
        keep_version(tmp_path / "gone.csv", folder)


def test_versions_an_earlier_run_left_hidden_are_kept_in_view_and_found_by_their_sha256(
    tmp_path: Path,
) -> None:
    """Before this layout, `tieout retry` read an archived copy by taking it into the day's
    ``.processing/<tmp>/`` and left it there, and a later file of the same name took its plain
    name. The next run moves each hidden version to its kept name, and what the ledger
    recorded (the plain name, or the hidden path) still finds those bytes."""
    day = tmp_path / "archive" / "2026-12-05"
    rejected = tmp_path / "rejected"
    hidden_bill = day / ".processing" / "tmpab12" / "bills.csv"
    hidden_roll = rejected / ".processing" / "tmpcd34" / "roll.xlsx"
    for path, text in ((hidden_bill, "what run 1 read"), (hidden_roll, "a roll")):
        path.parent.mkdir(parents=True)
        path.write_text(text)
    (day / "bills.csv").write_text("the corrected file")  # took the plain name later
    read = hashlib.sha256(b"what run 1 read").hexdigest()
    assert locate(hidden_bill, read) == hidden_bill  # before: where it lies

    kept = recover_kept([rejected, day])
    assert sorted(p.name for p in kept) == sorted(
        [
            f"{read[:8]}-bills.csv",
            versioned_name(hashlib.sha256(b"a roll").hexdigest(), "roll.xlsx"),
        ]
    )
    assert not list(tmp_path.rglob(".processing"))
    # After: from the path the ledger recorded, whichever it was, those bytes and no others.
    for recorded in (hidden_bill, day / "bills.csv"):
        assert locate(recorded, read) == day / f"{read[:8]}-bills.csv"
    assert locate(day / "bills.csv", hashlib.sha256(b"the corrected file").hexdigest()) == (
        day / "bills.csv"
    )
    assert locate(day / "bills.csv", "0" * 64) is None and locate(None, read) is None
    assert candidates(day / f"{read[:8]}-bills.csv", read) == [day / f"{read[:8]}-bills.csv"]
    assert recover_kept([tmp_path / "nowhere"]) == []


# --- against the sandbox -------------------------------------------------------------------------


def test_a_corrected_file_of_the_same_name_never_takes_the_place_of_the_version_a_run_read(
    sandbox: RunningSandbox, tmp_path: Path
) -> None:
    """The clerk's day of #36: a bill file with two unknown vendors and one unreadable
    amount; aliases and `tieout retry`; then the corrected file, of the same name, the same
    day. Both versions are kept, each under its own sha8; run 1's summary.json, its report's
    links and `tieout trace` of a run-1 record lead to the bytes run 1 read; no hidden folder
    is left; each errors file lies beside the version it describes."""
    env = env_for(sandbox)
    data = tmp_path / "data"
    inbox = data / "inbox"
    inbox.mkdir(parents=True)
    bad, corrected = the_bad_file()
    (inbox / "bills.csv").write_text(bad)
    first = run_cli("--data-dir", str(data), "run", env=env)
    assert first.returncode == 1, first.stdout + first.stderr
    run1 = summary_of(first.stdout)["run_id"]
    assert not hidden(data)
    (data / "mappings").mkdir()
    (data / "mappings" / "vendors.csv").write_text(
        "spreadsheet_name,propexo_name\n"
        "Acme Plumbng,ACME Plumbing LLC\n"
        "Harbour Pest Ctrl,Harbor Pest Control\n"
    )
    second = run_cli("--data-dir", str(data), "retry", "bills.csv", env=env)
    assert second.returncode == 1, second.stdout + second.stderr  # the amount is still open
    run2 = summary_of(second.stdout)["run_id"]
    assert not hidden(data), "the retry left the version it read in a hidden folder"
    (inbox / "bills.csv").write_text(corrected)
    third = run_cli("--data-dir", str(data), "run", env=env)
    assert third.returncode == 0, third.stdout + third.stderr
    run3 = summary_of(third.stdout)["run_id"]
    assert len(never_twice(sandbox)) == 12
    assert not hidden(data)

    (one,) = on_disk(data, run1)["files"]
    (retried,) = on_disk(data, run2)["files"]
    (three,) = on_disk(data, run3)["files"]
    assert one["name"] == retried["name"] == three["name"] == "bills.csv"
    assert one["sha256"] == retried["sha256"] != three["sha256"]
    day = Path(one["moved_to"]).parent
    assert Path(one["moved_to"]) == day / f"{one['sha256'][:8]}-bills.csv"
    assert Path(three["moved_to"]) == day / f"{three['sha256'][:8]}-bills.csv"
    assert retried["moved_to"] == one["moved_to"]  # read again where it is kept
    for summary in (one, three):
        assert sha256(Path(summary["moved_to"])) == summary["sha256"]
    assert sorted(p.name for p in day.iterdir() if not p.name.endswith(".errors.csv")) == sorted(
        [Path(one["moved_to"]).name, Path(three["moved_to"]).name]
    )
    # Each report's links open the bytes that run read.
    for run_id, summary in ((run1, one), (run2, retried), (run3, three)):
        links = file_links(data, run_id)
        assert links, run_id
        assert {sha256(link) for link in links} == {summary["sha256"]}
    # `tieout trace` of a record run 1 posted reads run 1's bytes, and says so.
    traced = run_cli("--data-dir", str(data), "trace", "W-2026117", "--json", env=env)
    assert traced.returncode == 0, traced.stdout + traced.stderr
    (bill,) = json.loads(traced.stdout)
    assert bill["file_sha256"] == one["sha256"] and bill["note"] is None
    assert bill["archived"] == one["moved_to"] and sha256(Path(bill["archived"])) == one["sha256"]
    assert bill["lines"][0]["values_as_read"]["H5"] == "1,126.59"
    # The errors file lies beside the version it describes: run 1's (now the one row still
    # open after the retry, the amount typed 92.385); the corrected file has none.
    errors = Path(one["moved_to"] + ".errors.csv").read_text()
    assert "92.385" in errors
    assert not Path(three["moved_to"] + ".errors.csv").exists()
    assert not (day / "bills.csv.errors.csv").exists()

    # A ledger written before kept versions: run 1 recorded the plain name, which a later file
    # took; the retry recorded the hidden folder it left the version in.
    kept = Path(one["moved_to"])
    left = day / ".processing" / "tmp0001" / "bills.csv"
    left.parent.mkdir(parents=True)
    kept.rename(left)
    (day / "bills.csv").write_bytes(Path(three["moved_to"]).read_bytes())
    with sqlite3.connect(data / "ledger.sqlite") as db:
        db.execute(
            "UPDATE files SET moved_to = ? WHERE sha256 = ?",
            (str(day / "bills.csv"), one["sha256"]),
        )
        db.execute(
            "UPDATE file_passes SET moved_to = ? WHERE sha256 = ?", (str(left), one["sha256"])
        )
    # The next run puts the hidden version in view, under its kept name, and every reader
    # finds run 1's bytes from what the ledger recorded.
    assert run_cli("--data-dir", str(data), "run", env=env).returncode == 0
    assert not hidden(data) and sha256(kept) == one["sha256"]
    rebuilt = run_cli("--data-dir", str(data), "report", run1, env=env)
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert on_disk(data, run1)["files"][0]["moved_to"] == str(kept)
    assert {sha256(link) for link in file_links(data, run1)} == {one["sha256"]}
    traced = run_cli("--data-dir", str(data), "trace", "W-2026117", "--json", env=env)
    (bill,) = json.loads(traced.stdout)
    assert bill["archived"] == str(kept) and bill["note"] is None
    # A kept version altered, or removed, by hand: trace says so rather than read other bytes.
    original = kept.read_bytes()
    kept.write_bytes(original.replace(b"1,126.59", b"1,126.60"))
    plain = day / "bills.csv"
    for expected, then in (
        (f"{kept} is not the file that was read (its sha256 differs)", kept),
        (f"{plain} is not the file that was read (its sha256 differs)", plain),
        (f"the archived copy is not at {plain}", None),
    ):
        traced = run_cli("--data-dir", str(data), "trace", "W-2026117", "--json", env=env)
        (bill,) = json.loads(traced.stdout)
        assert bill["note"] == expected and not bill["lines"] and not bill["cells"], bill
        if then is not None:
            then.unlink()
    kept.write_bytes(original)


def test_a_refused_file_keeps_each_version_beside_its_errors_file_and_one_that_posts_is_archived(
    sandbox: RunningSandbox, tmp_path: Path
) -> None:
    """A file nothing of which can be used (its one vendor unknown) is kept as
    ``rejected/<sha8>-<name>`` beside its errors file; after the alias, `tieout retry` posts
    it, reading it where it is kept (no hidden folder), and keeps a copy in the archive; a
    file that cannot be read at all, dropped twice with other bytes, is two versions each with
    its own errors file."""
    env = env_for(sandbox)
    data = tmp_path / "data"
    inbox = data / "inbox"
    inbox.mkdir(parents=True)
    write_bills(inbox / "b.csv", ["Acme Plumbng,C-9,11/03/2026,,Maple Court,5100,x,10.00"])
    (inbox / "garbage.xlsx").write_bytes(b"PK\x03\x04 not a workbook")
    first = run_cli("--data-dir", str(data), "run", env=env)
    assert first.returncode == 1, first.stdout + first.stderr
    run1 = summary_of(first.stdout)["run_id"]
    (refused,) = on_disk(data, run1)["files"]
    kept = Path(refused["moved_to"])
    assert kept == data / "rejected" / f"{refused['sha256'][:8]}-b.csv"
    assert sha256(kept) == refused["sha256"]
    assert "Acme Plumbng" in Path(f"{kept}.errors.csv").read_text()
    (inbox / "garbage.xlsx").write_bytes(b"PK\x03\x04 another bad workbook")
    assert run_cli("--data-dir", str(data), "run", env=env).returncode == 1
    garbage = sorted(p for p in (data / "rejected").iterdir() if "garbage" in p.name)
    shas = [
        hashlib.sha256(b)
        for b in (b"PK\x03\x04 not a workbook", b"PK\x03\x04 another bad workbook")
    ]
    names = [f"{h.hexdigest()[:8]}-garbage.xlsx" for h in shas]
    assert [p.name for p in garbage] == sorted([*names, *(f"{n}.errors.csv" for n in names)])

    # `tieout retry` reads the kept version, sha256 checked: gone, or other bytes, it says so.
    aside = tmp_path / "aside.csv"
    kept.rename(aside)
    gone = run_cli("--data-dir", str(data), "retry", "b.csv", env=env)
    assert gone.returncode == 2 and f"is not at {kept}" in gone.stderr, gone.stderr
    kept.write_text("other bytes")
    other = run_cli("--data-dir", str(data), "retry", "b.csv", env=env)
    assert other.returncode == 2 and "has changed since it was archived" in other.stderr
    kept.unlink()
    aside.rename(kept)
    (data / "mappings").mkdir()
    (data / "mappings" / "vendors.csv").write_text(
        "spreadsheet_name,propexo_name\nAcme Plumbng,ACME Plumbing LLC\n"
    )
    retried = run_cli("--data-dir", str(data), "retry", "b.csv", env=env)
    assert retried.returncode == 0, retried.stdout + retried.stderr
    run2 = summary_of(retried.stdout)["run_id"]
    assert len(never_twice(sandbox)) == 1
    assert not hidden(data), "the retry left the version it read in a hidden folder"
    # Run 1's version stays where run 1's report points; the posted one is in the archive too.
    assert sha256(kept) == refused["sha256"]
    assert {sha256(link) for link in file_links(data, run1)} == {refused["sha256"]}
    (posted,) = on_disk(data, run2)["files"]
    assert posted["name"] == "b.csv" and posted["rows_used"] == 1
    archived = Path(posted["moved_to"])
    assert archived.parent.parent == data / "archive" and archived.name == kept.name
    assert sha256(archived) == refused["sha256"]
    assert {sha256(link) for link in file_links(data, run2)} == {refused["sha256"]}
