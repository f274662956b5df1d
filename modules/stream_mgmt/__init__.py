# tests: tests/modules/test_stream_mgmt.py, tests/integration/test_messaging_slixmpp.py
"""XEP-0198: Stream Management — the ✓ tick (acks) and resumption without loss or duplicates.

- `<sm xmlns='urn:xmpp:sm:3'/>` is offered after authentication (§2).
- `<enable/>` after binding → `<enabled/>`, with an id, resume='true' and max (seconds) when the
  client asked to resume (§5); before binding or a second time → `<failed>` with
  <unexpected-request/> (§3).
- Counting (§4): h counts stanzas only (message, presence, iq), from 0 at `<enable/>`,
  mod 2^32. The server's h covers only the *handled prefix* of what the client sent: a stanza
  counts once `Router.from_client` says it is handled — delivered to a live session, or
  committed to storage (offline store, archive: DESIGN.md "✓ sent"). `<r/>` is answered as soon
  as everything received before it is handled (§4 lets an answer wait for nothing else).
- The client's `<a h/>` frees what it acknowledged and tells whoever waits (the offline module
  deletes then); an h above what was sent closes the stream with undefined-condition and
  `<handled-count-too-high/>` (§6). The server sends `<r/>` after a stanza when no request is
  outstanding, and again after an `<a/>` that left stanzas unacknowledged.
- Resumption (§5): a resumable session whose connection is lost (or closed for a silent link,
  <connection-timeout/>) stays bound for `resume_timeout` (at most the client's 'max'); stanzas
  for it queue. `<resume previd h/>` from the same account takes it over on the new connection
  once every stanza received on the old one is handled: `<resumed previd h/>`, then the stanzas
  the client had not acknowledged, in order. Unknown previd, or another account's →
  `<failed><item-not-found/></failed>`, with 'h' for a session that expired recently (§5). A
  still-open old connection is closed with <conflict/> (§5). A cleanly closed stream
  (`</stream:stream>`) is not resumable (§6).
- Expiry, or the end of a stream that was not resumable (§4: "treat unacknowledged stanzas in
  the same way as a stanza sent to an unavailable resource"): the session ends; unacknowledged
  chat/normal messages go to offline storage (`message_offline`) with a XEP-0203 delay of when
  they were first sent, or bounce with <service-unavailable/> if not stored; IQ requests get
  <service-unavailable/>; presence and server-made copies (carbons, MAM results) are dropped.
  Stanzas someone tracks (`send_tracked`: offline messages) are handed back to them instead.
- `ctx.service(StreamManagementService).send_tracked(session, el, done)`: `done(True)` once the
  client acknowledged the stanza (at once without stream management), `done(False)` if its
  session ended without.
- Inline (XEP-0198 §... with XEP-0388 / XEP-0386): <sm/> is offered in SASL2's <inline/> and as
  a Bind 2 feature; <resume/> inside <authenticate/> answers <resumed/> or <failed/> inside
  <success/> (the unacknowledged stanzas follow it), and <enable/> inside Bind 2's <bind/>
  answers <enabled/> inside <bound/>.

Config ([modules.stream_mgmt]):
  resume_timeout  duration  default "5 min"  how long a lost session can be resumed
  max_unacked     int       default 5000     unacknowledged stanzas per session; more closes
                                             the stream with <policy-violation/>
  max_unacked_size size     default "8 MiB"  ... and their bytes (a client that never acks
                                             cannot hold the server's memory)
Storage: none (stream state lives in memory, as sessions do).
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from lxml import etree
from twisted.internet import defer

from modules.stream_mgmt import handover
from modules.stream_mgmt.state import (
    MOD, NS, REQUEST, STATE, Done, HandledCountTooHigh, Out, SmState, parse_h)
from stanzas import ns
from stanzas.content import classify
from stanzas.delay import delay, delayed_by, stamp
from stanzas.errors import StanzaError, StreamError, error_reply
from xmppd import hooks
from xmppd.cluster.api import cluster_of
from xmppd.hooks import LAST, STOP, ConnectionLost, InlineRequest, SessionEvent, StanzaEvent
from stanzas.jid import JID, JIDError
from xmppd.module import Module, ModuleContext, duration, number, size
from stanzas.wire import serialize

_SM = "{%s}" % NS
_MAX_EXPIRED = 10_000          # expired SM-ids remembered for <failed h/> (§5)

__all__ = ["STATE", "StreamManagement", "StreamManagementService"]


@dataclass(frozen=True, slots=True)
class SmOptions:
    resume_timeout: float = duration(default="5 min", minimum=1)
    max_unacked: int = number(default=5000, minimum=10, maximum=1_000_000)
    max_unacked_size: int = size(default="8 MiB", minimum=64 * 1024)


class StreamManagementService:
    """For modules that must know when the client has a stanza (offline deletion)."""

    def send_tracked(self, session: Any, el: etree._Element, done: Done) -> None:
        """Send `el` to `session`; `done(True)` once acknowledged (XEP-0198), at once if the
        session does not manage its stream; `done(False)` if it ends without acknowledging."""
        state = session.get(STATE)
        if state is None:
            session.send_element(el)
            done(True)
            return
        state.outgoing(serialize(el), done)     # past CSI: a tracked stanza is never held


class StreamManagement(Module[SmOptions]):
    name = "stream_mgmt"
    xeps = (198,)
    Options = SmOptions

    def __init__(self, ctx: ModuleContext[SmOptions]) -> None:
        self.ctx = ctx
        self.resume_timeout = ctx.options.resume_timeout
        self.max_unacked = ctx.options.max_unacked
        self.max_unacked_size = ctx.options.max_unacked_size
        self.resumable: dict[str, SmState] = {}
        self.states: set[SmState] = set()
        self.expired: OrderedDict[str, tuple[JID, int]] = OrderedDict()
        self.stopping = False
        # A cluster: resumption on another node takes the session over (handover.py).
        self.cluster = cluster_of(ctx)
        self.id_prefix = f"{self.cluster.node}." if self.cluster is not None else ""
        self._unanswer = self.cluster.answer(
            f"sm.handover.{ctx.host}", lambda args: defer.Deferred.fromCoroutine(
                handover.export(self, args))) if self.cluster is not None else None
        ctx.stream_feature(lambda stream: etree.Element(_SM + "sm", nsmap={None: NS}))  # type: ignore[dict-item]
        ctx.hook(hooks.nonza_in, self.on_nonza)
        ctx.hook(hooks.connection_lost, self.connection_lost)
        ctx.hook(hooks.session_ended, self.session_ended)
        ctx.output_filter(self.outgoing, priority=LAST)
        ctx.input_observer(self.incoming)
        ctx.provide(StreamManagementService())
        ctx.hook(hooks.sasl2_inline, lambda q, acc: [*acc, _element("sm")])
        ctx.hook(hooks.bind2_inline, lambda q, acc: [*acc, NS])
        ctx.hook(hooks.bind2_enable, self.inline_enable)
        ctx.hook(hooks.sasl2_resume, self.inline_resume)

    # -- the session's traffic and life ----------------------------------------------------
    def outgoing(self, session: Any, data: bytes) -> bool:
        """Last output filter: count, keep and write every stanza of a managed stream."""
        state = session.get(STATE)
        if state is None:
            return False
        state.outgoing(data)
        return True

    def incoming(self, session: Any, handled: defer.Deferred[None] | None) -> None:
        state = session.get(STATE)
        if state is not None:
            state.incoming(handled)

    def connection_lost(self, ev: ConnectionLost, keep: bool) -> bool:
        state = ev.session.get(STATE)
        return keep or (state is not None and state.hold(ev.clean))

    def session_ended(self, ev: SessionEvent) -> None:
        state = ev.session.get(STATE)
        if state is not None and state.session is ev.session:
            ev.session.discard_output()     # in our queue too: we account for it (§4)
            state.ended()

    async def stop(self) -> None:
        """Shutdown: no session can be resumed any more; what is unacknowledged goes offline."""
        self.stopping = True
        if self._unanswer is not None:
            self._unanswer()
        for state in list(self.states):
            state.session.end()

    # -- nonzas ------------------------------------------------------------------------------
    def on_nonza(self, ev: StanzaEvent) -> Any:
        el, session = ev.stanza, ev.session
        tag = el.tag
        if not isinstance(tag, str) or not tag.startswith(_SM):
            return None
        name = tag[len(_SM):]
        state = session.get(STATE)
        if name == "resume":
            return self.resume(session, ev.sender, el)
        if name == "enable":
            if not session.bound or state is not None:
                # §3: before binding (order enforced), or a second <enable/>
                self._failed(session, "unexpected-request")
                return STOP
            return self.enable(session, el)
        if state is None:
            return STOP             # <r/>/<a/> before enabling: nothing to count yet
        if name == "r":
            state.request_answered()
            return STOP
        if name == "a":
            h = parse_h(el.get("h"))
            if h is None:
                session.close(StreamError.bad_format("<a/> needs an 'h' (XEP-0198 §4)"))
            elif state.too_high(h):
                session.close(HandledCountTooHigh(h, state.sent % MOD))
            else:
                new = state.acknowledged(h)
                state.requested = False
                if new and state.queue:
                    state.requested = True
                    session.write([REQUEST])
            return STOP
        return None                 # unknown: the session closes the stream

    def enable(self, session: Any, el: etree._Element) -> object:
        session.write([serialize(self._enabled(session, el))])
        return STOP

    def inline_enable(self, ev: InlineRequest, acc: list[etree._Element]) -> list[etree._Element]:
        """XEP-0386: <enable/> inside Bind 2's <bind/>: the answer goes into <bound/>."""
        el = ev.request.find(_SM + "enable")
        if el is None:
            return acc
        if ev.session.get(STATE) is not None:
            return [*acc, _failed("unexpected-request")]
        return [*acc, self._enabled(ev.session, el)]

    def _enabled(self, session: Any, el: etree._Element) -> etree._Element:
        resume = el.get("resume") in ("true", "1")
        timeout = self.resume_timeout
        asked = parse_h(el.get("max"))
        if asked:
            timeout = min(timeout, float(asked))
        state = SmState(self, session, resume, timeout)
        self.states.add(state)
        session.set(STATE, state)
        answer = _element("enabled")
        if state.id is not None:
            self.resumable[state.id] = state
            answer.attrib.update({"id": state.id, "resume": "true", "max": str(int(timeout))})
        return answer

    def resume(self, session: Any, user: JID, el: etree._Element) -> object:
        previd, h = el.get("previd"), parse_h(el.get("h"))
        if (self.cluster is not None and previd and h is not None and not session.bound
                and previd not in self.resumable and previd not in self.expired):
            # held by another node of the cluster, or by none (handover.py)
            return defer.Deferred.fromCoroutine(handover.resume_elsewhere(
                self, self.cluster, session, user, previd, h))
        found = self._resumable(session, user, el)
        if isinstance(found, etree._Element):
            session.write([serialize(found)])
            return STOP
        state, previd, h = found
        d = state.settled()
        d.addCallback(lambda _: self._resume(state, session, previd, h))
        return d

    def inline_resume(self, ev: InlineRequest, acc: etree._Element | None) -> Any:
        """<resume/> inside SASL2 <authenticate/>: the answer goes into <success/>, and the
        unacknowledged stanzas are resent after it (`ev.after`)."""
        session = ev.session
        found = self._resumable(session, session.stream.jid, ev.request)
        if isinstance(found, etree._Element):
            return found
        state, previd, h = found
        d = state.settled()
        d.addCallback(lambda _: self._resume(state, session, previd, h, inline=ev.after))
        return d

    def _resumable(self, session: Any, user: JID, el: etree._Element
                   ) -> etree._Element | tuple[SmState, str, int]:
        """The state <resume/> names, or the <failed/> to answer (§5)."""
        if session.bound:
            return _failed("unexpected-request")
        previd, h = el.get("previd"), parse_h(el.get("h"))
        if not previd or h is None:
            return _failed("bad-request")
        state = self.resumable.get(previd)
        if state is None or state.session.jid.bare != user.bare:
            gone = self.expired.get(previd)
            return _failed("item-not-found",
                           gone[1] if gone is not None and gone[0] == user.bare else None)
        if state.resuming:
            return _failed("unexpected-request")
        state.resuming = True
        return state, previd, h

    def _resume(self, state: SmState, session: Any, previd: str, h: int,
                inline: list[Any] | None = None) -> Any:
        state.resuming = False
        if session.transport is None or session.bound:
            return STOP             # the new connection went away meanwhile; still resumable
        if self.resumable.get(previd) is not state:
            return self._answer(session, _failed("item-not-found"), inline)
        if state.too_high(h):
            session.close(HandledCountTooHigh(h, state.sent % MOD))
            return STOP
        state.acknowledged(h)
        if state.timer is not None and state.timer.active():
            state.timer.cancel()
        state.timer = None
        resumed = _element("resumed", previd=previd, h=str(state.handled % MOD))
        units = [out.data for out in state.queue]           # counted when first sent
        state.requested = bool(state.queue)
        if state.queue:
            units.append(REQUEST)
        old = state.session
        if inline is None:
            session.write([serialize(resumed), *units])
        else:
            inline.append(lambda: session.write(units))     # after <success/>
        session.take_over(old)          # moves the STATE slot
        state.session = session
        state.detached = False
        self.ctx.log.info("%s resumed its session (%d stanzas resent)", session.jid,
                          len(state.queue))
        self.ctx.run(hooks.session_resumed, SessionEvent(session))
        return STOP if inline is None else resumed

    @staticmethod
    def _answer(session: Any, answer: etree._Element, inline: list[Any] | None) -> Any:
        if inline is not None:
            return answer
        session.write([serialize(answer)])
        return STOP

    def _failed(self, session: Any, condition: str, h: int | None = None) -> None:
        session.write([serialize(_failed(condition, h))])

    # -- the end of a session ----------------------------------------------------------------
    def forget(self, state: SmState) -> None:
        self.states.discard(state)
        if state.id is not None and self.resumable.pop(state.id, None) is not None:
            self.expired[state.id] = (state.session.jid.bare, state.handled)
            while len(self.expired) > _MAX_EXPIRED:
                self.expired.popitem(last=False)

    def undelivered(self, session: Any, out: Out) -> None:
        """§4: an unacknowledged stanza of a session that is over, as if its resource had
        become unavailable before it arrived."""
        if not out.data.startswith((b"<message", b"<iq")):
            return                  # presence: dropped (RFC 6121 §8.5.3.2.2 for presence)
        try:
            el = etree.fromstring(out.data)
            sender = JID.parse(el.get("from") or "")
        except (etree.XMLSyntaxError, JIDError):
            return
        kind = el.get("type") or ("normal" if el.tag == "{%s}message" % ns.CLIENT else "")
        if el.tag == "{%s}iq" % ns.CLIENT:
            if kind in ("get", "set"):
                self.ctx.send(error_reply(el, StanzaError.service_unavailable()))
            return
        if kind not in ("chat", "normal") or classify(el).copy:
            return                  # headline, groupchat, errors; carbons and MAM results
        if not delayed_by(el, self.ctx.host):
            delay(stamp(out.at, micro=True), self.ctx.host, el)         # XEP-0198 §4 note
        stored = self.ctx.run(hooks.message_offline,
                                StanzaEvent(el, sender, session.jid.bare))
        if isinstance(stored, defer.Deferred):
            stored.addCallback(self._after_offline, el)
        elif not stored:
            self._bounce(el)

    def _after_offline(self, stored: bool, el: etree._Element) -> None:
        if not stored:
            self._bounce(el)

    def _bounce(self, el: etree._Element) -> None:
        reply = error_reply(el, StanzaError.service_unavailable())
        self.ctx.send(reply)


def _element(name: str, **attrs: str) -> etree._Element:
    return etree.Element(_SM + name, attrs, nsmap={None: NS})  # type: ignore[dict-item]


def _failed(condition: str, h: int | None = None) -> etree._Element:
    """§3, §5: <failed/> with a stanza error condition (and the last 'h' of an expired
    session)."""
    el = _element("failed")
    if h is not None:
        el.set("h", str(h % MOD))
    etree.SubElement(el, "{%s}%s" % (ns.STANZA_ERRORS, condition),
                     nsmap={None: ns.STANZA_ERRORS})  # type: ignore[dict-item]
    return el
