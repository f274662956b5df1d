# tests: tests/modules/test_presence.py, tests/integration/test_contacts_slixmpp.py
"""RFC 6121 §4: presence — who sees that a user is online, and what it says.

- Initial presence (§4.2) goes to every contact with a 'from' or 'both' subscription that
  `may_see_presence` (blocking can veto), and to all of the user's available resources, the
  sender included (§4.2.2). The new resource then gets the presence of the user's other
  available resources, any subscription requests still waiting (§3.1.3), and the server sends
  presence probes from the user's bare JID to every 'to'/'both' contact (§4.3.1).
- Subsequent presence (§4.4) is broadcast the same way, without probes. `presence_broadcast`
  runs first (vCard adds its XEP-0153 hash to the stanza, which is also what probes return).
- Probes (§4.3.2) are answered on behalf of local users from memory: a prober without a
  'from'/'both' subscription gets 'unsubscribed'; a subscribed one gets the last presence of
  each available resource; a contact without sessions is not answered (option 2 of §4.3.2; it
  also keeps offline contacts' rosters out of a login).
- Unavailable presence (§4.5) — sent, or on any disconnect (§4.5.4) — is broadcast like
  available presence, plus to everyone the session sent directed presence to (§4.6.3).
  When a user's last available resource goes, `user_offline` fires (last seen).
- After each available broadcast, `session_available` fires (offline messages, XEP-0160).
- Directed presence (§4.6) is delivered by the router; recipients without a subscription are
  remembered per session (at most `max_directed`) for that final unavailable.
Not here: subscriptions (modules/roster/), routing by priority (xmppd/router.py).

Config ([modules.presence]):
  max_directed  int  default 1000  directed-presence recipients remembered per session
Storage: none (sessions in memory; rosters through RosterService).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from lxml import etree
from twisted.internet import defer

from modules.roster import EARLY_REQUESTS, PENDING_GIVEN, RosterService, has_from, has_to
from stanzas import ns
from stanzas.errors import StanzaError, error_reply
from xmppd import hooks
from xmppd.hooks import STOP, AvailableEvent, PresenceQuery, StanzaEvent, UserOffline
from stanzas.jid import JID
from xmppd.concurrency import KeyedLock
from xmppd.module import Module, ModuleContext, SessionKey, number
from stanzas.wire import serialize

_C = "{%s}" % ns.CLIENT
# sent available presence, not yet unavailable
ONLINE: SessionKey[bool] = SessionKey("presence.online", shared=True)
# directed presence recipients (RFC 6121 §4.6), in order
DIRECTED: SessionKey[dict[JID, None]] = SessionKey(
    "presence.directed", codec=(lambda d: [str(j) for j in d],
                                lambda v: dict.fromkeys(map(JID.parse, v))))
_TYPES = frozenset({None, "unavailable", "probe", "error", "subscribe", "subscribed",
                    "unsubscribe", "unsubscribed"})


@dataclass(frozen=True, slots=True)
class PresenceOptions:
    max_directed: int = number(default=1000, minimum=0, maximum=100_000)


class Presence(Module[PresenceOptions]):
    name = "presence"
    depends = ("roster",)
    Options = PresenceOptions

    def __init__(self, ctx: ModuleContext[PresenceOptions]) -> None:
        self.ctx = ctx
        self.sessions = ctx.sessions
        self.roster = ctx.service(RosterService)
        self.max_directed = ctx.options.max_directed
        self.local_domains = ctx.local_domains
        # One session's presence work runs in arrival order: a broadcast waiting for a roster
        # load must not be overtaken by that session's next presence (keyed by full JID, which
        # a resumed session keeps).
        self.serial: KeyedLock[JID] = KeyedLock()
        ctx.hook(hooks.presence_in, self.on_presence)
        ctx.hook(hooks.session_closed, self.on_closed)

    # -- the hook --------------------------------------------------------------------------
    def on_presence(self, ev: StanzaEvent) -> object:
        el, session = ev.stanza, ev.session
        kind = el.get("type")
        if kind not in _TYPES:
            if session is not None:     # RFC 6120 §8.3.3.1 / RFC 6121 §4.7.1: unknown type
                self.ctx.send(error_reply(el, StanzaError.bad_request("unknown presence type")))
            return STOP
        if session is None:
            if kind == "probe":
                return self.answer_probe(ev.sender.bare, ev.to.bare)
            return None                 # inbound presence: the router delivers it
        if el.get("to") is None:
            if kind is None:
                return self.serial.run(session.jid, lambda: self.available(session, el))
            if kind == "unavailable":
                return self.serial.run(session.jid, lambda: self.unavailable(session, el))
            return STOP                 # a probe or error to nobody
        if kind == "probe":             # §4.3: stamped with the bare JID, then answered
            probe = _presence("probe", ev.sender.bare, ev.to.bare)
            self.ctx.send(probe)
            return STOP
        if kind in (None, "unavailable") and ev.to.bare != ev.sender.bare:
            return self.directed(session, ev.to, kind)
        return None

    # -- broadcasts ------------------------------------------------------------------------
    async def available(self, session: Any, el: etree._Element) -> object:
        user = session.jid.bare
        initial = not session.get(ONLINE)
        session.set(ONLINE, True)
        await _settle(self.ctx.run(hooks.presence_broadcast,
                                     StanzaEvent(el, session.jid, user, session, mutable=True)))
        roster = await self.roster.roster(user)
        await self._to_contacts(user, el, [i.contact for i in roster.items.values()
                                           if has_from(i)])
        self._to_own_resources(user, el, session, include_sender=True)
        if initial:
            for other in self.sessions.resources(user):
                if other is not session and other.available and other.presence is not None:
                    p = copy.deepcopy(other.presence)
                    p.set("from", str(other.jid))
                    p.set("to", str(session.jid))
                    session.send_element(p)
            pending = await self.roster.pending_requests(user)             # §3.1.3
            early = session.pop(EARLY_REQUESTS) or set()    # delivered meanwhile: not twice
            session.set(PENDING_GIVEN, True)
            for asker in pending:
                if asker not in early:
                    session.send_element(_presence("subscribe", asker, user))
            for item in list(roster.items.values()):
                # A local contact without sessions would not answer (§4.3.2, option 2).
                if has_to(item) and (item.contact.domain not in self.local_domains
                                     or self.sessions.resources(item.contact)):
                    self.ctx.send(_presence("probe", user, item.contact))
        # Offline messages come after the presence of contacts (XEP-0160 §2).
        await _settle(self.ctx.run(hooks.session_available, AvailableEvent(session, initial)))
        return STOP

    async def unavailable(self, session: Any, el: etree._Element) -> object:
        session.pop(PENDING_GIVEN)          # the next available presence is an initial one
        if session.pop(ONLINE):
            status = el.findtext(_C + "status") or ""
            await self._gone(session, el, status, include_sender=True)
        return STOP

    def on_closed(self, ev: hooks.SessionEvent) -> Any:
        """§4.5.4: the stream went away (closed, dropped, timed out) without a goodbye."""
        session = ev.session

        async def gone() -> object:
            if session.pop(ONLINE):
                await self._gone(session, _presence("unavailable", session.jid, None), "",
                                 include_sender=False)
            return None
        return self.serial.run(session.jid, gone)

    async def _gone(self, session: Any, el: etree._Element, status: str,
                    include_sender: bool) -> None:
        user = session.jid.bare
        el.set("from", str(session.jid))
        roster = await self.roster.roster(user)
        contacts = [i.contact for i in roster.items.values() if has_from(i)]
        await self._to_contacts(user, el, contacts)
        self._to_own_resources(user, el, session, include_sender=include_sender)
        directed = session.pop(DIRECTED) or {}
        for target in directed:                                             # §4.6.3
            p = copy.deepcopy(el)
            p.set("to", str(target))
            self.ctx.send(p)
        if not any(s.available for s in self.sessions.resources(user) if s is not session):
            await _settle(self.ctx.run(hooks.user_offline, UserOffline(user, status)))

    async def _to_contacts(self, user: JID, el: etree._Element, contacts: list[JID]) -> None:
        """One routed copy per allowed contact (the router serialises once per contact).
        A local contact without sessions is skipped: the router would drop the copy anyway
        (presence is not stored, RFC 6121 §8.5.2.2.2), after running every inbound hook."""
        for contact in contacts:
            if contact.domain in self.local_domains and not self.sessions.resources(contact):
                continue
            allowed = self.ctx.fold(hooks.may_see_presence, PresenceQuery(user, contact),
                                      False)
            if isinstance(allowed, defer.Deferred):
                allowed = await allowed
            if allowed:
                p = copy.deepcopy(el)
                p.set("to", str(contact))
                self.ctx.send(p)

    def _to_own_resources(self, user: JID, el: etree._Element, sender: Any,
                          include_sender: bool) -> None:
        """§4.2.2, §4.4.2, §4.5.2: an entity is implicitly subscribed to its own presence."""
        targets = [s for s in self.sessions.resources(user)
                   if s.available or (include_sender and s is sender)]
        if targets:
            p = copy.deepcopy(el)
            p.set("to", str(user))
            data = serialize(p)
            for s in targets:
                s.send_bytes(data)

    # -- directed presence and probes ------------------------------------------------------
    def directed(self, session: Any, to: JID, kind: str | None) -> object:
        directed = session.setdefault(DIRECTED, dict)
        if kind == "unavailable":
            directed.pop(to, None)
            return None
        if not session.get(ONLINE) or to in directed:
            return None
        roster = self.roster.cached(session.jid.bare)
        if roster is not None and has_from(roster.items.get(to.bare)) and to.resource is None:
            return None                 # the broadcast reaches it anyway
        if len(directed) < self.max_directed:
            directed[to] = None
        return None

    async def answer_probe(self, prober: JID, contact: JID) -> object:
        """§4.3.2, on behalf of local user `contact`."""
        sessions = self.sessions.resources(contact)
        if contact.local is None or prober == contact or not sessions:
            return STOP
        roster = await self.roster.roster(contact)
        if not has_from(roster.items.get(prober)):
            # §4.3.2 rule 1 (SHOULD); this never touches a pre-approval (§3.4).
            self.ctx.send(_presence("unsubscribed", contact, prober))
            return STOP
        allowed = self.ctx.fold(hooks.may_see_presence, PresenceQuery(contact, prober), False)
        if isinstance(allowed, defer.Deferred):
            allowed = await allowed
        if allowed:
            for s in sessions:
                if s.available and s.presence is not None:
                    p = copy.deepcopy(s.presence)
                    p.set("from", str(s.jid))
                    p.set("to", str(prober))
                    self.ctx.send(p)
        return STOP


def _presence(kind: str | None, sender: JID, to: JID | None) -> etree._Element:
    el = etree.Element(_C + "presence", nsmap={None: ns.CLIENT})  # type: ignore[dict-item]
    if kind is not None:
        el.set("type", kind)
    el.set("from", str(sender))
    if to is not None:
        el.set("to", str(to))
    return el


async def _settle(result: Any) -> Any:
    if isinstance(result, defer.Deferred):
        return await result
    return result
