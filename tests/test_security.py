"""Hostile and broken input: fuzzing, limits, and the protections each have a test that fails
without them."""

from __future__ import annotations

import csv
import io
import time
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.errors import InputError
from pipelines.extract import extract_file
from pipelines.flows import validate
from pipelines.grids import Limits, fingerprint
from pipelines.parsing import format_cents, parse_dates, parse_money
from pipelines.profiles import BUILTIN_PROFILES_DIR, load_profiles
from tests.conftest import SAMPLES

PROFILES = load_profiles(BUILTIN_PROFILES_DIR)
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
    validated = validate(extracted)
    from pipelines.files import account_rows

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
    from pipelines.files import errors_file_bytes
    from pipelines.render import render_rejects_csv

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
