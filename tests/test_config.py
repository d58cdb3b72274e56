"""Settings: where each comes from, what a bad one says, and the shipped config."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.core.config import load_settings
from pipelines.core.errors import ConfigError
from pipelines.kinds import registered
from tests.conftest import ROOT, TEST_DATA, run_cli


def test_a_bad_setting_says_which_key_and_what_was_expected(tmp_path: Path) -> None:
    config = tmp_path / "tieout.toml"
    config.write_text('batch_size = "lots"\n')
    with pytest.raises(ConfigError, match="batch_size: expected a whole number"):
        load_settings(env={}, config_path=config)
    config.write_text("bacth_size = 10\n")
    with pytest.raises(ConfigError, match="unknown setting 'bacth_size'"):
        load_settings(env={}, config_path=config)
    result = run_cli("config", "show", env={"TIEOUT_CONFIG": str(config)})
    assert (
        result.returncode == 2
        and "unknown setting" in result.stderr
        and "Traceback" not in result.stderr
    )


def test_the_shipped_config_is_all_defaults() -> None:
    assert load_settings(env={}, config_path=ROOT / "tieout.toml") == load_settings(
        env={}, config_path=TEST_DATA / "empty.toml"
    )


def test_the_shipped_config_documents_every_setting() -> None:
    """README: "every setting is there with its default"."""
    from dataclasses import fields

    from pipelines.core.config import Settings

    text = (ROOT / "tieout.toml").read_text()
    internal = {"period_override", "property_name", "profile_globs"}  # command line / [profiles]
    missing = [f.name for f in fields(Settings) if f.name not in internal and f.name not in text]
    assert missing == []
    assert "[profiles]" in text


def test_profiles_by_file_name_from_the_config(tmp_path: Path) -> None:
    from pipelines.reading.profiles import profile_for_file, profiles_for

    config = tmp_path / "tieout.toml"
    config.write_text('[profiles]\n"*itemized*" = "appfolio_rent_roll"\n')
    settings = load_settings(env={}, config_path=config)
    profiles = profiles_for(settings, registered())
    assert profile_for_file(settings, profiles, "June ITEMIZED.csv") == "appfolio_rent_roll"
    assert profile_for_file(settings, profiles, "bills.csv") is None
    config.write_text('[profiles]\n"*.csv" = "nope"\n')
    with pytest.raises(ConfigError, match="names no profile called 'nope'"):
        bad = load_settings(env={}, config_path=config)
        profile_for_file(bad, profiles_for(bad, registered()), "x.csv")


def test_settings_come_from_the_file_then_the_environment_then_the_command_line(
    tmp_path: Path,
) -> None:
    from pipelines.core.config import load_settings, setting_sources

    config = tmp_path / "tieout.toml"
    config.write_text('batch_size = 50\nintegration_id = "from_file"\n')
    env = {"PROPEXO_INTEGRATION_ID": "from_env"}
    settings = load_settings(env=env, config_path=config, overrides={"batch_size": 7})
    assert (settings.batch_size, settings.integration_id) == (7, "from_env")
    sources = setting_sources(env=env, config_path=config, overrides={"batch_size": 7})
    assert sources["batch_size"] == "command line"
    assert sources["integration_id"] == "environment PROPEXO_INTEGRATION_ID"
    assert sources["due_days_default"] == "default"


def test_the_ledger_url_defaults_to_the_data_folder_and_refuses_an_unknown_engine(
    tmp_path: Path,
) -> None:
    import pytest

    from pipelines.core.config import load_settings
    from pipelines.core.errors import ConfigError

    settings = load_settings(env={"TIEOUT_DATA_DIR": str(tmp_path)})
    assert settings.ledger == f"sqlite:///{tmp_path}/ledger.sqlite"
    assert settings.ledger_path == tmp_path / "ledger.sqlite"
    with pytest.raises(ConfigError, match="ledger_url: expected sqlite:///<path>"):
        load_settings(env={"TIEOUT_LEDGER_URL": "oracle://db"})
