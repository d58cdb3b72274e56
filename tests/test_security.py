"""Hostile and broken input: fuzzing, limits, and the protections each have a test that fails
without them."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import tempfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.core.errors import InputError
from pipelines.core.parsing import format_cents, parse_dates, parse_money
from pipelines.kinds import registered
from pipelines.reading.extract import extract_file
from pipelines.reading.grids import Limits, fingerprint
from pipelines.reading.profiles import BUILTIN_PROFILES_DIR, load_profiles
from tests.conftest import SAMPLES, TEST_DATA

PROFILES = load_profiles(BUILTIN_PROFILES_DIR, kinds=registered())
# The example budget comes from the hypothesis profile: "default" (60) in `make test`,
# "fuzz" (2,000) in `make fuzz`.
FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def read(path: Path, limits: Limits | None = None):  # type: ignore[no-untyped-def]
    return extract_file(fingerprint(path), PROFILES, limits=limits or Limits())


@FUZZ
@given(data=st.binary(max_size=4096), suffix=st.sampled_from([".csv", ".xlsx", ".txt"]))
def test_random_bytes_are_a_clear_rejection_or_a_result(
    tmp_path: Path, data: bytes, suffix: str
) -> None:
    path = tmp_path / f"fuzz{suffix}"
    path.write_bytes(data)
    try:
        result = read(path)
    except InputError as exc:
        assert str(exc).startswith("fuzz")  # one clear message naming the file
    else:
        assert result.rows_read == len(result.rows) + len(result.skipped)


cell = st.one_of(
    st.text(max_size=12),
    st.sampled_from(
        ["$1,234.56", "(45.00)", "-", "12.345", "=1+1", "1/1/1970", "", "Total", "-> Group"]
    ),
)


@FUZZ
@given(
    rows=st.lists(st.lists(cell, min_size=8, max_size=8), max_size=30),
    delimiter=st.sampled_from([",", ";", "\t", "|"]),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "cp1252"]),
    newline=st.sampled_from(["\n", "\r\n"]),
)
def test_random_bill_sheets_always_add_up(
    tmp_path: Path, rows, delimiter, encoding, newline
) -> None:  # type: ignore[no-untyped-def]
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator=newline)
    writer.writerow(
        [
            "Vendor",
            "Invoice #",
            "Invoice Date",
            "Due Date",
            "Property",
            "GL Account",
            "Description",
            "Amount",
        ]
    )
    writer.writerows(rows)
    path = tmp_path / "bills.csv"
    path.write_bytes(buffer.getvalue().encode(encoding, errors="replace"))
    try:
        extracted = read(path)
    except InputError:
        return
    validated = registered().validate(extracted)
    from pipelines.runs.files import account_rows

    outcome = account_rows(extracted, validated, validated.issues)  # raises if it does not add up
    assert outcome.rows_read == outcome.rows_used + outcome.rows_rejected + outcome.rows_skipped


@FUZZ
@given(text=st.text(max_size=20))
def test_money_parser_never_raises_and_never_changes_a_value_silently(text: str) -> None:
    cents, error = parse_money(pd.Series([text], dtype=object))
    value = cents.iloc[0]
    assert pd.isna(value) or pd.isna(error.iloc[0])
    if not pd.isna(value):
        # Whatever it accepted, it reads back the same when written plainly.
        again, _ = parse_money(pd.Series([format_cents(int(value))], dtype=object))
        assert again.iloc[0] == value


@FUZZ
@given(
    values=st.lists(
        st.one_of(
            st.text(max_size=25),
            st.integers(-(10**7), 10**7),
            st.floats(allow_nan=True, allow_infinity=True),
        ),
        max_size=20,
    )
)
def test_date_parser_never_raises(values: list[object]) -> None:
    iso, error = parse_dates(pd.Series(values, dtype=object))
    assert len(iso) == len(values) and len(error) == len(values)


def test_a_zip_bomb_is_refused_before_it_is_unpacked(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.xlsx"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/worksheets/sheet1.xml", b"0" * (60 * 2**20))  # 60 MB of zeros
    assert bomb.stat().st_size < 2**20
    with pytest.raises(InputError, match="zip bomb"):
        read(bomb)


def test_size_row_column_and_cell_limits(tmp_path: Path) -> None:
    sample = tmp_path / "bills.csv"
    sample.write_bytes((SAMPLES / "vendor_bills.csv").read_bytes())
    with pytest.raises(InputError, match="the limit is 0 MB"):
        read(sample, Limits(max_file_bytes=100))
    with pytest.raises(InputError, match="rows; the limit is 10"):
        read(sample, Limits(max_rows=10))
    with pytest.raises(InputError, match="columns; the limit is 4"):
        read(sample, Limits(max_columns=4))
    with pytest.raises(InputError, match="characters; the limit is 5"):
        read(sample, Limits(max_cell_chars=5))
    assert read(sample).rows_read == 30


def test_a_workbook_with_the_wrong_extension_is_read_by_its_content(tmp_path: Path) -> None:
    disguised = tmp_path / "rent_roll.csv"
    disguised.write_bytes((SAMPLES / "rent_roll.xlsx").read_bytes())
    assert read(disguised).profile == "tieout_rent_roll"


def test_sandbox_compares_tokens_in_constant_time() -> None:
    import inspect

    from sandbox import app

    source = inspect.getsource(app.Gate.__call__)
    assert "hmac.compare_digest" in source and "== self.config.token" not in source


def test_an_xml_entity_bomb_is_not_expanded(tmp_path: Path) -> None:
    from openpyxl import Workbook

    plain = tmp_path / "plain.xlsx"
    wb = Workbook()
    wb.active.append(["Vendor", "Amount"])
    wb.save(plain)
    lol = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))
    bomb_dtd = f'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY l0 "lol">{lol}]>'
    bomb = tmp_path / "bomb.xlsx"
    with (
        zipfile.ZipFile(plain) as source,
        zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as target,
    ):
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                text = data.decode()
                body = text.split("?>", 1)[1] if text.startswith("<?xml") else text
                data = (bomb_dtd + body.replace("Vendor", "&l9;")).encode()
            target.writestr(item, data)
    started = time.monotonic()
    with pytest.raises(InputError):  # refused or read without expansion, never a billion "lol"s
        read(bomb)
    assert time.monotonic() - started < 5


# Cells a clerk's spreadsheet could split or run: control characters around formula leaders.
hostile_cell = st.text(
    alphabet=st.sampled_from(["=", "+", "-", "@", "\t", "\r", "\n", '"', ",", "a", "1", " "]),
    max_size=12,
)


def _leads_a_formula(cell: str) -> bool:
    return cell.startswith(("=", "+", "-", "@", "\t", "\r"))


@given(cells=st.lists(hostile_cell, min_size=1, max_size=6))
def test_no_csv_tieout_writes_can_hold_a_live_formula(cells: list[str]) -> None:
    """#20 item 4: a bare CR ended the row in a spreadsheet, and `=2+2` became a formula."""
    from pipelines.reporting.render import render_rejects_csv
    from pipelines.runs.files import errors_file_bytes

    rejected = pd.DataFrame(
        {
            "source_file": cells,
            "source_row": range(2, 2 + len(cells)),
            "message": cells,
            "column_name": "amount",
            "value": cells,
        }
    )
    written = {
        "rejects.csv": render_rejects_csv(rejected),
        "errors.csv (file)": errors_file_bytes(None, [], cells[0]),
    }
    for name, data in written.items():
        text = data.decode("utf-8-sig")
        rows = list(csv.reader(io.StringIO(text, newline="")))
        # Read back exactly: one row per record (a CR or LF stayed inside its cell) ...
        assert len(rows) == 1 + (len(cells) if name == "rejects.csv" else 1), (name, text)
        for row in rows[1:]:
            for cell in row:
                # ... and no cell a spreadsheet would run.
                assert not _leads_a_formula(cell), (name, cell)
        # What was written is what was given, behind the one neutralising quote.
        if name == "rejects.csv":
            assert [r[2] for r in rows[1:]] == [
                "'" + c if _leads_a_formula(c) else c for c in cells
            ]
        # A cell holding a CR or LF is quoted in the raw text: Excel and LibreOffice split
        # rows on a bare one.
        for cell in cells if name == "rejects.csv" else cells[:1]:
            if "\r" in cell or "\n" in cell:
                shown = "'" + cell if _leads_a_formula(cell) else cell
                assert '"' + shown.replace('"', '""') + '"' in text, (name, cell)


