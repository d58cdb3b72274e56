"""#31: a file moves money only in a layout a person has confirmed; grain checks refuse
directories and event logs, and residents who are gone (or not there yet) are never charged."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from pipelines.kinds import registered
from pipelines.reading.extract import extract_file
from pipelines.reading.grids import fingerprint
from pipelines.reading.layout import header_candidates
from pipelines.reading.profiles import BUILTIN_PROFILES_DIR, load_profiles, normalize_header
from sandbox.server import RunningSandbox
from tests.conftest import SAMPLES, TEST_DATA, run_cli

PROFILES = load_profiles(BUILTIN_PROFILES_DIR, kinds=registered())

# A roll in a layout no profile knows by its own names: half its columns are unknown.
UNSEEN_HEADER = "Property,Unit,Resident,Rent,Agent,Floor Plan,Lease Type,Household Size"


def unseen_roll(path: Path, month: str, lines: list[tuple[str, str, str]]) -> Path:
    rows = ["Rent Roll,,,,,,,", f"As of: {month}/01/2026,,,,,,,", UNSEEN_HEADER]
    rows += [f'Maple Court,{unit},"{who}",{rent},Quill,2BR,Standard,2' for unit, who, rent in lines]
    path.write_text("\r\n".join(rows) + "\r\n", encoding="utf-8")
    return path


def facts_of(path: Path):  # type: ignore[no-untyped-def]
    return extract_file(fingerprint(path), PROFILES).layout


@pytest.mark.parametrize(
    "sample",
    [SAMPLES / "rent_roll.xlsx", SAMPLES / "vendor_bills.csv"]
    + sorted(TEST_DATA.glob("appfolio_*.*[vx]"))
    + [
        TEST_DATA / n
        for n in (
            "yardi_rent_roll.xlsx",
            "generic_ap_bills.csv",
            "utility_billing.csv",
            "template_quirks.csv",
            "yardi_ap_batch.xlsx",
        )
    ],
    ids=lambda p: p.name,
)
def test_every_builtin_export_fixture_is_a_strict_match(sample: Path) -> None:
    """The samples and the fixtures of built-in profiles move money unattended."""
    facts = facts_of(sample)
    assert facts is not None and facts.strict, facts.why_held if facts else None
    assert facts.explained_share >= 0.8


def test_a_layout_read_through_the_general_vocabulary_is_never_strict(tmp_path: Path) -> None:
    """ "Cable" is a charge only by the general vocabulary, not by the profile's own names."""
    roll = tmp_path / "roll.csv"
    roll.write_text(
        "Rent Roll\nAs of: 12/01/2026\nProperty,Unit,Resident,Rent,Cable\n"
        'Maple Court,101,"Kettering, Dakota",1250.00,40.00\n'
    )
    facts = facts_of(roll)
    assert not facts.strict
    assert "'Cable' as a charge" in facts.why_held[0]
    # The same header, but Cable named as a Propexo charge code: charged by a person's word.
    from pipelines.reading.profiles import normalize_header

    online = extract_file(
        fingerprint(roll), PROFILES, known_codes=frozenset({normalize_header("Cable")})
    ).layout
    assert online is not None and online.strict


def test_a_layout_with_too_few_known_columns_is_held_and_its_fingerprint_is_stable(
    tmp_path: Path,
) -> None:
    first = facts_of(unseen_roll(tmp_path / "a.csv", "12", [("101", "Kettering, Dakota", "1250")]))
    second = facts_of(unseen_roll(tmp_path / "b.csv", "01", [("103", "Marrow, Emerson", "990")]))
    assert not first.strict
    assert "only 4 of its 8 columns" in " ".join(first.why_held)
    assert set(first.unknown) == {"Agent", "Floor Plan", "Lease Type", "Household Size"}
    assert first.fingerprint == second.fingerprint  # other rows, the same layout
    moved = tmp_path / "c.csv"
    moved.write_text((tmp_path / "a.csv").read_text().replace("Agent", "Leasing Agent"))
    assert facts_of(moved).fingerprint != first.fingerprint


