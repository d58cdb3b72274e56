from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.core.config import load_settings
from pipelines.core.models import IssueCode
from pipelines.kinds import registered
from pipelines.kinds.charge.kind import chunk_by_location
from pipelines.kinds.charge.payloads import charge_body
from pipelines.kinds.charge.references import reference_numbers
from pipelines.reading.grids import fingerprint
from pipelines.reading.profiles import profiles_for
from pipelines.resolving.refs import RefData
from pipelines.resolving.transform import normalize_org, normalize_person, normalize_unit
from pipelines.runs.files import process_file
from tests.conftest import SAMPLES, write_bills

SETTINGS = load_settings(env={})


def run_file(path: Path, refs: RefData, **changes: object):  # type: ignore[no-untyped-def]
    return process_file(
        fingerprint(path), profiles_for(SETTINGS, registered()), refs, replace(SETTINGS, **changes)
    )  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("raw", "norm"),
    [
        ("ACME Plumbing, L.L.C.", "acme plumbing"),
        ("Acme plumbing LLC", "acme plumbing"),
        ("Keystone HVAC Co.", "keystone hvac"),
        ("City Water & Sewer", "city water and sewer"),
        ("Brightline  Electric Inc", "brightline electric"),
    ],
)
def test_normalize_org(raw: str, norm: str) -> None:
    assert normalize_org(pd.Series([raw])).iloc[0] == norm


def test_normalize_person_and_unit() -> None:
    assert normalize_person(pd.Series(["Smith, John", "john  SMITH", "J. Smith"])).tolist() == [
        "john smith",
        "john smith",
        "j smith",
    ]
    assert (
        normalize_unit(pd.Series(["#204", "Unit 204", "Apt. 204", "204"])).tolist() == ["204"] * 4
    )


def test_samples_resolve_completely(refs: RefData) -> None:
    bills = run_file(SAMPLES / "vendor_bills.csv", refs)
    assert bills.issues == []
    assert len(bills.records) == 12
    assert int(bills.records["total_amount_in_cents"].sum()) == 2140363
    for payload in bills.records["payload"]:
        assert payload["total_amount_in_cents"] == sum(
            i["amount_in_cents"] for i in payload["invoice_items"]
        )
    roll = run_file(SAMPLES / "rent_roll.xlsx", refs)
    assert roll.issues == []
    assert int(roll.records["amount_cents"].sum()) == 6626500
    credits = roll.records[roll.records["kind"] == "credit"]
    assert len(credits) > 0
    payloads = [charge_body(r) for r in credits.itertuples(index=False)]
    assert all(p["amount_in_cents"] > 0 for p in payloads)  # credits post positive
    assert all(p["integration_id"] == "int_rm_demo" for p in payloads)


def test_misspelled_vendor_is_rejected_with_the_right_suggestion_and_holds_back_its_invoice(
    refs: RefData, tmp_path: Path
) -> None:
    path = write_bills(
        tmp_path / "bills.csv",
        [
            "ACME Plumbng,A-1,11/03/2026,,Maple Court,5100,one,10.00",
            "ACME Plumbing LLC,A-1,11/03/2026,,Maple Court,5100,two,5.00",
            "Acme Plumbing L.L.C.,A-2,11/03/2026,,Maple Court,5100,fine,7.00",
        ],
    )
    result = run_file(path, refs)
    unknown = [i for i in result.issues if i.code is IssueCode.UNKNOWN_VENDOR]
    assert [i.source_row for i in unknown] == [2]
    assert "did you mean 'ACME Plumbing LLC'" in unknown[0].message
    assert "data/mappings/vendors.csv" in unknown[0].message
    held = [i for i in result.issues if i.code is IssueCode.INCONSISTENT_INVOICE]
    assert [i.source_row for i in held] == [3]  # the other line of invoice A-1
    assert result.outcome.rows_rejected == 2
    assert list(result.records["invoice_number"]) == ["A-2"]


