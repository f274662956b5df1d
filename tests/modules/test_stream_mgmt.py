# tests: modules/stream_mgmt/, xmppd/listeners/session.py, xmppd/router.py
"""XEP-0198 on real sessions in the in-memory harness: counting, acks that wait for
durability, resumption without loss or duplicates, expiry to offline storage, errors."""
from __future__ import annotations

from typing import Callable

import pytest

from modules.stream_mgmt import STATE as SM_STATE
from tests.harness.server import Harness
from tests.harness.stream import StreamClient
from tests.modules.contacts import make_contacts
from tests.modules.messaging import MODULES, SM, Gate, body, messaging, module, stored

ALICE, BOB = "alice@example.org", "bob@example.org"
UNEXPECTED = (f"<failed xmlns='{SM}'><unexpected-request "
              "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>")


@pytest.fixture
def h(make_harness: Callable[..., Harness]) -> Harness:
    return messaging(make_harness, without=("mam",))


def enable(c: StreamClient, resume: bool = False) -> str | None:
    c.send(f"<enable xmlns='{SM}' resume='{'true' if resume else 'false'}'/>")
    if not resume:
        c.expect(f"<enabled xmlns='{SM}'/>")
        return None
    return c.expect(f"<enabled xmlns='{SM}' id='{{any}}' resume='true' max='300'/>").get("id")


def messages(c: StreamClient) -> list[str | None]:
    return [body(e) for e in c.stanzas() if e.tag.endswith("message")]


def test_offered_after_authentication(h: Harness) -> None:
    c = StreamClient(h, f"{ALICE}/a", bind=False)
    assert c.features.find(f"{{{SM}}}sm") is not None


def test_enable_before_binding_or_twice_fails(h: Harness) -> None:
    c = StreamClient(h, f"{ALICE}/a", bind=False)
    c.send(f"<enable xmlns='{SM}'/>")
    c.expect(UNEXPECTED)                                    # §3: binding first
    c.send("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>")
    c.expect("<iq type='result' id='b'>{any}</iq>".replace("{any}", "<bind xmlns='urn:ietf:"
                                                           "params:xml:ns:xmpp-bind'><jid>{any}"
                                                           "</jid></bind>"))
    enable(c)
    c.send(f"<enable xmlns='{SM}'/>")
    c.expect(UNEXPECTED)
    assert not c.closed


def test_the_client_can_ask_for_less_resumption_time(h: Harness) -> None:
    c = StreamClient(h, f"{ALICE}/a")
    c.send(f"<enable xmlns='{SM}' resume='1' max='60'/>")
    c.expect(f"<enabled xmlns='{SM}' id='{{any}}' resume='true' max='60'/>")


def test_h_counts_stanzas_only(h: Harness) -> None:
    c = StreamClient(h, f"{ALICE}/a")
    enable(c)
    c.send(f"<r xmlns='{SM}'/>")
    c.expect(f"<a xmlns='{SM}' h='0'/>")
    c.send("<iq type='get' id='p' to='example.org'><ping xmlns='urn:xmpp:ping'/></iq>"
           "<presence><show>away</show></presence>"
           f"<message to='{BOB}'><body>hi</body></message>"
           "<iq type='set' id='s'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>"
           f"<r xmlns='{SM}'/>")
    got = c.received()
    assert got[-1].tag == f"{{{SM}}}a" and got[-1].get("h") == "4"


def test_h_wraps_around_at_2_to_the_32(h: Harness) -> None:
    c = StreamClient(h, f"{ALICE}/a")
    enable(c)
    c.session.get(SM_STATE).received = c.session.get(SM_STATE).handled = 2 ** 32 - 1
    c.send(f"<presence/><r xmlns='{SM}'/>")
    assert c.received()[-1].get("h") == "0"


