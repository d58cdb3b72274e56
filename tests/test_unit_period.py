"""A period's workpaper from summaries made here: the latest version of each source counted
once whichever way its versions were found; each file's check, what keeps a period open, and
the figures a sign-off signs (and nothing it does not)."""

from __future__ import annotations

import copy
from typing import Any

import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from pipelines.reporting.period import (
    FILE_FIGURES,
    figures_hash,
    latest_accounting,
    period_figures,
    posted_ties,
    settled_of,
    versions,
)
from pipelines.reporting.report import ATTENTION, COMPLETE, WAITING


def files(*rows: tuple[str, str, int]) -> pd.DataFrame:
    """(name, sha256, minute processed) per file taken."""
    return pd.DataFrame(
        {
            "name": [n for n, _, _ in rows],
            "sha256": [s for _, s, _ in rows],
            "run_id": [f"run-{s}" for _, s, _ in rows],
            "processed_at": [f"2026-03-01T00:{m:02d}:00Z" for *_, m in rows],
            "source_total_cents": [100 * (i + 1) for i in range(len(rows))],
        }
    )


def test_the_latest_version_of_a_name_supersedes_the_earlier_ones() -> None:
    latest, earlier = versions(
        files(("roll.xlsx", "a", 1), ("bills.csv", "b", 2), ("roll.xlsx", "c", 3))
    )
    assert latest["sha256"].tolist() == ["b", "c"]
    assert earlier == {
        "roll.xlsx": [
            {
                "sha256": "a",
                "name": "roll.xlsx",
                "run_id": "run-a",
                "processed_at": "2026-03-01T00:01:00Z",
                "source_total_cents": 100,
            }
        ]
    }


def test_a_re_export_under_another_name_joins_the_chain_it_corrects() -> None:
    taken = files(("roll.xlsx", "a", 1), ("Roll (2).csv", "b", 2), ("Roll (2).csv", "c", 3))
    latest, earlier = versions(taken, supersedes={"b": ["a"], "c": ["zzz-unknown", "c"]})
    assert latest["sha256"].tolist() == ["c"]
    assert [v["sha256"] for v in earlier["Roll (2).csv"]] == ["a", "b"]


def test_no_files_is_no_versions() -> None:
    empty = files()
    latest, earlier = versions(empty)
    assert latest.empty and earlier == {}


@given(st.lists(st.sampled_from(["a.csv", "b.csv", "c.xlsx"]), min_size=1, max_size=12))
def test_each_source_has_one_latest_version_and_every_other_is_listed_under_it(
    names: list[str],
) -> None:
    taken = files(*[(name, f"sha{i}", i) for i, name in enumerate(names)])
    latest, earlier = versions(taken)
    assert sorted(latest["name"]) == sorted(set(names))
    for name in set(names):
        shas = [f"sha{i}" for i, n in enumerate(names) if n == name]
        assert latest.loc[latest["name"] == name, "sha256"].tolist() == [shas[-1]]
        assert [v["sha256"] for v in earlier.get(name, [])] == shas[:-1]


def test_a_retried_file_is_counted_as_its_last_pass_saw_it() -> None:
    latest = files(("roll.xlsx", "a", 5)).assign(previously_posted_cents=0)
    passes = pd.DataFrame(
        {
            "sha256": ["a", "a"],
            "run_id": ["run-1", "run-2"],
            "processed_at": ["2026-03-01T00:01:00Z", "2026-03-01T00:09:00Z"],
            "name": "roll.xlsx",
            "source_total_cents": [100, 100],
            "previously_posted_cents": [0, 60],
        }
    )
    # The second pass saw 60 as previously posted: 40 of it was its own first pass's.
    records = pd.DataFrame(
        {"file_sha256": ["a", "a"], "run_id": ["run-1", "run-2"], "amount_cents": [40, 60]}
    )
    acc = latest_accounting(latest, passes, records)
    assert acc.loc[0, "run_id"] == "run-2"
    assert acc.loc[0, "previously_posted_cents"] == 20
    assert acc.loc[0, "processed_at"] == "2026-03-01T00:05:00Z"
    # Never passed: its own row is its accounting.
    alone = latest_accounting(latest, passes.iloc[:0], records.iloc[:0])
    assert alone.loc[0, "run_id"] == "run-a"


