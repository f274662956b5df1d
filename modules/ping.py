# tests: tests/modules/test_ping.py, tests/integration/test_core_slixmpp.py
"""XEP-0199: XMPP Ping — answer pings to the server and on behalf of accounts.

- A ping to this server (§4.2) or to a local user's bare JID (answered for the account, §4.4
  note) gets an empty result. Pings to full JIDs are routed to the client like any IQ.
Not here: the server pinging idle clients (the heartbeat, a later issue).

Config ([modules.ping]): none.
Storage: none.
"""
from __future__ import annotations

from stanzas import iq, ns
from xmppd.module import IqRequest, Module, ModuleContext, NoOptions


class Ping(Module[NoOptions]):
    name = "ping"
    xeps = (199,)

    def __init__(self, ctx: ModuleContext[NoOptions]) -> None:
        ctx.disco_feature(ns.PING)
        ctx.iq_get(ns.PING, "ping", self.pong, to=("host", "bare"))

    def pong(self, req: IqRequest) -> iq.Reply:
        return iq.result(req.stanza)
