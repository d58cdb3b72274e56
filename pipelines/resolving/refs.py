"""Reference data: the Propexo lists that spreadsheet names are resolved against.

Fetching is I/O and lives here; matching is pure and lives in :mod:`pipelines.resolving.transform`.
Propexo has no name search, so each list is paged to the end and matched locally.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

import pandas as pd

from pipelines.core.columns import normalize_header
from pipelines.core.errors import ApiError, ConfigError
from pipelines.core.hints import AliasHints
from pipelines.core.record_columns import Listed
from pipelines.core.references import REFERENCES, SHARED_LISTS
from pipelines.posting.propexo import PropexoClient
from schemas import ContractError, conforms


@dataclass(frozen=True, init=False)
class RefData:
    """Lookup frames for one integration (one row per Propexo record): the lists every kind
    shares, and each registered kind's own (``Kind.ref_lists``) by name in ``lists``, read
    and given as attributes too (``refs.vendors``, ``replace(refs, vendors=...)``)."""

    locations: pd.DataFrame
    properties: pd.DataFrame
    units: pd.DataFrame
    residents: pd.DataFrame
    leases: pd.DataFrame
    aliases: dict[str, pd.DataFrame]
    # Where the aliases were read from, for hints that name the real folder.
    hints: AliasHints = field(default_factory=AliasHints)
    lists: dict[str, pd.DataFrame] = field(default_factory=dict)

    def __init__(
        self,
        locations: pd.DataFrame,
        properties: pd.DataFrame,
        units: pd.DataFrame,
        residents: pd.DataFrame,
        leases: pd.DataFrame,
        aliases: dict[str, pd.DataFrame],
        hints: AliasHints | None = None,
        lists: dict[str, pd.DataFrame] | None = None,
        **more: pd.DataFrame,
    ) -> None:
        given = {
            "locations": locations,
            "properties": properties,
            "units": units,
            "residents": residents,
            "leases": leases,
            "aliases": aliases,
            "hints": hints or AliasHints(),
            "lists": {**(lists or {}), **more},  # a kind's list given by name: in ``lists``
        }
        for name, value in given.items():
            object.__setattr__(self, name, value)

    def __getattr__(self, name: str) -> pd.DataFrame:
        """A kind's list by its name (only called for what is not a field)."""
        lists = self.__dict__.get("lists", {})
        if name in lists:
            return cast(pd.DataFrame, lists[name])
        raise AttributeError(f"no reference list {name!r}; known: {sorted(lists)}")


