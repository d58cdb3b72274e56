"""Aliases: the files checked every time they are read (each mistake one error naming its file
and line), `tieout alias add/accept/list` against the real sandbox, and hints that name the
configured data folder and work as printed."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipelines.cli.main import cli
from pipelines.core.models import IssueCode
from pipelines.kinds import registered
from pipelines.resolving.aliases import read_alias_file, read_aliases, unknown_targets, write_alias
from pipelines.resolving.refs import RefData
from sandbox.server import RunningSandbox
from tests.conftest import ROOT, run_cli, write_bills
from tests.test_load import env_for

HEADER = "spreadsheet_name,propexo_name\n"


def _problems(folder: Path) -> list[str]:
    return [str(p) for p in read_aliases(folder).problems]


@pytest.mark.parametrize(
    ("file_name", "text", "line", "words"),
    [
        (
            "residents.csv",
            HEADER + "Jesup, Morgan,Morgan Jessup\n",
            2,
            ["3 fields where the header has 2", '"Jesup, Morgan",Morgan Jessup'],
        ),
        ("vendors.csv", "Acme Plumbng,ACME Plumbing LLC\n", 1, ["header line"]),
        (
            "gl_accounts.csv",
            "# ours\n" + HEADER + "Repairs,Repairs & Maintenance\nrepairs,Repairs & Maintenance\n",
            4,
            ["repeats line 3"],
        ),
        (
            "vendors.csv",
            HEADER + "ACME,ACME Plumbing LLC\nAcme,Brightline Electric Inc.\n",
            3,
            ["conflicts with line 2"],
        ),
        ("charge_codes.csv", HEADER + "Pet Fee,\n", 2, ["no propexo_name"]),
    ],
    ids=["unquoted comma", "no header", "repeated", "conflicting", "empty target"],
)
def test_each_alias_file_mistake_is_one_error_naming_the_file_and_the_line(
    tmp_path: Path, file_name: str, text: str, line: int, words: list[str]
) -> None:
    (tmp_path / file_name).write_text(text, encoding="utf-8")
    (problem,) = _problems(tmp_path)
    assert problem.startswith(f"{tmp_path / file_name}, line {line}: ")
    for word in words:
        assert word in problem


def test_a_good_file_reads_quoted_names_and_keeps_a_hash_inside_a_name(tmp_path: Path) -> None:
    (tmp_path / "residents.csv").write_text(
        "\ufeff# how the rolls spell them\n" + HEADER + '"Jesup, Morgan",Morgan Jessup\n\n'
    )
    (tmp_path / "properties.csv").write_text(HEADER + "Bldg #2,Maple Court\n")
    files = read_aliases(tmp_path)
    assert files.problems == ()
    residents = files.frames["residents"]
    assert residents[["spreadsheet_name", "propexo_name", "line"]].values.tolist() == [
        ["Jesup, Morgan", "Morgan Jessup", 3]
    ]
    assert files.frames["properties"]["spreadsheet_name"].tolist() == ["Bldg #2"]


def test_an_alias_to_a_name_propexo_does_not_know_is_an_error_with_the_closest(
    tmp_path: Path, refs: RefData
) -> None:
    (tmp_path / "residents.csv").write_text(HEADER + '"Jesup, Morgan",Morgan Jesup\n')
    (problem,) = unknown_targets(refs, read_aliases(tmp_path))
    assert str(problem).startswith(f"{tmp_path / 'residents.csv'}, line 2: ")
    assert 'did you mean "Morgan Jessup"' in str(problem)


def test_written_lines_are_quoted_and_read_back_as_written(tmp_path: Path) -> None:
    first = write_alias(tmp_path / "mappings", "resident", "Jesup, Morgan", "Morgan Jessup")
    assert first.added and first.line == 3  # after the comment and the header it creates
    again = write_alias(tmp_path / "mappings", "resident", "JESUP,  morgan", "Morgan Jessup")
    assert not again.added and again.line == 3
    write_alias(tmp_path / "mappings", "resident", 'Ray "Junior" Oaks', "Ray Oaks")
    frame, problems = read_alias_file(first.path, "resident")
    assert problems == []
    assert frame["spreadsheet_name"].tolist() == ["Jesup, Morgan", 'Ray "Junior" Oaks']
    with pytest.raises(Exception, match=r"line 3 already aliases"):
        write_alias(tmp_path / "mappings", "resident", "Jesup, Morgan", "Reese Jessup")


def _env(box: RunningSandbox, data: Path) -> dict[str, str]:
    return env_for(box, data)


def test_a_malformed_alias_file_stops_check_naming_file_and_line_and_doctor_fails_it(
    sandbox: RunningSandbox, tmp_path: Path
) -> None:
    """On main the unquoted line was silently ignored and doctor passed 17 checks."""
    data = tmp_path / "data"
    (data / "mappings").mkdir(parents=True)
    (data / "mappings" / "gl_accounts.csv").write_text(HEADER + "Repairs, misc,5100\n")
    bills = write_bills(
        tmp_path / "bills.csv", ["ACME Plumbing LLC,A-1,11/03/2026,,Maple Court,5100,x,10.00"]
    )
    env = _env(sandbox, data)
    checked = run_cli("--data-dir", str(data), "check", str(bills), env=env)
    assert checked.returncode == 2, checked.stdout + checked.stderr
    assert f"{data / 'mappings' / 'gl_accounts.csv'}, line 2: has 3 fields" in checked.stderr
    doctor = run_cli("--data-dir", str(data), "doctor", env=env)
    assert doctor.returncode == 1
    assert re.search(r"FAIL\s+aliases: .*gl_accounts.csv, line 2", doctor.stdout)


def test_a_hint_printed_with_another_data_dir_works_as_printed(
    sandbox: RunningSandbox, tmp_path: Path
) -> None:
    """Run the printed command exactly, with a shell, and the next check resolves the name
    (on main the hint said data/mappings/vendors.csv whatever the data folder)."""
    data = tmp_path / "elsewhere"
    data.mkdir()
    bills = write_bills(
        tmp_path / "bills.csv",
        [
            "Acme Plumbng,A-1,11/03/2026,,Maple Court,5100,one,10.00",
            "Acme Plumbng,A-1,11/03/2026,,Maple Court,5100,two,5.00",
        ],
    )
    env = _env(sandbox, data)
    first = run_cli("--data-dir", str(data), "check", str(bills), env=env)
    assert first.returncode == 1, first.stdout + first.stderr
    assert str(data / "mappings" / "vendors.csv") in first.stdout
    assert "data/mappings" not in first.stdout.replace(str(data / "mappings"), "")
    # One line for the one cause, with both rows (main printed it twice).
    causes = [line for line in first.stdout.splitlines() if "Acme Plumbng" in line]
    assert len(causes) == 1 and causes[0].strip().startswith("rows 2, 3,")
    assert (tmp_path / "bills.csv.errors.csv").exists()
    command = re.search(r"run: (tieout .*?) \(it adds", causes[0])
    assert command is not None
    shell = subprocess.run(
        ["bash", "-c", command.group(1).replace("tieout", f"{_tieout()}", 1)],
        capture_output=True,
        text=True,
        env={**_child_env(), **env},
        cwd=ROOT,
        check=False,
    )
    assert shell.returncode == 0, shell.stdout + shell.stderr
    assert (data / "mappings" / "vendors.csv").exists()
    again = run_cli("--data-dir", str(data), "check", str(bills), env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "rows read = 2 used + 0 rejected" in again.stdout
    # The old rejects file said something no longer true: it is gone.
    assert not (tmp_path / "bills.csv.errors.csv").exists()
    assert "removed the old" in again.stdout


def _tieout() -> str:
    import sys

    return f"{sys.executable} -m pipelines"


def _child_env() -> dict[str, str]:
    import os

    from tests.conftest import TEST_DATA

    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("PROPEXO_", "TIEOUT_"))}
    return {**inherited, "TIEOUT_CONFIG": str(TEST_DATA / "tieout-test.toml")}


def test_alias_add_checks_the_name_writes_it_quoted_and_names_the_rows_it_settles(
    sandbox: RunningSandbox, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    (data / "inbox").mkdir(parents=True)
    env = _env(sandbox, data)
    write_bills(
        data / "inbox" / "bills.csv",
        [
            "Acme Plumbng,A-1,11/03/2026,,Maple Court,5100,one,10.00",
            "Acme Plumbng,A-1,11/03/2026,,Maple Court,5100,two,5.25",
            "Greenway Landscaping,G-1,11/03/2026,,Maple Court,5200,fine,25.00",
        ],
    )
    assert run_cli("--data-dir", str(data), "run", env=env).returncode == 1
    wrong = run_cli(
        "--data-dir", str(data), "alias", "add", "vendor", "Acme Plumbng", "Acme Plumbin", env=env
    )
    assert wrong.returncode == 1
    assert 'closest: "ACME Plumbing LLC"' in wrong.stderr and "nothing was written" in wrong.stderr
    assert not (data / "mappings" / "vendors.csv").exists()
    added = run_cli(
        "--data-dir",
        str(data),
        "alias",
        "add",
        "vendor",
        "Acme Plumbng",
        "acme plumbing llc",
        env=env,
    )
    assert added.returncode == 0, added.stdout + added.stderr
    assert f'{data / "mappings" / "vendors.csv"}, line 3: "Acme Plumbng" → "ACME Plumbing LLC"' in (
        added.stdout
    )
    assert "it settles 2 rejected rows: bills.csv rows 2, 3 (10.00; 5.25)" in added.stdout
    listed = run_cli("--data-dir", str(data), "alias", "list", env=env)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert "Acme Plumbng" in listed.stdout and "vendors.csv:3" in listed.stdout
    resident = run_cli(
        "--data-dir",
        str(data),
        "alias",
        "add",
        "resident",
        "Jesup, Morgan",
        "Morgan Jessup",
        env=env,
    )
    assert resident.returncode == 0, resident.stdout + resident.stderr
    text = (data / "mappings" / "residents.csv").read_text()
    assert text.splitlines()[-1] == '"Jesup, Morgan",Morgan Jessup'


def test_alias_accept_asks_on_a_terminal_and_takes_only_the_sure_ones_with_yes(
    sandbox: RunningSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    (data / "inbox").mkdir(parents=True)
    env = _env(sandbox, data)
    write_bills(
        data / "inbox" / "bills.csv",
        [
            "ACME Plumbng LLC,A-1,11/03/2026,,Maple Court,5100,one,10.00",
            "Zq Services,Z-1,11/03/2026,,Maple Court,5100,two,5.00",
        ],
    )
    assert run_cli("--data-dir", str(data), "run", env=env).returncode == 1
    asked = CliRunner().invoke(cli, ["--data-dir", str(data), "alias", "accept"], env=env)
    assert asked.exit_code == 2 and "--yes" in asked.output  # no terminal: nothing is asked
    monkeypatch.setattr("pipelines.cli.alias.on_terminal", lambda: True)
    declined = CliRunner().invoke(
        cli, ["--data-dir", str(data), "alias", "accept"], env=env, input="n\nn\n"
    )
    assert declined.exit_code == 0, declined.output
    assert 'is it "ACME Plumbing LLC"? [Y/n]' in declined.output  # a sure one defaults to yes
    assert "0 of 2 names aliased" in declined.output
    assert not (data / "mappings" / "vendors.csv").exists()
    monkeypatch.undo()
    accepted = run_cli("--data-dir", str(data), "alias", "accept", "--yes", env=env)
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    frame, problems = read_alias_file(data / "mappings" / "vendors.csv", "vendor")
    assert problems == []
    assert frame[["spreadsheet_name", "propexo_name"]].values.tolist() == [
        ["ACME Plumbng LLC", "ACME Plumbing LLC"]
    ]
    assert 'vendor "Zq Services"' in accepted.stdout
    assert "1 of 2 names aliased" in accepted.stdout
    again = run_cli("--data-dir", str(data), "alias", "accept", "--yes", env=env)
    assert "1 of 2" not in again.stdout and "0 of 1 names aliased" in again.stdout


def test_offline_check_says_what_only_propexo_can_decide_is_to_confirm_online(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On main: "property is missing" (rejected) for a title's property, and "6 used,
    0 rejected" for rows whose charge codes Propexo rejects online."""
    monkeypatch.setenv("TIEOUT_CONFIG", str(tmp_path / "none.toml"))
    roll = tmp_path / "roll.csv"
    roll.write_text(
        "Maple Court Rent Roll for December 2026,,,\n,,,\nUnit,Tenant,Status,Rent\n"
        '101,"Kettering, Dakota",Current,"1,300.00"\n102,"Pembry, Skyler",Current,"1,300.00"\n'
    )
    codes = tmp_path / "codes.csv"
    codes.write_text(
        "Property,Unit,Resident,Charge Code,Amount,Date\n"
        + "".join(
            f'Maple Court,10{i},"Kettering, Dakota",Rnet,100.00,2026-12-01\n' for i in range(6)
        )
    )
    out = tmp_path / "check.json"
    result = CliRunner().invoke(
        cli,
        [
            "--data-dir",
            str(tmp_path),
            "check",
            "--offline",
            "--json",
            str(out),
            str(roll),
            str(codes),
        ],
    )
    assert result.exit_code == 0, result.output
    first, second = json.loads(out.read_text())["files"]
    assert first["rows_rejected"] == 0 and first["rows_to_confirm"] == 2
    assert first["to_confirm"][0]["rows"] == [4, 5]
    assert "rows 4, 5, to confirm online: property from the title" in result.output
    assert "property is missing" not in result.output
    assert second["rows_to_confirm"] == 6 and second["offline"] is True
    assert "= 6 to confirm online + 0 rejected" in result.output
    assert "6 used" not in result.output


