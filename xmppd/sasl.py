# tests: tests/core/test_sasl.py
"""SASL server mechanisms (RFC 4422), sans-IO: SCRAM-SHA-1/-256 (RFC 5802/7677) and PLAIN (RFC 4616).

- `ScramServer` runs one SCRAM exchange; `PlainServer` parses and checks PLAIN. Both take and
  return the raw SASL payload: base64 of the XML character data is the caller's (RFC 6120 §6.4.2).
- Failures are `SaslFailure(condition)` with an RFC 6120 §6.5 condition; the caller sends
  `<failure/>`. Unknown users and wrong passwords fail identically (`not-authorized`), and an
  unknown user still gets a plausible server-first-message (RFC 5802 §9, "… SHOULD … fake salt").
- Passwords are stored only as `ScramCredentials` (RFC 5802 §3); `derive_all` makes one per
  mechanism, each with its own salt. PLAIN is verified against the same credentials.
- Usernames come back SASLprep'd (RFC 4013); mapping them to an account (Nodeprep, RFC 6120
  §6.3.8: the simple user name is the localpart) is the caller's.

Not here: channel binding (-PLUS), mechanism offering and stream plumbing (the c2s session),
account lookup (storage/accounts.py). Nothing here logs; never log payloads or passwords.
"""
from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import re
import secrets
import stringprep
import unicodedata
from collections.abc import Mapping

from stanzas.jid import JID, JIDError, nameprep, nodeprep
from storage.credentials import ScramCredentials

__all__ = [
    "DEFAULT_ITERATIONS",
    "HASHES",
    "PlainServer",
    "SaslFailure",
    "ScramCredentials",
    "ScramServer",
    "derive_all",
    "derive_scram",
    "saslprep",
]


HASHES = {"SCRAM-SHA-1": "sha1", "SCRAM-SHA-256": "sha256"}
"""SASL mechanism name -> hashlib name, strongest last."""

DEFAULT_ITERATIONS = 4096
"""RFC 7677 §4: the iteration count "SHOULD be at least 4096"."""

SALT_BYTES = 16

CONDITIONS = frozenset(
    {
        "aborted",
        "account-disabled",
        "credentials-expired",
        "encryption-required",
        "incorrect-encoding",
        "invalid-authzid",
        "invalid-mechanism",
        "malformed-request",
        "mechanism-too-weak",
        "not-authorized",
        "temporary-auth-failure",
    }
)
"""The SASL failure conditions of RFC 6120 §6.5."""


class SaslFailure(Exception):
    """A SASL exchange failed: send `<failure><{condition}/>[<text/>]</failure>` (RFC 6120 §6.4.5).

    `text` is for the client and never contains the payload, the username or the password.
    """

    condition: str
    text: str | None

    def __init__(self, condition: str, text: str | None = None) -> None:
        if condition not in CONDITIONS:
            raise ValueError(f"not an RFC 6120 §6.5 SASL condition: {condition!r}")
        super().__init__(condition if text is None else f"{condition}: {text}")
        self.condition = condition
        self.text = text


# --- SASLprep (RFC 4013) --------------------------------------------------------------------

_ucd = unicodedata.ucd_3_2_0  # stringprep is defined on Unicode 3.2 (RFC 3454 §1.2)
_ASCII_PRINTABLE = re.compile(r"[\x20-\x7e]*")


def saslprep(s: str, *, allow_unassigned: bool = False) -> str:
    """Prepare a user name or password with SASLprep (RFC 4013).

    Non-ASCII spaces map to SPACE and table B.1 to nothing (§2.1), then NFKC (§2.2); output in
    tables C.1.2, C.2.1–C.9 is prohibited (§2.3), RFC 3454 §6 bidi rules apply (§2.4), and
    unassigned code points (table A.1) are prohibited unless `allow_unassigned` — RFC 3454 §7:
    allowed in "queries" (what a client presents), not in "stored strings" (what we keep).

    Raises:
        SaslFailure: `malformed-request` when the output would contain a prohibited character.
    """
    if _ASCII_PRINTABLE.fullmatch(s) is not None:
        return s  # nothing maps, NFKC is the identity, no ASCII printable is prohibited or RTL
    mapped: list[str] = []
    for char in s:
        if stringprep.in_table_c12(char):
            mapped.append(" ")
        elif not stringprep.in_table_b1(char):
            mapped.append(char)
    out = _ucd.normalize("NFKC", "".join(mapped))
    for char in out:
        if (
            stringprep.in_table_c12(char)
            or stringprep.in_table_c21_c22(char)
            or stringprep.in_table_c3(char)
            or stringprep.in_table_c4(char)
            or stringprep.in_table_c5(char)
            or stringprep.in_table_c6(char)
            or stringprep.in_table_c7(char)
            or stringprep.in_table_c8(char)
            or stringprep.in_table_c9(char)
        ):
            raise SaslFailure("malformed-request", "Prohibited character in credentials")
        if not allow_unassigned and stringprep.in_table_a1(char):
            raise SaslFailure("malformed-request", "Unassigned character in credentials")
    if any(stringprep.in_table_d1(c) for c in out) and (
        any(stringprep.in_table_d2(c) for c in out)
        or not (stringprep.in_table_d1(out[0]) and stringprep.in_table_d1(out[-1]))
    ):
        raise SaslFailure("malformed-request", "Bidirectional text rules violated in credentials")
    return out


