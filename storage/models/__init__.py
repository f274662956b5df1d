# tests: tests/storage/test_db.py
"""The database schema as SQLAlchemy Core tables: the one source the migrations must match.

Every schema change is an Alembic revision in `storage/migrations/versions/`; the test
`test_migrations_match_models` fails when this metadata and `upgrade head` disagree, on SQLite
and PostgreSQL alike. Constraint names follow `metadata.naming_convention`, so migrations can
name (and later drop) them identically on both backends.

Users are keyed by (host, username) strings, as ejabberd and Prosody key theirs, so feature
tables need no join through a surrogate id. Usernames and hosts are stored already normalised
(nodeprep/nameprep, RFC 6122); each part of a JID is at most 1023 bytes (RFC 7622 §3.3.1, §3.2).
"""
from __future__ import annotations

from sqlalchemy import (
    false,
    BigInteger,
    CheckConstraint,
    Boolean,
    Column,
    Double,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

from storage.models.base import JID_PART, metadata   # shared with storage/models/mobile.py

accounts = Table(
    "accounts",
    metadata,
    Column("host", String(JID_PART), nullable=False),
    Column("username", String(JID_PART), nullable=False),
    Column("created_at", Double, nullable=False),  # POSIX seconds
    # XEP-0133 §4.3 "disable user": no login until re-enabled; the account's data stays.
    Column("disabled", Boolean, nullable=False, server_default=false()),
    # The primary key is the uniqueness rule "one username per host"; concurrent sign-ups of the
    # same name race on it and exactly one wins. Host first: per-host listing and counting use it.
    PrimaryKeyConstraint("host", "username"),
)

account_credentials = Table(
    "account_credentials",
    metadata,
    Column("host", String(JID_PART), nullable=False),
    Column("username", String(JID_PART), nullable=False),
    Column("mechanism", String(32), nullable=False),  # "SCRAM-SHA-1", "SCRAM-SHA-256"
    # RFC 5802 §3: what the server keeps instead of the password.
    Column("salt", LargeBinary, nullable=False),
    Column("iterations", Integer, nullable=False),
    Column("stored_key", LargeBinary, nullable=False),
    Column("server_key", LargeBinary, nullable=False),
    PrimaryKeyConstraint("host", "username", "mechanism"),
    ForeignKeyConstraint(
        ["host", "username"], ["accounts.host", "accounts.username"], ondelete="CASCADE"
    ),
    CheckConstraint("iterations > 0", name="iterations_positive"),
)

# Small per-user documents kept whole (STYLE §5 KeyValueStore): vCard (vcard-temp), private XML
# (XEP-0049), blocking lists (XEP-0191), preferences. One row per (user, namespace).
kv_items = Table(
    "kv_items",
    metadata,
    Column("host", String(JID_PART), nullable=False),
    Column("username", String(JID_PART), nullable=False),
    Column("namespace", String(255), nullable=False),
    Column("value", LargeBinary, nullable=False),
    Column("updated_at", Double, nullable=False),  # POSIX seconds
    PrimaryKeyConstraint("host", "username", "namespace"),
    ForeignKeyConstraint(
        ["host", "username"], ["accounts.host", "accounts.username"], ondelete="CASCADE"
    ),
)

# XEP-0012: when each user was last seen (logout) and with which status text.
last_activity = Table(
    "last_activity",
    metadata,
    Column("host", String(JID_PART), nullable=False),
    Column("username", String(JID_PART), nullable=False),
    Column("seen_at", Double, nullable=False),  # POSIX seconds
    Column("status", String(4096), nullable=False),
    PrimaryKeyConstraint("host", "username"),
    ForeignKeyConstraint(
        ["host", "username"], ["accounts.host", "accounts.username"], ondelete="CASCADE"
    ),
)

# RFC 6121 §2, §3: one row per (user, contact). `listed` is False while the row only records a
# pending inbound subscription request from someone not in the user's roster (§3.1.3): such
# rows are never shown in roster results or pushes.
roster_items = Table(
    "roster_items",
    metadata,
    Column("host", String(JID_PART), nullable=False),
    Column("username", String(JID_PART), nullable=False),
    Column("contact", String(2 * JID_PART + 1), nullable=False),  # bare JID: local@domain
    Column("name", Text, nullable=False),  # "" = no name
    Column("groups", Text, nullable=False),  # JSON array of group names
    Column("subscription", String(4), nullable=False),  # none, to, from, both
    Column("ask", Boolean, nullable=False),  # pending out (ask='subscribe')
    Column("pending_in", Boolean, nullable=False),
    Column("approved", Boolean, nullable=False),  # §3.4 pre-approval
    Column("listed", Boolean, nullable=False),
    PrimaryKeyConstraint("host", "username", "contact"),
    ForeignKeyConstraint(
        ["host", "username"], ["accounts.host", "accounts.username"], ondelete="CASCADE"
    ),
    CheckConstraint("subscription IN ('none', 'to', 'from', 'both')", name="subscription"),
    # Whose rosters name a contact: an account's deletion cancels their subscriptions.
    Index(None, "contact"),
)

# XEP-0237 / RFC 6121 §2.6: each user's roster version, a strictly increasing counter.
roster_versions = Table(
    "roster_versions",
    metadata,
    Column("host", String(JID_PART), nullable=False),
    Column("username", String(JID_PART), nullable=False),
    Column("version", Integer, nullable=False),
    PrimaryKeyConstraint("host", "username"),
    ForeignKeyConstraint(
        ["host", "username"], ["accounts.host", "accounts.username"], ondelete="CASCADE"
    ),
)

# XEP-0363 HTTP upload slots and the files uploaded through them (storage/files.py). The token
# names the file on disk and in its URL; no foreign key to accounts, so a deleted account's
# files still expire and are cleaned up with their rows.
upload_slots = Table(
    "upload_slots",
    metadata,
    Column("token", String(64), nullable=False),
    Column("host", String(JID_PART), nullable=False),
    Column("username", String(JID_PART), nullable=False),
    Column("filename", String(255), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("content_type", String(255), nullable=False),
    Column("created_at", Double, nullable=False),  # POSIX seconds
    Column("slot_expires_at", Double, nullable=False),  # a PUT after this is refused
    Column("expires_at", Double, nullable=True),  # the file's end; NULL: kept
    Column("uploaded", Boolean, nullable=False),
    PrimaryKeyConstraint("token"),
    Index(None, "host", "username"),  # quota sums
    Index(None, "expires_at"),  # expiry sweeps
)


# XEP-0060/0163: each account's personal pubsub (PEP) nodes. `config` is the node configuration
# as JSON (the PEP module owns its meaning); `last_seq` numbers the node's publications, so
# items keep their order even when published within one clock tick.
pubsub_nodes = Table(
    "pubsub_nodes",
    metadata,
    Column("host", String(JID_PART), nullable=False),
    Column("username", String(JID_PART), nullable=False),
    Column("node", String(255), nullable=False),
    Column("config", Text, nullable=False),
    Column("created_at", Double, nullable=False),  # POSIX seconds
    Column("last_seq", Integer, nullable=False),
    PrimaryKeyConstraint("host", "username", "node"),
    ForeignKeyConstraint(
        ["host", "username"], ["accounts.host", "accounts.username"], ondelete="CASCADE"
    ),
)

# The items of a node; re-publishing an id replaces the item and makes it the newest (seq).
pubsub_items = Table(
    "pubsub_items",
    metadata,
    Column("host", String(JID_PART), nullable=False),
    Column("username", String(JID_PART), nullable=False),
    Column("node", String(255), nullable=False),
    Column("item_id", String(JID_PART), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("payload", LargeBinary, nullable=False),  # the <item/>'s child, serialized; b"" none
    Column("publisher", String(3 * JID_PART + 2), nullable=False),  # full JID of the publisher
    Column("published_at", Double, nullable=False),  # POSIX seconds
    PrimaryKeyConstraint("host", "username", "node", "item_id"),
    ForeignKeyConstraint(
        ["host", "username", "node"],
        ["pubsub_nodes.host", "pubsub_nodes.username", "pubsub_nodes.node"],
        ondelete="CASCADE",
    ),
    Index(None, "host", "username", "node", "seq"),
)

# Explicit subscriptions (XEP-0060 §6.1); presence-based ones are implicit and not stored.
pubsub_subscriptions = Table(
    "pubsub_subscriptions",
    metadata,
    Column("host", String(JID_PART), nullable=False),
    Column("username", String(JID_PART), nullable=False),
    Column("node", String(255), nullable=False),
    Column("subscriber", String(3 * JID_PART + 2), nullable=False),  # bare or full JID
    Column("subscriber_bare", String(2 * JID_PART + 1), nullable=False),
    Column("created_at", Double, nullable=False),  # POSIX seconds
    PrimaryKeyConstraint("host", "username", "node", "subscriber"),
    ForeignKeyConstraint(
        ["host", "username", "node"],
        ["pubsub_nodes.host", "pubsub_nodes.username", "pubsub_nodes.node"],
        ondelete="CASCADE",
    ),
    # Whose nodes a JID subscribed to: its login gets their last items; its deletion ends them.
    Index(None, "subscriber_bare"),
)

# XEP-0045: persistent rooms of each MUC service (its domain, e.g. conference.example.org);
# temporary rooms live in memory only. `config` is the room configuration as JSON (modules/muc/
# owns its meaning); `secret` keys the room's XEP-0421 occupant ids, so they survive restarts.
muc_rooms = Table(
    "muc_rooms",
    metadata,
    Column("service", String(JID_PART), nullable=False),
    Column("room", String(JID_PART), nullable=False),  # the room JID's localpart
    Column("config", Text, nullable=False),
    Column("secret", String(64), nullable=False),
    Column("created_at", Double, nullable=False),  # POSIX seconds
    Column("subject", Text, nullable=False),
    Column("subject_nick", String(JID_PART), nullable=False),  # "" = set by the room
    Column("subject_at", Double, nullable=True),  # POSIX seconds; NULL = never set
    PrimaryKeyConstraint("service", "room"),
)

# XEP-0045 §5.2: long-lived affiliations by bare JID (or a whole domain, for bans), with the
# reserved nickname and the reason given.
muc_affiliations = Table(
    "muc_affiliations",
    metadata,
    Column("service", String(JID_PART), nullable=False),
    Column("room", String(JID_PART), nullable=False),
    Column("jid", String(2 * JID_PART + 1), nullable=False),  # bare JID or domain
    Column("affiliation", String(7), nullable=False),
    Column("nick", String(JID_PART), nullable=False),  # "" = no reserved nickname
    Column("reason", Text, nullable=False),
    PrimaryKeyConstraint("service", "room", "jid"),
    ForeignKeyConstraint(["service", "room"], ["muc_rooms.service", "muc_rooms.room"],
                         ondelete="CASCADE"),
    CheckConstraint("affiliation IN ('owner', 'admin', 'member', 'outcast')",
                    name="affiliation"),
    # The rooms a user belongs to (a client's group list).
    Index(None, "jid"),
)

# XEP-0313 on room JIDs: each room message stored once, in arrival order (`seq`), named by the
# XEP-0359 stanza id the room stamped. `payload` is the message as the room sent it, without
# 'to'; `sender` the real bare JID, shown only to whoever may see it at query time.
muc_archive = Table(
    "muc_archive",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("service", String(JID_PART), nullable=False),
    Column("room", String(JID_PART), nullable=False),
    Column("stanza_id", String(64), nullable=False),
    Column("at", Double, nullable=False),  # POSIX seconds
    Column("nick", String(JID_PART), nullable=False),
    Column("sender", String(2 * JID_PART + 1), nullable=False),  # "" = unknown
    Column("payload", LargeBinary, nullable=False),
    ForeignKeyConstraint(["service", "room"], ["muc_rooms.service", "muc_rooms.room"],
                         ondelete="CASCADE"),
    Index(None, "service", "room", "stanza_id", unique=True),
    Index(None, "service", "room", "seq"),
    Index(None, "service", "room", "at"),
)

# XEP-0160: messages kept for users without an available resource, in arrival order (`seq`,
# assigned by the database; writes are serialised by the offline module's group commit).
offline_messages = Table(
    "offline_messages",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("host", String(JID_PART), nullable=False),
    Column("username", String(JID_PART), nullable=False),
    Column("stored_at", Double, nullable=False),  # POSIX seconds (the XEP-0203 delay stamp)
    Column("stanza", LargeBinary, nullable=False),  # the <message/>, serialized
    ForeignKeyConstraint(
        ["host", "username"], ["accounts.host", "accounts.username"], ondelete="CASCADE"
    ),
    Index(None, "host", "username", "seq"),
)

# XEP-0313: each user's message archive. `seq` is the archive time in microseconds since the
# epoch, strictly increasing per archive (the order of the archive, and its time filter);
# `id` is the random UID clients see (XEP-0313 §3, XEP-0359 stanza-id). `peer` is the bare
# JID of the other party, `peer_resource` its resource ("" = none), for 'with' queries.
archive_messages = Table(
    "archive_messages",
    metadata,
    Column("host", String(JID_PART), nullable=False),
    Column("username", String(JID_PART), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("id", String(64), nullable=False),
    Column("peer", String(2 * JID_PART + 1), nullable=False),
    Column("peer_resource", String(JID_PART), nullable=False),
    Column("outgoing", Boolean, nullable=False),
    Column("stanza", LargeBinary, nullable=False),  # the <message/> as sent/received, serialized
    Column("origin_id", String(128), nullable=True),  # XEP-0359 origin-id of what we sent
    PrimaryKeyConstraint("host", "username", "seq"),
    ForeignKeyConstraint(
        ["host", "username"], ["accounts.host", "accounts.username"], ondelete="CASCADE"
    ),
    Index(None, "host", "username", "id", unique=True),  # before-id / after-id / ids
    Index(None, "host", "username", "peer", "seq"),  # 'with' queries, paged by seq
    Index(None, "seq"),  # retention: the oldest messages of every archive
    Index("ix_archive_messages_origin", "host", "username", "origin_id"),  # resends (dedup)
)

# XEP-0441 (formerly XEP-0313 §6) archiving preferences; a user without a row has the
# server's default. `always` and `never` are JSON arrays of JIDs.
archive_prefs = Table(
    "archive_prefs",
    metadata,
    Column("host", String(JID_PART), nullable=False),
    Column("username", String(JID_PART), nullable=False),
    Column("mode", String(6), nullable=False),
    Column("always", Text, nullable=False),
    Column("never", Text, nullable=False),
    PrimaryKeyConstraint("host", "username"),
    ForeignKeyConstraint(
        ["host", "username"], ["accounts.host", "accounts.username"], ondelete="CASCADE"
    ),
    CheckConstraint("mode IN ('always', 'roster', 'never')", name="mode"),
)

# Settings of a virtual host that admins change at run time and that survive a restart
# (storage/settings.py): the message of the day, registration allow/deny lists. `value` is
# owned by the module that names the setting.
host_settings = Table(
    "host_settings",
    metadata,
    Column("host", String(JID_PART), nullable=False),
    Column("name", String(64), nullable=False),
    Column("value", LargeBinary, nullable=False),
    Column("updated_at", Double, nullable=False),  # POSIX seconds
    PrimaryKeyConstraint("host", "name"),
)


# The mobile features' tables (FAST tokens, push registrations, invitations) live in their own
# file on the same metadata.
from storage.models.mobile import fast_tokens, invites, push_registrations  # noqa: E402

__all__ = ["account_credentials", "accounts", "archive_messages", "archive_prefs",
           "fast_tokens", "host_settings", "invites", "kv_items", "last_activity", "metadata", "muc_affiliations",
           "muc_archive", "muc_rooms", "offline_messages", "pubsub_items", "pubsub_nodes",
           "pubsub_subscriptions", "push_registrations", "roster_items", "roster_versions",
           "upload_slots"]
