# tests: modules/csi.py
"""XEP-0352 CSI on real sessions in the in-memory harness: what an inactive client is spared,
what it gets at once, and in which order."""
from __future__ import annotations

from typing import Callable

import pytest

from tests.harness.server import Harness
from tests.harness.stream import StreamClient
from tests.modules.contacts import make_contacts
from tests.modules.messaging import SM, body, messaging

ALICE, BOB, CAROL = "alice@example.org", "bob@example.org", "carol@example.org"
CSI = "urn:xmpp:csi:0"


@pytest.fixture
def h(make_harness: Callable[..., Harness]) -> Harness:
    h = messaging(make_harness, without=("mam",))
    make_contacts(h, ALICE, BOB)
    make_contacts(h, CAROL, BOB)
    return h


def kinds(c: StreamClient) -> list[tuple[str, str | None, str | None]]:
    """(kind, from, status or body) of each stanza received."""
    out = []
    for e in c.stanzas():
        name = e.tag.split("}")[1]
        text = e.findtext("{jabber:client}status") if name == "presence" else body(e)
        out.append((name, e.get("from"), text))
    return out


def test_offered_after_authentication(h: Harness) -> None:
    c = StreamClient(h, f"{BOB}/b", bind=False)
    assert c.features.find(f"{{{CSI}}}csi") is not None


def test_presence_is_held_newest_per_resource_then_flushed_on_active(h: Harness) -> None:
    bob = StreamClient(h, f"{BOB}/b")
    alice, carol = h.login(f"{ALICE}/a"), h.login(f"{CAROL}/c")
    bob.received()
    bob.send(f"<inactive xmlns='{CSI}'/>")
    for i in range(20):
        alice.send(f"<presence><status>a{i}</status></presence>")
        carol.send(f"<presence><status>c{i}</status></presence>")
    bob.expect_nothing()
    bob.send(f"<active xmlns='{CSI}'/>")
    assert kinds(bob) == [("presence", f"{ALICE}/a", "a19"), ("presence", f"{CAROL}/c", "c19")]
    alice.send("<presence><status>live</status></presence>")
    assert kinds(bob) == [("presence", f"{ALICE}/a", "live")]


def test_a_chat_message_is_delivered_at_once_after_what_is_held(h: Harness) -> None:
    bob = StreamClient(h, f"{BOB}/b")
    alice = h.login(f"{ALICE}/a")
    bob.received()
    bob.send(f"<inactive xmlns='{CSI}'/>")
    alice.send("<presence><show>away</show><status>brb</status></presence>")
    alice.send(f"<message to='{BOB}' type='chat'><composing xmlns='http://jabber.org/"
               "protocol/chatstates'/></message>")
    bob.expect_nothing()
    alice.send(f"<message to='{BOB}' type='chat'><body>hello</body></message>")
    assert kinds(bob) == [("presence", f"{ALICE}/a", "brb"),
                          ("message", f"{ALICE}/a", "hello")]   # the chat state is gone
    alice.send("<presence><status>again</status></presence>")
    bob.expect_nothing()                                    # still inactive


@pytest.mark.parametrize("stanza", [
    f"<message to='{BOB}' type='chat'><received xmlns='urn:xmpp:receipts' id='m1'/></message>",
    f"<message to='{BOB}' type='chat'><displayed xmlns='urn:xmpp:chat-markers:0' id='m1'/>"
    "</message>",
    f"<presence to='{BOB}' type='subscribe' from='x'/>",
    f"<iq to='{BOB}/b' type='get' id='v'><query xmlns='jabber:iq:version'/></iq>",
], ids=["receipt", "marker", "subscribe", "iq"])
def test_what_matters_is_not_held(h: Harness, stanza: str) -> None:
    bob = StreamClient(h, f"{BOB}/b")
    alice = h.login(f"{ALICE}/a")
    bob.received()
    bob.send(f"<inactive xmlns='{CSI}'/>")
    alice.send("<presence><status>held</status></presence>")
    sender = h.login("dave@example.org/d") if "subscribe" in stanza else alice
    sender.send(stanza.replace(" from='x'", ""))
    got = kinds(bob)
    assert got[0] == ("presence", f"{ALICE}/a", "held") and len(got) == 2


def test_carbon_copies_of_chat_states_are_dropped(h: Harness) -> None:
    bob = StreamClient(h, f"{BOB}/b")
    bob.send("<iq type='set' id='c'><enable xmlns='urn:xmpp:carbons:2'/></iq>")
    other = h.login(f"{BOB}/other")
    bob.received()
    bob.send(f"<inactive xmlns='{CSI}'/>")
    other.send(f"<message to='{ALICE}' type='chat'><paused xmlns='http://jabber.org/protocol/"
               "chatstates'/></message>")
    bob.expect_nothing()
    other.send(f"<message to='{ALICE}' type='chat'><body>sent from elsewhere</body></message>")
    got = bob.stanzas()
    assert len(got) == 1 and got[0].find("{urn:xmpp:carbons:2}sent") is not None


def test_too_much_held_is_sent(make_harness: Callable[..., Harness]) -> None:
    h = messaging(make_harness, without=("mam",), csi={"max_held": 2})
    for contact in (ALICE, CAROL, "dave@example.org"):
        make_contacts(h, contact, BOB)
    bob = StreamClient(h, f"{BOB}/b")
    sessions = [h.login(f"{c}/x") for c in (ALICE, CAROL)]
    bob.received()
    bob.send(f"<inactive xmlns='{CSI}'/>")
    for s in sessions:
        s.send("<presence><status>1</status></presence>")
    bob.expect_nothing()
    h.login("dave@example.org/x")
    assert len(kinds(bob)) == 3


def test_a_resumed_stream_is_active_again(h: Harness) -> None:
    bob = StreamClient(h, f"{BOB}/b")
    bob.send(f"<enable xmlns='{SM}' resume='true'/>")
    smid = bob.expect(f"<enabled xmlns='{SM}' id='{{any}}' resume='true' max='300'/>").get("id")
    alice = h.login(f"{ALICE}/a")
    assert len(bob.stanzas()) == 1                          # alice is online...
    bob.send(f"<a xmlns='{SM}' h='1'/><inactive xmlns='{CSI}'/>")   # ...acknowledged
    alice.send("<presence><status>while inactive</status></presence>")
    bob.drop()
    new = StreamClient(h, f"{BOB}/b", bind=False)
    new.send(f"<resume xmlns='{SM}' previd='{smid}' h='1'/>")
    new.expect(f"<resumed xmlns='{SM}' previd='{smid}' h='0'/>")
    got = new.stanzas()                                     # held, not yet sent: not resent
    assert [e.findtext("{jabber:client}status") for e in got if e.tag.endswith("presence")] \
        == ["while inactive"]
    alice.send("<presence><status>now</status></presence>")
    assert [s for _, _, s in kinds(new)] == ["now"]          # §5: active, not held


def test_csi_before_binding_is_refused(h: Harness) -> None:
    c = StreamClient(h, f"{BOB}/b", bind=False)
    c.send(f"<inactive xmlns='{CSI}'/>")
    assert c.closed