def _frame(records: list[dict[str, Any]], columns: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(records) if records else pd.DataFrame()
    for column in columns:
        if column not in frame:
            frame[column] = None
    return frame[columns].astype(object)


def _with_location(frame: pd.DataFrame, locations: pd.DataFrame) -> pd.DataFrame:
    """RM location-level records carry the *external* x_location_id; add the Propexo location_id."""
    by_x = dict(zip(locations["x_id"].astype(str), locations["id"], strict=True))
    out = frame.copy()
    out["location_id"] = out["x_location_id"].astype(str).map(by_x)
    return out


_PATHS = {
    "units": "/v1/units/",
    "residents": "/v1/residents/",
    "leases": "/v1/leases/",
}
# Every list, the registered kinds' included, read when used (`tieout refs show KIND`).
REF_KINDS = Listed(lambda: (*SHARED_LISTS, *REFERENCES.lists()))
RefLists = dict[str, list[dict[str, Any]]]


def fetch_reference_lists(client: PropexoClient, integration_id: str) -> RefLists:
    """Page through every list the transform needs for one integration (the I/O half)."""
    params = {"integration_id": integration_id}
    lists: RefLists = {"locations": client.list_all("/v1/locations/rentmanager/", params)}
    if not lists["locations"]:
        raise ConfigError(
            f"Propexo shows no Rent Manager locations for integration {integration_id!r}: the "
            "integration id is wrong, or the integration has no locations enabled. Check "
            "integration_id (PROPEXO_INTEGRATION_ID) and the token's account"
        )
    # The property record has no location field: ask per location, as Propexo suggests.
    lists["properties"] = [
        {**record, "location_id": location["id"]}
        for location in lists["locations"]
        for record in client.list_all("/v1/properties/", {**params, "location_id": location["id"]})
    ]
    paths = _PATHS | {name: ref.path for name, ref in REFERENCES.lists().items()}
    for kind, path in paths.items():
        lists[kind] = client.list_all(path, params)
    return lists


def missing_lists(lists: RefLists) -> list[str]:
    """The registered kinds' lists a cached set lacks (a kind installed since it was fetched)."""
    return [name for name in REF_KINDS if name not in lists]


def build_reference_data(
    lists: RefLists, aliases: dict[str, pd.DataFrame], hints: AliasHints | None = None
) -> RefData:
    """Lookup frames from the raw lists (the pure half); ``aliases`` as read by
    :func:`pipelines.resolving.aliases.read_aliases`. A kind's list the raw lists lack is
    empty."""
    locations = _frame(lists["locations"], ["id", "x_id", "name"])
    lease_rows = [
        {
            "lease_id": lease["id"],
            "unit_id": lease.get("unit_id"),
            "property_id": lease.get("property_id"),
            "status": lease.get("status_normalized"),
            "start_date": lease.get("start_date"),
            "end_date": lease.get("end_date"),
            "resident_id": member.get("resident_id"),
            "move_out_date": member.get("move_out_date"),
        }
        for lease in lists["leases"]
        for member in (lease.get("residents_meta_data") or [])
    ]
    own: dict[str, pd.DataFrame] = {}
    for name, ref in REFERENCES.lists().items():
        frame = _frame(lists.get(name, []), list(ref.columns))
        own[name] = _with_location(frame, locations) if ref.per_location else frame
    return RefData(
        locations=locations,
        properties=_frame(lists["properties"], ["id", "name", "code", "location_id"]),
        units=_frame(lists["units"], ["id", "number", "property_id"]),
        residents=_frame(lists["residents"], ["id", "first_name", "last_name", "property_id"]),
        leases=_frame(
            lease_rows,
            [
                "lease_id",
                "unit_id",
                "property_id",
                "status",
                "start_date",
                "end_date",
                "resident_id",
                "move_out_date",
            ],
        ),
        aliases=aliases,
        hints=hints or AliasHints(),
        lists=own,
    )


def fetch_reference_data(client: PropexoClient, integration_id: str) -> RefData:
    """Fetch and build in one step (no cache, no aliases)."""
    return build_reference_data(fetch_reference_lists(client, integration_id), {})


# --- synced records, for reconcile ---------------------------------------------------------------


def synced_frame(records: list[dict[str, Any]], columns: list[str], model: Any) -> pd.DataFrame:
    """Propexo's records as a frame, checked against the shape its docs give them: an answer
    unlike it stops here with one message, not as a wrong match later."""
    frame = _frame(records, columns)
    try:
        conforms(model, frame, "records Propexo returned")
    except ContractError as exc:
        raise ApiError(f"{exc}; nothing was matched or changed") from None
    return frame


def fetch_synced(
    client: PropexoClient, path: str, model: Any, integration_id: str, **filters: str
) -> pd.DataFrame:
    """One kind's records in Propexo's cache (every page, oldest first), as a frame of its read
    model's columns, checked against it (:func:`synced_frame`); ``filters`` narrow the list."""
    params: dict[str, Any] = {
        "integration_id": integration_id,
        "order-by": "created_at:asc",
        **filters,
    }
    return synced_frame(client.list_all(path, params), list(model.to_schema().columns), model)


def newest_stamp(frame: pd.DataFrame, column: str) -> str | None:
    if column not in frame or frame.empty:
        return None
    stamps = pd.to_datetime(frame[column], utc=True, errors="coerce").dropna()
    return stamps.max().strftime("%Y-%m-%dT%H:%M:%S.%fZ") if not stamps.empty else None


def charge_code_names(refs: RefData | None) -> frozenset[str]:
    """Normalized names of Propexo's charge codes (name and code) and of their aliases in
    <data_dir>/mappings/charge_codes.csv: a column so headed is a charge column (online only)."""
    if refs is None:
        return frozenset()
    names: set[str] = set()
    codes = refs.charge_codes
    for column in ("name", "code", "x_id"):
        if column in codes:
            names.update(normalize_header(v) for v in codes[column].dropna().astype(str))
    alias = refs.aliases.get("charge_codes")
    if alias is not None:
        names.update(normalize_header(v) for v in alias["spreadsheet_name"].astype(str))
    return frozenset(n for n in names if n)
