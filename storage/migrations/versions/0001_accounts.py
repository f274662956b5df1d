# tests: tests/storage/test_db.py, tests/storage/test_accounts_store.py
"""Accounts and their SCRAM credentials.

Revision ID: 0001
Revises:
Create Date: 2025-11-27
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("host", sa.String(1023), nullable=False),
        sa.Column("username", sa.String(1023), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("host", "username", name=op.f("pk_accounts")),
    )
    op.create_table(
        "account_credentials",
        sa.Column("host", sa.String(1023), nullable=False),
        sa.Column("username", sa.String(1023), nullable=False),
        sa.Column("mechanism", sa.String(32), nullable=False),
        sa.Column("salt", sa.LargeBinary(), nullable=False),
        sa.Column("iterations", sa.Integer(), nullable=False),
        sa.Column("stored_key", sa.LargeBinary(), nullable=False),
        sa.Column("server_key", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("host", "username", "mechanism", name=op.f("pk_account_credentials")),
        sa.ForeignKeyConstraint(
            ["host", "username"],
            ["accounts.host", "accounts.username"],
            name=op.f("fk_account_credentials_accounts"),
            ondelete="CASCADE",
        ),
        sa.CheckConstraint("iterations > 0", name=op.f("ck_account_credentials_iterations_positive")),
    )


def downgrade() -> None:
    op.drop_table("account_credentials")
    op.drop_table("accounts")
