"""The record kinds as registered packages (#17, #29): every kind has every function from its
own package, the lists that name kinds are derived from the registry, no module outside
``pipelines/kinds/`` decides anything by kind, and no stage imports the registry."""

from __future__ import annotations

import ast
import importlib
import re
from dataclasses import fields
from pathlib import Path

import pandas as pd
import pytest

from pipelines.core.kind import Kind
from pipelines.kinds import registered
from tests.conftest import ROOT

KINDS_DIR = ROOT / "pipelines" / "kinds"
STAGES = ("reading", "resolving", "posting", "reconciling", "reporting")


@pytest.mark.parametrize("name", [kind.source_kind for kind in registered()])
def test_every_kind_has_every_function_from_its_own_package(name: str) -> None:
    kinds = registered()
    kind = kinds.source(name)
    package = ".".join(kind.validate.__module__.split(".")[:3]) + "."
    assert package.startswith("pipelines.kinds."), package
    for field in fields(Kind):
        value = getattr(kind, field.name)
        if field.name in ("draft", "renumber", "shown", "columns", "issue_codes", "twins"):
            continue  # optional: hand-written profiles, final keys, no columns, codes, twins
        assert value is not None and value != (), field.name
        if callable(value) and not isinstance(value, type) and value is not field.default:
            # its own, the Kind's default (a request writes one record: `the_body`), or the
            # common case's, made for this kind (`pipelines.kinds.common`)
            made_for = getattr(getattr(value, "__self__", None), "source_kind", None)
            assert value.__module__.startswith(package) or made_for == name, field.name
    assert set(kind.write_paths) == set(kind.record_kinds)
    assert all(kinds.record(k) is kind for k in kind.record_kinds)
    assert all(kinds.sync_scope[k] == (kind.sync_model, kind.dated_sync) for k in kind.record_kinds)
    assert kinds.source_columns[name] == kind.source_columns


def test_an_unknown_kind_is_refused_not_treated_as_a_charge() -> None:
    kinds = registered()
    with pytest.raises(ValueError, match="no kind for record kind 'payment'"):
        kinds.record("payment")
    with pytest.raises(ValueError, match="no kind for source kind 'payments'"):
        kinds.source("payments")
    records = pd.DataFrame({"kind": ["charge", "payment"], "record_key": ["a", "b"]})
    with pytest.raises(ValueError, match="payment"):
        kinds.of(records, kinds.source("charge"))


def test_no_module_outside_the_kinds_decides_by_record_kind() -> None:
    """What made "anything not an invoice is a charge" possible: `kind == "invoice"`,
    `["kind"] != "invoice"`, `.eq("credit")`, or a kind's name as a literal, outside the
    kinds' packages."""
    record_kind = r"(invoice|charge|credit)"
    decides = re.compile(
        rf"""(==|!=|\.eq\(|\.ne\()\s*["'](invoice|credit|vendor_bill)["']"""
        rf"""|(\.kind|\["kind"\]|kind)\s*(==|!=)\s*["']{record_kind}["']"""
        rf"""|\["kind"\]\.(eq|ne|isin)\(\s*["'(\[]"""
        rf"""|\[["'](vendor_bill|invoice|credit)["']\]"""
    )
    offenders = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in sorted((ROOT / "pipelines").rglob("*.py"))
        if KINDS_DIR not in path.parents
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if decides.search(line)
    ]
    assert offenders == []


# Where shared code still names a built-in kind's own ledger column (#40: each is a debt to pay
# down by asking the kind; none may be added). Reporting's are engineer E's to move.
KIND_COLUMNS_IN_SHARED_CODE = {
    "cli/doctor.py": {"reference_number"},
    "cli/reports.py": {"invoice_number", "reference_number"},  # moved from cli/main.py
    "ledger/migrations/versions/0001_baseline.py": {"charge_notes"},  # frozen history
    "posting/follow.py": {"reference_number"},  # moved from posting/load.py
    "reading/totals.py": {"invoice_number"},
    "reconciling/proof.py": {"transaction_date"},
    "reconciling/skew.py": {"invoice_number", "reference_number"},
    "reporting/publish.py": {"resident_id"},
    "reporting/rows.py": {"defaulted"},  # the paged report's rows (from tables.py)
    "reporting/tables.py": {  # moved from reporting/report.py
        "charge_code_id",
        "defaulted",
        "invoice_number",
        "reference_number",
        "resident_id",
        "transaction_date",
        "vendor_id",
    },
    "reporting/trace.py": {
        "charge_code_id",
        "invoice_number",
        "reference_number",
        "resident_id",
        "vendor_id",
    },
    "reporting/workbook.py": {
        "defaulted",
        "invoice_number",
        "reference_number",
        "transaction_date",
    },
    "resolving/refs.py": {"resident_id"},
    "resolving/transform.py": {"charge_code_id", "resident_id", "vendor_id"},
    "runs/take.py": {"transaction_date"},  # moved from runs/pipeline.py
}


def test_no_shared_module_names_another_kind_column() -> None:
    """A kind's own ledger columns (``Kind.columns``) are its business: shared code asks the
    kind (``Kind.attributes``, its functions) rather than naming them, beyond the places
    listed above, which may only shrink."""
    own = {column.name for kind in registered() for column in kind.columns}
    quoted = re.compile("[\"'](" + "|".join(sorted(own)) + ")[\"']")
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / "pipelines").rglob("*.py")):
        if KINDS_DIR in path.parents:
            continue
        names = set(quoted.findall(path.read_text()))
        if names:
            found[str(path.relative_to(ROOT / "pipelines"))] = names
    grown = {
        where: sorted(names - KIND_COLUMNS_IN_SHARED_CODE.get(where, set()))
        for where, names in found.items()
        if names - KIND_COLUMNS_IN_SHARED_CODE.get(where, set())
    }
    assert grown == {}


