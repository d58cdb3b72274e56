"""Layouts a person confirmed, and which layout each file of each run was read in."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from pipelines.core.models import utcnow
from pipelines.ledger.database import Database


class LayoutStore:
    """The ``layouts`` and ``layout_uses`` tables."""

    db: Database

    def confirm_layout(
        self, facts: dict[str, Any], header_key: str, by: str, from_file: str, from_sha256: str
    ) -> tuple[int, bool]:
        """Keep a layout a person confirmed: (its id, whether it is new). A layout already
        confirmed keeps its first confirmation."""
        known = self.confirmed_layout(str(facts["fingerprint"]))
        if known is not None:
            return int(known["id"]), False
        with self.db.transaction():
            self.db.execute(
                "INSERT INTO layouts(fingerprint, header_key, profile, kind, facts, "
                "confirmed_by, confirmed_at, from_file, from_sha256) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    facts["fingerprint"],
                    header_key,
                    facts["profile"],
                    facts["kind"],
                    json.dumps(facts),
                    by,
                    utcnow(),
                    from_file,
                    from_sha256,
                ),
            )
            row = self.db.execute(
                "SELECT MAX(id) FROM layouts WHERE fingerprint = ? AND forgotten_at IS NULL",
                (facts["fingerprint"],),
            ).fetchone()
        return int(row[0]), True

    def confirmed_layout(self, fingerprint: str) -> dict[str, Any] | None:
        """The standing confirmation of a layout, if a person gave one."""
        frame = self.db.read_frame(
            "SELECT * FROM layouts WHERE fingerprint = ? AND forgotten_at IS NULL ORDER BY id",
            (fingerprint,),
        )
        return {str(k): v for k, v in frame.iloc[0].to_dict().items()} if len(frame) else None

    def layout_by_id(self, layout_id: int) -> dict[str, Any] | None:
        """One standing confirmation by its id, its ``facts`` read back as data (a layout
        confirmed from a proposal keeps the profile it became there: ``profile_toml``)."""
        frame = self.db.read_frame(
            "SELECT * FROM layouts WHERE id = ? AND forgotten_at IS NULL", (layout_id,)
        )
        if not len(frame):
            return None
        row = {str(k): v for k, v in frame.iloc[0].to_dict().items()}
        row["facts"] = json.loads(str(row["facts"])) if row.get("facts") else {}
        return row

    def confirmed_layouts(self) -> pd.DataFrame:
        """Every standing confirmation, oldest first."""
        return self.db.read_frame("SELECT * FROM layouts WHERE forgotten_at IS NULL ORDER BY id")

    def confirmed_profiles(self) -> dict[str, str]:
        """Header key → profile of each standing confirmation (the newest wins)."""
        frame = self.confirmed_layouts()
        return {str(k): str(v) for k, v in zip(frame["header_key"], frame["profile"], strict=True)}

    def layouts_stamp(self) -> tuple[int, int, int]:
        """Changes whenever a layout is confirmed or forgotten (what `watch` waits for before
        it takes a held file again)."""
        row = self.db.execute(
            "SELECT COUNT(*), COALESCE(MAX(id), 0), COUNT(forgotten_at) FROM layouts"
        ).fetchone()
        return int(row[0]), int(row[1]), int(row[2])

    def forget_layout(self, layout_id: int) -> bool:
        """Withdraw a confirmation (kept, marked forgotten); False when there is none."""
        with self.db.transaction():
            found = self.db.execute(
                "SELECT id FROM layouts WHERE id = ? AND forgotten_at IS NULL", (layout_id,)
            ).fetchone()
            if found is None:
                return False
            self.db.execute(
                "UPDATE layouts SET forgotten_at = ? WHERE id = ?", (utcnow(), layout_id)
            )
        return True

    def record_layout_use(
        self,
        run_id: str,
        sha256: str,
        name: str,
        preview: dict[str, Any],
        *,
        held: bool,
        layout_id: int | None = None,
        confirmed_by: str | None = None,
    ) -> None:
        """A file's layout in a run: used (confirmed by whom) or held for a person."""
        self.db.execute(
            "INSERT INTO layout_uses(run_id, sha256, name, fingerprint, layout_id, confirmed_by, "
            "held, preview, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                run_id,
                sha256,
                name,
                preview["layout"]["fingerprint"],
                layout_id,
                confirmed_by,
                int(held),
                json.dumps(preview, default=str),
                utcnow(),
            ),
        )

    def layout_uses(self, run_id: str) -> pd.DataFrame:
        return self.db.read_frame(
            "SELECT * FROM layout_uses WHERE run_id = ? ORDER BY id", (run_id,)
        )
