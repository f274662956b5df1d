# tests: tests/core/test_sasl2.py, tests/modules/test_sasl2_inline.py, tests/integration/test_sasl2_clients.py
"""XEP-0388 Extensible SASL Profile ("SASL2"), with what travels inside it: XEP-0386 Bind 2,
XEP-0484 FAST tokens and XEP-0198 resumption, sans-IO. The stream (xmppd/c2s.py) hands this
helper every element in urn:xmpp:sasl:2.

- Offered (`feature`) next to RFC 6120's <mechanisms/>: the same mechanisms, and inline
  Bind 2 (with the session features modules can enable inline), FAST (HT-SHA-256-*: on
  secure streams only, XEP-0484 §5) and what modules add (XEP-0198 <sm/>).
- `<authenticate mechanism/>` (§2.3): the mechanism must be one we offered (else
  `<invalid-mechanism/>`); `<initial-response/>` is plain base64 ("=" is not special);
  `<user-agent id/>` must be a UUID (the schema's pattern) and names the client for FAST
  tokens and stable resources. A FAST mechanism needs `<fast/>` (XEP-0484 §3.3) and a client
  id; `<request-token mechanism/>` must name a FAST mechanism we offered.
- While the exchange runs only SASL2 elements may come (§2.4: anything else ends the stream).
- On success the stream waits: the shell performs the inline requests (`Sasl2Request`) and
  calls `finish`: `<success/>` with the additional data, the authorization identifier (the
  full JID once bound, §2.6.1) and the inline results, then new stream features, with no
  stream restart. A failed exchange performs nothing inline (§2.6.2).
- The stream's 'from' (§2.1), when present, must be the account that authenticated
  (`<invalid-authzid/>` otherwise, §2.7).
"""
from __future__ import annotations

import base64
import re
from dataclasses import dataclass, replace

from lxml import etree

from stanzas import ns
from stanzas.errors import StreamError, escape_attr
from stanzas.jid import JID
from storage.fast import StoredToken
from xmppd import fast
from xmppd.c2s_events import Sasl2Success
from xmppd.sasl1 import SaslProfile
from xmppd import c2s_features
from xmppd.sasl_errors import SaslFailure
from xmppd.sasl_exchange import Done, b64decode

NS = "urn:xmpp:sasl:2"
BIND_NS = "urn:xmpp:bind:0"
_Q = "{%s}" % NS
_E = etree._Element
_UUID = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")


@dataclass(frozen=True, slots=True)
class Sasl2Request:
    """What the client asked for in its <authenticate/>, for the shell to perform once the
    mechanism succeeded."""
    mechanism: str
    client_id: str = ""                 # <user-agent id/>
    software: str = ""
    device: str = ""
    bind: _E | None = None              # <bind xmlns='urn:xmpp:bind:0'/> (XEP-0386)
    resume: _E | None = None            # <resume xmlns='urn:xmpp:sm:3'/> (XEP-0198)
    request_token: str | None = None    # FAST mechanism of <request-token/> (XEP-0484 §3.2)
    invalidate: bool = False            # <fast invalidate='true'/> (§3.5)
    token: StoredToken | None = None    # the FAST token that authenticated, if any


