# tests: tests/storage/test_db.py, tests/storage/test_roster_store.py
"""Rosters (RFC 6121 §2, §3) and roster versions (XEP-0237).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "roster_items",
        sa.Column("host", sa.String(1023), nullable=False),
        sa.Column("username", sa.String(1023), nullable=False),
        sa.Column("contact", sa.String(2047), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("groups", sa.Text(), nullable=False),
        sa.Column("subscription", sa.String(4), nullable=False),
        sa.Column("ask", sa.Boolean(), nullable=False),
        sa.Column("pending_in", sa.Boolean(), nullable=False),
        sa.Column("approved", sa.Boolean(), nullable=False),
        sa.Column("listed", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("host", "username", "contact", name=op.f("pk_roster_items")),
        sa.ForeignKeyConstraint(
            ["host", "username"], ["accounts.host", "accounts.username"],
            name=op.f("fk_roster_items_accounts"), ondelete="CASCADE"),
        sa.CheckConstraint("subscription IN ('none', 'to', 'from', 'both')",
                           name=op.f("ck_roster_items_subscription")),
    )
    op.create_index(op.f("ix_roster_items_contact"), "roster_items", ["contact"])
    op.create_table(
        "roster_versions",
        sa.Column("host", sa.String(1023), nullable=False),
        sa.Column("username", sa.String(1023), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("host", "username", name=op.f("pk_roster_versions")),
        sa.ForeignKeyConstraint(
            ["host", "username"], ["accounts.host", "accounts.username"],
            name=op.f("fk_roster_versions_accounts"), ondelete="CASCADE"),
    )


def downgrade() -> None:
    op.drop_table("roster_versions")
    op.drop_index(op.f("ix_roster_items_contact"), table_name="roster_items")
    op.drop_table("roster_items")