def test_the_server_asks_for_acks_and_the_client_frees_what_it_acknowledged(h: Harness) -> None:
    bob = StreamClient(h, f"{BOB}/b")
    enable(bob)
    alice = h.login(f"{ALICE}/a")
    for i in range(3):
        alice.send(f"<message to='{BOB}/b'><body>{i}</body></message>")
    got = bob.received()
    tags = [e.tag.split("}")[1] for e in got]
    assert tags == ["message", "r", "message", "message"]   # one request outstanding
    state = bob.session.get(SM_STATE)
    assert len(state.queue) == 3
    bob.send(f"<a xmlns='{SM}' h='1'/>")
    assert len(state.queue) == 2
    bob.expect(f"<r xmlns='{SM}'/>")                        # more to acknowledge: ask again
    bob.send(f"<a xmlns='{SM}' h='3'/>")
    assert len(state.queue) == 0
    bob.expect_nothing()


def test_an_ack_for_more_than_was_sent_closes_the_stream(h: Harness) -> None:
    c = StreamClient(h, f"{ALICE}/a")
    enable(c)
    c.send(f"<a xmlns='{SM}' h='10'/>")
    err = [e for e in c.received() if e.tag.endswith("error")][0]
    assert err.find("{urn:ietf:params:xml:ns:xmpp-streams}undefined-condition") is not None
    too_high = err.find(f"{{{SM}}}handled-count-too-high")
    assert too_high is not None and too_high.get("h") == "10" \
        and too_high.get("send-count") == "0"
    assert c.closed


def test_a_bad_h_is_a_bad_format(h: Harness) -> None:
    c = StreamClient(h, f"{ALICE}/a")
    enable(c)
    c.send(f"<a xmlns='{SM}' h='x'/>")
    assert c.closed


def test_the_ack_waits_until_the_offline_store_committed(h: Harness) -> None:
    h.user(BOB)
    gate = Gate(module(h, "offline").adds)
    c = StreamClient(h, f"{ALICE}/a")
    enable(c)
    c.send(f"<message to='{BOB}'><body>1</body></message><presence><show>dnd</show>"
           f"</presence><r xmlns='{SM}'/>")
    assert not [e for e in c.received() if e.tag == f"{{{SM}}}a"]   # not durable yet
    gate.open()
    c.expect(f"<a xmlns='{SM}' h='2'/>")
    assert len(stored(h, BOB)) == 1
    gate.close_gate()


def test_the_ack_waits_until_the_archive_committed(make_harness: Callable[..., Harness]) -> None:
    h = messaging(make_harness)
    h.user(BOB)
    bob = h.login(f"{BOB}/b")
    gate = Gate(module(h, "mam").writes)
    c = StreamClient(h, f"{ALICE}/a")
    enable(c)
    c.send(f"<message to='{BOB}/b' type='chat'><body>1</body></message><r xmlns='{SM}'/>")
    assert [body(e) for e in bob.received()] == ["1"]       # delivered at once...
    assert not [e for e in c.received() if e.tag == f"{{{SM}}}a"]   # ...acked after commit
    gate.open()                                             # alice's copy
    assert not [e for e in c.received() if e.tag == f"{{{SM}}}a"]
    gate.open()                                             # bob's copy
    c.expect(f"<a xmlns='{SM}' h='1'/>")
    gate.close_gate()


def test_resumption_resends_exactly_what_was_not_acknowledged(h: Harness) -> None:
    make_contacts(h, ALICE, BOB)
    carol = h.login(f"{ALICE}/other")
    bob = StreamClient(h, f"{BOB}/phone")
    smid = enable(bob, resume=True)
    alice = h.login(f"{ALICE}/a")
    bob.received()
    for i in range(3):
        alice.send(f"<message to='{BOB}' type='chat'><body>{i}</body></message>")
    assert messages(bob) == ["0", "1", "2"]
    bob.send(f"<a xmlns='{SM}' h='{len(bob.session.get(SM_STATE).queue) - 2}'/>")  # all but "1", "2"
    bob.send(f"<message to='{ALICE}'><body>before</body></message>")
    bob.drop()
    alice.send(f"<message to='{BOB}' type='chat'><body>3</body></message>")
    alice.expect("<message from='bob@example.org/phone' to='alice@example.org'>"
                 "<body>before</body></message>")
    carol.received()
    new = StreamClient(h, f"{BOB}/phone", bind=False)
    new.send(f"<resume xmlns='{SM}' previd='{smid}' h='{bob.session.get(SM_STATE).acked + 1}'/>")
    new.expect(f"<resumed xmlns='{SM}' previd='{smid}' h='1'/>")   # "before" was handled
    assert messages(new) == ["2", "3"]                      # "1" was acked by <resume h/>
    assert h.server.sessions.get(new.session.jid) is new.session
    assert new.session.jid == bob.session.jid or str(new.session.jid) == f"{BOB}/phone"
    carol.expect_nothing()                                  # no unavailable, no new presence
    alice.send(f"<message to='{BOB}/phone'><body>after</body></message>")
    assert messages(new) == ["after"]
    new.send(f"<message to='{ALICE}/a'><body>back</body></message>")
    alice.expect("<message from='bob@example.org/phone' to='alice@example.org/a'>"
                 "<body>back</body></message>")


