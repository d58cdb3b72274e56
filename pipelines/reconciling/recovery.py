"""Recovery: a ledger that may not know every write Propexo holds sends nothing it cannot prove
absent (#37).

A ledger that is new after a lost one, restored from a backup, or rebuilt does not know what
was posted from the copy it replaces. Before anything is sent from it, tieout proves absence
over the whole window in which this integration could have written:

* **the write log**, searched back to where the ledger's knowledge ends (its newest event when
  the recovery was noticed; as far as the log reaches, a month, when that is not known), not
  just back to the ledger's newest event: a run after the restore does not narrow the search;
* **the writes the log cannot show yet**: a job is listed only once it has finished and the
  log's own delay has passed. Propexo does not say how long that is; ``write_log_lag_s`` does
  (a safe default). Until that long after the recovery was noticed, a record not found is
  **held**, never sent;
* **the read-back**, for a window that reaches further back than the log: a record Propexo holds
  something like, that does not carry tieout's number (read-back off), is held for a person.

Held records (state ``held``) are listed by `tieout todo` with the reason; each run looks
again (found → recorded as posted; proven absent → sent); a person may decide
(`tieout resolve KEY --present|--absent`).

A recovery is noticed two ways, whatever runs happened after it:

* **the ledger's mark**: each run counts itself in the ledger (``meta`` ``mark``) and in a small
  file in the data folder (``ledger-mark.json``, the highest count seen per integration). A
  ledger whose count is below the file's is not the one last used here (a backup restored, or
  a new ledger after a lost one);
* **the write log**: records the ledger never sent, carried by jobs it does not know (the
  ledger is behind Propexo; the last jobs of the run that wrote them may not be logged yet).
  Jobs of other clients of the integration carry no record of the ledger's: they notice nothing.

`tieout ledger rebuild` notices one too (it cannot know what was posted but not synced).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.core.config import Settings
from pipelines.core.disk import write_atomically
from pipelines.core.kind import KindContext, Kinds
from pipelines.core.models import RecordState, Say
from pipelines.ledger import Ledger, utcnow
from pipelines.posting import writelog
from pipelines.posting.propexo import PropexoClient

RECOVERY = "recovery"  # meta: the recovery noticed (JSON), kept while its window is searchable
MARK = "mark"  # meta: how many runs this ledger has counted
MARK_FILE = "ledger-mark.json"  # in the data folder: the highest mark seen per integration
# As far back as the write log is searched: its longest range, less the margin for clocks.
LOG_REACH_S = writelog.SPANS[-1][1] - writelog.REACH_S
RESOLVE = "resolve"  # the run id of a person's decision (`tieout resolve`)


@dataclass(frozen=True)
class Recovery:
    """A ledger noticed to be behind what Propexo may hold."""

    since: str | None  # the ledger's newest event then (None: not known, as far as Propexo goes)
    noticed_at: str
    why: str

    def due(self, lag_s: float) -> pd.Timestamp:
        """When every write made before the recovery is surely in Propexo's write log."""
        return pd.Timestamp(self.noticed_at) + pd.Timedelta(seconds=lag_s)


def recovery_of(ledger: Ledger) -> Recovery | None:
    """The recovery this ledger is in, for the month after it was noticed (the write log's
    reach: by then the files the lost copy posted have been dropped again, and every run's
    read-back of each new record would cost a request per resident forever)."""
    text = ledger.get_meta(RECOVERY)
    if not text:
        return None
    data = json.loads(text)
    found = Recovery(data.get("since"), str(data["noticed_at"]), str(data["why"]))
    age = pd.Timestamp(utcnow()) - pd.Timestamp(found.noticed_at)
    return found if age.total_seconds() <= LOG_REACH_S else None


def notice(
    ledger: Ledger, since: str | None, why: str, at: str | None = None, *, again: bool = True
) -> Recovery:
    """Record a recovery: the window reaches back to the earliest ``since`` noticed, and
    written evidence counts from the latest notice. ``again=False``: evidence of a recovery
    already noticed (the write log showing what the lost copy wrote) does not restart its
    wait."""
    known = recovery_of(ledger)
    noticed_at = at or utcnow()
    if known is not None and not again:
        noticed_at = known.noticed_at
    if known is not None:
        since = None if known.since is None or since is None else min(known.since, since)
        noticed_at = max(known.noticed_at, noticed_at)
        why = known.why if known.noticed_at >= noticed_at else why
    found = Recovery(since, noticed_at, why)
    ledger.set_meta(RECOVERY, json.dumps(asdict(found)))
    return found


