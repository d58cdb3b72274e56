"""Alias files and what they settle, in process: every line a writer adds reads back as
written; each kind of mistake is one problem naming the file and line; suggestions, rows and
residents' homes come from reference data built here from Propexo-shaped lists."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.core.errors import ConfigError, InputError
from pipelines.core.hints import ALIAS_FILES
from pipelines.resolving.aliases import (
    FILE_PREAMBLE,
    HEADER,
    AliasFiles,
    AliasProblem,
    closest,
    known_target,
    misplaced_resident,
    places_named,
    problems_text,
    raise_if_problems,
    read_alias_file,
    read_aliases,
    residents_at,
    rows_named,
    rows_text,
    suggestions,
    unknown_targets,
    write_alias,
)
from pipelines.resolving.refs import (
    REF_KINDS,
    RefData,
    build_reference_data,
    charge_code_names,
    newest_stamp,
)

CSV_HEADER = ",".join(HEADER) + "\n"


def refs(aliases: dict[str, pd.DataFrame] | None = None) -> RefData:
    lists = {
        "locations": [{"id": "loc1", "x_id": "1", "name": "Main"}],
        "properties": [
            {"id": "p1", "name": "Oak Ridge Apartments", "code": "OAK", "location_id": "loc1"},
            {"id": "p2", "name": "Elm Court", "code": "ELM", "location_id": "loc1"},
        ],
        "units": [
            {"id": "u1", "number": "101", "property_id": "p1"},
            {"id": "u2", "number": "102", "property_id": "p1"},
            {"id": "u3", "number": "7", "property_id": "p2"},
        ],
        "residents": [
            {"id": "r1", "first_name": "Morgan", "last_name": "Jessup", "property_id": "p1"},
            {"id": "r2", "first_name": "Dana", "last_name": "Reyes", "property_id": "p1"},
            {"id": "r3", "first_name": "Morgan", "last_name": "Jesperson", "property_id": "p2"},
        ],
        "leases": [
            {
                "id": "l1",
                "unit_id": "u1",
                "property_id": "p1",
                "status_normalized": "ACTIVE",
                "residents_meta_data": [{"resident_id": "r1"}],
            },
            {
                "id": "l2",
                "unit_id": "u2",
                "property_id": "p1",
                "status_normalized": "ACTIVE",
                "residents_meta_data": [{"resident_id": "r2"}],
            },
            {
                "id": "l3",
                "unit_id": "u3",
                "property_id": "p2",
                "status_normalized": "ACTIVE",
                "residents_meta_data": [{"resident_id": "r3"}],
            },
            {"id": "l4", "unit_id": "u3", "residents_meta_data": None},
        ],
        "vendors": [
            {"id": "v1", "x_id": "10", "name": "ACME Plumbing LLC", "x_location_id": "1"},
            {"id": "v2", "x_id": "11", "name": "Brightline Electric Inc.", "x_location_id": "1"},
            {"id": "v3", "x_id": "12", "name": "Brightline Electrical", "x_location_id": "1"},
        ],
        "charge_codes": [
            {"id": "c1", "name": "RENT", "x_location_id": "1"},
            {"id": "c2", "name": "PET", "x_location_id": "1"},
        ],
        "financial_accounts": [
            {"id": "g1", "account_number": "6100", "name": "Repairs", "x_location_id": "1"},
        ],
    }
    return build_reference_data(lists, aliases or {})


# --- reading and writing the files ---------------------------------------------------------

# Names a clerk types: anything printable on one line (a line break cannot be one cell of a
# one-line-per-alias file).
ONE_LINE = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cs", "Cc", "Zl", "Zp"), blacklist_characters="\x85"
    ),
    min_size=1,
    max_size=30,
).filter(lambda s: s.strip() != "")


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=60)
@given(name=ONE_LINE, target=ONE_LINE)
def test_every_alias_written_reads_back_as_written(tmp_path: Path, name: str, target: str) -> None:
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    written = write_alias(folder, "vendor", name, target)
    frame, problems = read_alias_file(written.path, "vendor")
    assert problems == []
    assert frame[["spreadsheet_name", "propexo_name"]].values.tolist() == [
        [name.strip(), target.strip()]
    ]
    assert written.added
    assert written.line == int(frame["line"].iloc[0])
    assert written.path.read_text(encoding="utf-8").startswith(FILE_PREAMBLE + CSV_HEADER)


def test_the_same_alias_again_is_left_as_it_is_and_another_target_is_a_conflict(
    tmp_path: Path,
) -> None:
    first = write_alias(tmp_path, "vendor", "Acme", "ACME Plumbing LLC")
    again = write_alias(tmp_path, "vendor", "ACME", "acme plumbing llc")
    assert again == type(first)(first.path, first.line, added=False)
    with pytest.raises(
        InputError, match=r"line 3 already aliases \"Acme\" to \"ACME Plumbing LLC\""
    ):
        write_alias(tmp_path, "vendor", "acme", "Brightline Electric Inc.")
    second = write_alias(tmp_path, "vendor", "Bright", "Brightline Electric Inc.")
    assert second.line == first.line + 1


def test_a_file_without_a_final_newline_gets_one_before_the_new_line(tmp_path: Path) -> None:
    path = tmp_path / "properties.csv"
    path.write_text(CSV_HEADER + "Oak,Oak Ridge Apartments", encoding="utf-8")
    written = write_alias(tmp_path, "property", "Elm", "Elm Court")
    assert written.line == 3
    assert path.read_text().splitlines()[-2:] == ["Oak,Oak Ridge Apartments", "Elm,Elm Court"]


def test_a_file_with_problems_is_not_written_to(tmp_path: Path) -> None:
    path = tmp_path / "vendors.csv"
    path.write_text("name,target\nA,B\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="header line"):
        write_alias(tmp_path, "vendor", "C", "D")
    assert path.read_text() == "name,target\nA,B\n"


def test_a_file_that_is_not_utf8_is_one_problem_saying_how_to_save_it(tmp_path: Path) -> None:
    path = tmp_path / "vendors.csv"
    path.write_bytes(CSV_HEADER.encode() + "Café,Cafe Co\n".encode("cp1252"))
    frame, problems = read_alias_file(path, "vendor")
    assert frame.empty
    assert [str(p) for p in problems] == [
        f"{path}: is not UTF-8 text; save it as CSV UTF-8 and try again"
    ]


def test_a_bom_comments_blank_lines_and_extra_columns_are_read(tmp_path: Path) -> None:
    path = tmp_path / "gl_accounts.csv"
    path.write_text(
        "\ufeff# mine\n\nPropexo_Name,Spreadsheet_Name,Note\n Repairs & Maint ,Repairs,ok\n",
        encoding="utf-8",
    )
    frame, problems = read_alias_file(path, "gl_account")
    assert problems == []
    assert frame.to_dict("records") == [
        {"spreadsheet_name": "Repairs", "propexo_name": "Repairs & Maint", "line": 4}
    ]


def test_an_unterminated_quote_is_a_problem_on_its_line_and_the_rest_is_read(
    tmp_path: Path,
) -> None:
    path = tmp_path / "vendors.csv"
    path.write_text(CSV_HEADER + '"Acme,ACME Plumbing LLC\nBright,Brightline Electric Inc.\n')
    frame, problems = read_alias_file(path, "vendor")
    assert [p.line for p in problems] == [2]
    assert "cannot be read as CSV" in problems[0].message
    assert frame["spreadsheet_name"].tolist() == ["Bright"]


def test_too_few_fields_and_an_empty_name_are_each_one_problem(tmp_path: Path) -> None:
    path = tmp_path / "charge_codes.csv"
    path.write_text(CSV_HEADER + "Pet Fee\n,PET\nRent,RENT\n")
    frame, problems = read_alias_file(path, "charge_code")
    assert [(p.line, p.message.split(":")[0]) for p in problems] == [
        (2, "has 1 fields where the header has 2"),
        (3, "has no spreadsheet_name"),
    ]
    # No example of quoting is offered when a comma is not the cause.
    assert "e.g." not in problems[0].message
    assert frame["spreadsheet_name"].tolist() == ["Rent"]


def test_the_folder_reads_only_the_files_present_and_gathers_every_problem(
    tmp_path: Path,
) -> None:
    assert read_aliases(None) == AliasFiles(Path())
    (tmp_path / "vendors.csv").write_text(CSV_HEADER + "Acme,ACME Plumbing LLC\n")
    (tmp_path / "residents.csv").write_text(CSV_HEADER + "Jesup, Morgan,Morgan Jessup\n")
    (tmp_path / "properties.csv").write_text(CSV_HEADER)
    files = read_aliases(tmp_path)
    assert set(files.frames) == {"vendors"}
    assert [(p.path.name, p.line) for p in files.problems] == [("residents.csv", 2)]
    assert '(e.g. "Jesup, Morgan",Morgan Jessup)' in files.problems[0].message
    assert set(ALIAS_FILES.values()) >= {"vendors", "residents", "properties"}


def test_problems_are_listed_one_a_line_with_the_next_step() -> None:
    one = AliasProblem(Path("m/vendors.csv"), 3, "has no propexo_name: 'A,'")
    whole = AliasProblem(Path("m/residents.csv"), None, "is not UTF-8 text")
    text = problems_text([one, whole])
    assert text.splitlines() == [
        "the alias files have 2 problems, so no name was resolved and nothing was posted:",
        "  m/vendors.csv, line 3: has no propexo_name: 'A,'",
        "  m/residents.csv: is not UTF-8 text",
        "fix or delete those lines (`tieout alias list` shows every alias)",
    ]
    assert "1 problem," in problems_text([one])
    raise_if_problems([])
    with pytest.raises(ConfigError, match="1 problem,"):
        raise_if_problems((one,))


# --- against Propexo's names -------------------------------------------------------------


def test_reference_data_is_built_with_every_column_even_from_empty_lists() -> None:
    built = build_reference_data({kind: [] for kind in REF_KINDS}, {})
    assert list(built.vendors.columns) == ["id", "x_id", "name", "x_location_id", "location_id"]
    assert built.leases.empty and "resident_id" in built.leases
    data = refs()
    assert data.vendors["location_id"].tolist() == ["loc1"] * 3
    # A lease with no residents lists no one; one with a resident lists them.
    assert sorted(data.leases["resident_id"]) == ["r1", "r2", "r3"]


def test_closest_ranks_propexo_s_names_and_drops_poor_ones() -> None:
    data = refs()
    found = closest(data, "vendor", "Brightline Electric", limit=2)
    assert [label for label, _ in found] == ["Brightline Electric Inc.", "Brightline Electrical"]
    assert found[0][1] >= found[1][1]
    assert closest(data, "vendor", "zzzz qqqq") == []
    assert closest(data, "resident", "Morgan Jesup", among=["Dana Reyes"]) == []
    assert closest(data, "resident", "Morgan Jesup", among=[]) == []


def test_a_target_is_known_by_name_or_code_whatever_its_case() -> None:
    data = refs()
    assert known_target(data, "property", "oak ridge apartments") == "Oak Ridge Apartments"
    assert known_target(data, "property", "OAK") == "Oak Ridge Apartments"
    assert known_target(data, "gl_account", "6100") == "Repairs"
    assert known_target(data, "vendor", "Nobody Inc") is None


def test_alias_lines_to_names_propexo_does_not_know_are_problems_with_a_suggestion(
    tmp_path: Path,
) -> None:
    (tmp_path / "vendors.csv").write_text(
        CSV_HEADER + "Acme,ACME Plumbing LLC\nBright,Brightline Electrc Inc\nZ,qqqqqqq\n"
    )
    problems = unknown_targets(refs(), read_aliases(tmp_path))
    assert [(p.line, p.message) for p in problems] == [
        (
            3,
            'propexo_name "Brightline Electrc Inc" is not a vendor Propexo knows; did you mean '
            '"Brightline Electric Inc."?',
        ),
        (4, 'propexo_name "qqqqqqq" is not a vendor Propexo knows'),
    ]


def test_charge_code_names_include_propexo_s_and_the_aliases() -> None:
    aliases = {"charge_codes": pd.DataFrame({"spreadsheet_name": ["Pet Fee - Monthly"]})}
    assert charge_code_names(None) == frozenset()
    assert charge_code_names(refs(aliases)) == {"rent", "pet", "pet fee monthly"}


def test_the_newest_stamp_ignores_what_is_not_a_time() -> None:
    frame = pd.DataFrame({"at": ["2026-03-01T00:00:00Z", "garbage", "2026-03-02T01:02:03Z"]})
    assert newest_stamp(frame, "at") == "2026-03-02T01:02:03.000000Z"
    assert newest_stamp(frame, "missing") is None
    assert newest_stamp(frame.iloc[:0], "at") is None
    assert newest_stamp(pd.DataFrame({"at": ["x"]}), "at") is None


# --- what an alias settles ---------------------------------------------------------------

UNKNOWN = pd.DataFrame(
    {
        "kind": ["vendor", "vendor", "vendor", "resident", "charge_code"],
        "name": ["Acme Plumbng", "ACME plumbng", "Brightline", "Morgan Jesup", "Pet"],
        "source_file": ["b.csv", "a.csv", "a.csv", "roll.csv", "roll.csv"],
        "source_row": [6, 5, 9, 12, 12],
        "amount_text": ["512.07", "1,126.59", "", "950.00", "25.00"],
        "run_id": ["r1"] * 5,
    }
)


def test_rows_named_compares_names_as_the_resolver_does() -> None:
    rows = rows_named(UNKNOWN, "vendor", "acme  PLUMBNG")
    assert rows["source_row"].tolist() == [6, 5]
    assert rows_text(rows) == "a.csv row 5 (1,126.59); b.csv row 6 (512.07)"
    assert rows_named(UNKNOWN.iloc[:0], "vendor", "x").empty
    both = pd.concat([rows, UNKNOWN.iloc[[2]]])
    assert rows_text(both) == "a.csv rows 5, 9 (1,126.59); b.csv row 6 (512.07)"


def test_one_suggestion_per_name_not_yet_aliased_sure_only_when_unrivalled() -> None:
    files = AliasFiles(
        Path("m"),
        {"charge_codes": pd.DataFrame({"spreadsheet_name": ["pet"], "propexo_name": ["PET"]})},
    )
    found = suggestions(refs(), UNKNOWN, files)
    assert [(s.kind, s.name) for s in found] == [
        ("vendor", "Acme Plumbng"),
        ("vendor", "Brightline"),
        ("resident", "Morgan Jesup"),
    ]
    acme, bright, morgan = found
    assert (acme.target, acme.sure) == ("ACME Plumbing LLC", True)
    assert len(acme.rows) == 2
    # Two Brightlines are as close as each other: offered, never taken without asking.
    assert bright.target is not None and bright.target.startswith("Brightline")
    assert not bright.sure
    assert bright.others
    assert morgan.target == "Morgan Jessup"


def test_a_resident_is_offered_only_the_residents_living_where_the_rows_are() -> None:
    data = refs()
    here = [("p2", "7", "Elm Court unit 7")]
    found = suggestions(data, UNKNOWN.iloc[[3]], AliasFiles(Path("m")), {"morgan jesup": here})
    places = {"morgan jesup": here}
    assert places_named(places, "MORGAN  Jesup") == here
    assert places_named(places, "Someone Else") == []
    assert residents_at(data, here) == ["Morgan Jesperson"]
    assert len(found) == 1
    assert found[0].target in (None, "Morgan Jesperson")


def test_an_alias_to_a_resident_of_another_unit_says_who_lives_where() -> None:
    data = refs()
    rows_at = [("p1", "102", "Oak Ridge Apartments unit 102")]
    why = misplaced_resident(data, "Morgan Jessup", rows_at)
    assert why == (
        '"Morgan Jessup" lives in Oak Ridge Apartments unit 101, not in Oak Ridge Apartments '
        'unit 102 where the rows are (Propexo has "Dana Reyes" there); an alias to them would '
        "post these rows to another tenant's account"
    )
    assert misplaced_resident(data, "Dana Reyes", rows_at) is None
    assert misplaced_resident(data, "Dana Reyes", []) is None
    nobody = misplaced_resident(data, "Pat Nobody", [("p2", "99", "Elm Court unit 99")])
    assert nobody is not None
    assert '"Pat Nobody" has no current lease' in nobody
    assert "Propexo has no current resident there" in nobody