def test_one_bad_line_holds_back_the_whole_invoice(refs: RefData, tmp_path: Path) -> None:
    path = write_bills(
        tmp_path / "bills.csv",
        [
            "ACME Plumbing LLC,A-1,11/03/2026,,Maple Court,5100,one,10.00",
            "ACME Plumbing LLC,A-1,11/03/2026,,Maple Court,9999,bad gl,5.00",
        ],
    )
    result = run_file(path, refs)
    assert result.records.empty
    assert {i.code for i in result.issues} == {
        IssueCode.UNKNOWN_GL_ACCOUNT,
        IssueCode.INCONSISTENT_INVOICE,
    }
    assert result.outcome.rows_rejected == 2


def test_mixed_location_and_negative_bills_are_rejected(refs: RefData, tmp_path: Path) -> None:
    path = write_bills(
        tmp_path / "bills.csv",
        [
            "ACME Plumbing LLC,MIX-1,11/03/2026,,Maple Court,5100,north,10.00",
            "ACME Plumbing LLC,MIX-1,11/03/2026,,Riverside Lofts,5100,south,5.00",
            "Greenway Landscaping,NEG-1,11/03/2026,,Maple Court,5200,refund,(25.00)",
            "Greenway Landscaping,OK-1,11/03/2026,,Maple Court,5200,fine,25.00",
        ],
    )
    result = run_file(path, refs)
    codes = {i.source_row: i.code for i in result.issues}
    assert codes == {
        2: IssueCode.MIXED_LOCATION,
        3: IssueCode.MIXED_LOCATION,
        4: IssueCode.NEGATIVE_TOTAL,
    }
    assert list(result.records["invoice_number"]) == ["OK-1"]
    assert result.outcome.rejected_total_cents == 1000 + 500 - 2500


def test_alias_file_wins(refs: RefData, tmp_path: Path) -> None:
    aliases = {
        **refs.aliases,
        "vendors": pd.DataFrame(
            {"spreadsheet_name": ["Acme Pipes & Drains"], "propexo_name": ["ACME Plumbing LLC"]}
        ),
    }
    path = write_bills(
        tmp_path / "bills.csv", ["Acme Pipes & Drains,A-9,11/03/2026,,Maple Court,5100,x,10.00"]
    )
    assert run_file(path, replace(refs, aliases=aliases)).issues == []
    assert run_file(path, refs).issues[0].code is IssueCode.UNKNOWN_VENDOR


def test_ambiguous_match_is_rejected_not_guessed(refs: RefData, tmp_path: Path) -> None:
    twin = refs.vendors.iloc[[0]].assign(id="cven-twin")
    doubled = replace(refs, vendors=pd.concat([refs.vendors, twin], ignore_index=True))
    name, location = twin["name"].iloc[0], twin["location_id"].iloc[0]
    prop = refs.properties[refs.properties["location_id"] == location]["name"].iloc[0]
    path = write_bills(tmp_path / "bills.csv", [f"{name},A-1,11/03/2026,,{prop},5100,x,10.00"])
    issues = run_file(path, doubled).issues
    assert [i.code for i in issues] == [IssueCode.AMBIGUOUS]


def test_due_and_post_dates_default_and_say_so(refs: RefData, tmp_path: Path) -> None:
    path = write_bills(
        tmp_path / "bills.csv", ["ACME Plumbing LLC,A-1,11/03/2026,,Maple Court,5100,x,10.00"]
    )
    record = run_file(path, refs, due_days_default=15).records.iloc[0]
    assert record["payload"]["due_date"] == "2026-11-18"
    assert record["payload"]["post_date"] == "2026-11-03"
    assert record["defaulted"] == ["due_date = invoice date + 15 days", "post_date = invoice date"]


def test_resident_matching_by_property_unit_and_name(refs: RefData, tmp_path: Path) -> None:
    leases = refs.leases.merge(refs.units, left_on="unit_id", right_on="id")
    resident = refs.residents.set_index("id").loc[leases["resident_id"].iloc[0]]
    prop = refs.properties.set_index("id").loc[resident["property_id"], "name"]
    unit = leases["number"].iloc[0]
    last, first = resident["last_name"], resident["first_name"]
    path = tmp_path / "charges.csv"
    path.write_text(
        "Property,Unit,Resident,Charge Code,Amount,Transaction Date\n"
        f'{prop},#{unit},"{last}, {first}",Rent,100.00,12/01/2026\n'
        f"{prop},Unit {unit},{first} {last.upper()},Parking,50,12/01/2026\n"
        f"{prop},{unit},Someone Else,Rent,100.00,12/01/2026\n"
    )
    result = run_file(path, refs)
    assert [i.source_row for i in result.issues] == [4]
    assert result.issues[0].code is IssueCode.UNKNOWN_RESIDENT
    assert len(result.records) == 2


