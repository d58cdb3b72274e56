"""`tieout doctor`: is this installation ready to move money? PASS / WARN / FAIL, one line each.

Like `dbt debug`: the config file and where each value came from, the token, Propexo (which
one, reachable, accepting the token), the integration, the cached reference data, the ledger,
the folders, and the clock against Propexo's. Every FAIL names the next step.
"""

from __future__ import annotations

import email.utils
import tempfile
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from pipelines.core.config import (
    DEFAULT_TOKEN,
    Settings,
    is_insecure,
    secret_state,
    which_propexo,
)
from pipelines.core.errors import ApiError, LedgerError, PermanentApiError, UnreachableError
from pipelines.core.hints import AliasHints
from pipelines.core.models import POSTED
from pipelines.ledger import RECORD_SCHEME, Ledger
from pipelines.posting.propexo import make_client, probe_integration
from pipelines.reconciling.skew import last_measured, measure
from pipelines.resolving.aliases import read_aliases, unknown_targets
from pipelines.resolving.refs import build_reference_data

PASS, WARN, FAIL = "PASS", "WARN", "FAIL"
CLOCK_WARN_S = 60.0


@dataclass(frozen=True)
class Check:
    status: str
    name: str
    detail: str


def config_checks(settings: Settings, config_path: Path, sources: dict[str, str]) -> list[Check]:
    found = f"{config_path.resolve()}" if config_path.exists() else f"{config_path} (not found)"
    checks = [Check(PASS, "config file", found)]
    shown = ("base_url", "integration_id", "data_dir", "token", "webhook_secret")
    described = settings.describe(sources)
    described["webhook_secret"] = webhook_secret_state(settings, sources)
    for name in shown:
        value = described[name] if described[name] != "None" else "not set"
        if name == "data_dir":
            value = str(settings.data_dir.resolve())
        where = "" if name in ("token", "webhook_secret") else f"  ({sources.get(name, 'default')})"
        checks.append(Check(PASS, f"  {name}", f"{value}{where}"))
    others = [n for n, source in sources.items() if source != "default" and n not in shown]
    for name in sorted(others):
        checks.append(Check(PASS, f"  {name}", f"{described.get(name)}  ({sources[name]})"))
    return checks + config_mode_checks(config_path) + transport_checks(settings)


def webhook_secret_state(settings: Settings, sources: dict[str, str]) -> str:
    """``set (from …)`` or ``not set`` for the webhook secret: configured, or the file
    `tieout webhooks register` wrote."""
    from pipelines.reconciling.webhooks import secret_file

    if settings.webhook_secret is None and secret_file(settings).exists():
        return f"set (from {secret_file(settings)})"
    return secret_state(settings.webhook_secret, sources.get("webhook_secret"))


def config_mode_checks(config_path: Path) -> list[Check]:
    """A config file that holds a secret must be readable by its owner only."""
    try:
        raw = tomllib.loads(config_path.read_text(encoding="utf-8"))
        mode = config_path.stat().st_mode
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return []
    sections = [raw, *(v for v in raw.values() if isinstance(v, dict))]
    holds = [k for k in ("token", "webhook_secret") if any(k in part for part in sections)]
    if not holds or not mode & 0o077:
        return []
    return [
        Check(
            FAIL,
            "config file mode",
            f"{config_path} holds the {' and the '.join(holds)} and can be read by others "
            f"(mode {mode & 0o777:o}): run `chmod 600 {config_path}`",
        )
    ]


def transport_checks(settings: Settings) -> list[Check]:
    """The token goes out in clear text over plain http:// to another machine: a FAIL even
    when ``allow_insecure_http`` lets tieout run that way."""
    if not is_insecure(settings.base_url):
        return []
    return [
        Check(
            FAIL,
            "base_url",
            f"{settings.base_url} is plain http:// to another machine: the token goes out in "
            "clear text (allowed by allow_insecure_http); use https://",
        )
    ]


def token_checks(settings: Settings, sources: dict[str, str]) -> list[Check]:
    where = sources.get("token", "default")
    token = settings.token.reveal()
    if not token:
        return [Check(FAIL, "token", "no token: set PROPEXO_API_TOKEN in the environment")]
    production = which_propexo(settings.base_url) == "production"
    if production and token == DEFAULT_TOKEN:
        return [
            Check(
                FAIL,
                "token",
                "the sandbox's token is set for a production Propexo: set PROPEXO_API_TOKEN",
            )
        ]
    state = secret_state(settings.token, where)
    if production and where != "environment PROPEXO_API_TOKEN":
        return [
            Check(
                WARN,
                "token",
                f"{state}: keep it in the environment "
                "(an env file readable only by its owner), not in a file in the repository",
            )
        ]
    return [Check(PASS, "token", state)]


