"""XEP-0398 avatar conversion between XEP-0084 (PEP) and XEP-0153 (vCard), on the in-memory
harness."""
from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable

import pytest

from tests.harness.server import HarnessClient, Harness
from tests.modules.contacts import make_contacts
from tests.modules.pep_helpers import (
    MODULES, event_items, field, items, notify, ok, online, publish, result_of)

A, B = "alice@example.org", "bob@example.org"
DATA, METADATA = "urn:xmpp:avatar:data", "urn:xmpp:avatar:metadata"
VCARD = "vcard-temp"
IMAGE = b"\x89PNG\r\n" + bytes(range(200))
DIGEST = hashlib.sha1(IMAGE).hexdigest()
OPEN = field("pubsub#access_model", "open")


@pytest.fixture
def h(make_harness: Callable[..., Harness]) -> Harness:
    return make_harness(modules={**MODULES, "vcard": {}})


def publish_avatar(s: HarnessClient, image: bytes = IMAGE, item_id: str | None = None,
                   options: str = OPEN, mime: str = "image/png") -> None:
    digest = item_id or hashlib.sha1(image).hexdigest()
    data = f"<data xmlns='{DATA}'>{base64.b64encode(image).decode()}</data>"
    ok(result_of(s, publish(DATA, data, digest, options)))
    meta = (f"<metadata xmlns='{METADATA}'><info bytes='{len(image)}' id='{digest}' "
            f"type='{mime}' width='64' height='64'/></metadata>")
    ok(result_of(s, publish(METADATA, meta, digest, options)))


def vcard_photo(s: HarnessClient, of: str = A) -> tuple[str, bytes] | None:
    reply = result_of(s, f"<iq type='get' id='v' to='{of}'><vCard xmlns='{VCARD}'/></iq>")
    if reply.get("type") == "error":
        return None
    photo = reply.find(f"{{{VCARD}}}vCard/{{{VCARD}}}PHOTO")
    if photo is None:
        return None
    return (photo.findtext(f"{{{VCARD}}}TYPE") or "",
            base64.b64decode(photo.findtext(f"{{{VCARD}}}BINVAL") or ""))


def photo_in_presence(s: HarnessClient) -> str:
    s.received()
    s.send("<presence><status>again</status></presence>")
    for p in s.received():
        if p.tag == "{jabber:client}presence" and p.get("from") == str(s.jid):
            return p.findtext("{vcard-temp:x:update}x/{vcard-temp:x:update}photo") or ""
    raise AssertionError("no presence came back")


def test_a_pep_avatar_becomes_the_vcard_photo(h: Harness) -> None:
    make_contacts(h, A, B)
    alice, bob = online(h, A + "/phone"), online(h, B + "/pc")
    ok(result_of(alice, f"<iq type='set' id='v'><vCard xmlns='{VCARD}'><FN>Alice</FN></vCard>"
                        f"</iq>"))
    publish_avatar(alice)
    assert vcard_photo(bob) == ("image/png", IMAGE)
    card = result_of(bob, f"<iq type='get' id='v' to='{A}'><vCard xmlns='{VCARD}'/></iq>")
    assert card.findtext(f"{{{VCARD}}}vCard/{{{VCARD}}}FN") == "Alice"     # the rest stays
    assert photo_in_presence(alice) == DIGEST                              # XEP-0153 hash


def test_only_an_open_avatar_is_copied(h: Harness) -> None:
    alice = online(h, A + "/phone")
    publish_avatar(alice, options="")                     # presence access (the default)
    assert vcard_photo(alice) is None                     # XEP-0398 §8 SHOULD


def test_an_image_that_does_not_match_its_id_is_not_copied(h: Harness) -> None:
    alice = online(h, A + "/phone")
    publish_avatar(alice, item_id="0" * 40)
    assert vcard_photo(alice) is None


def test_disabling_the_avatar_removes_the_photo(h: Harness) -> None:
    alice = online(h, A + "/phone")
    publish_avatar(alice)
    assert vcard_photo(alice) is not None
    ok(result_of(alice, publish(METADATA, f"<metadata xmlns='{METADATA}'/>", "none")))
    assert vcard_photo(alice) is None
    assert photo_in_presence(alice) == ""


def test_an_avatar_too_large_for_the_vcard_stays_in_pep(
        make_harness: Callable[..., Harness]) -> None:
    h = make_harness(modules={**MODULES, "vcard": {"max_size": "2 KiB"}})
    alice = online(h, A + "/phone")
    big = bytes(range(256)) * 12
    publish_avatar(alice, big)
    assert vcard_photo(alice) is None
    got = ok(result_of(alice, items(DATA, A)))
    assert got.find(f".//{{{DATA}}}data") is not None


def test_a_vcard_photo_is_published_as_a_pep_avatar(h: Harness) -> None:
    make_contacts(h, A, B)
    alice = online(h, A + "/old-client")
    bob = online(h, B + "/pc", notify(METADATA))
    b64 = base64.b64encode(IMAGE).decode()
    ok(result_of(alice, f"<iq type='set' id='v'><vCard xmlns='{VCARD}'><FN>Alice</FN><PHOTO>"
                        f"<TYPE>image/png</TYPE><BINVAL>{b64}</BINVAL></PHOTO></vCard></iq>"))
    assert event_items(bob) == [(A, METADATA, DIGEST)]                    # §3.2 SHOULD notify
    meta = ok(result_of(bob, items(METADATA, A)))
    info = meta.find(f".//{{{METADATA}}}info")
    assert info is not None and (info.get("id"), info.get("type"), info.get("bytes")) == \
        (DIGEST, "image/png", str(len(IMAGE)))
    data = ok(result_of(bob, items(DATA, A, inner=f"<item id='{DIGEST}'/>")))
    assert base64.b64decode(data.findtext(f".//{{{DATA}}}data") or "") == IMAGE
    # no loop: the vCard is what the client set
    assert vcard_photo(bob) == ("image/png", IMAGE)
    # the same vCard again publishes nothing new
    ok(result_of(alice, f"<iq type='set' id='v2'><vCard xmlns='{VCARD}'><FN>A.</FN><PHOTO>"
                        f"<TYPE>image/png</TYPE><BINVAL>{b64}</BINVAL></PHOTO></vCard></iq>"))
    assert event_items(bob) == []


def test_a_vcard_without_photo_leaves_pep_alone(h: Harness) -> None:
    alice = online(h, A + "/phone")
    ok(result_of(alice, f"<iq type='set' id='v'><vCard xmlns='{VCARD}'><FN>A</FN></vCard></iq>"))
    reply = result_of(alice, items(METADATA, A))
    assert reply.get("type") == "error"                    # no node was made


def test_conversion_is_advertised_only_with_the_vcard_module(
        make_harness: Callable[..., Harness]) -> None:
    def features(h: Harness) -> set[str | None]:
        s = online(h, A + "/x")
        reply = ok(result_of(s, f"<iq type='get' id='d' to='{A}'><query xmlns="
                                f"'http://jabber.org/protocol/disco#info'/></iq>"))
        return {f.get("var") for f in reply.iter("{http://jabber.org/protocol/disco#info}"
                                                  "feature")}
    assert "urn:xmpp:pep-vcard-conversion:0" in features(
        make_harness(modules={**MODULES, "vcard": {}}))
    assert "urn:xmpp:pep-vcard-conversion:0" not in features(make_harness(modules=MODULES))
    assert "urn:xmpp:pep-vcard-conversion:0" not in features(make_harness(
        modules={**MODULES, "vcard": {}, "pep": {"vcard_conversion": False}}))
