"""XEP-0163 PEP over the XEP-0060 subset, on the in-memory harness: publish/retract/items,
publish-options, node configuration, access models and their errors, notifications filtered
by caps, last published items, explicit subscriptions, disco."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from lxml import etree

from modules.pep import FEATURES
from tests.harness.server import Harness, resolve
from tests.modules.contacts import make_contacts, put
from tests.modules.pep_helpers import (
    EVENT, MODULES, MOOD, OWNER, PUBSUB, TUNE, advertise, check_error, event_items, field,
    items, notify, ok, online, publish, result_of, tune)
from stanzas.jid import JID

A, B, C = "alice@example.org", "bob@example.org", "carol@example.org"
_P = "{%s}" % PUBSUB


@pytest.fixture
def h(make_harness: Callable[..., Harness]) -> Harness:
    return make_harness(modules=dict(MODULES))


def ids_of(reply: etree._Element) -> list[str]:
    got = reply.find(f"{_P}pubsub/{_P}items")
    assert got is not None, etree.tostring(reply)
    return [i.get("id") or "" for i in got.findall(_P + "item")]


def config_of(h: Harness, owner: Any, node: str) -> dict[str, list[str]]:
    reply = ok(result_of(owner, f"<iq type='get' id='c'><pubsub xmlns='{OWNER}'>"
                                f"<configure node='{node}'/></pubsub></iq>"))
    x = reply.find(f"{{{OWNER}}}pubsub/{{{OWNER}}}configure/{{jabber:x:data}}x")
    assert x is not None
    return {f.get("var") or "": [v.text or "" for v in f.findall("{jabber:x:data}value")]
            for f in x.findall("{jabber:x:data}field")}


# -- publish and retrieve ------------------------------------------------------------------

def test_publish_auto_creates_the_node_and_the_owner_reads_it(h: Harness) -> None:
    alice = online(h, A + "/phone")
    reply = ok(result_of(alice, publish(TUNE, tune("Finzi"), "t1")))
    pub = reply.find(f"{_P}pubsub/{_P}publish")
    assert pub is not None and pub.get("node") == TUNE
    assert [i.get("id") for i in pub] == ["t1"]
    got = ok(result_of(alice, items(TUNE, A)))
    assert ids_of(got) == ["t1"]
    assert got.findtext(f".//{{{TUNE}}}artist") == "Finzi"


def test_publish_without_an_id_gets_one(h: Harness) -> None:
    alice = online(h, A + "/phone")
    reply = ok(result_of(alice, publish(TUNE, tune("x"), None)))
    item_id = reply.find(f"{_P}pubsub/{_P}publish/{_P}item").get("id")  # type: ignore[union-attr]
    assert item_id and len(item_id) >= 16
    assert ids_of(ok(result_of(alice, items(TUNE, A)))) == [item_id]


def test_default_node_keeps_the_last_item_and_republishing_replaces(h: Harness) -> None:
    alice = online(h, A + "/phone")
    for n in ("1", "2", "2"):
        ok(result_of(alice, publish(TUNE, tune(f"v{n}"), n)))
    got = ok(result_of(alice, items(TUNE, A)))
    assert ids_of(got) == ["2"]                   # XEP-0163 §5 default: max_items 1


def test_max_items_and_max_keep_the_newest(make_harness: Callable[..., Harness]) -> None:
    h = make_harness(modules={**MODULES, "pep": {"max_items_per_node": 4}})
    alice = online(h, A + "/phone")
    for n in range(5):
        ok(result_of(alice, publish("n3", tune(str(n)), str(n),
                                    field("pubsub#max_items", "3"))))
        ok(result_of(alice, publish("nmax", tune(str(n)), str(n),
                                    field("pubsub#max_items", "max"))))
    assert ids_of(ok(result_of(alice, items("n3", A)))) == ["2", "3", "4"]
    assert ids_of(ok(result_of(alice, items("nmax", A)))) == ["1", "2", "3", "4"]  # server max
    check_error(result_of(alice, publish("n9", tune("x"), "x", field("pubsub#max_items", "9"))),
                "not-acceptable")


def test_items_by_id_and_most_recent(h: Harness) -> None:
    alice = online(h, A + "/phone")
    for n in "abcd":
        ok(result_of(alice, publish("list", tune(n), n, field("pubsub#max_items", "max"))))
    assert ids_of(ok(result_of(alice, items("list", A, attrs=" max_items='2'")))) == ["c", "d"]
    assert ids_of(ok(result_of(alice, items("list", A, inner="<item id='d'/><item id='zz'/>"
                                                               "<item id='a'/>")))) == ["a", "d"]
    check_error(result_of(alice, items("list", A, attrs=" max_items='0'")), "bad-request")
    check_error(result_of(alice, items("list", A, attrs=" max_items='x'")), "bad-request")


def test_items_of_an_absent_node_is_item_not_found(h: Harness) -> None:
    alice = online(h, A + "/phone")
    check_error(result_of(alice, items("nope", A)), "item-not-found", kind="cancel")
    check_error(result_of(alice, f"<iq type='get' id='i' to='{A}'><pubsub xmlns='{PUBSUB}'>"
                                 f"<items/></pubsub></iq>"), "bad-request", "nodeid-required")


@pytest.mark.parametrize("request_xml, condition, app", [
    (f"<iq type='set' id='p'><pubsub xmlns='{PUBSUB}'><publish><item>{tune('x')}</item>"
     f"</publish></pubsub></iq>", "bad-request", "nodeid-required"),
    (publish(TUNE, None), "bad-request", "item-required"),                          # type: ignore[arg-type]
    (publish(TUNE, ""), "bad-request", "payload-required"),
    (publish(TUNE, tune("a") + tune("b")), "bad-request", "invalid-payload"),
    (f"<iq type='set' id='p'><pubsub xmlns='{PUBSUB}'><publish node='{TUNE}'>"
     f"<item id='1'>{tune('a')}</item><item id='2'>{tune('b')}</item></publish></pubsub></iq>",
     "bad-request", "invalid-payload"),
    (publish("x" * 256, tune("a")), "not-acceptable", None),
    (publish(TUNE, tune("a"), "i" * 1024), "not-acceptable", None),
    (f"<iq type='set' id='p'><pubsub xmlns='{PUBSUB}'/></iq>", "bad-request", None),
    (f"<iq type='set' id='p'><pubsub xmlns='{PUBSUB}'><frobnicate/></pubsub></iq>",
     "bad-request", None),
])
def test_bad_publish_requests(h: Harness, request_xml: str, condition: str,
                              app: str | None) -> None:
    alice = online(h, A + "/phone")
    check_error(result_of(alice, request_xml), condition, app)
    check_error(result_of(alice, items(TUNE, A)), "item-not-found")     # nothing was created


def test_payload_too_big(make_harness: Callable[..., Harness]) -> None:
    h = make_harness(modules={**MODULES, "pep": {"max_payload_size": "1 KiB"}})
    alice = online(h, A + "/phone")
    check_error(result_of(alice, publish(TUNE, tune("x" * 1100))), "not-acceptable",
                "payload-too-big", kind="modify")
    ok(result_of(alice, publish(TUNE, tune("x" * 900))))


def test_only_the_owner_publishes_and_manages(h: Harness) -> None:
    make_contacts(h, A, B)
    alice, bob = online(h, A + "/phone"), online(h, B + "/pc")
    ok(result_of(alice, publish(TUNE, tune("x"))))
    check_error(result_of(bob, publish(TUNE, tune("y"), to=A)), "forbidden", kind="auth")
    for action in (f"<retract node='{TUNE}'><item id='1'/></retract>",
                   f"<create node='other'/>"):
        check_error(result_of(bob, f"<iq type='set' id='x' to='{A}'><pubsub xmlns='{PUBSUB}'>"
                                   f"{action}</pubsub></iq>"), "forbidden")
    for action, kind in ((f"<configure node='{TUNE}'/>", "get"), (f"<purge node='{TUNE}'/>", "set"),
                         (f"<delete node='{TUNE}'/>", "set"), ("<default/>", "get")):
        check_error(result_of(bob, f"<iq type='{kind}' id='x' to='{A}'><pubsub xmlns='{OWNER}'>"
                                   f"{action}</pubsub></iq>"), "forbidden")
    assert ids_of(ok(result_of(bob, items(TUNE, A)))) == ["1"]


def test_too_many_nodes(make_harness: Callable[..., Harness]) -> None:
    h = make_harness(modules={**MODULES, "pep": {"max_nodes": 2}})
    alice = online(h, A + "/phone")
    ok(result_of(alice, publish("a", tune("x"))))
    ok(result_of(alice, publish("b", tune("x"))))
    check_error(result_of(alice, publish("c", tune("x"))), "not-allowed")
    check_error(result_of(alice, f"<iq type='set' id='c'><pubsub xmlns='{PUBSUB}'>"
                                 f"<create node='c'/></pubsub></iq>"), "not-allowed")
    ok(result_of(alice, publish("a", tune("y"))))              # existing nodes still work


# -- publish-options (XEP-0060 §7.1.5) -------------------------------------------------------

def test_publish_options_configure_a_new_node(h: Harness) -> None:
    alice = online(h, A + "/phone")
    ok(result_of(alice, publish("priv", tune("x"), "1",
                                field("pubsub#access_model", "whitelist") +
                                field("pubsub#persist_items", "true") +
                                field("pubsub#max_items", "max") +
                                field("pubsub#send_last_published_item", "never"))))
    got = config_of(h, alice, "priv")
    assert got["pubsub#access_model"] == ["whitelist"]
    assert got["pubsub#max_items"] == ["max"]
    assert got["pubsub#persist_items"] == ["1"]
    assert got["pubsub#send_last_published_item"] == ["never"]


def test_unmet_precondition_is_a_conflict(h: Harness) -> None:
    alice = online(h, A + "/phone")
    ok(result_of(alice, publish(TUNE, tune("x"))))                  # default: presence
    check_error(result_of(alice, publish(TUNE, tune("y"), "2",
                                         field("pubsub#access_model", "open"))),
                "conflict", "precondition-not-met", kind="cancel")
    assert ids_of(ok(result_of(alice, items(TUNE, A)))) == ["1"]     # not published
    # met preconditions, values compared after normalisation ("1" is "true")
    ok(result_of(alice, publish(TUNE, tune("y"), "2", field("pubsub#access_model", "presence")
                                + field("pubsub#persist_items", "1"))))
    assert ids_of(ok(result_of(alice, items(TUNE, A)))) == ["2"]


@pytest.mark.parametrize("options, condition", [
    (field("pubsub#item_expire", "60"), "not-acceptable"),                # unknown: refused
    (field("pubsub#access_model", "authorize"), "not-acceptable"),
    (field("pubsub#persist_items", "maybe"), "not-acceptable"),
    (field("pubsub#publish_model", "open"), "not-acceptable"),
])
def test_bad_publish_options(h: Harness, options: str, condition: str) -> None:
    alice = online(h, A + "/phone")
    check_error(result_of(alice, publish(TUNE, tune("x"), "1", options)), condition)
    check_error(result_of(alice, items(TUNE, A)), "item-not-found")


def test_publish_options_need_their_form_type(h: Harness) -> None:
    alice = online(h, A + "/phone")
    bad = publish(TUNE, tune("x"), "1", field("pubsub#access_model", "open")).replace(
        "#publish-options</value>", "#node_config</value>")
    check_error(result_of(alice, bad), "bad-request")


def test_unsupported_access_model_on_create(h: Harness) -> None:
    alice = online(h, A + "/phone")
    reply = result_of(alice, f"<iq type='set' id='c'><pubsub xmlns='{PUBSUB}'>"
                             f"<create node='n'/><configure><x xmlns='jabber:x:data' "
                             f"type='submit'>{field('pubsub#access_model', 'authorize')}"
                             f"</x></configure></pubsub></iq>")
    check_error(reply, "not-acceptable", "unsupported-access-model")


# -- transient nodes -------------------------------------------------------------------------

def test_transient_node_notifies_but_keeps_nothing(h: Harness) -> None:
    make_contacts(h, A, B)
    alice = online(h, A + "/phone")
    bob = online(h, B + "/pc", notify("live"))
    ok(result_of(alice, publish("live", tune("now"), "n1", field("pubsub#persist_items", "0"))))
    assert event_items(bob) == [(A, "live", "n1")]
    check_error(result_of(bob, items("live", A)), "feature-not-implemented", "unsupported",
                feature="persistent-items")
    check_error(result_of(alice, f"<iq type='set' id='r'><pubsub xmlns='{PUBSUB}'>"
                                 f"<retract node='live'><item id='n1'/></retract></pubsub></iq>"),
                "feature-not-implemented", "unsupported", feature="persistent-items")


# -- retract, purge, delete -----------------------------------------------------------------

def retract(node: str, item_id: str | None, notify_attr: str = "") -> str:
    item = f"<item id='{item_id}'/>" if item_id is not None else ""
    return (f"<iq type='set' id='r'><pubsub xmlns='{PUBSUB}'><retract node='{node}'"
            f"{notify_attr}>{item}</retract></pubsub></iq>")


def test_retract_deletes_and_notifies(h: Harness) -> None:
    make_contacts(h, A, B)
    alice = online(h, A + "/phone", notify(TUNE))
    bob = online(h, B + "/pc", notify(TUNE))
    ok(result_of(alice, publish(TUNE, tune("x"), "1", field("pubsub#max_items", "5"))))
    ok(result_of(alice, publish(TUNE, tune("y"), "2")))
    event_items(alice), event_items(bob)
    ok(result_of(alice, retract(TUNE, "1", " notify='true'")))
    assert event_items(bob) == [(A, TUNE, "retract:1")]
    assert event_items(alice) == [(A, TUNE, "retract:1")]
    assert ids_of(ok(result_of(alice, items(TUNE, A)))) == ["2"]
    ok(result_of(alice, retract(TUNE, "2", " notify='false'")))
    assert event_items(bob) == []                                # asked not to notify
    check_error(result_of(alice, retract(TUNE, "2")), "item-not-found")
    check_error(result_of(alice, retract("nope", "2")), "item-not-found")
    check_error(result_of(alice, retract(TUNE, None)), "bad-request", "item-required")
    check_error(result_of(alice, f"<iq type='set' id='r'><pubsub xmlns='{PUBSUB}'><retract>"
                                 f"<item id='1'/></retract></pubsub></iq>"),
                "bad-request", "nodeid-required")


def owner_set(action: str) -> str:
    return f"<iq type='set' id='o'><pubsub xmlns='{OWNER}'>{action}</pubsub></iq>"


def test_purge_empties_the_node_with_one_notification(h: Harness) -> None:
    make_contacts(h, A, B)
    alice = online(h, A + "/phone")
    bob = online(h, B + "/pc", notify(TUNE))
    for n in "abc":
        ok(result_of(alice, publish(TUNE, tune(n), n, field("pubsub#max_items", "max"))))
    event_items(bob)
    ok(result_of(alice, owner_set(f"<purge node='{TUNE}'/>")))
    assert event_items(bob) == [(A, TUNE, "purge")]
    assert ids_of(ok(result_of(alice, items(TUNE, A)))) == []
    check_error(result_of(alice, owner_set("<purge node='nope'/>")), "item-not-found")


def test_delete_removes_the_node_and_tells_subscribers(h: Harness) -> None:
    make_contacts(h, A, B)
    alice = online(h, A + "/phone")
    bob = online(h, B + "/pc", notify(TUNE))
    ok(result_of(alice, publish(TUNE, tune("x"))))
    event_items(bob)
    ok(result_of(alice, owner_set(f"<delete node='{TUNE}'><redirect uri='xmpp:{A}?;node=n'/>"
                                  f"</delete>")))
    msgs = bob.received()
    assert len(msgs) == 1
    deleted = msgs[0].find(f"{{{EVENT}}}event/{{{EVENT}}}delete")
    assert deleted is not None and deleted.get("node") == TUNE
    assert deleted.find(f"{{{EVENT}}}redirect").get("uri") == f"xmpp:{A}?;node=n"  # type: ignore[union-attr]
    check_error(result_of(alice, items(TUNE, A)), "item-not-found")
    check_error(result_of(alice, owner_set(f"<delete node='{TUNE}'/>")), "item-not-found")
    check_error(result_of(alice, owner_set("<delete/>")), "bad-request", "nodeid-required")
    ok(result_of(alice, publish(TUNE, tune("again"), "9")))          # can be made again
    assert ids_of(ok(result_of(alice, items(TUNE, A)))) == ["9"]


# -- create and configure --------------------------------------------------------------------

def create(node: str | None, config: str = "") -> str:
    n = f" node='{node}'" if node is not None else ""
    conf = (f"<configure><x xmlns='jabber:x:data' type='submit'>{config}</x></configure>"
            if config else "")
    return f"<iq type='set' id='c'><pubsub xmlns='{PUBSUB}'><create{n}/>{conf}</pubsub></iq>"


def test_create_and_configure(h: Harness) -> None:
    alice = online(h, A + "/phone")
    ok(result_of(alice, create("n", field("pubsub#access_model", "open") +
                                field("pubsub#title", "My node"))))
    got = config_of(h, alice, "n")
    assert got["pubsub#access_model"] == ["open"] and got["pubsub#title"] == ["My node"]
    check_error(result_of(alice, create("n")), "conflict", kind="cancel")
    check_error(result_of(alice, create(None)), "not-acceptable", "nodeid-required")
    assert ids_of(ok(result_of(alice, items("n", A)))) == []


def test_configure_form_get_set_and_cancel(h: Harness) -> None:
    put(h, A, B, "both", groups=("friends",))
    alice = online(h, A + "/phone")
    ok(result_of(alice, publish(TUNE, tune("x"))))
    form = ok(result_of(alice, f"<iq type='get' id='c'><pubsub xmlns='{OWNER}'>"
                                f"<configure node='{TUNE}'/></pubsub></iq>"))
    x = form.find(f".//{{jabber:x:data}}x")
    assert x is not None and x.get("type") == "form"
    fields = {f.get("var"): f for f in x.findall("{jabber:x:data}field")}
    assert fields["FORM_TYPE"].findtext("{jabber:x:data}value") == PUBSUB + "#node_config"
    assert fields["pubsub#access_model"].get("type") == "list-single"
    assert [o.findtext("{jabber:x:data}value") for o in
            fields["pubsub#access_model"].findall("{jabber:x:data}option")] == \
        ["open", "presence", "roster", "whitelist"]
    assert [o.findtext("{jabber:x:data}value") for o in
            fields["pubsub#roster_groups_allowed"].findall("{jabber:x:data}option")] == ["friends"]

    def configure(body: str, kind: str = "submit") -> etree._Element:
        return result_of(alice, owner_set(f"<configure node='{TUNE}'><x xmlns='jabber:x:data' "
                                          f"type='{kind}'>{body}</x></configure>"))
    ok(configure(field("FORM_TYPE", PUBSUB + "#node_config") +
                 field("pubsub#access_model", "roster") +
                 field("pubsub#roster_groups_allowed", "friends") +
                 field("pubsub#max_items", "10")))
    got = config_of(h, alice, TUNE)
    assert (got["pubsub#access_model"], got["pubsub#roster_groups_allowed"],
            got["pubsub#max_items"], got["pubsub#persist_items"]) == \
        (["roster"], ["friends"], ["10"], ["1"])              # fields not sent keep their value
    ok(configure("", kind="cancel"))
    check_error(configure(field("pubsub#type", "x")), "not-acceptable")
    check_error(configure(field("pubsub#max_items", "-1")), "not-acceptable")
    assert config_of(h, alice, TUNE)["pubsub#access_model"] == ["roster"]
    check_error(result_of(alice, owner_set("<configure node='nope'><x xmlns='jabber:x:data' "
                                           "type='submit'/></configure>")), "item-not-found")


def test_default_configuration(h: Harness) -> None:
    alice = online(h, A + "/phone")
    reply = ok(result_of(alice, f"<iq type='get' id='d'><pubsub xmlns='{OWNER}'><default/>"
                                f"</pubsub></iq>"))
    values = {f.get("var"): [v.text for v in f.findall("{jabber:x:data}value")]
              for f in reply.iter("{jabber:x:data}field")}
    assert values["pubsub#access_model"] == ["presence"]              # XEP-0163 §5
    assert values["pubsub#send_last_published_item"] == ["on_sub_and_presence"]
    assert values["pubsub#deliver_notifications"] == ["1"]


def test_owner_affiliations_and_unsupported_management(h: Harness) -> None:
    alice = online(h, A + "/phone")
    ok(result_of(alice, publish(TUNE, tune("x"))))
    reply = ok(result_of(alice, f"<iq type='get' id='a'><pubsub xmlns='{OWNER}'>"
                                f"<affiliations node='{TUNE}'/></pubsub></iq>"))
    affs = reply.findall(f".//{{{OWNER}}}affiliation")
    assert [(a.get("jid"), a.get("affiliation")) for a in affs] == [(A, "owner")]
    check_error(result_of(alice, owner_set(f"<affiliations node='{TUNE}'><affiliation "
                                           f"jid='{B}' affiliation='member'/></affiliations>")),
                "feature-not-implemented", "unsupported", feature="modify-affiliations")
    check_error(result_of(alice, f"<iq type='get' id='s'><pubsub xmlns='{OWNER}'>"
                                 f"<subscriptions node='{TUNE}'/></pubsub></iq>"),
                "feature-not-implemented", "unsupported", feature="manage-subscriptions")


# -- access models ---------------------------------------------------------------------------

def test_presence_access_refuses_a_stranger(h: Harness) -> None:
    make_contacts(h, A, B)
    alice, bob, carol = online(h, A + "/phone"), online(h, B + "/pc"), online(h, C + "/x")
    ok(result_of(alice, publish(TUNE, tune("x"))))
    assert ids_of(ok(result_of(bob, items(TUNE, A)))) == ["1"]
    check_error(result_of(carol, items(TUNE, A)), "not-authorized",
                "presence-subscription-required", kind="auth")            # XEP-0060 §6.5.6


def test_presence_access_needs_a_subscription_from_the_owner(h: Harness) -> None:
    put(h, A, B, "to")                      # alice sees bob; bob does not see alice
    put(h, B, A, "from")
    alice, bob = online(h, A + "/phone"), online(h, B + "/pc")
    ok(result_of(alice, publish(TUNE, tune("x"))))
    check_error(result_of(bob, items(TUNE, A)), "not-authorized",
                "presence-subscription-required")


def test_open_access_serves_anyone(h: Harness) -> None:
    alice, carol = online(h, A + "/phone"), online(h, C + "/x")
    ok(result_of(alice, publish("pub", tune("x"), "1", field("pubsub#access_model", "open"))))
    assert ids_of(ok(result_of(carol, items("pub", A)))) == ["1"]


def test_roster_access_checks_groups(h: Harness) -> None:
    put(h, A, B, "both", groups=("friends",))
    put(h, B, A, "both")
    put(h, A, C, "both", groups=("work",))
    put(h, C, A, "both")
    alice, bob, carol = online(h, A + "/phone"), online(h, B + "/pc"), online(h, C + "/x")
    ok(result_of(alice, publish("geo", tune("x"), "1", field("pubsub#access_model", "roster") +
                                field("pubsub#roster_groups_allowed", "friends"))))
    assert ids_of(ok(result_of(bob, items("geo", A)))) == ["1"]
    check_error(result_of(carol, items("geo", A)), "not-authorized", "not-in-roster-group",
                kind="auth")                                             # XEP-0060 §6.5.7


def test_whitelist_is_the_owner_only(h: Harness) -> None:
    make_contacts(h, A, B)
    alice, bob = online(h, A + "/phone"), online(h, B + "/pc")
    ok(result_of(alice, publish("secret", tune("x"), "1",
                                field("pubsub#access_model", "whitelist"))))
    assert ids_of(ok(result_of(alice, items("secret", A)))) == ["1"]
    check_error(result_of(bob, items("secret", A)), "not-allowed", "closed-node",
                kind="cancel")                                           # XEP-0060 §6.5.8


# -- notifications ---------------------------------------------------------------------------

def test_notifications_follow_notify_interest(h: Harness) -> None:
    make_contacts(h, A, B)
    make_contacts(h, A, C)
    alice = online(h, A + "/phone", notify(TUNE))
    laptop = online(h, A + "/laptop")                        # no caps: no interest
    bob = online(h, B + "/pc", notify(TUNE))
    carol = online(h, C + "/x", [MOOD + "+notify", TUNE])    # knows tunes, no +notify
    dave = online(h, "dave@example.org/x", notify(TUNE))     # no subscription
    for s in (alice, laptop, bob, carol, dave):
        s.received()
    ok(result_of(alice, publish(TUNE, tune("Finzi"), "t1")))
    msgs = bob.received()
    assert len(msgs) == 1
    msg = msgs[0]
    assert (msg.get("type"), msg.get("from"), msg.get("to")) == ("headline", A, B + "/pc")
    assert msg.get("id")
    assert msg.findtext(f".//{{{TUNE}}}artist") == "Finzi"
    replyto = msg.find("{http://jabber.org/protocol/address}addresses/"
                       "{http://jabber.org/protocol/address}address")
    assert replyto is not None and replyto.get("jid") == A + "/phone"      # XEP-0163 §4.3.1
    assert event_items(alice) == [(A, TUNE, "t1")]           # the owner's own resource
    for s in (laptop, carol, dave):
        assert event_items(s) == []


def test_roster_model_notifies_only_the_allowed_groups(h: Harness) -> None:
    put(h, A, B, "both", groups=("friends",))
    put(h, B, A, "both")
    put(h, A, C, "both")
    put(h, C, A, "both")
    alice = online(h, A + "/phone")
    bob, carol = online(h, B + "/pc", notify("geo")), online(h, C + "/x", notify("geo"))
    ok(result_of(alice, publish("geo", tune("x"), "1", field("pubsub#access_model", "roster") +
                                field("pubsub#roster_groups_allowed", "friends"))))
    assert event_items(bob) == [(A, "geo", "1")]
    assert event_items(carol) == []


def test_whitelist_nodes_notify_only_the_owner(h: Harness) -> None:
    make_contacts(h, A, B)
    alice = online(h, A + "/phone", notify("secret"))
    bob = online(h, B + "/pc", notify("secret"))
    ok(result_of(alice, publish("secret", tune("x"), "1",
                                field("pubsub#access_model", "whitelist"))))
    assert event_items(alice) == [(A, "secret", "1")]
    assert event_items(bob) == []


def test_blocked_contacts_get_no_notifications(make_harness: Callable[..., Harness]) -> None:
    h = make_harness(modules={**MODULES, "blocking": {}})
    make_contacts(h, A, B)
    alice = online(h, A + "/phone")
    bob = online(h, B + "/pc", notify(TUNE))
    ok(result_of(alice, f"<iq type='set' id='b'><block xmlns='urn:xmpp:blocking'>"
                        f"<item jid='{B}'/></block></iq>"))
    bob.received()
    ok(result_of(alice, publish(TUNE, tune("x"))))
    assert event_items(bob) == []                            # XEP-0163 §4.3.3


def test_deliver_payloads_off_sends_item_ids_only(h: Harness) -> None:
    make_contacts(h, A, B)
    alice = online(h, A + "/phone")
    bob = online(h, B + "/pc", notify(TUNE))
    bob.received()
    ok(result_of(alice, publish(TUNE, tune("x"), "1", field("pubsub#deliver_payloads", "0"))))
    msgs = bob.received()
    assert len(msgs) == 1
    item = msgs[0].find(f"{{{EVENT}}}event/{{{EVENT}}}items/{{{EVENT}}}item")
    assert item is not None and item.get("id") == "1" and len(item) == 0


def test_deliver_notifications_off_sends_nothing(h: Harness) -> None:
    make_contacts(h, A, B)
    alice = online(h, A + "/phone")
    bob = online(h, B + "/pc", notify(TUNE))
    ok(result_of(alice, publish(TUNE, tune("x"), "1",
                                field("pubsub#deliver_notifications", "false"))))
    assert event_items(bob) == []


# -- last published items (XEP-0163 §4.3.2) --------------------------------------------------

def test_last_item_at_initial_presence_with_its_time(h: Harness) -> None:
    make_contacts(h, A, B)
    alice = online(h, A + "/phone")
    ok(result_of(alice, publish(TUNE, tune("x"), "t1")))
    h.clock.advance(60)
    bob = online(h, B + "/pc", notify(TUNE))
    msgs = [m for m in bob.received() if m.tag == "{jabber:client}message"]
    assert len(msgs) == 1
    assert msgs[0].find(f".//{{{EVENT}}}item").get("id") == "t1"  # type: ignore[union-attr]
    delay = msgs[0].find("{urn:xmpp:delay}delay")
    assert delay is not None and delay.get("stamp") == "1970-01-12T13:46:40Z"
    # a later presence (new status, same caps) sends nothing again
    advertise(bob, notify(TUNE), status="away")
    assert event_items(bob) == []
    # unavailable, then available: a new initial presence
    bob.send("<presence type='unavailable'/>")
    advertise(bob, notify(TUNE))
    assert event_items(bob) == [(A, TUNE, "t1")]


def test_no_last_item_without_interest_or_when_never(h: Harness) -> None:
    make_contacts(h, A, B)
    alice = online(h, A + "/phone")
    ok(result_of(alice, publish(TUNE, tune("x"), "t1")))
    ok(result_of(alice, publish(MOOD, tune("x"), "m1",
                                field("pubsub#send_last_published_item", "never"))))
    bob = online(h, B + "/pc", notify(MOOD))
    assert event_items(bob) == []
    plain = online(h, B + "/plain")
    assert event_items(plain) == []


def test_owner_resources_get_their_own_last_items(h: Harness) -> None:
    alice = online(h, A + "/phone")
    ok(result_of(alice, publish(TUNE, tune("x"), "t1")))
    laptop = online(h, A + "/laptop", notify(TUNE))
    assert event_items(laptop) == [(A, TUNE, "t1")]


def test_new_interest_in_caps_sends_only_the_new_nodes(h: Harness) -> None:
    make_contacts(h, A, B)
    alice = online(h, A + "/phone")
    ok(result_of(alice, publish(TUNE, tune("x"), "t1")))
    ok(result_of(alice, publish(MOOD, tune("x"), "m1")))
    bob = online(h, B + "/pc", notify(TUNE))
    assert event_items(bob) == [(A, TUNE, "t1")]
    advertise(bob, notify(TUNE, MOOD))
    assert event_items(bob) == [(A, MOOD, "m1")]


def test_last_item_after_a_new_subscription(h: Harness) -> None:
    alice = online(h, A + "/phone")
    ok(result_of(alice, publish(TUNE, tune("x"), "t1")))
    bob = online(h, B + "/pc", notify(TUNE))
    assert event_items(bob) == []
    bob.send(f"<presence type='subscribe' to='{A}'/>")
    alice.send(f"<presence type='subscribed' to='{B}'/>")       # alice approves
    assert event_items(bob) == [(A, TUNE, "t1")]
    alice.send("<presence><status>back</status></presence>")       # later presence: nothing
    assert event_items(bob) == []


def test_contacts_offline_items_reach_a_login(h: Harness) -> None:
    make_contacts(h, A, B)
    make_contacts(h, C, B)
    for owner in (A, C):
        s = online(h, owner + "/x")
        ok(result_of(s, publish(TUNE, tune(owner), owner)))
        s.close()
    bob = online(h, B + "/pc", notify(TUNE))
    assert sorted(event_items(bob)) == [(A, TUNE, A), (C, TUNE, C)]


# -- explicit subscriptions (XEP-0060 §6.1, §6.2) ---------------------------------------------

def sub(action: str, node: str, jid: str, to: str = A, extra: str = "") -> str:
    return (f"<iq type='set' id='s' to='{to}'><pubsub xmlns='{PUBSUB}'>"
            f"<{action} node='{node}' jid='{jid}'/>{extra}</pubsub></iq>")


def test_explicit_subscription_to_an_open_node(h: Harness) -> None:
    alice = online(h, A + "/phone")
    ok(result_of(alice, publish("devices", tune("x"), "d1", field("pubsub#access_model", "open"))))
    carol = online(h, C + "/x")                          # a stranger, no caps
    reply = ok(result_of(carol, sub("subscribe", "devices", C)))
    got = reply.find(f"{_P}pubsub/{_P}subscription")
    assert got is not None and (got.get("node"), got.get("jid"), got.get("subscription")) == \
        ("devices", C, "subscribed")
    assert event_items(carol) == [(A, "devices", "d1")]           # the last item (§6.1.7)
    ok(result_of(alice, publish("devices", tune("y"), "d2")))
    assert event_items(carol) == [(A, "devices", "d2")]
    subs = ok(result_of(carol, f"<iq type='get' id='l' to='{A}'><pubsub xmlns='{PUBSUB}'>"
                               f"<subscriptions/></pubsub></iq>"))
    assert [(s.get("node"), s.get("jid")) for s in
            subs.iter(_P + "subscription")] == [("devices", C)]
    # a new initial presence brings the last item again (on_sub_and_presence)
    carol.send("<presence type='unavailable'/>")
    carol.send("<presence/>")
    assert event_items(carol) == [(A, "devices", "d2")]
    ok(result_of(carol, sub("unsubscribe", "devices", C)))
    ok(result_of(alice, publish("devices", tune("z"), "d3")))
    assert event_items(carol) == []
    check_error(result_of(carol, sub("unsubscribe", "devices", C)), "unexpected-request",
                "not-subscribed")


def test_subscribe_errors(h: Harness) -> None:
    alice = online(h, A + "/phone")
    ok(result_of(alice, publish(TUNE, tune("x"))))
    carol = online(h, C + "/x")
    check_error(result_of(carol, sub("subscribe", TUNE, C)), "not-authorized",
                "presence-subscription-required")
    check_error(result_of(carol, sub("subscribe", TUNE, B)), "bad-request", "invalid-jid")
    check_error(result_of(carol, sub("subscribe", "nope", C)), "item-not-found")
    check_error(result_of(carol, sub("unsubscribe", "nope", C)), "item-not-found")
    check_error(result_of(alice, sub("subscribe", TUNE, A, extra="<options/>")),
                "feature-not-implemented", "unsupported", feature="subscription-options")
    check_error(result_of(carol, f"<iq type='get' id='o' to='{A}'><pubsub xmlns='{PUBSUB}'>"
                                 f"<options node='{TUNE}' jid='{C}'/></pubsub></iq>"),
                "feature-not-implemented", "unsupported", feature="subscription-options")


def test_explicit_subscriber_loses_notifications_with_access(h: Harness) -> None:
    alice = online(h, A + "/phone")
    ok(result_of(alice, publish("n", tune("x"), "1", field("pubsub#access_model", "open"))))
    carol = online(h, C + "/x")
    ok(result_of(carol, sub("subscribe", "n", C + "/x")))
    carol.received()
    ok(result_of(alice, owner_set("<configure node='n'><x xmlns='jabber:x:data' type='submit'>"
                                  + field("pubsub#access_model", "presence") +
                                  "</x></configure>")))
    ok(result_of(alice, publish("n", tune("y"), "2")))
    assert event_items(carol) == []


def test_affiliations_of_the_asker(h: Harness) -> None:
    alice, carol = online(h, A + "/phone"), online(h, C + "/x")
    ok(result_of(alice, publish(TUNE, tune("x"))))
    ok(result_of(alice, publish(MOOD, tune("x"))))
    mine = ok(result_of(alice, f"<iq type='get' id='a'><pubsub xmlns='{PUBSUB}'><affiliations/>"
                               f"</pubsub></iq>"))
    assert sorted((a.get("node"), a.get("affiliation")) for a in mine.iter(_P + "affiliation")) \
        == [(MOOD, "owner"), (TUNE, "owner")]
    theirs = ok(result_of(carol, f"<iq type='get' id='a' to='{A}'><pubsub xmlns='{PUBSUB}'>"
                                 f"<affiliations/></pubsub></iq>"))
    assert list(theirs.iter(_P + "affiliation")) == []


# -- disco (XEP-0163 §6) --------------------------------------------------------------------

def disco(kind: str, to: str, node: str | None = None) -> str:
    n = f" node='{node}'" if node else ""
    return (f"<iq type='get' id='d' to='{to}'><query xmlns='http://jabber.org/protocol/"
            f"disco#{kind}'{n}/></iq>")


def test_account_advertises_pep_and_what_it_supports(h: Harness) -> None:
    alice = online(h, A + "/phone")
    reply = ok(result_of(alice, disco("info", A)))
    q = reply[0]
    identities = [(i.get("category"), i.get("type")) for i in q if i.tag.endswith("identity")]
    assert ("pubsub", "pep") in identities and ("account", "registered") in identities
    features = {f.get("var") for f in q if f.tag.endswith("feature")}
    pubsub = {f for f in features if f and f.startswith(PUBSUB)}
    assert pubsub == set(FEATURES)
    assert {PUBSUB + "#publish", PUBSUB + "#publish-options", PUBSUB + "#auto-create",
            PUBSUB + "#filtered-notifications", PUBSUB + "#subscribe"} <= pubsub
    assert PUBSUB + "#access-open" not in pubsub               # "the default ... is open": no
    assert "urn:xmpp:pep-vcard-conversion:0" not in features   # no vcard module loaded


def test_disco_items_lists_what_the_asker_may_see(h: Harness) -> None:
    make_contacts(h, A, B)
    alice, bob, carol = online(h, A + "/phone"), online(h, B + "/pc"), online(h, C + "/x")
    ok(result_of(alice, publish("pres", tune("x"))))
    ok(result_of(alice, publish("open", tune("x"), "1", field("pubsub#access_model", "open"))))
    ok(result_of(alice, publish("mine", tune("x"), "1",
                                field("pubsub#access_model", "whitelist"))))

    def nodes(s: Any) -> list[str]:
        return sorted(i.get("node") or "" for i in ok(result_of(s, disco("items", A)))[0])
    assert nodes(alice) == ["mine", "open", "pres"]
    assert nodes(bob) == ["open", "pres"]
    assert nodes(carol) == ["open"]


def test_disco_on_a_node(h: Harness) -> None:
    alice, carol = online(h, A + "/phone"), online(h, C + "/x")
    ok(result_of(alice, publish("open", tune("x"), "i1", field("pubsub#access_model", "open") +
                                field("pubsub#max_items", "5"))))
    ok(result_of(alice, publish("open", tune("y"), "i2")))
    ok(result_of(alice, publish("pres", tune("x"))))
    info = ok(result_of(carol, disco("info", A, "open")))[0]
    assert info.get("node") == "open"
    assert [(i.get("category"), i.get("type")) for i in info if i.tag.endswith("identity")] == \
        [("pubsub", "leaf")]
    meta = {f.get("var"): [v.text for v in f] for f in info.iter("{jabber:x:data}field")}
    assert meta["FORM_TYPE"] == [PUBSUB + "#meta-data"]
    assert meta["pubsub#access_model"] == ["open"] and meta["pubsub#owner"] == [A]
    listed = ok(result_of(carol, disco("items", A, "open")))[0]
    assert [(i.get("jid"), i.get("name")) for i in listed] == [(A, "i1"), (A, "i2")]
    check_error(result_of(carol, disco("info", A, "pres")), "item-not-found")
    check_error(result_of(carol, disco("items", A, "pres")), "item-not-found")
    check_error(result_of(carol, disco("info", A, "nope")), "item-not-found")


# -- accounts ---------------------------------------------------------------------------------

def test_deleting_an_account_deletes_its_nodes_and_subscriptions(h: Harness) -> None:
    alice, carol = online(h, A + "/phone"), online(h, C + "/x")
    ok(result_of(alice, publish("n", tune("x"), "1", field("pubsub#access_model", "open"))))
    ok(result_of(carol, publish("c", tune("x"), "1", field("pubsub#access_model", "open"))))
    ok(result_of(carol, sub("subscribe", "n", C)))
    ok(result_of(alice, sub("subscribe", "c", A, to=C)))
    resolve(h.server.accounts.delete("alice", "example.org"))
    store = h.server.stores.pubsub
    assert resolve(store.nodes(JID.parse(A))) == []
    assert resolve(store.subscriptions_of(JID.parse(A))) == []
    h.user(A)                                              # a new account of the same name
    fresh = online(h, A + "/new")
    check_error(result_of(fresh, items("n", A)), "item-not-found")
