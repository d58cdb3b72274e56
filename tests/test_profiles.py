"""Source profiles: every built-in one loads and maps only the columns the schemas define; a
profile with a mistake is refused saying what and where."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.core.errors import ConfigError
from pipelines.kinds import registered
from pipelines.reading.profiles import (
    BUILTIN_PROFILES_DIR,
    load_profile,
    load_profiles,
)

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
