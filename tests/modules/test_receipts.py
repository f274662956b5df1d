# tests: modules/receipts.py
"""XEP-0184 receipts and XEP-0333 markers: never lost — routed, stored offline for an offline
sender, archived, copied. (How a message is classified: tests/core/test_content.py; the
XEP-0082 timestamps: tests/core/test_delay.py.)"""
from __future__ import annotations

from typing import Callable

from tests.harness.server import Harness
from tests.modules.messaging import messaging

ALICE, BOB = "alice@example.org", "bob@example.org"
RECEIPT = "<received xmlns='urn:xmpp:receipts' id='m1'/>"
MARKER = "<displayed xmlns='urn:xmpp:chat-markers:0' id='m1'/>"


def test_features(make_harness: Callable[..., Harness]) -> None:
    h = messaging(make_harness)
    features = h.server.hosts["example.org"].features["host"]
    assert "urn:xmpp:receipts" in features and "urn:xmpp:chat-markers:0" in features


def test_receipt_and_marker_reach_a_sender_who_went_offline(
        make_harness: Callable[..., Harness]) -> None:
    h = messaging(make_harness)
    alice, bob = h.login(f"{ALICE}/a"), h.login(f"{BOB}/b")
    alice.send(f"<message to='{BOB}' type='chat' id='m1'><body>hi</body>"
               "<request xmlns='urn:xmpp:receipts'/><markable xmlns='urn:xmpp:chat-markers:0'/>"
               "</message>")
    alice.close()                                           # gone before the ticks come back
    bob.received()
    bob.send(f"<message to='{ALICE}/a' id='r1'>{RECEIPT}</message>")
    bob.send(f"<message to='{ALICE}' type='chat' id='d1'>{MARKER}</message>")
    bob.expect_nothing()                                    # stored, not bounced
    alice = h.login(f"{ALICE}/phone", available=False)
    alice.send("<presence/>")
    got = [e for e in alice.received() if e.tag.endswith("message")]
    assert [e.get("id") for e in got] == ["r1", "d1"]
    assert got[0].find("{urn:xmpp:receipts}received") is not None
    assert got[1].find("{urn:xmpp:chat-markers:0}displayed") is not None
    # both are in both archives as well (the ✓✓ state is history)
    for s in (alice, bob):
        s.send("<iq type='set' id='q'><query xmlns='urn:xmpp:mam:2'/></iq>")
        ids = [e.find(".//{jabber:client}message").get("id")   # type: ignore[union-attr]
               for e in s.received() if e.tag.endswith("message")]
        assert ids == ["m1", "r1", "d1"]
