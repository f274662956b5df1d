# tests: tests/storage/test_db.py, tests/storage/test_muc_store.py
"""Multi-user chat (XEP-0045): persistent rooms, affiliations, room archives (XEP-0313).

Revision ID: 0007
Revises: 0004
Create Date: 2026-11-28
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ROOM_KEY = ["service", "room"]
_ROOM_REF = ["muc_rooms.service", "muc_rooms.room"]


def upgrade() -> None:
    op.create_table(
        "muc_rooms",
        sa.Column("service", sa.String(1023), nullable=False),
        sa.Column("room", sa.String(1023), nullable=False),
        sa.Column("config", sa.Text(), nullable=False),
        sa.Column("secret", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("subject_nick", sa.String(1023), nullable=False),
        sa.Column("subject_at", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("service", "room", name=op.f("pk_muc_rooms")),
    )
    op.create_table(
        "muc_affiliations",
        sa.Column("service", sa.String(1023), nullable=False),
        sa.Column("room", sa.String(1023), nullable=False),
        sa.Column("jid", sa.String(2047), nullable=False),
        sa.Column("affiliation", sa.String(7), nullable=False),
        sa.Column("nick", sa.String(1023), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("service", "room", "jid", name=op.f("pk_muc_affiliations")),
        sa.ForeignKeyConstraint(_ROOM_KEY, _ROOM_REF, name=op.f("fk_muc_affiliations_muc_rooms"),
                                ondelete="CASCADE"),
        sa.CheckConstraint("affiliation IN ('owner', 'admin', 'member', 'outcast')",
                           name=op.f("ck_muc_affiliations_affiliation")),
    )
    op.create_index(op.f("ix_muc_affiliations_jid"), "muc_affiliations", ["jid"])
    op.create_table(
        "muc_archive",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  autoincrement=True, nullable=False),
        sa.Column("service", sa.String(1023), nullable=False),
        sa.Column("room", sa.String(1023), nullable=False),
        sa.Column("stanza_id", sa.String(64), nullable=False),
        sa.Column("at", sa.Double(), nullable=False),
        sa.Column("nick", sa.String(1023), nullable=False),
        sa.Column("sender", sa.String(2047), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_muc_archive")),
        sa.ForeignKeyConstraint(_ROOM_KEY, _ROOM_REF, name=op.f("fk_muc_archive_muc_rooms"),
                                ondelete="CASCADE"),
    )
    op.create_index(op.f("ix_muc_archive_service_room_stanza_id"), "muc_archive",
                    ["service", "room", "stanza_id"], unique=True)
    op.create_index(op.f("ix_muc_archive_service_room_seq"), "muc_archive",
                    ["service", "room", "seq"])
    op.create_index(op.f("ix_muc_archive_service_room_at"), "muc_archive",
                    ["service", "room", "at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_muc_archive_service_room_at"), table_name="muc_archive")
    op.drop_index(op.f("ix_muc_archive_service_room_seq"), table_name="muc_archive")
    op.drop_index(op.f("ix_muc_archive_service_room_stanza_id"), table_name="muc_archive")
    op.drop_table("muc_archive")
    op.drop_index(op.f("ix_muc_affiliations_jid"), table_name="muc_affiliations")
    op.drop_table("muc_affiliations")
    op.drop_table("muc_rooms")
