# tests: modules/offline.py
"""XEP-0160 offline messages on the in-memory harness: what is stored, in which order, with
which delay, when it is delivered and when it is deleted (XEP-0198 acks)."""
from __future__ import annotations

from typing import Callable

from stanzas.delay import stamp
from tests.harness.server import Harness
from tests.harness.stream import StreamClient
from tests.modules.messaging import SM, body, messaging, module, stored

ALICE, BOB = "alice@example.org", "bob@example.org"
UNAVAILABLE = ("<error type='cancel'><service-unavailable "
               "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>")


def offline_harness(make_harness: Callable[..., Harness], **options: dict) -> Harness:
    # Without MAM: no stanza-ids in the expected XML.
    return messaging(make_harness, without=("mam",), **options)


def test_stored_messages_arrive_in_order_with_a_delay_at_initial_presence(
        make_harness: Callable[..., Harness]) -> None:
    h = offline_harness(make_harness)
    h.user(BOB)
    alice = h.login(f"{ALICE}/a")
    for i in range(3):
        alice.send(f"<message to='{BOB}' type='chat' id='m{i}'><body>hi {i}</body></message>")
        h.clock.advance(10)
    alice.expect_nothing()                                  # stored: no error
    assert len(stored(h, BOB)) == 3
    bob = h.login(f"{BOB}/phone", available=False)
    bob.expect_nothing()                                    # binding alone delivers nothing
    bob.send("<presence/>")
    got = [e for e in bob.received() if e.tag.endswith("message")]
    assert [body(e) for e in got] == ["hi 0", "hi 1", "hi 2"]
    for i, el in enumerate(got):
        delay = el.find("{urn:xmpp:delay}delay")
        assert delay is not None and delay.get("from") == "example.org"
        assert delay.get("stamp") == stamp(1_000_000 + 10 * i, micro=True)
    assert stored(h, BOB) == []                             # no XEP-0198: written = delivered
    assert "msgoffline" in h.server.hosts["example.org"].features["host"]


def test_a_negative_priority_waits_for_a_non_negative_presence(
        make_harness: Callable[..., Harness]) -> None:
    h = offline_harness(make_harness)
    h.user(BOB)
    h.login(f"{ALICE}/a").send(f"<message to='{BOB}'><body>later</body></message>")
    bob = h.login(f"{BOB}/phone", available=False)
    bob.send("<presence><priority>-1</priority></presence>")
    assert not [e for e in bob.received() if e.tag.endswith("message")]
    bob.send("<presence><priority>1</priority></presence>")
    assert [body(e) for e in bob.received() if e.tag.endswith("message")] == ["later"]


def test_receipts_markers_and_other_payloads_are_stored_without_a_body(
        make_harness: Callable[..., Harness]) -> None:
    h = offline_harness(make_harness)
    h.user(BOB)
    alice = h.login(f"{ALICE}/a")
    alice.send(f"<message to='{BOB}' id='r1'><received xmlns='urn:xmpp:receipts' id='m1'/>"
               "</message>")
    alice.send(f"<message to='{BOB}' type='chat' id='d1'>"
               "<displayed xmlns='urn:xmpp:chat-markers:0' id='m1'/></message>")
    alice.send(f"<message to='{BOB}' type='chat' id='o1'>"
               "<encrypted xmlns='eu.siacs.conversations.axolotl'/></message>")
    alice.expect_nothing()
    assert [m.stanza.count(b"id=\"") for m in stored(h, BOB)] == [2, 2, 1]
    assert len(stored(h, BOB)) == 3


def test_chat_states_alone_are_dropped_silently(make_harness: Callable[..., Harness]) -> None:
    h = offline_harness(make_harness)
    h.user(BOB)
    alice = h.login(f"{ALICE}/a")
    alice.send(f"<message to='{BOB}' type='chat'>"
               "<composing xmlns='http://jabber.org/protocol/chatstates'/></message>")
    alice.send(f"<message to='{BOB}' type='chat'/>")
    alice.expect_nothing()                                  # §3: not stored, not an error
    assert stored(h, BOB) == []
    alice.send(f"<message to='{BOB}' type='chat'><active xmlns='http://jabber.org/protocol/"
               "chatstates'/><store xmlns='urn:xmpp:hints'/></message>")
    assert len(stored(h, BOB)) == 1                         # XEP-0334 <store/>


