# tests: modules/carbons.py
"""XEP-0280 carbons on the in-memory harness: switching, received and sent copies, the §6.1
rules, <private/> and <no-copy/>, and the stanza-ids copies carry."""
from __future__ import annotations

from typing import Callable

import pytest
from lxml import etree

from tests.harness.server import HarnessClient, Harness
from tests.modules.messaging import messaging

ALICE, BOB = "alice@example.org", "bob@example.org"
NS = "urn:xmpp:carbons:2"
FWD = "urn:xmpp:forward:0"


@pytest.fixture
def h(make_harness: Callable[..., Harness]) -> Harness:
    return messaging(make_harness, without=("mam",))


def carbons_on(s: HarnessClient) -> None:
    s.received()
    s.send(f"<iq type='set' id='c'><enable xmlns='{NS}'/></iq>")
    s.expect(f"<iq type='result' id='c' to='{s.jid}' from='{s.jid.bare}'/>")


def inner(copy: etree._Element, direction: str) -> etree._Element:
    found = copy.find(f"{{{NS}}}{direction}/{{{FWD}}}forwarded/{{jabber:client}}message")
    assert found is not None, etree.tostring(copy)
    return found


def test_enable_and_disable_twice_are_fine_but_not_for_someone_else(h: Harness) -> None:
    a = h.login(f"{ALICE}/a")
    for op in ("enable", "enable", "disable", "disable"):
        a.send(f"<iq type='set' id='{op}'><{op} xmlns='{NS}'/></iq>")
        a.expect(f"<iq type='result' id='{op}' to='{ALICE}/a' from='{ALICE}'/>")
    h.user(BOB)
    a.send(f"<iq type='set' id='x' to='{BOB}'><enable xmlns='{NS}'/></iq>")
    a.expect(f"<iq type='error' id='x' to='{ALICE}/a' from='{BOB}'><enable xmlns='{NS}'/>"
             "<error type='cancel'><not-allowed xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
             "<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas' xml:lang='en'>{any}</text>"
             "</error></iq>")
    assert NS in h.server.hosts["example.org"].features["host"]


def test_received_copies_go_to_the_other_enabled_resources(h: Harness) -> None:
    phone, laptop, tablet = (h.login(f"{BOB}/{r}") for r in ("phone", "laptop", "tablet"))
    for s in (phone, laptop):
        carbons_on(s)
    for s in (phone, laptop, tablet):
        s.received()
    alice = h.login(f"{ALICE}/a")
    alice.send(f"<message to='{BOB}/phone' type='chat' id='m1'><body>hi</body></message>")
    phone.expect(f"<message to='{BOB}/phone' type='chat' id='m1' from='{ALICE}/a'>"
                 "<body>hi</body></message>")
    copy = laptop.expect(f"<message from='{BOB}' to='{BOB}/laptop' type='chat'><received "
                         f"xmlns='{NS}'><forwarded xmlns='{FWD}'><message xmlns='jabber:client' to='{BOB}/phone' "
                         f"type='chat' id='m1' from='{ALICE}/a'><body>hi</body></message>"
                         "</forwarded></received></message>")
    assert copy is not None
    tablet.expect_nothing()                                 # carbons not enabled
    phone.expect_nothing()                                  # the original only, no copy


def test_a_message_to_the_bare_jid_copies_to_those_not_chosen(h: Harness) -> None:
    phone, laptop = h.login(f"{BOB}/phone"), h.login(f"{BOB}/laptop")
    carbons_on(phone)
    carbons_on(laptop)
    laptop.send("<presence><priority>5</priority></presence>")
    phone.received()
    laptop.received()
    h.login(f"{ALICE}/a").send(f"<message to='{BOB}' type='chat'><body>hi</body></message>")
    assert [e.find("{jabber:client}body") is not None for e in laptop.received()] == [True]
    assert inner(phone.received()[0], "received").findtext("{jabber:client}body") == "hi"


def test_sent_copies_go_to_the_other_enabled_resources(h: Harness) -> None:
    h.user(BOB)
    a, b, c = (h.login(f"{ALICE}/{r}") for r in ("a", "b", "c"))
    carbons_on(b)                                           # the sender itself need not
    for s in (a, b, c):
        s.received()
    a.send(f"<message to='{BOB}' type='chat' id='s1'><body>out</body></message>")
    copy = b.expect(f"<message from='{ALICE}' to='{ALICE}/b' type='chat'><sent xmlns='{NS}'>"
                    f"<forwarded xmlns='{FWD}'><message xmlns='jabber:client' to='{BOB}' type='chat' id='s1' "
                    f"from='{ALICE}/a'><body>out</body></message></forwarded></sent></message>")
    assert copy is not None
    a.expect_nothing()
    c.expect_nothing()


