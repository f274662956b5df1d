# tests: tests/core/test_jid.py
"""XMPP addresses (JIDs) — parsing, preparation and comparison (RFC 6122, RFC 7622 §3).

- `JID.parse("Local@Domain/Resource")` splits per RFC 7622 §3.1 (resource after the first "/",
  localpart before the first "@" of what is left) and prepares each part with the stringprep
  profiles ejabberd and Prosody use: Nodeprep (RFC 6122 App. A), Nameprep (RFC 3491, with the
  RFC 6122 §2.2 domainpart rules) and Resourceprep (RFC 6122 App. B). Results are cached in a
  bounded LRU.
- Each part is 1..1023 bytes of UTF-8 after preparation (RFC 6122 §2.1); an empty part after a
  separator ("@example.org", "example.org/") is an error.
- Domainparts: one trailing dot is stripped, labels are checked with IDNA2003 ToASCII and
  UseSTD3ASCIIRules (letters, digits, hyphens; 1..63 octets), A-labels ("xn--…") are turned into
  U-labels (RFC 7622 §3.2), IP literals ("127.0.0.1", "[::1]") are accepted in canonical form.
- Unassigned code points (RFC 3454 table A.1) are allowed, i.e. JIDs are prepared as "queries"
  (RFC 3454 §7), as Prosody does by default: MUC nicknames are resourceparts and routinely carry
  emoji that did not exist in Unicode 3.2. Pass `allow_unassigned=False` to the prep functions
  where a string is about to be *stored* (account registration).

Not here: PRECIS (RFC 7622 §3.2–3.4 proper) — we keep stringprep semantics for compatibility with
deployed servers and clients; SASLprep lives in `xmppd.sasl`.
"""
from __future__ import annotations

import encodings.idna
import functools
import ipaddress
import re
import stringprep
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["JID", "JIDError", "nameprep", "nodeprep", "resourceprep"]

MAX_PART_BYTES = 1023
"""RFC 6122 §2.1: each of localpart, domainpart and resourcepart is 1..1023 bytes."""

# Input bound before the per-character work: only "map to nothing" characters (table B.1) can
# shrink a string by more than a factor of 4, so nothing sane is refused, and a hostile 1 MB
# 'to' attribute costs a length check, not a million table lookups.
_MAX_INPUT_CHARS = 4 * MAX_PART_BYTES

_ucd = unicodedata.ucd_3_2_0  # stringprep is defined on Unicode 3.2 (RFC 3454 §1.2)

# ASCII characters each profile prohibits. Outside ASCII the three profiles prohibit the same
# tables (C.1.2, C.2.2, C.3–C.9); inside ASCII they differ:
# Nodeprep (RFC 6122 App. A.5): C.1.1 (space), C.2.1 (controls) and  " & ' / : < > @
_NODE_ASCII_BAD = re.compile(r"[\x00-\x20\"&'/:<>@\x7f]")
# Resourceprep (RFC 6122 App. B.5): C.2.1 only; spaces are allowed in resourceparts.
_RESOURCE_ASCII_BAD = re.compile(r"[\x00-\x1f\x7f]")
# Nameprep prohibits no ASCII; STD3ASCIIRules (RFC 3490 §4.1 step 3) then allows only LDH.
_LDH_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_ASCII_HOSTNAME = re.compile(rf"{_LDH_LABEL}(?:\.{_LDH_LABEL})*")
_NON_LDH_ASCII = re.compile(r"[\x00-\x2c./:-@\[-`{-\x7f]")
# RFC 3490 §3.1: these four characters all separate labels.
_DOTS = re.compile("[.\u3002\uff0e\uff61]")


class JIDError(ValueError):
    """A string is not a valid JID or JID part; the message says which part and why."""


def _describe(char: str) -> str:
    code = f"U+{ord(char):04X}"
    return f"{code} {char!r}" if char.isprintable() else code


def _prohibited_non_ascii(char: str) -> bool:
    """Tables C.1.2, C.2.2 and C.3–C.9 (RFC 3454 App. C), prohibited by all three profiles."""
    return (
        stringprep.in_table_c12(char)
        or stringprep.in_table_c22(char)
        or stringprep.in_table_c3(char)
        or stringprep.in_table_c4(char)
        or stringprep.in_table_c5(char)
        or stringprep.in_table_c6(char)
        or stringprep.in_table_c7(char)
        or stringprep.in_table_c8(char)
        or stringprep.in_table_c9(char)
    )


