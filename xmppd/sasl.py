# tests: tests/core/test_sasl.py
"""SASL credentials and PLAIN (RFC 4422, RFC 4616), sans-IO; SCRAM is in xmppd/scram.py.

- `PlainServer` parses and checks PLAIN; `ScramServer` (xmppd/scram.py) runs SCRAM. Both take
  and return the raw SASL payload: base64 of the XML character data is the caller's (RFC 6120
  §6.4.2).
- Failures are `SaslFailure(condition)` with an RFC 6120 §6.5 condition; the caller sends
  `<failure/>`. Unknown users and wrong passwords fail identically (`not-authorized`), and an
  unknown user still gets a plausible server-first-message (RFC 5802 §9, "… SHOULD … fake salt").
- Passwords are stored only as `ScramCredentials` (RFC 5802 §3); `derive_all` makes one per
  mechanism, each with its own salt. PLAIN is verified against the same credentials: one
  PBKDF2 per check, except that a password that matched is remembered in memory as a keyed
  hash (a per-process key) for those exact credentials, so the next PLAIN login of that
  account costs an HMAC, not a PBKDF2 (what a SCRAM client does with its SaltedPassword,
  RFC 5802 §5). A wrong password always pays the full PBKDF2.
- Usernames come back SASLprep'd (RFC 4013); mapping them to an account (Nodeprep, RFC 6120
  §6.3.8: the simple user name is the localpart) is the caller's.

Not here: SCRAM itself (xmppd/scram.py, with -PLUS), mechanism offering and stream plumbing
(xmppd/sasl1.py, xmppd/sasl2.py), account lookup (storage/accounts.py). Nothing here logs;
never log payloads or passwords.
"""
from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from collections.abc import Mapping

from stanzas.jid import JID, JIDError, nameprep, nodeprep
from storage.credentials import ScramCredentials
from xmppd.sasl_errors import CONDITIONS, SaslFailure
from xmppd.saslprep import saslprep

__all__ = [
    "CONDITIONS",
    "DEFAULT_ITERATIONS",
    "HASHES",
    "PlainServer",
    "SaslFailure",
    "ScramCredentials",
    "derive_all",
    "derive_scram",
    "saslprep",
]


HASHES = {"SCRAM-SHA-1": "sha1", "SCRAM-SHA-256": "sha256"}
"""SASL mechanism name -> hashlib name, strongest last."""

DEFAULT_ITERATIONS = 4096
"""RFC 7677 §4: the iteration count "SHOULD be at least 4096"."""

SALT_BYTES = 16

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


def check_authzid(authzid: str, username: str, host: str | None) -> None:
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


# --- PLAIN (RFC 4616) -----------------------------------------------------------------------


# PLAIN: passwords that matched, as HMAC(_PLAIN_KEY, password) per (mechanism, credentials):
# a changed password has new credentials (salt, keys), so its old entry can never match.
_PLAIN_KEY = secrets.token_bytes(32)
_PLAIN_VERIFIED: dict[tuple[str, ScramCredentials], bytes] = {}
PLAIN_MEMORY = 100_000
"""Accounts whose last PLAIN password is remembered; past it the oldest go."""


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
        check_authzid(authzid, authcid, host)
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
            prepared = saslprep(password, allow_unassigned=True).encode("utf-8")
        except SaslFailure:
            return False
        key = (mechanism, creds)
        tag = hmac.digest(_PLAIN_KEY, prepared, "sha256")
        known = _PLAIN_VERIFIED.get(key)
        if known is not None and hmac.compare_digest(known, tag):
            return True
        salted = hashlib.pbkdf2_hmac(hash_name, prepared, creds.salt, creds.iterations)
        stored_key, server_key = _keys(hash_name, salted)
        # Both comparisons always run: no early exit that would time which key differed.
        ok = hmac.compare_digest(stored_key, creds.stored_key) & hmac.compare_digest(
            server_key, creds.server_key
        )
        if ok:
            _PLAIN_VERIFIED.pop(key, None)
            _PLAIN_VERIFIED[key] = tag
            if len(_PLAIN_VERIFIED) > PLAIN_MEMORY:
                del _PLAIN_VERIFIED[next(iter(_PLAIN_VERIFIED))]
        return ok
