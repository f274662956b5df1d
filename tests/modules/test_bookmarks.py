"""XEP-0402 bookmarks in step with XEP-0049 private storage and the XEP-0048 PEP node, on the
in-memory harness."""
from __future__ import annotations

from collections.abc import Callable

import pytest
from lxml import etree

from tests.harness.server import HarnessClient, Harness
from tests.modules.pep_helpers import (
    MODULES, OWNER, PUBSUB, event_items, field, items, notify, ok, online, publish, result_of)

A = "alice@example.org"
NS = "urn:xmpp:bookmarks:1"
LEGACY = "storage:bookmarks"
PRIVATE = "jabber:iq:private"
ROOM1, ROOM2 = "council@conference.underhill.org", "orchard@conference.shakespeare.lit"
OPTIONS = (field("pubsub#persist_items", "true") + field("pubsub#max_items", "max") +
           field("pubsub#send_last_published_item", "never") +
           field("pubsub#access_model", "whitelist"))


@pytest.fixture
def h(make_harness: Callable[..., Harness]) -> Harness:
    return make_harness(modules={**MODULES, "private": {}, "bookmarks": {}})


def conference(name: str, nick: str = "", autojoin: str = "true", ext: str = "") -> str:
    inner = (f"<nick>{nick}</nick>" if nick else "") + \
        (f"<extensions>{ext}</extensions>" if ext else "")
    return f"<conference xmlns='{NS}' name='{name}' autojoin='{autojoin}'>{inner}</conference>"


def private_set(s: HarnessClient, body: str) -> None:
    ok(result_of(s, f"<iq type='set' id='ps'><query xmlns='{PRIVATE}'>"
                    f"<storage xmlns='{LEGACY}'>{body}</storage></query></iq>"))


def private_get(s: HarnessClient) -> etree._Element:
    reply = ok(result_of(s, f"<iq type='get' id='pg'><query xmlns='{PRIVATE}'>"
                            f"<storage xmlns='{LEGACY}'/></query></iq>"))
    storage = reply.find(f"{{{PRIVATE}}}query/{{{LEGACY}}}storage")
    assert storage is not None, etree.tostring(reply)
    return storage


def rooms(storage: etree._Element) -> dict[str, tuple[str, str, str]]:
    return {c.get("jid") or "": (c.get("name") or "", c.get("autojoin") or "",
                                 c.findtext(f"{{{LEGACY}}}nick") or "")
            for c in storage.findall(f"{{{LEGACY}}}conference")}


def native(s: HarnessClient) -> dict[str, etree._Element]:
    reply = ok(result_of(s, items(NS, A)))
    return {i.get("id") or "": i[0] for i in reply.iter(f"{{{PUBSUB}}}item")}


def test_bookmarks_published_natively_are_seen_through_private_storage(h: Harness) -> None:
    alice = online(h, A + "/new")
    ok(result_of(alice, publish(NS, conference("Council of Oberon", "Puck"), ROOM1, OPTIONS)))
    ok(result_of(alice, publish(NS, conference("The Orchard", autojoin="false",
                                               ext="<state xmlns='urn:client' min='1'/>"),
                                ROOM2, OPTIONS)))
    old = h.login(A + "/old")
    storage = private_get(old)
    assert rooms(storage) == {ROOM1: ("Council of Oberon", "true", "Puck"),
                              ROOM2: ("The Orchard", "false", "")}
    orchard = [c for c in storage if c.get("jid") == ROOM2][0]
    assert orchard.find("{urn:client}state") is not None        # extensions travel along


def test_private_storage_bookmarks_become_native_ones(h: Harness) -> None:
    new = online(h, A + "/new", notify(NS))
    old = h.login(A + "/old")
    private_set(old, f"<conference jid='{ROOM1}' name='Council' autojoin='1'><nick>Puck</nick>"
                     f"<password>pw</password></conference>"
                     f"<url name='Site' url='https://example.org/'/>")
    assert event_items(new) == [(A, NS, ROOM1)]
    got = native(new)
    assert list(got) == [ROOM1]
    room = got[ROOM1]
    assert (room.get("name"), room.get("autojoin"), room.findtext(f"{{{NS}}}nick"),
            room.findtext(f"{{{NS}}}password")) == ("Council", "true", "Puck", "pw")
    # XEP-0402 §4 / XEP-0223: a private, persistent node with no push on login
    form = ok(result_of(new, f"<iq type='get' id='c'><pubsub xmlns='{OWNER}'>"
                             f"<configure node='{NS}'/></pubsub></iq>"))
    values = {f.get("var"): [v.text for v in f.findall("{jabber:x:data}value")]
              for f in form.iter("{jabber:x:data}field")}
    assert values["pubsub#access_model"] == ["whitelist"]
    assert values["pubsub#max_items"] == ["max"]
    assert values["pubsub#send_last_published_item"] == ["never"]
    # the URL bookmark stays in private storage
    storage = private_get(old)
    assert [u.get("url") for u in storage.findall(f"{{{LEGACY}}}url")] == ["https://example.org/"]
    assert rooms(storage) == {ROOM1: ("Council", "true", "Puck")}


