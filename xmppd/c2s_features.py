# tests: tests/core/test_c2s.py, tests/core/test_sasl2.py
"""How a client stream opens (RFC 6120 §4.7, RFC 7395 §3.4, XEP-0206 §5) and what it offers in
<stream:features/> (§4.3.2): STARTTLS, the SASL mechanisms (PLAIN only where encrypted, -PLUS
only with channel bindings), SASL2 (XEP-0388), the channel-binding types (XEP-0440 §3), and
the modules' features. Functions of the `C2SStream` (xmppd/c2s.py).

- Stream header: `to` must be one of our hosts (`<host-unknown/>`), version 1.0
  (`<unsupported-version/>`), a `from` must be a JID of that host (`<invalid-from/>`, XEP-0388
  §2.1); features follow at every (re)start (§4.3.2).
- STARTTLS (§5): required by default; anything else first → `<not-authorized/>` (§5.3.1). Bytes
  pipelined after `<starttls/>` are discarded, never read as if encrypted (CVE-2011-1431 class).
- Framings: "tcp" (one XML document), "websocket" (RFC 7395: `<open/>`/`<close/>`, one element
  per message, each unit standalone with its namespaces declared, §3.3.3) and "bosh"
  (XEP-0206: the transport parses `<body/>`s and hands their children to `receive_items`; no
  header or footer on the wire). Framed streams never offer STARTTLS (RFC 7395 §3.8, XEP-0206
  §5: TLS belongs to the HTTP connection); the transport says whether it is `secure`.
"""
from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from typing import TYPE_CHECKING, Union

from lxml import etree

from stanzas import ns
from stanzas.errors import StreamError, escape_attr
from stanzas.jid import JID, JIDError
from xmppd.c2s_events import C2SSettings, StartTLS
from xmppd.xmlstream import FRAMING_NS, StreamClose, StreamOpen, serialize

if TYPE_CHECKING:
    from xmppd.c2s import C2SStream

_E = etree._Element
_Item = Union[StreamOpen, StreamClose, _E, StreamError]
STREAM_NS_DECL = b" xmlns:stream='%s'" % ns.STREAMS.encode()
_CB_NS = "urn:xmpp:sasl-cb:0"           # XEP-0440


def send_header(stream: C2SStream, host: str) -> None:
    stream.stream_id = secrets.token_hex(12)
    stream._header_sent = True
    if stream.settings.framing == "websocket":     # RFC 7395 §3.4
        stream.send_bytes((
            "<open xmlns='%s' id='%s' from='%s' version='1.0' xml:lang='en'/>"
            % (FRAMING_NS, stream.stream_id, escape_attr(host))).encode())
        return
    if stream.settings.framing == "bosh":
        return      # XEP-0206 §5: the session creation response carries from/authid
    stream.send_bytes((
        "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
        "xmlns:stream='http://etherx.jabber.org/streams' id='%s' from='%s' version='1.0' "
        "xml:lang='en'>" % (stream.stream_id, escape_attr(host))).encode())
    stream._header_sent = True


def on_header(stream: C2SStream, header: StreamOpen) -> None:
    to = header.attrs.get("to")
    host = to.lower().rstrip(".") if to else None
    if host is None:
        # RFC 6120 §4.7.2: without 'to' we may pick our default; clients always send it.
        host = stream.host or sorted(stream.settings.hosts)[0]
    if host not in stream.settings.hosts or (stream.host is not None and host != stream.host):
        stream.host = stream.host or sorted(stream.settings.hosts)[0]
        raise StreamError.host_unknown(f"this server does not serve {to!r}")
    stream.host = host
    send_header(stream, host)
    if version(header.attrs.get("version")) < (1, 0):
        raise StreamError.unsupported_version("XMPP 1.0 is required (RFC 6120 §4.7.5)")
    stream.lang = header.attrs.get("xml:lang", "en")[:35]
    stream.from_jid = from_attr(header.attrs.get("from"), host)
    stream.send_bytes(features(stream))
    stream.state = "bind" if stream.authenticated else "features"


def tls_needed(stream: C2SStream) -> bool:
    settings = stream.settings
    return not stream.secure and settings.tls == "required" and settings.tls_available