def test_two_unknown_charge_codes_are_two_lines_with_their_rows(
    tmp_path: Path, refs: RefData
) -> None:
    from pipelines.core.config import load_settings
    from pipelines.reading.grids import fingerprint
    from pipelines.reading.profiles import profiles_for
    from pipelines.runs.check import group_causes
    from pipelines.runs.files import process_file

    path = tmp_path / "codes.csv"
    path.write_text(
        "Property,Unit,Resident,Charge Code,Amount,Date\n"
        + "".join(
            f'Maple Court,101,"Kettering, Dakota",{code},{n}.00,2026-12-0{n}\n'
            for n, code in enumerate(["Rnet", "Rnet", "Rnet", "Rnet", "Pet Rnet", "Pet Rnet"], 1)
        )
    )
    settings = load_settings(env={})
    result = process_file(fingerprint(path), profiles_for(settings, registered()), refs, settings)
    unknown = [i for i in result.issues if i.code is IssueCode.UNKNOWN_CHARGE_CODE]
    assert len(unknown) == 6
    causes = group_causes(unknown)
    rows = {c["reason"].split('"')[1]: c["rows"] for c in causes}
    assert rows == {"Rnet": [2, 3, 4, 5], "Pet Rnet": [6, 7]}
    assert all("tieout alias add charge_code" in c["reason"] for c in causes)


