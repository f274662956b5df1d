# tests: modules/receipts.py
"""XEP-0184 receipts and XEP-0333 markers: classified the same everywhere and never lost —
routed, stored offline for an offline sender, archived, copied; plus the shared XEP-0082
timestamps."""
from __future__ import annotations

from typing import Callable

import pytest

from modules.receipts import classify, parse_stamp, parse_stamp_us, stamp, stamp_us
from tests.harness.server import Harness, parse
from tests.modules.messaging import messaging

ALICE, BOB = "alice@example.org", "bob@example.org"
RECEIPT = "<received xmlns='urn:xmpp:receipts' id='m1'/>"
MARKER = "<displayed xmlns='urn:xmpp:chat-markers:0' id='m1'/>"


@pytest.mark.parametrize("payload, expected", [
    ("<body>x</body>", {"body"}),
    (RECEIPT, {"receipt"}),
    ("<request xmlns='urn:xmpp:receipts'/><body>x</body>", {"body", "receipt"}),
    (MARKER, {"marker"}),
    ("<markable xmlns='urn:xmpp:chat-markers:0'/>", {"marker"}),
    ("<composing xmlns='http://jabber.org/protocol/chatstates'/><thread>t</thread>",
     {"chat_state"}),
    ("<encrypted xmlns='eu.siacs.conversations.axolotl'/>", {"other"}),
    ("<private xmlns='urn:xmpp:carbons:2'/><no-copy xmlns='urn:xmpp:hints'/>",
     {"private", "no_copy"}),
    ("<received xmlns='urn:xmpp:carbons:2'/>", {"copy"}),
    ("<result xmlns='urn:xmpp:mam:2'/>", {"copy"}),
    ("<no-store xmlns='urn:xmpp:hints'/><no-permanent-store xmlns='urn:xmpp:hints'/>"
     "<store xmlns='urn:xmpp:hints'/>", {"no_store", "no_permanent_store", "store"}),
    ("<stanza-id xmlns='urn:xmpp:sid:0' by='a@b' id='1'/><delay xmlns='urn:xmpp:delay'/>",
     set()),
], ids=lambda v: str(v)[:40])
def test_classify(payload: str, expected: set[str]) -> None:
    content = classify(parse(f"<message>{payload}</message>"))
    flags = {f for f in ("body", "receipt", "marker", "chat_state", "other", "private", "copy",
                         "no_store", "no_permanent_store", "no_copy", "store")
             if getattr(content, f)}
    assert flags == expected
    assert content.chat_state_only == (expected == {"chat_state"})


def test_timestamps_round_trip() -> None:
    assert stamp(0) == "1970-01-01T00:00:00Z"
    assert stamp_us(1_500_000_000_123_456) == "2017-07-14T02:40:00.123456Z"
    assert parse_stamp_us("2017-07-14T02:40:00.123456Z") == 1_500_000_000_123_456
    assert parse_stamp_us("2017-07-14T04:40:00.1234569+02:00") == 1_500_000_000_123_456
    assert parse_stamp("2017-07-14T02:40:00Z") == 1_500_000_000.0
    for bad in ("2017-07-14", "2017-13-14T02:40:00Z", "2017-07-14T02:40:00", "x"):
        with pytest.raises(ValueError):
            parse_stamp_us(bad)


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
