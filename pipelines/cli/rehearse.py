"""Rehearsing without Propexo: `tieout sandbox` (the local Propexo emulator, a real HTTP
server) and `tieout demo` (the whole pipeline on the sample files against an embedded
sandbox). Registered on the main group in :mod:`pipelines.cli.main`."""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import replace
from pathlib import Path

import click
from rich.table import Table

from pipelines.cli.console import REPO_ROOT, friendly, out, print_summary, say
from pipelines.core.config import Secret, load_settings
from pipelines.core.errors import ConfigError
from pipelines.kinds import registered


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8765, show_default=True, type=int, help="Port to listen on.")
@click.option(
    "--seed",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Seed JSON with integrations, locations, properties, units, residents, leases, "
    "vendors, charge codes and financial accounts [default: data/sandbox/seed.json].",
)
@click.option(
    "--db",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="SQLite file for the sandbox's state, kept across restarts [default: memory].",
)
@click.option(
    "--token",
    default="sandbox-token",
    show_default=True,
    help="The Bearer token the sandbox accepts.",
)
@click.option(
    "--rate-limit",
    default=150,
    show_default=True,
    type=click.IntRange(1),
    help="Requests per window per token.",
)
@click.option(
    "--rate-window",
    default=60.0,
    show_default=True,
    type=click.FloatRange(0.1),
    help="Rate-limit window in seconds.",
)
@click.option(
    "--job-delay",
    default=1.0,
    show_default=True,
    type=click.FloatRange(0),
    help="Seconds a write stays PENDING before its outcome shows.",
)
@click.option(
    "--sync-interval",
    default=None,
    type=click.FloatRange(0.1),
    help="Run a data sync every S seconds (default: only on manual-sync).",
)
@click.option(
    "--faults",
    default=None,
    metavar="SPEC",
    help="Comma list of ROUTE:KIND=P (each request, with probability P) or ROUTE:KIND@N (the "
    "N-th request of ROUTE); ROUTE post|get|*, KIND 500|502|503|reset|lost (lost: the write "
    "commits but the answer never arrives), 400|401|403|422 (refused, nothing applied), "
    "html|truncated|204 (applied, answered 2xx with a body no client can read). "
    "Example: post:500=0.1,post:lost=0.05,*:reset=0.02,post:422@2",
)
@click.option("--fault-seed", default=None, type=int, help="Seed for repeatable faults.")
@click.option(
    "--revoke-token-after",
    default=None,
    type=click.IntRange(0),
    metavar="N",
    help="Revoke the token once N POSTs have been let through: every later request is 401 "
    "(restart the sandbox, with --db, to restore it).",
)
@click.option(
    "--clock-skew",
    default=0.0,
    show_default=True,
    type=float,
    metavar="S",
    help="Propexo's data timestamps (created_at, updated_at, last_seen) run S seconds off the "
    "real clock (negative: behind); its Date header stays right.",
)
@click.option(
    "--sync-mode",
    type=click.Choice(["async", "instant"]),
    default="async",
    show_default=True,
    help="async: manual-sync answers at once and finishes --sync-duration later (as documented); "
    "instant: finishes before answering (quick rehearsals).",
)
@click.option("--sync-duration", default=3.0, show_default=True, type=click.FloatRange(0))
@click.option(
    "--sync-window-days",
    default=90.0,
    show_default=True,
    type=click.FloatRange(0),
    help="A sync sees resident charges dated within N days of it.",
)
@click.option(
    "--batch-errors",
    type=click.Choice(["opaque", "indexed"]),
    default="opaque",
    show_default=True,
    help="opaque: PMS strings with no index or reference; indexed: charges[i] …",
)
@click.option("--batch-atomic", is_flag=True, help="One bad charge fails the whole batch.")
@click.option(
    "--unknown-job",
    type=click.Choice(["400", "404"]),
    default="400",
    show_default=True,
    help="write-status answer for a job Propexo does not know.",
)
@click.option(
    "--reference-readback",
    type=click.Choice(["echo", "null"]),
    default="echo",
    show_default=True,
    help="Whether synced charges carry the reference_number that was sent.",
)
@click.option(
    "--integrations",
    type=click.IntRange(1, 50),
    default=1,
    show_default=True,
    help="Rent Manager integrations: copies of the seed's, the n-th reached with TOKEN-n "
    "(its own rate-limit budget).",
)
@click.option(
    "--write-log-delay",
    default=5.0,
    show_default=True,
    type=click.FloatRange(0),
    help="Seconds after a job finishes before it shows in the write log.",
)
@click.option(
    "--log-parameters",
    type=click.Choice(["null", "body"]),
    default="null",
    show_default=True,
    help="The write log's parameters: null (read the job's request from its job-log data) "
    "or the request body.",
)
@click.option(
    "--webhook-redeliver",
    default=0.25,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Each webhook delivery is sent again, later, with probability P (at least once).",
)
@click.option(
    "--webhook-late",
    default=1.0,
    show_default=True,
    type=click.FloatRange(0),
    help="Each webhook delivery arrives up to S seconds late.",
)
@click.option(
    "--foreign-syncs",
    default=None,
    type=click.FloatRange(0.1),
    help="Another client asks for a manual sync every S seconds (default: none).",
)
@click.option(
    "--failed-but-applied",
    default=0.0,
    type=click.FloatRange(0, 1),
    help="A write the PMS applied is reported FAILURE with probability P (a timeout).",
)
def sandbox(
    host: str,
    port: int,
    seed: Path | None,
    db: Path | None,
    token: str,
    rate_limit: int,
    rate_window: float,
    job_delay: float,
    sync_interval: float | None,
    faults: str | None,
    fault_seed: int | None,
    revoke_token_after: int | None,
    clock_skew: float,
    sync_mode: str,
    sync_duration: float,
    sync_window_days: float,
    batch_errors: str,
    batch_atomic: bool,
    unknown_job: str,
    reference_readback: str,
    integrations: int,
    write_log_delay: float,
    log_parameters: str,
    webhook_redeliver: float,
    webhook_late: float,
    foreign_syncs: float | None,
    failed_but_applied: float,
) -> None:
    """Run the local Propexo emulator (a real HTTP server) until Ctrl-C.

    It follows Propexo's documented API: Bearer auth, paged lists, RM invoice and batch charge
    writes as async jobs with write-status, charges visible only after a sync, rate-limit
    headers with the slowdown past 80% and 429 at 100%. Extra test hooks:
    GET /_sandbox/records?kind=invoice|charge|credit and POST /_sandbox/reset.
    """
    with friendly():
        require_sandbox()
    from sandbox.faults import SandboxConfig, parse_fault_spec
    from sandbox.server import open_store, read_seed, serve, with_integrations

    try:
        fault_table, faults_at = parse_fault_spec(faults)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--faults") from None
    with friendly():
        seed_data = with_integrations(read_seed(seed), integrations)
        store = open_store(db, seed_data)
        config = SandboxConfig(
            token=token,
            rate_limit=rate_limit,
            rate_window_s=rate_window,
            job_delay_s=job_delay,
            sync_interval_s=sync_interval,
            faults=fault_table,
            fault_seed=fault_seed,
            faults_at=faults_at,
            revoke_token_after=revoke_token_after,
            clock_skew_s=clock_skew,
            sync_mode=sync_mode,
            sync_duration_s=sync_duration,
            sync_window_days=sync_window_days,
            batch_errors=batch_errors,
            batch_atomic=batch_atomic,
            unknown_job=int(unknown_job),
            reference_readback=reference_readback,
            integrations=integrations,
            write_log_delay_s=write_log_delay,
            log_parameters=log_parameters,
            webhook_redeliver=webhook_redeliver,
            webhook_late_s=webhook_late,
            foreign_syncs_s=foreign_syncs,
            failed_but_applied=failed_but_applied,
        )
        out.print(
            f"Propexo sandbox on http://{host}:{port} (token set, "
            f"{rate_limit} requests / {rate_window:g}s); Ctrl-C stops it"
        )
        if rate_window != 60:
            # Propexo says how much is left of a window, never when it resets: the client
            # paces by the window it is told (60 s, Propexo's documented one, by default).
            out.print(
                f"clients: set rate_window_s = {rate_window:g} in tieout.toml, or tieout paces "
                "by Propexo's 60 s window and posts far below this limit"
            )
        table = Table(
            "where Propexo's docs are silent", "this sandbox answers", header_style="bold"
        )
        for question, answer in config.semantics().items():
            table.add_row(question, answer)
        out.print(table)
        serve(host, port, store, config, seed_data)


