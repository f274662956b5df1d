# tests: tests/core/test_jid.py
"""JID parsing and preparation (RFC 6122 stringprep profiles, RFC 7622 §3 syntax)."""
from __future__ import annotations

import copy
import dataclasses
import pickle
import re

import pytest

from stanzas.jid import JID, JIDError, nameprep, nodeprep, resourceprep

# (input, local, domain, resource)
VALID: list[tuple[str, str | None, str, str | None]] = [
    # RFC 7622 §3.5 examples 1–15, as prepared by the RFC 6122 profiles.
    ("juliet@example.com", "juliet", "example.com", None),
    ("juliet@example.com/foo", "juliet", "example.com", "foo"),
    ("juliet@example.com/foo bar", "juliet", "example.com", "foo bar"),
    ("juliet@example.com/foo@bar", "juliet", "example.com", "foo@bar"),
    ("foo\\20bar@example.com", "foo\\20bar", "example.com", None),
    ("fussball@example.com", "fussball", "example.com", None),
    ("fußball@example.com", "fussball", "example.com", None),  # B.2 folds ß (PRECIS would not)
    ("π@example.com", "π", "example.com", None),
    ("Σ@example.com/foo", "σ", "example.com", "foo"),
    ("σ@example.com/foo", "σ", "example.com", "foo"),
    ("ς@example.com/foo", "σ", "example.com", "foo"),  # final sigma folds too under B.2
    ("king@example.com/♚", "king", "example.com", "♚"),
    ("example.com", None, "example.com", None),
    ("example.com/foobar", None, "example.com", "foobar"),
    ("a.example.com/b@example.net", None, "a.example.com", "b@example.net"),
    # RFC 7622 §3.5 lists these as invalid under PRECIS; stringprep (RFC 6122) accepts them, and
    # so do ejabberd and Prosody, which we must interoperate with.
    ("henryⅣ@example.com", "henryiv", "example.com", None),  # NFKC: ROMAN NUMERAL FOUR -> "iv"
    ("♚@example.com", "♚", "example.com", None),
    ("juliet@example.com/ foo", "juliet", "example.com", " foo"),
    # Case: localparts and domains fold, resources keep their case.
    ("Juliet@Example.COM/Balcony", "juliet", "example.com", "Balcony"),
    ("ΣΑΣ@example.com", "σασ", "example.com", None),
    ("Ǆ@example.com", "d\u017e", "example.com", None),  # NFKC splits the digraph, B.2 folds
    ("ＪＵＬＩＥＴ@example.com", "juliet", "example.com", None),  # fullwidth, NFKC + B.2
    ("İ@example.com", "i̇", "example.com", None),  # B.2: U+0130 -> "i" + COMBINING DOT ABOVE
    ("a\u00adb@example.com", "ab", "example.com", None),  # B.1: SOFT HYPHEN maps to nothing
    ("e\u0301@example.com", "é", "example.com", None),  # NFKC composes
    # Resource: only separators in the first "/" and "@" split; the rest belongs to the resource.
    ("a@b/c/d", "a", "b", "c/d"),
    ("a@b/c@d/e", "a", "b", "c@d/e"),
    ("b/@c", None, "b", "@c"),
    ("user@example.com/😀", "user", "example.com", "😀"),  # unassigned in Unicode 3.2: allowed
    ("user@example.com/\u2126", "user", "example.com", "\u03a9"),  # OHM SIGN -> OMEGA (NFKC), case kept
    ("user@example.com/x\u3000y", "user", "example.com", "x y"),  # IDEOGRAPHIC SPACE -> SPACE
    # Domains.
    ("example.com.", None, "example.com", None),  # one trailing dot stripped
    ("user@EXAMPLE.com./r", "user", "example.com", "r"),
    ("ｅｘａｍｐｌｅ．ｃｏｍ", None, "example.com", None),  # fullwidth letters and dot
    ("example。com", None, "example.com", None),  # IDEOGRAPHIC FULL STOP separates labels
    ("bücher.example", None, "bücher.example", None),
    ("BÜCHER.example", None, "bücher.example", None),
    ("xn--bcher-kva.example", None, "bücher.example", None),  # A-label -> U-label (RFC 7622)
    ("XN--BCHER-KVA.example", None, "bücher.example", None),
    ("ｘｎ--bcher-kva.example", None, "bücher.example", None),  # A-label only after NFKC
    ("localhost", None, "localhost", None),
    ("a-b.c-d.example", None, "a-b.c-d.example", None),
    ("1example.com", None, "1example.com", None),
    ("123.example", None, "123.example", None),
    ("user@127.0.0.1/r", "user", "127.0.0.1", "r"),
    ("１２７.0.0.1", None, "127.0.0.1", None),
    ("[::1]", None, "[::1]", None),
    ("user@[::1]/r", "user", "[::1]", "r"),
    ("[2001:DB8:0:0:0:0:0:1]", None, "[2001:db8::1]", None),  # RFC 5952 canonical form
    ("[::ffff:192.0.2.1]", None, "[::ffff:c000:201]", None),
    # Bidi: a right-to-left string that starts and ends with RandALCat is fine, digits inside too.
    ("\u05d0\u05d1@example.com", "\u05d0\u05d1", "example.com", None),
    ("\u0627\u0661\u0628@example.com", "\u0627\u0661\u0628", "example.com", None),
    # Lengths at the limit.
    ("a" * 1023 + "@example.com", "a" * 1023, "example.com", None),
    ("é" * 511 + "@example.com", "é" * 511, "example.com", None),  # 1022 bytes
    ("example.com/" + "r" * 1023, None, "example.com", "r" * 1023),
    ("a" * 63 + ".example", None, "a" * 63 + ".example", None),
]