# --- SCRAM key derivation (RFC 5802 §3) -----------------------------------------------------


def _hash_name(mechanism: str) -> str:
    try:
        return HASHES[mechanism]
    except KeyError:
        raise ValueError(f"not a supported SCRAM mechanism: {mechanism!r}") from None


def _keys(hash_name: str, salted_password: bytes) -> tuple[bytes, bytes]:
    """(StoredKey, ServerKey) from SaltedPassword (RFC 5802 §3)."""
    client_key = hmac.digest(salted_password, b"Client Key", hash_name)
    stored_key = hashlib.new(hash_name, client_key).digest()
    return stored_key, hmac.digest(salted_password, b"Server Key", hash_name)


def derive_scram(
    password: str,
    mechanism: str,
    *,
    salt: bytes | None = None,
    iterations: int = DEFAULT_ITERATIONS,
) -> ScramCredentials:
    """Credentials to store for `password` under `mechanism` (RFC 5802 §3).

    SaltedPassword := Hi(Normalize(password), salt, i), where Normalize is SASLprep of a "stored
    string" (RFC 5802 §2.2), so unassigned code points are refused.

    Raises:
        ValueError: unknown mechanism or iterations < 1.
        SaslFailure: `malformed-request` when the password fails SASLprep (registration should
            turn this into its own error).
    """
    hash_name = _hash_name(mechanism)
    if iterations < 1:
        raise ValueError("iterations must be at least 1")
    if salt is None:
        salt = secrets.token_bytes(SALT_BYTES)
    salted = hashlib.pbkdf2_hmac(hash_name, saslprep(password).encode("utf-8"), salt, iterations)
    stored_key, server_key = _keys(hash_name, salted)
    return ScramCredentials(salt, iterations, stored_key, server_key)


def derive_all(password: str, iterations: int = DEFAULT_ITERATIONS) -> dict[str, ScramCredentials]:
    """One `ScramCredentials` per mechanism in `HASHES`, each with its own random salt.

    Raises:
        SaslFailure: `malformed-request` when the password fails SASLprep.
    """
    return {m: derive_scram(password, m, iterations=iterations) for m in HASHES}


# --- authorization identities ---------------------------------------------------------------


def _check_authzid(authzid: str, username: str, host: str | None) -> None:
    """An authzid may only name the authenticating user (RFC 6120 §6.3.8: we do no proxying).

    Accepted: "" (absent), exactly `username`, or — when `host` is given — the bare JID
    `username@host` in any spelling that prepares to the same JID. Without `host` a JID-shaped
    authzid cannot be checked and is refused, rather than letting "alice@elsewhere" through.
    """
    if not authzid or authzid == username:
        return
    if host is not None:
        try:
            wanted = JID(nodeprep(username), nameprep(host))
            if JID.parse(authzid) == wanted:
                return
        except JIDError:
            pass
    raise SaslFailure("invalid-authzid")


# --- SCRAM (RFC 5802, RFC 7677) -------------------------------------------------------------

_PRINTABLE = re.compile(r"[\x21-\x2b\x2d-\x7e]+")  # RFC 5802 §7 "printable": no ","
_SASLNAME = re.compile(r"(?:[^=,\x00]|=2C|=3D)+")  # RFC 5802 §7 "saslname"
_EXTENSION = re.compile(r"[A-Za-z]=[^\x00]*")  # RFC 5802 §7 "attr-val"
_B64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")

# RFC 5802 §9: "the server SHOULD … respond with a … salt … that is … consistent for the same
# username" for unknown users, so probing cannot tell them from real ones. Per process: a
# restart changes the fake salts, as a password change would change the real ones.
_FAKE_SALT_KEY = secrets.token_bytes(32)


