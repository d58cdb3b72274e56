"""`tieout reconcile`: doubt settled, records matched, and the reports of the runs it touched
written again; and the one next step it prints."""

from __future__ import annotations

from pathlib import Path

from pipelines.core.config import Settings
from pipelines.core.kind import KindContext, Kinds
from pipelines.core.models import IN_DOUBT, ReconcileResult, Say
from pipelines.ledger import Ledger, utcnow
from pipelines.posting.budget import turn
from pipelines.posting.load import wait_for_jobs
from pipelines.posting.propexo import make_client
from pipelines.reconciling.sync import (
    describe_doubt,
    reconcile_ledger,
    reference_data,
    settle_in_doubt,
    wait_for_syncs,
)
from pipelines.reporting.publish import write_report


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
                    say(
                        f"no SYNC_COMPLETE within {wait_s:g}s: is `tieout webhooks serve` "
                        "running and registered? "
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


def next_step(
    settings: Settings, result: ReconcileResult | None, in_doubt: int, waiting_for_status: int
) -> str:
    """The one thing to do after `tieout reconcile`, as a command to run."""
    serve = "start `tieout webhooks serve` (and `tieout webhooks register URL` once)"
    if result is None:
        if waiting_for_status:
            return "next: run `tieout reconcile` again in a few minutes (or `tieout run`)"
        return f"next: drop files into {settings.inbox_dir} and run `tieout run`"
    if result.missing or result.mismatched or result.duplicated:
        return (
            "next: open the report for the records missing, mismatched or duplicated in "
            "Propexo, and settle each in Rent Manager"
        )
    if in_doubt:
        prove = (
            "run `tieout reconcile --wait 600` after Propexo's next sync"
            if settings.webhook_secret is not None
            else f"{serve} so a sync can prove them absent"
        )
        return (
            f"next: {prove}; or look in Rent Manager and run `tieout resolve KEY "
            "--present|--absent`"
        )
    if result.awaiting_sync:
        if settings.webhook_secret is None:
            return (
                f"next: {serve}, then `tieout reconcile --wait 600` after Propexo's next sync "
                "(every 12 hours by default)"
            )
        return "next: run `tieout reconcile --wait 600` after Propexo's next sync"
    if result.unverifiable:
        return (
            "next: look up the records outside every sync window in Rent Manager and run "
            "`tieout resolve KEY --present|--absent`"
        )
    return "nothing left to do: every posted record is in Propexo"