def features(stream: C2SStream) -> bytes:
    assert stream.host is not None
    parts = [b"<stream:features%s>" % (STREAM_NS_DECL if stream.framed else b"")]
    if stream.authenticated:
        if stream.state != "bound":       # a Bind 2 stream is bound already (XEP-0386)
            parts.append(b"<bind xmlns='%s'/>" % ns.BIND.encode())
            parts.append(b"<session xmlns='%s'><optional/></session>" % ns.SESSION.encode())
        parts.extend(serialize(f) for f in stream.settings.session_features(stream))
    else:
        if not stream.secure and stream.settings.tls != "off" and stream.settings.tls_available:
            parts.append(b"<starttls xmlns='%s'>%s</starttls>" % (
                ns.TLS.encode(), b"<required/>" if tls_needed(stream) else b""))
        if not tls_needed(stream):
            mechs = "".join("<mechanism>%s</mechanism>" % m for m in mechanisms(stream))
            parts.append(("<mechanisms xmlns='%s'>%s</mechanisms>" % (ns.SASL, mechs))
                         .encode())
            if stream.settings.sasl2:
                parts.append(stream._sasl2.feature())
            types = bindings(stream)
            if types:               # XEP-0440 §3
                parts.append(("<sasl-channel-binding xmlns='%s'>%s</sasl-channel-binding>"
                              % (_CB_NS, "".join("<channel-binding type='%s'/>" % t
                                                 for t in types))).encode())
            parts.extend(serialize(f) for f in stream.settings.preauth_features(stream))
    parts.append(b"</stream:features>")
    return b"".join(parts)


def starttls(stream: C2SStream) -> bool:
    """RFC 6120 §5: <proceed/> and a fresh parser (what was pipelined after <starttls/> is
    dropped, never read as if encrypted), or <failure/> and the end of the stream."""
    if stream.secure or stream.settings.tls == "off" or not stream.settings.tls_available \
            or stream.authenticated:
        stream.send_bytes(b"<failure xmlns='%s'/>" % ns.TLS.encode())
        stream.close()
        return True
    stream.send_bytes(b"<proceed xmlns='%s'/>" % ns.TLS.encode())
    stream._events.append(StartTLS())
    stream.parser.reset()         # drop anything pipelined after <starttls/>
    stream._queue.clear()
    stream.state = "restart"
    return True


def mechanisms(stream: C2SStream) -> list[str]:
    """What this stream offers: PLAIN only where it is encrypted (RFC 6120 §13.8), -PLUS
    only where the transport has channel bindings (RFC 5802 §6)."""
    plus = bool(bindings(stream))
    return [m for m in stream.settings.mechanisms
            if (m != "PLAIN" or stream.secure) and (plus or not m.endswith("-PLUS"))]


def bindings(stream: C2SStream) -> Mapping[str, bytes]:
    """The transport's channel bindings (none unless the stream is encrypted)."""
    return stream.channel_bindings() if stream.secure else {}


def plus_offered(stream: C2SStream) -> bool:
    return any(m.endswith("-PLUS") for m in mechanisms(stream))


def preauth_checked(item: _Item, settings: C2SSettings) -> _Item:
    """The pre-auth stanza limits for elements parsed by the transport (BOSH bodies are parsed
    under the session's limits, not the pre-auth ones)."""
    if not isinstance(item, etree._Element):
        return item
    if len(serialize(item)) > settings.preauth_stanza_size:
        return StreamError.policy_violation(
            f"stanza larger than {settings.preauth_stanza_size} bytes before authentication")
    if sum(1 for _ in item.iter()) > settings.preauth_elements:
        return StreamError.policy_violation("too many elements in one stanza")
    return item


def from_attr(value: str | None, host: str) -> JID | None:
    """The header's 'from' (XEP-0388 §2.1): a JID of this host, or <invalid-from/>."""
    if not value:
        return None
    try:
        jid = JID.parse(value)
    except JIDError:
        raise StreamError("invalid-from", "malformed from address") from None
    if jid.domain != host:
        raise StreamError("invalid-from", "the 'from' must be an account of this host")
    return jid


def version(value: str | None) -> tuple[int, int]:
    """RFC 6120 §4.7.5: "major.minor", each part an integer compared on its own ("1.10" is
    newer than "1.9"); no version attribute means 0.9. Unreadable → (0, 0)."""
    m = re.fullmatch(r"([0-9]{1,9})\.([0-9]{1,9})", (value or "0.9").strip())
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)