# (input, fragment of the error message)
INVALID: list[tuple[str, str]] = [
    # RFC 7622 §3.5 invalid examples that are invalid under RFC 6122 as well.
    ('"juliet"@example.com', "localpart contains prohibited character U+0022"),
    ("foo bar@example.com", "localpart contains prohibited character U+0020"),
    ("@example.com/", "localpart is empty"),
    ("juliet@", "domainpart is empty"),
    ("/foobar", "domainpart is empty"),
    # Empty parts next to a separator.
    ("", "domainpart is empty"),
    ("@example.com", "localpart is empty"),
    ("example.com/", "resourcepart is empty"),
    ("a@example.com/", "resourcepart is empty"),
    (".", "domainpart is empty"),
    # Nodeprep's extra prohibitions: " & ' / : < > @ (RFC 6122 App. A.5).
    ("a&b@example.com", "U+0026"),
    ("a'b@example.com", "U+0027"),
    ("a:b@example.com", "U+003A"),
    ("a<b@example.com", "U+003C"),
    ("a>b@example.com", "U+003E"),
    ("a＠b@example.com", "localpart contains prohibited character U+0040"),  # NFKC -> "@"
    ("a\u1680b@example.com", "localpart contains prohibited character U+1680"),  # C.1.2
    ("a\u2000b@example.com", "U+0020"),  # EN QUAD is a space after NFKC
    ("a\x00b@example.com", "U+0000"),  # C.2.1
    ("a\x7fb@example.com", "U+007F"),
    ("a\u0085b@example.com", "U+0085"),  # C.2.2
    ("a\ue000b@example.com", "U+E000"),  # C.3 private use
    ("a\ufdd0b@example.com", "U+FDD0"),  # C.4 non-character
    ("a\ufffcb@example.com", "U+FFFC"),  # C.6
    ("a\u2ff0b@example.com", "U+2FF0"),  # C.7
    ("a\u200eb@example.com", "U+200E"),  # C.8 LEFT-TO-RIGHT MARK
    ("a\U000e0001b@example.com", "U+E0001"),  # C.9 tagging
    # Resourceprep prohibitions.
    ("a@example.com/x\ty", "resourcepart contains prohibited character U+0009"),
    ("a@example.com/x\u1680y", "resourcepart contains prohibited character U+1680"),
    ("a@example.com/x\U000f0000", "U+F0000"),
    # Bidi (RFC 3454 §6).
    ("\u05d0a@example.com", "mixes right-to-left and left-to-right"),
    ("\u05d01@example.com", "must start and end with a right-to-left"),
    ("1\u05d0@example.com", "must start and end with a right-to-left"),
    ("a@example.com/\u05d0x", "resourcepart mixes"),
    ("\u05d0x.example", "Violation of BIDI requirement 2"),
    # Lengths.
    ("a" * 1024 + "@example.com", "localpart is longer than 1023 bytes"),
    ("é" * 512 + "@example.com", "localpart is longer than 1023 bytes"),
    ("example.com/" + "r" * 1024, "resourcepart is longer than 1023 bytes"),
    ("a@example.com/" + "\u00ad" * 5000 + "r", "resourcepart is longer than 1023 bytes"),
    ("a" * 64 + ".example", "label is longer than 63 octets"),
    (("a" * 63 + ".") * 16 + "com", "domainpart is longer than 1023 bytes"),
    ("ü" * 60 + ".example", "label is longer than 63 octets"),  # too long once ACE-encoded
    # Domains: STD3 rules, labels, IP literals.
    ("a@b@c", "domainpart contains prohibited character U+0040"),
    ("exa_mple.com", "U+005F"),
    ("exa mple.com", "U+0020"),
    ("example.com:5222", "U+003A"),
    ("-example.com", "hyphen"),
    ("example-.com", "hyphen"),
    ("a..example", "empty label"),
    (".example", "empty label"),
    ("example.com..", "empty label"),
    ("xn--a.example", "invalid A-label"),
    ("xn--zz.example", "invalid A-label"),
    ("1.2.3.999", "numeric but not a valid IPv4 address"),
    ("1.2.3", "numeric but not a valid IPv4 address"),
    ("12345", "numeric but not a valid IPv4 address"),
    ("01.2.3.4", "numeric but not a valid IPv4 address"),
    ("[::1", "missing its closing"),
    ("[::g]", "not a valid IPv6 literal"),
    ("[127.0.0.1]", "not a valid IPv6 literal"),
    ("[fe80::1%eth0]", "zone identifier"),
    ("exa\u1680mple.com", "fails Nameprep"),
    ("exa\u00a0mple.com", "U+0020"),  # NBSP -> SPACE (NFKC), then refused by STD3 rules
    ("ex\u2024ample.com", "U+002E"),  # ONE DOT LEADER -> "." inside a label after NFKC
]