def propexo_checks(settings: Settings) -> list[Check]:
    """Reachable, token accepted, integration known, clock in step."""
    which = which_propexo(settings.base_url)
    reachable = Check(PASS, "propexo", f"{which} at {settings.base_url}: reachable")
    accepted = Check(PASS, "token accepted", "yes")
    try:
        with make_client(settings) as client:
            response = probe_integration(client, settings.integration_id)
    except UnreachableError as exc:
        return [Check(FAIL, "propexo", str(exc))]
    except PermanentApiError as exc:
        if exc.status_code in (401, 403):
            refused = f"Propexo refused the token ({exc.status_code}): check PROPEXO_API_TOKEN"
            return [reachable, Check(FAIL, "token accepted", refused)]
        if exc.status_code in (400, 404):
            unknown = (
                f"Propexo does not know integration {settings.integration_id!r} ({exc}): "
                "check integration_id (PROPEXO_INTEGRATION_ID)"
            )
            return [reachable, accepted, Check(FAIL, "integration", unknown)]
        return [Check(FAIL, "propexo", str(exc))]
    except ApiError as exc:
        return [Check(FAIL, "propexo", f"{exc}; try again, or check base_url")]
    checks = [reachable, accepted]
    results = response.json().get("results") or []
    if results:
        checks.append(
            Check(PASS, "integration", f"{settings.integration_id} (Rent Manager locations found)")
        )
    else:
        checks.append(
            Check(
                FAIL,
                "integration",
                f"no Rent Manager locations for integration {settings.integration_id!r}: the "
                "id is wrong or no location is enabled; check integration_id "
                "(PROPEXO_INTEGRATION_ID)",
            )
        )
    checks.append(_clock(response.headers.get("date")))
    return checks


def _clock(header: str | None) -> Check:
    if not header:
        return Check(WARN, "clock", "Propexo sent no Date header: skew not measured")
    theirs = email.utils.parsedate_to_datetime(header)
    skew = (datetime.now(tz=UTC) - theirs).total_seconds()
    status = PASS if abs(skew) <= CLOCK_WARN_S else WARN
    detail = f"{skew:+.0f} s against Propexo's clock"
    if status == WARN:
        detail += ": set the clock (NTP); in-doubt proof compares write and sync times"
    detail += " (its Date header; the data's own clock is measured below)"
    return Check(status, "clock", detail)


def data_clock_checks(settings: Settings) -> list[Check]:
    """Propexo's data clock against ours, measured on the newest records tieout wrote (their
    ``created_at`` against when tieout sent them), or else the last reconcile's measurement:
    the ``Date`` header may be right while the data's timestamps are not."""
    if settings.ledger_is_file and not settings.ledger_path.exists():
        return [Check(PASS, "data clock", "not measured yet: measured on records tieout wrote")]
    try:
        with Ledger(settings.ledger, readonly=True) as ledger:
            ours = ledger.records(
                states=list(POSTED),
                columns=["created_record_id", "reference_number", "sent_at", "confirmed_at"],
            )
            kept = last_measured(ledger)
    except LedgerError:
        return []  # the ledger check says why
    theirs = []
    try:
        with make_client(settings) as client:
            for path in ("/v1/invoices/", "/v1/resident-charges/"):
                page = client.get(
                    path,
                    {
                        "integration_id": settings.integration_id,
                        "order-by": "created_at:desc",
                        "limit": DATA_CLOCK_SAMPLE,
                    },
                )
                theirs += [r for r in page.get("results") or [] if isinstance(r, dict)]
    except ApiError:
        pass  # measured from the ledger's note below, or not at all
    measured = measure(ours, pd.DataFrame(theirs)) if theirs else None
    where = f"{measured.witnesses} records tieout wrote, now" if measured else ""
    if measured is None and kept is not None:
        measured, at = kept
        where = f"{measured.witnesses} records tieout wrote, at {at[:19].replace('T', ' ')}"
    if measured is None:
        return [Check(PASS, "data clock", "not measured yet: measured on records tieout wrote")]
    offset = measured.estimate_s
    status = PASS if measured.worst_s <= CLOCK_WARN_S else WARN
    detail = (
        f"Propexo's data timestamps {offset:+.0f} s from this clock "
        f"(between {measured.low_s:+.0f} and {measured.high_s:+.0f} s; from {where})"
    )
    if status == WARN:
        detail += (
            ": reconcile allows for it (nothing is called missing on a skewed timestamp), "
            "but ask Propexo, and set this machine's clock (NTP)"
        )
    return [Check(status, "data clock", detail)]


