# tests: tests/core/test_sasl2.py, tests/modules/test_sasl2_inline.py
"""XEP-0484 FAST: the HT-SHA-256-* mechanisms (draft-schmaus-kitten-sasl-ht) and the tokens
they use, sans-IO.

- Mechanisms: HT-SHA-256-EXPR (tls-exporter), -UNIQ (tls-unique), -ENDP
  (tls-server-end-point) where the connection has that channel binding, and -NONE; strongest
  first (§3.1: "at least one mechanism capable of channel binding, and ... one without").
- The client's one message is `authcid NUL HMAC-SHA-256(token, "Initiator" || cb-data)`; on
  success the server answers `HMAC-SHA-256(token, "Responder" || cb-data)` as additional data,
  so the client knows the server holds the token too (the draft's mutual authentication).
- A token is bound to the mechanism it was issued for (§3.3: "reject attempts to use them with
  other mechanisms"), compared in constant time (§6), and refused once expired with
  `credentials-expired` (§4.2: the client then logs in with its password).
- Tokens are 96 characters (72 random bytes), longer than SHA-256's 64-byte block: HMAC hashes
  such a key first (RFC 2104 §2), so `key_of(token)` (SHA-256) is all the server keeps and
  all it needs (storage/fast.py).
Not here: where tokens are kept, issued and rotated (storage/fast.py, xmppd/sasl2.py, the
client session).
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping, Sequence

from storage.fast import StoredToken
from xmppd.sasl_errors import SaslFailure
from xmppd.saslprep import saslprep

NS = "urn:xmpp:fast:0"
TOKEN_BYTES = 72
_SUFFIXES = (("EXPR", "tls-exporter"), ("UNIQ", "tls-unique"),
             ("ENDP", "tls-server-end-point"), ("NONE", None))
_BINDING = {f"HT-SHA-256-{suffix}": kind for suffix, kind in _SUFFIXES}
_DIGEST = hashlib.sha256().digest_size


def mechanisms(bindings: Mapping[str, bytes]) -> list[str]:
    """The FAST mechanisms this connection can offer, strongest first."""
    return [m for m, kind in _BINDING.items() if kind is None or kind in bindings]


def is_fast(mechanism: str) -> bool:
    return mechanism in _BINDING


def new_token() -> tuple[str, bytes]:
    """A fresh token for the client, and the key the server keeps."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    return token, key_of(token)


def key_of(token: str) -> bytes:
    """What HMAC-SHA-256 keyed by `token` really uses (RFC 2104 §2, tokens > 64 bytes)."""
    data = token.encode()
    assert len(data) > hashlib.sha256().block_size, "FAST tokens must outgrow the HMAC block"
    return hashlib.sha256(data).digest()


class HtServer:
    """One HT-SHA-256-* exchange: `parse` the client's message (the username to look up), then
    `verify` it against the client's stored tokens; `responder()` is the success data."""

    def __init__(self, mechanism: str, bindings: Mapping[str, bytes]) -> None:
        if mechanism not in _BINDING:
            raise SaslFailure("invalid-mechanism")
        kind = _BINDING[mechanism]
        if kind is not None and kind not in bindings:
            raise SaslFailure("invalid-mechanism")
        self.mechanism = mechanism
        self._cb = bindings[kind] if kind is not None else b""
        self._proof = b""
        self._key = b""
        self.username: str | None = None

    def parse(self, message: bytes) -> str:
        """`authcid NUL initiator-hashed-token`; returns the SASLprep'd authcid."""
        name, sep, proof = message.partition(b"\x00")
        if not sep or not name or len(proof) != _DIGEST:
            raise SaslFailure("malformed-request", "Invalid HT message")
        try:
            username = saslprep(name.decode("utf-8"), allow_unassigned=True)
        except UnicodeDecodeError:
            raise SaslFailure("malformed-request", "HT message is not UTF-8") from None
        if not username:
            raise SaslFailure("malformed-request", "Empty username")
        self.username, self._proof = username, proof
        return username

    def verify(self, tokens: Sequence[StoredToken], now: float) -> StoredToken:
        """The token the client proved it holds ('new' slot first, §6); SaslFailure
        `not-authorized` if none, `credentials-expired` if it has expired."""
        matched: StoredToken | None = None
        for token in tokens:
            expected = hmac.digest(token.key, b"Initiator" + self._cb, "sha256")
            ok = hmac.compare_digest(expected, self._proof) & (token.mechanism == self.mechanism)
            if ok and matched is None:
                matched = token
        if not tokens:          # the same work for an unknown client or account
            hmac.compare_digest(hmac.digest(secrets.token_bytes(_DIGEST), b"Initiator" +
                                            self._cb, "sha256"), self._proof)
        if matched is None:
            raise SaslFailure("not-authorized")
        if matched.expires_at <= now:
            raise SaslFailure("credentials-expired", "this token has expired")
        self._key = matched.key
        return matched

    def responder(self) -> bytes:
        """The server's proof (success additional data)."""
        assert self._key, "verify first"
        return hmac.digest(self._key, b"Responder" + self._cb, "sha256")
