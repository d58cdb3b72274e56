"""The common case's defaults (#40, ``pipelines.kinds.common``): a kind that posts one record
per request and finds it by a reference number after the sync writes only what differs. Each
default is checked here against a sandbox that serves a kind of its own (parking permits,
listed right after the write), and ``define`` against what a kind's module gives it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import httpx
import pandas as pd
import pandera.pandas as pa
import pytest
from pandera.typing import Series

from pipelines.core.config import Secret
from pipelines.core.models import IssueCode
from pipelines.kinds import registered
from pipelines.kinds.api import Common, Conflict, KindContext, SyncedRecord, define
from pipelines.ledger import Ledger
from pipelines.posting.propexo import PropexoClient
from sandbox.api import (
    RunningSandbox,
    SandboxConfig,
    SandboxKind,
    Write,
    read_seed,
    running_sandbox,
)

PATH, LIST = "/v1/parking-permits/rentmanager/", "/v1/parking-permits/"
BODY = {
    "type": "object",
    "required": ["integration_id", "reference_number", "fee_in_cents"],
    "properties": {
        "integration_id": {"type": "string"},
        "reference_number": {"type": "string"},
        "fee_in_cents": {"type": "integer"},
    },
}
PERMITS = SandboxKind(
    name="permit",
    sync_model="parking_permits",
    list_route=LIST,
    writes=(Write(PATH, "CREATE_PERMIT", schema=BODY),),
    filters=("integration_id", "reference_number"),
    cached_at_once=True,
)


class SyncedPermit(SyncedRecord):
    reference_number: Series[str] = pa.Field(nullable=True)
    fee_in_cents: Series[float] = pa.Field(nullable=True)


INTEGRATION = str(read_seed(None)["integrations"][0]["id"])
COMMON = Common("permit", ("permit",), {"permit": PATH}, LIST, SyncedPermit, amount="fee_in_cents")


@pytest.fixture
def permits() -> Iterator[RunningSandbox]:
    config = SandboxConfig(job_delay_s=0.05, rate_limit=1000, kinds=(PERMITS,))
    with running_sandbox(config) as box:
        integration = INTEGRATION
        for reference, cents in (("P-1", 500), ("P-2", 700)):
            answer = httpx.post(
                box.base_url + PATH,
                json={
                    "integration_id": integration,
                    "reference_number": reference,
                    "fee_in_cents": cents,
                },
                headers={"Authorization": f"Bearer {box.config.token}"},
            )
            assert answer.status_code < 300, answer.text
        yield box


def _records(*rows: tuple[str, int]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "record_key": [f"permit:i:{ref}" for ref, _ in rows],
            "kind": "permit",
            "reference_number": [ref for ref, _ in rows],
            "amount_cents": [cents for _, cents in rows],
            "location_id": "L1",
            "payload": [{"reference_number": ref, "fee_in_cents": c} for ref, c in rows],
        }
    )


def test_the_defaults_read_propexo_and_the_ledger_for_the_kind(
    permits: RunningSandbox, tmp_path: Path
) -> None:
    integration = INTEGRATION
    with (
        PropexoClient(permits.base_url, Secret(permits.config.token)) as client,
        Ledger(tmp_path / "ledger.sqlite") as ledger,
    ):
        ctx = KindContext(registered(), integration, ledger=ledger, client=client)
        listed = COMMON.fetch_all(ctx, date(2026, 1, 1), date(2026, 12, 31))
        assert sorted(listed["reference_number"]) == ["P-1", "P-2"]
        COMMON.refresh(ctx, _records())
        assert ledger.cursor(integration, "permit").newest is not None  # and read from it next
        COMMON.refresh(ctx, _records())
        hits, ambiguous = COMMON.find_in_doubt(ctx, _records(("P-2", 700), ("P-9", 1)))
        assert set(hits) == {"permit:i:P-2"} and ambiguous == set()
        assert COMMON.find_in_doubt(ctx, _records()) == ({}, set())
        assert COMMON.gone(ctx, pd.Series(dtype=object), "2000-01-01T00:00:00Z").empty
        rows, skipped = COMMON.adopt(listed, ctx)
        assert skipped == 0
        assert sorted((r["record_key"], r["amount_cents"]) for r in rows) == [
            (f"permit:{integration}:P-1", 500),
            (f"permit:{integration}:P-2", 700),
        ]


def test_the_pure_defaults() -> None:
    synced = pd.DataFrame(
        {
            "id": ["a", "b", "c"],
            "reference_number": ["P-1", "P-2", "P-2"],
            "fee_in_cents": [500, 9, 9],
        }
    )
    records = _records(("P-1", 500), ("P-2", 700), ("P-3", 300))
    ctx = KindContext(registered(), "i")
    found = COMMON.found(records, synced, ctx)
    assert found["permit:i:P-1"] == "a" and found["permit:i:P-2"] in {"b", "c"}
    assert set(found) == {"permit:i:P-1", "permit:i:P-2"}
    assert COMMON.found(records.iloc[:0], synced, ctx) == {}
    outcomes = COMMON.match(records, synced, ctx, None).set_index("record_key")
    assert outcomes.loc["permit:i:P-1", "outcome"] == "matched"
    assert outcomes.loc["permit:i:P-3", "outcome"] != "matched"
    assert set(COMMON.match(records, synced.iloc[:0], ctx, None)["outcome"]) != {"matched"}
    assert COMMON.match(records.iloc[:0], synced, ctx, None).empty
    assert COMMON.unexpected(records, synced) == 0
    requests = COMMON.plan_requests(records, 100)
    first = requests[0]
    assert (first.path, first.kind, first.keys, first.amount_cents) == (
        PATH,
        "permit",
        ["permit:i:P-1"],
        500,
    )
    with pytest.raises(ValueError, match="has no stored body"):
        COMMON.plan_requests(records.assign(payload=None), 100)
    (issue,) = COMMON.conflict_issues(
        Conflict("permit:i:P-1", "f.csv", 4, "run-1", 500, 600), records.iloc[0], "f.csv"
    )
    assert issue.code is IssueCode.CONFLICT and issue.source_row == 4
    assert "P-1 was posted in run run-1 as $5.00; this file says $6.00" in issue.message
    assert COMMON.as_read({"id": "x", "fee_in_cents": 5}, ctx) == {"id": None, "fee_in_cents": 5}
    assert COMMON.identity({"reference_number": "P-1"}) == "permit:P-1"
    assert COMMON.identity({"reference_number": ""}) is None
    rows, skipped = COMMON.adopt(synced.assign(reference_number=["P-1", None, ""]), ctx)
    assert [r["record_key"] for r in rows] == ["permit:i:P-1"] and skipped == 2


def test_define_takes_the_modules_functions_and_the_common_case_for_the_rest() -> None:
    def validate(*args: object) -> None: ...

    def transform(*args: object) -> None: ...

    def found(*args: object) -> dict[str, str]:
        return {}

    constants = {
        "plural": "permits",
        "source_columns": ("reference_number", "amount"),
        "line_schema": SyncedPermit,
        "payload_schema": SyncedPermit,
        "sync_model": "parking_permits",
        "dated_sync": False,
    }
    kind = define(
        {"validate": validate, "transform": transform, "found": found},
        source_kind="permit",
        read_path=LIST,
        synced=SyncedPermit,
        write_path=PATH,
        amount="fee_in_cents",
        **constants,
    )
    assert kind.found is found and kind.validate is validate
    assert kind.match.__self__.source_kind == "permit"  # type: ignore[attr-defined]
    assert kind.write_paths == {"permit": PATH} and kind.record_kinds == ("permit",)
    assert "reference_number" in kind.synced_fields
    assert kind.record_columns[0] == "record_key"
    with pytest.raises(ValueError, match="its module defines no validate, transform"):
        define(
            {},
            source_kind="permit",
            read_path=LIST,
            synced=SyncedPermit,
            write_path=PATH,
            **constants,
        )
    with pytest.raises(ValueError, match="give write_path"):
        define(
            {"validate": validate, "transform": transform},
            source_kind="permit",
            read_path=LIST,
            synced=SyncedPermit,
            **constants,
        )
