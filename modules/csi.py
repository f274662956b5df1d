# tests: tests/modules/test_csi.py, tests/integration/test_messaging_slixmpp.py
"""XEP-0352: Client State Indication — an inactive client (screen off) is spared what can wait.

- `<csi xmlns='urn:xmpp:csi:0'/>` is offered after authentication (§3.1). `<inactive/>` and
  `<active/>` switch the state of a bound stream (§3.2); every stream starts active, a
  resumed one too (§5: "the CSI state is not restored").
- While inactive, following the server behaviour §2.2 suggests:
  - available and unavailable presence is held, only the newest from each full JID ("push the
    latest presence from each contact");
  - messages with nothing but chat states (XEP-0085) are dropped, also as carbon copies
    ("discard messages containing only Chat State Notifications payloads": a stale
    "composing" helps nobody);
  - anything else — a body, a receipt or marker, an IQ, a subscription request, an error, a
    MAM result — goes out at once, after what is held (so the order of what matters is kept).
- `<active/>` sends what is held before anything the client sends next is processed (§6:
  in-order processing). More than `max_held` held presences are sent at once, too.
- XEP-0386 Bind 2: `<inactive/>` (or `<active/>`) inside <bind/> starts the new session in
  that state. `CsiService.inactive_since(session)`: when a session went inactive, or None
  (XEP-0357 push waits for sessions inactive long enough).

Config ([modules.csi]):
  max_held  int  default 1000  presences held per inactive session
Storage: none (per session, in memory).
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from lxml import etree

from stanzas import ns
from stanzas.content import classify
from xmppd import hooks
from xmppd.hooks import EARLY, STOP, SessionEvent, StanzaEvent
from xmppd.module import Module, ModuleContext, SessionKey, number

NS = ns.CSI
_CSI = "{%s}" % NS
_CHATSTATES = ns.CHATSTATES.encode()
_FORWARDED = "{%s}forwarded/{%s}message" % (ns.FORWARD, ns.CLIENT)


@dataclass(frozen=True, slots=True)
class CsiOptions:
    max_held: int = number(default=1000, minimum=1, maximum=100_000)


class _Held:
    """An inactive session's held presence, newest per sender, in order of arrival."""

    def __init__(self, limit: int, since: float) -> None:
        self.limit = limit
        self.since = since
        self.presence: OrderedDict[str, bytes] = OrderedDict()

    def hold(self, data: bytes) -> bool | None:
        """True: `data` is held; None: dropped (§2.2); False: it goes out now, after what
        is held."""
        if data.startswith(b"<presence"):
            el = etree.fromstring(data)
            if el.get("type") in (None, "unavailable"):
                sender = el.get("from") or ""
                self.presence.pop(sender, None)
                self.presence[sender] = data
                return True
        elif data.startswith(b"<message") and _CHATSTATES in data:
            el = etree.fromstring(data)
            inner = el
            for wrapper in ("sent", "received"):
                found = el.find("{%s}%s/%s" % (ns.CARBONS, wrapper, _FORWARDED))
                if found is not None:
                    inner = found
            if classify(inner).chat_state_only:
                return None
        return False

    def take(self) -> list[bytes]:
        held = list(self.presence.values())
        self.presence.clear()
        return held


# While inactive: what is held. Moves with XEP-0198 resumption, which makes the session
# active again (§5) and sends it on.
STATE: SessionKey[_Held] = SessionKey("csi.state")
# Since when it is inactive, for other nodes of a cluster (push decides there, XEP-0357).
SINCE: SessionKey[float] = SessionKey("csi.since", shared=True)


class CsiService:
    """For modules that treat inactive clients differently (XEP-0357 push)."""

    @staticmethod
    def inactive_since(session: Any) -> float | None:
        state = session.get(STATE)
        since: float | None = state.since if state is not None else session.get(SINCE)
        return since


class ClientStateIndication(Module[CsiOptions]):
    name = "csi"
    xeps = (352,)
    Options = CsiOptions

    def __init__(self, ctx: ModuleContext[CsiOptions]) -> None:
        self.limit = ctx.options.max_held
        self.clock = ctx.clock
        ctx.provide(CsiService())
        ctx.hook(hooks.bind2_inline, lambda q, acc: [*acc, NS])
        ctx.hook(hooks.bind2_enable, self.inline)
        ctx.stream_feature(lambda stream: etree.Element(_CSI + "csi", nsmap={None: NS}))  # type: ignore[dict-item]
        ctx.hook(hooks.nonza_in, self.on_nonza)
        ctx.hook(hooks.session_resumed, self.resumed)
        ctx.output_filter(self.filter, priority=EARLY)

    def filter(self, session: Any, data: bytes) -> bool:
        """Hold or drop what an inactive client need not have now (§2.2, §5)."""
        state = session.get(STATE)
        if state is None:
            return False
        verdict = state.hold(data)
        if verdict is None:
            return True             # dropped
        if not verdict or len(state.presence) > state.limit:
            self._flush(session, state)     # what matters goes out after what is held
        return bool(verdict)

    def on_nonza(self, ev: StanzaEvent) -> object:
        tag = ev.stanza.tag
        session = ev.session
        if tag not in (_CSI + "active", _CSI + "inactive") or not session.bound:
            return None
        if tag == _CSI + "inactive":
            self._deactivate(session)
        else:
            self._activate(session)
        return STOP

    def inline(self, ev: hooks.InlineRequest,
               acc: list[etree._Element]) -> list[etree._Element]:
        """XEP-0386 §2.2: "the session must begin in that state"."""
        if ev.request.find(_CSI + "inactive") is not None:
            self._deactivate(ev.session)
        return acc

    def _deactivate(self, session: Any) -> None:
        state = session.setdefault(STATE, lambda: _Held(self.limit, self.clock.now()))
        if session.get(SINCE) is None:
            session.set(SINCE, state.since)

    def resumed(self, ev: SessionEvent) -> None:
        """§5: a resumed stream is active; what was held goes to the new connection."""
        self._activate(ev.session)

    def _activate(self, session: Any) -> None:
        if session.get(SINCE) is not None:
            session.pop(SINCE)
        state = session.pop(STATE)
        if state is not None:
            self._flush(session, state)

    def _flush(self, session: Any, state: _Held) -> None:
        for data in state.take():
            session.pass_on(self.filter, data)
