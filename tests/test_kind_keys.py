"""What shared code asks the kinds in place of lists of them (#40): which record kinds are one
record under either sign (``Kind.twins``), whose reference numbers tieout derives
(``Kind.derived_numbers``), and which Propexo lists and kinds of names they resolve
(``Kind.ref_lists``, ``Kind.name_kinds``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from enum import StrEnum

import pandas as pd
import pytest

from pipelines.core.errors import LedgerError
from pipelines.core.hints import ALIAS_FILES, REFS_KINDS
from pipelines.core.record_columns import RECORD
from pipelines.core.references import NameKind, RefList
from pipelines.kinds import register, registered, unregister
from pipelines.ledger import RECORD_SCHEME, Ledger
from pipelines.resolving.aliases import KIND_OF_ISSUE
from pipelines.resolving.refs import REF_KINDS, build_reference_data, missing_lists
from pipelines.resolving.transform import propexo_names, resolve_named


def _frame(keys: list[str], digest: str = "h") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "record_key": keys,
            "kind": [key.split(":", 1)[0] for key in keys],
            "integration_id": "i",
            "location_id": "L",
            "amount_cents": 100,
            "content_hash": digest,
            "payload": [json.dumps({"n": i}) for i in range(len(keys))],
            "source_rows": [[i + 2] for i in range(len(keys))],
            "source_file": "f.csv",
        }
    )


@pytest.fixture
def fees() -> Iterator[None]:
    """A kind from outside, charge-like: fees that turn into refunds when their sign flips,
    numbered by tieout."""
    charge = registered().source("charge")
    register(
        replace(
            charge,
            source_kind="fee",
            record_kinds=("fee", "refund"),
            write_paths={"fee": "/v1/fees/", "refund": "/v1/refunds/"},
            issue_codes=None,
            twins=(("fee", "refund"),),
            derived_numbers=True,
        )
    )
    try:
        yield
    finally:
        unregister("fee")


def test_the_built_in_kinds_declare_what_the_ledger_wrote_of_them() -> None:
    registered()
    assert RECORD.twins() == {"charge": "credit", "credit": "charge"}
    assert RECORD.derived() == ("charge", "credit")


def _from_before_the_scheme(url: str, kinds: list[str], scheme: str | None) -> None:
    """A ledger holding one record of each of ``kinds``, its ``record_scheme`` as given."""
    with Ledger(url) as ledger:
        ledger.stage_records(
            "r1", None, _frame([f"{kind}:i:TO{n}" for n, kind in enumerate(kinds)])
        )
        with ledger.db.transaction():
            ledger.db.execute("DELETE FROM meta WHERE key = 'record_scheme'")
        if scheme is not None:
            ledger.set_meta("record_scheme", scheme)


# Which older ledgers open: exactly those main's `kind IN ('charge', 'credit')` let through.
@pytest.mark.parametrize(
    ("kinds", "scheme", "opens"),
    [
        ([], None, True),  # empty: this version's scheme recorded
        (["invoice"], None, True),  # invoices' numbers are the vendor's, not derived
        (["charge"], None, False),
        (["credit"], None, False),
        (["invoice", "credit"], None, False),
        ([], "2", False),  # an older scheme recorded: refused, whatever it holds
        (["charge"], RECORD_SCHEME, True),
    ],
)
def test_a_ledger_from_before_the_scheme_is_refused_by_what_the_kinds_say(
    ledger_url: str, kinds: list[str], scheme: str | None, opens: bool
) -> None:
    _from_before_the_scheme(ledger_url, kinds, scheme)
    if not opens:
        with pytest.raises(LedgerError, match="earlier tieout"):
            Ledger(ledger_url)
        return
    with Ledger(ledger_url) as ledger:
        assert ledger.get_meta("record_scheme") == RECORD_SCHEME


def test_a_kind_from_outside_with_derived_numbers_is_checked_too(
    ledger_url: str, fees: None
) -> None:
    _from_before_the_scheme(ledger_url, ["refund"], None)
    with pytest.raises(LedgerError, match="earlier tieout"):
        Ledger(ledger_url)
    unregister("fee")  # without the kind, nothing says its numbers were derived
    with Ledger(ledger_url) as ledger:
        assert ledger.get_meta("record_scheme") == RECORD_SCHEME


def test_a_twin_of_a_kind_from_outside_is_a_conflict(ledger_url: str, fees: None) -> None:
    with Ledger(ledger_url) as ledger:
        assert ledger.stage_records("r1", None, _frame(["fee:i:TO1", "invoice:i:v:1"]))[0]
        # The same number, its sign flipped: a refund now, where a fee was.
        staged, conflicts = ledger.stage_records("r2", None, _frame(["refund:i:TO1"], "other"))
        assert staged == []
        assert [c.record_key for c in conflicts] == ["refund:i:TO1"]
        # An invoice has no twin: its key is looked up as itself only.
        staged, conflicts = ledger.stage_records("r3", None, _frame(["invoice:i:v:2"]))
        assert (staged, conflicts) == (["invoice:i:v:2"], [])


def test_twins_are_two_of_the_kinds_own_record_kinds() -> None:
    charge = registered().source("charge")
    odd = replace(charge, source_kind="odd", record_kinds=("odd",), issue_codes=None)
    for twins in ((("odd", "credit"),), (("odd", "odd"),)):
        with pytest.raises(LedgerError, match="twins"):
            register(replace(odd, twins=twins))
        assert "odd" not in RECORD.twins()
        assert "odd" not in registered().record_kinds


# --- the reference lists and kinds of names a kind declares -------------------------------------


class SpaceCode(StrEnum):
    UNKNOWN_SPACE = "UNKNOWN_SPACE"


SPACES = RefList("parking_spaces", "/v1/parking-spaces/", ("id", "name", "x_location_id"))
SPACE = NameKind(
    "parking_space",
    refs="parking_spaces",
    file="parking_spaces",
    names=(("name",), ("x_location_id", "name")),
    label="name",
    column="parking_space_id",
    what="parking space",
    code=SpaceCode.UNKNOWN_SPACE,
)


@pytest.fixture
def parking() -> Iterator[None]:
    """A kind from outside that resolves parking spaces by name, per location."""
    invoice = registered().source("vendor_bill")
    register(
        replace(
            invoice,
            source_kind="parking",
            record_kinds=("parking",),
            write_paths={"parking": "/v1/parking/"},
            issue_codes=SpaceCode,
            ref_lists=(SPACES,),
            name_kinds=(SPACE,),
        )
    )
    try:
        yield
    finally:
        unregister("parking")


def _lists(**more: list[dict[str, object]]) -> dict[str, list[dict[str, object]]]:
    lists: dict[str, list[dict[str, object]]] = {name: [] for name in REF_KINDS}
    lists["locations"] = [{"id": "loc1", "x_id": "1", "name": "North"}]
    return lists | more


def test_the_built_in_kinds_declare_today_s_lists_and_names() -> None:
    registered()
    assert set(REF_KINDS) == {
        *("locations", "properties", "units", "residents", "leases"),
        *("vendors", "financial_accounts", "charge_codes"),
    }
    assert dict(ALIAS_FILES) == {
        "property": "properties",
        "resident": "residents",
        "charge_code": "charge_codes",
        "vendor": "vendors",
        "gl_account": "gl_accounts",
    }
    assert REFS_KINDS["gl_account"] == "financial_accounts"
    assert KIND_OF_ISSUE["UNKNOWN_GL_ACCOUNT"] == "gl_account"
    refs = build_reference_data(_lists(), {})
    assert list(refs.vendors.columns) == ["id", "x_id", "name", "x_location_id", "location_id"]
    with pytest.raises(AttributeError, match="no reference list 'spaces'"):
        refs.spaces  # noqa: B018


def test_a_kind_from_outside_brings_its_list_and_its_kind_of_names(parking: None) -> None:
    assert "parking_spaces" in REF_KINDS
    assert ALIAS_FILES["parking_space"] == "parking_spaces"
    assert REFS_KINDS["parking_space"] == "parking_spaces"
    assert KIND_OF_ISSUE["UNKNOWN_SPACE"] == "parking_space"
    assert missing_lists({"locations": []}) == [n for n in REF_KINDS if n != "locations"]
    spaces = [{"id": "s1", "name": "P-01", "x_location_id": "1"}]
    aliases = {
        "parking_spaces": pd.DataFrame({"spreadsheet_name": ["Bay 1"], "propexo_name": ["P-01"]})
    }
    refs = build_reference_data(_lists(parking_spaces=spaces), aliases)
    assert refs.parking_spaces["location_id"].tolist() == ["loc1"]
    rows = pd.DataFrame(
        {
            "space": ["p-01", "1 P-01", "Bay 1", "P-99"],
            "location_id": ["loc1"] * 4,
            "source_row": [2, 3, 4, 5],
        },
        index=[2, 3, 4, 5],
    )
    out, issues = resolve_named(rows, "space", "parking_space", refs, "f.csv")
    assert out["parking_space_id"].tolist()[:3] == ["s1", "s1", "s1"]
    assert pd.isna(out["parking_space_id"].iloc[3])
    assert [(i.source_row, i.code) for i in issues] == [(5, SpaceCode.UNKNOWN_SPACE)]
    assert "tieout alias add parking_space" in issues[0].message
    names = propexo_names(refs, "parking_space")
    assert set(names["label"]) == {"P-01"} and set(names["_key"]) == {"p 01", "1 p 01"}
    unregister("parking")
    assert "parking_spaces" not in REF_KINDS and "parking_space" not in ALIAS_FILES


def test_the_cli_offers_a_registered_kind_s_names(parking: None) -> None:
    from click.testing import CliRunner

    from pipelines.cli.main import cli

    shown = CliRunner().invoke(cli, ["alias", "add", "--help"])
    assert "parking_space" in shown.output, shown.output
    refused = CliRunner().invoke(cli, ["refs", "show", "parking_lots"])
    assert refused.exit_code == 2 and "parking_spaces" in refused.output, refused.output


def test_a_shared_or_unalike_reference_is_refused(parking: None) -> None:
    invoice = registered().source("vendor_bill")
    other = replace(invoice, source_kind="other", record_kinds=("other",), issue_codes=None)
    for lists, names in (
        ((replace(SPACES, path="/v1/elsewhere/"),), ()),
        ((), (replace(SPACE, file="bays"),)),
        ((RefList("units", "/v1/units/", ("id",)),), ()),
        ((), (replace(SPACE, alias="resident"),)),
    ):
        with pytest.raises(ValueError, match="shared or another kind's"):
            register(replace(other, ref_lists=lists, name_kinds=names))
        assert "other" not in registered().record_kinds
    with pytest.raises(ValueError, match="names no list 'lots'"):
        register(
            replace(other, ref_lists=(), name_kinds=(replace(SPACE, alias="lot", refs="lots"),))
        )
    # Declared alike by a second kind: one list, one kind of names.
    register(replace(other, ref_lists=(SPACES,), name_kinds=(SPACE,)))
    try:
        assert list(REF_KINDS).count("parking_spaces") == 1
    finally:
        unregister("other")
    assert "parking_space" in ALIAS_FILES  # still the parking kind's
