"""The desk's users and its events (#39), kept in the ledger beside what they acted on.

A user is a name, a role and an Argon2 hash of the password (never the password). Every
action on the desk is a ``desk_events`` row (who, when, what, of which subject) besides the
event the action itself writes (an item settled, a layout confirmed, a sign-off): the ledger
says who dropped each file, which is how maker-checker is enforced.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from pipelines.core.models import utcnow

if TYPE_CHECKING:
    from pipelines.ledger import Ledger

ROLES = ("clerk", "approver", "auditor")
UPLOAD = "upload"  # a file dropped on the desk: subject is its sha256


def add_user(ledger: Ledger, name: str, role: str, password_hash: str) -> bool:
    """A new user (True), or the password and role of an existing one replaced (False)."""
    with ledger.db.transaction():
        existed = user(ledger, name) is not None
        ledger.db.execute(
            "INSERT INTO desk_users(name, role, password_hash, created_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET role = excluded.role, "
            "password_hash = excluded.password_hash",
            (name, role, password_hash, utcnow()),
        )
    return not existed


def user(ledger: Ledger, name: str) -> dict[str, str] | None:
    """A user's name, role, hash and creation time, or None."""
    row = ledger.db.execute(
        "SELECT name, role, password_hash, created_at FROM desk_users WHERE name = ?", (name,)
    ).fetchone()
    if row is None:
        return None
    return {"name": row[0], "role": row[1], "password_hash": row[2], "created_at": row[3]}


def users(ledger: Ledger) -> list[dict[str, str]]:
    """Every user by name (no hashes)."""
    rows = ledger.db.execute("SELECT name, role, created_at FROM desk_users ORDER BY name")
    return [{"name": r[0], "role": r[1], "created_at": r[2]} for r in rows.fetchall()]


def remove_user(ledger: Ledger, name: str) -> bool:
    """Whether there was such a user (its past events stay)."""
    return ledger.db.execute("DELETE FROM desk_users WHERE name = ?", (name,)).rowcount > 0


def add_event(
    ledger: Ledger, by: str, action: str, subject: str, detail: dict[str, Any] | None = None
) -> str:
    """One action on the desk, as an event; returns its time."""
    at = utcnow()
    ledger.db.execute(
        "INSERT INTO desk_events(at, by_name, action, subject, detail) VALUES (?, ?, ?, ?, ?)",
        (at, by, action, subject, json.dumps(detail or {}, default=str)),
    )
    return at


def events(
    ledger: Ledger, *, action: str | None = None, subject: str | None = None
) -> list[dict[str, Any]]:
    """The desk's events, oldest first (of one action, one subject, when given)."""
    sql = "SELECT at, by_name, action, subject, detail FROM desk_events"
    where, params = [], []
    if action is not None:
        where.append("action = ?")
        params.append(action)
    if subject is not None:
        where.append("subject = ?")
        params.append(subject)
    if where:
        sql += " WHERE " + " AND ".join(where)
    rows = ledger.db.execute(sql + " ORDER BY id", params).fetchall()
    return [
        {
            "at": r[0],
            "by": r[1],
            "action": r[2],
            "subject": r[3],
            "detail": json.loads(r[4] or "{}"),
        }
        for r in rows
    ]


def dropped_by(ledger: Ledger, sha256: str) -> set[str]:
    """Who dropped a file of this content on the desk (maker-checker's makers)."""
    return {str(e["by"]) for e in events(ledger, action=UPLOAD, subject=sha256)}


def held_layouts(ledger: Ledger) -> dict[str, dict[str, Any]]:
    """The latest held use of each file's layout, by the file's sha256 (its preview parsed)."""
    rows = ledger.db.execute(
        "SELECT sha256, name, run_id, preview, at FROM layout_uses WHERE held = 1 ORDER BY id"
    ).fetchall()
    return {
        str(r[0]): {"name": r[1], "run_id": r[2], "preview": json.loads(r[3]), "at": r[4]}
        for r in rows
    }


def periods(ledger: Ledger) -> list[str]:
    """The billing periods (YYYY-MM) files were taken in for, newest first."""
    rows = ledger.db.execute(
        "SELECT DISTINCT period FROM files WHERE period IS NOT NULL ORDER BY period DESC"
    ).fetchall()
    return list(dict.fromkeys(str(r[0])[:7] for r in rows if r[0]))  # its first day → YYYY-MM