# --- typed cells: every workbook a person could export is read or refused, never a crash ------


class _Error(str):
    """An error cell ("#REF!"), as Excel stores it."""


class _Formula(str):
    """A formula without its value, as a program that never calculates writes it."""


_HEADERS = [
    "Property",
    "Unit",
    "Resident",
    "Tenant",
    "Rent",
    "Parking",
    "Pet Fee",
    "Amount",
    "Charge Code",
    "Charge Date",
    "Vendor",
    "Invoice #",
    "Invoice Date",
    "Due Date",
    "Description",
    "GL Account",
    "Lease / From",
    "Move / In",
    "Status",
    "Total",
]
_WORDS = [
    "$1,234.56",
    "(45.00)",
    "1,200.00",
    "12.345",
    "0324",
    "Total",
    "Grand Total",
    "14 Units",
    "-> Oak Ridge Apartments",
    "Vacant",
    "Oak Ridge Apartments",
    "As of 12/01/2026",
    "1/1/1970",
]
# What openpyxl can write: no control characters but tab, CR and LF.
_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), max_codepoint=0x2FFF), max_size=14
)
typed_cell = st.one_of(
    st.none(),
    _TEXT,
    st.sampled_from(_WORDS),
    st.integers(-(10**15), 10**15),
    st.integers(10**15, 10**40),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.decimals(places=2, min_value=-(10**9), max_value=10**9, allow_nan=False),
    st.dates(min_value=dt.date(1900, 3, 1)),
    st.datetimes(min_value=dt.datetime(1900, 3, 1)),
    st.times(),
    st.timedeltas(min_value=dt.timedelta(0), max_value=dt.timedelta(days=900)),
    st.booleans(),
    st.sampled_from(["#REF!", "#N/A", "#DIV/0!", "#VALUE!", "#NAME?"]).map(_Error),
    st.sampled_from(["=A2*2", "=SUM(D2:D9)", '=IF(A2="","",A2)']).map(_Formula),
    _TEXT.map(lambda t: ("rich", t)),
)


