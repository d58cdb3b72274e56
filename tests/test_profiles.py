"""Source profiles: every built-in one loads and maps only the columns the schemas define; a
profile with a mistake is refused saying what and where."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.errors import ConfigError
from pipelines.profiles import BUILTIN_PROFILES_DIR, load_profile, load_profiles
from schemas import SOURCE_COLUMNS


def test_every_builtin_profile_maps_only_its_kinds_columns() -> None:
    profiles = load_profiles(BUILTIN_PROFILES_DIR)
    assert len(profiles) >= 4
    for profile in profiles:
        assert set(profile.columns) <= set(SOURCE_COLUMNS[profile.kind]), profile.name
        assert set(profile.required) <= set(SOURCE_COLUMNS[profile.kind]), profile.name


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('kind = "payments"', "kind must be 'charge' or 'vendor_bill', got 'payments'"),
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
        load_profile(path)
    assert says in str(raised.value)
