"""Settings: built once at the edge (the CLI) from `tieout.toml` and the environment.

Precedence, lowest first: built-in defaults, the TOML file (``TIEOUT_CONFIG`` or ``./tieout.toml``),
then the environment (``PROPEXO_BASE_URL``, ``PROPEXO_API_TOKEN``, ``PROPEXO_INTEGRATION_ID``,
``TIEOUT_DATA_DIR``). Stages never read the environment; they take what they need as arguments.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pipelines.core.errors import ConfigError

SQLITE_PREFIX = "sqlite:///"
POSTGRES_PREFIXES = ("postgresql://", "postgres://")


def sqlite_path(url: str) -> Path:
    """The file of a ``sqlite:///path`` URL (``sqlite:////abs/path`` for an absolute one)."""
    if not url.startswith(SQLITE_PREFIX):
        raise ConfigError(f"ledger_url: expected sqlite:///<path>, got {url!r}")
    return Path(url[len(SQLITE_PREFIX) :])


DEFAULT_BASE_URL = "http://127.0.0.1:8765"
DEFAULT_TOKEN = "sandbox-token"  # noqa: S105 - the embedded sandbox's public default, not a secret
DEFAULT_INTEGRATION_ID = "int_rm_demo"


class Secret:
    """A string that never shows itself in a repr, a log line or an f-string."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The real value, for the one place that needs it (the Authorization header)."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('****')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class Settings:
    """Everything a command needs to know, resolved and checked."""

    base_url: str = DEFAULT_BASE_URL
    token: Secret = field(default_factory=lambda: Secret(DEFAULT_TOKEN))
    integration_id: str = DEFAULT_INTEGRATION_ID
    data_dir: Path = Path("data")
    batch_size: int = 100
    concurrency: int = 8
    rate_window_s: float = 60.0  # Propexo's limit is per minute; the sandbox's can be shorter
    period: date | None = None
    # A period given for a file whose own title states another month is refused unless this
    # is set (`--period-override`).
    period_override: bool = False
    # The property of a rent roll that names it in no column or group row (`--property`).
    property_name: str | None = None
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 30.0
    status_timeout_s: float = 120.0
    due_days_default: int = 30
    refs_max_age_s: float = 3600.0
    reconcile_grace_s: float = 0.0
    in_doubt_grace_s: float = 120.0
    # Off (None) by default: a record in doubt that no job in Propexo's write log carries is
    # left for a person (`tieout resolve`). Set, it is sent again once this long has passed
    # since its POST and the log, read at least twice after that, still shows no job for it.
    resend_unlogged_after_s: float | None = None
    # How long after a POST its job is surely in Propexo's write log (the job finished, and the
    # log's own delay passed). Propexo does not say; a ledger that is new, restored or rebuilt
    # sends nothing it cannot prove absent until this long after it was noticed (#37).
    write_log_lag_s: float = 300.0
    settle_s: float = 2.0  # a dropped file must keep its size and mtime this long to be taken
    log_files_kept: int = 200
    max_file_mb: float = 200.0
    max_rows: int = 5_000_000
    profile: str | None = None
    # How far either side of a sync Propexo syncs resident charges. Propexo's reads are
    # date-limited per integration; set this to yours (never wider): a charge outside it is
    # "not verifiable by sync", never "missing", and never re-sent on a sync's word.
    sync_window_days: float = 30.0
    clock_skew_s: float = 60.0  # allowed difference between our clock and Propexo's
    webhook_secret: Secret | None = None  # checks propexo-signature on webhooks we receive
    # A delivery byte for byte the same as one received less than this ago (no sync asked for
    # since) is Propexo delivering again: recorded once.
    webhook_redelivery_s: float = 600.0
    # Where the ledger lives: sqlite:///<path> (default: sqlite:///<data_dir>/ledger.sqlite).
    ledger_url: str | None = None
    backups_kept: int = 14  # ledger backups in data/backups/, one after each run
    # [profiles] in tieout.toml: (file-name glob, profile name), tried in order when no
    # profile is named on the command line.
    profile_globs: tuple[tuple[str, str], ...] = ()
    # Maker and checker (#27): every file whose rows are ready is held, with its preview, until
    # a person approves it (`tieout approve FILE --by NAME`).
    approve_each_file: bool = False
    # Plain http:// to a host other than this machine sends the token in clear text: refused
    # unless this is set (a lab network); `tieout doctor` fails it even then.
    allow_insecure_http: bool = False
    # A group whose members may read the reports (folders 0750, files 0640, chgrp'd to it);
    # unset, everything tieout writes is owner-only.
    shared_reports_group: str | None = None

    @property
    def inbox_dir(self) -> Path:
        return self.data_dir / "inbox"

    @property
    def archive_dir(self) -> Path:
        return self.data_dir / "archive"

    @property
    def rejected_dir(self) -> Path:
        return self.data_dir / "rejected"

    @property
    def reports_dir(self) -> Path:
        return self.data_dir / "reports"

    @property
    def ledger(self) -> str:
        """The ledger's URL: ``ledger_url``, else the SQLite file in the data folder."""
        return self.ledger_url or f"sqlite:///{self.data_dir / 'ledger.sqlite'}"

    @property
    def ledger_is_file(self) -> bool:
        """The ledger is a SQLite file (backed up after each run by tieout itself)."""
        return self.ledger.startswith(SQLITE_PREFIX)

    @property
    def ledger_path(self) -> Path:
        """The SQLite ledger's file (backups copy it)."""
        return sqlite_path(self.ledger)

    @property
    def backups_dir(self) -> Path:
        return self.data_dir / "backups"

    @property
    def profiles_dir(self) -> Path:
        return self.data_dir / "profiles"

    @property
    def mappings_dir(self) -> Path:
        return self.data_dir / "mappings"

    def describe(self, sources: Mapping[str, str] | None = None) -> dict[str, str]:
        """Every setting as text: what `tieout config show` prints. A secret is never shown,
        not even in part: ``set (from <where>)`` or ``not set``."""
        shown: dict[str, str] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in SECRET_FIELDS:
                shown[f.name] = secret_state(value, (sources or {}).get(f.name))
            else:
                shown[f.name] = str(value)
        return shown