@st.composite
def typed_sheets(draw: st.DrawFn) -> dict[str, Any]:
    """A sheet as an export might be: a title block (perhaps merged across), one or two header
    rows, rows of typed cells, merged ranges and hidden rows; perhaps a second, hidden sheet."""
    width = draw(st.integers(1, 7))
    headers = draw(
        st.lists(st.one_of(st.sampled_from(_HEADERS), _TEXT), min_size=width, max_size=width)
    )
    titles = draw(
        st.lists(
            st.sampled_from(
                [
                    "Rent Roll",
                    "Resident Lease Expirations",
                    "As of 12/01/2026",
                    "Properties: Oak Ridge Apartments",
                ]
            ),
            max_size=2,
        )
    )
    second = draw(
        st.none()
        | st.lists(st.sampled_from(["", "From", "In", "Amount"]), min_size=width, max_size=width)
    )
    rows = draw(st.lists(st.lists(typed_cell, min_size=width, max_size=width), max_size=12))
    height = len(titles) + 1 + (second is not None) + len(rows)
    merges = draw(
        st.lists(
            st.tuples(
                st.integers(1, height), st.integers(1, width), st.integers(0, 2), st.integers(0, 3)
            ),
            max_size=3,
        )
    )
    return {
        "titles": titles,
        "merge_titles": draw(st.booleans()),
        "headers": headers,
        "second": second,
        "rows": rows,
        "merges": merges,
        "hidden_rows": draw(st.lists(st.integers(1, height), max_size=2)),
        "hidden_sheet": draw(st.sampled_from([None, "visible", "hidden"])),
    }


def _write_xlsx(path: Path, sheet: dict[str, Any]) -> None:
    from openpyxl import Workbook
    from openpyxl.cell.rich_text import CellRichText, TextBlock
    from openpyxl.cell.text import InlineFont

    wb = Workbook()
    ws = wb.active
    width = len(sheet["headers"])
    lines = [[t] for t in sheet["titles"]] + [sheet["headers"]]
    lines += [sheet["second"]] if sheet["second"] is not None else []
    for n, line in enumerate(lines + sheet["rows"], start=1):
        for c, value in enumerate(line, start=1):
            target = ws.cell(row=n, column=c)
            if isinstance(value, tuple):
                target.value = CellRichText([TextBlock(InlineFont(b=True), value[1] or "x"), " y"])
            elif isinstance(value, _Error):
                target.value = str(value)
                target.data_type = "e"
            else:
                target.value = value
    if sheet["merge_titles"] and width > 1:
        for n in range(1, len(sheet["titles"]) + 1):
            ws.merge_cells(start_row=n, start_column=1, end_row=n, end_column=width)
    taken: set[tuple[int, int]] = (
        {(n, c) for n in range(1, len(sheet["titles"]) + 1) for c in range(1, width + 1)}
        if sheet["merge_titles"]
        else set()
    )
    for row, column, down, across in sheet["merges"]:
        last_row, last_column = row + down, min(column + across, width)
        cells = {(r, c) for r in range(row, last_row + 1) for c in range(column, last_column + 1)}
        if len(cells) > 1 and not cells & taken:
            ws.merge_cells(
                start_row=row, start_column=column, end_row=last_row, end_column=last_column
            )
            taken |= cells
    for row in sheet["hidden_rows"]:
        ws.row_dimensions[row].hidden = True
    if sheet["hidden_sheet"]:
        extra = wb.create_sheet("Notes")
        extra.append(["Notes", "Unit", "Amount"])
        extra.append(["see the roll", "101", 5])
        extra.sheet_state = "hidden" if sheet["hidden_sheet"] == "hidden" else "visible"
    wb.save(path)


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, tuple):
        return str(value[1])
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return f"{value.month}/{value.day}/{value.year}"
    return str(value)