def test_one_resident_on_several_rows_of_a_wide_roll_is_refused(tmp_path: Path) -> None:
    roll = tmp_path / "roll.csv"
    roll.write_text(
        "Rent Roll\nAs of: 12/01/2026\nProperty,Unit,Resident,Rent,Parking\n"
        'Maple Court,101,"Kettering, Dakota",1250.00,\n'
        'Maple Court,101,"Kettering, Dakota",,50.00\n'
        'Maple Court,102,"Pembry, Skyler",1300.00,\n'
    )
    result = run_cli("check", "--offline", str(roll))
    assert result.returncode == 2
    assert "more than one row for 1 residents" in result.stderr
    assert "rows 4, 5" in result.stderr


def test_grain_checks_refuse_before_any_layout_confirmation(tmp_path: Path) -> None:
    """A tenant directory cannot be confirmed into a charge roll."""
    source = tmp_path / "directory.csv"
    shutil.copy2(TEST_DATA / "shape_tenant_directory.csv", source)
    result = run_cli("--data-dir", str(tmp_path / "data"), "layout", "accept", str(source))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "tenant directory" in result.stderr
    assert "Traceback" not in result.stderr


def env_for(box: RunningSandbox) -> dict[str, str]:
    return {"PROPEXO_BASE_URL": box.base_url, "PROPEXO_API_TOKEN": box.config.token}


def summary_of(stdout: str) -> dict:  # type: ignore[type-arg]
    line = next(line for line in stdout.splitlines() if line.startswith("report: "))
    return json.loads((Path(line.removeprefix("report: ")).parent / "summary.json").read_text())