class Sasl2(SaslProfile):
    ns = NS

    def __init__(self, stream: object) -> None:
        super().__init__(stream)  # type: ignore[arg-type]
        self.request: Sasl2Request | None = None
        self._additional = b""

    # -- offering ----------------------------------------------------------------------------
    def feature(self) -> bytes:
        stream = self.stream
        settings = stream.settings
        mechs = "".join("<mechanism>%s</mechanism>" % m
                        for m in c2s_features.mechanisms(stream))
        inline = [b"<bind xmlns='%s'><inline>" % BIND_NS.encode(),
                  *(etree.tostring(f) for f in settings.bind2_inline(stream)),
                  b"</inline></bind>"]
        fast_mechs = self.fast_mechanisms()
        if fast_mechs:
            inline.append(("<fast xmlns='%s'>%s</fast>" % (fast.NS, "".join(
                "<mechanism>%s</mechanism>" % m for m in fast_mechs))).encode())
        inline.extend(etree.tostring(f) for f in settings.sasl2_inline(stream))
        return b"<authentication xmlns='%s'>%s<inline>%s</inline></authentication>" % (
            NS.encode(), mechs.encode(), b"".join(inline))

    def fast_mechanisms(self) -> list[str]:
        stream = self.stream
        if not stream.settings.fast or not stream.secure:
            return []       # XEP-0484 §5: FAST "MUST only be performed over a secure connection"
        return fast.mechanisms(c2s_features.bindings(stream))

    def offered(self) -> list[str]:
        return [*c2s_features.mechanisms(self.stream), *self.fast_mechanisms()]

    # -- the exchange ------------------------------------------------------------------------
    def element(self, el: _E) -> None:
        stream = self.stream
        name = el.tag[len(_Q):]
        if stream.authenticated:
            raise StreamError.not_authorized("already authenticated")   # §2.9
        if name == "authenticate":
            self._authenticate(el)
        elif name == "response" and stream.state == "sasl" and self.exchange is not None:
            self.run(lambda x: x.respond(b64decode(el.text, empty_marker=False)))
        elif name == "abort" and stream.state == "sasl":
            self.fail(SaslFailure("aborted"))
        elif name in ("response", "abort"):
            self.fail(SaslFailure("malformed-request", "no authentication in progress"))
        else:
            raise StreamError.unsupported_stanza_type(f"unexpected SASL2 element {name}")

    def _authenticate(self, el: _E) -> None:
        self.request = None
        try:
            request = parse_request(el)
            if fast.is_fast(request.mechanism) and el.find("{%s}fast" % fast.NS) is None:
                raise SaslFailure("malformed-request", "a FAST mechanism needs <fast/>")
            if (fast.is_fast(request.mechanism) or request.request_token) \
                    and not request.client_id:
                raise SaslFailure("malformed-request", "FAST needs <user-agent id/>")
            if request.request_token is not None \
                    and request.request_token not in self.fast_mechanisms():
                raise SaslFailure("malformed-request", "no such FAST mechanism here")
        except SaslFailure as f:
            self.fail(f)
            return
        if not self.begin(request.mechanism):
            return
        self.request, self.client_id = request, request.client_id
        initial = el.find(_Q + "initial-response")
        data = None if initial is None else initial.text or ""
        self.run(lambda x: x.start(None if data is None else
                                   b64decode(data, empty_marker=False)))

    def _condition_ns(self) -> str:
        return " xmlns='%s'" % ns.SASL

    def succeed(self, done: Done) -> bool:
        stream = self.stream
        assert self.request is not None and stream.host is not None
        claimed = stream.from_jid
        if claimed is not None and claimed.bare != JID.of(done.username, stream.host):
            self.fail(SaslFailure("invalid-authzid", "not the account in the stream's 'from'"))
            return False
        self._additional = done.additional
        stream.authenticated_as(done.username, restart=False)
        assert stream.jid is not None
        stream.need(Sasl2Success(stream.jid, replace(self.request, token=done.token)))
        return False

    def finish(self, children: list[_E], full: JID | None) -> None:
        """The shell performed the inline requests: <success/> and the new features."""
        stream = self.stream
        assert stream.jid is not None
        parts = [b"<success xmlns='%s'>" % NS.encode()]
        if self._additional:
            parts.append(b"<additional-data>%s</additional-data>"
                         % base64.b64encode(self._additional))
        parts.append(("<authorization-identifier>%s</authorization-identifier>"
                      % escape_attr(str(full or stream.jid))).encode())
        parts.extend(etree.tostring(c) for c in children)
        parts.append(b"</success>")
        stream.send_bytes(b"".join(parts))
        self._additional = b""
        self.request = None


def parse_request(el: _E) -> Sasl2Request:
    agent = el.find(_Q + "user-agent")
    client_id = ""
    if agent is not None and agent.get("id") is not None:
        client_id = agent.get("id") or ""
        if _UUID.fullmatch(client_id) is None:
            raise SaslFailure("malformed-request", "<user-agent id/> must be a UUID")
        client_id = client_id.lower()
    asked = el.find("{%s}request-token" % fast.NS)
    fast_el = el.find("{%s}fast" % fast.NS)
    return Sasl2Request(
        mechanism=el.get("mechanism") or "",
        client_id=client_id,
        software=_text(agent, "software"),
        device=_text(agent, "device"),
        bind=el.find("{%s}bind" % BIND_NS),
        resume=el.find("{%s}resume" % ns.SM),
        request_token=(asked.get("mechanism") or "") if asked is not None else None,
        invalidate=fast_el is not None and fast_el.get("invalidate") in ("1", "true"))


def _text(parent: _E | None, name: str) -> str:
    if parent is None:
        return ""
    return (parent.findtext(_Q + name) or "").strip()[:100]
