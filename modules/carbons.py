# tests: tests/modules/test_carbons.py, tests/integration/test_messaging_slixmpp.py
"""XEP-0280: Message Carbons — every device of a user sees both sides of every conversation.

- `<enable/>` and `<disable/>` (IQ set to the user's own account, §4, §5) switch copies on and
  off for the sending resource; repeating either is not an error (§9.1). Asking about another
  account → <not-allowed/> (§5.1).
- Eligible messages (§6.1): type chat; type normal with a body; messages with XEP-0184,
  XEP-0085 or XEP-0333 payloads; XEP-0249 and mediated MUC invitations; private messages a
  user sends to a MUC occupant. Never: groupchat, headline, errors (a server cannot tell which
  error answers an eligible message, so "urn:xmpp:carbons:rules:0" is not claimed), private
  messages from MUC occupants, messages with <private/> (§7) or the XEP-0334 <no-copy/> hint.
- Received (§6): a message for a local user is delivered by the RFC 6121 rules, and a copy
  wrapped in <received/> goes to each carbons-enabled resource of that user that does not get
  the original (none when the message goes to offline storage).
- Sent (§7): a message a client sends goes, wrapped in <sent/>, to each other carbons-enabled
  resource of the sender, whether or not the sender enabled carbons itself.
- Copies come from the user's bare JID to the resource's full JID with the original's type
  (§6, §7), the original inside a XEP-0297 <forwarded/>; they are routed like any message
  (stream management counts them, CSI sees them), and the original keeps the MAM stanza-id of
  the user's archive (XEP-0313 §3.5: SHOULD).
- XEP-0386 Bind 2: `<enable/>` inside <bind/> switches copies on for the new session (offered
  as a Bind 2 inline feature); it needs no answer.
- A client cannot send carbons wrappers itself (§11, DESIGN.md "Facts"): the server strips
  <sent/> and <received/> from what its clients send.

Config: none.   Storage: none (a session slot, kept across XEP-0198 resumption).
"""
from __future__ import annotations

import copy
from typing import Any

from lxml import etree

from stanzas import iq, ns
from stanzas.content import Content, classify
from stanzas.delay import forwarded
from stanzas.errors import StanzaError
from xmppd import hooks
from xmppd.hooks import FIRST, LAST, LATE, StanzaEvent
from stanzas.jid import JID
from xmppd.module import IqRequest, Module, ModuleContext, NoOptions, SessionKey

NS = ns.CARBONS
# this resource wants copies (shared: a cluster's other nodes send them too)
ENABLED: SessionKey[bool] = SessionKey("carbons.enabled", shared=True)
_MESSAGE = "{%s}message" % ns.CLIENT
_WRAPPERS = ("{%s}sent" % NS, "{%s}received" % NS)


class Carbons(Module[NoOptions]):
    name = "carbons"
    xeps = (280,)

    def __init__(self, ctx: ModuleContext[NoOptions]) -> None:
        self.ctx = ctx
        self.sessions = ctx.sessions
        ctx.disco_feature(NS)
        ctx.iq_set(NS, "enable", self.enable, to="self")
        ctx.iq_set(NS, "disable", self.disable, to="self")
        ctx.iq_set(NS, "enable", self.not_yours, to="bare")
        ctx.iq_set(NS, "disable", self.not_yours, to="bare")
        ctx.hook(hooks.stanza_in, self.strip, priority=FIRST)
        ctx.hook(hooks.stanza_in, self.sent, priority=LATE)
        ctx.hook(hooks.user_inbound, self.received, priority=LAST)
        ctx.hook(hooks.bind2_inline, lambda q, acc: [*acc, NS])
        ctx.hook(hooks.bind2_enable, self.inline_enable)

    # -- switching -------------------------------------------------------------------------
    def enable(self, req: IqRequest) -> iq.Reply:
        if req.session is not None:
            req.session.set(ENABLED, True)
        return iq.result(req.stanza)

    def disable(self, req: IqRequest) -> iq.Reply:
        if req.session is not None:
            req.session.pop(ENABLED)
        return iq.result(req.stanza)

    def inline_enable(self, ev: hooks.InlineRequest,
                      acc: list[etree._Element]) -> list[etree._Element]:
        if ev.request.find("{%s}enable" % NS) is not None:      # XEP-0386 §2.2
            ev.session.set(ENABLED, True)
        return acc

    def not_yours(self, req: IqRequest) -> iq.Reply:
        raise StanzaError.not_allowed("carbons are switched by the resource itself")

    # -- copies ----------------------------------------------------------------------------
    def strip(self, ev: StanzaEvent) -> None:
        """§11: only the server makes carbons; a client's wrappers go."""
        el = ev.stanza
        if el.tag == _MESSAGE and ev.mutable:
            for child in [c for c in el if c.tag in _WRAPPERS]:
                el.remove(child)

    def sent(self, ev: StanzaEvent) -> None:
        el = ev.stanza
        if el.tag != _MESSAGE or ev.session is None or ev.to.bare == ev.sender.bare:
            return
        user = ev.sender.bare
        copies = [s for s in self.sessions.resources(user) if s is not ev.session and _enabled(s)]
        if not copies or not _eligible(el, classify(el), inbound=False):
            return                  # (who would get a copy is the cheaper question)
        for s in copies:
            self.ctx.send(_wrap("sent", el, user, s.jid))

    def received(self, ev: StanzaEvent) -> None:
        el = ev.stanza
        if el.tag != _MESSAGE or not ev.mutable or ev.to.local is None:
            return
        user = ev.to.bare
        resources = self.sessions.resources(user)
        if not any(_enabled(s) for s in resources) or not _eligible(el, classify(el),
                                                                     inbound=True):
            return
        # Who gets the original: the router's RFC 6121 §8.5 choice.
        originals = self.ctx.recipients(ev.to, el.get("type") or "normal")
        if not originals:
            return                  # no live recipient: offline storage, no copies
        for s in resources:
            if _enabled(s) and s not in originals:
                self.ctx.send(_wrap("received", el, user, s.jid))


def _enabled(session: Any) -> bool:
    return bool(session.get(ENABLED))


def _eligible(el: etree._Element, content: Content, *, inbound: bool) -> bool:
    """§6.1 (see the module docstring)."""
    kind = el.get("type") or "normal"
    if content.private or content.no_copy or content.copy:
        return False
    if kind not in ("chat", "normal"):
        return False
    muc = el.find("{%s}x" % ns.MUC_USER)
    if muc is not None:
        # Invitations are copied; a private message from an occupant is not (the room sends
        # it to each of the user's joined clients), one to an occupant is.
        return muc.find("{%s}invite" % ns.MUC_USER) is not None or not inbound
    if kind == "chat" or content.body or content.receipt or content.marker \
            or content.chat_state:
        return True
    return el.find("{%s}x" % ns.CONFERENCE) is not None      # XEP-0249


def _wrap(direction: str, original: etree._Element, user: JID, to: JID) -> etree._Element:
    out = etree.Element(_MESSAGE, nsmap={None: ns.CLIENT})  # type: ignore[dict-item]
    out.set("from", str(user))
    out.set("to", str(to))
    kind = original.get("type")
    if kind is not None:
        out.set("type", kind)
    wrapper = etree.SubElement(out, "{%s}%s" % (NS, direction), nsmap={None: NS})  # type: ignore[dict-item]
    forwarded(copy.deepcopy(original), parent=wrapper)
    return out
