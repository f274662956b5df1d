# tests: tests/modules/test_core_modules.py, tests/modules/test_ping_keepalive.py, tests/integration/test_core_slixmpp.py, tests/integration/test_heartbeat.py
"""XEP-0199: XMPP Ping — answer pings, and find dead client links.

- A ping to this server (§4.2) or to a user's bare JID (§4.4 note) gets an empty result.
- Heartbeat: a client silent for `keepalive_interval` is pinged (§4.1); silent `keepalive_timeout`
  more, its stream closes with <connection-timeout/>. Any traffic, even an error (§4.1), will do.

Config ([modules.ping]):
  keepalive_interval  duration | "off"  default "off"   idle time before the server pings
  keepalive_timeout   duration          default "30 s"  how long to wait for a sign of life
Storage: none.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from twisted.python.failure import Failure
from stanzas import iq, ns
from stanzas.errors import StreamError
from xmppd.hooks import IdleEvent
from xmppd.module import IqRequest, IqTimeout, Module, ModuleContext, SessionKey, duration

_PINGED: SessionKey[bool] = SessionKey("ping.pinged", resumable=False)   # one at a time


@dataclass(frozen=True, slots=True)
class PingOptions:
    keepalive_interval: float | None = duration(default=None, minimum=1)
    keepalive_timeout: float = duration(default="30 s", minimum=1)


class Ping(Module[PingOptions]):
    name = "ping"
    xeps = (199,)
    Options = PingOptions

    def __init__(self, ctx: ModuleContext[PingOptions]) -> None:
        self.ctx = ctx
        ctx.disco_feature(ns.PING)
        ctx.iq_get(ns.PING, "ping", self.pong, to=("host", "bare"))
        if ctx.options.keepalive_interval is not None:
            ctx.on_idle(ctx.options.keepalive_interval, self.probe)

    def pong(self, req: IqRequest) -> iq.Reply:
        return iq.result(req.stanza)

    def probe(self, ev: IdleEvent) -> None:
        session, sent_at = ev.session, self.ctx.clock.now()
        if session.get(_PINGED) or session.closing:
            return
        session.set(_PINGED, True)
        ping = iq.request("get", to=str(session.jid), payload=iq.empty(ns.PING, "ping"))

        def settled(result: Any) -> None:
            session.pop(_PINGED)
            if isinstance(result, Failure) and isinstance(result.value, IqTimeout) \
                    and session.last_activity <= sent_at:
                session.close(StreamError.connection_timeout("no answer to a ping (XEP-0199)"))
        self.ctx.send_iq(ping, timeout=self.ctx.options.keepalive_timeout).addBoth(settled)
