# tests: tests/storage/test_db.py
"""Per-user key-value documents (vCard, private XML, blocking list) and last activity.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "kv_items",
        sa.Column("host", sa.String(1023), nullable=False),
        sa.Column("username", sa.String(1023), nullable=False),
        sa.Column("namespace", sa.String(255), nullable=False),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("host", "username", "namespace", name=op.f("pk_kv_items")),
        sa.ForeignKeyConstraint(
            ["host", "username"], ["accounts.host", "accounts.username"],
            name=op.f("fk_kv_items_accounts"), ondelete="CASCADE"),
    )
    op.create_table(
        "last_activity",
        sa.Column("host", sa.String(1023), nullable=False),
        sa.Column("username", sa.String(1023), nullable=False),
        sa.Column("seen_at", sa.Double(), nullable=False),
        sa.Column("status", sa.String(4096), nullable=False),
        sa.PrimaryKeyConstraint("host", "username", name=op.f("pk_last_activity")),
        sa.ForeignKeyConstraint(
            ["host", "username"], ["accounts.host", "accounts.username"],
            name=op.f("fk_last_activity_accounts"), ondelete="CASCADE"),
    )


def downgrade() -> None:
    op.drop_table("last_activity")
    op.drop_table("kv_items")
