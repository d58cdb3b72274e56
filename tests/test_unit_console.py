"""What the person at the terminal sees, in process: one line per failure with its exit code
and never a traceback; a full disk or a held ledger said as what it is, wherever it hides in
the chain; a crash report written where it can be; progress lines for cron on a clock the
test moves; ages in words."""

from __future__ import annotations

import errno
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import pytest

from pipelines.cli import console
from pipelines.core.config import Settings
from pipelines.core.errors import ConfigError, DiskFullError, LedgerBusyError, LockHeldError
from pipelines.runs import status


@pytest.fixture
def crash_dir(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "data" / "logs"
    before = console.CRASH_DIR[0]
    console.CRASH_DIR[0] = folder
    try:
        yield folder
    finally:
        console.CRASH_DIR[0] = before


def run_friendly(error: BaseException) -> int:
    with pytest.raises(SystemExit) as stopped, console.friendly():
        raise error
    code = stopped.value.code
    assert isinstance(code, int)
    return code


def test_an_expected_failure_is_one_line_with_its_exit_code(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run_friendly(ConfigError("batch_size: expected a whole number")) == 2
    assert run_friendly(LockHeldError("another tieout run is running")) == 3
    said = capsys.readouterr().err
    assert said.splitlines() == [
        "tieout: batch_size: expected a whole number",
        "tieout: another tieout run is running",
    ]


def test_a_message_cannot_carry_terminal_codes_or_markup(
    capsys: pytest.CaptureFixture[str],
) -> None:
    run_friendly(ConfigError("file [bold]x[/bold]\x1b[2J.csv"))
    said = capsys.readouterr().err
    assert "[bold]x[/bold]" in said
    assert "\x1b[2J" not in said and "\\x1b[2J" in said


def test_an_interrupt_says_nothing_is_lost(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_friendly(KeyboardInterrupt()) == 130
    assert "nothing half-done is lost" in capsys.readouterr().err


def test_a_bug_is_one_line_and_a_crash_report_for_support(
    capsys: pytest.CaptureFixture[str], crash_dir: Path
) -> None:
    assert run_friendly(ZeroDivisionError("division by zero")) == 2
    said = capsys.readouterr().err
    assert "Traceback" not in said
    assert said.startswith("tieout: internal error (ZeroDivisionError: division by zero).")
    assert "Nothing was lost" in said
    (report,) = crash_dir.iterdir()
    assert f"Details for support: {report}" in said.replace("\n", "")
    assert "Traceback" in report.read_text() and "ZeroDivisionError" in report.read_text()


def test_a_full_disk_hidden_in_a_chain_is_said_as_a_full_disk(
    capsys: pytest.CaptureFixture[str], crash_dir: Path
) -> None:
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as inner:
            raise RuntimeError("pandas could not write") from inner
    except RuntimeError as caught:
        outer = caught
    found = console.environment_error(outer)
    assert isinstance(found, DiskFullError)
    assert f"the disk holding {crash_dir.parent} is full" in str(found)
    assert "KB free" in str(found) and "run the same command again" in str(found)
    assert run_friendly(outer) == found.exit_code
    assert "is full" in capsys.readouterr().err
    assert not crash_dir.exists() or not any(crash_dir.iterdir())


@pytest.mark.parametrize(
    "error",
    [
        sqlite3.OperationalError("database is locked"),
        sqlite3.OperationalError("database is busy"),
        ConfigError("wrapped: database is locked"),
    ],
)
def test_a_held_ledger_is_said_with_what_to_do(error: BaseException) -> None:
    found = console.environment_error(error)
    assert isinstance(found, LedgerBusyError)
    assert found.exit_code == 3
    assert "another process holds the ledger" in str(found)
    assert "fuser" in str(found)


def test_sqlite_s_full_disk_and_a_plain_error_are_told_apart() -> None:
    assert isinstance(
        console.environment_error(sqlite3.OperationalError("database or disk is full")),
        DiskFullError,
    )
    assert console.environment_error(ValueError("nope")) is None


def test_a_chain_that_loops_is_followed_once() -> None:
    a, b = ValueError("a"), ValueError("b")
    a.__context__ = b
    b.__context__ = a
    assert console.environment_error(a) is None
    assert [str(e) for e in console._chain(a)] == ["a", "b"]


def test_free_space_is_measured_on_the_nearest_folder_that_exists(tmp_path: Path) -> None:
    shown = console._free_kb(tmp_path / "not" / "yet" / "made")
    assert shown.replace(",", "").isdigit()


def test_a_crash_report_goes_to_the_temporary_folder_when_the_logs_cannot_be_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, crash_dir: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    console.CRASH_DIR[0] = blocker / "logs"
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    report = console.write_crash_report(ValueError("boom"))
    assert report is not None and report.parent == tmp_path / "tmp"
    assert "ValueError: boom" in report.read_text()


def test_a_watch_cycle_s_failure_is_said_and_watching_goes_on(
    capsys: pytest.CaptureFixture[str], crash_dir: Path
) -> None:
    console.report_cycle_error(ConfigError("no such profile"))
    console.report_cycle_error(KeyError("x"))
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "tieout: no such profile"
    assert lines[1].startswith("tieout: internal error (KeyError: 'x'); details: ")
    assert lines[1].endswith("; still watching")


def test_progress_for_cron_prints_a_line_every_so_often_and_when_done(
    capsys: pytest.CaptureFixture[str],
) -> None:
    now = [100.0]
    update, stop = console.progress(every_s=10.0, clock=lambda: now[0])
    assert update is not None
    update(0, 1000)  # the start: nothing said yet
    now[0] = 105.0
    update(100, 1000)  # too soon
    now[0] = 120.0
    update(400, 1000)
    now[0] = 125.0
    update(1000, 1000)
    stop()
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "posting: 400/1,000 requests, 1,200/min, about 30s left",
        "posting: 1,000/1,000 requests, done",
    ]


def test_progress_with_nothing_done_yet_gives_no_eta(capsys: pytest.CaptureFixture[str]) -> None:
    now = [1.0]
    update, _ = console.progress(every_s=1.0, clock=lambda: now[0])
    assert update is not None
    update(5, 10)
    now[0] = 50.0
    update(5, 10)
    assert capsys.readouterr().out.splitlines() == ["posting: 5/10 requests, 0/min"]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "an unknown time"),
        (0, "0s"),
        (119, "119s"),
        (120, "2 min"),
        (7199, "120 min"),
        (7200, "2.0 h"),
        (90000, "25.0 h"),
    ],
)
def test_ages_in_words(seconds: float | None, text: str) -> None:
    assert console.age_text(seconds) == text