def test_a_legacy_rewrite_changes_only_what_changed(h: Harness) -> None:
    new = online(h, A + "/new", notify(NS))
    old = h.login(A + "/old")
    private_set(old, f"<conference jid='{ROOM1}' name='One'/><conference jid='{ROOM2}' "
                     f"name='Two'/>")
    assert sorted(event_items(new)) == [(A, NS, ROOM1), (A, NS, ROOM2)]
    private_set(old, f"<conference jid='{ROOM1}' name='One'/><conference jid='{ROOM2}' "
                     f"name='Two!'/>")
    assert event_items(new) == [(A, NS, ROOM2)]          # SHOULD NOT notify unchanged items
    private_set(old, f"<conference jid='{ROOM2}' name='Two!'/>")
    assert event_items(new) == [(A, NS, "retract:" + ROOM1)]
    assert list(native(new)) == [ROOM2]
    private_set(old, "<conference jid='not a jid@@'/>")   # invalid rooms are skipped
    assert list(native(new)) == []


def test_extensions_survive_a_client_that_does_not_know_them(h: Harness) -> None:
    new = online(h, A + "/new")
    ok(result_of(new, publish(NS, conference("One", ext="<state xmlns='urn:client'/>"), ROOM1,
                              OPTIONS)))
    old = h.login(A + "/old")
    private_set(old, f"<conference jid='{ROOM1}' name='Renamed' autojoin='true'/>")
    room = native(new)[ROOM1]
    assert room.get("name") == "Renamed"
    assert room.find(f"{{{NS}}}extensions/{{urn:client}}state") is not None


def test_retracting_natively_removes_from_private_storage(h: Harness) -> None:
    new = online(h, A + "/new")
    ok(result_of(new, publish(NS, conference("One"), ROOM1, OPTIONS)))
    ok(result_of(new, f"<iq type='set' id='r'><pubsub xmlns='{PUBSUB}'><retract node='{NS}' "
                      f"notify='true'><item id='{ROOM1}'/></retract></pubsub></iq>"))
    assert rooms(private_get(h.login(A + "/old"))) == {}


def test_the_xep_0048_pep_node_follows_both_ways(h: Harness) -> None:
    legacy_pep = online(h, A + "/pep48", notify(LEGACY))
    new = online(h, A + "/new", notify(NS))
    ok(result_of(legacy_pep, publish(LEGACY, f"<storage xmlns='{LEGACY}'><conference "
                                             f"jid='{ROOM1}' name='One' autojoin='true'/>"
                                             f"</storage>", "current", OPTIONS)))
    assert event_items(new) == [(A, NS, ROOM1)]
    legacy_pep.received()
    ok(result_of(new, publish(NS, conference("Two"), ROOM2, OPTIONS)))
    assert event_items(legacy_pep) == [(A, LEGACY, "current")]
    reply = ok(result_of(legacy_pep, items(LEGACY, A)))
    storage = reply.find(f".//{{{LEGACY}}}storage")
    assert storage is not None and set(rooms(storage)) == {ROOM1, ROOM2}


def test_compat_is_advertised(h: Harness) -> None:
    alice = online(h, A + "/x")
    reply = ok(result_of(alice, f"<iq type='get' id='d' to='{A}'><query xmlns="
                                f"'http://jabber.org/protocol/disco#info'/></iq>"))
    features = {f.get("var") for f in reply.iter("{http://jabber.org/protocol/disco#info}feature")}
    assert {NS + "#compat", NS + "#compat-pep", PUBSUB + "#publish-options"} <= features