def item(**fields: Any) -> dict[str, Any]:
    base = {
        "id": "I-1",
        "cause": "rejected_row",
        "rows": [7],
        "amount_cents": 50,
        "state": "settled",
        "settled_in_run": None,
        "decided_by": "pat",
        "state_at": "2026-03-02",
        "note": "not ours",
        "sha256": "a",
    }
    return base | fields


def summary(**file_fields: Any) -> dict[str, Any]:
    f = {
        "name": "roll.xlsx",
        "sha256": "a",
        "stated_total_cents": 1000,
        "source_total_cents": 1000,
        "rows_used": 9,
        "rows_rejected": 1,
        "posted_total_cents": 900,
        "pending_total_cents": 0,
        "previously_posted_cents": 50,
        "rejected_total_cents": 50,
        "file_totals": [{"source_row": 12, "checked": True, "difference_cents": 0}],
    }
    return {
        "files": [f | file_fields],
        "items": [item()],
        "records": {"by_state": {"matched": 3}, "amount_by_state": {"matched": 900}},
        "totals": {"posted_total_cents": 900},
    }


def test_a_file_whose_rejected_rows_a_person_settled_ties_and_the_period_is_complete() -> None:
    rows, control, verdict, reasons, listed = period_figures(summary(), {}, [])
    (f,) = rows
    assert (f["settled_cents"], f["rejected_open_cents"], f["ties_out"]) == (50, 0, True)
    assert f["lines"] == 9 and f["open_items"] == [] and f["superseded_versions"] == []
    assert f["settled"][0]["by"] == "pat"
    assert control[0]["ties_out"] and control[0]["level"] == "file"
    assert (verdict, reasons, listed) == (COMPLETE, [], [])


def test_settled_by_a_run_is_not_settled_by_a_person() -> None:
    s = summary()
    s["items"] = [item(decided_by=None, settled_in_run="run-9")]
    (f,), _, verdict, reasons, _ = period_figures(s, {}, [])
    assert (f["settled_cents"], f["rejected_open_cents"]) == (0, 50)
    assert f["ties_out"]  # rejected rows, counted as rejected: still ties
    assert verdict == COMPLETE and reasons == []


def test_an_open_item_keeps_the_period_open_naming_it() -> None:
    s = summary()
    s["items"] = [item(state="open", decided_by=None, file="roll.xlsx")]
    (f,), _, verdict, reasons, listed = period_figures(s, {}, [])
    assert f["open_items"] == ["I-1"] and f["open_cents"] == 50
    assert verdict == ATTENTION
    assert reasons == [
        {
            "reason": "open item I-1 (rejected row, roll.xlsx row 7) keeps the period open",
            "count": 1,
            "amount_cents": 50,
        }
    ]
    assert listed == [
        {"id": "I-1", "cause": "rejected_row", "file": "roll.xlsx", "rows": [7], "amount_cents": 50}
    ]


def test_a_record_item_is_an_open_item_of_its_file() -> None:
    record_item = {
        "item_id": "R-3",
        "cause": "conflict",
        "file_name": "roll.xlsx",
        "file_sha256": "a",
        "rows": [],
        "amount_cents": 0,
        "state": "open",
    }
    (f,), _, verdict, reasons, _ = period_figures(summary(), {}, [record_item])
    assert f["open_items"] == ["R-3"]
    assert verdict == ATTENTION
    assert reasons[0]["reason"] == "open item R-3 (conflict, roll.xlsx) keeps the period open"


def test_a_check_that_does_not_hold_is_a_reason_with_or_without_open_items() -> None:
    s = summary(posted_total_cents=800)
    (f,), _, verdict, reasons, _ = period_figures(s, {}, [])
    assert not f["ties_out"]
    assert verdict == ATTENTION
    assert reasons[-1]["reason"] == "the check of roll.xlsx does not hold"
    s["items"].append(item(id="I-2", state="open", decided_by=None))
    _, _, _, reasons, _ = period_figures(s, {}, [])
    assert reasons[-1]["reason"] == "the check of roll.xlsx does not hold while I-2 is open"


