# tests: stanzas/delay.py
"""XEP-0082 date-times (moved here from tests/modules/test_receipts.py with the code),
XEP-0203 <delay/> and XEP-0297 <forwarded/> (stanzas/delay.py)."""
from __future__ import annotations

import pytest
from lxml import etree

from stanzas.delay import (
    delay, delayed_by, forwarded, parse_stamp, parse_stamp_us, stamp, stamp_us)
from tests.harness.match import parse


def test_timestamps_round_trip() -> None:
    assert stamp(0) == "1970-01-01T00:00:00Z"
    assert stamp_us(1_500_000_000_123_456) == "2017-07-14T02:40:00.123456Z"
    assert parse_stamp_us("2017-07-14T02:40:00.123456Z") == 1_500_000_000_123_456
    assert parse_stamp_us("2017-07-14T04:40:00.1234569+02:00") == 1_500_000_000_123_456
    assert parse_stamp("2017-07-14T02:40:00Z") == 1_500_000_000.0
    for bad in ("2017-07-14", "2017-13-14T02:40:00Z", "2017-07-14T02:40:00", "x"):
        with pytest.raises(ValueError):
            parse_stamp_us(bad)


def test_stamps_with_offsets_and_fractions() -> None:
    assert stamp(1.5, micro=True) == "1970-01-01T00:00:01.500000Z"
    assert parse_stamp("1970-01-01T01:00:01.25+01:00") == 1.25
    assert parse_stamp(" 1970-01-01T00:00:00-00:30 ") == 1800.0
    assert parse_stamp_us(stamp_us(42)) == 42
    for bad in ("1970-01-01T00:00:00.Z", "1970-01-01T24:00:00Z", "1970-01-01T00:00:00+1:00"):
        with pytest.raises(ValueError):
            parse_stamp(bad)


def test_delay_element() -> None:
    el = delay(stamp(0), by="example.org")
    assert etree.tostring(el) == (b'<delay xmlns="urn:xmpp:delay" from="example.org" '
                                  b'stamp="1970-01-01T00:00:00Z"/>')
    msg = parse("<message><body>hi</body></message>")
    delay("2017-07-14T02:40:00Z", parent=msg)
    assert msg[-1].tag == "{urn:xmpp:delay}delay" and msg[-1].get("from") is None
    assert not delayed_by(msg, "example.org")
    delay(stamp(0), "example.org", msg)
    assert delayed_by(msg, "example.org") and not delayed_by(msg, "other.example")


def test_forwarded_holds_the_stanza_after_its_delay() -> None:
    msg = parse("<message from='a@example.org/r' to='b@example.org'><body>x</body></message>")
    wrapper = etree.Element("{urn:xmpp:carbons:2}sent")
    fwd = forwarded(msg, when=stamp_us(1_000_000), parent=wrapper)
    assert fwd.getparent() is wrapper
    assert [c.tag for c in fwd] == ["{urn:xmpp:delay}delay", "{jabber:client}message"]
    assert fwd[0].get("stamp") == "1970-01-01T00:00:01.000000Z"
    assert fwd[1] is msg
    bare = forwarded(parse("<message/>"))
    assert bare.tag == "{urn:xmpp:forward:0}forwarded" and len(bare) == 1
