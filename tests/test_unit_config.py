"""Settings, unit by unit: each kind of value is checked against what its setting expects and
a mistake names the key; precedence is file, then environment, then command line; a secret
never shows itself; a token is never sent in clear text to another machine by accident."""

from __future__ import annotations

import grp
import os
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipelines.core.config import (
    DEFAULT_TOKEN,
    SECRET_FIELDS,
    Secret,
    Settings,
    config_file,
    is_insecure,
    is_loopback,
    is_loopback_host,
    load_settings,
    secret_state,
    setting_sources,
    sqlite_path,
    which_propexo,
)
from pipelines.core.errors import ConfigError


def settings_from(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> Settings:
    path = tmp_path / "tieout.toml"
    path.write_text(text, encoding="utf-8")
    return load_settings(env=env or {}, config_path=path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("webhook_secret = 'short'", "webhook_secret: expected at least 10 characters"),
        ("webhook_secret = 12345678901", "webhook_secret: expected at least 10 characters"),
        ("token = '   '", "token: expected a non-empty string"),
        ("token = 7", "token: expected a non-empty string"),
        ("ledger_url = 'mysql://x'", "ledger_url: expected sqlite:///<path> or postgresql"),
        ("period = '2026-3'", "period: expected YYYY-MM, got '2026-3'"),
        ("period = 'March'", "period: expected YYYY-MM"),
        ("base_url = 'ftp://x'", "base_url: expected an http\\(s\\) URL"),
        ("base_url = 8765", "base_url: expected an http\\(s\\) URL"),
        ("concurrency = 0", "concurrency: expected at least 1, got 0"),
        ("batch_size = -3", "batch_size: expected at least 1, got -3"),
        ("max_rows = 'many'", "max_rows: expected a whole number, got 'many'"),
        ("approve_each_file = 'yes'", "approve_each_file: expected true or false"),
        ("allow_insecure_http = 'maybe'", "allow_insecure_http: expected true or false"),
        ("allow_insecure_http = 1", "allow_insecure_http: expected true or false"),
        ("read_timeout_s = 'slow'", "read_timeout_s: expected a number of seconds"),
        ("max_file_mb = [1]", "max_file_mb: expected a number"),
        ("integration_id = 5", "integration_id: expected text, got 5"),
        ("profile = ['a']", "profile: expected text"),
        ("[pipeline]\nbacth = 1", "unknown setting 'bacth'; known settings: .*batch_size"),
    ],
)
def test_a_wrong_value_names_its_key_and_what_was_expected(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        settings_from(tmp_path, text)


def test_values_are_read_as_what_their_setting_means(tmp_path: Path) -> None:
    s = settings_from(
        tmp_path,
        "\n".join(
            [
                "[propexo]",
                "base_url = 'https://api.propexo.com/v1/'",
                "token = '  tok-123  '",
                "webhook_secret = ' 0123456789abc '",
                "[pipeline]",
                "period = '2026-03'",
                "batch_size = '25'",
                "max_file_mb = 12",
                "sync_window_days = '7.5'",
                "data_dir = 'elsewhere'",
                "ledger_url = 'postgresql://db/tieout'",
                "approve_each_file = true",
                "profile = 'yardi_rent_roll'",
            ]
        ),
    )
    assert s.base_url == "https://api.propexo.com/v1"
    assert s.token == Secret("tok-123")
    assert s.webhook_secret == Secret("0123456789abc")
    assert s.period == date(2026, 3, 1)
    assert s.batch_size == 25
    assert s.max_file_mb == 12.0 and isinstance(s.max_file_mb, float)
    assert s.sync_window_days == 7.5
    assert s.data_dir == Path("elsewhere")
    assert s.ledger == "postgresql://db/tieout"
    assert not s.ledger_is_file
    assert s.approve_each_file is True
    assert s.profile == "yardi_rent_roll"


def test_a_blank_period_is_no_period(tmp_path: Path) -> None:
    assert settings_from(tmp_path, "period = ''").period is None


@pytest.mark.parametrize(
    ("word", "value"),
    [("true", True), ("YES", True), (" 1 ", True), ("false", False), ("No", False), ("0", False)],
)
def test_the_insecure_http_switch_reads_the_words_an_environment_uses(
    word: str, value: bool
) -> None:
    env = {"TIEOUT_ALLOW_INSECURE_HTTP": word, "PROPEXO_BASE_URL": "https://x.example"}
    assert load_settings(env=env, config_path=None).allow_insecure_http is value


def test_the_environment_beats_the_file_and_the_command_line_beats_both(tmp_path: Path) -> None:
    path = tmp_path / "tieout.toml"
    path.write_text("integration_id = 'from-file'\ndata_dir = 'file-dir'\nbatch_size = 3\n")
    env = {"PROPEXO_INTEGRATION_ID": "from-env", "TIEOUT_DATA_DIR": "env-dir"}
    overrides: dict[str, Any] = {"data_dir": "cli-dir", "batch_size": None}
    s = load_settings(env=env, config_path=path, overrides=overrides)
    assert (s.integration_id, s.data_dir, s.batch_size) == ("from-env", Path("cli-dir"), 3)
    sources = setting_sources(env=env, config_path=path, overrides=overrides)
    assert sources["integration_id"] == "environment PROPEXO_INTEGRATION_ID"
    assert sources["data_dir"] == "command line"
    assert sources["batch_size"] == str(path)
    assert sources["token"] == "default"


def test_sources_are_reported_even_for_a_file_that_does_not_parse(tmp_path: Path) -> None:
    path = tmp_path / "tieout.toml"
    path.write_text("this is = = not toml")
    assert set(setting_sources(env={}, config_path=path).values()) == {"default"}
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(env={}, config_path=path)


def test_profiles_by_glob_are_a_source_and_must_map_text_to_text(tmp_path: Path) -> None:
    path = tmp_path / "tieout.toml"
    path.write_text('[profiles]\n"*yardi*" = "yardi_rent_roll"\n')
    assert setting_sources(env={}, config_path=path)["profile_globs"] == str(path)
    assert load_settings(env={}, config_path=path).profile_globs == (
        ("*yardi*", "yardi_rent_roll"),
    )
    path.write_text('[profiles]\n"*yardi*" = 3\n')
    with pytest.raises(ConfigError, match=r"\[profiles\] maps file-name globs to profile names"):
        load_settings(env={}, config_path=path)
    path.write_text('profiles = "all"\n')
    with pytest.raises(ConfigError, match=r"\[profiles\]"):
        load_settings(env={}, config_path=path)


def test_a_named_config_file_must_exist_but_the_default_one_need_not(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(env={}, config_path=tmp_path / "missing.toml")
    env = {"TIEOUT_CONFIG": str(tmp_path / "absent.toml")}
    assert load_settings(env=env) == Settings()
    assert config_file(env) == tmp_path / "absent.toml"
    assert config_file({}) == Path("tieout.toml")
    assert config_file(env, tmp_path / "x.toml") == tmp_path / "x.toml"


def test_plain_http_to_another_machine_is_refused_unless_allowed(tmp_path: Path) -> None:
    env = {"PROPEXO_BASE_URL": "http://propexo.lab:8080"}
    with pytest.raises(ConfigError, match=r"plain http:// to another machine.*allow_insecure_http"):
        load_settings(env=env)
    allowed = load_settings(env={**env, "TIEOUT_ALLOW_INSECURE_HTTP": "true"})
    assert allowed.base_url == "http://propexo.lab:8080"
    assert load_settings(env={"PROPEXO_BASE_URL": "http://127.0.0.2:9"}).base_url


@pytest.mark.parametrize(
    ("url", "loopback", "insecure"),
    [
        ("http://127.0.0.1:8765", True, False),
        ("http://127.9.9.9", True, False),
        ("http://localhost/api", True, False),
        ("http://[::1]:80", True, False),
        ("HTTP://10.0.0.5", False, True),
        ("http://localhost.evil.com", False, True),
        ("https://10.0.0.5", False, False),
        ("https://api.propexo.com", False, False),
    ],
)
def test_what_counts_as_this_machine(url: str, loopback: bool, insecure: bool) -> None:
    assert is_loopback(url) is loopback
    assert is_insecure(url) is insecure


def test_a_host_that_is_not_an_address_is_not_loopback_by_its_look() -> None:
    assert not is_loopback_host("127.0.0.1.nip.io")
    assert not is_loopback_host("")
    assert is_loopback_host("::1")


@pytest.mark.parametrize(
    ("url", "which"),
    [
        ("http://127.0.0.1:8765", "sandbox"),
        ("http://localhost", "sandbox"),
        ("http://[::1]:9000/v1", "sandbox"),
        ("https://sandbox.propexo.com", "sandbox"),
        ("https://api.propexo.com", "production"),
    ],
)
def test_which_propexo_a_url_is(url: str, which: str) -> None:
    assert which_propexo(url) == which


@given(st.text(min_size=1, max_size=30))
def test_a_secret_never_shows_itself(value: str) -> None:
    secret = Secret(value)
    assert secret.reveal() == value
    assert value not in repr(secret).replace("Secret('****')", "")
    assert f"{secret}" == "Secret('****')"
    assert secret == Secret(value)
    assert hash(secret) == hash(Secret(value))
    assert secret != value


def test_describe_shows_where_a_secret_is_set_never_its_value() -> None:
    s = Settings(token=Secret("tok-abcdef"), webhook_secret=None)
    shown = s.describe({"token": "environment PROPEXO_API_TOKEN"})
    assert shown["token"] == "set (from PROPEXO_API_TOKEN)"
    assert shown["webhook_secret"] == "not set"
    assert "tok-abcdef" not in "".join(shown.values())
    assert set(SECRET_FIELDS) <= set(shown)
    assert Settings().describe()["token"] == "set"
    assert secret_state(Secret(""), "tieout.toml") == "not set"
    assert secret_state(Secret(DEFAULT_TOKEN), "default") == "set"
    assert secret_state(Secret("x"), "/etc/tieout.toml") == "set (from /etc/tieout.toml)"


def test_the_data_folder_names_every_place_tieout_keeps_things() -> None:
    s = Settings(data_dir=Path("/srv/t"))
    assert s.inbox_dir == Path("/srv/t/inbox")
    assert s.archive_dir == Path("/srv/t/archive")
    assert s.rejected_dir == Path("/srv/t/rejected")
    assert s.reports_dir == Path("/srv/t/reports")
    assert s.backups_dir == Path("/srv/t/backups")
    assert s.profiles_dir == Path("/srv/t/profiles")
    assert s.mappings_dir == Path("/srv/t/mappings")
    assert s.ledger == "sqlite:////srv/t/ledger.sqlite"
    assert s.ledger_is_file
    assert s.ledger_path == Path("/srv/t/ledger.sqlite")


def test_a_ledger_path_is_only_read_from_a_sqlite_url() -> None:
    assert sqlite_path("sqlite:///rel/ledger.sqlite") == Path("rel/ledger.sqlite")
    with pytest.raises(ConfigError, match="ledger_url: expected sqlite:///<path>"):
        sqlite_path("postgresql://db/x")
    with pytest.raises(ConfigError):
        Settings(ledger_url="postgres://db/x").ledger_path  # noqa: B018


def test_a_shared_reports_group_is_checked_when_settings_are_built() -> None:
    with pytest.raises(ConfigError, match="shared_reports_group: no group named"):
        load_settings(env={"TIEOUT_SHARED_REPORTS_GROUP": "no-such-group-zz"})
    own = grp.getgrgid(os.getegid()).gr_name
    s = load_settings(env={"TIEOUT_SHARED_REPORTS_GROUP": own})
    assert s.shared_reports_group == own