def _mark_path(settings: Settings) -> Path:
    return settings.data_dir / MARK_FILE


def _marks(path: Path) -> dict[str, int]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): int(v) for k, v in data.items()} if isinstance(data, dict) else {}


def count_run(ledger: Ledger, settings: Settings, run_id: str, say: Say) -> Recovery | None:
    """Count this run in the ledger and in the data folder's mark file; a ledger behind the
    file (restored, or new after a lost one) is a recovery. The file is read before the ledger
    (workers sharing a server ledger write the ledger first), so only a ledger that went
    backwards is ever below it."""
    path = _mark_path(settings)
    marks = _marks(path)
    seen = marks.get(settings.integration_id, 0)
    with ledger.db.transaction():
        mark = int(ledger.get_meta(MARK) or 0)
        ledger.set_meta(MARK, str(mark + 1))
    found = None
    if seen > mark:
        newest = ledger.newest_event_before(run_id)
        why = (
            f"the ledger {ledger.description} is not the one last used from this data folder "
            f"(it has counted {mark} runs, the folder has seen {seen}): restored from a backup, "
            "or new after a lost one"
        )
        found = notice(ledger, newest, why)
        say(
            f"{why}. What was posted from the copy it replaced is looked for in Propexo "
            "before anything is sent"
        )
    # A ledger behind takes the folder's count, so the same restore is noticed once.
    now_at = max(seen, mark) + 1
    if now_at != mark + 1:
        ledger.set_meta(MARK, str(now_at))
    marks[settings.integration_id] = now_at
    write_atomically(path, (json.dumps(marks, sort_keys=True) + "\n").encode(), mode=0o600)
    return found


def search_window(ledger: Ledger, run_id: str) -> tuple[float, bool]:
    """How far back (seconds) the write log is searched for records never sent, and whether
    the window in which this integration could have written reaches further back than the log
    (then only the read-back can prove absence). A recovering ledger's window starts where its
    knowledge ended, whatever runs came after; any other ledger's at its newest event."""
    starts = [ledger.newest_event_before(run_id)]
    recovery = recovery_of(ledger)
    if recovery is not None:
        starts.append(recovery.since)
    if any(start is None for start in starts):
        return LOG_REACH_S, True
    age = (pd.Timestamp(utcnow()) - min(pd.Timestamp(str(s)) for s in starts)).total_seconds()
    return min(max(age, 0.0), LOG_REACH_S), age > LOG_REACH_S


def adopt_from_write_log(
    ledger: Ledger, client: PropexoClient, settings: Settings, kinds: Kinds, run_id: str
) -> tuple[int, writelog.LogSearch, bool]:
    """Records never sent that a job in Propexo's write log already carried, over the window
    in which this integration could have written (:func:`search_window`): SUCCESS → recorded
    as posted; FAILURE → recorded failed (reconcile still looks for it in Propexo's data).
    Never sent again. Any record found so is a recovery noticed. Returns (how many adopted,
    the search, whether the window reaches past the log)."""
    age_s, beyond = search_window(ledger, run_id)
    ready = _never_sent(ledger)
    if ready.empty:
        return 0, writelog.LogSearch(writelog.time_range_for(age_s)), beyond
    known = ledger.records(states=None, columns=["job_id"])["job_id"].dropna().astype(str)
    evidence = writelog.search(
        client,
        settings.integration_id,
        ready.drop(columns=["job_id"], errors="ignore"),
        age_s=age_s,
        known_jobs=set(known),
        kinds=kinds,
    )
    if evidence.carried:
        # Records this ledger never sent, carried by jobs it does not know: it is behind
        # Propexo, and what those jobs' run wrote last may not be in the log yet.
        first = min(evidence.carried.values(), key=lambda job: job.created_at)
        notice(
            ledger,
            ledger.newest_event_before(run_id),
            f"Propexo's write log shows {len(evidence.carried)} records this ledger never "
            f"sent carried by jobs it does not know (the first {first.job_id}, at "
            f"{first.created_at}): the ledger is behind Propexo (restored, or lost)",
            again=False,
        )
    now = utcnow()
    for key, job in evidence.carried.items():
        writelog.record_verdict(
            ledger,
            key,
            job,
            run_id=run_id,
            now=now,
            said=f"{evidence.describe()} (recorded, not sent again)",
            note=f"write log: job {job.job_id} {job.status} already carried it; reconcile "
            "still looks for it in Propexo's data",
        )
    return len(evidence.carried), evidence, beyond