def _saslname(value: str) -> str:
    """Decode a saslname: "=2C" is ",", "=3D" is "=", any other "=" fails (RFC 5802 §5.1)."""
    if _SASLNAME.fullmatch(value) is None:
        raise SaslFailure("malformed-request", "Invalid username encoding")
    return value.replace("=2C", ",").replace("=3D", "=")


def _b64decode(value: str) -> bytes:
    """Strict base64 as RFC 5802 §7 defines it (RFC 4648 §4, padded, nothing else)."""
    try:
        if len(value) % 4 or _B64.fullmatch(value) is None:
            raise ValueError
        return base64.b64decode(value, validate=True)
    except (ValueError, binascii.Error):
        # RFC 6120 §6.5.5 incorrect-encoding is about the base64 of the XML character data; a bad
        # field *inside* the SCRAM message "violates the syntax for the specified SASL mechanism"
        # (§6.5.8), so it is malformed-request.
        raise SaslFailure("malformed-request", "Invalid base64 in SCRAM message") from None


def _decode(message: bytes) -> str:
    try:
        return message.decode("utf-8")
    except UnicodeDecodeError:
        raise SaslFailure("malformed-request", "SCRAM message is not UTF-8") from None


class ScramServer:
    """One SCRAM exchange, server side (RFC 5802 §5). Driven as::

        username = m.first(client_first)           # then look the account up
        server_first = m.server_first(creds or None)
        server_final = m.final(client_final)       # success: send it in <success/>

    Each step raises `SaslFailure` to end the exchange; calling steps out of order, or after a
    failure, is a programming error (`RuntimeError`). `first` sets `username` (SASLprep'd) and
    `authzid` ("" when absent); they name who authenticated once `final` returned (`succeeded`).

    Channel binding: only the non-PLUS mechanisms are implemented, so the server "does not
    support channel binding" in RFC 5802 §6 terms: gs2 flags "n" and "y" are accepted and "p" is
    refused. If -PLUS is ever offered, "y" must then fail (RFC 5802 §6, downgrade detection).
    """

    username: str | None
    authzid: str | None

    def __init__(
        self,
        mechanism: str,
        *,
        nonce: str | None = None,
        host: str | None = None,
        fake_iterations: int = DEFAULT_ITERATIONS,
    ) -> None:
        """Start an exchange for the client-chosen `mechanism`.

        Args:
            mechanism: a key of `HASHES`.
            nonce: the server's nonce part, for tests; random otherwise.
            host: the stream's domain, so an authzid "user@host" can be accepted.
            fake_iterations: iteration count shown to unknown users; use the count new
                credentials get, or the difference gives them away.

        Raises:
            SaslFailure: `invalid-mechanism` for a mechanism we do not implement.
        """
        if mechanism not in HASHES:
            raise SaslFailure("invalid-mechanism")
        if nonce is None:
            nonce = secrets.token_urlsafe(24)  # base64url alphabet: printable, no ","
        elif _PRINTABLE.fullmatch(nonce) is None:
            raise ValueError("server nonce must be printable ASCII without ','")
        self.mechanism = mechanism
        self._hash = HASHES[mechanism]
        self._server_nonce = nonce
        self._host = host
        self._fake_iterations = fake_iterations
        self._step = 0
        self.username = None
        self.authzid = None
        self._gs2_header = b""
        self._client_first_bare = b""
        self._nonce = ""
        self._server_first = b""
        self._creds: ScramCredentials | None = None

    @property
    def succeeded(self) -> bool:
        """Whether `final` accepted the client's proof."""
        return self._step == 3

    def _begin(self, step: int) -> None:
        """Enter `step`; the exchange stays dead unless the step completes (see `_done`)."""
        if self._step != step:
            raise RuntimeError("SCRAM steps called out of order, or after a failure")
        self._step = -1

    def _done(self, step: int) -> None:
        self._step = step + 1

    def first(self, client_first: bytes) -> str:
        """Parse client-first-message (RFC 5802 §5.1, §7); return the SASLprep'd username.

        Raises:
            SaslFailure: `malformed-request` for bad syntax, bad escapes, a channel-binding
                request ("p=", see below) or a mandatory extension ("m="); `invalid-authzid`
                when the authzid names someone else.
        """
        self._begin(0)
        text = _decode(client_first)
        fields = text.split(",", 2)
        if len(fields) != 3:
            raise SaslFailure("malformed-request", "Missing GS2 header")
        flag, authzid_field, bare = fields
        if flag.startswith("p="):
            # RFC 5802 §6: "p" means the client requires channel binding, which is only
            # negotiated by the -PLUS mechanisms (RFC 5801 §5); with SCRAM-SHA-* it contradicts
            # the mechanism the client chose. That is a protocol error, not bad credentials, so
            # not-authorized would tell the user their password is wrong (Prosody agrees).
            raise SaslFailure("malformed-request", "Channel binding is not supported here")
        if flag not in ("n", "y"):
            raise SaslFailure("malformed-request", "Invalid GS2 channel binding flag")
        if authzid_field:
            if not authzid_field.startswith("a="):
                raise SaslFailure("malformed-request", "Invalid GS2 authzid")
            authzid = _saslname(authzid_field[2:])
        else:
            authzid = ""

        attributes = bare.split(",")
        if attributes[0].startswith("m="):
            # RFC 5802 §5.1: "m" is reserved for mandatory extensions; a server that does not
            # understand it "MUST fail the authentication".
            raise SaslFailure("malformed-request", "Mandatory extensions are not supported")
        if len(attributes) < 2 or not attributes[0].startswith("n="):
            raise SaslFailure("malformed-request", "Missing username")
        if not attributes[1].startswith("r=") or _PRINTABLE.fullmatch(attributes[1][2:]) is None:
            raise SaslFailure("malformed-request", "Missing or invalid client nonce")
        if any(_EXTENSION.fullmatch(a) is None for a in attributes[2:]):
            raise SaslFailure("malformed-request", "Invalid attribute")  # unknown ones: ignored

        # RFC 5802 §5.1: the username is SASLprep'd "as a query string" (unassigned allowed).
        username = saslprep(_saslname(attributes[0][2:]), allow_unassigned=True)
        if not username:
            raise SaslFailure("malformed-request", "Empty username")
        if authzid:
            authzid = saslprep(authzid, allow_unassigned=True)
        _check_authzid(authzid, username, self._host)

        self.username = username
        self.authzid = authzid
        self._gs2_header = f"{flag},{authzid_field},".encode()
        self._client_first_bare = bare.encode()
        self._nonce = attributes[1][2:] + self._server_nonce
        self._done(0)
        return username

    def server_first(self, creds: ScramCredentials | None) -> bytes:
        """Build server-first-message (RFC 5802 §5.1) for `creds`, or `None` for no such user.

        An unknown user gets a salt that is stable per (mechanism, username) and an exchange
        that fails only in `final`, the same shape as a wrong password (RFC 5802 §9).

        Raises:
            ValueError: `creds` does not belong to this mechanism's hash.
        """
        self._begin(1)
        if creds is None:
            assert self.username is not None
            ident = f"{self.mechanism}\x00{self.username}".encode()
            salt = hmac.digest(_FAKE_SALT_KEY, ident, "sha256")[:SALT_BYTES]
            iterations = self._fake_iterations
        else:
            if len(creds.stored_key) != hashlib.new(self._hash).digest_size:
                raise ValueError(f"credentials do not match {self.mechanism}")
            salt, iterations = creds.salt, creds.iterations
        self._creds = creds
        self._server_first = (
            f"r={self._nonce},s={base64.b64encode(salt).decode()},i={iterations}".encode()
        )
        self._done(1)
        return self._server_first

    def final(self, client_final: bytes) -> bytes:
        """Check client-final-message (RFC 5802 §5.1, §7) and return `v=<ServerSignature>`.

        Raises:
            SaslFailure: `malformed-request` for bad syntax or base64; `not-authorized` for a
                wrong proof, an unknown user, a nonce or channel-binding mismatch.
        """
        self._begin(2)
        text = _decode(client_final)
        attributes = text.split(",")
        if (
            len(attributes) < 3
            or not attributes[0].startswith("c=")
            or not attributes[1].startswith("r=")
            or not attributes[-1].startswith("p=")
            or any(_EXTENSION.fullmatch(a) is None for a in attributes[2:-1])
        ):
            raise SaslFailure("malformed-request", "Invalid SCRAM client-final-message")
        channel_binding = _b64decode(attributes[0][2:])
        proof = _b64decode(attributes[-1][2:])
        digest_size = hashlib.new(self._hash).digest_size
        if len(proof) != digest_size:
            raise SaslFailure("malformed-request", "Invalid client proof length")

        without_proof = ",".join(attributes[:-1]).encode()  # the received bytes, re-encoded
        auth_message = b",".join((self._client_first_bare, self._server_first, without_proof))
        creds = self._creds
        # Unknown users run the same computation against a key nobody can match.
        stored_key = secrets.token_bytes(digest_size) if creds is None else creds.stored_key
        client_signature = hmac.digest(stored_key, auth_message, self._hash)
        client_key = (int.from_bytes(proof) ^ int.from_bytes(client_signature)).to_bytes(
            digest_size
        )
        proof_ok = hmac.compare_digest(hashlib.new(self._hash, client_key).digest(), stored_key)
        # RFC 5802 §5.1: c= must carry our gs2 header (no cbind-data for "n"/"y"); r= the nonce.
        binding_ok = hmac.compare_digest(channel_binding, self._gs2_header)
        nonce_ok = hmac.compare_digest(attributes[1][2:].encode(), self._nonce.encode())
        if creds is None or not (proof_ok and binding_ok and nonce_ok):
            raise SaslFailure("not-authorized")
        signature = hmac.digest(creds.server_key, auth_message, self._hash)
        self._done(2)
        return b"v=" + base64.b64encode(signature)


