"""Every reconcile outcome, against the real sandbox, plus the pure matching rules."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pandas as pd

from pipelines.ledger import Ledger
from pipelines.reconcile import match_charges
from sandbox.app import SandboxConfig
from sandbox.server import running_sandbox
from tests.conftest import run_cli
from tests.test_load import env_for


def ledger_charges(**overrides: object) -> pd.DataFrame:
    base = {
        "record_key": "charge:i:TOA",
        "kind": "charge",
        "reference_number": "TOA",
        "amount_cents": 1000,
        "transaction_date": "2026-12-01",
        "charge_code_id": "c1",
        "resident_id": "r1",
        "confirmed_at": "2026-11-20T10:00:00.000000Z",
        "sent_at": "2026-11-20T09:59:00.000000Z",
    }
    return pd.DataFrame([{**base, **overrides}])


def synced(*rows: dict[str, object]) -> pd.DataFrame:
    base = {
        "id": "p1",
        "reference_number": "TOA",
        "amount_in_cents": 1000,
        "transaction_date": "2026-12-01T00:00:00.000Z",
        "charge_code_id": "c1",
        "resident_id": "r1",
    }
    return pd.DataFrame([{**base, **r} for r in rows], columns=list(base))


def test_pure_outcomes() -> None:
    after = "2026-11-20T11:00:00Z"
    cases = [
        (synced({}), after, "matched"),
        (synced({"amount_in_cents": 999}), after, "mismatched"),
        (synced({}, {"id": "p2"}), after, "duplicated"),
        (synced(), after, "missing"),
        (synced(), "2026-11-20T09:00:00Z", "awaiting_sync"),  # the last sync was before the post
        (synced(), None, "awaiting_sync"),
        (synced({"reference_number": "CHANGED"}), after, "matched"),  # found by content
    ]
    for frame, last_sync, outcome in cases:
        got = match_charges(ledger_charges(), frame, last_sync)["outcome"].iloc[0]
        assert got == outcome, (frame.to_dict("records"), last_sync)


def test_content_matching_respects_multiplicity() -> None:
    ledger = pd.concat(
        [ledger_charges(), ledger_charges(record_key="charge:i:TOB", reference_number="TOB")]
    )
    one_copy = synced({"reference_number": "X1"})
    outcomes = match_charges(ledger, one_copy, "2026-11-20T11:00:00Z")["outcome"].tolist()
    assert sorted(outcomes) == ["matched", "missing"]


def state_of(data_dir: Path) -> pd.DataFrame:
    ledger = Ledger(data_dir / "ledger.sqlite", readonly=True)
    try:
        return ledger.records()
    finally:
        ledger.close()


def test_each_outcome_against_the_sandbox(workspace: Path) -> None:
    with (
        running_sandbox(SandboxConfig(job_delay_s=0.05, rate_limit=1000)) as box,
        httpx.Client(
            base_url=box.base_url, headers={"Authorization": "Bearer sandbox-token"}
        ) as api,
    ):
        env = env_for(box, workspace)
        assert run_cli("--data-dir", str(workspace), "run", env=env).returncode == 0
        assert run_cli("--data-dir", str(workspace), "reconcile", "--sync", env=env).returncode == 0
        records = state_of(workspace)
        assert set(records["state"]) == {"matched"}

        pms = api.get("/_sandbox/records").json()["results"]
        invoice = next(r for r in pms if r["kind"] == "invoice")
        charges = [r for r in pms if r["kind"] == "charge"]
        altered, doubled = charges[0], charges[1]
        # Someone deletes a bill and edits a charge in Rent Manager; a charge gets posted twice.
        api.delete(f"/_sandbox/records/invoice/{invoice['id']}")
        api.patch(f"/_sandbox/records/charge/{altered['id']}", json={"amount_in_cents": 1})
        again = {
            k: doubled[k]
            for k in ("resident_id", "charge_code_id", "transaction_date", "reference_number")
        }
        again |= {"notes": doubled["description"], "amount_in_cents": doubled["amount_in_cents"]}
        api.post(
            "/v1/resident-charges/batch/rentmanager/",
            json={"integration_id": "int_rm_demo", "charges": [again]},
        )
        stray = dict(again, reference_number="TOSTRAY00001")
        api.post(
            "/v1/resident-charges/batch/rentmanager/",
            json={"integration_id": "int_rm_demo", "charges": [stray]},
        )
        time.sleep(1.2)

        result = run_cli("--data-dir", str(workspace), "reconcile", "--sync", env=env)
        assert result.returncode == 1  # exceptions found
        assert "unexpected 1" in result.stdout
        records = state_of(workspace).set_index("reference_number", drop=False)
        by_invoice = state_of(workspace).set_index("invoice_number")
        assert by_invoice.loc[invoice["invoice_number"], "state"] == "missing"
        assert records.loc[altered["reference_number"], "state"] == "mismatched"
        assert "≠ posted" in records.loc[altered["reference_number"], "note"]
        assert records.loc[doubled["reference_number"], "state"] == "duplicated"
        counts = state_of(workspace)["state"].value_counts().to_dict()
        assert counts == {"matched": 141 - 3, "missing": 1, "mismatched": 1, "duplicated": 1}

        report = next((workspace / "reports").iterdir())
        summary = json.loads((report / "summary.json").read_text())
        rec = summary["reconciliation"]
        assert (rec["missing"], rec["mismatched"], rec["duplicated"]) == (1, 1, 1)
        for location in summary["by_location"]:
            assert location["ties_out"]
            assert location["posted_total_cents"] == sum(
                location[k]
                for k in (
                    "matched_cents",
                    "awaiting_sync_cents",
                    "missing_cents",
                    "mismatched_cents",
                    "duplicated_cents",
                )
            )
