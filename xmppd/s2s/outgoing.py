# tests: tests/core/test_s2s_outgoing.py
"""A stream we open to another server for one domain pair (local → remote), sans-IO.

- The shell connects (xmppd/listeners/s2s.py), then calls `connected()` (plain TCP) or
  `tls_started(peer)` (XEP-0368 direct TLS); either sends our header, which declares the
  dialback namespace (XEP-0220 §2.4.1).
- TLS is required: STARTTLS when offered (RFC 6120 §5), and a peer that offers none is left
  (`<policy-violation/>`). With `require_valid_certificates` the peer's certificate must verify
  and name the remote domain (RFC 6125), or the stream is abandoned the same way.
- XEP-0288: `<bidi/>` is sent when the peer offers it, before authentication; the peer may
  then send us stanzas from the remote domain over this stream.
- Authentication: SASL EXTERNAL (XEP-0178: authorization identity = our domain) when offered;
  on its failure, or when not offered, Server Dialback (`<db:result/>` with our key over the
  peer's stream id). `Ready` once authenticated; `Failed` says why it never got there.
- Dialback verification for keys other servers gave us (we, the receiving server, ask this
  peer, the authoritative server): `request_verify()`; sent once the stream is past TLS and
  not inside SASL, answered with `VerifyResult`. Answers that match no request are dropped
  (§3.1).
"""
from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Callable, Literal

from lxml import etree

from stanzas import ns
from stanzas.errors import StanzaError, StreamError
from xmppd.s2s import dialback
from xmppd.s2s.certs import PeerCertificate
from xmppd.s2s.dialback import DB, DialbackKeys
from xmppd.s2s.stream import (STANZA_NAMES, BaseStream, Limits, StartTLS, Stanza,
                              header_bytes, version_of)
from xmppd.xmlstream import StreamOpen

_E = etree._Element
_SASL = "{%s}" % ns.SASL


@dataclass(frozen=True, slots=True)
class Ready:
    """Authenticated: stanzas from `local` to `remote` may be sent."""
    how: Literal["sasl", "dialback"]


@dataclass(frozen=True, slots=True)
class Failed:
    """Why the stream will never be ready (logged; decides how queued stanzas bounce):
    "tls" (no TLS / TLS refused), "certificate", "auth" (nothing to authenticate with or
    refused), "dialback-invalid", "dialback-error"."""
    reason: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class VerifyResult:
    remote: str             # the authoritative server's domain (our request's 'to')
    local: str
    stream_id: str
    outcome: str            # "valid", "invalid" or a stanza error condition


@dataclass(frozen=True, slots=True)
class OutboundSettings:
    limits: Limits
    keys: DialbackKeys
    is_local: Callable[[str], bool]
    require_valid_certificates: bool = False
    bidi: bool = True