def test_no_stage_imports_the_registry() -> None:
    """Stages are handed the kinds (``Kinds``, ``KindContext``) by the composers
    (``pipelines/runs/``, ``pipelines/cli/``); only those ask the registry."""
    imports = re.compile(r"^\s*(from pipelines\.kinds\b|import pipelines\.kinds\b)")
    offenders = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for stage in STAGES
        for path in sorted((ROOT / "pipelines" / stage).rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if imports.search(line)
    ]
    assert offenders == []


# pipelines/' layers, lowest first (ARCHITECTURE.md, "Layers and seams").
LAYERS = ("core", "ledger", "reading", "resolving", "posting", "reconciling", "reporting")
LAYERS += ("kinds", "runs", "cli")
# resolving reads Propexo's reference data through the one client, which lives in posting.
ALLOWED_UP = {("resolving", "pipelines.posting.propexo")}


def test_no_layer_imports_a_layer_above_it() -> None:
    """Imports go down the layers (type-only imports aside: the Kind interface in core names
    the ledger, client and reference data it hands a kind)."""
    offenders = []
    for path in sorted((ROOT / "pipelines").rglob("*.py")):
        parts = path.relative_to(ROOT / "pipelines").parts
        if len(parts) < 2 or parts[0] not in LAYERS:
            continue
        tree = ast.parse(path.read_text())
        typing_only = {
            id(node)
            for block in ast.walk(tree)
            if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
            for node in ast.walk(block)
        }
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom) or id(node) in typing_only:
                continue
            module = node.module or ""
            target = module.split(".")[1] if module.startswith("pipelines.") else ""
            if target not in LAYERS or (parts[0], module) in ALLOWED_UP:
                continue
            if LAYERS.index(target) > LAYERS.index(parts[0]):
                offenders.append(f"pipelines/{'/'.join(parts)}:{node.lineno}: {module}")
    assert offenders == []


def test_the_documents_the_code_cites_are_in_the_repository() -> None:
    """#40: modules cited a design document a clone does not have. Every markdown file named
    in the code, tests and documents is a file of the repository."""
    root = ROOT
    texts = [
        *root.glob("*.md"),
        *(
            p
            for d in ("pipelines", "sandbox", "schemas", "tests", "scripts", "benchmarks")
            for p in (root / d).rglob("*")
            if p.suffix in {".py", ".md", ".toml", ".html"}
        ),
    ]
    cited = {
        (str(path.relative_to(root)), name)
        for path in texts
        for name in re.findall(r"[\w./-]+\.md\b", path.read_text(encoding="utf-8"))
    }
    missing = sorted(
        (where, name)
        for where, name in cited
        if not (root / name).exists() and not (root / where).parent.joinpath(name).exists()
    )
    assert not missing, missing


# Where a module's docstrings and comments may name a file from: the repository's root,
# pipelines/, the module's own folder, any layer's folder, the sandbox and the tests.
def _cited_file_exists(where: Path, name: str) -> bool:
    bases = [ROOT, ROOT / "pipelines", where.parent, ROOT / "sandbox", ROOT / "tests"]
    bases += [d for d in (ROOT / "pipelines").iterdir() if d.is_dir()]
    pattern = re.sub(r"<[^>]+>", "*", name)  # pipelines/kinds/<kind>/columns.py: any kind's
    return any(next(base.glob(pattern), None) is not None for base in bases)


def _names_defined() -> set[str]:
    """Every function, class, assignment, module and package name in tieout's own code."""
    names: set[str] = set()
    for folder in ("pipelines", "schemas", "sandbox"):
        for path in (ROOT / folder).rglob("*.py"):
            names |= {path.stem, path.parent.name}
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                    names.add(node.name)
                elif isinstance(node, ast.Assign):
                    names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
                elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                    names.add(node.target.id)
    return names


def _resolves(reference: str) -> bool:
    """A dotted ``pipelines.…`` reference: its longest importable module, then attributes."""
    parts = reference.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found: object = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[cut:]:
            if not hasattr(found, attribute):
                return False
            found = getattr(found, attribute)
        return True
    return False


def test_the_files_modules_and_functions_the_code_cites_exist() -> None:
    """#40: modules split and functions moved leave no docstring or comment pointing at a
    file, module or function that is not there. In pipelines/, every file named
    (``runs/pipeline.py``, ``pipelines/kinds/<kind>/columns.py``) exists; every
    ``:mod:``/``:func:``/``:class:`` reference written in full (``pipelines.runs.take``)
    imports and has the attribute named; a short one (:func:`reference_lists`) names a function,
    class or module tieout has."""
    defined = _names_defined()
    missing = []
    for path in sorted((ROOT / "pipelines").rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        where = path.relative_to(ROOT)
        for name in re.findall(r"(?<![\w./<>-])([\w/<>-]+\.py)\b", text):
            if not _cited_file_exists(path, name):
                missing.append(f"{where}: {name}")
        for reference in re.findall(r":(?:mod|func|class|meth|attr|data):`~?([\w.]+)`", text):
            full = reference.startswith("pipelines.")
            if not (_resolves(reference) if full else reference.split(".")[-1] in defined):
                missing.append(f"{where}: {reference}")
    assert missing == []
