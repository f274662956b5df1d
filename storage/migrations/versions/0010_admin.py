# tests: tests/storage/test_db.py, tests/storage/test_settings_store.py
"""Service administration (XEP-0133): the accounts' `disabled` flag, and host settings that
admins change at run time (message of the day, registration lists).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN on both databases (SQLite has it): a batch "copy and move" of
    # `accounts` would drop the table, and its ON DELETE CASCADE would take the credentials.
    op.add_column("accounts", sa.Column("disabled", sa.Boolean(), nullable=False,
                                        server_default=sa.false()))
    op.create_table(
        "host_settings",
        sa.Column("host", sa.String(1023), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("host", "name", name=op.f("pk_host_settings")),
    )


def downgrade() -> None:
    op.drop_table("host_settings")
    op.drop_column("accounts", "disabled")      # SQLite 3.35+ drops a column in place
