"""The sandbox's read routes, webhook subscriptions and test hooks, in process: pages and their
limits, order and filters as Propexo documents them (a 400 in its error shape for a query it
would refuse), the data clock's skew, the PMS side a test edits, and the subscriptions' CRUD."""

from __future__ import annotations

from typing import Any

import pytest

from tests.test_sandbox import (
    INTEGRATION,
    SEED,
    charge,
    charge_code_in,
    invoice_body,
    resident_in,
    seeded,
)
from tests.test_unit_sandbox_writes import BATCH, INVOICE, InProcess, in_process


@pytest.fixture
def box() -> Any:
    with in_process() as running:
        yield running


def listed(box: InProcess, path: str, **params: Any) -> dict[str, Any]:
    response = box.client.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def refused(box: InProcess, path: str, **params: Any) -> dict[str, Any]:
    response = box.client.get(path, params=params)
    assert response.status_code == 400, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == "invalid_request"
    return error


# -- pages, order, filters --------------------------------------------------------------------------


def test_a_page_says_its_place_and_whether_more_follow(box: InProcess) -> None:
    total = len(SEED["residents"])
    first = listed(box, "/v1/residents/", limit=10)
    assert first["meta"]["total"] == total
    assert first["meta"]["hasMore"] is True
    assert first["meta"]["orderBy"] == [{"field": "created_at", "direction": "desc"}]
    last = listed(box, "/v1/residents/", limit=10, offset=total - 3)
    assert len(last["results"]) == 3 and last["meta"]["hasMore"] is False
    assert listed(box, "/v1/residents/", limit=250)["meta"]["hasMore"] is False


@pytest.mark.parametrize(
    ("params", "code", "field"),
    [({"limit": "251"}, "too_big", "limit"), ({"limit": "0"}, "too_small", "limit")],
)
def test_a_limit_out_of_range_is_a_zod_issue(
    box: InProcess, params: dict[str, str], code: str, field: str
) -> None:
    error = refused(box, "/v1/units/", **params)
    assert error["details"]["name"] == "ZodError"
    assert [(i["code"], i["path"]) for i in error["details"]["issues"]] == [(code, [field])]


def test_a_negative_offset_or_words_for_numbers_are_refused(box: InProcess) -> None:
    assert refused(box, "/v1/units/", offset="-1")["details"]["issues"][0]["path"] == ["offset"]
    assert "integers" in refused(box, "/v1/units/", limit="many")["message"]


def test_order_by_sorts_on_each_field_in_turn(box: InProcess) -> None:
    units = listed(box, "/v1/units/", limit=250, **{"order-by": "property_id:asc,number:desc"})
    got = [(u["property_id"], u["number"]) for u in units["results"]]
    by_number_desc = sorted(got, key=lambda pair: pair[1], reverse=True)
    assert got == sorted(by_number_desc, key=lambda pair: pair[0])
    assert units["meta"]["orderBy"] == [
        {"field": "property_id", "direction": "asc"},
        {"field": "number", "direction": "desc"},
    ]
    assert (
        "expected field:asc|desc"
        in refused(box, "/v1/units/", **{"order-by": "number:up"})["message"]
    )


def test_equality_filters_and_a_unit_number_within_its_property(box: InProcess) -> None:
    unit = SEED["units"][0]
    by_property = listed(box, "/v1/units/", property_id=unit["property_id"], limit=250)
    assert {u["property_id"] for u in by_property["results"]} == {unit["property_id"]}
    assert by_property["meta"]["total"] == len(seeded("units", property_id=unit["property_id"]))
    one = listed(box, "/v1/units/", property_id=unit["property_id"], unit_number=unit["number"])
    assert [u["id"] for u in one["results"]] == [unit["id"]]
    assert "requires property_id" in refused(box, "/v1/units/", unit_number="101")["message"]


def test_a_lease_is_found_by_any_of_its_residents(box: InProcess) -> None:
    lease = SEED["leases"][0]
    resident = lease["residents_meta_data"][0]["resident_id"]
    found = listed(box, "/v1/leases/", resident_id=resident)
    assert [x["id"] for x in found["results"]] == [lease["id"]]