SECRET_FIELDS = ("token", "webhook_secret")


def secret_state(value: Secret | None, source: str | None) -> str:
    """``set (from PROPEXO_API_TOKEN)``, ``set (from tieout.toml)``, ``set`` or ``not set``:
    all that is ever printed of a secret."""
    if value is None or not value.reveal():
        return "not set"
    if source and source != "default":
        where = source.removeprefix("environment ")
        return f"set (from {where})"
    return "set"


def is_loopback(base_url: str) -> bool:
    """Whether ``base_url``'s host is this machine: 127.0.0.0/8, ::1 or ``localhost``."""
    return is_loopback_host(urlsplit(base_url).hostname or "")


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` (a name or an address) is this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_insecure(base_url: str) -> bool:
    """Plain http:// to a host that is not this machine: the token would go out in clear text."""
    return base_url.lower().startswith("http://") and not is_loopback(base_url)


_ENV_KEYS = {
    "PROPEXO_BASE_URL": "base_url",
    "PROPEXO_API_TOKEN": "token",
    "PROPEXO_INTEGRATION_ID": "integration_id",
    "TIEOUT_DATA_DIR": "data_dir",
    "TIEOUT_WEBHOOK_SECRET": "webhook_secret",
    "TIEOUT_LEDGER_URL": "ledger_url",
    "TIEOUT_ALLOW_INSECURE_HTTP": "allow_insecure_http",
    "TIEOUT_SHARED_REPORTS_GROUP": "shared_reports_group",
}


def _coerce(name: str, value: Any) -> Any:
    """Check one raw value against the field it is for; say which key and what was expected."""
    expected = {f.name: f for f in fields(Settings)}
    if name not in expected:
        known = ", ".join(sorted(expected))
        raise ConfigError(f"unknown setting {name!r}; known settings: {known}")
    if name == "webhook_secret":
        if not isinstance(value, str) or len(value.strip()) < 10:
            raise ConfigError("webhook_secret: expected at least 10 characters")
        return Secret(value.strip())
    if name == "token":
        if not isinstance(value, str) or not value.strip():
            raise ConfigError("token: expected a non-empty string")
        return Secret(value.strip())
    if name == "data_dir":
        return Path(str(value))
    if name == "ledger_url":
        if not isinstance(value, str) or not value.startswith((SQLITE_PREFIX, *POSTGRES_PREFIXES)):
            raise ConfigError(
                f"ledger_url: expected sqlite:///<path> or postgresql://…, got {value!r}"
            )
        return value
    if name == "period":
        if value in (None, ""):
            return None
        text = str(value)
        if not re.fullmatch(r"\d{4}-\d{2}", text):
            raise ConfigError(f"period: expected YYYY-MM, got {text!r}")
        return date(int(text[:4]), int(text[5:7]), 1)
    if name == "base_url":
        if not isinstance(value, str) or not re.match(r"^https?://", value):
            raise ConfigError(f"base_url: expected an http(s) URL, got {value!r}")
        return value.rstrip("/")
    if name in {
        "batch_size",
        "due_days_default",
        "concurrency",
        "log_files_kept",
        "max_rows",
        "backups_kept",
    }:
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{name}: expected a whole number, got {value!r}") from None
        if number < 1 and name in {"batch_size", "concurrency"}:
            raise ConfigError(f"{name}: expected at least 1, got {number}")
        return number
    if name == "allow_insecure_http" and isinstance(value, str):
        words = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
        if value.strip().lower() not in words:
            raise ConfigError(f"{name}: expected true or false, got {value!r}")
        return words[value.strip().lower()]
    if name in ("approve_each_file", "allow_insecure_http"):
        if not isinstance(value, bool):
            raise ConfigError(f"{name}: expected true or false, got {value!r}")
        return value
    if name.endswith(("_s", "_mb", "_days")):
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{name}: expected a number of seconds, got {value!r}") from None
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"{name}: expected text, got {value!r}")
    return value


def which_propexo(base_url: str) -> str:
    """ "sandbox" for a Propexo on this machine (or a sandbox host), else "production"."""
    host = base_url.split("//", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0]
    local = host in {"127.0.0.1", "localhost", "[::1]"}
    return "sandbox" if local or "sandbox" in host else "production"


def config_file(env: Mapping[str, str] | None = None, config_path: Path | None = None) -> Path:
    """The config file settings are read from (it may not exist)."""
    env = os.environ if env is None else env
    return config_path or Path(env.get("TIEOUT_CONFIG", "tieout.toml"))


def setting_sources(
    env: Mapping[str, str] | None = None,
    config_path: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """Where each setting's value comes from: "default", the config file, an environment
    variable or the command line (what `tieout doctor` shows). Reads, never validates."""
    env = os.environ if env is None else env
    path = config_file(env, config_path)
    sources = {f.name: "default" for f in fields(Settings)}
    if path.exists():
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError):
            raw = {}
        if raw.pop("profiles", None):
            sources["profile_globs"] = str(path)
        for key in {**raw.pop("propexo", {}), **raw.pop("pipeline", {}), **raw}:
            if key in sources:
                sources[key] = str(path)
    for env_key, name in _ENV_KEYS.items():
        if env.get(env_key):
            sources[name] = f"environment {env_key}"
    for key, value in (overrides or {}).items():
        if value is not None and key in sources:
            sources[key] = "command line"
    return sources


def load_settings(
    env: Mapping[str, str] | None = None,
    config_path: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build the settings from the TOML file, then the environment, then explicit overrides."""
    env = os.environ if env is None else env
    path = config_file(env, config_path)
    values: dict[str, Any] = {}
    if path.exists():
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: not valid TOML ({exc})") from exc
        globs = raw.pop("profiles", {})
        if not isinstance(globs, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in globs.items()
        ):
            raise ConfigError(
                f'{path}: [profiles] maps file-name globs to profile names, e.g. "*itemized*" = '
                '"appfolio_rent_roll"'
            )
        if globs:
            values["profile_globs"] = tuple(globs.items())
        flat = {**raw.pop("propexo", {}), **raw.pop("pipeline", {}), **raw}
        for key, value in flat.items():
            values[key] = _coerce(key, value)
    elif config_path is not None:
        raise ConfigError(f"config file {path} does not exist")
    for env_key, name in _ENV_KEYS.items():
        if env.get(env_key):
            values[name] = _coerce(name, env[env_key])
    for key, value in (overrides or {}).items():
        if value is not None:
            values[key] = _coerce(key, value)
    settings = replace(Settings(), **values)
    if settings.shared_reports_group:
        from pipelines.core.disk import group_id

        group_id(settings.shared_reports_group)  # a group that exists and is ours to give
    if is_insecure(settings.base_url) and not settings.allow_insecure_http:
        raise ConfigError(
            f"base_url {settings.base_url} is plain http:// to another machine: the token would "
            "go out in clear text; use https://, or set allow_insecure_http = true in "
            f"{path} (a lab network only)"
        )
    return settings
