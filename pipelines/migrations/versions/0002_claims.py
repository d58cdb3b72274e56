"""Claims: which worker has a dropped file, so workers on several hosts share one inbox (#18).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

from pipelines.ledger.schema import CLAIMS

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(CLAIMS)


def downgrade() -> None:
    op.execute("DROP TABLE claims")
