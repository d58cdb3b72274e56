"""Source profiles: every built-in one loads and maps only the columns the schemas define; a
profile with a mistake is refused saying what and where."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from pipelines.core.errors import ConfigError
from pipelines.kinds import registered
from pipelines.reading.profiles import (
    BUILTIN_PROFILES_DIR,
    load_profile,
    load_profiles,
)
from tests.conftest import TEST_DATA

# The source kinds a profile may name, as the registry knows them.
SOURCE_COLUMNS = registered().source_columns
KNOWN_KINDS = " or ".join(repr(kind) for kind in sorted(SOURCE_COLUMNS))


def test_every_builtin_profile_maps_only_its_kinds_columns() -> None:
    profiles = load_profiles(BUILTIN_PROFILES_DIR, kinds=registered())
    assert len(profiles) >= 4
    for profile in profiles:
        assert set(profile.columns) <= set(SOURCE_COLUMNS[profile.kind]), profile.name
        assert set(profile.required) <= set(SOURCE_COLUMNS[profile.kind]), profile.name


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('kind = "payments"', f"kind must be {KNOWN_KINDS}, got 'payments'"),
        ('kind = "charge"\n[columns]\nvendor_name = ["vendor"]', "unknown canonical columns"),
        (
            'kind = "charge"\n[columns]\namount = ["amount"]\n[charges]\nmode = "columns"',
            "cannot also map an amount column",
        ),
        (  # #31: melt output columns cannot contain duplicate names: ['charge_code']
            'kind = "charge"\n[columns]\ncharge_code = ["code"]\n[charges]\nmode = "columns"',
            "cannot also map a charge_code column",
        ),
        ('kind = "charge"\n[charges]\nmode = "sideways"', "charges.mode must be"),
        ('kind = "charge"\n[charges]\nonly = "yes"', "charges.only must be true or false"),
    ],
)
def test_a_profile_with_a_mistake_is_refused_saying_what(
    tmp_path: Path, text: str, says: str
) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(f'name = "mine"\n{text}\n')
    with pytest.raises(ConfigError, match=f"profile {path}") as raised:
        load_profile(path, registered())
    assert says in str(raised.value)


@pytest.mark.parametrize(
    ("header", "charged"),
    [
        ("REV: Parking Fee", True),
        ("REV: Pet Fee - Recurring", True),
        ("4010 - Pet Rent", True),
        ("Income: Trash", True),
        ("Monthly Rent", True),
        ("Base Rent", True),
        ("Lease Rent", True),
        ("Rent Amount", True),
        ("Contract Rent", True),
        ("Market Rent", False),
        ("REV: Security Deposit", False),
        ("Misc Income", False),
        ("Pet", False),
        ("Charge Code", False),
    ],
)
def test_charge_headers_are_seen_through_account_prefixes_and_rents_common_names(
    header: str, charged: bool
) -> None:
    """#31: `REV: Parking Fee`, `Monthly Rent`, `Base Rent`, `Lease Rent` were not charges."""
    profile = next(
        p
        for p in load_profiles(BUILTIN_PROFILES_DIR, kinds=registered())
        if p.name == "tieout_rent_roll"
    )
    assert profile.charges_header(header) is charged


def test_common_column_names_map_through_the_vocabulary_and_an_alias_wins() -> None:
    """#31: Apt, Apt #, Apartment, Unit No, Lessee… name the unit and the resident; the
    profile's own names come first, and a header aliased to a charge code is never taken
    for a mapped column."""
    from pipelines.reading.layout import match_layout

    profile = next(
        p
        for p in load_profiles(BUILTIN_PROFILES_DIR, kinds=registered())
        if p.name == "tieout_rent_roll"
    )
    cells = ["Community", "Apartment", "Lessee", "Monthly Rent", "REV: Parking"]
    layout = match_layout(profile, (0,), cells, cells)
    assert layout is not None
    assert layout.columns == {0: "property_name", 1: "unit", 2: "resident_name"}
    assert layout.charge_columns == {3: "Monthly Rent", 4: "REV: Parking"}
    # The vocabulary's columns and charges are marked, for a person to confirm.
    assert layout.vocabulary == frozenset({0, 1, 2, 3, 4})
    # The profile's own name ("Building") wins over the vocabulary's ("Community").
    own = match_layout(profile, (0,), ["Community", "Building", *cells[1:]], ["x"] * 6)
    assert own is not None and own.columns[1] == "property_name" and 0 not in own.columns
    # "Lessee" aliased to a charge code in charge_codes.csv is a charge, not the resident.
    aliased = match_layout(
        profile, (0,), [*cells, "Tenant"], [*cells, "Tenant"], frozenset({"lessee"})
    )
    assert aliased is not None and aliased.columns[5] == "resident_name"
    assert aliased.charge_columns[2] == "Lessee" and 2 not in aliased.vocabulary


def test_a_narrow_profile_claims_only_files_with_its_own_marks() -> None:
    """#38: the Charges Summary applies only to a file whose title (or name) calls it one, and
    the senior-living roll charges only its own columns: a plain roll of Unit, Name and Rent
    is neither's, so it is held or proposed as a new layout, not read as theirs."""
    from pipelines.reading.extract import extract_file
    from pipelines.reading.grids import fingerprint
    from pipelines.reading.layout import detect_layout

    profiles = load_profiles(BUILTIN_PROFILES_DIR, kinds=registered())
    summary = next(p for p in profiles if p.name == "yardi_charges_summary")
    senior = next(p for p in profiles if p.name == "senior_living_rent_roll")
    assert summary.applies_to("Rent Roll Charges Summary Period: 01/24", "export.xlsx")
    assert summary.applies_to("", "RentRollChargesSummary_0124.xlsx")
    assert not summary.applies_to("Self Storage Rent Roll", "storage.csv")
    assert senior.charges_header("Accommodation Monthly")
    assert not senior.charges_header("Rent") and not senior.charges_header("Parking")
    assert summary.charges_header("Second Person") and not summary.charges_header("Residency Fee")
    table = pd.DataFrame(
        [
            ["Self Storage Rent Roll", "", "", ""],
            ["Unit", "Name", "Size", "Rent"],
            ["A101", "Ashby", "10x10", "238.0000"],
        ]
    )
    narrow = [summary, senior]
    assert detect_layout(table, narrow, "storage.csv") is None
    result = extract_file(fingerprint(TEST_DATA / "shape_yardi_charges_summary.xlsx"), narrow)
    assert result.profile == "yardi_charges_summary"
