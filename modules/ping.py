# tests: tests/modules/test_core_modules.py, tests/modules/test_ping_keepalive.py, tests/integration/test_core_slixmpp.py, tests/integration/test_heartbeat.py
"""XEP-0199: XMPP Ping — answer pings, and find dead client links.

- A ping to this server (§4.2) or to a local user's bare JID (answered for the account, §4.4
  note) gets an empty result. Pings to full JIDs are routed to the client like any IQ.
- Heartbeat: with `keepalive_interval` set, a client that has sent nothing (not even
  whitespace) for that long is pinged (§4.1); if it sends nothing at all within
  `keepalive_timeout`, its stream closes with <connection-timeout/> (RFC 6120 §4.9.3.4), and the
  usual session_closed path tells its contacts it went offline. Any answer, even an error,
  proves the link is alive (§4.1 allows <service-unavailable/> or <feature-not-implemented/>),
  and so does any other traffic meanwhile. A silent link is found within interval + timeout.
Not here: the idle timer (the C2S shell sees every byte: `ModuleContext.on_idle`), TCP
keepalive (on in the shell).

Config ([modules.ping]):
  keepalive_interval  duration | "off"  default "off"   idle time before the server pings
  keepalive_timeout   duration          default "30 s"  how long to wait for a sign of life
Storage: none.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from twisted.internet import defer
from twisted.python.failure import Failure

from stanzas import iq, ns
from stanzas.errors import StanzaError, StreamError
from xmppd import hooks
from xmppd.hooks import IdleEvent, SessionEvent
from xmppd.module import IqRequest, IqTimeout, Module, ModuleContext, duration

_PENDING = "ping.pending"       # session.extra key: the Deferred of the ping in flight


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
        self.in_flight: set[defer.Deferred[Any]] = set()
        ctx.disco_feature(ns.PING)
        ctx.iq_get(ns.PING, "ping", self.pong, to=("host", "bare"))
        if ctx.options.keepalive_interval is not None:
            ctx.on_idle(ctx.options.keepalive_interval, self.probe)
            ctx.hook(hooks.session_closed, self.forget)

    def pong(self, req: IqRequest) -> iq.Reply:
        return iq.result(req.stanza)

    def probe(self, ev: IdleEvent) -> None:
        """Ping a silent client (§4.1); close its stream if it stays silent."""
        session = ev.session
        if session.extra.get(_PENDING) is not None or _closed(session):
            return                      # one ping at a time; its timeout decides
        sent_at = self.ctx.clock.now()
        ping = iq.request("get", to=str(session.jid), payload=iq.empty(ns.PING, "ping"))
        d = self.ctx.send_iq(ping, timeout=self.ctx.options.keepalive_timeout)
        session.extra[_PENDING] = d
        self.in_flight.add(d)

        def settled(result: object) -> None:
            self.in_flight.discard(d)
            if session.extra.get(_PENDING) is d:
                del session.extra[_PENDING]
            if not isinstance(result, Failure):
                return
            error = result.value
            if isinstance(error, IqTimeout):
                if not _heard_since(session, sent_at):
                    session.close(StreamError.connection_timeout(
                        "no answer to a ping (XEP-0199)"))
            # StanzaError: an error reply still proves the link works (§4.1);
            # CancelledError: the session ended or the module stopped first.
            elif not isinstance(error, (StanzaError, defer.CancelledError)):
                self.ctx.log.error("keepalive ping failed: %s", error)
        d.addBoth(settled)

    def forget(self, ev: SessionEvent) -> None:
        pending = ev.session.extra.get(_PENDING)
        if pending is not None:
            pending.cancel()

    async def stop(self) -> None:
        for d in list(self.in_flight):
            d.cancel()


def _closed(session: Any) -> bool:
    """The stream already ended (its transport may still be flushing)."""
    return getattr(getattr(session, "stream", None), "state", None) == "closed"


def _heard_since(session: Any, t: float) -> bool:
    """Did any byte (stanza or whitespace) arrive from this client after time `t`?"""
    stream = getattr(session, "stream", None)
    last = getattr(stream, "last_activity", None)
    return last is not None and last > t
