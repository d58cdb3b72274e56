"""A person settles what tieout cannot prove: records in doubt, and records Propexo refused."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from pipelines.core.errors import InputError
from pipelines.ledger import Ledger
from pipelines.reconciling.resolve import evidence, send_again, settle_by_hand

KEYS = [f"charge:int_rm_demo:TO{i:04d}" for i in range(4)]


def _ledger(path: Path) -> Ledger:
    """Four charges: two in doubt (sending), one refused by Propexo, one confirmed."""
    ledger = Ledger(path)
    ledger.stage_records(
        "r1",
        None,
        pd.DataFrame(
            {
                "record_key": KEYS,
                "kind": "charge",
                "integration_id": "int_rm_demo",
                "location_id": "L",
                "amount_cents": [1000, 2050, 300, 400],
                "content_hash": "h",
                "payload": [json.dumps({"n": i}) for i in range(4)],
                "source_rows": [[i + 2] for i in range(4)],
                "source_file": "rent.csv",
                "reference_number": [k.rsplit(":", 1)[1] for k in KEYS],
            }
        ),
    )
    ledger.transition(KEYS[:2], "sending", run_id="r1")
    ledger.transition([KEYS[2]], "refused", run_id="r1")
    ledger.transition([KEYS[3]], "confirmed", run_id="r1")
    return ledger


def _state(ledger: Ledger, key: str) -> str:
    records = ledger.records(columns=["record_key", "state"])
    return str(records.set_index("record_key").loc[key, "state"])


def test_a_record_in_doubt_settled_present_is_confirmed_with_the_reason_on_record(
    tmp_path: Path,
) -> None:
    with _ledger(tmp_path / "ledger.sqlite") as ledger:
        settled = settle_by_hand(
            ledger, [KEYS[0]], present=True, rm_id="77", reason="seen in RM by J. Doe"
        )
        assert settled == [KEYS[0]]
        assert _state(ledger, KEYS[0]) == "confirmed"
        assert _state(ledger, KEYS[1]) == "sending"  # only the one named
        last = ledger.events(KEYS[0])[-1]
        assert last[1:] == ("sending", "confirmed", "resolve --present: seen in RM by J. Doe")

        # Absent: made ready, so the next run sends it; every record in doubt when none named.
        assert settle_by_hand(ledger, None, present=False, rm_id=None, reason="not in RM") == [
            KEYS[1]
        ]
        assert _state(ledger, KEYS[1]) == "ready"
        assert settle_by_hand(ledger, None, present=False, rm_id=None, reason="again") == []


def test_only_records_in_doubt_may_be_settled_by_hand(tmp_path: Path) -> None:
    with _ledger(tmp_path / "ledger.sqlite") as ledger:
        with pytest.raises(InputError, match=r"not in doubt, so not settled: .*TO0003"):
            settle_by_hand(ledger, [KEYS[3]], present=False, rm_id=None, reason="x")
        assert _state(ledger, KEYS[3]) == "confirmed"  # a proven record is never touched


def test_a_refused_record_is_sent_again_only_when_a_person_says_so(tmp_path: Path) -> None:
    with _ledger(tmp_path / "ledger.sqlite") as ledger:
        with pytest.raises(InputError, match="not refused by Propexo"):
            send_again(ledger, [KEYS[0]], reason="fixed")
        assert send_again(ledger, None, reason="charge code fixed in RM") == [KEYS[2]]
        assert _state(ledger, KEYS[2]) == "ready"
        assert ledger.events(KEYS[2])[-1][3] == "resolve --send-again: charge code fixed in RM"


def test_the_evidence_shown_before_settling_says_what_was_searched(tmp_path: Path) -> None:
    with _ledger(tmp_path / "ledger.sqlite") as ledger:
        lines = evidence(ledger, [KEYS[1]], "int_rm_demo")
    assert lines[0].startswith(f"{KEYS[1]} (charge, 20.50): POST at ")
    assert lines[1] == "  the write log has not been searched for it yet"
    assert not any(KEYS[0] in line for line in lines)
