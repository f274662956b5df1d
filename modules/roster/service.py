# tests: tests/modules/test_roster.py, tests/modules/test_presence.py
"""`RosterService`: the rosters other modules read (`ctx.service(RosterService)`), and the
writes of the roster module: one item at a time under a per-user lock, version bump and push.

The roster of a user with sessions lives in memory (loaded at bind, dropped with the last
session), so presence broadcasts, probe answers and `may_see_presence` never reach the
database; other users' rosters are read through the cached store.
"""
from __future__ import annotations

import secrets
from typing import Any, Callable

from lxml import etree

from modules.roster.states import NONE, state
from stanzas import iq, ns
from stanzas.errors import StanzaError
from storage.roster import Roster, RosterItem, RosterStore, Subscription
from stanzas.jid import JID
from xmppd.cluster.api import cluster_memory
from xmppd.concurrency import KeyedLock
from xmppd.module import ModuleContext, SessionKey

_Q = "{%s}" % ns.ROSTER
# the session asked for the roster: it gets roster pushes (RFC 6121 §2.1.6)
INTERESTED: SessionKey[bool] = SessionKey("roster.interested", shared=True)
# RFC 6121 §3.1.3: the presence module gives a session the requests still pending at its
# initial presence (then sets PENDING_GIVEN, until the session goes unavailable). A request
# delivered to the session before that, while the initial presence was being broadcast, is
# noted in EARLY_REQUESTS so that it is not given twice.
PENDING_GIVEN: SessionKey[bool] = SessionKey("roster.pending_given")
EARLY_REQUESTS: SessionKey[set[JID]] = SessionKey("roster.early_requests")


def _visible(item: RosterItem | None) -> tuple[object, ...] | None:
    """What a client sees of an item (XEP-0237: only this bumps the version)."""
    if item is None or not item.listed:
        return None
    return (item.name, item.groups, item.subscription, item.ask, item.approved)


class RosterService:
    """Rosters for other modules, and the writes of this module. Per-user writes are serialised
    (a lock per user), so the version always matches the items."""

    def __init__(self, ctx: ModuleContext[Any], store: RosterStore) -> None:
        self._ctx = ctx
        self.store = store
        self._live: dict[JID, Roster] = {}          # users with sessions
        self._locks: KeyedLock[JID] = KeyedLock()
        # A cluster node forgets a roster another node wrote (docs/CLUSTER.md).
        self._cluster = cluster_memory(ctx, "roster", lambda user: self._live.pop(user, None))

    # -- reading (public) ------------------------------------------------------------------
    def cached(self, user: JID) -> Roster | None:
        """The in-memory roster of a user with sessions, or None."""
        return self._live.get(user)

    async def roster(self, user: JID) -> Roster:
        """All rows (listed or not) of `user`'s roster; kept in memory while it has sessions."""
        live = self._live.get(user)
        if live is not None:
            return live
        if not self._ctx.sessions.resources(user):
            return await self.store.get(user)
        return await self._locks.run(user, lambda: self._fetch(user))

    async def settled(self, user: JID) -> Roster:
        """Like `roster`, after the writes already under way for `user`."""
        return await self._locks.run(user, lambda: self._fetch(user))

    async def get(self, user: JID) -> list[RosterItem]:
        """The items the user sees, in code point order of their JIDs."""
        roster = await self.roster(user)
        return sorted((i for i in roster.items.values() if i.listed), key=lambda i: str(i.contact))

    async def subscription(self, user: JID, contact: JID) -> Subscription:
        item = (await self.roster(user)).items.get(contact.bare)
        return item.subscription if item is not None else "none"

    async def pending_requests(self, user: JID) -> list[JID]:
        """Contacts whose subscription requests to `user` await an answer (§3.1.3)."""
        return sorted((i.contact for i in (await self.roster(user)).items.values()
                       if i.pending_in), key=str)

    # -- writing ---------------------------------------------------------------------------
    async def update(self, user: JID, contact: JID,
                     change: Callable[[RosterItem | None], RosterItem | None],
                     *, room: int | None = None) -> tuple[RosterItem | None, RosterItem | None]:
        """Apply `change(old) -> new` (None: no row) to one item under the user's lock; write,
        bump and push if it changed. Returns (old, new). `change` may raise StanzaError.

        With `room`, a change adding a listed item to a roster that lists `room` items, or a
        pending request from a stranger when `room` such requests wait, raises <not-allowed/>.
        """
        async def run() -> tuple[RosterItem | None, RosterItem | None]:
            roster = await self._fetch(user)
            old = roster.items.get(contact)
            new = change(old)
            if new is not None and not new.listed and state(new) == NONE and not new.approved:
                new = None          # nothing left to remember about a stranger
            if room is not None and new is not None:
                if new.listed and not (old is not None and old.listed):
                    if sum(1 for i in roster.items.values() if i.listed) >= room:
                        raise StanzaError.not_allowed(f"a roster holds at most {room} items")
                elif not new.listed and old is None:
                    if sum(1 for i in roster.items.values() if not i.listed) >= room:
                        raise StanzaError.not_allowed("too many pending requests")
            if new != old:
                await self._write(user, contact, old, new)
            return old, new
        return await self._locks.run(user, run)

    async def put_item(self, user: JID, item: RosterItem) -> None:
        """Set an item as is (admin tools, tests): written, pushed, no stanzas sent."""
        await self.update(user, item.contact, lambda old: item)

    async def _write(self, user: JID, contact: JID, old: RosterItem | None,
                     new: RosterItem | None) -> None:
        bump = _visible(old) != _visible(new)
        if new is None:
            version = await self.store.remove(user, contact, bump=bump)
        else:
            version = await self.store.put(user, new, bump=bump)
        live = self._live.get(user)
        if live is not None:
            if new is None:
                live.items.pop(contact, None)
            else:
                live.items[contact] = new
            self._live[user] = Roster(version, live.items)
        if self._cluster is not None:
            self._cluster.changed("roster", user)
        if bump:
            self.push(user, contact, new if new is not None and new.listed else None, version)

    def push(self, user: JID, contact: JID, item: RosterItem | None, version: int) -> None:
        """Roster push (§2.1.6) to every interested resource; `item` None means removed."""
        for s in self._ctx.sessions.resources(user):
            if s.get(INTERESTED):
                q = iq.empty(ns.ROSTER, "query")
                q.set("ver", str(version))
                q.append(item_element(item) if item is not None else
                         etree.Element(_Q + "item", jid=str(contact), subscription="remove"))
                s.send_element(iq.request("set", to=str(s.jid), payload=q,
                                          id="push" + secrets.token_hex(6)))

    # -- memory ----------------------------------------------------------------------------
    async def _fetch(self, user: JID) -> Roster:
        """Call with the user's lock held."""
        live = self._live.get(user)
        if live is not None:
            return live
        roster = await self.store.get(user)
        if self._ctx.sessions.resources(user):
            roster = Roster(roster.version, dict(roster.items))
            self._live[user] = roster
        return roster

    def forget(self, user: JID) -> None:
        if not self._ctx.sessions.resources(user):
            self._live.pop(user, None)


def item_element(item: RosterItem) -> etree._Element:
    el = etree.Element(_Q + "item", jid=str(item.contact), subscription=item.subscription)
    if item.name:
        el.set("name", item.name)
    if item.ask:
        el.set("ask", "subscribe")
    if item.approved:
        el.set("approved", "true")
    for g in item.groups:
        etree.SubElement(el, _Q + "group").text = g
    return el
