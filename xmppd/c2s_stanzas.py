# tests: tests/core/test_c2s.py
"""What a client stream does with stanzas once authenticated: resource binding (RFC 6120 §7,
the `BindRequest` event) and, once bound, stamping every stanza with the session's full JID
(§8.1.2.1: a `from` naming another entity is `<invalid-from/>`); the legacy session IQ of RFC
3921 is answered as a no-op. Functions of the `C2SStream` (xmppd/c2s.py)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from lxml import etree

from stanzas import iq, ns
from stanzas.errors import StanzaError, StreamError, error_reply
from stanzas.jid import JID, JIDError
from xmppd.c2s_events import BindRequest, Stanza
from xmppd.xmlstream import serialize

if TYPE_CHECKING:
    from xmppd.c2s import C2SStream

_E = etree._Element


def bind_iq(stream: C2SStream, el: _E) -> None:
    """RFC 6120 §7: the bind request goes to the shell; other IQs must wait (§7.2)."""
    payload = iq.payload(el)
    if el.get("type") == "set" and payload is not None \
            and payload.tag == "{%s}bind" % ns.BIND:
        res_el = payload.find("{%s}resource" % ns.BIND)
        resource = (res_el.text or "").strip() if res_el is not None else ""
        assert stream.jid is not None
        stream.need(BindRequest(stream.jid, resource or None, el))
        return
    if el.get("type") in ("get", "set"):
        # RFC 6120 §7.2: stanzas other than binding before a resource is bound.
        stream.send_bytes(serialize(error_reply(el, StanzaError.not_authorized(
            "bind a resource first"))))


def stanza(stream: C2SStream, el: _E) -> None:
    """A stanza of a bound stream, stamped with its full JID (§8.1.2.1)."""
    assert stream.jid is not None
    sender = el.get("from")
    if sender is not None and sender != str(stream.jid) and sender != str(stream.jid.bare):
        try:
            claimed = JID.parse(sender)
        except JIDError:
            raise StreamError("invalid-from", "malformed from address") from None
        if claimed != stream.jid and claimed != stream.jid.bare:
            raise StreamError("invalid-from", "you may only speak for yourself")
    el.set("from", str(stream.jid))
    if el.tag == "{%s}iq" % ns.CLIENT and el.get("type") == "set" \
            and el.get("to") in (None, stream.jid.domain):
        payload = iq.payload(el)
        if payload is not None and payload.tag == "{%s}session" % ns.SESSION:
            # RFC 3921 §3 session establishment, kept as a no-op for old clients (whose
            # request carries to='<domain>' in RFC 3921's own example).
            stream.send_bytes(serialize(iq.result(el)))
            stream.emit(Stanza(el, answered=True))     # XEP-0198 counts it
            return
    stream.emit(Stanza(el))
