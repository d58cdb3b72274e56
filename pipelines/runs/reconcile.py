"""`tieout reconcile`: doubt settled, records matched, and the reports of the runs it touched
written again; and the one next step it prints."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

from pipelines.core.config import Settings
from pipelines.core.kind import KindContext, Kinds
from pipelines.core.models import IN_DOUBT, ReconcileResult, Say
from pipelines.ledger import Ledger, utcnow
from pipelines.posting.budget import turn
from pipelines.posting.load import wait_for_jobs
from pipelines.posting.propexo import make_client
from pipelines.reconciling.before_send import describe_doubt, settle_in_doubt
from pipelines.reconciling.sync import wait_for_syncs
from pipelines.reconciling.writeback import reconcile_ledger
from pipelines.reporting.publish import write_report
from pipelines.resolving.refcache import reference_data


def reconcile_command(
    settings: Settings, kinds: Kinds, *, sync: bool, wait_s: float = 0.0, say: Say = print
) -> tuple[ReconcileResult | None, list[Path]]:
    """`tieout reconcile`: settle in-doubt records, match, and re-render affected run reports."""
    with Ledger(settings.ledger) as ledger, ledger.lock("reconcile", shared=True):
        ledger.belongs_to(settings.integration_id)
        with make_client(settings) as client, turn(ledger, client, settings.integration_id, say):
            refs = reference_data(ledger, client, settings, aliases=False)
            ctx = KindContext.of(settings, kinds, refs=refs, ledger=ledger, client=client)
            if sync:
                ledger.request_sync(settings.integration_id, utcnow())
                if client.manual_sync(settings.integration_id):
                    say("asked Propexo for a sync; it is proven done only by its SYNC_COMPLETE")
            if wait_s > 0 and ledger.open_sync_requests(settings.integration_id):
                if wait_for_syncs(ledger, settings.integration_id, wait_s):
                    say("the sync is complete (SYNC_COMPLETE received)")
                else:
                    doubt_now = len(ledger.records(states=list(IN_DOUBT), columns=["state"]))
                    delivering = receiver_state(settings, ledger) == "delivering"
                    say(
                        f"no SYNC_COMPLETE within {wait_s:g}s: "
                        + (
                            "webhooks arrive here, so Propexo has not finished the sync or not "
                            "said so yet. "
                            if delivering
                            else "is `tieout webhooks serve` running and registered? "
                        )
                        + (
                            f"{doubt_now:,} records in doubt stay in doubt until a sync is proven"
                            if doubt_now
                            else "No record is called missing until a sync is proven"
                        )
                    )
            wait_for_jobs(
                ledger, client, run_id="reconcile", timeout_s=0, kinds=kinds, sleep=lambda s: None
            )
            doubt = settle_in_doubt(ledger, client, settings, ctx, "reconcile")
            if any(doubt.values()):
                say("in doubt: " + describe_doubt(doubt))
            result = reconcile_ledger(ledger, client, settings, ctx)
        reports = []
        if result is not None:
            touched = ledger.records(states=None)
            for run_id in sorted(set(touched["run_id"])):
                if (settings.reports_dir / run_id).exists():
                    reports.append(write_report(ledger, settings, run_id, kinds))
    return result, reports


@dataclass(frozen=True)
class AfterReconcile:
    """What is left after `tieout reconcile`: records still waiting for their write-status,
    in doubt, in doubt past their grace, and the one next step (:func:`next_step`)."""

    waiting: int
    in_doubt: int
    past_grace: int
    step: str


def after_reconcile(settings: Settings, result: ReconcileResult | None) -> AfterReconcile:
    """The ledger read (without writing) for what `tieout reconcile` says after it matched."""
    with Ledger(settings.ledger, readonly=True) as ledger:
        waiting = len(ledger.records(states=["submitted"], columns=["state"]))
        in_doubt = len(ledger.records(states=list(IN_DOUBT), columns=["state"]))
        past_grace = doubt_past_grace(ledger, settings.in_doubt_grace_s)
        receiver = receiver_state(settings, ledger)
    step = next_step(settings, result, in_doubt, waiting, receiver=receiver, past_grace=past_grace)
    return AfterReconcile(waiting, in_doubt, past_grace, step)


RECENT_WEBHOOK = timedelta(days=7)


def receiver_state(settings: Settings, ledger: Ledger, now: datetime | None = None) -> str:
    """What is known of the webhook receiver: ``delivering`` (a delivery recorded in the last
    week), ``registered`` (a secret configured or generated by `register`, but no delivery
    lately) or ``none``: the next step advises only what applies."""
    from pipelines.reconciling.webhooks import webhook_secret

    last = ledger.last_webhook_at()
    now = now or datetime.now(tz=UTC)
    if last is not None and now - datetime.fromisoformat(last.replace("Z", "+00:00")) < (
        RECENT_WEBHOOK
    ):
        return "delivering"
    return "registered" if webhook_secret(settings) is not None else "none"


def doubt_past_grace(ledger: Ledger, grace_s: float, now: datetime | None = None) -> int:
    """How many records have been in doubt longer than ``in_doubt_grace_s`` (or since an
    unknown time): a person's to settle, so `reconcile` exits 1 while there are any."""
    doubt = ledger.records(states=list(IN_DOUBT), columns=["state", "doubt_since"])
    if doubt.empty:
        return 0
    since = pd.to_datetime(doubt["doubt_since"], utc=True, errors="coerce")
    age = (pd.Timestamp(now or datetime.now(tz=UTC)) - since).dt.total_seconds()
    return int((age.isna() | (age > grace_s)).sum())


