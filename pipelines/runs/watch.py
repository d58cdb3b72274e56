"""`tieout watch`: the inbox polled, a run on files that stopped changing, reconcile on a
schedule or when a sync completes."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from pipelines.core.config import Settings
from pipelines.core.errors import TieoutError
from pipelines.core.models import Say
from pipelines.kinds import registered
from pipelines.ledger import Ledger
from pipelines.reconciling.sync import latest_sync
from pipelines.runs.inbox import (
    links_outside,
    list_inbox,
    open_for_writing,
    refused_link_text,
)
from pipelines.runs.pipeline import run
from pipelines.runs.reconcile import reconcile_command

log = logging.getLogger("tieout")


def layouts_stamp(settings: Settings) -> tuple[int, int, int] | None:
    """Which layouts are confirmed, as a stamp that changes with each confirmation."""
    if settings.ledger_is_file and not settings.ledger_path.exists():
        return None
    try:
        with Ledger(settings.ledger, readonly=True) as ledger:
            return ledger.layouts_stamp()
    except TieoutError:
        return None


def watch_inbox(
    settings: Settings,
    *,
    interval_s: float,
    reconcile_every_s: float,
    say: Say = print,
    on_error: Callable[[BaseException], None] = print,
    sleep: Callable[[float], None] | None = None,
    cycles: int | None = None,
) -> None:
    """Poll the inbox; run on files that stayed unchanged for one interval; reconcile on a
    schedule. A failing cycle is reported through ``on_error`` and the watch goes on."""
    import time

    pause = sleep or time.sleep
    seen: dict[Path, tuple[int, float]] = {}
    next_reconcile = time.monotonic() + reconcile_every_s
    last_sync = latest_sync(settings)
    # Held files (their layout not confirmed) are taken again only once they change or a
    # layout is confirmed or forgotten: their preview is said once, not every interval.
    held: dict[Path, tuple[int, float]] = {}
    held_at = layouts_stamp(settings)
    done = 0
    refused: set[Path] = set()  # links to files outside the inbox, said once each
    while cycles is None or done < cycles:
        done += 1
        links = set(links_outside(settings.inbox_dir))
        for path in sorted(links - refused):
            say(refused_link_text(path))
        refused = links
        look = {}
        for path in list_inbox(settings.inbox_dir):
            try:
                stat = path.stat()
            except OSError:
                continue
            look[path] = (stat.st_size, stat.st_mtime)
        ready = [p for p, v in look.items() if seen.get(p) == v and v[0] > 0]
        writing = open_for_writing(ready)
        ready = [p for p in ready if p not in writing]
        if held and layouts_stamp(settings) != held_at:
            held = {}
        ready = [p for p in ready if held.get(p) != look[p]]
        seen = {p: v for p, v in look.items() if p not in ready}
        try:
            if ready:
                outcome = run(settings, files=ready, say=say)
                for entry in outcome.summary.get("held_layouts", []):
                    path = settings.inbox_dir / str(entry["name"])
                    if path in look:
                        held[path], held_at = look[path], layouts_stamp(settings)
                verdict = outcome.summary.get("verdict", "nothing to report")
                report = outcome.report_dir / "report.html" if outcome.report_dir else "(none)"
                say(f"run {outcome.run_id}: {verdict} (exit {outcome.exit_code}); report: {report}")
            sync_seen = latest_sync(settings)
            if time.monotonic() >= next_reconcile or sync_seen != last_sync:
                # On schedule, or at once when a SYNC_COMPLETE arrived: what waited for a sync
                # (charges to match, records in doubt) can be settled now.
                next_reconcile = time.monotonic() + reconcile_every_s
                last_sync = sync_seen
                reconcile_command(settings, registered(), sync=False, say=say)
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # a bad cycle must not end the watch
            log.warning("watch cycle failed", extra={"error": str(exc)})
            on_error(exc)
        pause(interval_s)