def test_residents_and_charge_codes_are_listed_by_location(box: InProcess) -> None:
    location = SEED["locations"][1]["id"]
    props = {p["id"] for p in seeded("properties", _location_id=location)}
    residents = listed(box, "/v1/residents/", location_id=location, limit=250)["results"]
    assert residents and {r["property_id"] for r in residents} <= props
    assert len(residents) == len([r for r in SEED["residents"] if r["property_id"] in props])
    codes = listed(box, "/v1/charge-codes/", location_id=location)["results"]
    assert {c["id"] for c in codes} == {
        c["id"] for c in seeded("charge_codes", _location_id=location)
    }


def test_a_bad_date_filter_is_refused(box: InProcess) -> None:
    error = refused(box, "/v1/residents/", updated_at_gte="yesterday")
    assert "updated_at_gte/updated_at_lte must be ISO date-times" in error["message"]


def test_a_date_filter_keeps_both_ends(box: InProcess) -> None:
    stamp = SEED["units"][0]["updated_at"]
    same = listed(box, "/v1/units/", updated_at_gte=stamp, updated_at_lte=stamp, limit=250)
    assert same["meta"]["total"] == len([u for u in SEED["units"] if u["updated_at"] == stamp])
    assert listed(box, "/v1/units/", updated_at_gte="2999-01-01T00:00:00Z")["results"] == []


def test_one_record_by_id_or_a_404_naming_its_kind(box: InProcess) -> None:
    code = SEED["charge_codes"][0]
    found = listed(box, f"/v1/charge-codes/{code['id']}")
    assert found["results"]["id"] == code["id"]
    missing = box.client.get("/v1/charge-codes/ccha_nobody")
    assert missing.status_code == 404
    assert missing.json()["error"]["message"] == "no charge code with id 'ccha_nobody'"


def test_internal_keys_never_show(box: InProcess) -> None:
    props = listed(box, "/v1/properties/")["results"]
    assert props and not any(key.startswith("_") for p in props for key in p)


def test_a_property_s_vendors_are_its_own_and_its_location_s(box: InProcess) -> None:
    prop = SEED["properties"][0]
    vendors = listed(box, f"/v1/vendors/properties/{prop['id']}")["results"]
    expected = {
        v["id"]
        for v in SEED["vendors"]
        if v.get("property_id") == prop["id"] or v.get("_location_id") == prop["_location_id"]
    }
    assert {v["id"] for v in vendors} == expected


def test_the_data_clock_runs_off_by_its_skew_for_stamps_and_their_filters() -> None:
    with in_process(clock_skew_s=3600.0) as box:
        unit = SEED["units"][0]
        shown = listed(box, f"/v1/units/{unit['id']}")["results"]
        assert shown["updated_at"] == "2026-10-01T01:00:00.000Z"
        # Asked on the data clock: an hour after the stored stamp is the record's moment.
        later = listed(
            box,
            "/v1/units/",
            updated_at_gte="2026-10-01T01:00:00Z",
            updated_at_lte="2026-10-01T01:00:00Z",
            limit=250,
        )
        assert unit["id"] in {u["id"] for u in later["results"]}


# -- the PMS side, as a test edits it ------------------------------------------------------------------


def test_the_pms_side_is_filtered_by_label_and_an_unknown_label_refused(box: InProcess) -> None:
    box.job(INVOICE, invoice_body())
    assert [r["kind"] for r in box.pms()] == ["invoice"]
    assert box.pms("charge") == []
    response = box.client.get("/_sandbox/records", params={"kind": "bill"})
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "kind must be invoice, charge or credit"


def test_a_test_edits_and_deletes_a_written_record_on_the_pms_side(box: InProcess) -> None:
    box.job(
        BATCH,
        {
            "integration_id": INTEGRATION,
            "charges": [charge(resident_in(0), charge_code_in(0), "E-1")],
        },
    )
    (made,) = box.pms("charge")
    edited = box.client.patch(f"/_sandbox/records/charge/{made['id']}", json={"notes": "hand"})
    assert edited.json() == {"result": {"success": True}}
    assert box.pms("charge")[0]["notes"] == "hand"
    assert box.client.delete(f"/_sandbox/records/charge/{made['id']}").status_code == 200
    assert box.pms("charge") == []
    again = box.client.delete(f"/_sandbox/records/charge/{made['id']}")
    assert again.status_code == 404
    assert box.client.delete("/_sandbox/records/parcel/x").status_code == 404