def next_step(
    settings: Settings,
    result: ReconcileResult | None,
    in_doubt: int,
    waiting_for_status: int,
    *,
    receiver: str = "none",
    past_grace: int = 0,
) -> str:
    """The one thing to do after `tieout reconcile`, as a command to run. ``receiver`` is
    :func:`receiver_state`: a receiver that delivers is never advised to be started."""
    serve = {
        "none": "start `tieout webhooks serve` (and `tieout webhooks register URL` once)",
        "registered": "check that `tieout webhooks serve` runs where it was registered (no "
        "webhook received for a week)",
    }.get(receiver)
    after_sync = "run `tieout reconcile --wait 600` after Propexo's next sync"
    if past_grace:
        prove = f"{serve}, then {after_sync}" if serve else after_sync
        return (
            f"next: {past_grace:,} records in doubt past their grace: look each up in Rent "
            "Manager and run `tieout resolve KEY --present|--absent` (`tieout todo` lists "
            f"them), or {prove} to prove them"
        )
    if result is None:
        if waiting_for_status:
            return "next: run `tieout reconcile` again in a few minutes (or `tieout run`)"
        if in_doubt:
            return (
                f"next: run `tieout reconcile` again in a few minutes: {in_doubt:,} records in "
                "doubt are still within their grace (in_doubt_grace_s)"
            )
        return f"next: drop files into {settings.inbox_dir} and run `tieout run`"
    if result.missing or result.mismatched or result.duplicated:
        return (
            "next: open the report for the records missing, mismatched or duplicated in "
            "Propexo, and settle each in Rent Manager"
        )
    if in_doubt:
        prove = f"{serve} so a sync can prove them absent" if serve else after_sync
        return (
            f"next: {prove}; or look in Rent Manager and run `tieout resolve KEY "
            "--present|--absent`"
        )
    if result.awaiting_sync:
        if serve:
            return f"next: {serve}, then {after_sync} (every 12 hours by default)"
        return f"next: {after_sync}"
    if result.unverifiable:
        return (
            "next: look up the records outside every sync window in Rent Manager and run "
            "`tieout resolve KEY --present|--absent`"
        )
    return "nothing left to do: every posted record is in Propexo"