def _check_bidi(s: str, part: str) -> None:
    """RFC 3454 §6: RandALCat strings contain no LCat and begin and end with RandALCat.

    Requirement 1 (table C.8 prohibited) is enforced with the other prohibited tables.
    """
    if not any(stringprep.in_table_d1(c) for c in s if c >= "\x80"):
        return
    if any(stringprep.in_table_d2(c) for c in s):
        raise JIDError(f"{part} mixes right-to-left and left-to-right characters (RFC 3454 §6)")
    if not (stringprep.in_table_d1(s[0]) and stringprep.in_table_d1(s[-1])):
        raise JIDError(
            f"{part} must start and end with a right-to-left character (RFC 3454 §6)"
        )


def _stringprep(
    s: str, part: str, *, fold: bool, ascii_bad: re.Pattern[str], allow_unassigned: bool
) -> str:
    """The slow path of Nodeprep/Resourceprep (RFC 3454 §3–§7) for non-ASCII input.

    Mapping: table B.1 to nothing, then B.2 (case folding for NFKC) when `fold`; NFKC on
    Unicode 3.2; prohibited output; bidi; unassigned code points unless `allow_unassigned`.
    """
    if len(s) > _MAX_INPUT_CHARS:
        raise JIDError(f"{part} is longer than {MAX_PART_BYTES} bytes")
    mapped: list[str] = []
    for char in s:
        if char < "\x80":
            mapped.append(char.lower() if fold else char)  # B.2 on ASCII is lower(); B.1 has none
        elif not stringprep.in_table_b1(char):
            mapped.append(stringprep.map_table_b2(char) if fold else char)
    out = _ucd.normalize("NFKC", "".join(mapped))
    # NFKC may have produced ASCII from non-ASCII (FULLWIDTH COMMERCIAL AT -> "@"): check after.
    bad = ascii_bad.search(out)
    if bad is not None:
        raise JIDError(f"{part} contains prohibited character {_describe(bad.group())}")
    for char in out:
        if char >= "\x80":
            if _prohibited_non_ascii(char):
                raise JIDError(f"{part} contains prohibited character {_describe(char)}")
            if not allow_unassigned and stringprep.in_table_a1(char):
                raise JIDError(f"{part} contains unassigned code point {_describe(char)}")
    _check_bidi(out, part)
    return out


def _check_length(s: str, part: str) -> None:
    if not s:
        raise JIDError(f"{part} is empty")
    # A code point is at most 4 bytes of UTF-8: short strings need no encoding to be measured.
    if len(s) > MAX_PART_BYTES // 4 and len(s.encode("utf-8")) > MAX_PART_BYTES:
        raise JIDError(f"{part} is longer than {MAX_PART_BYTES} bytes")


def nodeprep(s: str, *, allow_unassigned: bool = True) -> str:
    """Prepare a localpart with the Nodeprep profile (RFC 6122 Appendix A).

    Raises:
        JIDError: empty, longer than 1023 bytes, prohibited characters (including
            `"&'/:<>@` and spaces), bidi violation, or (when not allowed) unassigned code points.
    """
    if s.isascii():
        # Fast path: for ASCII, B.1 maps nothing, B.2 is lower(), NFKC is the identity, and no
        # ASCII character is RandALCat, so only the ASCII prohibitions remain to be checked.
        out = s.lower()
        bad = _NODE_ASCII_BAD.search(out)
        if bad is not None:
            raise JIDError(f"localpart contains prohibited character {_describe(bad.group())}")
    else:
        out = _stringprep(
            s, "localpart", fold=True, ascii_bad=_NODE_ASCII_BAD, allow_unassigned=allow_unassigned
        )
    _check_length(out, "localpart")
    return out


