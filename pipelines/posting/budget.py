"""One integration's request budget, handed from worker to worker.

Propexo's rate limit is a window of requests per customer; its headers say what is left of the
window, not when it started. A worker that starts talking to an integration in the middle of a
window another worker (or an earlier run) began would take the budget as full and be answered
429. So talking to Propexo is a *turn*: one worker at a time per integration (the ledger's lock,
across hosts on PostgreSQL), which begins by taking over the window where the last holder left
it and ends by handing it on through the ledger. A worker that died mid-turn handed nothing on:
the next waits until every window it could have begun has ended.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

from pipelines.core.models import Say
from pipelines.ledger import Ledger
from pipelines.posting.propexo import PropexoClient


def budget_key(integration_id: str) -> str:
    return f"budget {integration_id}"


@contextmanager
def turn(
    ledger: Ledger, client: PropexoClient, integration_id: str, say: Say | None = None
) -> Iterator[None]:
    """This worker's turn with ``integration_id``: wait for it, take the budget over, hand it
    on at the end (however the block ends)."""
    key = budget_key(integration_id)
    with ledger.turn(integration_id):
        saved = json.loads(ledger.get_meta(key) or "null")
        client.limiter.resume(saved)
        if saved and saved.get("open") and say is not None:
            say(
                "the last tieout to talk to Propexo stopped mid-run without handing on the "
                f"rate-limit budget: waiting {client.limiter.window_s:g}s for its window to end"
            )
        # Marked open until handed on: a worker that dies mid-turn leaves it so.
        ledger.set_meta(key, json.dumps({**client.limiter.handover(), "open": True}))
        try:
            yield
        finally:
            ledger.set_meta(key, json.dumps(client.limiter.handover()))
