"""What the ledger asks the kinds about their keys (#40): which record kinds are one record
under either sign (``Kind.twins``) and whose reference numbers tieout derives
(``Kind.derived_numbers``), in place of ``charge``/``credit`` written into shared code."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace

import pandas as pd
import pytest

from pipelines.core.errors import LedgerError
from pipelines.core.record_columns import RECORD
from pipelines.kinds import register, registered, unregister
from pipelines.ledger import RECORD_SCHEME, Ledger


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
