"""The sandbox's parts below its routes, each on its own: the store (what Propexo's cache shows,
what a sync sees and stamps, the PMS side's edits and deletions, jobs), the Zod-like request
checks and the read models records are filled to, the kinds' declarations and lookups, and
the built-in kinds' own checks and list filters."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from sandbox.builtin_kinds import (
    BUILT_IN_KINDS,
    INVOICES,
    RESIDENT_CHARGES,
    dated_between,
    has_invoice_items,
    in_location,
    positive_amount,
)
from sandbox.faults import SandboxConfig
from sandbox.kinds import Kinds, SandboxKind, Write, new_record, pms_error, store_body, store_each
from sandbox.server import open_store, read_seed, with_integrations
from sandbox.store import Job, Store, new_id, now_iso
from sandbox.validation import (
    _fill,
    _is_datetime,
    _strict,
    error_body,
    load_request_validators,
    request_validator,
    zod_issues,
)
from tests.test_sandbox import INTEGRATION, SEED

CHARGES = {"charge": "transaction_date"}  # what a resident-charges sync sees, dated by


@pytest.fixture
def store() -> Any:
    s = Store()
    s.load_seed(SEED)
    yield s
    s.close()


def job(job_id: str, ready_at: float, created_at: str | None = None) -> Job:
    return Job(
        job_id,
        INTEGRATION,
        "CREATE_RESIDENT_CHARGE",
        "resident_charges",
        "SUCCESS",
        [],
        None,
        {"integration_id": INTEGRATION},
        created_at or now_iso(),
        ready_at,
    )


def written(store: Store, day: str, *, ready_at: float, job_id: str = "cjob1") -> str:
    """A charge written (not yet synced) whose job finishes at ``ready_at``."""
    record = new_record({"transaction_date": f"{day}T00:00:00", "_job_id": job_id}, INTEGRATION)
    store.apply_write(job(job_id, ready_at), [("charge", record)], synced=False)
    return str(record["id"])


# -- the store -----------------------------------------------------------------------------------


def test_ids_and_stamps_have_propexo_s_shape() -> None:
    assert len(new_id()) == 25 and new_id().startswith("c")
    assert new_id("cjob").startswith("cjob")
    assert new_id() != new_id()
    assert now_iso(0) == "1970-01-01T00:00:00.000Z"
    assert now_iso(1.2345) == "1970-01-01T00:00:01.234Z"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", now_iso())


def test_the_seed_is_loaded_once_per_kind_and_a_reset_loads_it_again(store: Store) -> None:
    assert not store.is_empty()
    assert len(store.records("resident")) == len(SEED["residents"])
    assert store.record("integration", INTEGRATION) is not None
    written(store, "2026-12-01", ready_at=0)
    store.reset(SEED)
    assert store.records("charge", synced_only=False) == []
    assert store.jobs() == []
    assert len(store.records("property")) == len(SEED["properties"])
    store.reset(None)
    assert store.is_empty()


def test_a_written_record_is_on_the_pms_side_at_once_and_in_the_cache_after_a_sync(
    store: Store,
) -> None:
    record_id = written(store, "2026-12-01", ready_at=0)
    assert store.record("charge", record_id) is None
    assert store.record("charge", record_id, synced_only=False) is not None
    assert store.sync(INTEGRATION, time.time(), kinds=CHARGES) == 1
    synced = store.record("charge", record_id)
    assert synced is not None and synced["last_seen"] == synced["updated_at"]
    # A second sync sees it again (last_seen moves) but makes nothing newly visible.
    assert store.sync(INTEGRATION, time.time() + 5, kinds=CHARGES) == 0
    again = store.record("charge", record_id)
    assert again is not None and again["last_seen"] > synced["last_seen"]
    assert again["updated_at"] == synced["updated_at"]


def test_a_sync_misses_a_job_still_running_when_it_started(store: Store) -> None:
    now = time.time()
    running = written(store, "2026-12-01", ready_at=now + 10, job_id="cjob_running")
    assert store.sync(INTEGRATION, now + 20, started_at=now, kinds=CHARGES) == 0
    assert store.record("charge", running, synced_only=False)["last_seen"] is None  # type: ignore[index]
    assert store.sync(INTEGRATION, now + 30, started_at=now + 15, kinds=CHARGES) == 1


def test_a_sync_sees_only_its_integration_its_kinds_and_its_window(store: Store) -> None:
    at = time.mktime((2026, 12, 6, 12, 0, 0, 0, 0, -1))
    inside = written(store, "2026-11-01", ready_at=0, job_id="cjob_in")
    outside = written(store, "2026-01-01", ready_at=0, job_id="cjob_out")
    assert store.sync("int_other", at, kinds=CHARGES, window_days=90) == 0
    assert store.sync(INTEGRATION, at, kinds={"invoice": None}, window_days=90) == 0
    assert store.sync(INTEGRATION, at, kinds=CHARGES, window_days=90) == 1
    assert store.record("charge", inside) is not None
    assert store.record("charge", outside) is None
    assert store.sync(INTEGRATION, at, kinds=CHARGES, window_days=None) == 1
    assert store.record("charge", outside) is not None


def test_a_cached_record_deleted_in_the_pms_stays_cached_with_last_seen_frozen(
    store: Store,
) -> None:
    record_id = written(store, "2026-12-01", ready_at=0)
    store.sync(INTEGRATION, time.time(), kinds=CHARGES)
    seen = store.record("charge", record_id)["last_seen"]  # type: ignore[index]
    assert store.delete_record("charge", record_id)
    store.sync(INTEGRATION, time.time() + 60, kinds=CHARGES)
    cached = store.record("charge", record_id)
    assert cached is not None and cached["_deleted"] is True
    assert cached["last_seen"] == seen


def test_an_unsynced_written_record_or_a_reference_record_deleted_is_gone(store: Store) -> None:
    record_id = written(store, "2026-12-01", ready_at=0)
    assert store.delete_record("charge", record_id)
    assert store.record("charge", record_id, synced_only=False) is None
    vendor = SEED["vendors"][0]["id"]
    assert store.delete_record("vendor", vendor)
    assert store.record("vendor", vendor) is None
    assert not store.delete_record("vendor", vendor)


def test_an_edit_in_the_pms_changes_fields_and_updated_at(store: Store) -> None:
    resident = SEED["residents"][0]["id"]
    before = store.record("resident", resident)
    assert store.update_record("resident", resident, {"first_name": "Renamed"})
    after = store.record("resident", resident)
    assert after is not None and before is not None
    assert after["first_name"] == "Renamed"
    assert after["updated_at"] >= before["updated_at"]
    assert not store.update_record("resident", "cres_nobody", {"first_name": "x"})


def test_numbers_count_per_name(store: Store) -> None:
    assert [store.next_number("bill") for _ in range(3)] == [1, 2, 3]
    assert store.next_number("charge") == 1


def test_jobs_are_newest_first_forgotten_and_aged(store: Store) -> None:
    store.apply_write(job("cjob_old", 10.0, now_iso(1000)), [], synced=True)
    store.apply_write(job("cjob_new", 20.0, now_iso(2000)), [], synced=True)
    assert [j.job_id for j in store.jobs()] == ["cjob_new", "cjob_old"]
    assert store.age_jobs(100) == 2
    aged = store.job("cjob_old")
    assert aged is not None
    assert aged.ready_at == -90.0 and aged.created_at == now_iso(900)
    assert store.forget_jobs() == 2
    assert store.job("cjob_new") is None


def test_an_aged_job_s_records_are_as_old_as_it(store: Store) -> None:
    """Aging moves a job's records with it: a finished job's record is visible as its status
    says (before, the job finished while its records stayed in the future)."""
    later = time.time() + 3600
    record_id = written(store, "2026-12-01", ready_at=later, job_id="cjob_aged")
    mine = new_record({"transaction_date": "2026-12-01T00:00:00"}, INTEGRATION)
    store.apply_write(job("cjob_other", later), [("charge", mine)], synced=True)
    store.age_jobs(3600)
    store.sync(INTEGRATION, time.time(), kinds=CHARGES)
    assert store.record("charge", record_id) is not None
    # A record that does not name its job is left where it was.
    assert store.record("charge", mine["id"]) is None


def test_webhooks_are_kept_in_order_and_deleted(store: Store) -> None:
    store.save_webhook({"id": "whk_b", "url": "http://b"})
    store.save_webhook({"id": "whk_a", "url": "http://a"})
    store.save_webhook({"id": "whk_b", "url": "http://b2"})  # replaced in place
    assert [w["url"] for w in store.webhooks()] == ["http://a", "http://b2"]
    assert store.webhook("whk_a") == {"id": "whk_a", "url": "http://a"}
    assert store.delete_webhook("whk_a")
    assert not store.delete_webhook("whk_a")
    assert store.webhook("whk_a") is None


def test_state_kept_in_a_file_survives_reopening(tmp_path: Any) -> None:
    path = tmp_path / "sandbox.sqlite"
    first = Store(path)
    first.load_seed(SEED)
    first.apply_write(job("cjob_kept", 1.0), [], synced=True)
    first.close()
    second = Store(path)
    assert not second.is_empty()
    assert second.job("cjob_kept") is not None
    second.close()


# -- request checks and read models -----------------------------------------------------------------


NOTE = {
    "type": "object",
    "required": ["integration_id", "text", "at"],
    "properties": {
        "integration_id": {"type": "string"},
        "text": {"type": "string", "pattern": "^[a-z]+$"},
        "count": {"type": "integer", "minimum": 1},
        "at": {"type": "string", "format": "date-time"},
        "tags": {"type": "array", "minItems": 1, "items": {"type": "string"}},
        "inner": {"type": "object", "properties": {"a": {"type": "string"}}},
        "free": {"type": "object", "properties": {}, "additionalProperties": True},
    },
}


def issues(body: Any) -> list[dict[str, Any]]:
    return zod_issues(request_validator(NOTE), body)


def test_a_valid_body_has_no_issues() -> None:
    assert issues({"integration_id": "i", "text": "ok", "at": "2026-12-01T00:00:00Z"}) == []


def test_each_kind_of_issue_is_in_zod_s_shape() -> None:
    body = {
        "text": "NOT LOWER",
        "count": 0,
        "at": "2026-12-01",
        "tags": [],
        "inner": {"b": 1},
        "free": {"anything": 1},
    }
    found = {(i["code"], tuple(i["path"])) for i in issues(body)}
    assert found == {
        ("invalid_type", ("integration_id",)),
        ("invalid_string", ("text",)),
        ("too_small", ("count",)),
        ("invalid_string", ("at",)),
        ("too_small", ("tags",)),
        ("unrecognized_keys", ("inner",)),
    }
    small = {tuple(i["path"]): i for i in issues(body) if i["code"] == "too_small"}
    assert small[("tags",)]["type"] == "array"
    assert small[("count",)]["type"] == "number"


def test_closing_schemas_keeps_an_explicit_choice() -> None:
    closed = _strict(NOTE)
    assert closed["additionalProperties"] is False
    assert closed["properties"]["inner"]["additionalProperties"] is False
    assert closed["properties"]["free"]["additionalProperties"] is True
    assert "additionalProperties" not in NOTE  # the given schema is left as it was


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("2026-12-01T00:00:00Z", True),
        ("2026-12-01T00:00:00.123+02:00", True),
        ("2026-12-01t00:00:00z", True),
        ("2026-12-01T00:00:00", False),  # no zone
        ("2026-12-01", False),
        (20261201, False),
    ],
)
def test_a_date_time_is_zod_s_datetime_with_offset(value: object, ok: bool) -> None:
    assert _is_datetime(value) is ok


def test_manual_sync_takes_the_models_of_added_kinds() -> None:
    validators = load_request_validators(["meter_readings"])
    manual = validators["/v1/admin/integrations/{integration_id}/manual-sync"]
    assert zod_issues(manual, {"models_to_sync": ["meter_readings"]}) == []
    assert zod_issues(load_request_validators()[manual_path()], {"models_to_sync": ["x"]})


def manual_path() -> str:
    return "/v1/admin/integrations/{integration_id}/manual-sync"


def test_a_record_is_filled_to_its_read_model_nested_lines_included() -> None:
    model = {
        "required": ["id", "notes", "lines"],
        "properties": {
            "lines": {
                "type": "array",
                "items": {"required": ["amount", "memo"], "properties": {"amount": {}}},
            },
            "tags": {"type": ["array", "null"]},
        },
    }
    filled = _fill(model, {"id": "x", "lines": [{"amount": 1}, "odd"]})
    assert filled == {"id": "x", "notes": None, "lines": [{"amount": 1, "memo": None}, "odd"]}
    assert _fill({"required": ["tags"], "properties": model["properties"]}, {}) == {"tags": []}


def test_propexo_s_error_body_carries_details_only_when_given() -> None:
    assert error_body("not_found", "no") == {"error": {"code": "not_found", "message": "no"}}
    assert error_body("x", "y", {"issues": []})["error"]["details"] == {"issues": []}


# -- kinds ------------------------------------------------------------------------------------------


def note_kind(name: str = "note", **changes: Any) -> SandboxKind:
    fields: dict[str, Any] = {
        "name": name,
        "sync_model": f"{name}s",
        "list_route": f"/v1/{name}s/",
        "writes": (Write(f"/v1/{name}s/rentmanager/", f"CREATE_{name.upper()}", schema=NOTE),),
        **changes,
    }
    return SandboxKind(**fields)


def test_the_built_in_kinds_are_looked_up_every_way() -> None:
    kinds = Kinds(BUILT_IN_KINDS)
    assert kinds.by_name["invoice"] is INVOICES
    assert kinds.by_model["resident_charges"] is RESIDENT_CHARGES
    assert kinds.by_label["credit"] is RESIDENT_CHARGES
    assert kinds.by_path["/v1/resident-credits/rentmanager/"][1].job_type == (
        "CREATE_RESIDENT_CREDIT"
    )
    assert kinds.by_job_type["CREATE_INVOICE"][0] is INVOICES
    assert kinds.models() == ["invoices", "resident_charges"]
    assert kinds.synced(["resident_charges", "unknown"]) == {"charge": "transaction_date"}
    assert kinds.list_routes()["/v1/invoices/"][0] == "invoice"


@pytest.mark.parametrize(
    ("clash", "what"),
    [
        ({"name": "invoice"}, "record kind 'invoice'"),
        ({"sync_model": "invoices"}, "sync model 'invoices'"),
        ({"other_labels": ("credit",)}, "record label 'credit'"),
        (
            {"writes": (Write("/v1/invoices/rentmanager/", "CREATE_NOTE", schema=NOTE),)},
            "write route",
        ),
        ({"writes": (Write("/v1/notes/rentmanager/", "CREATE_INVOICE"),)}, "job type"),
    ],
)
def test_a_kind_that_clashes_with_a_built_in_one_is_refused(
    clash: dict[str, Any], what: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(what)):
        Kinds((*BUILT_IN_KINDS, note_kind(**clash)))


def test_a_write_route_outside_v1_is_refused() -> None:
    kind = note_kind(writes=(Write("/notes/", "CREATE_NOTE", schema=NOTE),))
    with pytest.raises(ValueError, match="must be under /v1/"):
        Kinds((kind,))


def test_a_kind_s_label_is_its_name_unless_it_says_otherwise() -> None:
    assert note_kind().label_of({"x": 1}) == "note"
    assert RESIDENT_CHARGES.label_of({"_credit": True}) == "credit"
    assert RESIDENT_CHARGES.label_of({}) == "charge"


def test_the_default_writes_store_the_body_or_each_element() -> None:
    body = {"integration_id": INTEGRATION, "items": [{"a": 1}, {"a": 2}]}
    one = store_body(None, body)  # type: ignore[arg-type]
    assert one.status == "SUCCESS" and one.errors == []
    (record,) = one.records
    assert record["items"] == body["items"]
    assert record["integration_id"] == INTEGRATION
    assert record["integration_vendor"] == "RENTMANAGER"
    assert record["last_seen"] is None and record["created_at"] == record["updated_at"]
    many = store_each("items")(None, body)  # type: ignore[arg-type]
    assert [r["a"] for r in many.records] == [1, 2]
    assert len({r["id"] for r in many.records}) == 2


def test_a_pms_error_is_stringified_json() -> None:
    assert pms_error('say "no"') == '{"Message": "say \\"no\\""}'


# -- the built-in kinds' checks and filters -----------------------------------------------------------


def test_an_invoice_needs_a_line() -> None:
    assert has_invoice_items({"invoice_items": [{"amount_in_cents": 1}]}) == []
    (issue,) = has_invoice_items({"invoice_items": []})
    assert issue["path"] == ["invoice_items"] and issue["code"] == "too_small"
    assert has_invoice_items({})[0]["minimum"] == 1


def test_a_credit_amount_is_positive() -> None:
    assert positive_amount({"amount_in_cents": 1}) == []
    assert positive_amount({"amount_in_cents": 0})[0]["exclusive"] is True


class FakeSandbox:
    def location_of_property(self) -> dict[str, str]:
        return {"cpro_a": "cloc_1", "cpro_b": "cloc_2"}


def test_invoices_are_listed_by_their_property_s_location() -> None:
    sandbox: Any = FakeSandbox()
    assert in_location(sandbox, {}) == []
    (check,) = in_location(sandbox, {"location_id": "cloc_1"})
    assert check({"property_id": "cpro_a"})
    assert not check({"property_id": "cpro_b"})
    assert not check({})


def test_charges_are_listed_between_two_days_both_ends_inclusive() -> None:
    sandbox: Any = FakeSandbox()
    assert dated_between(sandbox, {}) == []
    checks = dated_between(
        sandbox,
        {"transaction_date_start": "2026-12-01T00:00:00Z", "transaction_date_end": "2026-12-31"},
    )

    def kept(day: str | None) -> bool:
        return all(check({"transaction_date": day}) for check in checks)

    assert kept("2026-12-01T00:00:00")
    assert kept("2026-12-31T00:00:00")
    assert not kept("2026-11-30T00:00:00")
    assert not kept("2027-01-01T00:00:00")
    assert not kept(None)


# -- the seed for several integrations, and the options ---------------------------------------------


def test_a_second_integration_is_the_seed_again_with_ids_of_its_own() -> None:
    assert with_integrations(SEED, 1) is SEED
    grown = with_integrations(SEED, 3)
    assert len(grown["residents"]) == 3 * len(SEED["residents"])
    assert [i["id"] for i in grown["integrations"]] == [
        INTEGRATION,
        f"{INTEGRATION}-2",
        f"{INTEGRATION}-3",
    ]
    first, copy = SEED["leases"][0], grown["leases"][2 * len(SEED["leases"])]
    assert copy["id"] == f"{first['id']}-3"
    assert copy["integration_id"] == f"{INTEGRATION}-3"
    assert copy["unit_id"] == f"{first['unit_id']}-3"  # references follow their records
    assert copy["residents_meta_data"][0]["resident_id"] == (
        f"{first['residents_meta_data'][0]['resident_id']}-3"
    )
    assert copy["x_id"] == first["x_id"]  # the PMS's own ids and names stay alike
    assert SEED["leases"][0] == first  # the seed itself is left as it was


def test_a_store_is_seeded_only_when_empty(tmp_path: Any) -> None:
    path = tmp_path / "sandbox.sqlite"
    first = open_store(path, SEED)
    first.delete_record("vendor", SEED["vendors"][0]["id"])
    first.close()
    again = open_store(path, SEED)  # not seeded again: the deletion stands
    assert again.record("vendor", SEED["vendors"][0]["id"]) is None
    again.close()
    assert read_seed(None)["integrations"][0]["id"] == INTEGRATION


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("sync_mode", "eventually"),
        ("batch_errors", "verbose"),
        ("unknown_job", 500),
        ("reference_readback", "maybe"),
        ("log_parameters", "all"),
    ],
)
def test_an_option_outside_its_choices_is_refused(option: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"{option} must be one of"):
        SandboxConfig(**{option: value})  # type: ignore[arg-type]


def test_the_semantics_printed_at_start_say_each_choice() -> None:
    said = SandboxConfig(
        sync_window_days=None, revoke_token_after=3, clock_skew_s=-2, integrations=2
    ).semantics()
    assert said["sync mode"] == "async (3s)"
    assert said["sync window (charges)"] == "all"
    assert said["batch atomic"] == "no (PARTIAL_SUCCESS)"
    assert said["token revoked"] == "after 3 POSTs"
    assert said["data clock"] == "-2s"
    assert said["write log"] == "a finished job shows 5s later; parameters null"
    assert SandboxConfig(sync_mode="instant").semantics()["sync mode"] == "instant"
    assert SandboxConfig(integrations=2).tokens() == ["sandbox-token", "sandbox-token-2"]
    assert SandboxConfig(rate_window_s=30).slowdown_s == 1.0
