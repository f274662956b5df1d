# tests: tests/storage/test_db.py, tests/storage/test_fast_store.py, tests/storage/test_push_store.py, tests/storage/test_invite_store.py
"""FAST tokens (XEP-0484), push registrations (XEP-0357), invitations (XEP-0401/0445).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _owner() -> list[sa.Column[str]]:
    return [sa.Column("host", sa.String(1023), nullable=False),
            sa.Column("username", sa.String(1023), nullable=False)]


def upgrade() -> None:
    op.create_table(
        "fast_tokens",
        *_owner(),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("slot", sa.String(7), nullable=False),
        sa.Column("key", sa.LargeBinary(), nullable=False),
        sa.Column("mechanism", sa.String(20), nullable=False),
        sa.Column("issued_at", sa.Double(), nullable=False),
        sa.Column("expires_at", sa.Double(), nullable=False),
        sa.Column("device", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint("host", "username", "client_id", "slot",
                                name=op.f("pk_fast_tokens")),
        sa.ForeignKeyConstraint(["host", "username"], ["accounts.host", "accounts.username"],
                                name=op.f("fk_fast_tokens_accounts"), ondelete="CASCADE"),
    )
    op.create_index(op.f("ix_fast_tokens_expires_at"), "fast_tokens", ["expires_at"])
    op.create_table(
        "push_registrations",
        *_owner(),
        sa.Column("service", sa.String(3071), nullable=False),
        sa.Column("node", sa.String(1023), nullable=False),
        sa.Column("options", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("host", "username", "service", "node",
                                name=op.f("pk_push_registrations")),
        sa.ForeignKeyConstraint(["host", "username"], ["accounts.host", "accounts.username"],
                                name=op.f("fk_push_registrations_accounts"), ondelete="CASCADE"),
    )
    op.create_table(
        "invites",
        sa.Column("token", sa.String(64), nullable=False),
        sa.Column("host", sa.String(1023), nullable=False),
        sa.Column("kind", sa.String(7), nullable=False),
        sa.Column("inviter", sa.String(2047), nullable=False),
        sa.Column("username", sa.String(1023), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("expires_at", sa.Double(), nullable=False),
        sa.Column("used_at", sa.Double(), nullable=True),
        sa.Column("used_by", sa.String(1023), nullable=True),
        sa.PrimaryKeyConstraint("token", name=op.f("pk_invites")),
    )
    op.create_index(op.f("ix_invites_host_username"), "invites", ["host", "username"])
    op.create_index(op.f("ix_invites_expires_at"), "invites", ["expires_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_invites_expires_at"), table_name="invites")
    op.drop_index(op.f("ix_invites_host_username"), table_name="invites")
    op.drop_table("invites")
    op.drop_table("push_registrations")
    op.drop_index(op.f("ix_fast_tokens_expires_at"), table_name="fast_tokens")
    op.drop_table("fast_tokens")