@pytest.mark.parametrize(("text", "local", "domain", "resource"), VALID)
def test_valid_jid_is_prepared(
    text: str, local: str | None, domain: str, resource: str | None
) -> None:
    jid = JID.parse(text)
    assert (jid.local, jid.domain, jid.resource) == (local, domain, resource)


@pytest.mark.parametrize(("text", "message"), INVALID)
def test_invalid_jid_is_refused_with_a_reason(text: str, message: str) -> None:
    with pytest.raises(JIDError, match=re.escape(message)) as info:
        JID.parse(text)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(("text", "local", "domain", "resource"), VALID)
def test_preparation_is_idempotent(
    text: str, local: str | None, domain: str, resource: str | None
) -> None:
    jid = JID.parse(text)
    assert JID.parse(str(jid)) == jid


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("Juliet@Example.COM/Balcony", "juliet@example.com/Balcony"),
        ("EXAMPLE.com.", "example.com"),
        ("example.com/a/b", "example.com/a/b"),
        ("Σ@[0::1]/Σ", "σ@[::1]/Σ"),
    ],
)
def test_str_is_canonical(text: str, canonical: str) -> None:
    assert str(JID.parse(text)) == canonical
    assert repr(JID.parse(text)) == f"JID({canonical!r})"


def test_str_is_computed_once() -> None:
    jid = JID.parse("romeo@example.net/orchard")
    assert str(jid) is str(jid)


def test_parse_is_cached_and_bounded() -> None:
    info = JID.parse.cache_info()
    assert info.maxsize is not None and 0 < info.maxsize <= 1 << 20
    first = JID.parse("cache-test@example.org/one")
    before = JID.parse.cache_info().hits
    assert JID.parse("cache-test@example.org/one") is first
    assert JID.parse.cache_info().hits == before + 1


def test_parse_errors_are_not_cached() -> None:
    size = JID.parse.cache_info().currsize
    for _ in range(2):
        with pytest.raises(JIDError):
            JID.parse("not valid@example.org")
    assert JID.parse.cache_info().currsize == size


def test_of_prepares_each_part() -> None:
    assert JID.of("Juliet", "Example.COM.", "Balcony") == JID.parse("juliet@example.com/Balcony")
    assert JID.of(None, "example.com") == JID(None, "example.com")
    assert str(JID.of("Σ", "xn--bcher-kva.example")) == "σ@bücher.example"