def require_sandbox() -> None:
    """The emulator's own dependencies ship in the ``sandbox`` extra, not with tieout itself."""
    try:
        import jsonschema  # noqa: F401
    except ModuleNotFoundError:
        raise ConfigError(
            "the Propexo sandbox needs its extra: run `make setup` in a clone, or "
            "`pip install 'tieout[sandbox]'`"
        ) from None


@click.command()
@click.option(
    "--workdir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("data/demo"),
    show_default=True,
    help="Private workspace for the demo (wiped at the start).",
)
@click.option(
    "--serve",
    is_flag=True,
    help="Then leave the desk (`tieout serve`) running on the demo's workspace, with its sandbox.",
)
@click.option("--port", default=8800, show_default=True, type=click.IntRange(0, 65535))
def demo(workdir: Path, serve: bool, port: int) -> None:
    """Rehearse the whole pipeline on the sample files against an embedded sandbox.

    Starts the sandbox on a free loopback port, copies data/samples/ into a fresh inbox, runs,
    asks for a sync, reconciles, prints the report's path and stops the sandbox. Your own
    ledger, inbox and reports are not touched. With --serve, the desk then runs on the demo's
    workspace (and the sandbox with it) until Ctrl-C.
    """
    from pipelines.ledger import Ledger
    from pipelines.posting.propexo import make_client
    from pipelines.reconciling.webhooks import ReceiverThread, register
    from pipelines.runs.pipeline import run as run_pipeline
    from pipelines.runs.reconcile import reconcile_command

    with friendly():
        require_sandbox()
    from sandbox.faults import SandboxConfig
    from sandbox.server import running_sandbox

    with friendly():
        if workdir.exists():
            shutil.rmtree(workdir)
        inbox = workdir / "inbox"
        inbox.mkdir(parents=True)
        samples = REPO_ROOT / "data" / "samples"
        for sample in sorted(samples.iterdir()):
            if sample.is_file() and not sample.name.startswith("."):
                shutil.copy2(sample, inbox / sample.name)
        # Syncs finish after manual-sync answers, as Propexo documents; a webhook says when.
        config = SandboxConfig(job_delay_s=0.2, sync_duration_s=1.0)
        with running_sandbox(config) as box:
            settings = replace(
                load_settings(env={}),
                base_url=box.base_url,
                token=Secret(config.token),
                data_dir=workdir,
                status_timeout_s=30,
            )
            out.print(f"[bold]sandbox[/] on {box.base_url}; inbox {inbox}")
            with ReceiverThread(settings) as receiver:
                with Ledger(settings.ledger) as ledger, make_client(settings) as client:
                    register(client, settings, ledger, receiver.url)
                out.print(f"[bold]webhooks[/] received on {receiver.url}")
                outcome = run_pipeline(settings, say=say)
                out.print("[bold]sync + reconcile[/]")
                result, reports = reconcile_command(
                    settings, registered(), sync=True, wait_s=30, say=say
                )
                summary = (
                    json.loads((reports[-1] / "summary.json").read_text())
                    if reports
                    else outcome.summary
                )
                print_summary(summary)
                folder = reports[-1] if reports else outcome.report_dir
                out.print(f"report: {folder / 'report.html' if folder else '(none)'}")
                if serve:
                    from pipelines.cli.desk import serve_desk

                    serve_desk(settings, "127.0.0.1", port, None)
        ok = result is not None and summary.get("verdict") == "complete"
        sys.exit(0 if ok else 1)