def resourceprep(s: str, *, allow_unassigned: bool = True) -> str:
    """Prepare a resourcepart with the Resourceprep profile (RFC 6122 Appendix B).

    Resourceparts keep their case (no table B.2) and may contain spaces, "@" and "/".

    Raises:
        JIDError: empty, longer than 1023 bytes, prohibited characters (controls, non-ASCII
            spaces, private use, …), bidi violation, or (when not allowed) unassigned code points.
    """
    if s.isascii():
        out = s
        bad = _RESOURCE_ASCII_BAD.search(out)
        if bad is not None:
            raise JIDError(
                f"resourcepart contains prohibited character {_describe(bad.group())}"
            )
    else:
        out = _stringprep(
            s,
            "resourcepart",
            fold=False,
            ascii_bad=_RESOURCE_ASCII_BAD,
            allow_unassigned=allow_unassigned,
        )
    _check_length(out, "resourcepart")
    return out


def nameprep(s: str) -> str:
    """Prepare a domainpart (RFC 6122 §2.2): IP literal or IDNA2003 name, Nameprep'd.

    One trailing label separator is stripped; ASCII is lowercased; each label goes through
    Nameprep (RFC 3491) and must pass ToASCII with UseSTD3ASCIIRules (RFC 3490 §4.1): letters,
    digits and inner hyphens only, 1..63 octets once ACE-encoded. A-labels are converted to
    U-labels (RFC 7622 §3.2: "each A-label MUST be converted to a U-label"), so
    "xn--bcher-kva.example" and "bücher.example" are the same domain. A numeric top-level label
    must be part of a valid IPv4 address (RFC 1123 §2.1). IPv6 literals are bracketed and
    returned in RFC 5952 compressed form.

    Raises:
        JIDError: naming the offending label or character.
    """
    if s.isascii():
        d = s.lower()
        if d.endswith("."):
            d = d[:-1]
        # Fast path: plain LDH hostname, not an A-label, not numeric (IPv4 needs canonicalising).
        if (
            _ASCII_HOSTNAME.fullmatch(d) is not None
            and "xn--" not in d
            and not d[d.rfind(".") + 1 :].isdigit()
        ):
            _check_length(d, "domainpart")
            return d
    return _nameprep_slow(s)


def _nameprep_slow(s: str) -> str:
    if len(s) > _MAX_INPUT_CHARS:
        raise JIDError(f"domainpart is longer than {MAX_PART_BYTES} bytes")
    if s and _DOTS.fullmatch(s[-1]):
        s = s[:-1]  # RFC 6122 §2.2: strip one final label separator
    if not s:
        raise JIDError("domainpart is empty")
    if s.startswith("["):
        return _ipv6_literal(s)
    labels = [_prepare_label(label) for label in _DOTS.split(s)]
    last = labels[-1]
    if last.isascii() and last.isdigit():
        # RFC 1123 §2.1: a host name never has the dotted-decimal form; this must be an IP.
        try:
            domain = str(ipaddress.IPv4Address(".".join(labels)))
        except ValueError:
            raise JIDError("domainpart is numeric but not a valid IPv4 address") from None
    else:
        domain = ".".join(labels)
    _check_length(domain, "domainpart")
    return domain


def _ipv6_literal(s: str) -> str:
    """RFC 6122 §2.2: an IPv6 address in a domainpart is enclosed in brackets (RFC 3986 §3.2.2)."""
    if not s.endswith("]"):
        raise JIDError("domainpart IPv6 literal is missing its closing ']'")
    try:
        address = ipaddress.IPv6Address(s[1:-1])
    except ValueError:
        raise JIDError("domainpart is not a valid IPv6 literal") from None
    if address.scope_id is not None:
        raise JIDError("domainpart IPv6 literal must not carry a zone identifier")
    return f"[{address.compressed}]"


def _prepare_label(label: str) -> str:
    """Nameprep one label and check it as ToASCII with UseSTD3ASCIIRules would (RFC 3490 §4.1)."""
    if not label:
        raise JIDError("domainpart contains an empty label")
    if label.isascii():
        out = label.lower()
    else:
        if len(label) > _MAX_INPUT_CHARS:
            raise JIDError("domainpart label is longer than 63 octets")
        try:
            out = encodings.idna.nameprep(label)
        except UnicodeError as exc:
            raise JIDError(f"domainpart label fails Nameprep: {exc}") from None
    if out.startswith("xn--") and out.isascii():
        try:
            out = encodings.idna.ToUnicode(out)
        except UnicodeError:
            raise JIDError("domainpart contains an invalid A-label") from None
    if not out:
        raise JIDError("domainpart contains an empty label")
    bad = _NON_LDH_ASCII.search(out)
    if bad is not None:
        raise JIDError(f"domainpart contains prohibited character {_describe(bad.group())}")
    if out.startswith("-") or out.endswith("-"):
        raise JIDError("domainpart label must not start or end with a hyphen")
    if out.isascii():
        ace_length = len(out)
    else:
        if out.startswith("xn--"):  # RFC 3490 §4.1 step 5
            raise JIDError("domainpart label starts with the ACE prefix")
        ace_length = 4 + len(out.encode("punycode"))
    if ace_length > 63:
        raise JIDError("domainpart label is longer than 63 octets")
    return out


