# tests: tests/modules/test_blocking.py, tests/integration/test_blocking_vcard_slixmpp.py
"""XEP-0191: Blocking Command — a user stops all traffic with a JID and appears offline to it.

- `<blocklist/>` get, `<block/>` and `<unblock/>` set, sent with no 'to' (§3.2–§3.5). A block
  without items is <bad-request/> (§3.3); an item that is not a JID, <jid-malformed/>; an empty
  `<unblock/>` unblocks everyone (§3.5). Each change is pushed to every resource of the user
  that requested the blocklist (§3.3, §3.4, §3.5).
- Items match as XEP-0191 §6 / XEP-0016 say: user@domain/resource only that resource,
  user@domain any resource, domain/resource only that resource, domain everything there. A
  user's own resources are never blocked from each other (§5 note), nor the user's own server.
- Inbound from a blocked JID (§3.3): presence is dropped without an answer, messages get
  <service-unavailable/>, IQ get/set get <service-unavailable/>, IQ results and errors are
  dropped; so the user looks offline. Outbound to a blocked JID: not routed, answered with
  <not-acceptable/> + <blocked xmlns='urn:xmpp:blocking:errors'/> (§3.3).
- A blocked JID may not see the user's presence or last activity (`may_see_presence` veto).
  On block it gets unavailable presence from each available resource, on unblock the current
  presence, both only if it was (or now is) allowed to see the user's presence (§3.3, §3.4);
  for a blocked domain, that is the user's contacts there.
  "Polite blocking" (§4): subscriptions are left as they are.
- Blocklists of online users are kept in memory, so delivery reads no database; an offline
  user's list is read through the cached store (an offline delivery touches storage anyway).
Not here: privacy lists (XEP-0016); subscription state (modules/roster.py).

Config ([modules.blocking]):
  max_items   int   default 1000   blocklist entries per user; beyond: <not-acceptable/>
Storage: KeyValueStore, namespace "urn:xmpp:blocking" (newline-separated JIDs).
Optional: the roster module (RosterService, looked up when needed): a blocked domain stands
for the user's contacts there; without it nobody is subscribed, so nobody is told.
"""
from __future__ import annotations

from collections.abc import Iterable
from copy import deepcopy
from dataclasses import dataclass
from typing import Any, TypeVar

from lxml import etree
from twisted.internet import defer
from twisted.python.failure import Failure

from modules.roster import RosterService
from stanzas import iq, ns
from stanzas.errors import StanzaError, error_reply
from xmppd.cluster.api import cluster_memory
from xmppd import hooks
from xmppd.hooks import EARLY, FIRST, STOP, PresenceQuery, SessionEvent, StanzaEvent, Stop
from xmppd.hooks import UserEvent
from stanzas.jid import JID, JIDError
from xmppd.concurrency import KeyedLock, OneLoad
from xmppd.module import IqRequest, Module, ModuleContext, SessionKey, number

NS = ns.BLOCKING
_B = "{%s}" % NS
# this resource asked for the blocklist: it gets pushes (XEP-0191 §3.3)
_REQUESTED: SessionKey[bool] = SessionKey("blocking.requested", shared=True)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class BlockingOptions:
    max_items: int = number(default=1000, minimum=1, maximum=100000)


class Blocklist:
    """A user's blocked JIDs, in the order they were blocked, with §6 matching."""

    __slots__ = ("items", "_jids", "_domains")

    def __init__(self, items: Iterable[JID] = ()) -> None:
        self.items: tuple[JID, ...] = tuple(dict.fromkeys(items))
        self._jids = {j for j in self.items if j.local is not None or j.resource is not None}
        self._domains = {j.domain for j in self.items if j.local is None and j.resource is None}

    def __len__(self) -> int:
        return len(self.items)

    def __contains__(self, jid: JID) -> bool:
        return jid in self._jids or (jid.local is None and jid.resource is None
                                     and jid.domain in self._domains)

    def matches(self, jid: JID) -> bool:
        """Is an entity with address `jid` blocked? (XEP-0191 §6, XEP-0016 §2.1 order)"""
        if not self.items:
            return False
        return (jid in self._jids or (jid.resource is not None and jid.bare in self._jids)
                or jid.domain in self._domains)

    def encode(self) -> bytes:
        return "\n".join(map(str, self.items)).encode()

    @classmethod
    def decode(cls, data: bytes | None) -> Blocklist:
        items = []
        for line in (data or b"").decode().split("\n"):
            try:
                items.append(JID.parse(line))
            except JIDError:
                continue        # only ever written from parsed JIDs; "" is the empty list
        return cls(items)


