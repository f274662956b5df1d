# tests: tests/storage/test_db.py, tests/storage/test_pubsub_store.py
"""Personal eventing (XEP-0163): pubsub nodes, items and explicit subscriptions.

Revision ID: 0004
Revises: 0006
Create Date: 2026-11-28
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NODE_KEY = ["host", "username", "node"]
_NODE_REF = ["pubsub_nodes.host", "pubsub_nodes.username", "pubsub_nodes.node"]


def upgrade() -> None:
    op.create_table(
        "pubsub_nodes",
        sa.Column("host", sa.String(1023), nullable=False),
        sa.Column("username", sa.String(1023), nullable=False),
        sa.Column("node", sa.String(255), nullable=False),
        sa.Column("config", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("last_seq", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("host", "username", "node", name=op.f("pk_pubsub_nodes")),
        sa.ForeignKeyConstraint(
            ["host", "username"], ["accounts.host", "accounts.username"],
            name=op.f("fk_pubsub_nodes_accounts"), ondelete="CASCADE"),
    )
    op.create_table(
        "pubsub_items",
        sa.Column("host", sa.String(1023), nullable=False),
        sa.Column("username", sa.String(1023), nullable=False),
        sa.Column("node", sa.String(255), nullable=False),
        sa.Column("item_id", sa.String(1023), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("publisher", sa.String(3071), nullable=False),
        sa.Column("published_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("host", "username", "node", "item_id",
                                name=op.f("pk_pubsub_items")),
        sa.ForeignKeyConstraint(_NODE_KEY, _NODE_REF, name=op.f("fk_pubsub_items_pubsub_nodes"),
                                ondelete="CASCADE"),
    )
    op.create_index(op.f("ix_pubsub_items_host_username_node_seq"), "pubsub_items",
                    ["host", "username", "node", "seq"])
    op.create_table(
        "pubsub_subscriptions",
        sa.Column("host", sa.String(1023), nullable=False),
        sa.Column("username", sa.String(1023), nullable=False),
        sa.Column("node", sa.String(255), nullable=False),
        sa.Column("subscriber", sa.String(3071), nullable=False),
        sa.Column("subscriber_bare", sa.String(2047), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("host", "username", "node", "subscriber",
                                name=op.f("pk_pubsub_subscriptions")),
        sa.ForeignKeyConstraint(_NODE_KEY, _NODE_REF,
                                name=op.f("fk_pubsub_subscriptions_pubsub_nodes"),
                                ondelete="CASCADE"),
    )
    op.create_index(op.f("ix_pubsub_subscriptions_subscriber_bare"), "pubsub_subscriptions",
                    ["subscriber_bare"])


def downgrade() -> None:
    op.drop_index(op.f("ix_pubsub_subscriptions_subscriber_bare"),
                  table_name="pubsub_subscriptions")
    op.drop_table("pubsub_subscriptions")
    op.drop_index(op.f("ix_pubsub_items_host_username_node_seq"), table_name="pubsub_items")
    op.drop_table("pubsub_items")
    op.drop_table("pubsub_nodes")
