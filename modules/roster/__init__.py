# tests: tests/modules/test_roster.py, tests/modules/test_subscriptions.py, tests/integration/test_contacts_slixmpp.py
"""RFC 6121 §2–§3: the roster (jabber:iq:roster) and presence subscriptions.

- Roster get (§2.2) answers the user's items and makes the session "interested" (§2.1.6); with
  a `ver` equal to the current version the answer is an empty result (§2.6.3, XEP-0237), with
  any other `ver` the full roster. Every change that clients can see bumps the version and is
  pushed, with its `ver`, to every interested resource (§2.1.6).
- Roster set (§2.3–§2.5) adds or updates name and groups, or removes an item; removal cancels
  the subscriptions both ways (§2.5.2). Errors exactly as §2.3.3: <forbidden/> for someone
  else's roster, <bad-request/> for several items or duplicate groups, <not-acceptable/> for a
  too-long name or group or an empty group; <jid-malformed/> for a bad 'jid'; removing an item
  that is not there <item-not-found/> (§2.5.3). More than `max_items` items: <not-allowed/>
  (RFC 6120 §8.3.3.10, type cancel: a quota does not lift on retry; <resource-constraint/>,
  §8.3.3.18, is type wait and says "try later").
- Subscriptions (§3) are table-driven from Appendix A: outbound processing on the user's side,
  then inbound processing on the contact's side, both local (remote domains are bounced by the
  router). `from`/`to` are stamped with bare JIDs (§3.1.2). A request to an offline user is kept
  (pending-in) and delivered at every initial presence until answered (§3.1.3). Pre-approvals
  (§3.4) are supported and advertised. Gaining or losing a 'from' subscription sends the user's
  presence or unavailable presence to the contact (§3.1.5, §3.2.2, §3.3.3).
- Folds `may_see_presence`: True when the asker has a 'from' or 'both' subscription.
- `RosterService` (ctx.service) lets other modules read rosters: `get(user)`, `subscription(user,
  contact)`. The roster of a user with sessions is kept in memory, so presence broadcasts and
  probe answers never reach the database; others are read through the cached store.
The package: this file (IQ handlers, subscription processing, hooks), `states.py` (Appendix A
as data), `service.py` (RosterService: in-memory rosters, locked writes, pushes).
Not here: presence broadcast and probes (modules/presence.py), storage (storage/roster.py).

Config ([modules.roster]):
  max_items        int   default 1000   items per roster; more: <not-allowed/>
  max_name_length  int   default 1023   characters of an item name or group name
Storage: RosterStore, behind the cache.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, replace

from lxml import etree
from twisted.internet import defer

from modules.roster.service import EARLY_REQUESTS, INTERESTED, PENDING_GIVEN, RosterService, \
    item_element
from modules.roster.states import AUTO_REPLY, INBOUND, OUTBOUND, PRE_APPROVABLE, PRE_APPROVED, \
    has_from, has_to, state, with_state
from stanzas import iq, ns
from stanzas.errors import StanzaError, error_reply
from storage.roster import RosterItem
from xmppd import hooks
from xmppd.hooks import STOP, PresenceQuery, StanzaEvent
from stanzas.jid import JID, JIDError
from xmppd.module import IqRequest, Module, ModuleContext, number

__all__ = ["RosterModule", "RosterOptions", "RosterService", "has_from", "has_to",
           "INTERESTED", "EARLY_REQUESTS", "PENDING_GIVEN"]

_Q = "{%s}" % ns.ROSTER
_C = "{%s}" % ns.CLIENT
ROSTERVER = ns.ROSTERVER
PREAPPROVAL = ns.PREAPPROVAL
SUBSCRIPTION_TYPES = frozenset({"subscribe", "subscribed", "unsubscribe", "unsubscribed"})


@dataclass(frozen=True, slots=True)
class RosterOptions:
    max_items: int = number(default=1000, minimum=1, maximum=1_000_000)
    max_name_length: int = number(default=1023, minimum=1, maximum=65536)


class RosterModule(Module[RosterOptions]):
    name = "roster"
    xeps = (237,)
    Options = RosterOptions

    def __init__(self, ctx: ModuleContext[RosterOptions]) -> None:
        self.ctx = ctx
        self.options = ctx.options
        self.service = RosterService(ctx, ctx.stores.roster)
        ctx.provide(self.service)
        ctx.provide(self)       # peers on other local hosts take inbound subscriptions
        ctx.iq_get(ns.ROSTER, "query", self.get, to=("self", "bare"))
        ctx.iq_set(ns.ROSTER, "query", self.set, to=("self", "bare"))
        ctx.stream_feature(lambda stream: iq.empty(ROSTERVER, "ver"))
        ctx.stream_feature(lambda stream: iq.empty(PREAPPROVAL, "sub"))
        ctx.hook(hooks.presence_in, self.on_presence, priority=hooks.EARLY)
        ctx.hook(hooks.may_see_presence, self.may_see)
        ctx.hook(hooks.session_bound, self.on_bound)
        ctx.hook(hooks.session_closed, self.on_closed, priority=hooks.LAST)
        ctx.hook(hooks.user_deleted, self.on_deleted)

    # -- jabber:iq:roster ------------------------------------------------------------------
    async def get(self, req: IqRequest) -> iq.Reply:
        user = req.sender.bare
        if req.to.bare != user:
            raise StanzaError.forbidden("that is someone else's roster")       # §2.3.3
        if req.session is not None:
            req.session.set(INTERESTED, True)                                # §2.1.6
        # Under the user's lock: a get right after a set sees the set (RFC 6120 §10.1 order).
        roster = await self.service.settled(user)
        ver = req.payload.get("ver")
        if ver is not None and ver == str(roster.version):
            return iq.result(req.stanza)                                        # §2.6.3
        q = iq.empty(ns.ROSTER, "query")
        q.set("ver", str(roster.version))
        for item in sorted(roster.items.values(), key=lambda i: str(i.contact)):
            if item.listed:
                q.append(item_element(item))
        return iq.result(req.stanza, q)

    async def set(self, req: IqRequest) -> iq.Reply:
        user = req.sender.bare
        if req.to.bare != user:
            raise StanzaError.forbidden("that is someone else's roster")       # §2.3.3
        items = req.payload.findall(_Q + "item")
        if len(items) != 1:
            raise StanzaError.bad_request("a roster set has exactly one item")  # §2.3.3
        el = items[0]
        contact = self._contact(el, user)
        if el.get("subscription") == "remove":
            await self._remove(user, contact)
            return iq.result(req.stanza)
        name = el.get("name") or ""
        limit = self.options.max_name_length
        if len(name) > limit:
            raise StanzaError.not_acceptable(f"names are at most {limit} characters")
        groups: list[str] = []
        for g in el.findall(_Q + "group"):
            text = g.text or ""
            if not text:
                raise StanzaError.not_acceptable("a group name cannot be empty")     # §2.3.3
            if len(text) > limit:
                raise StanzaError.not_acceptable(f"group names are at most {limit} characters")
            if text in groups:
                raise StanzaError.bad_request(f"group {text!r} appears twice")       # §2.3.3
            groups.append(text)

        def change(old: RosterItem | None) -> RosterItem:
            # §2.1.2: 'subscription' (other than remove), 'ask' and 'approved' are ignored.
            return replace(old or RosterItem(contact), name=name, groups=tuple(groups),
                           listed=True)
        await self.service.update(user, contact, change, room=self.options.max_items)
        return iq.result(req.stanza)

    def _contact(self, el: etree._Element, user: JID) -> JID:
        raw = el.get("jid")
        if not raw:
            raise StanzaError.bad_request("a roster item needs a 'jid'")
        try:
            contact = JID.parse(raw)
        except JIDError as e:
            raise StanzaError.jid_malformed(str(e)) from None
        if contact.resource is not None:
            # Subscriptions are between bare JIDs (§3.1.1); Prosody refuses these too.
            raise StanzaError.not_acceptable("roster items are bare JIDs")
        if contact == user:
            # The user is implicitly subscribed to itself (§4.2.2); Prosody refuses it too.
            raise StanzaError.not_allowed("you cannot add yourself")
        return contact

    async def _remove(self, user: JID, contact: JID) -> None:
        """§2.5: delete the item and cancel the subscriptions both ways (§2.5.2)."""
        def change(old: RosterItem | None) -> None:
            if old is None or not old.listed:
                raise StanzaError.item_not_found("no such item in the roster")      # §2.5.3
            return None
        old, _ = await self.service.update(user, contact, change)
        if old is None:
            return
        if has_to(old) or old.ask:
            await self._route_inbound(_subscription("unsubscribe", user, contact))
        if has_from(old) or old.pending_in:
            await self._route_inbound(_subscription("unsubscribed", user, contact))
        if has_from(old):
            self._send_unavailable(user, contact)

    # -- subscriptions (§3) ----------------------------------------------------------------
    def on_presence(self, ev: StanzaEvent) -> object:
        kind = ev.stanza.get("type")
        if kind not in SUBSCRIPTION_TYPES:
            return None
        return self._subscription(kind, ev)

    async def _subscription(self, kind: str, ev: StanzaEvent) -> object:
        if ev.session is not None:
            peer = self._module_for(ev.sender.domain)
            if peer is not None:
                await peer.outbound(kind, ev.stanza, ev.sender.bare, ev.to.bare)
        else:
            await self.inbound(ev.stanza)
        return STOP

    async def outbound(self, kind: str, stanza: etree._Element, user: JID, contact: JID) -> None:
        """A subscription stanza from the user's client (Appendix A.2)."""
        if contact == user or contact.local is None:
            return          # implicit self-subscription (§4.2.2); no account at a bare domain
        table = OUTBOUND[kind]
        routed: list[bool] = []

        def change(old: RosterItem | None) -> RosterItem | None:
            s = state(old)
            new_state = table.get(s, s)
            item = old or RosterItem(contact)
            if kind == "subscribed" and new_state == s:
                routed.append(False)
                if s in PRE_APPROVABLE and not item.approved:                      # §3.4.1
                    return replace(item, approved=True, listed=True)
                return old
            routed.append(kind in ("subscribe", "unsubscribe") or new_state != s)
            item = with_state(item, new_state)
            if kind == "subscribe":
                item = replace(item, listed=True)       # §3.1.2: the contact joins the roster
            if kind == "subscribed":
                item = replace(item, listed=True, approved=False)                  # §3.1.5
            if kind == "unsubscribed":
                item = replace(item, approved=False)    # cancels a pre-approval too
            return item
        try:
            old, new = await self.service.update(user, contact, change,
                                                 room=self.options.max_items)
        except StanzaError as e:
            if stanza.get("type") != "error":
                self.ctx.send(error_reply(stanza, e))
            return
        if routed and routed[0]:
            await self._route_inbound(_subscription(kind, user, contact, stanza))
        self._from_changed(user, contact, old, new)

    async def inbound(self, stanza: etree._Element) -> None:
        """A subscription stanza for a local user (Appendix A.3)."""
        kind = stanza.get("type") or ""
        try:
            sender, user = JID.parse(stanza.get("from") or "").bare, \
                JID.parse(stanza.get("to") or "").bare
        except JIDError:
            return
        if user.local is None or sender == user:
            return
        if not self.ctx.sessions.resources(user) and not await self.ctx.user_exists(user):
            if kind == "subscribe":     # RFC 6121 §8.5.1 / §3.1.3: no such user
                self.ctx.send(_subscription("unsubscribed", user, sender))
            return
        table = INBOUND[kind]
        outcome: list[str] = []

        def change(old: RosterItem | None) -> RosterItem | None:
            s = state(old)
            if kind == "subscribe" and s in AUTO_REPLY:
                outcome.append("auto-reply")
                return old
            if kind == "subscribe" and old is not None and old.approved and s in PRE_APPROVED:
                outcome.append("auto-reply")                                       # §3.4
                return replace(with_state(old, PRE_APPROVED[s]), approved=False)
            new_state = table.get(s, s)
            if new_state == s:
                return old
            outcome.append("deliver")
            return with_state(old or RosterItem(sender, listed=False), new_state)
        try:
            old, new = await self.service.update(user, sender, change,
                                                 room=self.options.max_items)
        except StanzaError:
            self.ctx.log.info("dropped a subscription request to %s: too many pending", user)
            return
        if "deliver" in outcome:
            self._deliver(user, _subscription(kind, sender, user, stanza))
            if kind == "subscribe":
                for s in self.ctx.sessions.resources(user):
                    if s.available and not s.get(PENDING_GIVEN):
                        s.setdefault(EARLY_REQUESTS, set).add(sender)
        elif "auto-reply" in outcome:
            self.ctx.send(_subscription("subscribed", user, sender))
        self._from_changed(user, sender, old, new)

    def _from_changed(self, user: JID, contact: JID, old: RosterItem | None,
                      new: RosterItem | None) -> None:
        if has_from(new) and not has_from(old):
            self._send_presence(user, contact)          # §3.1.5
        elif has_from(old) and not has_from(new):
            self._send_unavailable(user, contact)       # §3.2.2, §3.3.3

    async def _route_inbound(self, stanza: etree._Element) -> None:
        """Hand a stamped stanza to the contact's host: awaited, so the contact's side has
        processed it before the user's next stanza (ordering across the two rosters)."""
        to = JID.parse(stanza.get("to") or "")
        peer = self._module_for(to.domain)
        if peer is not None:
            await peer.inbound(stanza)
        elif to.domain not in self.ctx.local_domains:
            self.ctx.send(stanza)       # a remote contact: its server processes it (s2s)

    def _module_for(self, domain: str) -> RosterModule | None:
        return self.ctx.service_on(domain, RosterModule)

    def _deliver(self, user: JID, stanza: etree._Element) -> None:
        """To every available resource (§3.1.3); offline requests stay pending (pending-in)
        and the presence module delivers them at the next initial presence."""
        targets = [s for s in self.ctx.sessions.resources(user) if s.available]
        if targets:
            data = etree.tostring(stanza)
            for s in targets:
                s.send_bytes(data)

    def _send_presence(self, user: JID, contact: JID) -> None:
        allowed = self.ctx.fold(hooks.may_see_presence, PresenceQuery(user, contact), False)
        if isinstance(allowed, defer.Deferred):
            def then(ok: bool) -> None:
                if ok:
                    self._send_presence_now(user, contact)
            allowed.addCallback(then)
        elif allowed:
            self._send_presence_now(user, contact)

    def _send_presence_now(self, user: JID, contact: JID) -> None:
        for s in self.ctx.sessions.resources(user):
            if s.available and s.presence is not None:
                p = copy.deepcopy(s.presence)
                p.set("from", str(s.jid))
                p.set("to", str(contact))
                self.ctx.send(p)

    def _send_unavailable(self, user: JID, contact: JID) -> None:
        for s in self.ctx.sessions.resources(user):
            if s.available:
                self.ctx.send(_presence("unavailable", s.jid, contact))

    # -- hooks -----------------------------------------------------------------------------
    def may_see(self, q: PresenceQuery, acc: bool) -> bool | defer.Deferred[bool]:
        live = self.service.cached(q.user)
        if live is not None:
            return acc or has_from(live.items.get(q.asker.bare))

        async def slow() -> bool:
            return acc or await self.service.subscription(q.user, q.asker) in ("from", "both")
        return defer.Deferred.fromCoroutine(slow())

    async def on_bound(self, ev: hooks.SessionEvent) -> None:
        await self.service.roster(ev.session.jid.bare)      # load it while the client logs in

    def on_closed(self, ev: hooks.SessionEvent) -> None:
        self.service.forget(ev.session.jid.bare)

    async def on_deleted(self, ev: hooks.UserEvent) -> None:
        """The account is gone: its contacts' subscriptions to and from it end (as if it had
        removed every item, §2.5.2), so a later account of the same name inherits nothing."""
        user = ev.user
        holders = await self.service.store.holders(user)
        await self.service.store.delete_user(user)
        self.service.forget(user)
        for holder in holders:
            self.ctx.send(_subscription("unsubscribe", user, holder))
            self.ctx.send(_subscription("unsubscribed", user, holder))


def _presence(kind: str | None, sender: JID, to: JID) -> etree._Element:
    el = etree.Element(_C + "presence", nsmap={None: ns.CLIENT})  # type: ignore[dict-item]
    if kind is not None:
        el.set("type", kind)
    el.set("from", str(sender))
    el.set("to", str(to))
    return el


def _subscription(kind: str, sender: JID, to: JID,
                  original: etree._Element | None = None) -> etree._Element:
    """A subscription stanza stamped with bare JIDs (§3.1.2), keeping the original's id and
    payload (a status text, an XEP-0172 nick)."""
    el = _presence(kind, sender, to)
    if original is not None:
        if original.get("id"):
            el.set("id", original.get("id") or "")
        for child in original:
            if isinstance(child.tag, str):
                el.append(copy.deepcopy(child))
    return el
