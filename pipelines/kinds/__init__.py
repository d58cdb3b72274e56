"""The registry of record kinds. Nothing here lists them: they are discovered.

- **Built-in kinds** are the packages here (``invoice/``, ``charge/``, and any other
  ``pipelines/kinds/<name>/`` with a ``kind.py``): each ``kind.py`` builds its
  :class:`~pipelines.core.kind.Kind` and registers it when imported.
- **Plug-ins** name a module under the ``tieout.kinds`` entry-point group (as dlt finds its
  destinations): ``[project.entry-points."tieout.kinds"] payments = "acme.payments.kind"``.
  Importing the module registers its kind, as a built-in's does.
- **A kind from a test** (or a notebook) calls :func:`register` itself.

Records are posted kind by kind in each kind's ``post_order`` (then registration order).
Registering a kind registers its own ledger columns (``Kind.columns``). The record model asks
for :func:`discover` on its first read, so a ledger opened before any kind was used has every
column. A kind's public face is :mod:`pipelines.kinds.api`; see ARCHITECTURE.md, "How to add
a record kind".

Only the composers (``pipelines/runs/``, ``pipelines/cli/``) ask the registry; they hand the
stages the :class:`~pipelines.core.kind.Kinds` it gives.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from importlib.metadata import entry_points

from pipelines.core.kind import Kind, KindContext, Kinds
from pipelines.core.record_columns import RECORD
from pipelines.core.references import REFERENCES

__all__ = [
    "ENTRY_POINTS",
    "Kind",
    "KindContext",
    "Kinds",
    "discover",
    "register",
    "registered",
    "unregister",
]

ENTRY_POINTS = "tieout.kinds"  # the entry-point group a kind from another distribution names
_REGISTERED: dict[str, Kind] = {}
_DISCOVERED: list[bool] = []  # [True] once discover() has run


def register(kind: Kind) -> Kind:
    """Add a kind (again under its source kind: replaced) and its own ledger columns. A record
    kind another source kind already claims is refused: the ledger's ``kind`` must name one
    kind. Returns ``kind``."""
    for other in _REGISTERED.values():
        shared = set(other.record_kinds) & set(kind.record_kinds)
        if other.source_kind != kind.source_kind and shared:
            raise ValueError(
                f"record kind(s) {sorted(shared)} of {kind.source_kind!r} are already "
                f"{other.source_kind!r}'s"
            )
    taken = Kinds(k for k in _REGISTERED.values() if k.source_kind != kind.source_kind)
    clash = sorted({code.value for code in kind.issue_codes or ()} & set(taken.issue_codes()))
    if clash:
        raise ValueError(f"issue code(s) {clash} of {kind.source_kind!r} are already taken")
    before = _REGISTERED.get(kind.source_kind)
    REFERENCES.register(kind.source_kind, kind.ref_lists, kind.name_kinds)
    try:
        RECORD.register_keys(kind.record_kinds, kind.twins, kind.derived_numbers)
        RECORD.register_attributes(kind.record_kinds, kind.columns)
    except Exception:  # refused: its references go as they came
        if before is None:
            REFERENCES.unregister(kind.source_kind)
        else:
            REFERENCES.register(before.source_kind, before.ref_lists, before.name_kinds)
        raise
    _REGISTERED[kind.source_kind] = kind
    return kind


def unregister(source_kind: str) -> None:
    """Forget a kind registered from outside (a test's, at its end), and its own columns (a
    ledger that has them keeps them, unread)."""
    kind = _REGISTERED.pop(source_kind, None)
    if kind is not None:
        RECORD.unregister_attributes(kind.record_kinds)
        REFERENCES.unregister(source_kind)


def built_in_modules() -> list[str]:
    """The ``kind`` modules of the packages under ``pipelines/kinds/``, by name."""
    return sorted(
        f"{__name__}.{info.name}.kind"
        for info in pkgutil.iter_modules(__path__)
        if info.ispkg and importlib.util.find_spec(f"{__name__}.{info.name}.kind") is not None
    )


def plugin_modules() -> list[str]:
    """The modules the ``tieout.kinds`` entry points name (installed distributions')."""
    return sorted(point.value for point in entry_points(group=ENTRY_POINTS))


def discover() -> None:
    """Import every built-in kind's module and every plug-in's once: each registers its kind."""
    if _DISCOVERED:
        return
    _DISCOVERED.append(True)
    for module in [*built_in_modules(), *plugin_modules()]:
        importlib.import_module(module)


def registered() -> Kinds:
    """Every registered kind (discovered on first use), in posting order: ``post_order``,
    then the order they were registered in."""
    discover()
    return Kinds(sorted(_REGISTERED.values(), key=lambda kind: kind.post_order))
