# tests: tests/bot/test_jid.py, tests/bot/test_settings.py
"""XMPP addresses for bots: split, prepare, compare (RFC 7622 §3.1; preparation per RFC 6122).

- A bot compares what its author typed ("Lounge@Conference.Example.org") with what the server
  sends ("lounge@conference.example.org/alice"), so both go through the same preparation the
  servers use (ejabberd, Prosody, xmppd): Nodeprep (RFC 6122 App. A), Nameprep with the §2.2
  domainpart rules, Resourceprep (App. B), on Unicode 3.2 with the stdlib `stringprep` tables.
- Unassigned code points are allowed (RFC 3454 §7 "queries"): group-chat nicknames are
  resourceparts and carry emoji newer than Unicode 3.2.
- Each part is 1..1023 bytes of UTF-8 (RFC 6122 §2.1); A-labels become U-labels (RFC 7622
  §3.2); IP literals are kept in canonical form.
Not here: JID escaping (XEP-0106), PRECIS. The server has its own copy of these rules
(stanzas/jid.py, tuned for its hot path); tests/bot/test_jid.py keeps the two in agreement.
"""
from __future__ import annotations

import encodings.idna
import functools
import ipaddress
import re
import stringprep
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["JID", "JIDError"]

MAX_PART_BYTES = 1023
_ucd = unicodedata.ucd_3_2_0        # stringprep is defined on Unicode 3.2 (RFC 3454 §1.2)
_LABEL_SEPARATORS = re.compile("[.\u3002\uff0e\uff61]")     # RFC 3490 §3.1
_LDH = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")


class JIDError(ValueError):
    """Not a valid JID or JID part; the message says which part and why."""


def _in_any(*tables: Callable[[str], bool]) -> Callable[[str], bool]:
    return lambda c: any(t(c) for t in tables)


# RFC 3454 App. C tables every profile prohibits: non-ASCII spaces and controls, private use,
# non-characters, surrogates, inappropriate for plain text or canonical representation,
# change display properties, tagging characters.
_prohibited_everywhere = _in_any(
    stringprep.in_table_c12, stringprep.in_table_c21, stringprep.in_table_c22,
    stringprep.in_table_c3, stringprep.in_table_c4, stringprep.in_table_c5,
    stringprep.in_table_c6, stringprep.in_table_c7, stringprep.in_table_c8,
    stringprep.in_table_c9)
# Nodeprep (RFC 6122 A.5) adds the ASCII space (C.1.1) and these eight.
_NODE_ASCII = frozenset(" \"&'/:<>@")


def _describe(char: str) -> str:
    code = f"U+{ord(char):04X}"
    return f"{code} {char!r}" if char.isprintable() else code


def _check_length(s: str, part: str) -> None:
    if not s:
        raise JIDError(f"{part} is empty")
    if len(s.encode("utf-8")) > MAX_PART_BYTES:
        raise JIDError(f"{part} is longer than {MAX_PART_BYTES} bytes")


def _profile(s: str, part: str, *, fold: bool) -> str:
    """Nodeprep (`fold`) or Resourceprep: map (B.1, and B.2 when folding), NFKC, prohibit,
    check bidi (RFC 3454 §3-§6)."""
    if len(s) > 4 * MAX_PART_BYTES:     # only B.1 shrinks a string by more than that
        raise JIDError(f"{part} is longer than {MAX_PART_BYTES} bytes")
    mapped = "".join(stringprep.map_table_b2(c) if fold else c
                     for c in s if not stringprep.in_table_b1(c))
    out = _ucd.normalize("NFKC", mapped)
    for c in out:
        if _prohibited_everywhere(c) or (fold and c in _NODE_ASCII):
            raise JIDError(f"{part} contains prohibited character {_describe(c)}")
    if any(stringprep.in_table_d1(c) for c in out):
        if any(stringprep.in_table_d2(c) for c in out):
            raise JIDError(f"{part} mixes right-to-left and left-to-right characters "
                           "(RFC 3454 §6)")
        if not (stringprep.in_table_d1(out[0]) and stringprep.in_table_d1(out[-1])):
            raise JIDError(f"{part} must start and end with a right-to-left character "
                           "(RFC 3454 §6)")
    _check_length(out, part)
    return out


