"""The bot's JIDs (bot/xmppd_bot/jid.py): prepared as the server prepares them — the two copies
of RFC 6122 must agree, or a bot would not recognise a room or a contact the server names — and
the value-object behaviour the SDK relies on."""
from __future__ import annotations

import random
import re

import pytest

from stanzas.jid import JID as ServerJID
from stanzas.jid import JIDError as ServerJIDError
from xmppd_bot.jid import JID, JIDError

CASES = [
    "alice@example.org", "Alice@Example.ORG/Phone", "example.org", "example.org.",
    "a@b@c", "not a jid@localhost", "@example.org", "alice@", "alice@example.org/",
    "/resource", "", "alice@example.org/with/slashes@and at", "lounge@conference.localhost/😀 x",
    "ＡＬＩＣＥ@example.org", "stra\u00dfe@example.org", "caf\u00e9@example.org",
    "cafe\u0301@example.org", "so\u00adft@example.org", "zero\u200bwidth@example.org",
    "\u05d0\u05d1@example.org", "\u05d0b@example.org", "\u0627\u0644\u0639@example.org/x",
    "a@b\u00fccher.example", "a@xn--bcher-kva.example", "a@xn--bcher-kva-.example",
    "a@xn--.example", "a@b\u3002c", "a@b\uff0ec", "a@under_score.org", "a@-hyphen.org",
    "a@hyphen-.org", "a@" + "l" * 63 + ".org", "a@" + "l" * 64 + ".org", "a@b..c",
    "a@127.0.0.1", "a@127.000.0.1", "a@1.2.3.4.5", "a@999.1.1.1", "a@[::1]/r",
    "a@[0:0:0:0:0:0:0:1]", "a@[::1", "a@[fe80::1%eth0]", "a@[example.org]", "a@::1",
    "x" * 1023 + "@example.org", "x" * 1024 + "@example.org", "\u00e9" * 512 + "@e.org",
    "a@example.org/" + "r" * 1023, "a@example.org/" + "r" * 1024, "a@example.org/\x00",
    "a@example.org/\u2028", "a\x7f@example.org", "a:b@example.org", "a<b@example.org",
    "a@example.org/\ue000", "a@example.org/\ufdd0", "\ufb01@example.org", "a@e\u0301.org",
    "\U000e0041@example.org", "a@example.org/\u202e", "a@\u00c9xample.org", "a@.org",
]

_PIECES = ["a", "B", "z9", "-", "_", ".", "@", "/", " ", '"', "é", "ß", "İ", "Ａ", "\u00ad",
           "\u200b", "\u3002", "ﬁ", "ا", "א", "\u0301", "😀", "\x00", "[", "]", ":", "xn--",
           "1", "127", "\u2028", "\ue000", "Ω", "ǅ", "\u0340"]


def fuzzed(n: int) -> list[str]:
    """JID-shaped strings from awkward pieces (seeded: the same list every run)."""
    rng = random.Random(6122)

    def part() -> str:
        return "".join(rng.choice(_PIECES) for _ in range(rng.randint(0, 4)))
    out = []
    for _ in range(n):
        text = rng.choice([part(), "x"]) + rng.choice(["@", ""]) + part() + "example"
        if rng.random() < 0.5:
            text += "/" + part()
        out.append(text)
    return out


def outcome(parse: type[JID] | type[ServerJID], error: type[Exception], text: str) -> str:
    try:
        return "ok " + str(parse.parse(text))
    except error:
        return "error"


@pytest.mark.parametrize("text", CASES, ids=lambda t: repr(t)[:40])
def test_the_bot_prepares_a_jid_as_the_server_does(text: str) -> None:
    assert outcome(JID, JIDError, text) == outcome(ServerJID, ServerJIDError, text)


def test_the_bot_and_the_server_agree_on_fuzzed_jids() -> None:
    texts = fuzzed(3000)
    results = [(t, outcome(JID, JIDError, t), outcome(ServerJID, ServerJIDError, t))
               for t in texts]
    differ = [(t, mine, theirs) for t, mine, theirs in results if mine != theirs]
    assert differ == []
    accepted = sum(1 for _, mine, _ in results if mine != "error")
    assert 300 < accepted < 2700          # the corpus exercises both outcomes


def test_parts_are_prepared_and_compared_as_values() -> None:
    jid = JID.parse("Alice@Example.ORG/Phone")
    assert (jid.local, jid.domain, jid.resource) == ("alice", "example.org", "Phone")
    assert str(jid) == "alice@example.org/Phone" and repr(jid) == "JID('alice@example.org/Phone')"
    assert jid.bare == JID.parse("alice@example.org") and jid.bare.is_bare
    assert not jid.is_bare and hash(jid.bare) == hash(JID.of("ALICE", "example.org"))
    assert jid.bare.with_resource("😀 nick") == JID.parse("alice@example.org/😀 nick")
    assert JID.parse("Lounge@Conference.Example.org") in {JID.parse("lounge@conference."
                                                                   "example.org")}


@pytest.mark.parametrize("text, message", [
    ("@example.org", "localpart is empty"),
    ("not a jid@localhost", "localpart contains prohibited character U+0020"),
    ("a@under_score.org", "domainpart contains prohibited character U+005F '_'"),
    ("a@example.org/", "resourcepart is empty"),
    ("\u05d0b@example.org", "mixes right-to-left and left-to-right"),
    ("a@999.1.1.1", "numeric but not a valid IPv4 address"),
    ("x" * 1024 + "@example.org", "localpart is longer than 1023 bytes"),
])
def test_errors_name_the_part_and_the_reason(text: str, message: str) -> None:
    with pytest.raises(JIDError, match=re.escape(message)):
        JID.parse(text)
    with pytest.raises(JIDError, match="resourcepart is empty"):
        JID.parse("a@example.org").with_resource("")
