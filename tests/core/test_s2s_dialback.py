# tests: xmppd/s2s/dialback.py
"""Dialback keys (XEP-0185 §3 / XEP-0220 §2.1.1 vector) and elements."""
from __future__ import annotations

from lxml import etree

from stanzas import ns
from stanzas.errors import StanzaError
from xmppd.s2s.dialback import DialbackKeys, element, error_condition


def test_key_matches_the_xep_example() -> None:
    keys = DialbackKeys(b"s3cr3tf0rd14lb4ck")
    key = keys.key("montague.example", "capulet.example", "D60000229F")
    assert key == "b4835385f37fe2895af6c196b59097b16862406db80559900d96bf6fa7d23df3"
    assert keys.check(key, "montague.example", "capulet.example", "D60000229F")
    assert not keys.check(key, "montague.example", "capulet.example", "D60000229G")
    assert not keys.check(key, "capulet.example", "montague.example", "D60000229F")


def test_each_process_has_its_own_secret() -> None:
    assert DialbackKeys().key("a", "b", "c") != DialbackKeys().key("a", "b", "c")


def parse(data: bytes) -> etree._Element:
    return etree.fromstring(b"<r xmlns:db='%s'>%s</r>" % (ns.DIALBACK.encode(), data))[0]


def test_elements_use_the_db_prefix_and_escape() -> None:
    data = element("verify", from_="a.example", to="b.example", stream_id="x'y", key="k<")
    assert data.startswith(b"<db:verify ")
    el = parse(data)
    assert (el.get("id"), el.text) == ("x'y", "k<")


def test_errors_carry_a_stanza_condition() -> None:
    el = parse(element("result", from_="a", to="b", type_="error",
                       error=StanzaError.item_not_found()))
    assert el.get("type") == "error" and error_condition(el) == "item-not-found"
    assert error_condition(parse(element("result", from_="a", to="b", type_="error"))) == \
        "undefined-condition"
