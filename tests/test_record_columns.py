"""The ledger's record model, declared once (#29): the DDL, what staging writes and the read
lists all come from it, so a new core column is one entry (plus a migration for the ledgers
that exist), and a kind's own column is one entry in its package: the ledger adds it (#40)."""

from __future__ import annotations

import pandas as pd
import pytest

from pipelines.core.errors import LedgerError
from pipelines.core.record_columns import CORE, RECORD, Column, Listed, RecordModel
from pipelines.kinds import registered
from pipelines.ledger import Ledger, records, schema
from pipelines.ledger.database import connect

UNIT = Column("unit_id", "TEXT", "optional", matched=True)  # a charge's unit, say
REMINDERS = Column("reminders_sent", "INTEGER")  # set later, never staged


def _with_new_columns() -> RecordModel:
    model = RecordModel(RECORD.columns())
    model.register_attributes(["charge", "credit"], [UNIT])
    model.register_attributes(["invoice"], [REMINDERS])
    return model


def test_the_lists_today_are_the_ones_the_code_used_to_spell_out() -> None:
    """What the declaration yields is what the parallel lists it replaced said (as sets: no
    read or write depends on the order of columns)."""
    from pipelines.kinds.charge.payloads import CHARGE_COLUMNS
    from pipelines.kinds.invoice.payloads import INVOICE_COLUMNS
    from pipelines.reconciling.reconcile import LEDGER_COLUMNS
    from pipelines.runs.files import RECORD_FRAME_COLUMNS

    frame = {"record_key", "kind", "integration_id", "location_id", "amount_cents"} | {
        "content_hash",
        "payload",
        "source_rows",
        "source_file",
    }
    assert set(RECORD_FRAME_COLUMNS) == frame
    assert set(INVOICE_COLUMNS) == frame | {
        "vendor_id",
        "invoice_number",
        "transaction_date",
        "total_amount_in_cents",
        "defaulted",
    }
    assert set(CHARGE_COLUMNS) == frame | {
        "reference_number",
        "resident_id",
        "charge_code_id",
        "transaction_date",
        "property_id",
        "charge_notes",
    }
    assert set(LEDGER_COLUMNS) == {"record_key", "kind", "state", "amount_cents"} | {
        "reference_number",
        "invoice_number",
        "vendor_id",
        "resident_id",
        "charge_code_id",
        "transaction_date",
        "confirmed_at",
        "doubt_since",
        "sent_at",
        "created_record_id",
        "propexo_id",
        "found_amount_cents",
        "note",
    }
    assert RECORD.integers() == {"amount_cents", "batch_index", "found_amount_cents", "attempts"}
    assert set(RECORD.bodies()) == {"payload", "source_rows", "errors"}
    own = {column.name for kind in registered() for column in kind.columns}
    assert len(RECORD.names()) == len(set(RECORD.names())) == len(CORE) + len(own)


