"""What the inbox holds that no run can take, and what a refused file says it is worth, as open
items (#36): a link the run refuses, an empty file left past the settle time, the amount a
refused file states for itself (its own total row).

Composers' helpers: the items are built here, observed by the run (`runs/pipeline.py`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

from pipelines.core.config import Settings
from pipelines.core.errors import TieoutError
from pipelines.core.hints import AliasHints
from pipelines.core.models import OpenItem, SourceFile, printable
from pipelines.reading.extract import extract_file
from pipelines.reading.grids import Limits
from pipelines.reading.profiles import Profile, profile_for_file
from pipelines.reporting.report import stated_total
from pipelines.runs.items import new_item


def inbox_items(
    links: Iterable[Path], busy: Iterable[Path], settle_s: float, now: float | None = None
) -> list[OpenItem]:
    """The inbox's refused links, and its empty files that have stayed unchanged for the settle
    time (one still being written is left alone), as items keyed by their name in the inbox."""
    now = time.time() if now is None else now
    items = [
        new_item(
            "refused_link",
            None,
            printable(path.name),
            str(path),
            detail={"path": str(path), "reason": "a link to a file outside the inbox, not read"},
        )
        for path in links
    ]
    for path in busy:
        try:
            stat = path.stat()
        except OSError:
            continue  # gone meanwhile
        if stat.st_size == 0 and now - stat.st_mtime >= settle_s:
            items.append(
                new_item(
                    "empty_file",
                    None,
                    printable(path.name),
                    str(path),
                    detail={
                        "path": str(path),
                        "reason": f"empty for {now - stat.st_mtime:.0f}s: nothing to read",
                    },
                )
            )
    return items


def stated_of(source: SourceFile, profiles: list[Profile], settings: Settings) -> int | None:
    """What a file refused as a whole says it holds: its own total row (None without one, or
    when nothing of it can be read as a table)."""
    try:
        extract = extract_file(
            source,
            profiles,
            profile_name=profile_for_file(settings, profiles, source.name),
            limits=Limits(
                max_file_bytes=int(settings.max_file_mb * 2**20), max_rows=settings.max_rows
            ),
            hints=AliasHints(settings.data_dir),
        )
    except (TieoutError, OSError, ValueError):
        return None
    return stated_total(list(extract.file_totals))
