"""The desk's rules of who may do what, unit by unit, on a clock the test moves: passwords,
sessions that expire when idle, constant-time tokens, and a sign-in throttle that slows one
name from one address before it slows the address."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.core.errors import (
    ApiError,
    ConfigError,
    DiskFullError,
    InputError,
    LedgerBusyError,
    LedgerError,
    LockHeldError,
    PermanentApiError,
    TieoutError,
    TokenRefusedError,
    TransientApiError,
    UnknownLayout,
    UnreachableError,
)
from pipelines.desk.auth import (
    ALLOWED,
    APPROVE,
    CLEAR,
    DROP,
    SESSION_IDLE_S,
    SETTLE_CONFLICT,
    SIGN_OFF,
    SIGN_OUT,
    TRIES_PER_ADDRESS,
    TRIES_PER_NAME,
    WINDOW_S,
    Sessions,
    Throttle,
    hash_password,
    may,
    password_matches,
    same,
)
from pipelines.ledger.desk import ROLES


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        ("clerk", {DROP, CLEAR, SIGN_OUT}),
        ("approver", {DROP, CLEAR, APPROVE, SETTLE_CONFLICT, SIGN_OUT}),
        ("auditor", {SIGN_OFF, SIGN_OUT}),
    ],
)
def test_each_role_may_do_only_its_actions(role: str, allowed: set[str]) -> None:
    every = {DROP, CLEAR, APPROVE, SETTLE_CONFLICT, SIGN_OFF, SIGN_OUT}
    assert {action for action in every if may(role, action)} == allowed


def test_the_one_who_approves_is_never_the_one_who_signs_off() -> None:
    assert not any(may(role, APPROVE) and may(role, SIGN_OFF) for role in ROLES)
    assert set(ALLOWED) == set(ROLES)


def test_an_unknown_role_may_do_nothing() -> None:
    assert not may("admin", SIGN_OUT)
    assert not may("", DROP)


def test_a_password_matches_only_its_own_hash() -> None:
    hashed = hash_password("correct horse battery")
    assert hashed.startswith("$argon2id$")
    assert hashed != hash_password("correct horse battery")  # a fresh salt each time
    assert password_matches(hashed, "correct horse battery")
    assert not password_matches(hashed, "correct horse batterY")
    assert not password_matches(None, "correct horse battery")
    assert not password_matches("not a hash", "anything")


@given(st.one_of(st.none(), st.text(max_size=8)), st.one_of(st.none(), st.text(max_size=8)))
@settings(max_examples=50)
def test_tokens_are_the_same_only_when_both_are_there_and_equal(
    a: str | None, b: str | None
) -> None:
    assert same(a, b) == (bool(a) and bool(b) and a == b)


def test_a_token_a_form_sends_in_any_script_is_compared_not_a_server_error() -> None:
    """A sign-in form's CSRF field is whatever the browser (or an attacker) sends: text that
    is not ASCII is simply not the token (``hmac.compare_digest`` raises on such ``str``)."""
    assert not same("\u00e9t\u00e9", "abc")
    assert not same("abc", "\x80")
    assert same("jeton-\u00e9", "jeton-\u00e9")


def test_a_session_lasts_while_used_and_expires_when_idle() -> None:
    clock = Clock()
    sessions = Sessions(clock)
    token = sessions.start("pat", "clerk")
    found = sessions.get(token)
    assert found is not None and (found.name, found.role) == ("pat", "clerk")
    assert len(found.csrf) >= 32 and found.csrf != token
    # Used within the idle time, again and again: still signed in, long after it started.
    for _ in range(3):
        clock.now += SESSION_IDLE_S - 1
        assert sessions.get(token) is found
    clock.now += SESSION_IDLE_S + 1
    assert sessions.get(token) is None
    # Gone for good, not only hidden.
    clock.now -= SESSION_IDLE_S * 2
    assert sessions.get(token) is None


def test_no_token_or_a_made_up_one_is_no_session() -> None:
    sessions = Sessions(Clock())
    sessions.start("pat", "clerk")
    assert sessions.get(None) is None
    assert sessions.get("") is None
    assert sessions.get("guess") is None


def test_signing_out_ends_one_session_and_removing_a_user_ends_all_theirs() -> None:
    sessions = Sessions(Clock())
    a, b = sessions.start("pat", "clerk"), sessions.start("pat", "clerk")
    other = sessions.start("sam", "auditor")
    assert a != b
    sessions.end(a)
    sessions.end(None)
    assert sessions.get(a) is None and sessions.get(b) is not None
    sessions.end_user("pat")
    assert sessions.get(b) is None
    assert sessions.get(other) is not None


def test_a_name_is_slowed_after_its_tries_and_waits_for_the_oldest_to_leave_the_window() -> None:
    clock = Clock()
    throttle = Throttle(clock)
    for i in range(TRIES_PER_NAME):
        assert throttle.wait_s("pat", "10.0.0.1") == 0.0
        throttle.failed("pat", "10.0.0.1")
        clock.now += 10 if i == 0 else 1
    wait = throttle.wait_s("pat", "10.0.0.1")
    # The oldest failure was at 1000; it leaves the window at 1000 + WINDOW_S.
    assert wait == pytest.approx(1000.0 + WINDOW_S - clock.now)
    # Another name from that address, and that name from another address, are not slowed.
    assert throttle.wait_s("sam", "10.0.0.1") == 0.0
    assert throttle.wait_s("pat", "10.0.0.2") == 0.0
    clock.now = 1000.0 + WINDOW_S
    assert throttle.wait_s("pat", "10.0.0.1") == 0.0


def test_a_right_password_forgets_the_name_s_failures_not_the_address_s() -> None:
    clock = Clock()
    throttle = Throttle(clock)
    for _ in range(TRIES_PER_NAME):
        throttle.failed("pat", "10.0.0.1")
    assert throttle.wait_s("pat", "10.0.0.1") > 0
    throttle.succeeded("pat", "10.0.0.1")
    assert throttle.wait_s("pat", "10.0.0.1") == 0.0
    throttle.succeeded("nobody", "10.0.0.9")  # nothing to forget: no error


def test_an_address_trying_many_names_is_slowed_as_a_whole() -> None:
    clock = Clock()
    throttle = Throttle(clock)
    for i in range(TRIES_PER_ADDRESS):
        throttle.failed(f"user{i}", "10.0.0.7")
    assert throttle.wait_s("someone-new", "10.0.0.7") == pytest.approx(WINDOW_S)
    assert throttle.wait_s("someone-new", "10.0.0.8") == 0.0
    assert TRIES_PER_ADDRESS > TRIES_PER_NAME


# --- the errors a command stops with --------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (ConfigError("x"), 2),
        (InputError("x"), 2),
        (UnknownLayout("x"), 2),
        (DiskFullError("x"), 2),
        (LedgerError("x"), 2),
        (ApiError("x"), 2),
        (LockHeldError("x"), 3),
        (LedgerBusyError("x"), 3),
        (TokenRefusedError("x"), 2),
    ],
)
def test_every_error_stops_with_its_exit_code(error: TieoutError, code: int) -> None:
    assert isinstance(error, TieoutError)
    assert error.exit_code == code


def test_errors_carry_what_their_handlers_need() -> None:
    refused = InputError("held", fix="tieout alias add charge_code Pet PET")
    assert refused.fix == "tieout alias add charge_code Pet PET"
    assert InputError("x").fix is None
    assert isinstance(UnknownLayout("x"), InputError)
    lost = TransientApiError("lost", status_code=502, maybe_applied=True)
    assert (lost.status_code, lost.maybe_applied) == (502, True)
    # Unreachable: nothing was sent, so nothing is in doubt.
    assert UnreachableError("down").maybe_applied is False
    assert isinstance(UnreachableError("down"), TransientApiError)
    assert TokenRefusedError("401", status_code=401).status_code == 401
    assert isinstance(TokenRefusedError("x"), PermanentApiError)
    assert not isinstance(TokenRefusedError("x"), TransientApiError)
    assert str(ConfigError("bad key")) == "bad key"
