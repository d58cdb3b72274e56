"""Who may do what on the desk: passwords (Argon2id), sessions kept in the server's memory
(the cookie holds only a random token), a CSRF token per session (and one per sign-in form),
a sign-in throttle per name and address, and the roles.

Roles: a clerk drops files and clears items; an approver does what a clerk does, and also
approves files and settles conflicts; an auditor reads everything and signs runs and periods
off. Every signed-in user reads every page.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from pipelines.ledger.desk import ROLES

# What each role may do besides reading.
DROP, CLEAR, APPROVE, SETTLE_CONFLICT, SIGN_OFF, SIGN_OUT = (
    "drop",
    "clear",
    "approve",
    "settle_conflict",
    "sign_off",
    "sign_out",
)
ALLOWED = {
    "clerk": frozenset({DROP, CLEAR, SIGN_OUT}),
    "approver": frozenset({DROP, CLEAR, APPROVE, SETTLE_CONFLICT, SIGN_OUT}),
    "auditor": frozenset({SIGN_OFF, SIGN_OUT}),
}
assert set(ALLOWED) == set(ROLES)

SESSION_COOKIE = "tieout_desk"
LOGIN_COOKIE = "tieout_desk_login"  # the sign-in form's CSRF token, before any session
SESSION_IDLE_S = 8 * 3600.0
# Sign-in: this many wrong passwords for one name from one address within the window, and that
# pair waits until the oldest of them leaves the window; an address alone gets more tries
# (several people behind one proxy), then waits the same way.
TRIES_PER_NAME, TRIES_PER_ADDRESS, WINDOW_S = 5, 20, 900.0

_HASHER = PasswordHasher()
# Checked against when the name is unknown, so that an unknown name takes as long as a known one.
_DUMMY = _HASHER.hash(secrets.token_urlsafe(16))


def may(role: str, action: str) -> bool:
    """Whether ``role`` may do ``action``."""
    return action in ALLOWED.get(role, frozenset())


def hash_password(password: str) -> str:
    """An Argon2id hash with a fresh salt (argon2-cffi's current parameters)."""
    return _HASHER.hash(password)


def password_matches(password_hash: str | None, password: str) -> bool:
    """Whether ``password`` is the one hashed (an unknown user: never, in the same time)."""
    try:
        return _HASHER.verify(password_hash or _DUMMY, password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def same(a: str | None, b: str | None) -> bool:
    """Tokens compared in constant time; a missing one matches nothing. Compared as UTF-8
    bytes: a form may send any text, and ``compare_digest`` refuses non-ASCII ``str``."""
    return bool(a) and bool(b) and hmac.compare_digest(str(a).encode(), str(b).encode())


@dataclass
class Session:
    """A signed-in user, while the server runs."""

    name: str
    role: str
    csrf: str
    seen: float
    flashes: list[str] = field(default_factory=list)


class Sessions:
    """Sessions by their random token; idle ones expire."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._by_token: dict[str, Session] = {}

    def start(self, name: str, role: str) -> str:
        token = secrets.token_urlsafe(32)
        self._by_token[token] = Session(name, role, secrets.token_urlsafe(32), self._clock())
        return token

    def get(self, token: str | None) -> Session | None:
        found = self._by_token.get(token or "")
        if found is None:
            return None
        if self._clock() - found.seen > SESSION_IDLE_S:
            self._by_token.pop(str(token), None)
            return None
        found.seen = self._clock()
        return found

    def end(self, token: str | None) -> None:
        self._by_token.pop(token or "", None)

    def end_user(self, name: str) -> None:
        """Every session of a user (removed, or given another role)."""
        for token in [t for t, s in self._by_token.items() if s.name == name]:
            self._by_token.pop(token, None)


class Throttle:
    """Wrong passwords per (name, address) and per address, within a sliding window."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._failures: dict[tuple[str, str], list[float]] = {}

    def _recent(self, key: tuple[str, str]) -> list[float]:
        now = self._clock()
        kept = [t for t in self._failures.get(key, []) if now - t < WINDOW_S]
        self._failures[key] = kept
        return kept

    def wait_s(self, name: str, address: str) -> float:
        """Seconds until this name may be tried from this address again (0: now)."""
        now = self._clock()
        waits = [0.0]
        for key, limit in (((name, address), TRIES_PER_NAME), (("", address), TRIES_PER_ADDRESS)):
            recent = self._recent(key)
            if len(recent) >= limit:
                waits.append(recent[-limit] + WINDOW_S - now)
        return max(waits)

    def failed(self, name: str, address: str) -> None:
        now = self._clock()
        for key in ((name, address), ("", address)):
            self._failures.setdefault(key, []).append(now)

    def succeeded(self, name: str, address: str) -> None:
        self._failures.pop((name, address), None)