@pytest.mark.parametrize(
    ("local", "domain", "resource", "message"),
    [
        ("", "example.com", None, "localpart is empty"),
        ("a", "example.com", "", "resourcepart is empty"),
        ("a@b", "example.com", None, "U+0040"),
        ("a", "", None, "domainpart is empty"),
        ("a", "example.com/x", None, "U+002F"),
    ],
)
def test_of_refuses_bad_parts(
    local: str | None, domain: str, resource: str | None, message: str
) -> None:
    with pytest.raises(JIDError, match=re.escape(message)):
        JID.of(local, domain, resource)


def test_bare_drops_the_resource() -> None:
    full = JID.parse("juliet@example.com/balcony")
    assert full.bare == JID.parse("juliet@example.com")
    assert full.bare.is_bare and not full.is_bare
    assert str(full.bare) == "juliet@example.com"
    assert full.bare is full.bare  # computed once


def test_bare_of_a_bare_jid_is_itself() -> None:
    bare = JID.parse("juliet@example.com")
    assert bare.bare is bare
    domain = JID.parse("example.com")
    assert domain.bare is domain and domain.is_bare


def test_with_resource_prepares_the_resource() -> None:
    bare = JID.parse("juliet@example.com")
    full = bare.with_resource("Ω phone")
    assert full == JID.parse("juliet@example.com/Ω phone")
    assert full.resource == "Ω phone"
    assert full.bare == bare
    assert JID.parse("juliet@example.com/a").with_resource("b") == JID.parse(
        "juliet@example.com/b"
    )
    with pytest.raises(JIDError, match="resourcepart is empty"):
        bare.with_resource("")
    with pytest.raises(JIDError, match=re.escape("U+0000")):
        bare.with_resource("a\x00")


def test_equality_and_hash_follow_the_prepared_parts() -> None:
    a = JID.parse("Juliet@EXAMPLE.com/Balcony")
    b = JID.parse("juliet@example.com./Balcony")
    c = JID.parse("juliet@example.com/balcony")
    assert a == b and hash(a) == hash(b)
    assert a != c  # resources are case-sensitive
    assert JID.parse("xn--bcher-kva.example") == JID.parse("BÜCHER.example")
    assert len({a, b, c, a.bare, c.bare}) == 3
    assert JID.parse("example.com") != JID.parse("example.com/example.com")
    assert a != "juliet@example.com/Balcony"  # type: ignore[comparison-overlap]  # no str magic


def test_jid_is_immutable_and_copyable() -> None:
    jid = JID.parse("juliet@example.com/balcony")
    with pytest.raises(dataclasses.FrozenInstanceError):
        jid.local = "romeo"  # type: ignore[misc]
    jid.bare  # noqa: B018  (fills the cached bare before pickling)
    for clone in (pickle.loads(pickle.dumps(jid)), copy.copy(jid), copy.deepcopy(jid)):
        assert clone == jid and str(clone) == str(jid) and clone.bare == jid.bare
    assert dataclasses.replace(jid, resource="x") == JID.parse("juliet@example.com/x")


def test_prep_functions_raise_jiderror() -> None:
    assert nodeprep("ΣAb") == "σab"
    assert resourceprep("ΣAb") == "ΣAb"
    assert nameprep("Ex.COM.") == "ex.com"
    for fn, bad in ((nodeprep, "a/b"), (resourceprep, "a\nb"), (nameprep, "a b")):
        with pytest.raises(JIDError):
            fn(bad)


def test_unassigned_code_points_can_be_refused_for_stored_strings() -> None:
    # U+0221 is unassigned in Unicode 3.2 (RFC 3454 table A.1); stored strings must refuse it.
    assert nodeprep("a\u0221") == "a\u0221"
    with pytest.raises(JIDError, match="unassigned code point U\\+0221"):
        nodeprep("a\u0221", allow_unassigned=False)
    with pytest.raises(JIDError, match="unassigned code point U\\+1F600"):
        resourceprep("phone 😀", allow_unassigned=False)


def test_hostile_input_is_refused_cheaply() -> None:
    with pytest.raises(JIDError, match="longer than 1023 bytes"):
        JID.parse("a@example.com/" + "é" * 1_000_000)
    with pytest.raises(JIDError):
        JID.parse("ü" * 1_000_000)