DATA_CLOCK_SAMPLE = 100


def ledger_checks(settings: Settings) -> list[Check]:
    try:
        ledger = Ledger(settings.ledger)
    except LedgerError as exc:
        return [Check(FAIL, "ledger", str(exc))]
    try:
        with ledger.db.transaction():  # a write lock can be taken now
            pass
        scheme = ledger.get_meta("record_scheme") or RECORD_SCHEME
        checks = [
            Check(
                PASS,
                "ledger",
                f"{ledger.description} writable; record numbers scheme {scheme}",
            )
        ]
        cached = ledger.cached_refs(settings.integration_id)
    except Exception as exc:  # a locked or read-only database says so in one line
        return [Check(FAIL, "ledger", f"{ledger.description}: {exc}")]
    finally:
        ledger.close()
    if cached is None:
        checks.append(
            Check(WARN, "reference data", "not cached yet: fetched by the first check or run")
        )
    else:
        fetched_at, lists = cached
        when = datetime.fromisoformat(fetched_at.replace("Z", "+00:00"))
        age = (datetime.now(tz=UTC) - when).total_seconds()
        counts = ", ".join(f"{name} {len(rows):,}" for name, rows in lists.items())
        fresh = "" if age <= settings.refs_max_age_s else "; refreshed at the next run"
        checks.append(Check(PASS, "reference data", f"{counts}; {age / 60:,.0f} min old{fresh}"))
    return checks


def folder_checks(settings: Settings) -> list[Check]:
    checks = []
    for name, folder in (
        ("inbox", settings.inbox_dir),
        ("archive", settings.archive_dir),
        ("rejected", settings.rejected_dir),
        ("reports", settings.reports_dir),
    ):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=folder, prefix=".doctor-"):
                pass
            checks.append(Check(PASS, name, f"{folder} writable"))
        except OSError as exc:
            checks.append(Check(FAIL, name, f"{folder}: {exc.strerror or exc}"))
    return checks


def webhook_checks(settings: Settings) -> list[Check]:
    from pipelines.reconciling.webhooks import secret_file, webhook_secret

    path = secret_file(settings)
    if path.exists() and path.stat().st_mode & 0o077:
        return [
            Check(
                FAIL,
                "webhooks",
                f"{path} can be read by others: anyone who reads it can sign webhooks; "
                f"run `chmod 600 {path}`",
            )
        ]
    if webhook_secret(settings) is None:
        return [
            Check(
                WARN,
                "webhooks",
                "no webhook_secret: without `tieout webhooks serve`, records in doubt stay in "
                "doubt until a person settles them with `tieout resolve`",
            )
        ]
    return [Check(PASS, "webhooks", "webhook secret set; run `tieout webhooks serve`")]


def alias_checks(settings: Settings) -> list[Check]:
    """The alias files as a run reads them: every line, and (with reference data cached)
    every target against Propexo's names. One FAIL per problem, naming file and line."""
    files = read_aliases(settings.mappings_dir)
    problems = [str(p) for p in files.problems]
    checked = "targets not checked (no reference data cached yet)"
    no_ledger = settings.ledger_is_file and not settings.ledger_path.exists()
    if not no_ledger:
        with Ledger(settings.ledger, readonly=True) as ledger:
            cached = ledger.cached_refs(settings.integration_id)
        if cached is not None:
            refs = build_reference_data(cached[1], {}, AliasHints(settings.data_dir))
            problems += [str(p) for p in unknown_targets(refs, files)]
            checked = "every target is a name Propexo knows"
    if problems:
        return [Check(FAIL, "aliases", problem) for problem in problems]
    count = sum(len(frame) for frame in files.frames.values())
    status = PASS if "every target" in checked or not count else WARN
    return [Check(status, "aliases", f"{count} in {settings.mappings_dir}; {checked}")]


def run_doctor(settings: Settings, config_path: Path, sources: dict[str, str]) -> list[Check]:
    """Every check, in the order a person would fix them."""
    return (
        config_checks(settings, config_path, sources)
        + token_checks(settings, sources)
        + propexo_checks(settings)
        + ledger_checks(settings)
        + data_clock_checks(settings)
        + folder_checks(settings)
        + alias_checks(settings)
        + webhook_checks(settings)
    )
