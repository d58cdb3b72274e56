"""The ledger's migration scripts, each imported: one line of revisions from the baseline to
the head Alembic upgrades to, every file named after its revision."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

from pipelines.ledger import migrations

VERSIONS = Path(migrations.__file__).parent / "versions"


def _revisions() -> dict[str, ModuleType]:
    found = {}
    for path in sorted(VERSIONS.glob("*.py")):
        module = importlib.import_module(f"pipelines.ledger.migrations.versions.{path.stem}")
        found[path.stem] = module
    return found


def test_the_revisions_are_one_line_from_the_baseline_to_the_head() -> None:
    modules = _revisions()
    assert modules, "no migration scripts"
    by_down = {m.down_revision: m for m in modules.values()}
    assert len(by_down) == len(modules), "two revisions share a parent: a branch"
    chain, current = [], None
    while current in by_down:
        current = by_down[current].revision
        chain.append(current)
    assert len(chain) == len(modules), "a revision is not reachable from the baseline"
    assert chain[-1] == migrations.head()
    for stem, module in modules.items():
        assert stem.startswith(str(module.revision).split("_")[0]), stem
        assert callable(module.upgrade)
