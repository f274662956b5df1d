"""XEP-0054 vcard-temp and the XEP-0153 hash in presence (XEP-0398 §4 server rules) on the
in-memory harness."""
from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable

import pytest
from lxml import etree

from tests.harness.server import HarnessClient, Harness, parse, resolve
from xmppd import hooks
from xmppd.hooks import StanzaEvent

MakeHarness = Callable[..., Harness]
SE = "urn:ietf:params:xml:ns:xmpp-stanzas"
IMAGE = bytes(range(256)) * 3
IMAGE_HASH = hashlib.sha1(IMAGE).hexdigest()
B64 = base64.b64encode(IMAGE).decode()
CARD = ("<vCard xmlns='vcard-temp'><FN>Juliet Capulet</FN><NICKNAME>jc</NICKNAME>"
        f"<PHOTO><TYPE>image/png</TYPE><BINVAL>{B64}</BINVAL></PHOTO></vCard>")
SERVICE_UNAVAILABLE = f"<error type='cancel'><service-unavailable xmlns='{SE}'/></error>"


@pytest.fixture
def h(make_harness: MakeHarness) -> Harness:
    return make_harness(modules={"disco": {}, "vcard": {}})


def publish(s: HarnessClient, card: str = CARD, id: str = "v1", to: str = "") -> etree._Element:
    target = f" to='{to}'" if to else ""
    s.send(f"<iq type='set' id='{id}'{target}>{card}</iq>")
    (reply,) = s.received()
    return reply


def broadcast(h: Harness, s: HarnessClient, xml: str = "<presence/>") -> etree._Element:
    """Run presence_broadcast as the presence module does; returns the (stamped) presence."""
    el = parse(xml)
    el.set("from", str(s.jid))
    ev = StanzaEvent(el, s.jid, s.jid.bare, s, mutable=True)
    resolve(h.server.hosts[s.jid.domain].hooks.run(hooks.presence_broadcast, ev))
    return el


def photo_of(presence: etree._Element) -> str | None:
    """The <photo/> text ("" if empty), or None without x/photo."""
    photo = presence.find("{vcard-temp:x:update}x/{vcard-temp:x:update}photo")
    return None if photo is None else (photo.text or "")


# -- XEP-0054 ---------------------------------------------------------------------------------

