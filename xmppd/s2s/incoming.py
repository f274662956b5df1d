# tests: tests/core/test_s2s_incoming.py
"""A stream another server opened to us (RFC 6120 §4–§6 for jabber:server), sans-IO.

- Header: `to` must be one of our domains (hosts, service domains, components), else
  `<host-unknown/>`; a `from` that is not a domain, or is ours, is `<invalid-from/>`; one the
  `s2s.allow`/`s2s.deny` policy refuses is `<policy-violation/>`; version 1.0 is required.
- STARTTLS as for clients (required unless the listener says otherwise; bytes pipelined after
  `<starttls/>` are dropped). Nothing but `<starttls/>` is read on a plain stream that must
  be encrypted (§5.3.1, `<not-authorized/>`).
- After TLS: SASL EXTERNAL is offered when the peer's certificate verifies and names the
  header's `from` (XEP-0178 §3; RFC 6125). The authorization identity, if any, must be that
  domain (`<invalid-authzid/>`); anything else `<not-authorized/>`, after which dialback may
  still follow. Success authenticates the pair (from, to) and restarts the stream.
- Server Dialback (XEP-0220), offered with `<dialback><errors/></dialback>` when the peer's
  header declares the dialback namespace: a `<db:result/>` for a domain the certificate proves
  is valid at once; otherwise, unless `require_valid_certificates`, the key is verified with
  the sender domain's authoritative server: a `DialbackVerify` event, answered with
  `dialback_result()`. An invalid key on a stream with no other pair closes it (§2.2.1).
  `<db:verify/>` requests are answered here, as the authoritative server, from our own keys.
  Typed dialback elements on this stream are unsolicited and dropped (§3.1 attacks).
- XEP-0288: `<bidi/>` is offered before authentication; a peer that sends `<bidi/>` may get our
  stanzas back over this stream for each pair it authenticated (`bidi`, `pairs`).
- Stanzas need both addresses (`<improper-addressing/>`); their `from` domain must be one the
  stream authenticated (`<invalid-from/>`: no spoofing of other domains or of our users), their
  `to` domain one of ours (`<host-unknown/>`). They come out in jabber:client.
"""
from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Callable, Literal

from lxml import etree

from stanzas import ns
from stanzas.errors import StanzaError, StreamError
from xmppd.s2s import dialback
from xmppd.s2s.certs import PeerCertificate
from xmppd.s2s.dialback import DB, DialbackKeys
from xmppd.s2s.stream import (STANZA_NAMES, BaseStream, Limits, StartTLS, Stanza, domain_of,
                              header_bytes, version_of)
from xmppd.xmlstream import StreamOpen

_E = etree._Element
_SASL = "{%s}" % ns.SASL
_MAX_PENDING = 100            # dialback verifications in flight per stream


@dataclass(frozen=True, slots=True)
class DialbackVerify:
    """Verify `key` with `remote`'s authoritative server; answer `dialback_result`."""
    remote: str
    local: str
    key: str
    stream_id: str


@dataclass(frozen=True, slots=True)
class Authenticated:
    remote: str
    local: str
    how: Literal["sasl", "dialback", "certificate"]


@dataclass(frozen=True, slots=True)
class InboundSettings:
    limits: Limits
    is_local: Callable[[str], bool]
    allowed: Callable[[str], bool]
    keys: DialbackKeys
    tls: Literal["required", "optional", "off"] = "required"
    tls_available: bool = True
    require_valid_certificates: bool = False
    hosts_hint: tuple[str, ...] = field(default=())    # for the header of an early error


