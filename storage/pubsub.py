# tests: tests/storage/test_pubsub_store.py
"""Personal eventing storage (XEP-0163 over XEP-0060): each account's nodes, their items and
explicit subscriptions.

- `PubsubStore` is the contract; `SqlPubsubStore` its SQL implementation (SQLite, PostgreSQL).
  Nodes belong to an account (deleting it deletes them, their items and the subscriptions to
  them); a node's configuration is an opaque JSON object the PEP module interprets.
- Items are kept in publication order: each publish takes the node's next sequence number in
  the same transaction, so re-publishing an id makes that item the newest, and `publish` drops
  the oldest items beyond `max_items` atomically with the insert (XEP-0060 §7.1.2.6
  "retract-oldest").
- `last_items` reads the newest item of every node of many owners in one query: a login's
  "last published items" (XEP-0163 §4.3.4) cost one round trip, not one per contact.
- Subscribers are stored as given (bare or full JID) with their bare JID indexed, so a login
  finds its subscriptions and an account deletion ends them.
Not here: access models, notifications and node defaults (modules/pep/).
"""
from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Connection, and_, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from storage.db import Database
from storage.models import pubsub_items, pubsub_nodes, pubsub_subscriptions
from stanzas.jid import JID

MAX_NODE = 255          # pubsub_nodes.node is String(255)
MAX_ITEM_ID = 1023      # pubsub_items.item_id is String(1023)
_CHUNK = 500            # owners per IN list


@dataclass(frozen=True, slots=True)
class Node:
    owner: JID                      # bare
    name: str
    config: Mapping[str, Any]       # JSON object, meaning owned by the PEP module
    created_at: float


@dataclass(frozen=True, slots=True)
class Item:
    id: str
    payload: bytes                  # the <item/>'s payload element serialized; b"" for none
    publisher: str                  # JID that published it
    published_at: float             # POSIX seconds


@dataclass(frozen=True, slots=True)
class LastItem:
    node: Node
    item: Item | None               # None: the node has no items


@dataclass(frozen=True, slots=True)
class Subscription:
    owner: JID                      # whose node
    node: str
    subscriber: JID                 # as subscribed: bare or full


class PubsubStore(Protocol):
    async def nodes(self, owner: JID) -> list[Node]:
        """The owner's nodes, by name."""
        ...

    async def node(self, owner: JID, name: str) -> Node | None: ...

    async def create(self, owner: JID, name: str, config: Mapping[str, Any], now: float) -> bool:
        """Create an empty node; False (and no change) if it exists."""
        ...

    async def configure(self, owner: JID, name: str, config: Mapping[str, Any]) -> bool:
        """Replace a node's configuration; False if there is no such node."""
        ...

    async def delete(self, owner: JID, name: str) -> bool:
        """Delete a node with its items and subscriptions; False if there was none."""
        ...

    async def publish(self, owner: JID, name: str, item: Item, *,
                      max_items: int | None) -> list[str] | None:
        """Store `item` as the node's newest (replacing one with its id), then drop the oldest
        items beyond `max_items` (None: keep all). Returns the dropped ids, oldest first, or
        None (and no change) if there is no such node."""
        ...

    async def retract(self, owner: JID, name: str, item_id: str) -> bool:
        """Delete one item; False if it was not there."""
        ...

    async def purge(self, owner: JID, name: str) -> int:
        """Delete every item of the node; returns how many there were."""
        ...

    async def items(self, owner: JID, name: str, *, ids: Sequence[str] | None = None,
                    last: int | None = None) -> list[Item]:
        """Items oldest first: those with `ids` (absent ones skipped), else the `last` newest,
        else all."""
        ...

    async def last_items(self, owners: Sequence[JID]) -> list[LastItem]:
        """Every node of these owners with its newest item, in one query."""
        ...

    async def subscribe(self, owner: JID, name: str, subscriber: JID, now: float) -> bool:
        """Record an explicit subscription (again is fine); False if there is no such node."""
        ...

    async def unsubscribe(self, owner: JID, name: str, subscriber: JID) -> bool:
        """False if there was no such subscription."""
        ...

    async def subscribers(self, owner: JID, name: str) -> list[JID]:
        """The node's explicit subscribers, in code point order."""
        ...

    async def subscriptions_of(self, subscriber: JID) -> list[Subscription]:
        """Subscriptions held by `subscriber`'s bare JID or any of its full JIDs."""
        ...

    async def forget_subscriber(self, subscriber: JID) -> None:
        """End every subscription held by this bare JID or its full JIDs (account deleted)."""
        ...


def _key(owner: JID) -> tuple[str, str]:
    if owner.local is None or owner.resource is not None:
        raise ValueError(f"pubsub nodes belong to an account's bare JID, not {owner}")
    return owner.domain, owner.local


def _check_name(name: str) -> None:
    if not name or len(name) > MAX_NODE:
        raise ValueError(f"node names have 1 to {MAX_NODE} characters: {name!r}")