def _write_csv(path: Path, sheet: dict[str, Any], encoding: str) -> None:
    lines = [[t] for t in sheet["titles"]] + [sheet["headers"]]
    lines += [sheet["second"]] if sheet["second"] is not None else []
    buffer = io.StringIO()
    csv.writer(buffer).writerows([[_as_text(v) for v in line] for line in lines + sheet["rows"]])
    path.write_bytes(buffer.getvalue().encode(encoding, errors="replace"))


def _ends_cleanly(result: Any, what: str) -> None:
    """A parse (exit 0 or 1) or one clear refusal (exit 2, `tieout: <file>: ...`)."""
    text = result.output
    assert "internal error" not in text and "Traceback" not in text, (what, text)
    assert result.exit_code in (0, 1, 2), (what, result.exit_code, text, result.exception)
    if result.exit_code == 2:
        assert text.count("tieout: ") == 1, (what, text)


@pytest.fixture(scope="module")
def online_env() -> Iterator[dict[str, str]]:
    """The environment of a `tieout check` against a real sandbox (for the module)."""
    from sandbox.faults import SandboxConfig
    from sandbox.server import running_sandbox

    with running_sandbox(SandboxConfig(rate_limit=100_000)) as box:
        yield {
            "PROPEXO_BASE_URL": box.base_url,
            "PROPEXO_API_TOKEN": box.config.token,
            "TIEOUT_CONFIG": str(TEST_DATA / "tieout-test.toml"),
        }


# In `make test` a short budget (the whole test stays under ~30 s on an idle machine);
# `make fuzz` (HYPOTHESIS_PROFILE=fuzz) gives it the fuzz profile's.
TYPED = settings(
    deadline=None,
    max_examples=(
        settings.default.max_examples if os.environ.get("HYPOTHESIS_PROFILE") == "fuzz" else 20
    ),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@TYPED
@given(
    sheet=typed_sheets(),
    as_csv=st.booleans(),
    period=st.booleans(),
    encoding=st.sampled_from(["utf-8", "cp1252", "utf-16"]),
)
def test_any_typed_workbook_is_read_or_refused_never_a_crash(
    online_env: dict[str, str], sheet: dict[str, Any], as_csv: bool, period: bool, encoding: str
) -> None:
    """#31: `check`, `check --offline` and `profile init` (and `check` with its draft) on
    XLSX and CSV files of random typed cells: each ends in a parse or one clear refusal."""
    from click.testing import CliRunner

    from pipelines.cli.main import cli

    runner = CliRunner()
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder)
        path = data / ("roll.csv" if as_csv else "roll.xlsx")
        if as_csv:
            _write_csv(path, sheet, encoding)
        else:
            _write_xlsx(path, sheet)
        base = ["--data-dir", str(data)]
        reading = ["--period", "2026-12"] if period else []
        offline = runner.invoke(
            cli,
            [*base, "check", "--offline", *reading, str(path)],
            env={"TIEOUT_CONFIG": str(data / "none.toml")},
        )
        _ends_cleanly(offline, "check --offline")
        online = runner.invoke(cli, [*base, "check", *reading, str(path)], env=online_env)
        _ends_cleanly(online, "check")
        draft = data / "draft.toml"
        drafted = runner.invoke(cli, [*base, "profile", "init", str(path), "--out", str(draft)])
        _ends_cleanly(drafted, "profile init")
        if drafted.exit_code == 0:
            tried = runner.invoke(
                cli,
                [*base, "check", "--offline", *reading, "--profile", str(draft), str(path)],
                env={"TIEOUT_CONFIG": str(data / "none.toml")},
            )
            _ends_cleanly(tried, "check --profile draft")


# --- hostile files ---------------------------------------------------------------------------


def _run_env(box: Any) -> dict[str, str]:
    return {"PROPEXO_BASE_URL": box.base_url, "PROPEXO_API_TOKEN": box.config.token}


