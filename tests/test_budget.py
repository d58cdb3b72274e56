"""An integration's request budget handed from worker to worker through the ledger."""

from __future__ import annotations

import json
from pathlib import Path

from pipelines.core.config import Secret
from pipelines.ledger import Ledger
from pipelines.posting.budget import budget_key, turn
from pipelines.posting.propexo import PropexoClient, RateLimiter
from sandbox.server import RunningSandbox

INTEGRATION = "int_rm_demo"
VENDORS = "/v1/vendors/"


def test_the_next_worker_takes_the_budget_over_where_the_last_left_it(
    sandbox: RunningSandbox, tmp_path: Path
) -> None:
    limit = sandbox.config.rate_limit
    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        with (
            PropexoClient(sandbox.base_url, Secret(sandbox.config.token)) as first,
            turn(ledger, first, INTEGRATION),
        ):
            for _ in range(3):
                first.get(VENDORS, {"integration_id": INTEGRATION})
            assert json.loads(ledger.get_meta(budget_key(INTEGRATION)) or "{}")["open"]
        handed = json.loads(ledger.get_meta(budget_key(INTEGRATION)) or "{}")
        assert not handed.get("open")
        assert (handed["limit"], handed["remaining"]) == (limit, limit - 3)

        said: list[str] = []
        with PropexoClient(sandbox.base_url, Secret(sandbox.config.token)) as second:
            assert second.limiter.remaining is None  # a new client knows nothing of the window
            with turn(ledger, second, INTEGRATION, say=said.append):
                # It goes on with the same window, not a full budget of its own.
                assert second.limiter.remaining == limit - 3
                assert second.limiter.window_started is not None
                second.get(VENDORS, {"integration_id": INTEGRATION})
                assert second.limiter.remaining == limit - 4  # what the sandbox says is left
        assert said == []


def test_a_worker_that_died_mid_turn_makes_the_next_wait_one_window(tmp_path: Path) -> None:
    moments = [1000.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        moments[0] += seconds + 0.001  # a sleep never ends early

    limiter = RateLimiter(window_s=60.0, clock=lambda: moments[0], sleep=sleep)
    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        # What a worker killed inside its turn leaves: the budget marked open, never handed on.
        ledger.set_meta(
            budget_key(INTEGRATION),
            json.dumps({"limit": 100, "remaining": 90, "window_started": None, "open": True}),
        )
        said: list[str] = []
        with (
            PropexoClient("http://127.0.0.1:9", Secret("t"), limiter=limiter) as client,
            turn(ledger, client, INTEGRATION, say=said.append),
        ):
            sent_at = client.limiter.acquire()
    assert len(said) == 1
    assert "stopped mid-run without handing on" in said[0]
    assert "waiting 60s" in said[0]
    # Nothing was sent before every window the dead worker could have begun had ended.
    assert sum(slept) >= 60.0
    assert sent_at >= 1060.0