def test_an_old_connection_still_open_gets_a_conflict(h: Harness) -> None:
    bob = StreamClient(h, f"{BOB}/phone")
    smid = enable(bob, resume=True)
    new = StreamClient(h, f"{BOB}/phone", bind=False)
    new.send(f"<resume xmlns='{SM}' previd='{smid}' h='0'/>")
    new.expect(f"<resumed xmlns='{SM}' previd='{smid}' h='0'/>")
    assert bob.closed
    assert b"conflict" in b"".join(bob.transport.units)
    bob.lost()                                              # its end changes nothing now
    assert h.server.sessions.get(new.session.jid) is new.session


def test_resume_waits_for_what_the_old_connection_sent_to_be_handled(h: Harness) -> None:
    h.user(ALICE)
    gate = Gate(module(h, "offline").adds)
    bob = StreamClient(h, f"{BOB}/phone")
    smid = enable(bob, resume=True)
    bob.send(f"<message to='{ALICE}'><body>to the store</body></message>")
    bob.drop()
    new = StreamClient(h, f"{BOB}/phone", bind=False)
    new.send(f"<resume xmlns='{SM}' previd='{smid}' h='0'/>")
    new.expect_nothing()
    gate.open()
    new.expect(f"<resumed xmlns='{SM}' previd='{smid}' h='1'/>")
    gate.close_gate()


def test_unknown_foreign_and_expired_ids_fail(h: Harness) -> None:
    bob = StreamClient(h, f"{BOB}/phone")
    smid = enable(bob, resume=True)
    bob.send(f"<presence><status>x</status></presence>")
    bob.drop()
    thief = StreamClient(h, f"{ALICE}/x", bind=False)
    thief.send(f"<resume xmlns='{SM}' previd='{smid}' h='0'/>")
    thief.expect(f"<failed xmlns='{SM}'><item-not-found xmlns='urn:ietf:params:xml:ns:"
                 "xmpp-stanzas'/></failed>")
    new = StreamClient(h, f"{BOB}/phone", bind=False)
    new.send(f"<resume xmlns='{SM}' previd='nope' h='0'/>")
    new.expect(f"<failed xmlns='{SM}'><item-not-found xmlns='urn:ietf:params:xml:ns:"
               "xmpp-stanzas'/></failed>")
    new.send(f"<resume xmlns='{SM}' previd='{smid}'/>")
    new.expect(f"<failed xmlns='{SM}'><bad-request xmlns='urn:ietf:params:xml:ns:"
               "xmpp-stanzas'/></failed>")
    h.clock.advance(300)                                    # resume_timeout
    new = StreamClient(h, f"{BOB}/phone", bind=False)
    new.send(f"<resume xmlns='{SM}' previd='{smid}' h='0'/>")
    new.expect(f"<failed xmlns='{SM}' h='1'><item-not-found xmlns='urn:ietf:params:xml:ns:"
               "xmpp-stanzas'/></failed>")                  # §5: h of the expired session
    # §5: after a failed resumption the client may bind on the same stream
    new.send("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
             "<resource>phone</resource></bind></iq>")
    assert new.received()[0].get("type") == "result"


def test_resume_after_binding_is_unexpected(h: Harness) -> None:
    c = StreamClient(h, f"{ALICE}/a")
    c.send(f"<resume xmlns='{SM}' previd='x' h='0'/>")
    c.expect(UNEXPECTED)


