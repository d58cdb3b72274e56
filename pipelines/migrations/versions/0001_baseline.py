"""The ledger as of tieout 2026-11-24: every table, index and column.

Idempotent, so a ledger created before migrations existed (its tables made by `CREATE TABLE
IF NOT EXISTS` and columns added on open) is brought to this revision by running it.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from pipelines.ledger.schema import ADDED_COLUMNS, SCHEMA, postgres_schema

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    ddl = postgres_schema() if bind.dialect.name == "postgresql" else SCHEMA
    for statement in ddl.split(";"):
        if statement.strip():
            op.execute(statement)
    inspector = sa.inspect(bind)
    for table, column, kind in ADDED_COLUMNS:
        if column not in {c["name"] for c in inspector.get_columns(table)}:
            op.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")


def downgrade() -> None:
    raise NotImplementedError("the baseline is not undone: move the ledger aside instead")
