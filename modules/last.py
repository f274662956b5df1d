# tests: tests/modules/test_last.py, tests/storage/test_last_store.py, tests/integration/test_contacts_slixmpp.py
"""XEP-0012: Last Activity — "last seen" for contacts, uptime for the server.

- To the server's JID: seconds since this node started (XEP-0012 §5).
- To a user's bare JID: only the user and those allowed to see their presence may ask;
  anyone else gets <forbidden/> (§3, §8 "presence leak"). If any resource is available the
  answer is seconds='0' (§3); otherwise seconds since the last available resource went away,
  with the status text of its unavailable presence. (A resource that is connected but never
  sent presence counts as offline, as contacts see it.)
- To a full JID the router delivers the query to the client (§4), but not from someone who
  may not see the user's presence: they get <forbidden/> (§4).
Config: none.   Storage: LastActivityStore, behind the cache.
"""
from __future__ import annotations

from lxml import etree
from twisted.internet import defer

from stanzas import iq, ns
from stanzas.errors import StanzaError, error_reply
from storage.errors import NoSuchAccount
from storage.last import LastSeen
from xmppd import hooks
from xmppd.hooks import STOP, PresenceQuery, StanzaEvent
from stanzas.jid import JID
from xmppd.module import IqRequest, Module, ModuleContext, NoOptions

NS = ns.LAST
_QUERY = "{%s}query" % NS
_IQ = "{jabber:client}iq"


class LastActivity(Module[NoOptions]):
    name = "last"
    xeps = (12,)
    depends = ("roster",)  # may_see_presence is folded by roster (+ blocking, if loaded)

    def __init__(self, ctx: ModuleContext[NoOptions]) -> None:
        self.ctx = ctx
        self.clock = ctx.clock
        self.store = ctx.stores.last
        self.sessions = ctx.sessions
        self.started_at = ctx.started_at

        ctx.disco_feature(NS)
        ctx.iq_get(NS, "query", self.uptime, to="host")
        ctx.iq_get(NS, "query", self.last_seen, to=("self", "bare"))
        ctx.hook(hooks.user_inbound, self.guard_full_jid)
        ctx.hook(hooks.user_registered, self.remember_registration)
        ctx.hook(hooks.user_offline, self.remember_logout)
        ctx.hook(hooks.user_deleted, self.forget)

    def uptime(self, req: IqRequest) -> iq.Reply:
        return iq.result(req.stanza, _query(self._since(self.started_at)))

    async def last_seen(self, req: IqRequest) -> iq.Reply:
        user, asker = req.to.bare, req.sender.bare
        if asker != user and not await self._may_see(user, asker):
            raise StanzaError.forbidden()           # §3 MUST; ejabberd differs, the XEP wins
        if self.sessions.is_online(user):
            return iq.result(req.stanza, _query(0))     # §3: online now
        seen = await self.store.get(user)
        if seen is None:                            # accounts older than this module, or none
            raise StanzaError.service_unavailable("no last activity recorded")
        return iq.result(req.stanza, _query(self._since(seen.at), seen.status))

    def guard_full_jid(self, ev: StanzaEvent) -> object:
        """§4: a query to a full JID from someone who may not see the user's presence."""
        el = ev.stanza
        if (el.tag != _IQ or el.get("type") != "get" or ev.to.resource is None
                or el.find(_QUERY) is None):
            return None

        async def check() -> object:
            if await self._may_see(ev.to.bare, ev.sender.bare):
                return None
            self.ctx.send(error_reply(el, StanzaError.forbidden()))
            return STOP
        return check()

    async def _may_see(self, user: JID, asker: JID) -> bool:
        allowed = self.ctx.fold(hooks.may_see_presence, PresenceQuery(user, asker), False)
        return bool(await allowed) if isinstance(allowed, defer.Deferred) else allowed

    async def remember_registration(self, ev: hooks.UserEvent) -> None:
        # Something exists before the first logout ("registered n seconds ago"), as ejabberd.
        await self.store.put(ev.user, LastSeen(at=self.clock.now(), status=""))

    async def remember_logout(self, ev: hooks.UserOffline) -> None:
        try:
            await self.store.put(ev.user, LastSeen(at=self.clock.now(), status=ev.status))
        except NoSuchAccount:
            pass                    # the session closed because the account was deleted

    async def forget(self, ev: hooks.UserEvent) -> None:
        await self.store.delete(ev.user)

    def _since(self, t: float) -> int:
        return max(0, int(self.clock.now() - t))   # clocks can step back; never negative


def _query(seconds: int, status: str = "") -> etree._Element:
    q = iq.empty(NS, "query")
    q.set("seconds", str(seconds))
    if status:
        q.text = status
    return q
