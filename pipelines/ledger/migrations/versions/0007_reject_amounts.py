"""Rejected rows' amounts in cents, so the Rejected sheet foots (#28).

Revision ID: 0007_reject_amounts
Revises: 0006_open_items
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_reject_amounts"
down_revision = "0006_open_items"
branch_labels = None
depends_on = None

# Frozen here as of this revision: the row's amount as tieout read it (None when unreadable).
TABLE, COLUMN, KIND = "rejects", "amount_cents", "INTEGER"


def upgrade() -> None:
    # A SQLite ledger opened by a newer tieout may hold the column already (added in place).
    present = {c["name"] for c in sa.inspect(op.get_bind()).get_columns(TABLE)}
    if COLUMN not in present:
        # PostgreSQL's ledger keeps whole numbers as BIGINT (schema.dialect_ddl).
        kind = "BIGINT" if op.get_bind().dialect.name == "postgresql" else KIND
        op.execute(f"ALTER TABLE {TABLE} ADD COLUMN {COLUMN} {kind}")


def downgrade() -> None:
    op.execute(f"ALTER TABLE {TABLE} DROP COLUMN {COLUMN}")