def _jid(text: str) -> JID:
    """A stored (already prepared) JID, rebuilt without preparing it again."""
    rest, slash, resource = text.partition("/")
    local, at, domain = rest.partition("@")
    if not at:
        local, domain = "", rest
    return JID(local or None, domain, resource if slash else None)


def _node(host: str, username: str, name: str, config: str, created_at: float) -> Node:
    return Node(JID(username, host), name, json.loads(config), float(created_at))


class SqlPubsubStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._insert: Any = postgresql.insert if db.dialect == "postgresql" else sqlite.insert

    async def nodes(self, owner: JID) -> list[Node]:
        host, username = _key(owner)
        n = pubsub_nodes.c

        def txn(conn: Connection) -> list[Node]:
            rows = conn.execute(select(n.node, n.config, n.created_at).where(
                n.host == host, n.username == username).order_by(n.node)).all()
            return [_node(host, username, r.node, r.config, r.created_at) for r in rows]

        return await self._db.run(txn)

    async def node(self, owner: JID, name: str) -> Node | None:
        host, username = _key(owner)
        n = pubsub_nodes.c

        def txn(conn: Connection) -> Node | None:
            r = conn.execute(select(n.config, n.created_at).where(
                n.host == host, n.username == username, n.node == name)).first()
            return None if r is None else _node(host, username, name, r.config, r.created_at)

        return await self._db.run(txn)

    async def create(self, owner: JID, name: str, config: Mapping[str, Any], now: float) -> bool:
        host, username = _key(owner)
        _check_name(name)
        stmt = self._insert(pubsub_nodes).values(
            host=host, username=username, node=name, config=json.dumps(dict(config)),
            created_at=now, last_seq=0).on_conflict_do_nothing()

        def txn(conn: Connection) -> bool:
            return conn.execute(stmt).rowcount > 0

        return await self._db.run(txn)

    async def configure(self, owner: JID, name: str, config: Mapping[str, Any]) -> bool:
        host, username = _key(owner)
        n = pubsub_nodes.c
        stmt = update(pubsub_nodes).where(n.host == host, n.username == username, n.node == name)\
            .values(config=json.dumps(dict(config)))

        def txn(conn: Connection) -> bool:
            return conn.execute(stmt).rowcount > 0

        return await self._db.run(txn)

    async def delete(self, owner: JID, name: str) -> bool:
        host, username = _key(owner)

        def txn(conn: Connection) -> bool:
            # Children first: the foreign keys cascade too, but SQLite only when enabled.
            for table in (pubsub_items, pubsub_subscriptions):
                c = table.c
                conn.execute(delete(table).where(c.host == host, c.username == username,
                                                 c.node == name))
            n = pubsub_nodes.c
            return conn.execute(delete(pubsub_nodes).where(
                n.host == host, n.username == username, n.node == name)).rowcount > 0

        return await self._db.run(txn)

    async def publish(self, owner: JID, name: str, item: Item, *,
                      max_items: int | None) -> list[str] | None:
        host, username = _key(owner)
        if not item.id or len(item.id) > MAX_ITEM_ID:
            raise ValueError(f"item ids have 1 to {MAX_ITEM_ID} characters")
        if max_items is not None and max_items < 1:
            raise ValueError("max_items must be at least 1")
        n, i = pubsub_nodes.c, pubsub_items.c
        bump = update(pubsub_nodes).where(n.host == host, n.username == username, n.node == name)\
            .values(last_seq=n.last_seq + 1).returning(n.last_seq)

        def txn(conn: Connection) -> list[str] | None:
            seq = conn.execute(bump).scalar()
            if seq is None:
                return None
            row = {"seq": seq, "payload": item.payload, "publisher": item.publisher,
                   "published_at": item.published_at}
            stmt = self._insert(pubsub_items).values(host=host, username=username, node=name,
                                                     item_id=item.id, **row)
            conn.execute(stmt.on_conflict_do_update(
                index_elements=[i.host, i.username, i.node, i.item_id], set_=row))
            if max_items is None:
                return []
            mine = (i.host == host, i.username == username, i.node == name)
            old = conn.execute(select(i.item_id, i.seq).where(*mine).order_by(i.seq.desc())
                               .offset(max_items)).all()
            if old:
                conn.execute(delete(pubsub_items).where(
                    *mine, i.item_id.in_([r.item_id for r in old])))
            return [r.item_id for r in sorted(old, key=lambda r: r.seq)]

        return await self._db.run(txn)

    async def retract(self, owner: JID, name: str, item_id: str) -> bool:
        host, username = _key(owner)
        i = pubsub_items.c

        def txn(conn: Connection) -> bool:
            return conn.execute(delete(pubsub_items).where(
                i.host == host, i.username == username, i.node == name,
                i.item_id == item_id)).rowcount > 0

        return await self._db.run(txn)

    async def purge(self, owner: JID, name: str) -> int:
        host, username = _key(owner)
        i = pubsub_items.c

        def txn(conn: Connection) -> int:
            return int(conn.execute(delete(pubsub_items).where(
                i.host == host, i.username == username, i.node == name)).rowcount)

        return await self._db.run(txn)

    async def items(self, owner: JID, name: str, *, ids: Sequence[str] | None = None,
                    last: int | None = None) -> list[Item]:
        host, username = _key(owner)
        i = pubsub_items.c
        q = select(i.item_id, i.payload, i.publisher, i.published_at, i.seq).where(
            i.host == host, i.username == username, i.node == name)
        if ids is not None:
            q = q.where(i.item_id.in_(list(ids)))
        if last is not None and ids is None:
            q = q.order_by(i.seq.desc()).limit(last)
        else:
            q = q.order_by(i.seq)

        def txn(conn: Connection) -> list[Item]:
            rows = sorted(conn.execute(q).all(), key=lambda r: r.seq)
            return [Item(r.item_id, bytes(r.payload), r.publisher, float(r.published_at))
                    for r in rows]

        return await self._db.run(txn)

    async def last_items(self, owners: Sequence[JID]) -> list[LastItem]:
        by_host: dict[str, list[str]] = defaultdict(list)
        for owner in dict.fromkeys(owners):
            host, username = _key(owner)
            by_host[host].append(username)
        if not by_host:
            return []
        n, i = pubsub_nodes.c, pubsub_items.c

        def txn(conn: Connection) -> list[LastItem]:
            out: list[LastItem] = []
            for host, names in by_host.items():
                for start in range(0, len(names), _CHUNK):
                    chunk = names[start:start + _CHUNK]
                    newest = select(i.host, i.username, i.node, func.max(i.seq).label("seq"))\
                        .where(i.host == host, i.username.in_(chunk))\
                        .group_by(i.host, i.username, i.node).subquery()
                    joined = pubsub_nodes.outerjoin(newest, and_(
                        newest.c.host == n.host, newest.c.username == n.username,
                        newest.c.node == n.node)).outerjoin(pubsub_items, and_(
                            i.host == newest.c.host, i.username == newest.c.username,
                            i.node == newest.c.node, i.seq == newest.c.seq))
                    rows = conn.execute(
                        select(n.username, n.node, n.config, n.created_at, i.item_id,
                               i.payload, i.publisher, i.published_at)
                        .select_from(joined).where(n.host == host, n.username.in_(chunk))
                        .order_by(n.username, n.node)).all()
                    for r in rows:
                        node = _node(host, r.username, r.node, r.config, r.created_at)
                        item = None if r.item_id is None else Item(
                            r.item_id, bytes(r.payload), r.publisher, float(r.published_at))
                        out.append(LastItem(node, item))
            return out

        return await self._db.run(txn)

    async def subscribe(self, owner: JID, name: str, subscriber: JID, now: float) -> bool:
        host, username = _key(owner)
        n = pubsub_nodes.c
        stmt = self._insert(pubsub_subscriptions).values(
            host=host, username=username, node=name, subscriber=str(subscriber),
            subscriber_bare=str(subscriber.bare), created_at=now).on_conflict_do_nothing()

        def txn(conn: Connection) -> bool:
            exists = conn.execute(select(n.node).where(
                n.host == host, n.username == username, n.node == name)).first()
            if exists is None:
                return False
            conn.execute(stmt)
            return True

        return await self._db.run(txn)

    async def unsubscribe(self, owner: JID, name: str, subscriber: JID) -> bool:
        host, username = _key(owner)
        s = pubsub_subscriptions.c

        def txn(conn: Connection) -> bool:
            return conn.execute(delete(pubsub_subscriptions).where(
                s.host == host, s.username == username, s.node == name,
                s.subscriber == str(subscriber))).rowcount > 0

        return await self._db.run(txn)

    async def subscribers(self, owner: JID, name: str) -> list[JID]:
        host, username = _key(owner)
        s = pubsub_subscriptions.c

        def txn(conn: Connection) -> list[JID]:
            rows = conn.execute(select(s.subscriber).where(
                s.host == host, s.username == username, s.node == name)
                .order_by(s.subscriber)).all()
            return [_jid(r.subscriber) for r in rows]

        return await self._db.run(txn)

    async def subscriptions_of(self, subscriber: JID) -> list[Subscription]:
        s = pubsub_subscriptions.c
        bare = str(subscriber.bare)

        def txn(conn: Connection) -> list[Subscription]:
            rows = conn.execute(select(s.host, s.username, s.node, s.subscriber).where(
                s.subscriber_bare == bare).order_by(s.host, s.username, s.node,
                                                    s.subscriber)).all()
            return [Subscription(JID(r.username, r.host), r.node, _jid(r.subscriber))
                    for r in rows]

        return await self._db.run(txn)

    async def forget_subscriber(self, subscriber: JID) -> None:
        s = pubsub_subscriptions.c
        bare = str(subscriber.bare)

        def txn(conn: Connection) -> None:
            conn.execute(delete(pubsub_subscriptions).where(s.subscriber_bare == bare))

        await self._db.run(txn)

