"""The registry of record kinds: each kind is a package here (``invoice/``, ``charge/``) whose
``kind.py`` builds its :class:`~pipelines.core.kind.Kind` and registers it. A kind from
outside (a plug-in, a test) registers the same way; see ARCHITECTURE.md, "How to add a record
kind".

Only the composers (``pipelines/runs/``, ``pipelines/cli/``) ask the registry; they hand the
stages the :class:`~pipelines.core.kind.Kinds` it gives.
"""

from __future__ import annotations

import importlib

from pipelines.core.kind import Kind, KindContext, Kinds

__all__ = ["BUILT_IN", "Kind", "KindContext", "Kinds", "register", "registered", "unregister"]

# The built-in kinds' modules, in the order their records are posted.
BUILT_IN = ("pipelines.kinds.invoice.kind", "pipelines.kinds.charge.kind")
_REGISTERED: dict[str, Kind] = {}


def register(kind: Kind) -> Kind:
    """Add a kind (again under its source kind: replaced). A record kind another source kind
    already claims is refused: the ledger's ``kind`` must name one kind. Returns ``kind``."""
    for other in _REGISTERED.values():
        shared = set(other.record_kinds) & set(kind.record_kinds)
        if other.source_kind != kind.source_kind and shared:
            raise ValueError(
                f"record kind(s) {sorted(shared)} of {kind.source_kind!r} are already "
                f"{other.source_kind!r}'s"
            )
    _REGISTERED[kind.source_kind] = kind
    return kind


def unregister(source_kind: str) -> None:
    """Forget a kind registered from outside (a test's, at its end)."""
    _REGISTERED.pop(source_kind, None)


def registered() -> Kinds:
    """Every registered kind, the built-in ones first (imported on first use: each registers
    itself)."""
    built_in = [importlib.import_module(module).KIND.source_kind for module in BUILT_IN]
    ordered = sorted(_REGISTERED.values(), key=lambda kind: kind.source_kind not in built_in)
    return Kinds(ordered)