class OutgoingStream(BaseStream):
    def __init__(self, settings: OutboundSettings, local: str, remote: str, *,
                 now: float) -> None:
        super().__init__(settings.limits, now=now)
        self.settings = settings
        self.local = local
        self.remote = remote
        self.state = "connecting"
        self.peer_stream_id = ""
        self.peer_dialback = False
        self.bidi = False
        self.sasl_done = False
        self.external_failed = False
        self._verifies: list[tuple[str, str, str]] = []     # (id, key, remote) to send
        self._asked: set[tuple[str, str, str]] = set()        # (remote, local, id) sent

    # -- from the shell --------------------------------------------------------------------
    def connected(self) -> None:
        if self.state == "connecting":
            self._restart()

    def tls_started(self, peer: PeerCertificate | None) -> None:
        if self.state not in ("connecting", "handshake"):
            return
        self.secure = True
        self.peer = peer
        self._restart()

    def request_verify(self, stream_id: str, key: str) -> None:
        """Ask the peer (authoritative for `remote`) whether `key` is valid for the stream
        `stream_id` that `remote` opened to our `local` domain (XEP-0220 §2.1.2)."""
        self._verifies.append((stream_id, key, self.remote))
        self._flush_verifies()

    # -- negotiation -----------------------------------------------------------------------
    def _restart(self) -> None:
        self.parser.reset()
        self._send_header()
        self.state = "header"

    def _send_header(self) -> None:
        self._out.append(header_bytes(ns.SERVER, from_=self.local, to=self.remote,
                                      stream_id=None))
        self._header_sent = True

    def _on_header(self, header: StreamOpen) -> None:
        if version_of(header) < (1, 0):
            raise StreamError.unsupported_version("XMPP 1.0 is required (RFC 6120 §4.7.5)")
        self.peer_stream_id = header.attrs.get("id", "")
        self.peer_dialback = ns.DIALBACK in header.namespaces.values()
        self.state = "features"

    def _fail(self, reason: str, error: StreamError | None, detail: str = "") -> bool:
        self._events.append(Failed(reason, detail))
        self.close(error)
        return True

    def _on_element(self, el: _E) -> bool:
        tag = el.tag
        if not isinstance(tag, str):
            return False
        if tag == "{%s}features" % ns.STREAMS and self.state == "features":
            return self._features(el)
        if tag.startswith("{%s}" % ns.TLS) and self.state == "starttls":
            if tag == "{%s}proceed" % ns.TLS:
                self._events.append(StartTLS())
                self.parser.reset()
                self.state = "handshake"
                return True
            return self._fail("tls", None, "the peer refused STARTTLS")
        if tag.startswith(_SASL) and self.state == "sasl":
            return self._sasl_answer(tag[len(_SASL):])
        if tag.startswith(DB):
            self._dialback(el, tag[len(DB):])
            return False
        if tag in ("{%s}%s" % (ns.SERVER, n) for n in STANZA_NAMES) and self.state == "ready":
            self._stanza(el)
            return False
        raise StreamError.unsupported_stanza_type(f"unexpected element {tag}")

    def _features(self, features: _E) -> bool:
        if self.sasl_done:
            return self._ready("sasl")
        if not self.secure:
            if features.find("{%s}starttls" % ns.TLS) is None:
                return self._fail("tls", StreamError.policy_violation("TLS is required"),
                                  "the peer does not offer STARTTLS")
            self._out.append(b"<starttls xmlns='%s'/>" % ns.TLS.encode())
            self.state = "starttls"
            return False
        if self.settings.require_valid_certificates and not (
                self.peer is not None and self.peer.proves(self.remote)):
            return self._fail("certificate", StreamError.policy_violation(
                "no valid certificate for %s" % self.remote),
                self.peer.error if self.peer is not None else "no certificate")
        if features.find("{%s}bidi" % ns.BIDI_FEATURE) is not None and self.settings.bidi:
            self._out.append(b"<bidi xmlns='%s'/>" % ns.BIDI.encode())    # XEP-0288 §2
            self.bidi = True
        mechanisms = features.find("{%s}mechanisms" % ns.SASL)
        offered = [] if mechanisms is None else [(m.text or "").strip() for m in mechanisms]
        self.peer_dialback = self.peer_dialback or \
            features.find("{%s}dialback" % ns.DIALBACK_FEATURE) is not None
        if "EXTERNAL" in offered:
            self._out.append(b"<auth xmlns='%s' mechanism='EXTERNAL'>%s</auth>" % (
                ns.SASL.encode(), base64.b64encode(self.local.encode())))
            self.state = "sasl"
            return False
        return self._start_dialback()

    def _start_dialback(self) -> bool:
        if not self.peer_dialback or not self.peer_stream_id:
            return self._fail("auth", StreamError("undefined-condition",
                                                  "no authentication method in common"),
                              "neither SASL EXTERNAL nor dialback")
        key = self.settings.keys.key(self.remote, self.local, self.peer_stream_id)
        self._out.append(dialback.element("result", from_=self.local, to=self.remote, key=key))
        self.state = "dialback"
        self._flush_verifies()
        return False

    def _sasl_answer(self, name: str) -> bool:
        if name == "success":
            self.sasl_done = True
            self._restart()
            return True
        if name == "failure":
            self.external_failed = True     # XEP-0178 §3: dialback may follow
            return self._start_dialback()
        raise StreamError.unsupported_stanza_type(f"unexpected SASL element {name}")

    def _ready(self, how: Literal["sasl", "dialback"]) -> bool:
        self.state = "ready"
        self._authenticated_now()
        self._events.append(Ready(how))
        self._flush_verifies()
        return False

    # -- dialback answers ------------------------------------------------------------------
    def _dialback(self, el: _E, name: str) -> None:
        kind = el.get("type")
        sender, to = el.get("from"), el.get("to")
        if name == "result" and kind is None:
            # The peer wants to authenticate a domain on our outgoing stream (XEP-0288 target
            # piggybacking): not supported; answered as a dialback error (§2.4).
            if sender and to:
                self._out.append(dialback.element("result", from_=to, to=sender, type_="error",
                                                  error=StanzaError.feature_not_implemented()))
            return
        if name == "result" and self.state == "dialback" and sender == self.remote \
                and to == self.local:
            if kind == "valid":
                self._ready("dialback")
            elif kind == "invalid":
                self._fail("dialback-invalid", None, "the peer found our key invalid")
            elif kind == "error":
                self._fail("dialback-error", None, dialback.error_condition(el))
            return
        if name == "verify" and kind in ("valid", "invalid", "error"):
            ask = (sender or "", to or "", el.get("id") or "")
            if ask not in self._asked:
                return              # §3.1: an answer to nothing we asked
            self._asked.discard(ask)
            outcome = kind if kind != "error" else dialback.error_condition(el)
            self._events.append(VerifyResult(ask[0], ask[1], ask[2], outcome))

    def _flush_verifies(self) -> None:
        if self.state not in ("dialback", "ready") or not self._verifies:
            return
        for stream_id, key, remote in self._verifies:
            self._asked.add((remote, self.local, stream_id))
            self._out.append(dialback.element("verify", from_=self.local, to=remote,
                                              stream_id=stream_id, key=key))
        self._verifies.clear()

    # -- stanzas over a bidirectional stream (XEP-0288) ------------------------------------
    def _stanza(self, el: _E) -> None:
        if not self.bidi:
            raise StreamError.unsupported_stanza_type("stanzas on an outgoing stream need "
                                                      "XEP-0288 bidi")
        converted, sender, to = self._checked_stanza(el)
        if sender.domain != self.remote:
            raise StreamError("invalid-from", f"{sender.domain} is not {self.remote}")
        if not self.settings.is_local(to.domain):
            raise StreamError.host_unknown(f"this server does not serve {to.domain}")
        self._events.append(Stanza(converted))

