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

Config ([modules.csi]):
  max_held  int  default 1000  presences held per inactive session
Storage: none (per session, in memory).
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from lxml import etree

from modules.receipts import NS_CARBONS, NS_CHATSTATES, classify
from stanzas import ns
from xmppd import hooks
from xmppd.hooks import STOP, SessionEvent, StanzaEvent
from xmppd.module import Module, ModuleContext, number

NS = ns.CSI
_CSI = "{%s}" % NS
STATE = "csi.state"                 # session.extra: _Held while the session is inactive
_CHATSTATES = NS_CHATSTATES.encode()
_FORWARDED = "{urn:xmpp:forward:0}forwarded/{%s}message" % ns.CLIENT


@dataclass(frozen=True, slots=True)
class CsiOptions:
    max_held: int = number(default=1000, minimum=1, maximum=100_000)


class _Held:
    """An inactive session's held presence, newest per sender, in order of arrival."""

    def __init__(self, session: Any, limit: int) -> None:
        self.session = session
        self.limit = limit
        self.presence: OrderedDict[str, bytes] = OrderedDict()

    def hold(self, data: bytes) -> bool:
        """The session's `hold_filter`: True if `data` is held (or dropped)."""
        if data.startswith(b"<presence"):
            el = etree.fromstring(data)
            if el.get("type") in (None, "unavailable"):
                sender = el.get("from") or ""
                self.presence.pop(sender, None)
                self.presence[sender] = data
                if len(self.presence) > self.limit:
                    self.flush()
                return True
        elif data.startswith(b"<message") and _CHATSTATES in data:
            el = etree.fromstring(data)
            inner = el
            for wrapper in ("sent", "received"):
                found = el.find("{%s}%s/%s" % (NS_CARBONS, wrapper, _FORWARDED))
                if found is not None:
                    inner = found
            if classify(inner).chat_state_only:
                return True         # dropped (§2.2)
        self.flush()                # what matters goes out after what is held
        return False

    def flush(self) -> None:
        held = list(self.presence.values())
        self.presence.clear()
        for data in held:
            self.session.deliver(data)


class ClientStateIndication(Module[CsiOptions]):
    name = "csi"
    xeps = (352,)
    Options = CsiOptions

    def __init__(self, ctx: ModuleContext[CsiOptions]) -> None:
        self.limit = ctx.options.max_held
        ctx.stream_feature(lambda stream: etree.Element(_CSI + "csi", nsmap={None: NS}))  # type: ignore[dict-item]
        ctx.hook(hooks.nonza_in, self.on_nonza)
        ctx.hook(hooks.session_resumed, self.resumed)

    def on_nonza(self, ev: StanzaEvent) -> object:
        tag = ev.stanza.tag
        session = ev.session
        if tag not in (_CSI + "active", _CSI + "inactive") or not session.bound:
            return None
        if tag == _CSI + "inactive":
            if session.extra.get(STATE) is None:
                state = session.extra[STATE] = _Held(session, self.limit)
                session.hold_filter = state.hold
        else:
            self._activate(session)
        return STOP

    def resumed(self, ev: SessionEvent) -> None:
        """§5: a resumed stream is active; what was held goes to the new connection."""
        state = ev.session.extra.get(STATE)
        if state is not None:
            state.session = ev.session
            self._activate(ev.session)

    @staticmethod
    def _activate(session: Any) -> None:
        state = session.extra.pop(STATE, None)
        session.hold_filter = None
        if state is not None:
            state.flush()