def test_a_column_added_to_the_declaration_reaches_the_ddl_staging_and_the_reads(
    ledger_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One entry in the declaration: the table a new ledger gets has it, staging writes it
    from the records' frame, every read returns it (typed, if a whole number), and reconcile's
    matching and its kind's frame list it."""
    model = _with_new_columns()
    assert "    unit_id TEXT,\n" in model.ddl()
    assert "    reminders_sent INTEGER\n" in model.ddl()
    assert "unit_id" in model.matched() and "reminders_sent" not in model.matched()
    assert model.integers() == RECORD.integers() | {"reminders_sent"}
    assert "unit_id" in model.framed("charge") and "unit_id" not in model.framed("invoice")
    assert "reminders_sent" in model.framed("invoice")
    assert model.framed() == RECORD.framed()  # the core is every kind's, unchanged
    monkeypatch.setattr(schema, "RECORD", model)
    monkeypatch.setattr(records, "RECORD", model)

    # A new ledger made from the declaration has both columns, in the engine's own types.
    if ledger_url.startswith("sqlite"):
        created_url = ledger_url.replace("ledger.sqlite", "created.sqlite")
    else:
        from tests.postgres import fresh_database

        created_url = fresh_database(ledger_url.rsplit("/", 1)[0] + "/postgres")
    db = connect(created_url)
    schema.create(db)
    assert {"unit_id", "reminders_sent"} <= db.columns("records")
    db.close()

    with Ledger(ledger_url) as ledger:
        # A ledger that exists gets a kind's columns when it is opened: no migration revision.
        assert {"unit_id", "reminders_sent"} <= ledger.db.columns("records")
        assert schema.add_kind_columns(ledger.db) == []  # once
        keys = ["charge:i:A1", "charge:i:A2", "invoice:i:v:7"]
        staged, conflicts = ledger.stage_records(
            "r1",
            None,
            pd.DataFrame(
                {
                    "record_key": keys,
                    "kind": ["charge", "charge", "invoice"],
                    "integration_id": "i",
                    "location_id": "L",
                    "amount_cents": [100, 200, 300],
                    "content_hash": "h",
                    "payload": [None, None, {"n": 1}],  # charges: built from columns
                    "source_rows": [[2], [3], [4]],
                    "source_file": "f.csv",
                    "reference_number": ["A1", "A2", None],
                    "unit_id": ["u-101", None, None],
                }
            ),
        )
        assert staged == keys and conflicts == []
        ledger.db.execute(
            "UPDATE records SET reminders_sent = 2 WHERE record_key = ?", ("charge:i:A1",)
        )
        ledger.db.execute(
            "UPDATE records SET reminders_sent = 0 WHERE record_key <> ?", ("charge:i:A1",)
        )
        everything = ledger.records().set_index("record_key")
        assert everything["unit_id"].fillna("-").tolist() == ["u-101", "-", "-"]
        assert everything["reminders_sent"].tolist() == [2, 0, 0]
        assert str(everything["reminders_sent"].dtype) == "int64"
        matched = ledger.records(columns=model.matched())
        assert matched["unit_id"].fillna("-").tolist() == ["u-101", "-", "-"]
        assert set(ledger.records(columns=["unit_id"]).columns) == {"unit_id"}


def test_a_kind_registers_its_attributes_once_alike_and_may_register_late() -> None:
    """Two kinds may share an attribute if they declare it alike; an unlike one, or one the
    ledger could not add to a table that has rows, is refused; a late registration (after a
    read) is seen by every read list, even one kept from import on."""
    model = RecordModel(CORE)
    matched = Listed(model.matched)  # as reconcile keeps its read list
    date = Column("transaction_date", "TEXT", "optional", matched=True)
    model.register_attributes(["invoice"], [date])
    model.register_attributes(["charge", "credit"], [date])
    (shared,) = (c for c in model.columns() if c.name == "transaction_date")
    assert shared.kinds == ("invoice", "charge", "credit")
    model.register_attributes(["charge"], [date])  # nothing new
    with pytest.raises(LedgerError, match="declared twice, unalike"):
        model.register_attributes(["payment"], [Column("transaction_date", "INTEGER")])
    with pytest.raises(LedgerError, match="declared twice, unalike"):
        model.register_attributes(["payment"], [Column("amount_cents", "INTEGER NOT NULL")])
    for refused in (
        Column("payer_id", "TEXT NOT NULL", "optional"),
        Column("payer_id", "TEXT", "cents"),
        Column("Payer Id", "TEXT", "optional"),
        Column("payer_id", "REAL"),
    ):
        with pytest.raises(LedgerError, match="a kind's own column is named in lower case"):
            model.register_attributes(["payment"], [refused])
    assert "payer_id" not in matched
    model.register_attributes(["payment"], [Column("payer_id", "TEXT", "optional", matched=True)])
    assert (
        "payer_id" in matched and matched[-1] == "payer_id" and len(matched) == len(list(matched))
    )
    assert "payer_id" in repr(matched)
    with pytest.raises(LedgerError, match="need the kinds"):
        model.register_attributes([], [Column("payer_id", "TEXT")])