def test_expiry_sends_unacknowledged_messages_offline_with_their_first_time(
        h: Harness) -> None:
    make_contacts(h, ALICE, BOB)
    alice = h.login(f"{ALICE}/a")
    bob = StreamClient(h, f"{BOB}/phone")
    enable(bob, resume=True)
    alice.received()
    alice.send(f"<message to='{BOB}' type='chat' id='m1'><body>unread</body></message>")
    alice.send(f"<message to='{BOB}/phone' type='headline'><body>news</body></message>")
    alice.send(f"<iq to='{BOB}/phone' type='get' id='v1'><query xmlns='jabber:iq:version'/>"
               "</iq>")
    sent_at = h.clock.seconds()
    bob.drop()
    h.clock.advance(299)
    alice.expect_nothing()                                  # still resumable: nothing happens
    h.clock.advance(1)
    got = alice.received()
    assert ("unavailable", f"{BOB}/phone") in [(e.get("type"), e.get("from")) for e in got]
    assert ("error", "v1") in [(e.get("type"), e.get("id")) for e in got]   # IQ bounced
    kept = stored(h, BOB)
    assert len(kept) == 1 and b"unread" in kept[0].stanza   # the headline went, as RFC 6121
    assert h.server.sessions.get(bob.session.jid) is None
    later = StreamClient(h, f"{BOB}/laptop")
    del later
    from stanzas.delay import stamp
    assert stamp(sent_at, micro=True).encode() in kept[0].stanza


def test_a_clean_close_is_not_resumable_and_nothing_is_lost(h: Harness) -> None:
    h.user(BOB)
    alice = h.login(f"{ALICE}/a")
    bob = StreamClient(h, f"{BOB}/phone")
    smid = enable(bob, resume=True)
    alice.send(f"<message to='{BOB}' type='chat'><body>last words</body></message>")
    bob.send("</stream:stream>")
    bob.lost()
    assert [b"last words" in m.stanza for m in stored(h, BOB)] == [True]
    new = StreamClient(h, f"{BOB}/phone", bind=False)
    new.send(f"<resume xmlns='{SM}' previd='{smid}' h='0'/>")
    assert new.received()[0].tag == f"{{{SM}}}failed"


def test_a_connection_timeout_is_resumable(h: Harness) -> None:
    from stanzas.errors import StreamError
    bob = StreamClient(h, f"{BOB}/phone")
    smid = enable(bob, resume=True)
    bob.session.close(StreamError.connection_timeout())
    bob.lost()
    new = StreamClient(h, f"{BOB}/phone", bind=False)
    new.send(f"<resume xmlns='{SM}' previd='{smid}' h='0'/>")
    new.expect(f"<resumed xmlns='{SM}' previd='{smid}' h='0'/>")


def test_too_many_unacknowledged_stanzas_close_the_stream(
        make_harness: Callable[..., Harness]) -> None:
    h = messaging(make_harness, without=("mam",), stream_mgmt={"max_unacked": 10})
    bob = StreamClient(h, f"{BOB}/phone")
    enable(bob)
    alice = h.login(f"{ALICE}/a")
    for i in range(11):
        alice.send(f"<message to='{BOB}/phone'><body>{i}</body></message>")
    assert bob.closed and b"policy-violation" in b"".join(bob.transport.units)
    bob.lost()
    assert len(stored(h, BOB)) == 11                        # not acknowledged: kept offline


def test_shutdown_keeps_unacknowledged_messages(make_harness: Callable[..., Harness]) -> None:
    h = messaging(make_harness, without=("mam",))
    bob = StreamClient(h, f"{BOB}/phone")
    enable(bob, resume=True)
    h.login(f"{ALICE}/a").send(f"<message to='{BOB}'><body>at shutdown</body></message>")
    bob.drop()
    from tests.harness.server import resolve
    resolve(h.server.stop())
    assert len(stored(h, BOB)) == 1


def test_an_h_behind_an_earlier_ack_acknowledges_nothing_new(h: Harness) -> None:
    bob = StreamClient(h, f"{BOB}/b")
    enable(bob)
    alice = h.login(f"{ALICE}/a")
    for i in range(2):
        alice.send(f"<message to='{BOB}/b'><body>{i}</body></message>")
    bob.received()
    bob.send(f"<a xmlns='{SM}' h='2'/><a xmlns='{SM}' h='1'/>")
    assert not bob.closed and len(bob.session.get(SM_STATE).queue) == 0