def test_the_age_of_a_stamp() -> None:
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    assert status.age_s("2026-03-01T11:59:00Z", now) == 60.0
    assert status.age_s((now - timedelta(hours=2)).isoformat(), now) == 7200.0
    assert status.age_s(None, now) is None


def test_say_prints_names_as_they_are_never_as_markup(capsys: pytest.CaptureFixture[str]) -> None:
    console.say("[red]bills.csv[/red]\tok\x1b]0;title\x07")
    out = capsys.readouterr().out
    assert out.startswith("[red]bills.csv[/red]")
    assert out.rstrip().endswith("ok\\x1b]0;title\\x07")
    assert "\x1b" not in out and "\x07" not in out


def test_stamped_lines_start_with_local_time(capsys: pytest.CaptureFixture[str]) -> None:
    console.stamped("took bills.csv")
    line = capsys.readouterr().out.strip()
    assert datetime.strptime(line[:19], "%Y-%m-%d %H:%M:%S")
    assert line.endswith(" took bills.csv")


def test_settings_of_a_command_apply_only_the_options_given() -> None:
    base = Settings(batch_size=5)
    ctx = click.Context(click.Command("x"), obj={"settings": base})
    assert console.settings_of(ctx) is base
    assert console.settings_of(ctx, batch_size=None) is base
    assert console.settings_of(ctx, batch_size=9, profile=None).batch_size == 9


def test_the_verdict_and_its_reasons_are_printed_with_amounts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    console.print_verdict(
        {
            "verdict": "needs attention",
            "verdict_reasons": [
                {"reason": "rows rejected [see errors]", "count": 1200, "amount_cents": 123456},
                {"reason": "records missing in Propexo", "count": 2, "amount_cents": 0},
            ],
        }
    )
    assert capsys.readouterr().out.splitlines() == [
        "Needs attention",
        "  1,200 rows rejected [see errors], 1,234.56",
        "  2 records missing in Propexo",
    ]