@dataclass(frozen=True, slots=True, init=False)
class JID:
    """A prepared JID: immutable, hashable, compared part by part.

    The constructor trusts its arguments (they must already be prepared); build JIDs from
    untrusted text with `JID.parse` or from parts with `JID.of`.
    """

    local: str | None
    domain: str
    resource: str | None = None
    _str: str = field(init=False, repr=False, compare=False)
    _bare: JID | None = field(default=None, init=False, repr=False, compare=False)

    def __init__(self, local: str | None, domain: str, resource: str | None = None) -> None:
        # Hand-written because JIDs are built on the hot path: the generated frozen __init__
        # calls object.__setattr__ per field, writing the slots directly is about twice as fast.
        _set_local(self, local)
        _set_domain(self, domain)
        _set_resource(self, resource)
        text = domain if local is None else f"{local}@{domain}"
        _set_str(self, text if resource is None else f"{text}/{resource}")
        _set_bare(self, None)

    @staticmethod
    @functools.lru_cache(maxsize=65536)
    def parse(text: str) -> JID:
        """Parse and prepare `local@domain/resource` (RFC 7622 §3.1; preparation per RFC 6122).

        The resourcepart is everything after the first "/" (it may contain "@" and "/"); the
        localpart is what precedes the first "@" of the rest. Successful results are cached
        (bounded LRU); errors are not.

        Raises:
            JIDError: a part is empty, too long, or fails its profile.
        """
        rest, slash, resource = text.partition("/")
        local, at, domain = rest.partition("@")
        if not at:
            local, domain = "", rest
        return JID(
            _nodeprep_cached(local) if at else None,
            _nameprep_cached(domain),
            resourceprep(resource) if slash else None,
        )

    @staticmethod
    def of(local: str | None, domain: str, resource: str | None = None) -> JID:
        """Build a JID from unprepared parts; `None` means the part is absent.

        Raises:
            JIDError: a present part is empty, too long, or fails its profile.
        """
        return JID(
            None if local is None else _nodeprep_cached(local),
            _nameprep_cached(domain),
            None if resource is None else resourceprep(resource),
        )

    @property
    def bare(self) -> JID:
        """This JID without its resourcepart (RFC 6120 §1.4 "bare JID"); `self` if already bare."""
        if self.resource is None:
            return self
        bare = self._bare
        if bare is None:
            bare = JID(self.local, self.domain, None)
            _set_bare(self, bare)
        return bare

    @property
    def is_bare(self) -> bool:
        return self.resource is None

    def with_resource(self, resource: str) -> JID:
        """The full JID with this bare part and `resource` (Resourceprep'd).

        Raises:
            JIDError: the resource is empty, too long or fails Resourceprep.
        """
        return JID(self.local, self.domain, resourceprep(resource))

    def __str__(self) -> str:
        return self._str

    def __repr__(self) -> str:
        return f"JID({self._str!r})"



def _slot_setter(name: str) -> Callable[[JID, object], None]:
    """The slot descriptor's setter, for JID.__init__ (frozen dataclasses refuse `self.x = …`)."""
    setter: Callable[[JID, object], None] = vars(JID)[name].__set__
    return setter


_set_local = _slot_setter("local")
_set_domain = _slot_setter("domain")
_set_resource = _slot_setter("resource")
_set_str = _slot_setter("_str")
_set_bare = _slot_setter("_bare")

# A server sees few domains and a bounded set of users; a JID cache miss is usually a new
# resource of a known account, so caching the other two parts separately pays off.
_nodeprep_cached = functools.lru_cache(maxsize=16384)(nodeprep)
_nameprep_cached = functools.lru_cache(maxsize=1024)(nameprep)
