# tests: tests/storage/test_db.py, tests/storage/test_fast_store.py, tests/storage/test_push_store.py, tests/storage/test_invite_store.py
"""Tables of the mobile features: FAST tokens (XEP-0484), push registrations (XEP-0357) and
invitations (XEP-0401, XEP-0445). Part of the one schema in `storage/models/__init__.py`."""
from __future__ import annotations

from sqlalchemy import (
    Column,
    Double,
    ForeignKeyConstraint,
    Index,
    LargeBinary,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

from storage.models.base import JID_PART, metadata

# XEP-0484 §6: at most two tokens per (account, client): 'new' (issued, not used yet) and
# 'current' (the last one used). `key` is SHA-256 of the token (storage/fast.py says why).
fast_tokens = Table(
    "fast_tokens",
    metadata,
    Column("host", String(JID_PART), nullable=False),
    Column("username", String(JID_PART), nullable=False),
    Column("client_id", String(64), nullable=False),     # XEP-0388 <user-agent id/>
    Column("slot", String(7), nullable=False),           # "new" or "current"
    Column("key", LargeBinary, nullable=False),
    Column("mechanism", String(20), nullable=False),     # e.g. "HT-SHA-256-EXPR"
    Column("issued_at", Double, nullable=False),         # POSIX seconds
    Column("expires_at", Double, nullable=False),
    Column("device", String(255), nullable=False),       # <software/> / <device/>, for lists
    PrimaryKeyConstraint("host", "username", "client_id", "slot"),
    ForeignKeyConstraint(
        ["host", "username"], ["accounts.host", "accounts.username"], ondelete="CASCADE"
    ),
    Index(None, "expires_at"),
)

# XEP-0357: where to send a user's push notifications. `options` is the JSON of the
# publish-options form's fields ({var: [values]}: the app server's secret).
push_registrations = Table(
    "push_registrations",
    metadata,
    Column("host", String(JID_PART), nullable=False),
    Column("username", String(JID_PART), nullable=False),
    Column("service", String(3 * JID_PART + 2), nullable=False),  # the app server's JID
    Column("node", String(JID_PART), nullable=False),
    Column("options", Text, nullable=False),
    Column("created_at", Double, nullable=False),
    PrimaryKeyConstraint("host", "username", "service", "node"),
    ForeignKeyConstraint(
        ["host", "username"], ["accounts.host", "accounts.username"], ondelete="CASCADE"
    ),
)

# XEP-0401 / XEP-0445 invitations: a single-use token that lets someone register. kind
# "roster" (a user's invitation: register, and become the inviter's contact) or "account"
# (an admin's: register `username`, reserved until the token expires). `inviter` is a bare
# JID, "" for the server's admin.
invites = Table(
    "invites",
    metadata,
    Column("token", String(64), nullable=False),
    Column("host", String(JID_PART), nullable=False),
    Column("kind", String(7), nullable=False),
    Column("inviter", String(2 * JID_PART + 1), nullable=False),
    Column("username", String(JID_PART), nullable=False),    # "" = the invitee chooses
    Column("created_at", Double, nullable=False),
    Column("expires_at", Double, nullable=False),
    Column("used_at", Double, nullable=True),
    Column("used_by", String(JID_PART), nullable=True),
    PrimaryKeyConstraint("token"),
    Index(None, "host", "username"),
    Index(None, "expires_at"),
)
