"""The sandbox's options: where Propexo's docs are silent, each choice is a named setting,
and the least convenient plausible one is what tests run under; and the faults it injects."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sandbox.kinds import SandboxKind

FAULT_ROUTES = ("post", "get", "*")


# 500/502/503, reset: the request is not applied. lost: applied, the answer never arrives.
# 400/422: refused before anything is applied (Propexo's error body). 401/403: the token
# refused. html, truncated, 204: applied, and answered 2xx with a body that cannot be read (an
# HTML page, JSON cut short with a matching content-length, or no body at all).
FAULT_KINDS = (
    "500",
    "502",
    "503",
    "reset",
    "lost",
    "400",
    "401",
    "403",
    "422",
    "html",
    "truncated",
    "204",
)


@dataclass
class SandboxConfig:
    """How the emulator behaves; every field is a `tieout sandbox` option."""

    token: str = "sandbox-token"  # noqa: S105 - the sandbox's documented default
    rate_limit: int = 150
    rate_window_s: float = 60.0
    job_delay_s: float = 1.0
    sync_interval_s: float | None = None
    faults: dict[str, dict[str, float]] = field(default_factory=dict)
    fault_seed: int | None = None
    # Faults on the n-th request of a route (``post:422@2``): route → {n: kind}, n from 1.
    faults_at: dict[str, dict[int, str]] = field(default_factory=dict)
    # The token is revoked once this many POSTs to /v1/ have been let through: every later
    # /v1/ request is answered 401 (a test may set it back to None: the token is restored).
    revoke_token_after: int | None = None
    # Propexo's data timestamps (records' created_at, updated_at, last_seen) run this many
    # seconds off the real clock; its Date header does not (0: in step).
    clock_skew_s: float = 0.0
    # Where Propexo's docs are silent, the default is the least convenient plausible answer.
    sync_mode: str = "async"  # async: manual-sync answers at once, finishes later | instant
    sync_duration_s: float = 3.0
    sync_window_days: float | None = 90.0  # a sync sees charges dated within N days; None: all
    batch_errors: str = "opaque"  # opaque: PMS strings with no index | indexed: charges[i]
    batch_atomic: bool = False  # one bad charge fails the whole batch
    unknown_job: int = 400  # write-status of a job Propexo does not know: 400 | 404
    reference_readback: str = "echo"  # echo: reference_number read back | null
    max_body_bytes: int = 6 * 2**20  # larger bodies get 413
    # The write log (``GET /v1/admin/logs/writes/``): an entry appears only once its job has
    # finished, and this much later still; ``parameters`` is null (``body``: the request's
    # body), so a client must read the job's request through ``/v1/admin/job-logs/{id}/data``.
    write_log_delay_s: float = 5.0
    log_parameters: str = "null"  # null | body
    # Webhooks are delivered at least once: each delivery is sent again, later (up to
    # ``webhook_late_s``), with this probability; every delivery may itself be that late.
    webhook_redeliver: float = 0.25
    webhook_late_s: float = 1.0
    # A write the PMS applied, reported FAILURE by write-status and the log (a timeout
    # between Propexo and the PMS), with this probability.
    failed_but_applied: float = 0.0
    # Another client of the same integration asks for a manual sync every S seconds.
    foreign_syncs_s: float | None = None
    # Rent Manager integrations: the seed's, and copies of it with ids of their own. The n-th
    # is reached with token "<token>-n" (the first with the token itself): Propexo's rate limit
    # is per customer, so each token has a budget of its own.
    integrations: int = 1
    # Record kinds served besides the built-in ones (``sandbox.kinds``); set from code (tests),
    # not a `tieout sandbox` option.
    kinds: tuple[SandboxKind, ...] = ()

    def tokens(self) -> list[str]:
        """Every token the sandbox accepts, the first integration's first."""
        return [self.token] + [f"{self.token}-{n}" for n in range(2, self.integrations + 1)]

    def __post_init__(self) -> None:
        choices = {
            "sync_mode": ("async", "instant"),
            "batch_errors": ("opaque", "indexed"),
            "unknown_job": (400, 404),
            "reference_readback": ("echo", "null"),
            "log_parameters": ("null", "body"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(map(str, allowed))}")

    def semantics(self) -> dict[str, str]:
        """The undocumented behaviours and the answer this sandbox gives (printed at start)."""
        window = "all" if self.sync_window_days is None else f"{self.sync_window_days:g} days"
        return {
            "sync mode": f"{self.sync_mode}"
            + (f" ({self.sync_duration_s:g}s)" if self.sync_mode == "async" else ""),
            "sync window (charges)": window,
            "scheduled syncs": f"every {self.sync_interval_s:g}s"
            if self.sync_interval_s
            else "off",
            "batch errors": self.batch_errors,
            "batch atomic": "yes" if self.batch_atomic else "no (PARTIAL_SUCCESS)",
            "unknown job": str(self.unknown_job),
            "reference read-back": self.reference_readback,
            "job delay": f"{self.job_delay_s:g}s",
            "body limit": f"{self.max_body_bytes / 2**20:g} MB",
            "write log": f"a finished job shows {self.write_log_delay_s:g}s later; "
            f"parameters {self.log_parameters}",
            "webhooks": f"redelivered with p={self.webhook_redeliver:g}, "
            f"up to {self.webhook_late_s:g}s late",
            "foreign manual syncs": f"every {self.foreign_syncs_s:g}s"
            if self.foreign_syncs_s
            else "off",
            "data clock": f"{self.clock_skew_s:+g}s" if self.clock_skew_s else "in step",
            "token revoked": f"after {self.revoke_token_after} POSTs"
            if self.revoke_token_after is not None
            else "never",
        }

    @property
    def slowdown_s(self) -> float:
        """Propexo's 2 s hold-back past 80% of the minute, scaled to the configured window."""
        return 2.0 * self.rate_window_s / 60.0


def parse_faults(spec: str | None) -> dict[str, dict[str, float]]:
    """``post:500=0.1,post:lost=0.05,*:reset=0.02`` → {route: {kind: probability}}."""
    return parse_fault_spec(spec)[0]


def parse_fault_spec(
    spec: str | None,
) -> tuple[dict[str, dict[str, float]], dict[str, dict[int, str]]]:
    """A ``--faults`` spec: ``ROUTE:KIND=P`` (each request, with probability P) and
    ``ROUTE:KIND@N`` (the N-th request of ROUTE, counted from 1) → (probabilities, counted)."""
    faults: dict[str, dict[str, float]] = {}
    counted: dict[str, dict[int, str]] = {}
    for part in filter(None, (p.strip() for p in (spec or "").split(","))):
        at = "@" in part and "=" not in part
        try:
            target, amount = part.split("@" if at else "=")
            route, kind = target.split(":")
            value = float(amount)
        except ValueError:
            raise ValueError(
                f"fault {part!r}: expected ROUTE:KIND=P or ROUTE:KIND@N, e.g. post:500=0.1"
            ) from None
        if route not in FAULT_ROUTES:
            raise ValueError(f"fault {part!r}: ROUTE must be one of {', '.join(FAULT_ROUTES)}")
        if kind not in FAULT_KINDS:
            raise ValueError(f"fault {part!r}: KIND must be one of {', '.join(FAULT_KINDS)}")
        if at:
            if value < 1 or value != int(value):
                raise ValueError(f"fault {part!r}: N must be a whole number from 1")
            counted.setdefault(route, {})[int(value)] = kind
            continue
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"fault {part!r}: P must be between 0 and 1")
        faults.setdefault(route, {})[kind] = value
    return faults, counted