@pytest.mark.parametrize("payload", [
    "<private xmlns='urn:xmpp:carbons:2'/><no-copy xmlns='urn:xmpp:hints'/>",
    "<private xmlns='urn:xmpp:carbons:2'/>",
    "<no-copy xmlns='urn:xmpp:hints'/>",
], ids=["private+no-copy", "private", "no-copy"])
def test_private_messages_are_not_copied(h: Harness, payload: str) -> None:
    a, a2 = h.login(f"{ALICE}/a"), h.login(f"{ALICE}/a2")
    b, b2 = h.login(f"{BOB}/b"), h.login(f"{BOB}/b2")
    for s in (a, a2, b, b2):
        carbons_on(s)
        s.received()
    a.send(f"<message to='{BOB}/b' type='chat'><body>secret</body>{payload}</message>")
    assert len(b.received()) == 1
    for s in (a, a2, b2):
        s.expect_nothing()


@pytest.mark.parametrize("message, copied", [
    ("<message type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>",
     True),
    ("<message><body>normal with body</body></message>", True),
    ("<message><received xmlns='urn:xmpp:receipts' id='x'/></message>", True),
    ("<message><displayed xmlns='urn:xmpp:chat-markers:0' id='x'/></message>", True),
    ("<message><x xmlns='jabber:x:conference' jid='room@conference.example.org'/></message>",
     True),
    ("<message><x xmlns='http://jabber.org/protocol/muc#user'><invite from='c@example.org'/>"
     "</x></message>", True),
    ("<message type='chat'><body>pm</body><x xmlns='http://jabber.org/protocol/muc#user'/>"
     "</message>", False),                                  # a PM from an occupant: inbound
    ("<message><subject>only a normal without body</subject>"
     "<thread>t</thread></message>", True),
    ("<message><thread>t</thread></message>", False),
    ("<message type='headline'><body>news</body></message>", False),
    ("<message type='error'><body>x</body></message>", False),
], ids=lambda v: str(v)[:40] if isinstance(v, str) else str(v))
def test_which_received_messages_are_copied(h: Harness, message: str, copied: bool) -> None:
    b, b2 = h.login(f"{BOB}/b"), h.login(f"{BOB}/b2")
    carbons_on(b2)
    b.received()
    alice = h.login(f"{ALICE}/a")
    alice.send(message.replace("<message", f"<message to='{BOB}/b'", 1))
    assert len(b2.received()) == (1 if copied else 0)


def test_clients_cannot_send_carbons_wrappers(h: Harness) -> None:
    b = h.login(f"{BOB}/b")
    alice = h.login(f"{ALICE}/a")
    alice.send(f"<message to='{BOB}/b' type='chat'><body>real</body><received xmlns='{NS}'>"
               f"<forwarded xmlns='{FWD}'><message from='{BOB}/x'><body>fake</body></message>"
               "</forwarded></received></message>")
    b.expect(f"<message to='{BOB}/b' type='chat' from='{ALICE}/a'><body>real</body></message>")


def test_no_copies_for_a_message_that_goes_offline(h: Harness) -> None:
    lurker = h.login(f"{BOB}/lurker", available=False)      # bound, carbons, no presence
    carbons_on(lurker)
    h.login(f"{ALICE}/a").send(f"<message to='{BOB}' type='chat'><body>x</body></message>")
    lurker.expect_nothing()


def test_copies_carry_the_archive_ids(make_harness: Callable[..., Harness]) -> None:
    h = messaging(make_harness)
    b, b2 = h.login(f"{BOB}/b"), h.login(f"{BOB}/b2")
    a, a2 = h.login(f"{ALICE}/a"), h.login(f"{ALICE}/a2")
    for s in (b2, a2):
        carbons_on(s)
    for s in (a, a2, b, b2):
        s.received()
    a.send(f"<message to='{BOB}/b' type='chat'><body>x</body></message>")
    original = b.received()[0]
    sid = original.find("{urn:xmpp:sid:0}stanza-id")
    assert sid is not None and sid.get("by") == BOB
    received = inner(b2.received()[0], "received").find("{urn:xmpp:sid:0}stanza-id")
    assert received is not None and received.get("id") == sid.get("id")
    sent = inner(a2.received()[0], "sent").find("{urn:xmpp:sid:0}stanza-id")
    assert sent is not None and sent.get("by") == ALICE and sent.get("id") != sid.get("id")
    assert original.find("{urn:xmpp:sid:0}stanza-id[@by='alice@example.org']") is None
