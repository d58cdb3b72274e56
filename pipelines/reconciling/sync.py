"""Waiting for Propexo's syncs: until the receiver has recorded the completion of every sync
tieout asked for, and when the newest proven one completed.

The other jobs this module once held have modules of their own, and their names are
re-exported here for code written against it: reference data caching
(:mod:`pipelines.resolving.refcache`), the checks before sending
(:mod:`pipelines.reconciling.before_send`), the refresh of Propexo's records
(:mod:`pipelines.reconciling.refresh`) and reconcile with write-back
(:mod:`pipelines.reconciling.writeback`)."""

from __future__ import annotations

from pipelines.core.config import Settings
from pipelines.ledger import Ledger
from pipelines.reconciling.before_send import (
    adopt_already_posted,
    conflict_issues,
    describe_doubt,
    found_in_propexo,
    issues_for_conflicts,
    refuse_if_posted_before,
    settle_in_doubt,
)
from pipelines.reconciling.refresh import refresh_synced
from pipelines.reconciling.writeback import (
    OUTCOME_FIELDS,
    changed_outcomes,
    reconcile,
    reconcile_ledger,
    settle_reconcile,
)
from pipelines.resolving.refcache import reference_data, reference_lists

__all__ = [
    "OUTCOME_FIELDS",
    "adopt_already_posted",
    "changed_outcomes",
    "conflict_issues",
    "describe_doubt",
    "found_in_propexo",
    "issues_for_conflicts",
    "latest_sync",
    "reconcile",
    "reconcile_ledger",
    "reference_data",
    "reference_lists",
    "refresh_synced",
    "refuse_if_posted_before",
    "settle_in_doubt",
    "settle_reconcile",
    "wait_for_syncs",
]


def wait_for_syncs(ledger: Ledger, integration_id: str, wait_s: float) -> bool:
    """Wait until the webhook receiver has recorded the SYNC_COMPLETE of every sync we asked."""
    import time

    deadline = time.monotonic() + wait_s
    while ledger.open_sync_requests(integration_id):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def latest_sync(settings: Settings) -> str | None:
    """When the newest proven sync completed (None before any, or without a ledger yet)."""
    if settings.ledger_is_file and not settings.ledger_path.exists():
        return None
    with Ledger(settings.ledger) as ledger:
        proven = ledger.proven_syncs(settings.integration_id)
    return None if proven.empty else str(proven["completed_at"].iloc[-1])