class IncomingStream(BaseStream):
    def __init__(self, settings: InboundSettings, *, now: float, secure: bool = False,
                 peer_ip: str | None = None) -> None:
        super().__init__(settings.limits, now=now, secure=secure)
        self.settings = settings
        self.peer_ip = peer_ip
        self.local: str | None = None       # the header's 'to'
        self.remote: str | None = None      # the header's 'from'
        self.peer_dialback = False
        self.bidi = False
        self.sasl_done = False
        self.pairs: set[tuple[str, str]] = set()    # (remote, local) authenticated
        self.pending: dict[tuple[str, str], str] = {}   # dialback keys being verified

    @property
    def remotes(self) -> set[str]:
        return {r for r, _ in self.pairs}

    # -- answers from the shell ------------------------------------------------------------
    def tls_started(self, peer: PeerCertificate | None) -> None:
        if self.state == "closed":
            return
        self.secure = True
        self.peer = peer
        self.parser.reset()
        self._header_sent = False
        self.state = "header"

    def dialback_result(self, remote: str, local: str, outcome: str) -> None:
        """`outcome`: "valid", "invalid" or a stanza error condition (XEP-0220 §2.4)."""
        if self.state == "closed" or self.pending.pop((remote, local), None) is None:
            return
        if outcome == "valid":
            self._pair(remote, local, "dialback")
            self._out.append(dialback.element("result", from_=local, to=remote, type_="valid"))
        elif outcome == "invalid":
            if self.pairs:          # §2.2.1: keep the other pairs, refuse this one
                self._db_error("result", local, remote, StanzaError.forbidden())
            else:
                self._out.append(dialback.element("result", from_=local, to=remote,
                                                  type_="invalid"))
                self.close()
        else:
            self._db_error("result", local, remote, StanzaError(outcome))

    # -- negotiation -----------------------------------------------------------------------
    def _send_header(self) -> None:
        local = self.local or next(iter(self.settings.hosts_hint), None)
        self._out.append(header_bytes(ns.SERVER, from_=local, to=self.remote,
                                      stream_id=self._new_stream_id()))
        self._header_sent = True

    def _on_header(self, header: StreamOpen) -> None:
        to = domain_of(header.attrs.get("to"))
        sender = header.attrs.get("from")
        remote = domain_of(sender)
        if to is not None and self.settings.is_local(to):
            self.local = to
        if remote is not None and not self.settings.is_local(remote):
            self.remote = remote
        self._send_header()
        if to is None or not self.settings.is_local(to):
            raise StreamError.host_unknown(f"this server does not serve {header.attrs.get('to')!r}")
        if sender is not None and (remote is None or self.settings.is_local(remote)):
            raise StreamError("invalid-from", f"{sender!r} is not a remote domain")
        if remote is not None and not self.settings.allowed(remote):
            raise StreamError.policy_violation(f"this server does not federate with {remote}")
        if version_of(header) < (1, 0):
            raise StreamError.unsupported_version("XMPP 1.0 is required (RFC 6120 §4.7.5)")
        self.peer_dialback = header.namespaces.get("db") == ns.DIALBACK or \
            ns.DIALBACK in header.namespaces.values()
        self._out.append(self._features())
        self.state = "open"

    def _tls_needed(self) -> bool:
        return not self.secure and self.settings.tls == "required" and self.settings.tls_available

    def _features(self) -> bytes:
        parts = [b"<stream:features>"]
        if not self.secure and self.settings.tls != "off" and self.settings.tls_available:
            parts.append(b"<starttls xmlns='%s'>%s</starttls>" % (
                ns.TLS.encode(), b"<required/>" if self._tls_needed() else b""))
        if not self._tls_needed() and not self.sasl_done:
            if self._external_ok():
                parts.append(b"<mechanisms xmlns='%s'><mechanism>EXTERNAL</mechanism>"
                             b"</mechanisms>" % ns.SASL.encode())
            if self.peer_dialback:
                parts.append(b"<dialback xmlns='%s'><errors/></dialback>"
                             % ns.DIALBACK_FEATURE.encode())
            parts.append(b"<bidi xmlns='%s'/>" % ns.BIDI_FEATURE.encode())
        parts.append(b"</stream:features>")
        return b"".join(parts)

    def _external_ok(self) -> bool:
        return (self.secure and self.remote is not None and self.peer is not None
                and self.peer.proves(self.remote))

    def _on_element(self, el: _E) -> bool:
        tag = el.tag
        if not isinstance(tag, str):
            return False
        if tag == "{%s}starttls" % ns.TLS:
            return self._starttls()
        if self._tls_needed():
            raise StreamError.not_authorized("STARTTLS is required first")
        if tag.startswith(_SASL):
            return self._sasl(el, tag[len(_SASL):])
        if tag.startswith(DB):
            self._dialback(el, tag[len(DB):])
            return False
        if tag == "{%s}bidi" % ns.BIDI:
            self.bidi = True        # XEP-0288 §2: before SASL or dialback
            return False
        if tag in ("{%s}%s" % (ns.SERVER, n) for n in STANZA_NAMES):
            self._stanza(el)
            return False
        raise StreamError.unsupported_stanza_type(f"unexpected element {tag}")

    def _starttls(self) -> bool:
        if self.secure or self.settings.tls == "off" or not self.settings.tls_available \
                or self.authenticated:
            self._out.append(b"<failure xmlns='%s'/>" % ns.TLS.encode())
            self.close()
            return True
        self._out.append(b"<proceed xmlns='%s'/>" % ns.TLS.encode())
        self._events.append(StartTLS())
        self.parser.reset()         # drop anything pipelined after <starttls/>
        self.state = "tls"
        return True

    # -- SASL EXTERNAL (XEP-0178) ----------------------------------------------------------
    def _sasl(self, el: _E, name: str) -> bool:
        if self.sasl_done or self.pairs:
            raise StreamError.not_authorized("already authenticated")
        if name == "auth":
            if el.get("mechanism") != "EXTERNAL" or not self._external_ok():
                self._sasl_failure("invalid-mechanism" if el.get("mechanism") != "EXTERNAL"
                                   else "not-authorized")
                return False
            assert self.remote is not None and self.local is not None
            authzid = _b64(el.text)
            if authzid is None:
                self._sasl_failure("incorrect-encoding")
                return False
            if authzid and domain_of(authzid) != self.remote:
                self._sasl_failure("invalid-authzid")
                return False
            self._out.append(b"<success xmlns='%s'/>" % ns.SASL.encode())
            self.sasl_done = True
            self._pair(self.remote, self.local, "sasl")
            self.parser.reset()
            self._header_sent = False
            self.state = "header"
            return True
        if name in ("response", "abort"):
            self._sasl_failure("aborted" if name == "abort" else "malformed-request")
            return False
        raise StreamError.unsupported_stanza_type(f"unknown SASL element {name}")

    def _sasl_failure(self, condition: str) -> None:
        self._out.append(b"<failure xmlns='%s'><%s/></failure>"
                         % (ns.SASL.encode(), condition.encode()))

    # -- dialback (XEP-0220) ---------------------------------------------------------------
    def _dialback(self, el: _E, name: str) -> None:
        if el.get("type") is not None or name not in ("result", "verify"):
            return                  # §3.1: unsolicited answers are never trusted
        remote = domain_of(el.get("from"))
        local = domain_of(el.get("to"))
        if remote is None or local is None:
            raise StreamError("improper-addressing", "dialback needs 'from' and 'to' domains")
        key = (el.text or "").strip()
        if not self.settings.is_local(local):
            # §2.2.1 / §2.4: not a stream error, the stream may carry other pairs
            self._db_error(name, local, remote, StanzaError.item_not_found(),
                           el.get("id") if name == "verify" else None)
            return
        if name == "verify":
            valid = self.settings.keys.check(key, remote, local, el.get("id") or "")
            self._out.append(dialback.element("verify", from_=local, to=remote,
                                              stream_id=el.get("id") or "",
                                              type_="valid" if valid else "invalid"))
            return
        if self.settings.is_local(remote) or not self.settings.allowed(remote):
            self._db_error("result", local, remote, StanzaError.policy_violation())
        elif (remote, local) in self.pairs:
            self._out.append(dialback.element("result", from_=local, to=remote, type_="valid"))
        elif self.peer is not None and self.secure and self.peer.proves(remote):
            # The certificate already proves the sender domain (XEP-0220 §1.3, "dialback
            # without dialing back"): no need to call its authoritative server.
            self._pair(remote, local, "certificate")
            self._out.append(dialback.element("result", from_=local, to=remote, type_="valid"))
        elif self.settings.require_valid_certificates:
            self._db_error("result", local, remote, StanzaError.not_authorized(
                "a certificate valid for the sender domain is required"))
        elif (remote, local) in self.pending:
            return                  # already being verified
        elif len(self.pending) >= _MAX_PENDING:
            self._db_error("result", local, remote, StanzaError.resource_constraint())
        elif not key:
            self._db_error("result", local, remote, StanzaError.bad_request())
        else:
            self.pending[(remote, local)] = key
            self._events.append(DialbackVerify(remote, local, key, self.stream_id))

    def _db_error(self, name: str, local: str, remote: str, error: StanzaError,
                  stream_id: str | None = None) -> None:
        self._out.append(dialback.element(name, from_=local, to=remote, stream_id=stream_id,
                                          type_="error", error=error))

    def _pair(self, remote: str, local: str, how: Literal["sasl", "dialback",
                                                           "certificate"]) -> None:
        if not self.pairs:
            self._authenticated_now()
        self.pairs.add((remote, local))
        self._events.append(Authenticated(remote, local, how))

    # -- stanzas ---------------------------------------------------------------------------
    def _stanza(self, el: _E) -> None:
        if not self.pairs:
            raise StreamError.not_authorized("authenticate first (SASL or dialback)")
        converted, sender, to = self._checked_stanza(el)
        if sender.domain not in self.remotes:
            raise StreamError("invalid-from", f"{sender.domain} is not authenticated on this "
                              "stream")
        if not self.settings.is_local(to.domain):
            raise StreamError.host_unknown(f"this server does not serve {to.domain}")
        self._events.append(Stanza(converted))


def _b64(text: str | None) -> str | None:
    data = (text or "").strip()
    if not data or data == "=":
        return ""
    try:
        return base64.b64decode(data, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
