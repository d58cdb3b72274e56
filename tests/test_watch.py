"""`tieout watch`: runs on files that stayed unchanged for an interval, never on lock or
partial files."""

from __future__ import annotations

from pathlib import Path

import httpx

from pipelines.runs.watch import watch_inbox
from sandbox.server import RunningSandbox
from tests.conftest import settings_for, write_bills

LINE = "ACME Plumbing LLC,W-{n},11/03/2026,,Maple Court,5100,x,10.00"


def test_watch_runs_on_a_settled_file_only_and_ignores_lock_and_partial_files(
    sandbox: RunningSandbox, api: httpx.Client, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    inbox = data / "inbox"
    inbox.mkdir(parents=True)
    settled = write_bills(inbox / "bills.csv", [LINE.format(n=1)])
    growing = write_bills(inbox / "growing.csv", [LINE.format(n=2)])
    lock = inbox / "~$rent_roll.xlsx"  # Excel's lock file while a person has it open
    lock.write_bytes(b"\x00lock")
    partial = write_bills(inbox / "bills2.csv.part", [LINE.format(n=3)])  # a copy under way
    said: list[str] = []
    errors: list[BaseException] = []
    pauses = 0

    def pause(_: float) -> None:
        nonlocal pauses
        pauses += 1
        if pauses == 1:  # still being written between the first and the second look
            with growing.open("a", encoding="utf-8") as out:
                out.write(LINE.format(n=4) + "\n")

    watch_inbox(
        write_settings := settings_for(sandbox, data),
        interval_s=0,
        reconcile_every_s=3600,
        say=said.append,
        on_error=errors.append,
        sleep=pause,
        cycles=2,
    )
    assert errors == []
    runs = [line for line in said if line.startswith("run ")]
    assert len(runs) == 1, said  # one run, on the second look
    assert "report: " in runs[0]
    assert not settled.exists()  # taken and archived
    assert growing.exists() and lock.exists() and partial.exists()
    posted = api.get("/_sandbox/records").json()["results"]
    assert len(posted) == 1
    assert write_settings.archive_dir.exists()