def test_an_unseen_layout_is_held_until_a_person_accepts_it_then_runs_unattended(
    sandbox: RunningSandbox, api: httpx.Client, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    inbox = data / "inbox"
    inbox.mkdir(parents=True)
    env = {**env_for(sandbox), "LOGNAME": "pat.clerk", "USER": "pat.clerk"}
    first = unseen_roll(
        inbox / "roll_dec.csv",
        "12",
        [("101", "Kettering, Dakota", "1250.00"), ("102", "Pembry, Skyler", "1300.00")],
    )

    held = run_cli("--data-dir", str(data), "run", env=env)
    assert held.returncode == 1, held.stdout + held.stderr
    assert api.get("/_sandbox/records").json()["results"] == []  # nothing posted
    assert first.exists()  # still in the inbox, not archived, not rejected
    assert not list(data.glob("archive/**/*.csv")) and not list(data.glob("rejected/*"))
    said = held.stdout
    assert said.count("roll_dec.csv: held, not posted") == 1  # the preview, once
    assert "would post 2 lines, 2,550.00" in said
    assert "unknown: Agent, Floor Plan, Lease Type, Household Size" in said
    command = f"tieout --data-dir {data} layout accept {first}"
    assert command in said
    summary = summary_of(said)
    assert summary["verdict"] == "needs attention"
    assert summary["totals"]["rows_rejected"] == 0  # held rows are not rejected rows
    (entry,) = summary["held_layouts"]
    assert entry["name"] == "roll_dec.csv" and entry["layout"]["confirmed"] is False
    assert entry["command"] == command
    assert any("layout is not confirmed" in r["reason"] for r in summary["verdict_reasons"])

    # `check` offline reads the confirmation from the ledger: not confirmed yet.
    checked = run_cli("--data-dir", str(data), "check", "--offline", str(first), env=env)
    assert "not confirmed; a run would hold the file" in checked.stdout

    accepted = run_cli(*command.split()[1:], env=env)
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    assert "confirmed by pat.clerk" in accepted.stdout
    listed = run_cli("--data-dir", str(data), "layout", "list", env=env)
    assert "pat.clerk" in listed.stdout and "roll_dec.csv" in listed.stdout
    checked = run_cli("--data-dir", str(data), "check", "--offline", str(first), env=env)
    assert "confirmed (pat.clerk on" in checked.stdout

    posted = run_cli("--data-dir", str(data), "run", env=env)
    assert posted.returncode == 0, posted.stdout + posted.stderr
    assert not first.exists()
    summary = summary_of(posted.stdout)
    assert summary["held_layouts"] == []
    (done,) = summary["files"]
    assert done["rows_used"] == 2 and done["source_total_cents"] == 255000
    assert done["layout"]["confirmed_by"].startswith("pat.clerk on")
    assert summary["provenance"]["layouts"][0]["fingerprint"] == entry["layout"]["fingerprint"]
    assert len(api.get("/_sandbox/records").json()["results"]) == 2

    # The next month's file of the same layout runs unattended.
    unseen_roll(inbox / "roll_jan.csv", "01", [("103", "Marrow, Emerson", "1100.00")])
    again = run_cli("--data-dir", str(data), "run", env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "held, not posted" not in again.stdout
    assert len(api.get("/_sandbox/records").json()["results"]) == 3

    # Forgotten, the layout is held again.
    layout_id = str(done["layout"]["layout_id"])
    forgot = run_cli("--data-dir", str(data), "layout", "forget", layout_id, env=env)
    assert forgot.returncode == 0, forgot.stdout + forgot.stderr
    unseen_roll(inbox / "roll_feb.csv", "02", [("105", "Birchwood, Skyler", "1000.00")])
    third = run_cli("--data-dir", str(data), "run", env=env)
    assert third.returncode == 1
    assert "roll_feb.csv: held, not posted" in third.stdout
    assert len(api.get("/_sandbox/records").json()["results"]) == 3
    assert run_cli("--data-dir", str(data), "layout", "forget", layout_id, env=env).returncode == 2


def test_watch_says_a_held_file_once_and_takes_it_once_it_is_accepted(
    sandbox: RunningSandbox, api: httpx.Client, tmp_path: Path
) -> None:
    from pipelines.runs.watch import watch_inbox
    from tests.conftest import settings_for

    data = tmp_path / "data"
    (data / "inbox").mkdir(parents=True)
    settings = settings_for(sandbox, data)
    roll = unseen_roll(
        data / "inbox" / "roll.csv",
        "12",
        [("101", "Kettering, Dakota", "1250.00"), ("102", "Pembry, Skyler", "1300.00")],
    )
    said: list[str] = []
    errors: list[BaseException] = []

    def watch(cycles: int) -> None:
        watch_inbox(
            settings,
            interval_s=0,
            reconcile_every_s=3600,
            say=said.append,
            on_error=errors.append,
            sleep=lambda _: None,
            cycles=cycles,
        )

    watch(6)
    assert errors == []
    assert sum("roll.csv: held, not posted" in line for line in said) == 1
    assert roll.exists()
    assert api.get("/_sandbox/records").json()["results"] == []

    accepted = run_cli(
        "--data-dir", str(data), "layout", "accept", str(roll), "--by", "Pat", env=env_for(sandbox)
    )
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    watch(3)
    assert errors == []
    assert not roll.exists()
    assert len(api.get("/_sandbox/records").json()["results"]) == 2


def test_confirmations_are_kept_listed_and_forgotten_on_each_engine(
    ledger_url: str, tmp_path: Path
) -> None:
    """The ledger's `layouts` (revision 0003_layouts) on SQLite and PostgreSQL alike."""
    from pipelines.ledger import Ledger

    facts = facts_of(unseen_roll(tmp_path / "a.csv", "12", [("101", "Kettering, Dakota", "1")]))
    data = {**facts.as_dict(), "confirmed": False}
    with Ledger(ledger_url) as ledger:
        before = ledger.layouts_stamp()
        first, new = ledger.confirm_layout(data, facts.header_key, "pat", "a.csv", "f" * 64)
        assert new and ledger.confirm_layout(data, facts.header_key, "kim", "b.csv", "e" * 64) == (
            first,
            False,
        )
        assert ledger.confirmed_layout(facts.fingerprint)["confirmed_by"] == "pat"
        assert ledger.confirmed_profiles() == {facts.header_key: "tieout_rent_roll"}
        assert ledger.layouts_stamp() != before
        preview = {"layout": data, "name": "a.csv"}
        ledger.record_layout_use("run1", "f" * 64, "a.csv", preview, held=True)
        (use,) = ledger.layout_uses("run1").to_dict("records")
        assert use["held"] == 1 and use["fingerprint"] == facts.fingerprint
        assert ledger.forget_layout(first) and not ledger.forget_layout(first)
        assert ledger.confirmed_layout(facts.fingerprint) is None
        assert ledger.confirmed_layouts().empty


# --- headers as exports write them (#38) -------------------------------------------------------


words = st.sampled_from(["Accommodation", "Care", "Level of Care", "Second Person", "Respite"])
leaves = st.lists(
    st.sampled_from(["Per Period", "Monthly", "Daily", "Rate", "Amount"]),
    min_size=1,
    max_size=3,
    unique=True,
)
breaks = st.sampled_from([" ", "\n", "\r\n", " \n "])


@given(st.lists(st.tuples(words, leaves), min_size=1, max_size=3, unique_by=lambda g: g[0]), breaks)
def test_a_merged_two_row_header_reads_each_group_over_each_leaf(
    groups: list[tuple[str, list[str]]], sep: str
) -> None:
    """Property: a grid as read_grids gives it (merged cells filled), with "Unit" and
    "Resident" merged over both header rows and each group merged over its leaves, has a
    two-row candidate naming each column "Group Leaf" once, and "Unit" once, whatever line
    breaks the cells hold."""
    upper = ["Unit", "Resident"]
    lower = list(upper)  # merged over both rows: the same text in each
    expected = ["unit", "resident"]
    for group, names in groups:
        for leaf in names:
            upper.append(group.replace(" ", sep))
            lower.append(leaf)
            expected.append(normalize_header(f"{group} {leaf}"))
    grid = pd.DataFrame([upper, lower, ["101", "Ashby, Rowan", *["1.00"] * (len(upper) - 2)]])
    two_row = [c for c in header_candidates(grid) if c[0] == (0, 1)]
    assert len(two_row) == 1
    assert [normalize_header(c) for c in two_row[0][1]] == expected


@hypothesis_settings(max_examples=8, deadline=None)
@given(st.permutations(["Report1", "Copy", "Notes"]), st.integers(min_value=1, max_value=6))
def test_the_export_sheet_wins_over_a_copy_in_any_order(order: list[str], dropped: int) -> None:
    """Property: a workbook holding the export, a hand-edited copy of it (a rent changed,
    ``dropped`` rows and its title block gone) and a notes sheet, in any order, is read from
    the export's own sheet with all its rows."""
    import tempfile

    from openpyxl import Workbook, load_workbook

    source = load_workbook(TEST_DATA / "shape_export_and_copy.xlsx")
    export = [list(r) for r in source["Report1"].iter_rows(values_only=True)]
    header_at = next(i for i, r in enumerate(export) if r[0] == "Unit")
    data = [r for r in export[header_at + 1 :] if r[0] and not str(r[0]).startswith("Totals")]
    copy = [export[header_at]] + [[*r[:3], r[3] + 1, *r[4:]] for r in data[: len(data) - dropped]]
    sheets = {"Report1": export, "Copy": copy, "Notes": [["Exported by the property manager"]]}
    wb = Workbook()
    wb.remove(wb.active)
    for name in order:
        ws = wb.create_sheet(name)
        for row in sheets[name]:
            ws.append(list(row))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "summary.xlsx"
        wb.save(path)
        result = extract_file(fingerprint(path), PROFILES)
    assert result.sheet == "Report1"
    assert len(result.rows) == len(data)
