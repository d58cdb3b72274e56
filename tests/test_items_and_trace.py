"""The ledger's open items (ledger.items) as events, and the helpers `tieout trace` finds
records and alias lines with (reporting.trace); the packages' own faces."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

from pipelines.core.errors import InputError
from pipelines.core.models import OPEN, SETTLED, SUPERSEDED
from pipelines.ledger import Ledger
from pipelines.ledger.items import ANOTHER_WRITE, item_id, record_items
from pipelines.reporting.trace import _aliases_for, alias_index, alias_lines, find_records
from pipelines.runs.items import new_item


def test_an_item_id_is_stable_and_tells_causes_files_and_rows_apart() -> None:
    one = item_id("bad_row", "a" * 64, 3)
    assert one == item_id("bad_row", "a" * 64, 3) and one.startswith("it-") and len(one) == 15
    assert len({one, item_id("bad_row", "a" * 64, 4), item_id("bad_row", "b" * 64, 3)}) == 3
    assert item_id("empty_file", None, "x") != item_id("refused_link", None, "x")


def test_records_in_doubt_or_refused_become_items_with_their_reasons() -> None:
    items = record_items(
        [
            {"record_key": "k1", "state": "refused", "note": "bad vendor", "source_rows": "[2]"},
            {"record_key": "k2", "state": "sending", "amount_cents": 150, "errors": None},
            {
                "record_key": "k3",
                "state": "sending",
                "errors": f'["{ANOTHER_WRITE}: job j9"]',
                "source_rows": [4, 5],
            },
            {"record_key": "k4", "state": "held", "errors": "not json"},
        ]
    )
    assert [i["cause"] for i in items] == [
        "write_refused",
        "in_doubt",
        "answer_for_another_write",
        "held",
    ]
    assert items[0]["rows"] == [2] and items[0]["detail"]["reasons"] == ["bad vendor"]
    assert items[1]["amount_cents"] == 150 and items[1]["detail"]["reasons"] == ["sending"]
    assert items[2]["rows"] == [4, 5]
    assert items[2]["detail"]["reasons"] == ["sending", f"{ANOTHER_WRITE}: job j9"]
    assert all(i["state"] == OPEN for i in items)


def test_an_item_is_opened_seen_settled_and_met_again_as_events(ledger_url: str) -> None:
    sha = "c" * 64
    bad = new_item("bad_row", sha, "bills.csv", 3, rows=(3,), amount_cents=500)
    other = new_item("bad_row", sha, "bills.csv", 4, rows=(4,), amount_cents=700)
    with Ledger(ledger_url) as ledger:
        assert ledger.observe_items("r1", [bad, other]) == {"opened": 2, "seen": 0, "settled": 0}
        assert ledger.observe_items("r2", [bad]) == {"opened": 0, "seen": 1, "settled": 0}
        listed = {i["item_id"]: i for i in ledger.items()}
        assert set(listed) == {bad.item_id, other.item_id}
        assert listed[bad.item_id]["state"] == OPEN  # seen again is still open
        assert listed[bad.item_id]["rows"] == [3]
        assert ledger.open_count(sha, ["bad_row"]) == 2
        assert [i["item_id"] for i in ledger.items(run_id="r2")] == [bad.item_id]

        # A retry of the file meets only `bad`: `other`'s row went through, settled by it.
        counts = ledger.observe_items("r3", [bad], file_sha256=sha, decides=["bad_row"])
        assert counts == {"opened": 0, "seen": 1, "settled": 1}
        assert [i["item_id"] for i in ledger.items(states=[SETTLED])] == [other.item_id]
        assert ledger.runs_that_met("r3") == ["r1"]

        ledger.settle_item(bad.item_id, by="ana", note="fixed in the file")
        assert ledger.items() == []
        settled = {i["item_id"]: i for i in ledger.items(states=None)}
        assert settled[bad.item_id]["decided_by"] == "ana"
        # Met again after a person settled it: open again.
        assert ledger.observe_items("r4", [bad])["opened"] == 1
        assert ledger.supersede_items([sha], "r5", "a corrected file") == 1
        assert [i["state"] for i in ledger.items(states=[SUPERSEDED])] == [SUPERSEDED]

        link = new_item("refused_link", None, "l.csv", "l.csv")
        ledger.observe_items("r6", [link])
        assert ledger.settle_unmet("r7", ["refused_link"], met=[], note="the link is gone") == 1
        assert ledger.settle_unmet("r8", ["refused_link"], met=[], note="again") == 0


def _write(mappings: Path, stem: str, *lines: str) -> None:
    mappings.mkdir(parents=True, exist_ok=True)
    body = "\n".join(["spreadsheet_name,propexo_name", *lines]) + "\n"
    (mappings / f"{stem}.csv").write_text(body)


def test_alias_lines_are_found_by_the_name_as_read_however_it_is_spelled(tmp_path: Path) -> None:
    mappings = tmp_path / "mappings"
    _write(mappings, "vendors", "Acme Plumbng,ACME Plumbing LLC")
    _write(mappings, "residents", '"Doe, Jan",Jan Doe')
    lines = alias_lines(mappings)
    assert lines["vendors"] == [
        {
            "file": str(mappings / "vendors.csv"),
            "line": 2,
            "from": "Acme Plumbng",
            "to": "ACME Plumbing LLC",
        }
    ]
    index = alias_index(lines)
    used = _aliases_for(
        {"vendor_name": "  ACME plumbng ", "resident_name": "Doe, Jan", "notes": "x"}, index
    )
    assert sorted((u["kind"], u["propexo_name"]) for u in used) == [
        ("residents", "Jan Doe"),
        ("vendors", "ACME Plumbing LLC"),
    ]
    assert _aliases_for({"vendor_name": "Someone Else", "property_name": ""}, index) == []
    assert alias_lines(tmp_path / "none") == {}


def test_find_records_by_key_number_or_file_and_row(ledger_url: str) -> None:
    with Ledger(ledger_url) as ledger:
        with pytest.raises(InputError, match="holds no records yet"):
            find_records(ledger, "anything")
        frame = pd.DataFrame(
            {
                "record_key": ["charge:x:TO1", "invoice:v:B-1"],
                "kind": ["charge", "invoice"],
                "integration_id": "int_rm_demo",
                "location_id": "L",
                "content_hash": ["h1", "h2"],
                "file_sha256": ["f" * 64, "e" * 64],
                "source_file": ["/in/rent_roll.xlsx", "/in/bills.csv"],
                "source_rows": [[6], [2, 3]],
                "amount_cents": [100, 200],
                "payload": ["{}", "{}"],
                "reference_number": ["TO1", None],
                "invoice_number": [None, "B-1"],
            }
        )
        ledger.stage_records("r1", None, frame)
        assert find_records(ledger, "TO1")["record_key"].tolist() == ["charge:x:TO1"]
        assert find_records(ledger, " B-1 ")["record_key"].tolist() == ["invoice:v:B-1"]
        assert find_records(ledger, "bills.csv:3")["record_key"].tolist() == ["invoice:v:B-1"]
        assert find_records(ledger, "invoice:v:B-1")["kind"].tolist() == ["invoice"]
        with pytest.raises(InputError, match="FILE:ROW"):
            find_records(ledger, "bills.csv:9")


def test_the_packages_say_what_they_are() -> None:
    import pipelines.core
    import pipelines.kinds.invoice
    import pipelines.reporting
    import pipelines.resolving

    assert pipelines.__version__.count(".") == 2
    for package in (pipelines.core, pipelines.reporting, pipelines.resolving):
        assert Path(str(package.__file__)).name == "__init__.py"
    assert "invoices" in (pipelines.kinds.invoice.__doc__ or "")


def test_python_dash_m_pipelines_is_the_command_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["tieout", "--help"])
    sys.modules.pop("pipelines.__main__", None)
    with pytest.raises(SystemExit) as exit:
        import pipelines.__main__  # noqa: F401 - importing it runs the command line
    assert exit.value.code == 0
    said = capsys.readouterr().out
    assert "Usage: tieout" in said and "run" in said