def test_a_late_connection_timeout_does_not_end_a_held_session(h: Harness) -> None:
    from stanzas.errors import StreamError
    bob = StreamClient(h, f"{BOB}/phone")
    smid = enable(bob, resume=True)
    bob.drop()
    bob.session.close(StreamError.connection_timeout())     # e.g. a keepalive ping expiring
    assert h.server.sessions.get(bob.session.jid) is bob.session
    bob.session.close(StreamError.conflict())               # a real reason ends it
    assert h.server.sessions.get(bob.session.jid) is None
    new = StreamClient(h, f"{BOB}/phone", bind=False)
    new.send(f"<resume xmlns='{SM}' previd='{smid}' h='0'/>")
    assert new.received()[0].tag == f"{{{SM}}}failed"


def test_a_managed_client_that_reads_nothing_is_kept_for_resumption_without_doubles(
        make_harness: Callable[..., Harness]) -> None:
    # Issue 13 point 3: the output bound cuts a reader that stopped; stream management keeps
    # the session for resumption, and what it had not acknowledged is resent exactly once.
    h = make_harness(modules={name: dict(o) for name, o in MODULES.items()},
                     limits={"max_output_buffer": "64 KiB"})
    bob = StreamClient(h, f"{BOB}/phone")
    smid = enable(bob, resume=True)
    alice = h.login(f"{ALICE}/a")
    bob.received()
    bob.pause_writing()                                     # bob's socket is full
    for i in range(8):
        alice.send(f"<message to='{BOB}' type='chat'><body>{i}{'x' * 10_000}</body></message>")
    assert bob.wire.aborted and h.server.sessions.get(bob.jid) is bob   # kept bound
    bob.drop()
    new = StreamClient(h, f"{BOB}/phone", bind=False)
    new.send(f"<resume xmlns='{SM}' previd='{smid}' h='0'/>")
    new.expect(f"<resumed xmlns='{SM}' previd='{smid}' h='0'/>")
    assert [m[:1] for m in messages(new) if m] == [str(i) for i in range(8)]
    assert stored(h, BOB) == []                             # nothing went offline as well


def test_unacknowledged_bytes_are_bounded_too(make_harness: Callable[..., Harness]) -> None:
    # Issue 13 point 3: a client that never acknowledges cannot hold the server's memory.
    h = make_harness(modules={**{name: dict(o) for name, o in MODULES.items()},
                              "stream_mgmt": {"max_unacked_size": "64 KiB"}})
    bob = StreamClient(h, f"{BOB}/phone")
    enable(bob)
    alice = h.login(f"{ALICE}/a")
    for i in range(8):
        alice.send(f"<message to='{BOB}' type='chat'><body>{i}{'x' * 10_000}</body></message>")
    assert bob.closed and bob.closed_with == "policy-violation"
    assert len(stored(h, BOB)) == 8                     # unacknowledged, then no session: kept


def test_the_ack_waits_for_the_room_archive(make_harness: Callable[..., Harness]) -> None:
    # DESIGN.md "the delivery promise": a groupchat message is handled once the room's archive
    # write is committed, not when the fan-out is done.
    from tests.modules.muc_helpers import MODULES as MUC, ROOM, create
    h = make_harness(modules={**MUC, "stream_mgmt": {}})
    owner = h.login("bob@example.org/r")
    create(owner, "bob", persistentroom=True)
    c = StreamClient(h, "alice@example.org/a")
    enable(c)
    c.send(f"<presence to='{ROOM}/alice'><x xmlns='http://jabber.org/protocol/muc'/></presence>")
    c.received()
    owner.received()
    gate = Gate(module(h, "muc").service.archive_writes)
    c.send(f"<message to='{ROOM}' type='groupchat'><body>x</body></message><r xmlns='{SM}'/>")
    assert owner.received()                                     # delivered at once
    assert not [e for e in c.received() if e.tag == f"{{{SM}}}a"]   # not acked yet
    gate.drain()
    c.expect(f"<a xmlns='{SM}' h='2'/>")