def test_the_sandbox_s_own_sync_shows_every_finished_write(box: InProcess) -> None:
    box.job(
        BATCH,
        {
            "integration_id": INTEGRATION,
            "charges": [charge(resident_in(0), charge_code_in(0), "Y-1")],
        },
    )
    assert box.client.post("/_sandbox/sync").json() == {"result": {"synced": 0}}  # running
    box.later()
    assert box.client.post("/_sandbox/sync").json() == {"result": {"synced": 1}}
    assert [c["reference_number"] for c in listed(box, "/v1/resident-charges/")["results"]] == [
        "Y-1"
    ]


def test_a_reset_forgets_writes_and_keeps_the_seed(box: InProcess) -> None:
    box.job(INVOICE, invoice_body())
    assert box.client.post("/_sandbox/reset").json() == {"result": {"success": True}}
    assert box.pms() == [] and box.store.jobs() == []
    assert listed(box, "/v1/properties/")["meta"]["total"] == len(SEED["properties"])


def test_a_manual_sync_for_an_unknown_integration_or_model_is_refused(box: InProcess) -> None:
    unknown = box.client.post("/v1/admin/integrations/int_nobody/manual-sync", json={})
    assert unknown.status_code == 400
    assert "int_nobody" in unknown.json()["error"]["message"]
    bad_model = box.client.post(
        f"/v1/admin/integrations/{INTEGRATION}/manual-sync", json={"models_to_sync": ["bills"]}
    )
    assert bad_model.status_code == 400


# -- webhook subscriptions -----------------------------------------------------------------------------


def test_a_subscription_is_created_read_changed_and_deleted(box: InProcess) -> None:
    made = box.client.post(
        "/v1/webhooks/",
        json={"url": "http://127.0.0.1:9/hook", "triggers": ["SYNC_COMPLETE"], "active": True},
    )
    assert made.status_code == 200, made.text
    hook = made.json()["result"]
    assert hook["active"] is True
    assert len(hook["secret"]) >= 10  # one is made when none is given
    assert [t["trigger"] for t in hook["triggers"]] == ["SYNC_COMPLETE"]
    assert [h["id"] for h in listed(box, "/v1/webhooks/")["results"]] == [hook["id"]]
    assert listed(box, f"/v1/webhooks/{hook['id']}")["results"]["url"] == hook["url"]
    changed = box.client.put(f"/v1/webhooks/{hook['id']}", json={"active": False})
    assert changed.status_code == 200, changed.text
    after = changed.json()["result"]
    assert after["active"] is False
    assert after["id"] == hook["id"] and after["created_at"] == hook["created_at"]
    assert [t["trigger"] for t in after["triggers"]] == ["SYNC_COMPLETE"]  # kept when not given
    assert after["secret"] == hook["secret"]
    gone = box.client.delete(f"/v1/webhooks/{hook['id']}")
    assert gone.json() == {"result": {"id": hook["id"]}}
    assert listed(box, "/v1/webhooks/")["results"] == []
    assert box.client.get(f"/v1/webhooks/{hook['id']}").status_code == 400


def test_a_subscription_needs_a_known_trigger_and_a_long_enough_secret(box: InProcess) -> None:
    bad_trigger = box.client.post(
        "/v1/webhooks/", json={"url": "http://127.0.0.1:9/hook", "triggers": ["SOMETIMES"]}
    )
    assert bad_trigger.status_code == 400
    short = box.client.post(
        "/v1/webhooks/",
        json={"url": "http://127.0.0.1:9/hook", "triggers": ["SYNC_COMPLETE"], "secret": "abc"},
    )
    assert short.status_code == 400
    assert listed(box, "/v1/webhooks/")["results"] == []
