"""The ledger's schema migrations (Alembic), for SQLite and PostgreSQL alike.

A new ledger is created by upgrading an empty database to the newest revision; an existing
one opens only at exactly the revision this tieout knows (older: `tieout ledger migrate`;
newer: it was written by a newer tieout). Revisions live in ``versions/``.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine

from pipelines.core.config import SQLITE_PREFIX

HERE = Path(__file__).resolve().parent


def config() -> Config:
    settings = Config()
    settings.set_main_option("script_location", str(HERE))
    settings.set_main_option("path_separator", "os")
    return settings


def head() -> str:
    """The newest revision this tieout knows."""
    found = ScriptDirectory.from_config(config()).get_current_head()
    if found is None:  # pragma: no cover - the package always ships a revision
        raise RuntimeError("no ledger migrations are packaged")
    return found


def known(revision: str) -> bool:
    """Whether a revision is one of this tieout's (an unknown one is a newer tieout's)."""
    script = ScriptDirectory.from_config(config())
    return any(r.revision == revision for r in script.walk_revisions())


def sqlalchemy_url(url: str) -> str:
    """A ledger URL as SQLAlchemy names it (psycopg 3 for PostgreSQL)."""
    if url.startswith(SQLITE_PREFIX):
        return url
    return "postgresql+psycopg://" + url.split("://", 1)[1]


def upgrade(url: str) -> None:
    """Bring the ledger at ``url`` to the newest revision, in one transaction."""
    engine = create_engine(sqlalchemy_url(url))
    try:
        with engine.begin() as connection:
            settings = config()
            settings.attributes["connection"] = connection
            command.upgrade(settings, "head")
    finally:
        engine.dispose()
