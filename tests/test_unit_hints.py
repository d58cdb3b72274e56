"""Alias hints, unit by unit: every command a hint prints is one a shell reads back as the
words it names (names with commas, quotes, dollars or spaces included), and it points at the
file the command writes, under the data folder the run read."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipelines.core.hints import (
    ALIAS_FILES,
    CORRECT_INVOICE,
    PLACEHOLDER,
    REFS_KINDS,
    SECOND_CHARGE_ADVICE,
    SETTLE_ITEM,
    AliasHints,
    shell_word,
)

# Any name a clerk may type or an export may hold: printable text, quotes and shell marks
# included (a NUL cannot reach a command line at all).
NAMES = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc")),
    min_size=1,
    max_size=40,
)


@given(NAMES)
def test_shell_word_reads_back_as_exactly_one_word(name: str) -> None:
    assert shlex.split(shell_word(name)) == [name]


@pytest.mark.parametrize(
    "name",
    ["Oak Ridge Apartments", "Smith, John", "O'Brien", "Acme & Sons", "Unit #4", "a;b|c"],
)
def test_a_plain_name_is_double_quoted_so_it_reads_as_written(name: str) -> None:
    word = shell_word(name)
    assert word == f'"{name}"'
    assert shlex.split(word) == [name]


@pytest.mark.parametrize("name", ['say "hi"', "$HOME", "back`tick`", "a\\b", "bang!"])
def test_a_name_a_double_quote_would_change_is_single_quoted(name: str) -> None:
    word = shell_word(name)
    assert not word.startswith('"')
    assert shlex.split(word) == [name]


def test_the_empty_name_is_still_one_word() -> None:
    assert shlex.split(shell_word("")) == [""]


def test_the_default_data_folder_is_not_named_in_the_command() -> None:
    hints = AliasHints()
    assert hints.command == "tieout"
    assert hints.mappings_dir == Path("data") / "mappings"


@given(st.text(alphabet="abc XYZ'\"$-_/", min_size=1, max_size=20))
def test_another_data_folder_is_named_so_the_command_writes_where_the_run_reads(
    folder: str,
) -> None:
    hints = AliasHints(Path("/srv") / folder)
    argv = shlex.split(hints.command)
    assert argv[:2] == ["tieout", "--data-dir"]
    assert Path(argv[2]) == hints.data_dir


@pytest.mark.parametrize("kind", sorted(ALIAS_FILES))
def test_each_kind_of_alias_has_its_file_and_its_reference_list(kind: str) -> None:
    hints = AliasHints(Path("here"))
    assert hints.file(kind) == Path("here") / "mappings" / f"{ALIAS_FILES[kind]}.csv"
    assert kind in REFS_KINDS


def test_an_unknown_kind_of_alias_is_refused_not_guessed() -> None:
    with pytest.raises(KeyError):
        AliasHints().file("landlord")


@given(NAMES, st.one_of(st.none(), NAMES))
def test_the_add_command_splits_into_the_exact_arguments(name: str, target: str | None) -> None:
    hints = AliasHints(Path("my data"))
    argv = shlex.split(hints.add("vendor", name, target))
    assert argv == [
        "tieout",
        "--data-dir",
        "my data",
        "alias",
        "add",
        "vendor",
        name,
        target or PLACEHOLDER,
    ]


def test_an_unknown_name_with_a_suggestion_says_the_command_and_the_file() -> None:
    hints = AliasHints()
    text = hints.unknown("property", "Oak Ridge", "Oak Ridge Apartments")
    command = text.removeprefix("If it is, run: ").split(" (it adds")[0]
    assert shlex.split(command) == [
        "tieout",
        "alias",
        "add",
        "property",
        "Oak Ridge",
        "Oak Ridge Apartments",
    ]
    assert str(Path("data") / "mappings" / "properties.csv") in text
    assert "refs show" not in text


def test_an_unknown_name_without_a_suggestion_says_where_propexo_lists_its_names() -> None:
    hints = AliasHints(Path("books"))
    text = hints.unknown("gl_account", "Repairs", None)
    assert PLACEHOLDER in text
    refs = text.split("Propexo's names: ")[1]
    assert shlex.split(refs) == [
        "tieout",
        "--data-dir",
        "books",
        "refs",
        "show",
        "financial_accounts",
    ]
    assert str(Path("books") / "mappings" / "gl_accounts.csv") in text


def test_an_ambiguous_name_is_searched_for_with_a_command_that_works_as_printed() -> None:
    text = AliasHints().ambiguous("vendor", "Smith, $Co")
    command = text.split("see them with ")[1]
    assert shlex.split(command) == ["tieout", "refs", "show", "vendors", "--search", "Smith, $Co"]
    assert "cannot tell them apart" in text


def test_a_charge_column_hint_aliases_its_header_to_a_charge_code() -> None:
    hints = AliasHints()
    text = hints.charge_column("Pet Fee - Recurring", "PET")
    command = text.removeprefix("run: ").split(" (it adds")[0]
    assert shlex.split(command) == [
        "tieout",
        "alias",
        "add",
        "charge_code",
        "Pet Fee - Recurring",
        "PET",
    ]
    assert text.endswith(f"(it adds a line to {hints.file('charge_code')})")


def test_a_charge_column_hint_without_a_code_names_what_to_fill_in() -> None:
    text = AliasHints().charge_column("Parking")
    assert shlex.split(text.removeprefix("run: ").split(" (it adds")[0])[-1] == (
        "<Propexo charge code>"
    )


def test_advice_about_posted_records_never_says_to_renumber_or_reverse() -> None:
    for advice in (CORRECT_INVOICE, SECOND_CHARGE_ADVICE):
        lowered = advice.lower()
        assert "new number" not in lowered
        assert "reverse" not in lowered
        assert "settle this item" in lowered
    assert SETTLE_ITEM in CORRECT_INVOICE