def release_held(ledger: Ledger, run_id: str) -> int:
    """Held records become ready again for this run to look at them afresh."""
    held = ledger.records(states=[RecordState.HELD.value], columns=["record_key"])
    if held.empty:
        return 0
    keys = held["record_key"].astype(str).tolist()
    ledger.transition(keys, "ready", run_id=run_id, detail="held: looked at again by this run")
    return len(keys)


def _never_sent(ledger: Ledger) -> pd.DataFrame:
    """Ready records this ledger never sent (a record a person declared absent after its POST
    is sent as decided)."""
    ready = ledger.records(states=["ready"])
    if ready.empty:
        return ready
    return ready[ready["sent_at"].isna()]


def _decided_absent(ledger: Ledger) -> set[str]:
    """Records a person released from a hold (`tieout resolve KEY --absent`)."""
    rows = ledger.db.execute(
        "SELECT DISTINCT record_key FROM events WHERE run_id = ? AND from_state = ? "
        "AND to_state = 'ready'",
        (RESOLVE, RecordState.HELD.value),
    ).fetchall()
    return {str(r[0]) for r in rows}


def hold_unproven(
    ledger: Ledger,
    settings: Settings,
    ctx: KindContext,
    run_id: str,
    evidence: writelog.LogSearch,
    beyond: bool,
) -> dict[str, int]:
    """Before a recovering ledger sends: every record never sent whose absence is not proven
    is held with the reason; one the read-back finds is recorded as posted. Returns counts
    (``held``, ``found``)."""
    counts = {"held": 0, "found": 0}
    recovery = recovery_of(ledger)
    if recovery is None:
        return counts
    ready = _never_sent(ledger)
    if not ready.empty:
        ready = ready[~ready["record_key"].astype(str).isin(_decided_absent(ledger))]
    if ready.empty:
        return counts
    now = pd.Timestamp(utcnow())
    due = recovery.due(settings.write_log_lag_s)
    if now < due:
        reason = (
            f"held: absence not proven. {recovery.why}; Propexo's write log may not show a write "
            f"made before {recovery.noticed_at} until {due.isoformat()} (write_log_lag_s = "
            f"{settings.write_log_lag_s:g}); `tieout run` after then looks again"
        )
        counts["held"] = _hold(ledger, ready, run_id, reason)
        return counts
    if not evidence.complete:
        reason = (
            f"held: absence not proven. {recovery.why}; {evidence.describe()}; "
            "`tieout run` looks again"
        )
        counts["held"] = _hold(ledger, ready, run_id, reason)
        return counts
    if not beyond:
        return counts
    # The window reaches further back than the write log: only Propexo's data can tell.
    for kind in ctx.kinds:
        mine = ctx.kinds.of(ready, kind)
        if mine.empty:
            continue
        hits, alike = kind.find_in_doubt(ctx, mine)
        for key, propexo_id in hits.items():
            fields: dict[str, Any] = {"confirmed_at": utcnow()}
            if propexo_id:
                fields["created_record_id"] = propexo_id
            ledger.transition(
                [key],
                "confirmed",
                run_id=run_id,
                detail="read back from Propexo before it was sent: recorded, not sent again",
                **fields,
            )
        counts["found"] += len(hits)
        unsure = mine[mine["record_key"].astype(str).isin(alike - set(hits))]
        reason = (
            f"held: absence not proven. {recovery.why}; Propexo holds {kind.plural} like it "
            "(same resident, code, amount and date) that do not carry tieout's number, and its "
            "write log reaches back only a month: look in Rent Manager, then "
            "`tieout resolve KEY --present|--absent`"
        )
        counts["held"] += _hold(ledger, unsure, run_id, reason)
    return counts


def _hold(ledger: Ledger, records: pd.DataFrame, run_id: str, reason: str) -> int:
    if records.empty:
        return 0
    keys = records["record_key"].astype(str).tolist()
    ledger.transition(keys, RecordState.HELD.value, run_id=run_id, note=reason, detail=reason)
    return len(keys)


def rebuilt(ledger: Ledger, settings: Settings) -> Recovery:
    """A rebuilt ledger knows only what Propexo shows: a recovery reaching as far back as
    Propexo goes (noticed now; it takes the data folder's count of runs, so the next run does
    not notice it again)."""
    seen = _marks(_mark_path(settings)).get(settings.integration_id, 0)
    if seen > int(ledger.get_meta(MARK) or 0):
        ledger.set_meta(MARK, str(seen))
    return notice(
        ledger,
        None,
        "the ledger was rebuilt from Propexo, which shows a write only once it is synced or "
        "in its write log",
    )
