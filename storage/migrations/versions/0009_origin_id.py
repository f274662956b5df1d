# tests: tests/storage/test_db.py, tests/storage/test_archive_store.py
"""XEP-0359 origin-ids of archived outgoing messages, so a message a client sends again after a
restart (its XEP-0198 ack was lost with the server) is recognised and not delivered twice.

Revision ID: 0009
Revises: 0005
Create Date: 2026-12-02
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("archive_messages", sa.Column("origin_id", sa.String(128), nullable=True))
    op.create_index("ix_archive_messages_origin", "archive_messages",
                    ["host", "username", "origin_id"])


def downgrade() -> None:
    op.drop_index("ix_archive_messages_origin", "archive_messages")
    op.drop_column("archive_messages", "origin_id")
