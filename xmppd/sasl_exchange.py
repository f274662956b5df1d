# tests: tests/core/test_c2s.py, tests/core/test_sasl2.py
"""One SASL mechanism run on a client stream, whichever profile carries it (RFC 6120 §6 or
XEP-0388 SASL2), sans-IO: SCRAM-SHA-*(-PLUS), PLAIN and the FAST HT-SHA-256-* mechanisms.

Each step returns what the stream does next: a `Challenge` to send, a `Lookup` of the
account's password credentials or of the client's FAST tokens (the shell answers), or `Done`
(the user, the success data, the FAST token used); or it raises `SaslFailure`.
- No initial response: an empty challenge, and the next response is the initial one
  (RFC 6120 §6.4.2; XEP-0388 §2.3 omits the element the same way).
- User names are the SASLprep'd simple user name, mapped to a localpart with Nodeprep (RFC
  6120 §6.3.8: "Juliet" logs in to "juliet", as Prosody and ejabberd do); anything that is not
  a valid localpart fails like a wrong password.
- An unknown user costs what a known one does (SCRAM's fake salt, PLAIN's dummy PBKDF2, FAST's
  dummy HMAC): the answer's timing does not tell whether the account exists.
"""
from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Union

from stanzas.jid import JID, JIDError
from storage.credentials import ScramCredentials
from storage.fast import StoredToken
from xmppd.fast import HtServer, is_fast
from xmppd.sasl import PlainServer
from xmppd.sasl_errors import SaslFailure
from xmppd.scram import ScramServer

_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")


@dataclass(frozen=True, slots=True)
class Challenge:
    data: bytes


@dataclass(frozen=True, slots=True)
class Lookup:
    kind: Literal["password", "token"]
    username: str


@dataclass(frozen=True, slots=True)
class Done:
    username: str
    additional: bytes
    token: StoredToken | None = None      # the FAST token that authenticated


Step = Union[Challenge, Lookup, Done]


class Exchange:
    def __init__(self, mechanism: str, *, host: str, iterations: int,
                 bindings: Mapping[str, bytes], plus_offered: bool) -> None:
        self.mechanism = mechanism
        self.host = host
        self.username: str | None = None
        self._iterations = iterations
        self._pending_initial = False
        self._password: str | None = None
        self._scram: ScramServer | None = None
        self._ht: HtServer | None = None
        if is_fast(mechanism):
            self._ht = HtServer(mechanism, bindings)
        elif mechanism != "PLAIN":
            self._scram = ScramServer(mechanism, host=host, fake_iterations=iterations,
                                      bindings=bindings, plus_offered=plus_offered)

    @property
    def binding(self) -> str | None:
        """The channel-binding type the exchange used (SCRAM-*-PLUS), if any."""
        return self._scram.binding if self._scram is not None else None

    def start(self, data: bytes | None) -> Step:
        if data is None:
            self._pending_initial = True
            return Challenge(b"")
        return self._initial(data)

    def respond(self, data: bytes) -> Step:
        if self._pending_initial:
            self._pending_initial = False
            return self._initial(data)
        if self._scram is not None and self.username is not None:
            final = self._scram.final(data)
            return Done(self.username, final)
        raise SaslFailure("malformed-request", "no response was expected")

    def credentials(self, creds: Mapping[str, ScramCredentials] | None) -> Step:
        """The account's credentials (None: no such account) for SCRAM and PLAIN."""
        assert self.username is not None
        if self._scram is not None:
            mine = creds.get(self._scram.base) if creds else None
            return Challenge(self._scram.server_first(mine))
        assert self._password is not None
        password, self._password = self._password, None
        if not PlainServer.check(password, creds, iterations=self._iterations):
            raise SaslFailure("not-authorized")
        return Done(self.username, b"")

    def tokens(self, tokens: Sequence[StoredToken], now: float) -> Step:
        """The client's FAST tokens (none: unknown account or client)."""
        assert self._ht is not None and self.username is not None
        token = self._ht.verify(tokens, now)
        return Done(self.username, self._ht.responder(), token)

    def _initial(self, data: bytes) -> Lookup:
        if self._ht is not None:
            self.username = valid_user(self._ht.parse(data), self.host)
            return Lookup("token", self.username)
        if self._scram is None:
            _authzid, user, self._password = PlainServer.parse(data, host=self.host)
            self.username = valid_user(user, self.host)
            return Lookup("password", self.username)
        self.username = valid_user(self._scram.first(data), self.host)
        return Lookup("password", self.username)


def valid_user(user: str, host: str) -> str:
    """The localpart a SASL simple user name logs in to (RFC 6120 §6.3.8)."""
    try:
        local = JID.of(user, host).local
    except JIDError:
        raise SaslFailure("not-authorized") from None
    if not local:
        raise SaslFailure("not-authorized")
    return local


def b64decode(text: str | None, *, empty_marker: bool = True) -> bytes:
    """SASL data as RFC 6120 §6.4.2 / XEP-0388 carry it: strict base64 (RFC 4648 §4), "=" for
    an empty initial response in RFC 6120 (`empty_marker`). §6.5.5: `incorrect-encoding`."""
    data = (text or "").strip()
    if not data or (empty_marker and data == "="):
        return b""
    # Python alone would take excess padding ("biws==") and more.
    if len(data) % 4 or _BASE64.fullmatch(data) is None:
        raise SaslFailure("incorrect-encoding")
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise SaslFailure("incorrect-encoding") from None
