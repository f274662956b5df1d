# tests: modules/offline.py, modules/mam/archiving.py, modules/muc/messages.py, storage/batch.py
"""Storage down (issue 13 §2, DESIGN.md "Storage down"), on the in-memory harness: writes that
fail transiently are kept and retried with the senders' XEP-0198 acks held; past the backlog
bound new messages get a wait-type <resource-constraint/>, never a permanent error."""
from __future__ import annotations

from typing import Any, Callable

from storage.errors import StorageError
from tests.harness.server import Harness
from tests.harness.stream import StreamClient
from tests.modules.messaging import SM, messaging, module, stored

ALICE, BOB = "alice@example.org", "bob@example.org"
WAIT = ("<error type='wait'><resource-constraint xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
        "<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas' xml:lang='en'>{any}</text></error>")


class Outage:
    """Makes a group commit's writes fail as if the database were down, until `end()`."""

    def __init__(self, batch: Any) -> None:
        self.batch, self.inner = batch, batch._write
        batch._write = self._write

    def _write(self, items: list[Any]) -> Any:
        raise StorageError("could not connect to server: Connection refused")

    def end(self) -> None:
        self.batch._write = self.inner


def acks(c: StreamClient) -> list[str | None]:
    return [e.get("h") for e in c.received() if e.tag == f"{{{SM}}}a"]


def test_offline_messages_wait_out_an_outage_with_the_ack_held(
        make_harness: Callable[..., Harness]) -> None:
    h = messaging(make_harness, without=("mam",))
    h.user(BOB)
    alice = StreamClient(h, f"{ALICE}/a")
    alice.send(f"<enable xmlns='{SM}'/>")
    alice.received()
    outage = Outage(module(h, "offline").adds)
    for i in range(3):
        alice.send(f"<message to='{BOB}' type='chat' id='m{i}'><body>{i}</body></message>")
    alice.send(f"<r xmlns='{SM}'/>")
    assert acks(alice) == []                       # not stored yet: no ✓
    h.clock.advance(0.25)
    h.clock.advance(0.5)                           # still down: retried, still waiting
    assert acks(alice) == [] and stored(h, BOB) == []
    outage.end()
    h.clock.advance(1.0)                           # the next retry goes through
    assert acks(alice) == ["3"]
    assert len(stored(h, BOB)) == 3                # every one, once, no error to alice
    assert not [e for e in alice.received() if e.get("type") == "error"]


def test_past_the_backlog_an_offline_message_gets_a_wait_error(
        make_harness: Callable[..., Harness]) -> None:
    h = messaging(make_harness, without=("mam",))
    h.user(BOB)
    alice = h.login(f"{ALICE}/a")
    adds = module(h, "offline").adds
    outage = Outage(adds)
    adds._max_pending = 2
    for i in range(3):
        alice.send(f"<message to='{BOB}' type='chat' id='m{i}'><body>{i}</body></message>")
    alice.expect(f"<message from='{BOB}' to='{ALICE}/a' type='error' id='m2'>"
                 f"{WAIT}</message>")
    outage.end()
    h.clock.advance(0.25)
    assert [m.stanza.count(b"<body>") for m in stored(h, BOB)] == [1, 1]


def test_past_the_archive_backlog_a_message_is_refused_before_delivery(
        make_harness: Callable[..., Harness]) -> None:
    h = messaging(make_harness)
    alice, bob = h.login(f"{ALICE}/a"), h.login(f"{BOB}/b")
    writes = module(h, "mam").archiver.writes
    outage = Outage(writes)
    writes._max_pending = 2                        # each message: two writes (both sides)
    alice.send(f"<message to='{BOB}' type='chat' id='m0'><body>0</body></message>")
    assert bob.received()                          # delivered; its archive write waits
    alice.send(f"<message to='{BOB}' type='chat' id='m1'><body>1</body></message>")
    bob.expect_nothing()                           # not taken: it could not be archived
    got = alice.received()
    assert [(e.get("id"), e.get("type")) for e in got] == [("m1", "error")]
    assert got[0].find("{jabber:client}error").get("type") == "wait"
    outage.end()
    h.clock.advance(0.25)
    assert not writes.retrying and writes.pending == 0