def test_a_total_kept_from_tying_by_unreadable_rows_holds_once_they_are_settled() -> None:
    total = {
        "source_row": 12,
        "checked": False,
        "unreadable": [{"source_row": 7}],
        "difference_cents": 50,
    }
    (f,), *_ = period_figures(summary(file_totals=[total]), {}, [])
    assert f["ties_out"]
    s = summary(file_totals=[total])
    s["items"] = [item(rows=[8])]
    (f,), *_ = period_figures(s, {}, [])
    assert not f["ties_out"]


def test_records_wrong_in_propexo_need_attention_and_unsynced_ones_wait() -> None:
    s = summary()
    s["records"]["by_state"] = {"matched": 1, "missing": 2, "duplicated": 1}
    _, _, verdict, reasons, _ = period_figures(s, {}, [])
    assert verdict == ATTENTION
    assert [r["reason"] for r in reasons] == [
        "records missing in Propexo",
        "records duplicated in Propexo",
    ]
    s["records"]["by_state"] = {"confirmed": 2, "unverifiable": 1}
    _, _, verdict, reasons, _ = period_figures(s, {}, [])
    assert verdict == WAITING
    assert reasons == [
        {"reason": "posted, awaiting Propexo's next sync", "count": 3, "amount_cents": 0}
    ]


def test_posted_ties_to_the_cent_across_the_states_of_what_was_posted() -> None:
    s = summary()
    s["records"]["amount_by_state"] = {"matched": 500, "confirmed": 300, "missing": 100}
    assert posted_ties(s)
    s["records"]["amount_by_state"]["missing"] = 99
    assert not posted_ties(s)


def test_settled_of_lists_only_the_file_s_decided_items() -> None:
    items = [item(), item(id="I-2", state="open"), item(id="I-3", sha256="b")]
    assert [i["id"] for i in settled_of(items, "a")] == ["I-1"]
    assert settled_of(items, "a")[0]["note"] == "not ours"


def workpaper() -> dict[str, Any]:
    f = {k: 1 for k in FILE_FIGURES} | {"name": "roll.xlsx", "sha256": "a", "ties_out": True}
    return {
        "files": [f | {"rendered_at": "09:00", "propexo_ids": ["p1"]}],
        "totals": {"posted_total_cents": 900},
        "items": [{"id": "I-1", "state": "open"}, {"id": "I-2", "state": "settled"}],
        "ties_out": True,
        "verdict": COMPLETE,
        "signed_by": "sam",
        "rendered_at": "2026-03-02T09:00:00Z",
    }


def test_the_signed_figures_ignore_when_and_by_whom_and_what_a_sync_adds() -> None:
    base = workpaper()
    same = copy.deepcopy(base)
    same["rendered_at"] = "2026-04-01T00:00:00Z"
    same["signed_by"] = "someone else"
    same["files"][0]["propexo_ids"] = ["p1", "p2"]
    assert figures_hash(same) == figures_hash(base)
    # verdict_now, when there, is what is signed.
    assert figures_hash(base | {"verdict_now": COMPLETE}) == figures_hash(base)
    # open_items listed outright are the same as those the items say are open.
    assert figures_hash(base | {"open_items": ["I-1"]}) == figures_hash(base)


def test_any_signed_figure_changed_changes_the_hash() -> None:
    base = workpaper()
    digest = figures_hash(base)
    for key in FILE_FIGURES:
        changed = copy.deepcopy(base)
        changed["files"][0][key] = "other"
        assert figures_hash(changed) != digest, key
    assert figures_hash(base | {"totals": {"posted_total_cents": 901}}) != digest
    assert figures_hash(base | {"verdict": ATTENTION}) != digest
    assert figures_hash(base | {"ties_out": False}) != digest
    assert figures_hash(base | {"items": []}) != digest
    assert len(digest) == 64