EMPTY = Blocklist()


class Blocking(Module[BlockingOptions]):
    name = "blocking"
    xeps = (191,)
    Options = BlockingOptions

    def __init__(self, ctx: ModuleContext[BlockingOptions]) -> None:
        self.ctx = ctx
        self.kv = ctx.stores.kv
        self.server_jid = JID.of(None, ctx.host)
        self.online: dict[JID, Blocklist] = {}            # users with a session here
        self.loading: OneLoad[JID, Blocklist] = OneLoad(self._unreadable)
        self.locks: KeyedLock[JID] = KeyedLock()       # one change per user at a time
        # A cluster node forgets a list another node changed (docs/CLUSTER.md).
        self.cluster = cluster_memory(ctx, "blocking", lambda user: self.online.pop(user, None))
        ctx.disco_feature(NS)
        ctx.iq_get(NS, "blocklist", self.blocklist, to="self")
        ctx.iq_set(NS, "block", self.block, to="self")
        ctx.iq_set(NS, "unblock", self.unblock, to="self")
        ctx.hook(hooks.user_inbound, self.inbound, priority=FIRST)
        ctx.hook(hooks.stanza_in, self.outbound, priority=EARLY)
        ctx.hook(hooks.may_see_presence, self.veto, priority=EARLY)
        ctx.hook(hooks.session_bound, self.warm)
        ctx.hook(hooks.session_closed, self.cool)
        ctx.hook(hooks.user_deleted, self.forget)

    # -- the list, from memory or the store -----------------------------------------------------
    def list_of(self, user: JID) -> Blocklist | defer.Deferred[Blocklist]:
        """The user's blocklist: at once if in memory, else a Deferred. Concurrent loads of one
        user share one read and fire in the order they were asked (stanza order is kept)."""
        found = self.online.get(user)
        if found is not None:
            return found
        return self.loading(user, lambda: self._read(user))

    async def _read(self, user: JID) -> Blocklist:
        found = Blocklist.decode(await self.kv.get(user, NS))
        if self.ctx.sessions.resources(user):
            self.online[user] = found
        return found

    def _unreadable(self, user: JID, failure: Failure) -> Blocklist:
        # Deliver rather than drop everything; the next stanza tries again.
        self.ctx.log.warning("blocklist of %s unreadable: %s", user, failure.value)
        return EMPTY

    def _then(self, user: JID, fn: Any) -> Any:
        found = self.list_of(user)
        if isinstance(found, defer.Deferred):
            return found.addCallback(fn)
        return fn(found)

    def warm(self, ev: SessionEvent) -> None:
        user = ev.session.jid.bare
        if user not in self.online and user not in self.loading:
            self.list_of(user)          # read ahead: the first stanza finds it in memory

    def cool(self, ev: SessionEvent) -> None:
        user = ev.session.jid.bare
        if any(s is not ev.session for s in self.ctx.sessions.resources(user)):
            return
        self.online.pop(user, None)

    async def forget(self, ev: UserEvent) -> None:
        self.online.pop(ev.user, None)
        await self.kv.delete(ev.user, NS)          # the rows went with the account; the cache

    # -- enforcement -------------------------------------------------------------------------
    def inbound(self, ev: StanzaEvent) -> Any:
        """A stanza for a local user from someone else (XEP-0191 §3.3)."""
        sender, user = ev.sender, ev.to.bare
        if sender == self.server_jid:
            return None                 # the user's own server (pings, pushes) is no contact
        if ev.stanza.tag == _PRESENCE and ev.stanza.get("type") != "unavailable":
            # The server speaking for a local user who blocked the recipient (broadcasts,
            # probe answers): a blocked JID sees that user offline, whatever path it takes.
            mine = self.online.get(sender.bare)
            if mine is not None and sender.bare != user and mine.matches(ev.to):
                return STOP
        return self._then(user, lambda found: self._refuse_inbound(ev, found))

    def _refuse_inbound(self, ev: StanzaEvent, found: Blocklist) -> object:
        if not found.matches(ev.sender):
            return None
        el = ev.stanza
        kind = el.get("type")
        if el.tag == _PRESENCE:
            return STOP                 # "MUST NOT respond and MUST NOT return an error"
        if (el.tag == _MESSAGE and kind != "error") or (el.tag == _IQ and kind in ("get", "set")):
            # Messages: "SHOULD return an error, which SHOULD be <service-unavailable/>";
            # IQ get/set: "MUST return an error, which SHOULD be <service-unavailable/>".
            self.ctx.send(error_reply(el, StanzaError.service_unavailable()))
        return STOP                     # IQ results/errors, message errors: silently dropped

    def outbound(self, ev: StanzaEvent) -> Any:
        """A stanza from a local client; refused if addressed to a JID it blocked (§3.3)."""
        if ev.stanza.get("to") is None or ev.to.bare == ev.sender.bare or ev.to == self.server_jid:
            return None
        return self._then(ev.sender.bare, lambda found: self._refuse_outbound(ev, found))

    def _refuse_outbound(self, ev: StanzaEvent, found: Blocklist) -> object:
        if not found.matches(ev.to):
            return None
        el = ev.stanza
        kind = el.get("type")
        if kind == "error" or (el.tag == _IQ and kind == "result"):
            return STOP                 # never answer errors or results (RFC 6120 §8.2.3, §8.3.1)
        # "MUST return a <not-acceptable/> error containing ... <blocked/>". Straight back to the
        # sending session: routed, it would come from the blocked JID and be dropped inbound.
        reply = error_reply(el, StanzaError("not-acceptable",
                                            app=iq.empty(ns.BLOCKING_ERRORS, "blocked")))
        if ev.session is not None:
            ev.session.send_element(reply)
        return STOP

    def veto(self, q: PresenceQuery, allowed: bool) -> Any:
        """may_see_presence: a blocked JID sees the user offline (and no last activity)."""
        if q.asker == q.user:
            return allowed
        return self._then(q.user, lambda found: Stop(False) if found.matches(q.asker) else allowed)

    # -- the protocol ----------------------------------------------------------------------
    async def blocklist(self, req: IqRequest) -> iq.Reply:
        found = await _value(self.list_of(req.sender.bare))
        if req.session is not None:
            req.session.set(_REQUESTED, True)            # it gets pushes from now on (§3.3)
        return iq.result(req.stanza, _element("blocklist", found.items))

    async def block(self, req: IqRequest) -> iq.Reply:
        items = _items(req.payload)
        if not items:
            raise StanzaError.bad_request("a block needs at least one item")   # §3.3 MUST
        user = req.sender.bare
        async with self.locks.hold(user):
            old = await _value(self.list_of(user))
            added = [j for j in dict.fromkeys(items) if j not in old]
            if len(old) + len(added) > self.ctx.options.max_items:
                raise StanzaError.not_acceptable(
                    f"a blocklist holds at most {self.ctx.options.max_items} JIDs")
            if not added:
                return iq.result(req.stanza)
            # Who may see our presence is decided before the block vetoes it (§3.3).
            told = await self._watchers(user, added)
            await self._save(user, Blocklist(old.items + tuple(added)))
            for target in told:
                self._send_presence(user, target, available=False)
            self._push(user, _element("block", added))
        return iq.result(req.stanza)

    async def unblock(self, req: IqRequest) -> iq.Reply:
        items = _items(req.payload)
        user = req.sender.bare
        async with self.locks.hold(user):
            old = await _value(self.list_of(user))
            if items:
                gone = [j for j in dict.fromkeys(items) if j in old]
                remaining = Blocklist(j for j in old.items if j not in set(gone))
            else:
                gone, remaining = list(old.items), EMPTY                  # unblock all (§3.5)
            if not gone:
                return iq.result(req.stanza)
            await self._save(user, remaining)
            for target in await self._watchers(user, gone):
                self._send_presence(user, target, available=True)       # §3.4
            self._push(user, _element("unblock", gone if items else ()))
        return iq.result(req.stanza)

    # -- helpers ---------------------------------------------------------------------------
    async def _save(self, user: JID, new: Blocklist) -> None:
        if new.items:
            ok = await self.kv.put(user, NS, new.encode(), self.ctx.clock.now())
        else:
            ok = True
            await self.kv.delete(user, NS)
        if not ok:
            raise StanzaError.internal_server_error("the account is gone")
        if self.ctx.sessions.resources(user):
            self.online[user] = new
        if self.cluster is not None:
            self.cluster.changed("blocking", user)

    async def _watchers(self, user: JID, items: list[JID]) -> list[JID]:
        """Those addressed by `items` who may see `user`'s presence ("only if the JID is allowed
        to receive presence notifications", §3.3, §3.4). A domain item stands for the user's
        contacts at that domain."""
        out: list[JID] = []
        contacts: list[JID] | None = None
        for item in items:
            if item.local is None and item.resource is None:
                if contacts is None:
                    contacts = await self._contacts(user)
                candidates = [c for c in contacts if c.domain == item.domain]
            else:
                candidates = [item]
            for c in candidates:
                if c.bare != user and c not in out and await self._may_see(user, c):
                    out.append(c)
        return out

    async def _contacts(self, user: JID) -> list[JID]:
        try:
            roster = self.ctx.service(RosterService)        # optional (module docstring)
        except LookupError:
            return []                   # no roster module: nobody is subscribed
        return list((await roster.roster(user)).items)

    async def _may_see(self, user: JID, contact: JID) -> bool:
        q = PresenceQuery(user=user, asker=contact.bare)
        allowed: bool | defer.Deferred[bool] = self.ctx.fold(hooks.may_see_presence, q, False)
        return bool(await _value(allowed))

    def _send_presence(self, user: JID, target: JID, *, available: bool) -> None:
        """Each available resource's presence to `target`: unavailable (block) or current."""
        for s in self.ctx.sessions.resources(user):
            if not s.available:
                continue
            if available:
                if s.presence is None:
                    continue
                el = deepcopy(s.presence)
                if "id" in el.attrib:
                    del el.attrib["id"]
            else:
                el = iq.empty(ns.CLIENT, "presence")
                el.set("type", "unavailable")
            el.set("from", str(s.jid))
            el.set("to", str(target))
            self.ctx.send(el)

    def _push(self, user: JID, payload: etree._Element) -> None:
        """§3.3–§3.5: an IQ-set to every resource that requested the blocklist."""
        for s in self.ctx.sessions.resources(user):
            if s.get(_REQUESTED):
                self.ctx.send(iq.request("set", to=str(s.jid), sender=str(user),
                                         payload=deepcopy(payload)))


_C = "{%s}" % ns.CLIENT
_PRESENCE, _MESSAGE, _IQ = _C + "presence", _C + "message", _C + "iq"


def _items(payload: etree._Element) -> list[JID]:
    out = []
    for item in payload.iter(_B + "item"):
        text = item.get("jid")
        if not text:
            raise StanzaError.bad_request("an <item/> needs a 'jid'")
        try:
            out.append(JID.parse(text))
        except JIDError as e:
            raise StanzaError.jid_malformed(f"{text!r}: {e}") from None
    return out


def _element(name: str, items: Iterable[JID]) -> etree._Element:
    el = iq.empty(NS, name)
    for jid in items:
        etree.SubElement(el, _B + "item", jid=str(jid))
    return el


async def _value(x: T | defer.Deferred[T]) -> T:
    if isinstance(x, defer.Deferred):
        return await x
    return x
