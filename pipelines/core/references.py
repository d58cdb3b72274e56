"""Reference data a kind declares (#40): the Propexo lists it resolves names against
(:class:`RefList`) and the kinds of names a file gives for them (:class:`NameKind`: resolved
within each row's location, aliased in a file of their own). Registering a kind registers
them here, as its columns are registered in :data:`~pipelines.core.record_columns.RECORD`;
the shared stages (fetching and caching the lists, ``RefData``, aliases, ``tieout refs`` and
``tieout alias``) iterate what is registered, beside the lists every kind shares (locations,
properties, units, residents, leases) and their two kinds of names (property, resident).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal, TypeVar

from pipelines.core.record_columns import DISCOVER


@dataclass(frozen=True)
class RefList:
    """One of Propexo's lists, paged whole once per integration and cached in the ledger."""

    name: str  # RefData's attribute, the cache's key, `tieout refs show NAME`
    path: str  # the endpoint it is paged from ("/v1/vendors/")
    columns: tuple[str, ...]  # what is kept of each record
    # Rent Manager keeps it per location: its records' ``x_location_id`` gives their
    # ``location_id`` (a column added to the frame)
    per_location: bool = True


@dataclass(frozen=True)
class NameKind:
    """A kind of name a file gives for a record of a :class:`RefList` that Rent Manager keeps
    per location: resolved within each row's location, after its aliases."""

    alias: str  # `tieout alias add ALIAS …`
    refs: str  # the RefList's name
    file: str  # its aliases: <data_dir>/mappings/FILE.csv
    # the names a spreadsheet may use for a record: each its list's columns, joined by a space
    names: tuple[tuple[str, ...], ...]
    label: str  # the list's column tieout shows for a record
    column: str  # the column of ids resolving fills
    what: str  # in words ("GL account")
    code: StrEnum  # the issue of a row whose name Propexo does not know
    compare: Literal["org", "text", "person"] = "org"  # how names are compared


# The lists every kind shares (RefData's fields), and the kinds of names every kind shares:
# alias kind → (its file under <data_dir>/mappings/, its list); no kind declares these again.
SHARED_LISTS = ("locations", "properties", "units", "residents", "leases")
SHARED_NAMES = {"property": ("properties", "properties"), "resident": ("residents", "residents")}

V = TypeVar("V")


class Read(Mapping[str, V]):
    """A mapping read afresh each time it is used, never when it is made: a module may keep one
    from import on and still see a kind registered later."""

    def __init__(self, read: Callable[[], Mapping[str, V]]) -> None:
        self._read = read

    def __getitem__(self, key: str) -> V:
        return self._read()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._read())

    def __len__(self) -> int:
        return len(self._read())

    def __repr__(self) -> str:
        return f"Read({dict(self._read())!r})"


class References:
    """The reference lists and kinds of names the registered kinds declare, by kind."""

    def __init__(self, discover: str | None = None) -> None:
        self._by_kind: dict[str, tuple[tuple[RefList, ...], tuple[NameKind, ...]]] = {}
        self._discover = discover
        self.reserved = {*SHARED_LISTS, *SHARED_NAMES}  # refused to a kind

    def register(self, kind: str, lists: Iterable[RefList], names: Iterable[NameKind]) -> None:
        """Declare one kind's lists and names (again: replaced). A list or a name another kind
        declares must be declared alike; a shared one's name is refused, as is a name of a list
        nobody declares."""
        lists, names = tuple(lists), tuple(names)
        others = {k: v for k, v in self._by_kind.items() if k != kind}
        known_lists = {r.name: r for ls, _ in others.values() for r in ls}
        known_names = {n.alias: n for _, ns in others.values() for n in ns}
        keys = [*(r.name for r in lists), *(n.alias for n in names)]
        refused = [key for key in keys if key in self.reserved]
        refused += [r.name for r in lists if known_lists.get(r.name, r) != r]
        refused += [n.alias for n in names if known_names.get(n.alias, n) != n]
        if refused:
            raise ValueError(
                f"kind {kind!r}: reference list(s) or name(s) {sorted(refused)} are shared or "
                "another kind's, declared otherwise"
            )
        ours = {r.name for r in lists} | set(known_lists) | set(SHARED_LISTS)
        for name in names:
            if name.refs not in ours:
                raise ValueError(f"kind {kind!r}: {name.alias!r} names no list {name.refs!r}")
        self._by_kind[kind] = (lists, names)

    def unregister(self, kind: str) -> None:
        self._by_kind.pop(kind, None)

    def _read(self) -> list[tuple[tuple[RefList, ...], tuple[NameKind, ...]]]:
        if self._discover is not None:
            # Cleared first: the registry's discovery imports kinds, which register here.
            module, self._discover = self._discover, None
            importlib.import_module(module).discover()
        return list(self._by_kind.values())

    def lists(self) -> dict[str, RefList]:
        """Every registered kind's lists, by name (a list two kinds declare: once)."""
        return {r.name: r for lists, _ in self._read() for r in lists}

    def names(self) -> dict[str, NameKind]:
        """Every registered kind's kinds of names, by alias kind."""
        return {n.alias: n for _, names in self._read() for n in names}


REFERENCES = References(discover=DISCOVER)
