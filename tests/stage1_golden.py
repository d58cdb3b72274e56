"""Stage 1's output, fingerprinted: what extract, validate and transform make of every fixture
under tests/data and of seeded property-style inputs, so a change to how they compute (Arrow,
merges, per-distinct work) can be shown to give the same rows and cents (#41).

``python -m tests.stage1_golden`` (re)writes tests/data/stage1_golden.json from the code as it
is; the test (tests/test_stage1_golden.py) compares the code as it is with that file. The file
was written by main's code before the wide path's rework; rewrite it only for a change that
is meant to change what a file reads as.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.core.config import load_settings
from pipelines.core.errors import TieoutError
from pipelines.core.parsing import format_cents
from pipelines.kinds import registered
from pipelines.reading.grids import fingerprint
from pipelines.reading.profiles import profiles_for
from pipelines.resolving.refs import RefData
from pipelines.runs.files import process_file

TEST_DATA = Path(__file__).resolve().parent / "data"
GOLDEN = TEST_DATA / "stage1_golden.json"
STYLES = ("plain", "dollar", "accounting", "usd", "trailing", "four_places")
ODD_AMOUNTS = ("", "  ", "abc", "$", "1.234", "12,34.00", "(-5.00)", "1e3", "--4", "0.00", "0")


def fixtures() -> list[str]:
    # A test that checks a fixture in place writes (then removes) its ``.errors.csv`` beside it.
    return sorted(
        p.name
        for p in TEST_DATA.iterdir()
        if p.suffix in (".csv", ".xlsx") and not p.name.endswith(".errors.csv")
    )


def property_inputs(folder: Path) -> list[Path]:
    """Seeded charge sheets and bill exports in every way money and dates are written, with
    blank, zero and unreadable cells among them (what the property tests generate, fixed)."""
    rng = random.Random(41)
    people = [
        ("Marrow", "Dakota", "101"),
        ("Whitlock", "Rowan", "102"),
        ("Northam", "Riley", "103"),
        ("Alder", "Avery", "104"),  # not Propexo's resident there: an issue
    ]
    dates = ("12/01/2026", "2026-12-01", "12/1/26", "12/01/2026 12:00:00 AM", "1/1/1970", "")
    paths = []
    # The fourth repeats a few amounts (a roll's rent is the same for many units), so the
    # work done once per distinct value is done on few values, bad ones among them.
    few = [rng.randint(-50_000, 250_000) for _ in range(6)] + [0]
    for n in range(4):
        lines = ["Charges export", "", "Property,Unit,Resident,Charge Code,Amount,Transaction Date"]
        for _ in range(400):
            last, first, unit = rng.choice(people)
            cents = (
                rng.choice(few)
                if n == 3
                else rng.choice((rng.randint(-50_000, 250_000), rng.randint(1, 99)))
            )
            amount = (
                rng.choice(ODD_AMOUNTS)
                if rng.random() < 0.05
                else format_cents(cents, "dollar" if n == 3 else rng.choice(STYLES))
            )
            if n == 3 and rng.random() < 0.06:  # cells the line model refuses, repeated
                unit, last = rng.choice([("U" * 60, last), (unit, "")])
            fields = [
                "Oak Ridge Apartments",
                unit,
                f"{last}, {first}" if last else "",
                rng.choice(("Rent", "Parking", "Pet Rent", "Trash")),
                amount,
                rng.choice(dates[4:] if n == 3 else dates) if n else "12/01/2026",
            ]
            lines.append(",".join(f'"{f}"' if "," in f or '"' in f else f for f in fields))
        path = folder / f"property_charges_{n}.csv"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        paths.append(path)
    bills = ["Vendor,Invoice #,Invoice Date,Due Date,Property,GL Account,Description,Amount"]
    for i in range(300):
        cents = rng.randint(1, 500_000)
        amount = rng.choice(ODD_AMOUNTS) if rng.random() < 0.03 else format_cents(cents, "dollar")
        bills.append(
            f'"Acme Plumbing LLC",P-{i // 3:05d},11/03/2026,,Oak Ridge Apartments,5100,'
            f'line {i},"{amount}"'
        )
    path = folder / "property_bills.csv"
    path.write_text("\n".join(bills) + "\n", encoding="utf-8")
    paths.append(path)
    return paths


def _frame_digest(frame: pd.DataFrame) -> str:
    """The frame's columns and every cell as text (missing as ``<NA>``), the columns by name:
    their order is not what a file reads as."""
    columns = sorted(frame.columns, key=str)
    digest = hashlib.sha256(json.dumps([str(c) for c in columns]).encode())
    for column in columns:
        values = frame[column].astype(object)
        cells = ["<NA>" if _missing(v) else repr(_plain(v)) for v in values]
        digest.update(json.dumps(cells).encode())
    return digest.hexdigest()


def _plain(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    return value


def _missing(value: Any) -> bool:
    if isinstance(value, (list, tuple)) or (
        hasattr(value, "__len__") and not isinstance(value, str)
    ):
        return False
    return bool(pd.isna(value))


def _cents(frame: pd.DataFrame) -> int | None:
    if "amount_cents" not in frame:
        return None
    return int(pd.to_numeric(frame["amount_cents"], errors="coerce").fillna(0).sum())


def snapshot(path: Path, refs: RefData | None) -> dict[str, Any]:
    """What stage 1 makes of one file: each stage's frame (rows, cents, a digest of every cell)
    and issue, or the one refusal."""
    settings = load_settings(env={})
    try:
        result = process_file(
            fingerprint(path), profiles_for(settings, registered()), refs, settings
        )
    except TieoutError as exc:
        return {"refused": type(exc).__name__, "message": str(exc)}
    out: dict[str, Any] = {}
    frames = {
        "extract.rows": result.extract.rows,
        "extract.skipped": result.extract.skipped,
        "validate.lines": result.validated.lines,
        "validate.valid": result.validated.valid,
        "validate.skipped": result.validated.skipped,
        "records": result.records,
    }
    for name, frame in frames.items():
        out[name] = {"rows": len(frame), "cents": _cents(frame), "digest": _frame_digest(frame)}
    issues = [[i.code.value, i.message, i.source_row, i.column, i.value] for i in result.issues]
    out["issues"] = {
        "count": len(issues),
        "digest": hashlib.sha256(json.dumps(issues).encode()).hexdigest(),
        "first": issues[:3],
    }
    out["outcome"] = {
        k: v for k, v in vars(result.outcome).items() if isinstance(v, (int, str, dict, list))
    }
    return out


def with_aliases(refs: RefData, name: str) -> RefData:
    """The alias files a site would keep for the fixtures whose names are not Rent Manager's
    (as tests/test_extract.py sets them)."""
    if name.startswith("yardi"):
        codes = pd.DataFrame(
            {
                "spreadsheet_name": ["rent", "pet", "conc"],
                "propexo_name": ["Rent", "Pet Rent", "Concession"],
            }
        )
        return replace(refs, aliases={**refs.aliases, "charge_codes": codes})
    if name in ("appfolio_itemized.csv", "utility_billing.csv"):
        codes = pd.DataFrame(
            {"spreadsheet_name": ["Water/Sewer", "Water"], "propexo_name": ["Trash", "Trash"]}
        )
        return replace(refs, aliases={**refs.aliases, "charge_codes": codes})
    return refs


def snapshots(refs: RefData, folder: Path) -> dict[str, Any]:
    out = {}
    for name in fixtures():
        out[name] = snapshot(TEST_DATA / name, with_aliases(refs, name))
        out[f"{name} (offline)"] = snapshot(TEST_DATA / name, None)
    for path in property_inputs(folder):
        out[path.name] = snapshot(path, refs)
    return out


def main() -> None:
    import tempfile

    from pipelines.core.config import Secret
    from pipelines.posting.propexo import PropexoClient
    from pipelines.resolving.refs import fetch_reference_data
    from sandbox.faults import SandboxConfig
    from sandbox.server import running_sandbox

    with (
        running_sandbox(SandboxConfig(rate_limit=1000)) as box,
        PropexoClient(box.base_url, Secret(box.config.token)) as client,
    ):
        refs = fetch_reference_data(client, "int_rm_demo")
    with tempfile.TemporaryDirectory() as folder:
        found = snapshots(refs, Path(folder))
    GOLDEN.write_text(json.dumps(found, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {GOLDEN} ({len(found)} inputs)")


if __name__ == "__main__":
    main()
