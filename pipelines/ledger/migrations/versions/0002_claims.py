"""Claims: which worker has a dropped file, so workers on several hosts share one inbox (#18).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

CLAIMS = """
CREATE TABLE IF NOT EXISTS claims (
    sha256 TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    claimed_by TEXT,
    claimed_at TEXT,
    finished_at TEXT
);
"""  # frozen: this revision's own DDL, not the live schema's

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(CLAIMS)


def downgrade() -> None:
    op.execute("DROP TABLE claims")