def _label(label: str) -> str:
    """One domain label: Nameprep, A-label to U-label, then ToASCII with UseSTD3ASCIIRules
    (RFC 3490 §4.1): letters, digits and inner hyphens, 1..63 octets."""
    if not label:
        raise JIDError("domainpart contains an empty label")
    if len(label) > 4 * MAX_PART_BYTES:
        raise JIDError("domainpart label is longer than 63 octets")
    try:
        out = encodings.idna.nameprep(label)
        if out.startswith("xn--") and out.isascii():
            out = encodings.idna.ToUnicode(out)
    except UnicodeError as e:
        raise JIDError(f"domainpart label fails Nameprep or IDNA: {e}") from None
    if not out:
        raise JIDError("domainpart contains an empty label")
    bad = next((c for c in out if c.isascii() and c not in _LDH), None)
    if bad is not None:
        raise JIDError(f"domainpart contains prohibited character {_describe(bad)}")
    if out.startswith("-") or out.endswith("-"):
        raise JIDError("domainpart label must not start or end with a hyphen")
    try:
        encodings.idna.ToASCII(out)     # the ACE form's length, and no ACE prefix on a U-label
    except UnicodeError as e:
        raise JIDError(f"domainpart label fails IDNA: {e}") from None
    return out


def _domain(s: str) -> str:
    """RFC 6122 §2.2: an IP literal or a host name of Nameprep'd labels."""
    if len(s) > 4 * MAX_PART_BYTES:
        raise JIDError(f"domainpart is longer than {MAX_PART_BYTES} bytes")
    if _LABEL_SEPARATORS.fullmatch(s[-1:]):
        s = s[:-1]                      # one final label separator is stripped
    if s.startswith("["):               # IPv6, bracketed as in URIs (RFC 3986 §3.2.2)
        try:
            address = ipaddress.IPv6Address(s[1:-1] if s.endswith("]") else "")
        except ValueError:
            raise JIDError("domainpart is not a valid IPv6 literal") from None
        if address.scope_id is not None:
            raise JIDError("domainpart IPv6 literal must not carry a zone identifier")
        return f"[{address.compressed}]"
    if not s:
        raise JIDError("domainpart is empty")
    labels = [_label(x) for x in _LABEL_SEPARATORS.split(s)]
    if labels[-1].isascii() and labels[-1].isdigit():
        # RFC 1123 §2.1: a host name never has the dotted-decimal form; this must be an IP.
        try:
            return str(ipaddress.IPv4Address(".".join(labels)))
        except ValueError:
            raise JIDError("domainpart is numeric but not a valid IPv4 address") from None
    domain = ".".join(labels)
    _check_length(domain, "domainpart")
    return domain


@dataclass(frozen=True, slots=True)
class JID:
    """A prepared JID: immutable, hashable, compared part by part. Build one from text with
    `JID.parse` or from parts with `JID.of`; the constructor trusts prepared parts."""

    local: str | None
    domain: str
    resource: str | None = None

    @staticmethod
    @functools.lru_cache(maxsize=4096)
    def parse(text: str) -> JID:
        """`local@domain/resource`: the resource is all after the first "/", the localpart is
        what precedes the first "@" of the rest (RFC 7622 §3.1).

        Raises:
            JIDError: a part is empty, too long or fails its profile.
        """
        rest, slash, resource = text.partition("/")
        local, at, domain = rest.partition("@")
        if not at:
            domain = rest
        return JID.of(local if at else None, domain, resource if slash else None)

    @staticmethod
    def of(local: str | None, domain: str, resource: str | None = None) -> JID:
        """A JID from unprepared parts; None means the part is absent.

        Raises:
            JIDError: a present part is empty, too long or fails its profile.
        """
        return JID(None if local is None else _profile(local, "localpart", fold=True),
                   _domain(domain),
                   None if resource is None else _profile(resource, "resourcepart", fold=False))

    @property
    def bare(self) -> JID:
        """Without the resource (RFC 6120 §1.4 "bare JID")."""
        return self if self.resource is None else JID(self.local, self.domain)

    @property
    def is_bare(self) -> bool:
        return self.resource is None

    def with_resource(self, resource: str) -> JID:
        """This bare part with `resource` (Resourceprep'd).

        Raises:
            JIDError: the resource is empty, too long or fails Resourceprep.
        """
        return JID(self.local, self.domain, _profile(resource, "resourcepart", fold=False))

    def __str__(self) -> str:
        text = self.domain if self.local is None else f"{self.local}@{self.domain}"
        return text if self.resource is None else f"{text}/{self.resource}"

    def __repr__(self) -> str:
        return f"JID({str(self)!r})"