def test_a_resident_alias_to_a_tenant_of_another_unit_is_refused_and_the_printed_one_works(
    sandbox: RunningSandbox, refs: RefData, tmp_path: Path
) -> None:
    """#36: an unknown resident at one unit was offered a tenant at another property; the
    alias, followed, was written and the row rejected again with the same hint. Now the hint
    names only who lives in the row's unit, `alias add` refuses a target who lives elsewhere
    (nothing written), and the alias the todo prints settles the row."""
    leases = refs.leases.merge(
        refs.units.drop(columns="property_id"), left_on="unit_id", right_on="id"
    )
    people = refs.residents.set_index("id")
    here = leases.iloc[0]
    there = leases[leases["property_id"].ne(here["property_id"])].iloc[0]
    elsewhere, resident = people.loc[there["resident_id"]], people.loc[here["resident_id"]]
    prop = refs.properties.set_index("id").loc[here["property_id"], "name"]
    typo = f"{elsewhere['last_name']}x, {elsewhere['first_name']}"
    other = f"{elsewhere['first_name']} {elsewhere['last_name']}"
    data = tmp_path / "data"
    (data / "inbox").mkdir(parents=True)
    (data / "inbox" / "charges.csv").write_text(
        "Property,Unit,Resident,Charge Code,Amount,Transaction Date\n"
        f'{prop},{here["number"]},"{typo}",Rent,100.00,12/01/2026\n'
    )
    env = _env(sandbox, data)
    first = run_cli("--data-dir", str(data), "run", env=env)
    assert first.returncode == 1, first.stdout + first.stderr
    todo = run_cli("--data-dir", str(data), "todo", env=env)
    assert other not in todo.stdout, todo.stdout
    wrong = run_cli("--data-dir", str(data), "alias", "add", "resident", typo, other, env=env)
    assert wrong.returncode == 1, wrong.stdout + wrong.stderr
    said = " ".join(wrong.stderr.split())
    assert "nothing was written" in said and "another tenant" in said, said
    assert not (data / "mappings" / "residents.csv").exists()
    accepted = run_cli("--data-dir", str(data), "alias", "accept", "--yes", env=env)
    assert other not in accepted.stdout, accepted.stdout
    right = f"{resident['first_name']} {resident['last_name']}"
    added = run_cli("--data-dir", str(data), "alias", "add", "resident", typo, right, env=env)
    assert added.returncode == 0, added.stdout + added.stderr
    assert "it settles 1 rejected row" in added.stdout