def test_no_store_is_not_stored_and_the_sender_hears_so(
        make_harness: Callable[..., Harness]) -> None:
    h = offline_harness(make_harness)
    h.user(BOB)
    alice = h.login(f"{ALICE}/a")
    alice.send(f"<message to='{BOB}' type='chat' id='n1'><body>x</body>"
               "<no-store xmlns='urn:xmpp:hints'/></message>")
    alice.expect(f"<message type='error' id='n1' from='{BOB}' to='{ALICE}/a'>{UNAVAILABLE}"
                 "</message>")
    assert stored(h, BOB) == []


def test_other_types_follow_rfc_6121(make_harness: Callable[..., Harness]) -> None:
    h = offline_harness(make_harness)
    h.user(BOB)
    alice = h.login(f"{ALICE}/a")
    alice.send(f"<message to='{BOB}' type='headline'><body>news</body></message>")
    alice.send(f"<message to='{BOB}' type='error'><body>x</body></message>")
    alice.expect_nothing()
    alice.send(f"<message to='{BOB}' type='groupchat' id='g'><body>x</body></message>")
    alice.expect("<message type='error' id='g' from='bob@example.org' to='alice@example.org/a'>"
                 f"{UNAVAILABLE}</message>")
    assert stored(h, BOB) == []


def test_a_full_queue_bounces_and_keeps_what_is_stored(
        make_harness: Callable[..., Harness]) -> None:
    h = offline_harness(make_harness, offline={"max_messages": 2})
    h.user(BOB)
    alice = h.login(f"{ALICE}/a")
    for i in range(3):
        alice.send(f"<message to='{BOB}' id='m{i}'><body>{i}</body></message>")
    alice.expect("<message type='error' id='m2' from='bob@example.org' "
                 f"to='alice@example.org/a'>{UNAVAILABLE}</message>")
    bob = h.login(f"{BOB}/phone", available=False)
    bob.send("<presence/>")
    assert [body(e) for e in bob.received() if e.tag.endswith("message")] == ["0", "1"]


def test_a_message_to_no_account_bounces(make_harness: Callable[..., Harness]) -> None:
    h = offline_harness(make_harness)
    alice = h.login(f"{ALICE}/a")
    alice.send("<message to='nobody@example.org' id='x'><body>?</body></message>")
    alice.expect("<message type='error' id='x' from='nobody@example.org' "
                 f"to='alice@example.org/a'>{UNAVAILABLE}</message>")


def bodies(c: StreamClient) -> list[str | None]:
    """The bodies of the messages among what `c` got since it was last asked."""
    return [body(e) for e in c.stanzas() if e.tag.endswith("message")]


def held_by_phone(h: Harness, text: str) -> StreamClient:
    """Bob's phone (stream management, acknowledging nothing) has Alice's stored `text`."""
    h.user(BOB)
    h.login(f"{ALICE}/a").send(f"<message to='{BOB}'><body>{text}</body></message>")
    phone = sm_login(h, f"{BOB}/phone")
    assert bodies(phone) == [text]
    return phone


def sm_login(h: Harness, jid: str, resume: bool = False) -> StreamClient:
    """Log in, enable XEP-0198, then send initial presence (offline messages come then)."""
    c = StreamClient(h, jid, available=False)
    if resume:
        c.send(f"<enable xmlns='{SM}' resume='true'/>")
        c.expect(f"<enabled xmlns='{SM}' id='{{any}}' resume='true' max='300'/>")
    else:
        c.send(f"<enable xmlns='{SM}'/>")
        c.expect(f"<enabled xmlns='{SM}'/>")
    c.send("<presence/>")
    return c