# --- PLAIN (RFC 4616) -----------------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def _dummy_credentials(iterations: int) -> ScramCredentials:
    """A SCRAM-SHA-256 credential nobody knows the password of (PLAIN's unknown users)."""
    return derive_scram(secrets.token_urlsafe(24), "SCRAM-SHA-256", iterations=iterations)



class PlainServer:
    """PLAIN (RFC 4616): `[authzid] NUL authcid NUL passwd`, checked against SCRAM credentials.

    Offer it only on encrypted streams (RFC 4616 §6; RFC 6120 §13.8).
    """

    @staticmethod
    def parse(data: bytes, *, host: str | None = None) -> tuple[str, str, str]:
        """Split a PLAIN message into (authzid, authcid, password), the last two SASLprep'd.

        authzid is "" when absent. A present authzid must be the authcid itself, or (when
        `host` is given) the bare JID authcid@host; anything else is proxy authorization, which
        we do not do. SASLprep treats presented strings as queries (RFC 3454 §7).

        Raises:
            SaslFailure: `malformed-request` for a wrong number of NULs, invalid UTF-8, an
                empty authcid or password, or prohibited characters; `invalid-authzid`.
        """
        parts = data.split(b"\x00")
        if len(parts) != 3:
            raise SaslFailure("malformed-request", "PLAIN message needs exactly two NULs")
        try:
            authzid, authcid, password = (p.decode("utf-8") for p in parts)
        except UnicodeDecodeError:
            raise SaslFailure("malformed-request", "PLAIN message is not UTF-8") from None
        if not authcid or not password:  # RFC 4616 §2: authcid = 1*SAFE, passwd = 1*SAFE
            raise SaslFailure("malformed-request", "Empty username or password")
        authcid = saslprep(authcid, allow_unassigned=True)
        password = saslprep(password, allow_unassigned=True)
        if not authcid or not password:
            raise SaslFailure("malformed-request", "Empty username or password")
        if authzid:
            authzid = saslprep(authzid, allow_unassigned=True)
        _check_authzid(authzid, authcid, host)
        return authzid, authcid, password

    @staticmethod
    def check(password: str, creds: Mapping[str, ScramCredentials] | None, *,
              iterations: int = DEFAULT_ITERATIONS) -> bool:
        """Whether `password` matches an account's credentials (`creds` by mechanism; None for
        no such account), checked against the strongest stored mechanism.

        An unknown account costs the same work as a known one: the password is checked against
        a dummy SCRAM-SHA-256 credential with `iterations` (the count new credentials get), so
        the answer's timing does not tell whether the account exists (RFC 5802 §9 asks the
        same of SCRAM).
        """
        for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-1"):
            if creds and mechanism in creds:
                return PlainServer.verify(password, creds[mechanism], mechanism)
        PlainServer.verify(password, _dummy_credentials(iterations), "SCRAM-SHA-256")
        return False

    @staticmethod
    def verify(password: str, creds: ScramCredentials, mechanism: str) -> bool:
        """Whether `password` matches `creds` (stored for `mechanism`), compared in constant time.

        Costs one PBKDF2 at `creds.iterations`, like a SCRAM client's login.

        Raises:
            ValueError: unknown mechanism.
        """
        hash_name = _hash_name(mechanism)
        try:
            prepared = saslprep(password, allow_unassigned=True)
        except SaslFailure:
            return False
        salted = hashlib.pbkdf2_hmac(
            hash_name, prepared.encode("utf-8"), creds.salt, creds.iterations
        )
        stored_key, server_key = _keys(hash_name, salted)
        # Both comparisons always run: no early exit that would time which key differed.
        return hmac.compare_digest(stored_key, creds.stored_key) & hmac.compare_digest(
            server_key, creds.server_key
        )