def test_feature_in_server_and_account_disco(h: Harness) -> None:
    alice = h.login("alice@example.org/phone")
    for target in ("example.org", "alice@example.org"):
        alice.send(f"<iq type='get' id='d1' to='{target}'>"
                   "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
        got = alice.received()[0]
        assert "vcard-temp" in [f.get("var") for f in got.iter(
            "{http://jabber.org/protocol/disco#info}feature")], target


def test_own_vcard_before_any_is_empty(h: Harness) -> None:
    alice = h.login("alice@example.org/phone")
    alice.send("<iq type='get' id='v1'><vCard xmlns='vcard-temp'/></iq>")
    alice.expect("<iq type='result' id='v1' from='alice@example.org' "
                 "to='alice@example.org/phone'><vCard xmlns='vcard-temp'/></iq>")


def test_publish_then_read_own_with_and_without_to(h: Harness) -> None:
    alice = h.login("alice@example.org/phone")
    reply = publish(alice)
    assert reply.get("type") == "result" and reply.get("id") == "v1" and len(reply) == 0
    alice.send("<iq type='get' id='v2'><vCard xmlns='vcard-temp'/></iq>")
    alice.expect("<iq type='result' id='v2' from='alice@example.org' "
                 f"to='alice@example.org/phone'>{CARD}</iq>")
    alice.send("<iq type='get' id='v3' to='alice@example.org'><vCard xmlns='vcard-temp'/></iq>")
    alice.expect("<iq type='result' id='v3' from='alice@example.org' "
                 f"to='alice@example.org/phone'>{CARD}</iq>")
    assert publish(alice, id="v4", to="alice@example.org").get("type") == "result"


def test_publish_replaces_the_whole_vcard(h: Harness) -> None:
    alice = h.login("alice@example.org/phone")
    publish(alice)
    publish(alice, "<vCard xmlns='vcard-temp'><DESC>only this</DESC></vCard>", id="v2")
    alice.send("<iq type='get' id='v3'><vCard xmlns='vcard-temp'/></iq>")
    alice.expect("<iq type='result' id='v3' from='alice@example.org' to='alice@example.org/phone'>"
                 "<vCard xmlns='vcard-temp'><DESC>only this</DESC></vCard></iq>")


def test_contacts_read_it_from_the_server_while_the_owner_is_offline(h: Harness) -> None:
    alice = h.login("alice@example.org/phone")
    publish(alice)
    alice.close()
    bob = h.login("bob@example.org/pc")
    bob.send("<iq type='get' id='v1' to='alice@example.org'><vCard xmlns='vcard-temp'/></iq>")
    bob.expect("<iq type='result' id='v1' from='alice@example.org' to='bob@example.org/pc'>"
               f"{CARD}</iq>")


def test_no_vcard_and_no_user_give_the_same_error(h: Harness) -> None:
    h.user("alice@example.org")
    bob = h.login("bob@example.org/pc")
    for target in ("alice@example.org", "nobody@example.org"):       # §3.3: same condition
        bob.send(f"<iq type='get' id='v1' to='{target}'><vCard xmlns='vcard-temp'/></iq>")
        bob.expect(f"<iq type='error' id='v1' from='{target}' to='bob@example.org/pc'>"
                   f"<vCard xmlns='vcard-temp'/>{SERVICE_UNAVAILABLE}</iq>")


def test_setting_someone_elses_vcard_is_forbidden(h: Harness) -> None:
    h.user("alice@example.org")
    bob = h.login("bob@example.org/pc")
    reply = publish(bob, to="alice@example.org")
    assert reply.get("type") == "error"
    assert reply.find(f"{{jabber:client}}error/{{{SE}}}forbidden") is not None
    bob.send("<iq type='get' id='v2' to='alice@example.org'><vCard xmlns='vcard-temp'/></iq>")
    assert bob.received()[0].get("type") == "error"          # nothing was stored


def test_size_limit(make_harness: MakeHarness) -> None:
    h = make_harness(modules={"vcard": {"max_size": "2 KiB"}})
    alice = h.login("alice@example.org/phone")
    big = f"<vCard xmlns='vcard-temp'><DESC>{'x' * 2100}</DESC></vCard>"
    reply = publish(alice, big)
    assert reply.get("type") == "error"
    error = reply.find("{jabber:client}error")
    assert error is not None and error.get("type") == "modify"
    assert error.find(f"{{{SE}}}not-acceptable") is not None
    ok = f"<vCard xmlns='vcard-temp'><DESC>{'x' * 1900}</DESC></vCard>"
    assert publish(alice, ok, id="v2").get("type") == "result"


def test_photo_that_is_not_base64_is_bad_request(h: Harness) -> None:
    alice = h.login("alice@example.org/phone")
    reply = publish(alice, "<vCard xmlns='vcard-temp'><PHOTO><BINVAL>not*base64!</BINVAL>"
                           "</PHOTO></vCard>")
    assert reply.find(f"{{jabber:client}}error/{{{SE}}}bad-request") is not None
    alice.send("<iq type='get' id='v2'><vCard xmlns='vcard-temp'/></iq>")
    alice.expect("<iq type='result' id='v2' from='alice@example.org' "
                 "to='alice@example.org/phone'><vCard xmlns='vcard-temp'/></iq>")


def test_publishing_an_empty_vcard_deletes_it(h: Harness) -> None:
    alice = h.login("alice@example.org/phone")
    publish(alice)
    publish(alice, "<vCard xmlns='vcard-temp'/>", id="v2")
    bob = h.login("bob@example.org/pc")
    bob.send("<iq type='get' id='v3' to='alice@example.org'><vCard xmlns='vcard-temp'/></iq>")
    assert bob.received()[0].get("type") == "error"
    assert photo_of(broadcast(h, alice)) == ""


def test_vcard_survives_the_session_and_goes_with_the_account(h: Harness) -> None:
    alice = h.login("alice@example.org/phone")
    publish(alice)
    alice.close()
    alice = h.login("alice@example.org/laptop")
    alice.send("<iq type='get' id='v2'><vCard xmlns='vcard-temp'/></iq>")
    alice.expect("<iq type='result' id='v2' from='alice@example.org' "
                 f"to='alice@example.org/laptop'>{CARD}</iq>")
    assert resolve(h.server.accounts.delete("alice", "example.org")) is True
    alice = h.login("alice@example.org/phone")
    alice.send("<iq type='get' id='v3'><vCard xmlns='vcard-temp'/></iq>")
    alice.expect("<iq type='result' id='v3' from='alice@example.org' "
                 "to='alice@example.org/phone'><vCard xmlns='vcard-temp'/></iq>")
    assert photo_of(broadcast(h, alice)) == ""


# -- XEP-0153 in presence ---------------------------------------------------------------------

def test_presence_gets_the_hash_of_the_decoded_photo(h: Harness) -> None:
    alice = h.login("alice@example.org/phone")
    wrapped = "\n".join(B64[i:i + 76] for i in range(0, len(B64), 76))   # §4.6: whitespace
    publish(alice, f"<vCard xmlns='vcard-temp'><PHOTO><TYPE>image/png</TYPE>"
                   f"<BINVAL>\n{wrapped}\n</BINVAL></PHOTO></vCard>")
    stamped = broadcast(h, alice, "<presence><show>away</show></presence>")
    assert etree.tostring(stamped, encoding=str) == (
        '<presence xmlns="jabber:client" from="alice@example.org/phone"><show>away</show>'
        f'<x xmlns="vcard-temp:x:update"><photo>{IMAGE_HASH}</photo></x></presence>')


def test_without_a_photo_presence_says_no_avatar(h: Harness) -> None:
    alice = h.login("alice@example.org/phone")
    assert photo_of(broadcast(h, alice)) == ""                       # no vCard at all
    publish(alice, "<vCard xmlns='vcard-temp'><FN>A</FN></vCard>")
    assert photo_of(broadcast(h, alice)) == ""
    publish(alice, "<vCard xmlns='vcard-temp'><PHOTO><EXTVAL>https://x/y.png</EXTVAL>"
                   "</PHOTO></vCard>", id="v2")                     # no image data to hash
    assert photo_of(broadcast(h, alice)) == ""


@pytest.mark.parametrize("client_says, server_says", [
    ("", IMAGE_HASH),                                                 # no <x/>: added
    ("<x xmlns='vcard-temp:x:update'/>", IMAGE_HASH),                 # "MUST be overwritten"
    ("<x xmlns='vcard-temp:x:update'><photo/></x>", ""),              # "doesn't touch"
    ("<x xmlns='vcard-temp:x:update'><photo>0000</photo></x>", IMAGE_HASH),   # MAY: we do
    (f"<x xmlns='vcard-temp:x:update'><photo>{IMAGE_HASH.upper()}</photo></x>",
     IMAGE_HASH.upper()),                                            # the same hash: kept
])
def test_xep_0398_rules_for_what_the_client_sent(h: Harness, client_says: str,
                                                  server_says: str) -> None:
    alice = h.login("alice@example.org/phone")
    publish(alice)
    stamped = broadcast(h, alice, f"<presence>{client_says}</presence>")
    assert photo_of(stamped) == server_says
    assert len(stamped.findall("{vcard-temp:x:update}x")) == 1


def test_unavailable_presence_is_left_alone(h: Harness) -> None:
    alice = h.login("alice@example.org/phone")
    publish(alice)
    assert photo_of(broadcast(h, alice, "<presence type='unavailable'/>")) is None


def test_new_photo_is_in_the_next_presence_and_nothing_is_resent(h: Harness) -> None:
    alice = h.login("alice@example.org/phone")
    laptop = h.login("alice@example.org/laptop")
    bob = h.login("bob@example.org/pc")
    assert photo_of(broadcast(h, alice)) == ""
    publish(alice)
    laptop.expect_nothing()          # XEP-0398 §5.1: the server does not resend presence
    bob.expect_nothing()
    assert photo_of(broadcast(h, laptop)) == IMAGE_HASH              # any resource, at once


def test_hash_of_a_user_whose_sessions_all_ended_is_not_kept(h: Harness) -> None:
    alice = h.login("alice@example.org/phone")
    publish(alice)
    vcard = h.server.hosts["example.org"].modules["vcard"]
    alice.close()
    assert not vcard.hashes                                          # type: ignore[attr-defined]
    alice = h.login("alice@example.org/phone")
    assert photo_of(broadcast(h, alice)) == IMAGE_HASH               # read back from storage


def test_contacts_get_the_hash_in_broadcasts_and_probe_answers(
        make_harness: MakeHarness) -> None:
    from tests.modules.contacts import MODULES, make_contacts
    h = make_harness(modules={**MODULES, "vcard": {}})
    make_contacts(h, "alice@example.org", "bob@example.org")
    alice = h.login("alice@example.org/phone", available=False)
    publish(alice)
    bob = h.login("bob@example.org/pc")
    bob.received()
    alice.send("<presence><show>chat</show></presence>")       # a client ignorant of avatars
    bob.expect("<presence from='alice@example.org/phone' to='bob@example.org'><show>chat</show>"
               f"<x xmlns='vcard-temp:x:update'><photo>{IMAGE_HASH}</photo></x></presence>")
    make_contacts(h, "alice@example.org", "carol@example.org")
    carol = h.login("carol@example.org/pc", available=False)
    carol.send("<presence/>")                                  # probes alice: same presence
    answers = [p for p in carol.received() if p.get("from") == "alice@example.org/phone"]
    assert [photo_of(p) for p in answers] == [IMAGE_HASH]