def test_every_line_of_an_unknown_name_gets_its_own_issue(refs: RefData, tmp_path: Path) -> None:
    # Names are resolved once per distinct (property, unit, resident, charge code); the issues
    # still name every line.
    prop = refs.properties["name"].iloc[0]
    path = tmp_path / "charges.csv"
    lines = [f"{prop},101,Nobody Known,Rent,{n}.00,12/01/2026" for n in (10, 20, 30)]
    lines.insert(1, f"{prop},101,Nobody Known,Warp Drive Fee,5.00,12/01/2026")
    path.write_text(
        "Property,Unit,Resident,Charge Code,Amount,Transaction Date\n" + "\n".join(lines)
    )
    result = run_file(path, refs)
    by_row: dict[int, set[IssueCode]] = {}
    for issue in result.issues:
        by_row.setdefault(issue.source_row, set()).add(issue.code)
    assert sorted(by_row) == [2, 3, 4, 5]
    assert all(IssueCode.UNKNOWN_RESIDENT in codes for codes in by_row.values())
    assert result.outcome.rows_rejected == 4 and result.records.empty


def test_two_lines_with_one_reference_number_are_both_held_back(
    refs: RefData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import numpy as np

    from pipelines.kinds.charge import transform

    leases = refs.leases.merge(refs.units, left_on="unit_id", right_on="id")
    resident = refs.residents.set_index("id").loc[leases["resident_id"].iloc[0]]
    prop = refs.properties.set_index("id").loc[resident["property_id"], "name"]
    unit, who = leases["number"].iloc[0], f"{resident['first_name']} {resident['last_name']}"
    path = tmp_path / "charges.csv"
    path.write_text(
        "Property,Unit,Resident,Charge Code,Amount,Transaction Date\n"
        + "".join(f"{prop},{unit},{who},Rent,{n}.00,12/01/2026\n" for n in (100, 200, 300))
    )
    # Derived numbers: force a collision between the first two lines (50 bits rarely collide).
    real = transform.reference_bits

    def colliding(*args, **kwargs):  # type: ignore[no-untyped-def]
        bits = real(*args, **kwargs)
        bits[1] = bits[0]
        return bits

    monkeypatch.setattr(transform, "reference_bits", colliding)
    result = run_file(path, refs)
    conflicts = [i for i in result.issues if i.code is IssueCode.CONFLICT]
    assert sorted(i.source_row for i in conflicts) == [2, 3]
    assert len(result.records) == 1
    # Numbers given by the file: the same rule.
    monkeypatch.setattr(transform, "reference_bits", real)
    given = tmp_path / "given.csv"
    given.write_text(
        "Property,Unit,Resident,Charge Code,Amount,Transaction Date,Reference\n"
        f"{prop},{unit},{who},Rent,1.00,12/01/2026,R-1\n"
        f"{prop},{unit},{who},Rent,2.00,12/01/2026,R-1\n"
        f"{prop},{unit},{who},Rent,3.00,12/01/2026,\n"
    )
    result = run_file(given, refs)
    conflicts = [i for i in result.issues if i.code is IssueCode.CONFLICT]
    assert sorted(i.source_row for i in conflicts) == [2, 3]
    assert len(result.records) == 1 and np.all(result.records["reference_number"] != "R-1")


def test_charge_payloads_are_json_whatever_the_text(refs: RefData) -> None:
    from pipelines.kinds.charge.payloads import encode_charges

    awkward = ['say "hi"', "back\\slash", "tab\there", "line\nbreak", "plain"]
    good = pd.DataFrame(
        {
            "source_row": range(2, 7),
            "resident_id": ['r"1', "r2", "r3", "r4", "r5"],
            "charge_code_id": "cc",
            "charge_code": "Rent",
            "transaction_date": "2026-12-01",
            "notes": awkward,
            "amount_cents": [100, -250, 300, 400, 500],
            "reference_number": ['ref"1', "ref\\2", "ref3", "ref4", "ref5"],
            "location_id": "loc",
            "property_id": "p",
        }
    )
    records = encode_charges(good, "int", "f.csv")
    assert records["payload"].isna().all()  # no JSON text per line: built when posted
    payloads = [json.loads(json.dumps(charge_body(r))) for r in records.itertuples(index=False)]
    # Kept exactly, control characters too (the old encoder turned them into spaces).
    assert [p["notes"] for p in payloads] == awkward
    assert [p["reference_number"] for p in payloads] == list(good["reference_number"])
    assert payloads[0]["resident_id"] == 'r"1'
    assert [p["amount_in_cents"] for p in payloads] == [100, 250, 300, 400, 500]
    assert payloads[1]["integration_id"] == "int" and "integration_id" not in payloads[0]
    assert records["kind"].tolist() == ["charge", "credit", "charge", "charge", "charge"]
    assert records["record_key"][1] == "credit:int:ref\\2"
    assert records["content_hash"].str.fullmatch(r"[0-9a-f]{16}").all()
    # The digest changes with what is posted, and only with that.
    again = encode_charges(good.assign(source_row=range(20, 25)), "int", "f.csv")
    assert again["content_hash"].tolist() == records["content_hash"].tolist()
    changed = encode_charges(good.assign(amount_cents=[101, -250, 300, 400, 500]), "int", "f.csv")
    assert (changed["content_hash"] != records["content_hash"]).tolist() == [
        True,
        False,
        False,
        False,
        False,
    ]


line_strategy = st.fixed_dictionaries(
    {
        "resident_id": st.sampled_from(["r1", "r2", "r3"]),
        "charge_code_id": st.sampled_from(["c1", "c2"]),
        "transaction_date": st.just("2026-12-01"),
        "amount_cents": st.sampled_from([100, 2500, -500]),
        "notes": st.sampled_from([None, "x"]),
    }
)


@settings(max_examples=60, deadline=None)
@given(lines=st.lists(line_strategy, min_size=1, max_size=30), seed=st.randoms())
def test_reference_numbers_are_deterministic_in_any_row_order_and_unique(lines, seed) -> None:  # type: ignore[no-untyped-def]
    frame = pd.DataFrame(lines).assign(source_row=range(2, len(lines) + 2))
    refs_a = reference_numbers(frame, "int")
    shuffled = frame.sample(frac=1, random_state=seed.randint(0, 10**6)).reset_index(drop=True)
    shuffled["source_row"] = range(2, len(lines) + 2)  # the same lines, written in another order
    refs_b = reference_numbers(shuffled, "int")
    assert sorted(refs_a) == sorted(refs_b)
    assert refs_a.is_unique
    assert all(len(r) <= 12 and r.startswith("TO") for r in refs_a)


@settings(max_examples=60, deadline=None)
@given(
    locations=st.lists(st.sampled_from(["L1", "L2", "L3"]), min_size=0, max_size=120),
    batch_size=st.integers(min_value=1, max_value=50),
)
def test_batching_never_loses_duplicates_or_mixes_locations(
    locations: list[str], batch_size: int
) -> None:
    charges = pd.DataFrame(
        {
            "record_key": [f"k{i}" for i in range(len(locations))],
            "integration_id": "int",
            "location_id": locations,
            "amount_cents": [(i * 37) % 1000 - 300 for i in range(len(locations))],
        }
    )
    batches = chunk_by_location(charges, batch_size)
    keys = [k for b in batches for k in b["record_key"]]
    assert sorted(keys) == sorted(charges["record_key"])
    assert all(len(b) <= batch_size and b["location_id"].nunique() == 1 for b in batches)
    per_location = (
        pd.concat(batches).groupby("location_id")["amount_cents"].sum()
        if batches
        else pd.Series(dtype=int)
    )
    expected = charges.groupby("location_id")["amount_cents"].sum()
    assert per_location.sort_index().to_dict() == expected.sort_index().to_dict()
    minimum = sum(-(-n // batch_size) for n in charges["location_id"].value_counts())
    assert len(batches) == minimum


def test_check_online_resolves_samples_and_names_the_misspelled_vendor(
    sandbox, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import run_cli

    env = {"PROPEXO_BASE_URL": sandbox.base_url, "PROPEXO_API_TOKEN": "sandbox-token"}
    data = tmp_path / "data"
    ok = run_cli(
        "--data-dir",
        str(data),
        "check",
        str(SAMPLES / "vendor_bills.csv"),
        str(SAMPLES / "rent_roll.xlsx"),
        env=env,
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    text = (
        (SAMPLES / "vendor_bills.csv").read_text().replace("Keystone HVAC Co.", "Keystne HVAC Co.")
    )
    bad = tmp_path / "bills.csv"
    bad.write_text(text)
    out = tmp_path / "check.json"
    result = run_cli("--data-dir", str(data), "check", str(bad), "--json", str(out), env=env)
    assert result.returncode == 1
    rejected = json.loads(out.read_text())["files"][0]["rejected"]
    keystone_rows = [
        i + 1 for i, line in enumerate(text.splitlines()) if line.startswith("Keystne")
    ]
    assert [r["source_row"] for r in rejected] == keystone_rows
    assert "did you mean 'Keystone HVAC Co.'" in rejected[0]["reasons"][0]
    errors = (tmp_path / "bills.csv.errors.csv").read_text(encoding="utf-8-sig")
    assert "data/mappings/vendors.csv" in errors and "Keystne HVAC Co." in errors


def test_reference_data_is_cached_in_the_ledger(sandbox, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import run_cli

    env = {"PROPEXO_BASE_URL": sandbox.base_url, "PROPEXO_API_TOKEN": "sandbox-token"}
    data = tmp_path / "data"
    args = ("--data-dir", str(data), "check", str(SAMPLES / "vendor_bills.csv"))
    assert run_cli(*args, env=env).returncode == 0
    first = sandbox.app.requests_seen
    assert run_cli(*args, env=env).returncode == 0
    # answered from the cache: one request checks the token, none fetches reference data
    assert sandbox.app.requests_seen == first + 1
    shown = run_cli("--data-dir", str(data), "refs", "show", "vendors", env=env)
    assert "ACME Plumbing LLC" in shown.stdout
    assert run_cli("--data-dir", str(data), "refs", "refresh", env=env).returncode == 0
    assert sandbox.app.requests_seen > first + 1


def test_reference_numbers_follow_their_documented_definition() -> None:
    """Recomputed here one line at a time, in plain Python integers, from the docstring."""
    import base64
    import hashlib

    mask = (1 << 64) - 1

    def sha(text: str) -> int:
        return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")

    def finalize(x: int) -> int:
        x ^= x >> 30
        x = (x * 0xBF58476D1CE4E5B9) & mask
        x ^= x >> 27
        x = (x * 0x94D049BB133111EB) & mask
        return x ^ (x >> 31)

    def fold(parts: list[int]) -> int:
        h = 0x746965_6F7574
        for part in parts:
            h = finalize(h ^ (part & mask))
        return h

    frame = pd.DataFrame(
        {
            "resident_id": ["r1", "r1", "r2"],
            "charge_code_id": "c",
            "transaction_date": "2026-12-01",
            "amount_cents": [100, 100, -2500],
            "notes": [None, None, "late fee"],
            "source_row": [7, 3, 9],
        }
    )
    got = reference_numbers(frame, "int")
    # Rows 0 and 1 are identical: ordinals follow the row order in the file (row 3 first).
    for index, ordinal in [(1, 0), (0, 1), (2, 0)]:
        line = frame.loc[index]
        # Identity only: amount and notes are content, never part of the number.
        top = fold(
            [sha("int"), sha(line["resident_id"]), sha("c"), sha("2026-12-01"), ordinal]
        ).to_bytes(8, "big")
        assert got[index] == "TO" + base64.b32encode(top).decode()[:10]


@given(
    rows=st.lists(
        st.tuples(
            st.text(min_size=1, max_size=30),  # resident id
            st.text(min_size=1, max_size=30),  # charge code id
            st.text(max_size=60),  # notes: any text, control characters and all
            st.integers(min_value=-(10**9), max_value=10**9).filter(bool),
            st.text(min_size=1, max_size=20),  # reference number
        ),
        min_size=1,
        max_size=12,
        unique_by=lambda r: r[4],
    )
)
@settings(max_examples=60, deadline=None)
def test_every_body_posted_is_exactly_the_record_json_dumps_would_send(
    rows: list[tuple[str, str, str, int, str]],
) -> None:
    """#19: bodies are built from columns when posted, not stored as JSON text per line.
    Whatever the text, each posted body parses to exactly the record it stands for."""
    from pipelines.kinds.charge.payloads import encode_charges

    good = pd.DataFrame(
        {
            "source_row": range(2, 2 + len(rows)),
            "resident_id": [r[0] for r in rows],
            "charge_code_id": [r[1] for r in rows],
            "charge_code": "Rent",
            "transaction_date": "2026-12-01",
            "notes": [r[2] for r in rows],
            "amount_cents": [r[3] for r in rows],
            "reference_number": [r[4] for r in rows],
            "location_id": "loc",
            "property_id": "p",
        }
    )
    records = encode_charges(good, "int", "f.csv")
    sent: dict[str, dict[str, object]] = {}
    for request in registered().plan_requests(records, batch_size=5):
        wire = json.loads(json.dumps(request.body))  # what httpx's json= puts on the wire
        for body in wire.get("charges", [wire]):
            sent[body["reference_number"]] = body
    assert len(sent) == len(rows)
    for resident, code, notes, cents, reference in rows:
        expected: dict[str, object] = {"integration_id": "int"} if cents < 0 else {}
        expected |= {
            "resident_id": resident,
            "charge_code_id": code,
            "transaction_date": "2026-12-01T00:00:00.000Z",
            "notes": notes,
            "amount_in_cents": abs(cents),
            "reference_number": reference,
        }
        assert sent[reference] == expected


def test_a_charge_columns_plain_name_resolves_and_an_alias_always_wins() -> None:
    """#31: "Monthly Rent" is the rent and "REV: Parking" the parking when Propexo has those
    codes; a header in charge_codes.csv keeps its alias, and an unknown one is kept as written."""
    from pipelines.kinds.charge.transform import plain_charge_names

    codes = pd.Series(["Rent", "Parking", "Pet Rent"])
    aliases = pd.DataFrame({"spreadsheet_name": ["Base Rent"], "propexo_name": ["Pet Rent"]})
    headers = pd.Series(
        ["Monthly Rent", "REV: Parking", "4010 - Pet Rent", "Base Rent", "REV: Storage", None]
    )
    got = plain_charge_names(headers, codes, aliases)
    assert got.tolist()[:5] == ["Rent", "Parking", "Pet Rent", "Base Rent", "REV: Storage"]
    assert pd.isna(got.iloc[5])


def test_a_resident_is_suggested_only_from_the_rows_own_unit(refs: RefData, tmp_path: Path) -> None:
    # #36: "Quimby, Harlan" at Oak Ridge 302 was offered "Quinn Calloway", a tenant at another
    # property; followed, the alias was written and the row rejected again. A resident is
    # suggested only from the row's own property and unit, or none: who Propexo has there.
    leases = refs.leases.merge(
        refs.units.drop(columns="property_id"), left_on="unit_id", right_on="id"
    )
    people = refs.residents.set_index("id")
    here = leases.iloc[0]
    there = leases[leases["property_id"].ne(here["property_id"])].iloc[0]
    elsewhere = people.loc[there["resident_id"]]
    living_here = people.loc[here["resident_id"]]
    prop = refs.properties.set_index("id").loc[here["property_id"], "name"]
    # The name of the tenant elsewhere with one letter changed: close to them, not to anyone
    # living in the row's unit.
    typo = f"{elsewhere['last_name']}x, {elsewhere['first_name']}"
    path = tmp_path / "charges.csv"
    path.write_text(
        "Property,Unit,Resident,Charge Code,Amount,Transaction Date\n"
        f'{prop},{here["number"]},"{typo}",Rent,100.00,12/01/2026\n'
    )
    (issue,) = run_file(path, refs).issues
    assert issue.code is IssueCode.UNKNOWN_RESIDENT
    other = f"{elsewhere['first_name']} {elsewhere['last_name']}"
    assert other not in issue.message
    resident_here = f"{living_here['first_name']} {living_here['last_name']}"
    assert resident_here in issue.message  # who Propexo has there, or the suggestion itself
    assert (
        issue.place is not None
        and issue.place[1] == normalize_unit(pd.Series([str(here["number"])])).iloc[0]
    )
