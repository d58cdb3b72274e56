"""A lost ledger, rebuilt from what Propexo holds (`tieout ledger rebuild`), and the ledger
backups that make a rebuild rarely needed.

A ledger that already holds records gets what Propexo proves merged in (records it never
sent that Propexo holds are recorded as posted). A rebuilt ledger knows every invoice
Propexo holds for the integration, keyed by (vendor,
invoice number), and every resident charge and credit with a reference number in the date
range asked for, keyed by that number. Files dropped again then find their records already
posted (same amount) or in conflict (another amount); nothing is posted a second time.
What Propexo does not show yet (charges not synced since they were written, jobs not yet in
its write log) cannot be adopted: the rebuilt ledger is a recovery
(:mod:`pipelines.reconciling.recovery`), which sends nothing it cannot prove absent.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.core.config import Settings
from pipelines.core.disk import FOLDER_MODE
from pipelines.core.kind import KindContext, Kinds
from pipelines.core.models import Say
from pipelines.ledger import Ledger
from pipelines.ledger.database import OWNER_ONLY
from pipelines.posting import writelog
from pipelines.posting.propexo import make_client
from pipelines.reconciling import recovery


def rebuild_ledger(
    settings: Settings,
    kinds: Kinds,
    *,
    start: date | None = None,
    end: date | None = None,
    say: Say = print,
) -> int:
    """Adopt Propexo's records of every kind into the ledger (a new one, or merged into one
    that holds records). Returns how many were adopted."""
    from pipelines.resolving.refcache import reference_data

    today = datetime.now(tz=UTC).date()
    reach = timedelta(days=settings.sync_window_days)
    start, end = start or today - reach, end or today + reach
    with Ledger(settings.ledger) as ledger, ledger.lock("ledger rebuild"):
        ledger.belongs_to(settings.integration_id)
        # A ledger that holds records gets what Propexo proves merged in; the jobs it knows
        # are its own.
        known = set(ledger.records(states=None, columns=["job_id"])["job_id"].dropna().astype(str))
        with make_client(settings) as client:
            refs = reference_data(ledger, client, settings, aliases=False)
            ctx = KindContext.of(settings, kinds, refs=refs, ledger=ledger, client=client)
            held = {kind.source_kind: kind.fetch_all(ctx, start, end) for kind in kinds}
            # What Propexo's write log shows posted, synced or not yet (a month back).
            logged = {
                kind.source_kind: writelog.logged_posts(
                    client, settings.integration_id, kind, known
                )
                for kind in kinds
            }
        rows: list[dict[str, Any]] = []
        skipped = 0
        for kind in kinds:
            found, missed = kind.adopt(held[kind.source_kind], ctx)
            rows += found
            skipped += missed
        from_log = 0
        have = {row["record_key"] for row in rows}
        for kind in kinds:
            posted = pd.DataFrame([kind.as_read(item, ctx) for item in logged[kind.source_kind]])
            if posted.empty:
                continue
            found, _ = kind.adopt(posted, ctx)
            for row in found:
                if row["record_key"] not in have:  # synced data, with its Propexo id, first
                    rows.append({**row, "created_record_id": None})
                    have.add(row["record_key"])
                    from_log += 1
        frame = pd.DataFrame(rows)
        run_id = "rebuild-" + datetime.now(tz=UTC).strftime("%Y%m%dT%H%M%SZ")
        adopted = ledger.adopt(run_id, frame) if not frame.empty else 0
        # What Propexo does not show yet (posted, not synced, not yet in its write log) is not
        # known to a rebuilt ledger: nothing is sent before absence is proven.
        recovery.rebuilt(ledger, settings)
    held_words = "; ".join(
        f"{len(held[kind.source_kind])} {kind.plural}"
        + (f" dated {start} to {end}" if kind.dated_sync else "")
        for kind in kinds
    )
    say(
        f"adopted {adopted} records from Propexo ({held_words}; {from_log} only in its write "
        f"log, not synced yet); {skipped} could not be keyed (no key of its kind, such as a "
        "reference number or a vendor Propexo lists) and were left out"
    )
    return adopted


def backup_ledger(settings: Settings, run_id: str) -> Path | None:
    """An online backup of the ledger after a run (SQLite's backup API: consistent while other
    readers work); the newest ``backups_kept`` are kept."""
    if settings.backups_kept <= 0 or not settings.ledger_is_file:
        return None  # a server's ledger is backed up by the server's own means
    if not settings.ledger_path.exists():
        return None
    folder = settings.backups_dir
    folder.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
    target = folder / f"ledger-{run_id}.sqlite"
    # Owner-only from its first byte, like the ledger (it holds the same data); written under
    # a name of its own and put in place whole, so a backup is never seen half-written.
    handle, name = tempfile.mkstemp(prefix=".ledger-", suffix=".sqlite.tmp", dir=folder)
    os.close(handle)
    try:
        source = sqlite3.connect(f"file:{settings.ledger_path}?mode=ro", uri=True)
        copy = sqlite3.connect(name)
        try:
            source.backup(copy)
        finally:
            copy.close()
            source.close()
        Path(name).chmod(OWNER_ONLY)
        Path(name).replace(target)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    for old in sorted(folder.glob("ledger-*.sqlite"))[: -settings.backups_kept]:
        old.unlink()
    return target
