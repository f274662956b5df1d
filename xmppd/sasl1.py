# tests: tests/core/test_c2s.py
"""SASL on a client stream as RFC 6120 §6 profiles it (and the part both profiles share),
sans-IO: the stream (xmppd/c2s.py) hands this helper every element in the SASL namespace.

- `<auth mechanism/>` starts an exchange (xmppd/sasl_exchange.py): a mechanism we did not
  offer fails with `<invalid-mechanism/>`; an `<auth/>` without an initial response gets an
  empty challenge (§6.4.2); a new `<auth/>` replaces one in progress (§6.4.2: "the receiving
  entity MUST discard the ongoing handshake").
- `<response/>` and `<abort/>` continue or end it; either with no exchange in progress fails
  with `<malformed-request/>`.
- Failures are §6.5 conditions; the stream counts them (five close it) and reports
  `not-authorized` ones for the throttle (xmppd/throttle.py).
- `<success/>` (§6.4.6) and the stream restarts; what the client sent after the element that
  completed it belongs to the old stream document and is dropped.
"""
from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Callable

from lxml import etree

from stanzas import ns
from stanzas.errors import StreamError, escape_attr
from xmppd import c2s_features
from xmppd.sasl_errors import SaslFailure
from xmppd.sasl_exchange import Challenge, Done, Exchange, Lookup, Step, b64decode

if TYPE_CHECKING:
    from xmppd.c2s import C2SStream

_E = etree._Element
_SASL = "{%s}" % ns.SASL


class SaslProfile:
    """What the two profiles share: running the exchange and looking credentials up."""
    ns = ns.SASL

    def __init__(self, stream: C2SStream) -> None:
        self.stream = stream
        self.exchange: Exchange | None = None
        self.client_id = ""             # XEP-0388 <user-agent id/> (FAST tokens are per client)

    def begin(self, mechanism: str) -> bool:
        """A new exchange for `mechanism`; False (after the failure) if it cannot start."""
        stream = self.stream
        self.exchange = None
        if mechanism not in self.offered():
            self.fail(SaslFailure("invalid-mechanism"))
            return False
        assert stream.host is not None
        try:
            self.exchange = Exchange(mechanism, host=stream.host,
                                     iterations=stream.settings.scram_iterations,
                                     bindings=c2s_features.bindings(stream),
                                     plus_offered=c2s_features.plus_offered(stream))
        except SaslFailure as f:
            self.fail(f)
            return False
        stream.state = "sasl"
        return True

    def offered(self) -> list[str]:
        return c2s_features.mechanisms(self.stream)

    def run(self, step: Callable[[Exchange], Step]) -> bool:
        """Take one step of the exchange; True if it completed (the caller stops reading)."""
        exchange = self.exchange
        if exchange is None:
            return False
        try:
            outcome = step(exchange)
        except SaslFailure as f:
            self.fail(f)
            return False
        if isinstance(outcome, Challenge):
            self.challenge(outcome.data)
            return False
        if isinstance(outcome, Lookup):
            self.stream.need_lookup(outcome.kind, outcome.username, self.client_id)
            return False
        self.exchange = None
        return self.succeed(outcome)

    def fail(self, failure: SaslFailure) -> None:
        user = self.exchange.username if self.exchange is not None else None
        self.exchange = None
        text = ""
        if failure.text:
            text = "<text xml:lang='en'>%s</text>" % escape_attr(failure.text)
        self.stream.send_bytes(("<failure xmlns='%s'><%s%s/>%s</failure>" % (
            self.ns, failure.condition, self._condition_ns(), text)).encode())
        self.stream.auth_failed(failure.condition, user)

    def _condition_ns(self) -> str:
        return ""

    def challenge(self, data: bytes) -> None:
        if not data:
            self.stream.send_bytes(b"<challenge xmlns='%s'/>" % self.ns.encode())
            return
        self.stream.send_bytes(b"<challenge xmlns='%s'>%s</challenge>"
                               % (self.ns.encode(), base64.b64encode(data)))

    def succeed(self, done: Done) -> bool:
        raise NotImplementedError


class Sasl1(SaslProfile):
    """RFC 6120 §6."""

    def element(self, el: _E) -> bool:
        """A SASL element from the client; True if the stream must stop reading (success)."""
        stream = self.stream
        name = el.tag[len(_SASL):]
        if stream.authenticated:
            raise StreamError.not_authorized("already authenticated")
        if name == "auth":
            if not self.begin(el.get("mechanism", "")):
                return False
            text = el.text if el.text is not None and el.text.strip() else None
            return self.run(lambda x: x.start(None if text is None else b64decode(text)))
        if name == "response" and stream.state == "sasl" and self.exchange is not None:
            return self.run(lambda x: x.respond(b64decode(el.text)))
        if name == "abort" and stream.state == "sasl":
            self.fail(SaslFailure("aborted"))
            return False
        if name in ("response", "abort"):
            self.fail(SaslFailure("malformed-request", "no authentication in progress"))
            return False
        raise StreamError.unsupported_stanza_type(f"unknown SASL element {name}")

    def succeed(self, done: Done) -> bool:
        data = base64.b64encode(done.additional).decode() if done.additional else ""
        self.stream.send_bytes(("<success xmlns='%s'>%s</success>" % (ns.SASL, data)).encode())
        self.stream.authenticated_as(done.username, restart=True)
        return True