def test_a_link_out_of_the_inbox_is_refused_left_and_never_read(
    sandbox: Any, tmp_path: Path
) -> None:
    """#31: a link in the inbox to a system file had that file's lines quoted in the console
    and in errors.csv."""
    from tests.conftest import run_cli, write_bills

    (tmp_path / "elsewhere").mkdir()
    secret = write_bills(
        tmp_path / "elsewhere" / "secret.csv", ["TOPSECRET-7731,INV-1,1/2/2026,,Oak,5000,x,nope"]
    )
    before = secret.read_bytes()
    data = tmp_path / "data"
    (data / "inbox").mkdir(parents=True)
    link = data / "inbox" / "passwd.csv"
    link.symlink_to(secret)
    (data / "inbox" / "gone.csv").symlink_to(tmp_path / "nothing-here.csv")  # broken
    result = run_cli("--data-dir", str(data), "run", env=_run_env(sandbox))
    said = result.stdout + result.stderr
    assert result.returncode == 1, said  # each refused link is an open item (#36)
    assert "passwd.csv: a link to a file outside the inbox; refused and left" in said
    assert "gone.csv: a link to a file outside the inbox" in said
    assert "TOPSECRET" not in said
    for written in data.rglob("*"):
        if written.is_file() and not written.is_symlink():
            assert b"TOPSECRET" not in written.read_bytes(), written
    assert link.is_symlink() and secret.read_bytes() == before


def test_control_characters_in_a_name_are_escaped_wherever_it_is_shown(
    sandbox: Any, tmp_path: Path
) -> None:
    """#31: an ESC and a newline in a file's name crashed the report (openpyxl's
    IllegalCharacterError), blocked `tieout report` for that run for good, and forged console
    lines."""
    from tests.conftest import SAMPLES, run_cli, write_bills

    data = tmp_path / "data"
    (data / "inbox").mkdir(parents=True)
    name = "bills\x1b[2J\nFORGED: run complete\u202e.csv"
    source = (SAMPLES / "vendor_bills.csv").read_text(encoding="utf-8").splitlines()
    write_bills(data / "inbox" / name, [*source[1:], "Acme Pest,INV-X,1/2/2026,,Oak,5000,x,nope"])
    result = run_cli("--data-dir", str(data), "run", env=_run_env(sandbox))
    said = result.stdout + result.stderr
    assert result.returncode in (0, 1), said
    assert "internal error" not in said
    assert "\x1b" not in said and "\u202e" not in said
    assert not any(line.startswith("FORGED") for line in said.splitlines())
    shown = "bills\\x1b[2J\\nFORGED: run complete\\u202e.csv"
    assert f"{shown}: " in said
    reports = [d for d in (data / "reports").iterdir() if d.is_dir()]
    assert len(reports) == 1
    folder = reports[0]
    summary = json.loads((folder / "summary.json").read_text())
    assert [f["name"] for f in summary["files"]] == [shown]
    for written in ("report.html", "rejects.csv", "summary.json"):
        text = (folder / written).read_text(encoding="utf-8-sig")
        assert "\x1b" not in text and "\u202e" not in text, written
        assert "FORGED" in text  # the name is shown, escaped
    from openpyxl import load_workbook

    cells = [
        str(c.value)
        for ws in load_workbook(folder / "report.xlsx").worksheets
        for row in ws.iter_rows()
        for c in row
    ]
    assert any(shown in c for c in cells)
    again = run_cli("--data-dir", str(data), "report", env=_run_env(sandbox))
    assert again.returncode == 0, again.stdout + again.stderr


def test_a_very_wide_csv_is_refused_by_its_first_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """#31: a 100,000-column CSV took 116 s and 1 GB to be refused, saying "Headers found:
    none". The column limit is checked on the first line, before the file is parsed."""
    from pipelines.reading import grids

    def parsed(*args: object, **kwargs: object) -> None:
        raise AssertionError("the whole file was parsed")

    monkeypatch.setattr(grids, "_read_csv_arrow", parsed)
    monkeypatch.setattr(grids.pd, "read_csv", parsed)
    wide = tmp_path / "wide.csv"
    cells = ",".join(f"c{i}" for i in range(100_000))
    wide.write_text(f"{cells}\n{cells}\n", encoding="utf-8")
    with pytest.raises(InputError) as refused:
        read(wide)
    message = str(refused.value)
    assert message.startswith("wide.csv: its first line has ")
    assert "or more columns; the limit is 1,000" in message
    # Within the head, the exact width is said.
    narrow = tmp_path / "narrow.csv"
    narrow.write_text("Vendor," * 1500 + "Amount\n1,2\n", encoding="utf-8")
    with pytest.raises(InputError, match="its first line has 1,501 or more columns"):
        read(narrow)
