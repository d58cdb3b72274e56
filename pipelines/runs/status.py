"""`tieout status`, composed: what the ledger holds by state, what is in doubt (oldest first)
or refused, the last run (running, stopped before its end, or its exit code) and the open
items. The CLI prints it; the desk may show it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pipelines.core.config import Settings
from pipelines.core.models import IN_DOUBT, exit_code_of, whole
from pipelines.ledger import Ledger


@dataclass(frozen=True)
class LedgerStatus:
    """The ledger at a glance. ``last_run``: the newest run's row (its ``exit_code`` a whole
    number, None while running or when it stopped before its end); ``last_run_alive``: its
    process runs on this machine."""

    by_state: dict[str, dict[str, int]]
    in_doubt: list[dict[str, Any]]
    refused: list[dict[str, Any]]
    last_run: dict[str, Any] | None
    last_run_alive: bool
    open_items: int
    open_cents: int

    def as_json(self) -> dict[str, Any]:
        """`tieout status --json`."""
        return {
            "by_state": self.by_state,
            "in_doubt": self.in_doubt,
            "refused": self.refused,
            "last_run": self.last_run,
            "open_items": {"count": self.open_items, "amount_cents": self.open_cents},
        }


def ledger_status(settings: Settings) -> LedgerStatus:
    """The ledger's status, read without writing."""
    with Ledger(settings.ledger, readonly=True) as ledger:
        by_state = ledger.by_state()
        doubt = ledger.records(states=list(IN_DOUBT))
        refused_rows = ledger.records(
            states=["refused"], columns=["record_key", "kind", "note", "amount_cents"]
        )
        runs = ledger.runs()
        items = ledger.items()
    now = datetime.now(tz=UTC)
    in_doubt: list[dict[str, Any]] = [
        {
            "record_key": r["record_key"],
            "kind": r["kind"],
            "state": r["state"],
            "sent_at": r["sent_at"],
            "age_s": age_s(r["sent_at"], now),
            "note": r["note"],
            "amount_cents": whole(r["amount_cents"]),
        }
        for r in doubt.to_dict("records")
    ]
    in_doubt.sort(key=lambda d: str(d["sent_at"]))
    refused = [
        {str(k): v for k, v in r.items()} | {"amount_cents": whole(r["amount_cents"])}
        for r in refused_rows.to_dict("records")
    ]
    last = {str(k): v for k, v in runs.iloc[-1].items()} if not runs.empty else None
    if last is not None:
        last["exit_code"] = exit_code_of(last.get("exit_code"))
    alive = last is not None and last["exit_code"] is None and process_alive(last.get("pid"))
    return LedgerStatus(
        by_state=by_state,
        in_doubt=in_doubt,
        refused=refused,
        last_run=last,
        last_run_alive=alive,
        open_items=len(items),
        open_cents=sum(int(i["amount_cents"]) for i in items),
    )


def age_s(stamp: Any, now: datetime) -> float | None:
    """Seconds from an ISO timestamp to ``now`` (None when there is no timestamp)."""
    if not isinstance(stamp, str):
        return None
    seconds: float = (now - datetime.fromisoformat(stamp.replace("Z", "+00:00"))).total_seconds()
    return seconds


def process_alive(pid: object) -> bool:
    """Whether a process with this id runs on this machine (a run's, from the ledger)."""
    try:
        number = exit_code_of(pid)  # a whole number, or None (NaN through pandas)
        if number is None or number <= 0:
            return False
        os.kill(number, 0)
    except (TypeError, ValueError, OverflowError, ProcessLookupError):
        return False
    except PermissionError:
        return True  # it exists, as another user
    return True
