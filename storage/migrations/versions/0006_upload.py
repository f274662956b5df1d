# tests: tests/storage/test_db.py, tests/storage/test_upload_store.py
"""XEP-0363 HTTP upload slots and files (storage/files.py).

Revision ID: 0006
Revises: 0003
Create Date: 2026-11-27
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "upload_slots",
        sa.Column("token", sa.String(64), nullable=False),
        sa.Column("host", sa.String(1023), nullable=False),
        sa.Column("username", sa.String(1023), nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("content_type", sa.String(255), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("slot_expires_at", sa.Double(), nullable=False),
        sa.Column("expires_at", sa.Double(), nullable=True),
        sa.Column("uploaded", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("token", name=op.f("pk_upload_slots")),
    )
    op.create_index(op.f("ix_upload_slots_host_username"), "upload_slots",
                    ["host", "username"])
    op.create_index(op.f("ix_upload_slots_expires_at"), "upload_slots", ["expires_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_upload_slots_expires_at"), table_name="upload_slots")
    op.drop_index(op.f("ix_upload_slots_host_username"), table_name="upload_slots")
    op.drop_table("upload_slots")
