"""#36 "The period is the month's truth": `tieout report --period` counts each source line once
(the latest version of a file), shows what was settled and by whom, names what keeps it open;
HTML, XLSX and summary.json agree; `tieout signoff` refuses while anything is open and marks a
later change."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
from openpyxl import load_workbook

from pipelines.reporting.period import figures_hash, versions
from sandbox.server import RunningSandbox
from tests.conftest import SAMPLES, run_cli

PERIOD = "2026-11"  # the sample bills' month


def env_for(box: RunningSandbox) -> dict[str, str]:
    return {"PROPEXO_BASE_URL": box.base_url, "PROPEXO_API_TOKEN": box.config.token}


def workpaper(data: Path, env: dict[str, str]) -> tuple[dict, str, object]:  # type: ignore[type-arg]
    done = run_cli("--data-dir", str(data), "report", "--period", PERIOD, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    folder = data / "reports" / f"period-{PERIOD}"
    summary = json.loads((folder / "summary.json").read_text())
    html = (folder / "report.html").read_text()
    book = load_workbook(io.BytesIO((folder / "report.xlsx").read_bytes()))
    return summary, html, book


def test_the_period_counts_each_line_once_and_is_signed_only_when_nothing_is_open(
    sandbox: RunningSandbox, tmp_path: Path
) -> None:
    """Today: the first file and its corrected version were both counted (source 42,714.88
    for a 21,403.63 file); settled items showed as "rejected"; `signoff` succeeded while an
    item was open; the XLSX had no settlements."""
    env = env_for(sandbox)
    data = tmp_path / "data"
    inbox = data / "inbox"
    inbox.mkdir(parents=True)
    text = (SAMPLES / "vendor_bills.csv").read_text()
    bad = text.replace("ACME Plumbing LLC,B-2026124", "Acme Plumbng,B-2026124").replace(
        "Panel inspection,92.38", "Panel inspection,92.385"
    )
    (inbox / "bills.csv").write_text(bad)
    assert run_cli("--data-dir", str(data), "run", env=env).returncode == 1
    (data / "mappings").mkdir()
    (data / "mappings" / "vendors.csv").write_text(
        "spreadsheet_name,propexo_name\nAcme Plumbng,ACME Plumbing LLC\n"
    )
    assert run_cli("--data-dir", str(data), "retry", "bills.csv", env=env).returncode == 1

    summary, html, _ = workpaper(data, env)
    (only,) = summary["files"]
    assert summary["totals"]["source_total_cents"] == only["source_total_cents"] == 2131125
    assert only["stated_total_cents"] == 2140363
    (item,) = summary["open_items"]
    assert summary["verdict"] == summary["verdict_now"] == "needs attention"
    assert any(item["id"] in r["reason"] for r in summary["verdict_reasons"])
    refused = run_cli("--data-dir", str(data), "signoff", PERIOD, "--by", "Pat", env=env)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert item["id"] in refused.stdout and "--with-open-items" in refused.stdout
    assert "Reviewed by" not in workpaper(data, env)[1]

    # A person settles the last item: the check holds, the period is signed.
    settled = run_cli(
        "--data-dir", str(data), "settle", item["id"], "--by", "Dana", "--note", "keyed in RM",
        env=env,
    )  # fmt: skip
    assert settled.returncode == 0, settled.stdout + settled.stderr
    summary, html, book = workpaper(data, env)
    assert summary["verdict"] in ("complete", "waiting for sync"), summary["verdict_reasons"]
    assert summary["ties_out"] and all(f["ties_out"] for f in summary["files"])
    (only,) = summary["files"]
    how = {s["id"]: (s["by"], s["note"], s["settled_in_run"]) for s in only["settled"]}
    assert how.pop(item["id"]) == ("Dana", "keyed in RM", None)
    ((by, _, run),) = how.values()  # the unknown vendor: settled by the retry's run
    assert by is None and run
    # HTML, XLSX and summary.json say the same verdict; the XLSX keeps the settlements.
    assert f'data-verdict="{summary["verdict"]}"' in html and 'id="verdict-now"' not in html
    assert book["Summary"]["B2"].value == summary["verdict"].capitalize()
    settlements = pd.DataFrame(book["Settlements"].values)
    assert "Dana" in settlements.to_string() and "keyed in RM" in settlements.to_string()
    signed = run_cli("--data-dir", str(data), "signoff", PERIOD, "--by", "Pat", env=env)
    assert signed.returncode == 0, signed.stdout + signed.stderr
    summary, html, _ = workpaper(data, env)
    (review,) = summary["signoffs"]
    folder = data / "reports" / f"period-{PERIOD}"
    assert review["figures_sha256"] == summary["figures_sha256"]
    assert len(review["workpaper_sha256"]) == 64 and not summary["changed_since_signoff"]

    # The corrected file (same name, a later version) supersedes the first: its lines once.
    (inbox / "bills.csv").write_text(text)
    assert run_cli("--data-dir", str(data), "run", env=env).returncode == 0
    # The very same bytes again: a duplicate drop, no version.
    (inbox / "bills.csv").write_text(text)
    assert "duplicate drop" in run_cli("--data-dir", str(data), "run", env=env).stdout
    summary, html, _ = workpaper(data, env)
    (only,) = summary["files"]
    assert summary["totals"]["source_total_cents"] == only["stated_total_cents"] == 2140363
    assert only["previously_posted_cents"] + only["posted_total_cents"] == 2140363
    assert len(only["superseded_versions"]) == 1 and summary["ties_out"]
    assert summary["changed_since_signoff"] and summary["signoffs"][0]["changed_since"]
    assert "changed since sign-off" in html
    assert (folder / "summary.json").exists()


def test_a_period_signed_with_open_items_needs_a_note_and_says_which(
    sandbox: RunningSandbox, tmp_path: Path
) -> None:
    env = env_for(sandbox)
    data = tmp_path / "data"
    (data / "inbox").mkdir(parents=True)
    text = (SAMPLES / "vendor_bills.csv").read_text()
    (data / "inbox" / "bills.csv").write_text(
        text.replace("Panel inspection,92.38", "Panel inspection,92.385")
    )
    assert run_cli("--data-dir", str(data), "run", env=env).returncode == 1
    base = ["--data-dir", str(data), "signoff", PERIOD, "--by", "Pat"]
    no_note = run_cli(*base, "--with-open-items", env=env)
    assert no_note.returncode == 2 and "--note" in no_note.stderr
    signed = run_cli(*base, "--with-open-items", "--note", "row 12 follows", env=env)
    assert signed.returncode == 0, signed.stdout + signed.stderr
    assert "signed with open items: it-" in signed.stdout
    summary = json.loads((data / "reports" / f"period-{PERIOD}" / "summary.json").read_text())
    (review,) = summary["signoffs"]
    assert review["with_open_items"] and review["open_items"] == [
        i["id"] for i in summary["open_items"]
    ]
    # A run is signed the same way: refused while its item is open.
    run_id = next(p.parent.name for p in (data / "reports").glob("2*/summary.json"))
    refused = run_cli("--data-dir", str(data), "signoff", run_id, "--by", "Pat", env=env)
    assert refused.returncode == 1 and "open items: it-" in refused.stdout


def test_the_latest_version_of_a_name_supersedes_and_the_figures_hash_ignores_signing() -> None:
    files = pd.DataFrame(
        {
            "name": ["a.csv", "b.csv", "a.csv"],
            "sha256": ["s1", "s2", "s3"],
            "run_id": ["r1", "r1", "r2"],
            "processed_at": ["2026-11-01", "2026-11-01", "2026-11-02"],
            "source_total_cents": [100, 200, 110],
        }
    )
    latest, earlier = versions(files)
    assert sorted(latest["sha256"]) == ["s2", "s3"]
    assert [v["sha256"] for v in earlier["a.csv"]] == ["s1"]
    summary = {"files": [{"name": "a.csv", "source_total_cents": 1}], "totals": {}, "items": []}
    signed = {**summary, "signoffs": [{"by": "x"}], "finished_at": "now"}
    # A corrected file of another name supersedes the file whose records it shares.
    latest, earlier = versions(files, {"s3": ["s2"]})
    assert sorted(latest["sha256"]) == ["s3"]
    assert sorted(v["sha256"] for v in earlier["a.csv"]) == ["s1", "s2"]
    assert figures_hash(summary) == figures_hash(signed)
    assert figures_hash(summary) != figures_hash({**summary, "totals": {"a": 1}})


def test_a_re_export_under_another_name_and_a_later_correction_are_one_source() -> None:
    """The month as a clerk works it: the bills (v1), the same bills re-exported re-sorted
    under another name (it restates v1: a version of it), then the bills corrected under the
    first name (v2). The period counted both the re-export and v2 (the bills twice); each
    source is counted once, at its latest version."""
    files = pd.DataFrame(
        {
            "name": ["bills.csv", "roll.xlsx", "bills_reexport.csv", "bills.csv"],
            "sha256": ["v1", "roll", "re", "v2"],
            "run_id": ["r1", "r1", "r2", "r3"],
            "processed_at": ["2026-12-01", "2026-12-01", "2026-12-02", "2026-12-03"],
            "source_total_cents": [2140363, 6626500, 2140363, 2142704],
        }
    )
    latest, earlier = versions(files, {"re": ["v1"]})
    assert sorted(latest["sha256"]) == ["roll", "v2"]
    assert sorted(v["sha256"] for v in earlier["bills.csv"]) == ["re", "v1"]