def test_with_stream_management_only_acknowledged_messages_are_deleted(
        make_harness: Callable[..., Harness]) -> None:
    h = offline_harness(make_harness)
    h.user(BOB)
    alice = h.login(f"{ALICE}/a")
    for i in range(5):
        alice.send(f"<message to='{BOB}'><body>{i}</body></message>")
    bob = sm_login(h, f"{BOB}/phone")
    got = bob.stanzas()
    assert [body(e) for e in got if e.tag.endswith("message")] == ["0", "1", "2", "3", "4"]
    assert len(stored(h, BOB)) == 5                         # nothing acknowledged yet
    bob.send(f"<a xmlns='{SM}' h='3'/>")                    # presence + first two messages
    assert [m.stanza.split(b"<body>")[1][:1] for m in stored(h, BOB)] == [b"2", b"3", b"4"]
    bob.send(f"<a xmlns='{SM}' h='6'/>")
    assert stored(h, BOB) == []


def test_a_dropped_connection_without_acks_gets_them_again_at_the_next_login(
        make_harness: Callable[..., Harness]) -> None:
    h = offline_harness(make_harness)
    h.user(BOB)
    alice = h.login(f"{ALICE}/a")
    for i in range(4):
        alice.send(f"<message to='{BOB}'><body>{i}</body></message>")
    bob = sm_login(h, f"{BOB}/phone")
    bob.received()
    bob.send(f"<a xmlns='{SM}' h='2'/>")                    # presence, "0"
    bob.drop()                                              # not resumable: the session ends
    assert len(stored(h, BOB)) == 3
    again = sm_login(h, f"{BOB}/laptop")
    assert bodies(again) == ["1", "2", "3"]
    alice.expect_nothing()                                  # nothing bounced


def test_a_resumable_session_given_up_by_a_fresh_login_hands_them_back(
        make_harness: Callable[..., Harness]) -> None:
    h = offline_harness(make_harness)
    h.user(BOB)
    h.login(f"{ALICE}/a").send(f"<message to='{BOB}'><body>once</body></message>")
    bob = sm_login(h, f"{BOB}/phone", resume=True)
    assert bodies(bob) == ["once"]
    bob.drop()                                              # held for resumption...
    again = sm_login(h, f"{BOB}/phone")                     # ...but the client logs in anew
    got = again.stanzas()                                   # its own presence, the message
    assert [body(e) for e in got if e.tag.endswith("message")] == ["once"]
    again.send(f"<a xmlns='{SM}' h='{len(got)}'/>")
    assert stored(h, BOB) == []


def test_messages_in_flight_to_one_session_are_not_given_to_another(
        make_harness: Callable[..., Harness]) -> None:
    h = offline_harness(make_harness)
    phone = held_by_phone(h, "one copy")
    laptop = sm_login(h, f"{BOB}/laptop")
    assert not bodies(laptop)
    phone.send("</stream:stream>")                          # leaves without acknowledging:
    phone.lost()                                            # the laptop has it now
    assert bodies(laptop) == ["one copy"]
    assert len(stored(h, BOB)) == 1                         # until the laptop acknowledges it
    laptop.send("<presence><show>away</show></presence>")   # not again at its next presence
    assert not bodies(laptop)


def test_unacknowledged_messages_wait_for_a_session_of_non_negative_priority(
        make_harness: Callable[..., Harness]) -> None:
    h = offline_harness(make_harness)
    phone = held_by_phone(h, "kept")
    laptop = h.login(f"{BOB}/laptop", available=False)
    laptop.send("<presence><priority>-1</priority></presence>")
    laptop.stanzas()
    phone.drop()
    assert not bodies(laptop)
    laptop.send("<presence/>")
    assert bodies(laptop) == ["kept"]


def test_messages_stored_while_the_write_is_in_flight_come_with_the_presence(
        make_harness: Callable[..., Harness]) -> None:
    from tests.modules.messaging import Gate
    h = offline_harness(make_harness)
    h.user(BOB)
    gate = Gate(module(h, "offline").adds)
    h.login(f"{ALICE}/a").send(f"<message to='{BOB}'><body>slow</body></message>")
    bob = h.login(f"{BOB}/phone", available=False)
    bob.send("<presence/>")
    assert not [e for e in bob.received() if e.tag.endswith("message")]
    gate.open()                                             # the commit, then the delivery
    assert [body(e) for e in bob.received() if e.tag.endswith("message")] == ["slow"]
    gate.close_gate()
