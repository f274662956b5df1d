# tests: tests/storage/test_db.py, tests/storage/test_offline_store.py, tests/storage/test_archive_store.py
"""Reliable messaging: offline messages (XEP-0160), message archives and their preferences
(XEP-0313, XEP-0441).

Revision ID: 0005
Revises: 0007
Create Date: 2026-11-28
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_USER = ["host", "username"]
_ACCOUNT = ["accounts.host", "accounts.username"]


def upgrade() -> None:
    op.create_table(
        "offline_messages",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  autoincrement=True, nullable=False),
        sa.Column("host", sa.String(1023), nullable=False),
        sa.Column("username", sa.String(1023), nullable=False),
        sa.Column("stored_at", sa.Double(), nullable=False),
        sa.Column("stanza", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_offline_messages")),
        sa.ForeignKeyConstraint(_USER, _ACCOUNT, name=op.f("fk_offline_messages_accounts"),
                                ondelete="CASCADE"),
    )
    op.create_index(op.f("ix_offline_messages_host_username_seq"), "offline_messages",
                    ["host", "username", "seq"])
    op.create_table(
        "archive_messages",
        sa.Column("host", sa.String(1023), nullable=False),
        sa.Column("username", sa.String(1023), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("peer", sa.String(2047), nullable=False),
        sa.Column("peer_resource", sa.String(1023), nullable=False),
        sa.Column("outgoing", sa.Boolean(), nullable=False),
        sa.Column("stanza", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("host", "username", "seq", name=op.f("pk_archive_messages")),
        sa.ForeignKeyConstraint(_USER, _ACCOUNT, name=op.f("fk_archive_messages_accounts"),
                                ondelete="CASCADE"),
    )
    op.create_index(op.f("ix_archive_messages_host_username_id"), "archive_messages",
                    ["host", "username", "id"], unique=True)
    op.create_index(op.f("ix_archive_messages_host_username_peer_seq"), "archive_messages",
                    ["host", "username", "peer", "seq"])
    op.create_index(op.f("ix_archive_messages_seq"), "archive_messages", ["seq"])
    op.create_table(
        "archive_prefs",
        sa.Column("host", sa.String(1023), nullable=False),
        sa.Column("username", sa.String(1023), nullable=False),
        sa.Column("mode", sa.String(6), nullable=False),
        sa.Column("always", sa.Text(), nullable=False),
        sa.Column("never", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("host", "username", name=op.f("pk_archive_prefs")),
        sa.ForeignKeyConstraint(_USER, _ACCOUNT, name=op.f("fk_archive_prefs_accounts"),
                                ondelete="CASCADE"),
        sa.CheckConstraint("mode IN ('always', 'roster', 'never')",
                           name=op.f("ck_archive_prefs_mode")),
    )


def downgrade() -> None:
    op.drop_table("archive_prefs")
    op.drop_index(op.f("ix_archive_messages_seq"), table_name="archive_messages")
    op.drop_index(op.f("ix_archive_messages_host_username_peer_seq"),
                  table_name="archive_messages")
    op.drop_index(op.f("ix_archive_messages_host_username_id"), table_name="archive_messages")
    op.drop_table("archive_messages")
    op.drop_index(op.f("ix_offline_messages_host_username_seq"),
                  table_name="offline_messages")
    op.drop_table("offline_messages")
