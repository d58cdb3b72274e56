"""Webhook deliveries by the sha256 of their body: a redelivery is recorded once (#30).

Revision ID: 0004_intake
Revises: 0003_signoffs
"""

from __future__ import annotations

from alembic import op

revision = "0004_intake"
down_revision = "0003_signoffs"
branch_labels = None
depends_on = None

# Frozen here: this revision's DDL, whatever the live schema becomes.
WEBHOOK_DELIVERIES = """
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    digest TEXT PRIMARY KEY,
    recorded_at TEXT NOT NULL,
    last_at TEXT NOT NULL,
    deliveries INTEGER NOT NULL DEFAULT 1
);
"""


def upgrade() -> None:
    ddl = WEBHOOK_DELIVERIES
    if op.get_bind().dialect.name == "postgresql":
        ddl = ddl.replace("INTEGER", "BIGINT")  # the ledger's integers are 64-bit there
    op.execute(ddl)


def downgrade() -> None:
    op.execute("DROP TABLE webhook_deliveries")
