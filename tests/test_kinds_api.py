"""A kind author's public face (#40): ``pipelines.kinds.api`` exports exactly what it lists
(as httpx's ``tests/test_exported_members.py`` guards ``httpx.__all__``), each a public name
of tieout's, and a kind from outside imports nothing else of tieout's."""

from __future__ import annotations

import ast
import inspect

from pipelines.kinds import api
from tests.conftest import ROOT


def test_the_api_exports_exactly_what_it_lists() -> None:
    exported = {name for name in vars(api) if not name.startswith("_")} - {"annotations"}
    # in ruff's (isort's) order: constants, classes, then functions
    assert api.__all__ == sorted(exported, key=lambda n: (not n.isupper(), n.islower(), n))
    assert len(set(api.__all__)) == len(api.__all__)


def test_each_exported_member_is_public_where_it_lives() -> None:
    """A kind is never handed a stage's private helper: every member is defined under a name
    without an underscore, in a module without one."""
    for name in api.__all__:
        member = getattr(api, name)
        module = getattr(member, "__module__", None) if not isinstance(member, str) else None
        if module is not None and (inspect.isclass(member) or inspect.isfunction(member)):
            assert not any(part.startswith("_") for part in module.split(".")), (name, module)
            assert not member.__name__.startswith("_"), name


# What the outside kind's tests run, as a person would (commands, not a kind's API), and what
# they look with; imported inside the tests, never by the kind itself.
COMMANDS = {
    "pipelines.ledger",
    "pipelines.reporting.trace",
    "pipelines.runs.pipeline",
    "pipelines.runs.reconcile",
    "pipelines.core.record_columns",
}
OURS = ("pipelines", "schemas", "sandbox", "tests")


def _imports(nodes: list[ast.stmt]) -> set[str]:
    found = set()
    for statement in nodes:
        for node in ast.walk(statement):
            if isinstance(node, ast.ImportFrom):
                found.add(node.module or "")
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
    return {name for name in found if name.split(".")[0] in OURS}


def test_a_kind_from_outside_imports_only_the_api() -> None:
    """The kind declared in the tests folder uses tieout through the API alone (the sandbox's
    own API and the tests' helpers besides); its tests run the commands."""
    tree = ast.parse((ROOT / "tests" / "test_a_kind_from_outside.py").read_text())
    top = [node for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)]
    inside = [node for node in tree.body if isinstance(node, ast.FunctionDef)]
    assert _imports(top) == {"pipelines.kinds.api", "sandbox.api", "tests.conftest"}
    assert _imports(inside) <= COMMANDS
