# tests: tests/modules/test_mam.py
"""XEP-0441 archiving preferences (formerly XEP-0313 §6): what a user wants archived.

- default always, roster or never (the server's `default` until the user sets one); always
  and never lists of JIDs, a bare JID covering its resources; never wins (§4).
- Get and set answer with the preferences in force; a set replaces them whole.
- In memory for the users seen lately (at most `MAX_KNOWN`, oldest forgotten first), so a
  login and archiving a message read no storage; for others one shared read per user at a
  time, whose waiters resume in the order they asked (message order is kept). "roster" mode
  reads the roster too for a user without a session.
"""
from __future__ import annotations

from typing import Any

from lxml import etree
from twisted.internet import defer
from twisted.python.failure import Failure

from modules.roster import RosterService
from stanzas import iq, ns
from stanzas.errors import StanzaError
from stanzas.jid import JID, JIDError
from storage.archive import ArchiveSettings, ArchiveStore, Prefs
from xmppd.cluster.api import cluster_memory
from xmppd.concurrency import OneLoad
from xmppd.hooks import SessionEvent, UserEvent
from xmppd.module import IqRequest, ModuleContext

_M = "{%s}" % ns.MAM
MAX_KNOWN = 50_000
"""Users whose preferences are kept in memory; past it the oldest entries go (read again)."""


class Loaded:
    """A user's archiving settings, with their roster's contacts when `roster` mode needs
    them and the user has no session (whose roster RosterService keeps in memory)."""
    __slots__ = ("prefs", "contacts")

    def __init__(self, prefs: Prefs | None, contacts: frozenset[JID] | None) -> None:
        self.prefs, self.contacts = prefs, contacts       # prefs None: no such account


class Preferences:
    def __init__(self, ctx: ModuleContext[Any], store: ArchiveStore, default: Prefs) -> None:
        self.ctx = ctx
        self.store = store
        self.sessions = ctx.sessions
        self.roster = ctx.service(RosterService)
        self.default = default
        self.known: dict[JID, Prefs] = {}               # users seen lately (MAX_KNOWN)
        self.loading: OneLoad[JID, Loaded] = OneLoad(self._unreadable)
        # A cluster node forgets preferences another node changed (docs/CLUSTER.md).
        self.cluster = cluster_memory(ctx, "mam", lambda user: self.known.pop(user, None))

    # -- reading -------------------------------------------------------------------------
    def settings(self, user: JID) -> Loaded | defer.Deferred[Loaded]:
        """At once for a user seen lately (unless "roster" mode needs the roster of a user
        without a session); else from the store (one read at a time)."""
        prefs = self.known.get(user)
        if prefs is not None and (prefs.default != "roster" or self.sessions.resources(user)):
            return Loaded(prefs, None)
        return self.loading(user, lambda: self._load(user))

    async def _load(self, user: JID) -> Loaded:
        prefs = self.known.get(user)
        if prefs is None:
            settings: ArchiveSettings | None = await self.store.settings(user)
            if settings is None:
                return Loaded(None, None)       # no such account: not remembered
            # A `set` while we read has the newer preferences: it wins.
            prefs = self.known.setdefault(user, settings.prefs or self.default)
            if len(self.known) > MAX_KNOWN:
                del self.known[next(iter(self.known))]
        contacts = None
        if prefs.default == "roster" and not self.sessions.resources(user):
            roster = await self.roster.roster(user)
            contacts = frozenset(i.contact for i in roster.items.values() if i.listed)
        return Loaded(prefs, contacts)

    def _unreadable(self, user: JID, failure: Failure) -> Loaded:
        self.ctx.log.warning("archive preferences of %s not read: %s", user, failure.value)
        return Loaded(None, None)               # not archived rather than stuck

    def wanted(self, user: JID, loaded: Loaded, peer: JID) -> bool:
        """Does `user` want messages with `peer` archived (XEP-0441 §4)?"""
        prefs = loaded.prefs
        assert prefs is not None
        if peer in prefs.never or peer.bare in prefs.never:
            return False
        if peer in prefs.always or peer.bare in prefs.always:
            return True
        if prefs.default != "roster":
            return prefs.default == "always"
        if loaded.contacts is not None:
            return peer.bare in loaded.contacts
        roster = self.roster.cached(user)
        item = roster.items.get(peer.bare) if roster is not None else None
        return item is not None and item.listed

    # -- memory ----------------------------------------------------------------------------
    def warm(self, ev: SessionEvent) -> Any:
        user = ev.session.jid.bare
        if user in self.known or user in self.loading:
            return None
        found = self.settings(user)
        return found.addCallback(lambda _: None) if isinstance(found, defer.Deferred) else None

    def forget(self, ev: UserEvent) -> None:
        self.known.pop(ev.user, None)
        if self.cluster is not None:
            self.cluster.changed("mam", ev.user)    # other nodes may remember the user too

    # -- IQs -------------------------------------------------------------------------------
    async def get(self, req: IqRequest) -> iq.Reply:
        found = self.settings(req.to.bare)
        loaded = await found if isinstance(found, defer.Deferred) else found
        return iq.result(req.stanza, element(loaded.prefs or self.default))

    async def set(self, req: IqRequest) -> iq.Reply:
        el = req.payload
        mode = el.get("default")
        if mode not in ("always", "roster", "never"):
            raise StanzaError.bad_request("default must be always, roster or never")
        lists = {}
        for name in ("always", "never"):
            jids = []
            for j in el.findall("%s%s/%sjid" % (_M, name, _M)):
                try:
                    jids.append(JID.parse((j.text or "").strip()))
                except JIDError as e:
                    raise StanzaError.jid_malformed(str(e)) from None
            lists[name] = tuple(dict.fromkeys(jids))
        prefs = Prefs(mode, lists["always"], lists["never"])  # type: ignore[arg-type]
        user = req.to.bare
        await self.store.set_prefs(user, prefs)
        self.known.pop(user, None)          # newest last: forgotten after the older entries
        self.known[user] = prefs
        if self.cluster is not None:
            self.cluster.changed("mam", user)
        return iq.result(req.stanza, element(prefs))


def element(prefs: Prefs) -> etree._Element:
    el = iq.empty(ns.MAM, "prefs")
    el.set("default", prefs.default)
    for name, jids in (("always", prefs.always), ("never", prefs.never)):
        lst = etree.SubElement(el, _M + name)
        for j in jids:
            etree.SubElement(lst, _M + "jid").text = str(j)
    return el
