# tests: modules/push.py, modules/muc/service.py
"""XEP-0357 push on the in-memory harness, with a fake app server on a service domain: when a
notification goes out (offline, XEP-0198 detached, XEP-0352 inactive long enough, group chats
of members-only rooms and mentions), what it carries, bursts, and app server errors."""
from __future__ import annotations

from typing import Any, Callable

import pytest
from lxml import etree

from stanzas.errors import StanzaError, error_reply
from stanzas import iq
from stanzas.jid import JID
from tests.harness.server import Harness, resolve
from tests.harness.stream import StreamClient
from tests.modules.messaging import MODULES, SM
from tests.modules.muc_helpers import ROOM, admin_set, create, join

PUSH = "urn:xmpp:push:0"
APP = "push.example.org"
PUBSUB = "http://jabber.org/protocol/pubsub"
XDATA = "jabber:x:data"
ALICE, BOB = "alice@example.org", "bob@example.org"


class AppServer:
    """The app server's XMPP push service: records publishes, answers as told."""

    def __init__(self, h: Harness) -> None:
        self.h = h
        self.published: list[etree._Element] = []
        self.answer: str | None = None          # a stanza error condition, or None: result
        h.server.router.services[APP] = self.stanza

    def stanza(self, el: etree._Element, sender: JID, to: JID) -> None:
        if el.get("type") != "set":
            return
        self.published.append(el)
        reply = iq.result(el) if self.answer is None else \
            error_reply(el, StanzaError(self.answer))
        reply.set("from", APP)
        self.h.server.router.route(reply)

    def summary(self, n: int = -1) -> dict[str, str]:
        x = self.published[n].find(f".//{{{PUSH}}}notification/{{{XDATA}}}x")
        return {f.get("var"): f.findtext(f"{{{XDATA}}}value") for f in x}


@pytest.fixture
def make(make_harness: Callable[..., Harness]) -> Callable[..., Harness]:
    def build(**push: Any) -> Harness:
        modules = {**MODULES, "muc": {}, "push": {"delay": "2 s", **push}}
        modules.pop("mam")
        return make_harness(modules=modules)
    return build


@pytest.fixture
def h(make: Callable[..., Harness]) -> Harness:
    return make()


def enable(c: StreamClient, node: str = "n1", secret: str | None = "s3cr3t") -> None:
    form = "" if secret is None else (
        f"<x xmlns='{XDATA}' type='submit'><field var='FORM_TYPE'><value>"
        f"http://jabber.org/protocol/pubsub#publish-options</value></field>"
        f"<field var='secret'><value>{secret}</value></field></x>")
    c.send(f"<iq type='set' id='e1'><enable xmlns='{PUSH}' jid='{APP}' node='{node}'>{form}"
           f"</enable></iq>")
    c.expect("<iq type='result' id='e1' from='{any}' to='{any}'/>")


def registered(h: Harness, user: str = "alice") -> list[Any]:
    return resolve(h.server.stores.push.list("example.org", user))


def phone_goes_away(h: Harness) -> AppServer:
    """Alice's phone enables push, then its app is killed (no session)."""
    app = AppServer(h)
    alice = h.login(f"{ALICE}/phone")
    enable(alice)
    alice.send("</stream:stream>")
    return app


def say(h: Harness, text: str, to: str = ALICE, sender: Any = None) -> Any:
    bob = sender or h.login(f"{BOB}/desk")
    bob.send(f"<message to='{to}' type='chat'><body>{text}</body></message>")
    return bob


# -- enabling and disabling --------------------------------------------------------------------

def test_enable_disable_and_disco(h: Harness) -> None:
    alice = h.login(f"{ALICE}/phone")
    alice.send(f"<iq type='get' id='d1' to='{ALICE}'>"
               "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
    assert f"var=\"{PUSH}\"" in etree.tostring(alice.received()[-1]).decode()
    enable(alice, "n1")
    enable(alice, "n2", secret=None)
    enable(alice, "n1", secret="new")                   # §5: the last options win
    regs = {r.node: r.options for r in registered(h)}
    assert regs["n1"]["secret"] == ["new"] and regs["n2"] == {}
    alice.send(f"<iq type='set' id='x1'><disable xmlns='{PUSH}' jid='{APP}' node='n1'/></iq>")
    alice.expect("<iq type='result' id='x1' from='{any}' to='{any}'/>")
    assert [r.node for r in registered(h)] == ["n2"]
    alice.send(f"<iq type='set' id='x2'><disable xmlns='{PUSH}' jid='{APP}'/></iq>")
    alice.expect("<iq type='result' id='x2' from='{any}' to='{any}'/>")
    assert registered(h) == []


def test_registrations_are_limited_per_account(make: Callable[..., Harness]) -> None:
    h = make(max_registrations=2)
    alice = h.login(f"{ALICE}/phone")
    enable(alice, "n1")
    enable(alice, "n2")
    alice.send(f"<iq type='set' id='e3'><enable xmlns='{PUSH}' jid='{APP}' node='n3'/></iq>")
    answer = alice.received()[-1]
    assert answer.get("type") == "error" and answer.find(
        ".//{urn:ietf:params:xml:ns:xmpp-stanzas}policy-violation") is not None
    enable(alice, "n2")                     # re-enabling one it has is fine


@pytest.mark.parametrize("payload", [
    f"<enable xmlns='{PUSH}' jid='{APP}'/>",                                # no node
    f"<enable xmlns='{PUSH}' jid='@@' node='n'/>",
    f"<enable xmlns='{PUSH}' jid='{APP}' node='n'><x xmlns='{XDATA}' type='submit'><field "
    "var='FORM_TYPE'><value>urn:other</value></field></x></enable>",
])
def test_bad_enable_requests(h: Harness, payload: str) -> None:
    alice = h.login(f"{ALICE}/phone")
    alice.send(f"<iq type='set' id='b'>{payload}</iq>")
    assert alice.received()[-1].get("type") == "error"
    assert registered(h) == []


# -- when notifications go out -----------------------------------------------------------------

def test_offline_message_gives_one_notification_with_the_summary(h: Harness) -> None:
    app = phone_goes_away(h)
    say(h, "are you there?")
    h.clock.advance(1.9)
    assert app.published == []
    h.clock.advance(0.2)
    [publish] = app.published
    assert publish.get("from") == ALICE and publish.get("to") == APP
    assert publish.find(f"{{{PUBSUB}}}pubsub/{{{PUBSUB}}}publish").get("node") == "n1"
    assert app.summary() == {"FORM_TYPE": "urn:xmpp:push:summary", "message-count": "1",
                             "last-message-sender": f"{BOB}/desk"}      # no body by default
    options = publish.find(f".//{{{PUBSUB}}}publish-options/{{{XDATA}}}x")
    assert {f.get("var"): f.findtext(f"{{{XDATA}}}value") for f in options}["secret"] == \
        "s3cr3t"


def test_a_burst_of_twenty_is_one_notification(make: Callable[..., Harness]) -> None:
    h = make(include_body=True)
    app = phone_goes_away(h)
    bob = say(h, "1")
    for i in range(2, 21):
        say(h, str(i), sender=bob)
    h.clock.advance(3)
    assert len(app.published) == 1
    assert app.summary()["message-count"] == "20" and app.summary()["last-message-body"] == "20"
    say(h, "later", sender=bob)             # a new burst, a new notification
    h.clock.advance(3)
    assert len(app.published) == 2 and app.summary()["message-count"] == "1"


def test_nothing_while_a_session_is_awake(h: Harness) -> None:
    app = AppServer(h)
    alice = h.login(f"{ALICE}/phone")
    enable(alice)
    say(h, "hi")
    h.clock.advance(10)
    assert app.published == []


def test_receipts_and_chat_states_do_not_notify(h: Harness) -> None:
    app = phone_goes_away(h)
    bob = h.login(f"{BOB}/desk")
    bob.send(f"<message to='{ALICE}' type='chat'><composing xmlns="
             "'http://jabber.org/protocol/chatstates'/></message>")
    bob.send(f"<message to='{ALICE}'><received xmlns='urn:xmpp:receipts' id='x'/></message>")
    h.clock.advance(10)
    assert app.published == []


def test_subscription_request_notifies(h: Harness) -> None:
    app = phone_goes_away(h)
    bob = h.login(f"{BOB}/desk")
    bob.send(f"<presence to='{ALICE}' type='subscribe'/>")
    h.clock.advance(3)
    assert app.summary()["pending-subscription-count"] == "1"
    assert app.summary()["message-count"] == "0"


def test_a_detached_session_is_asleep(h: Harness) -> None:
    app = AppServer(h)
    alice = StreamClient(h, f"{ALICE}/phone")
    enable(alice)
    alice.send(f"<enable xmlns='{SM}' resume='true'/>")
    alice.received()
    alice.drop()                                # XEP-0198 keeps it bound for resumption
    say(h, "wake up")
    h.clock.advance(3)
    assert len(app.published) == 1


def test_an_inactive_session_sleeps_after_inactive_after(make: Callable[..., Harness]) -> None:
    h = make(inactive_after="60 s")
    app = AppServer(h)
    alice = h.login(f"{ALICE}/phone")
    enable(alice)
    alice.send("<inactive xmlns='urn:xmpp:csi:0'/>")
    h.clock.advance(10)
    say(h, "still there?")
    h.clock.advance(5)
    assert app.published == []                  # inactive for 15 s only: it may read it
    h.clock.advance(46)
    assert len(app.published) == 1              # 60 s inactive: the phone sleeps


def test_waking_up_in_time_cancels_the_notification(make: Callable[..., Harness]) -> None:
    h = make(inactive_after="60 s")
    app = AppServer(h)
    alice = h.login(f"{ALICE}/phone")
    enable(alice)
    alice.send("<inactive xmlns='urn:xmpp:csi:0'/>")
    say(h, "hi")
    h.clock.advance(30)
    alice.send("<active xmlns='urn:xmpp:csi:0'/>")
    h.clock.advance(60)
    assert app.published == []


# -- app server errors (§7.1) ------------------------------------------------------------------

def test_an_app_server_error_removes_the_registration(h: Harness) -> None:
    app = phone_goes_away(h)
    app.answer = "item-not-found"
    say(h, "x")
    h.clock.advance(3)
    assert len(app.published) == 1 and registered(h) == []
    say(h, "y")
    h.clock.advance(3)
    assert len(app.published) == 1             # §6: not enabled, no publish


def test_transient_errors_remove_it_only_in_a_row(h: Harness) -> None:
    app = phone_goes_away(h)
    app.answer = "resource-constraint"
    bob = None
    for _ in range(2):
        bob = say(h, "x", sender=bob)
        h.clock.advance(3)
    assert len(registered(h)) == 1
    app.answer = None
    bob = say(h, "x", sender=bob)
    h.clock.advance(3)
    app.answer = "resource-constraint"
    for _ in range(2):
        bob = say(h, "x", sender=bob)
        h.clock.advance(3)
    assert len(registered(h)) == 1               # the success in between reset the count
    say(h, "x", sender=bob)
    h.clock.advance(3)
    assert registered(h) == []


# -- group chats (members who are not there) ---------------------------------------------------

def members_only_room(h: Harness) -> StreamClient:
    """bob owns a members-only room with alice as a member (nick 'ally')."""
    bob = h.login(f"{BOB}/desk")
    create(bob, "bob", membersonly=True, persistentroom=True)
    assert admin_set(bob, f"<item affiliation='member' jid='{ALICE}' nick='ally'/>") \
        .get("type") == "result"
    bob.received()
    return bob


def test_a_members_only_room_notifies_a_member_who_is_not_there(h: Harness) -> None:
    app = phone_goes_away(h)
    bob = members_only_room(h)
    bob.send(f"<message to='{ROOM}' type='groupchat'><body>dinner at 8</body></message>")
    h.clock.advance(3)
    assert app.summary()["last-message-sender"] == f"{ROOM}/bob"
    assert app.summary()["message-count"] == "1"


def test_a_mention_in_an_open_room_notifies_an_affiliated_user(h: Harness) -> None:
    app = phone_goes_away(h)
    bob = h.login(f"{BOB}/desk")
    create(bob, "bob", persistentroom=True)
    admin_set(bob, f"<item affiliation='member' jid='{ALICE}' nick='ally'/>")
    bob.received()
    bob.send(f"<message to='{ROOM}' type='groupchat'><body>lunch?</body></message>")
    h.clock.advance(3)
    assert app.published == []                  # open room, not mentioned
    bob.send(f"<message to='{ROOM}' type='groupchat'><body>Ally: lunch?</body></message>")
    h.clock.advance(3)
    assert len(app.published) == 1


def test_a_member_in_the_room_with_an_awake_session_is_not_notified(h: Harness) -> None:
    app = AppServer(h)
    bob = members_only_room(h)
    alice = h.login(f"{ALICE}/phone")
    enable(alice)
    join(alice, "ally")
    bob.send(f"<message to='{ROOM}' type='groupchat'><body>hello ally</body></message>")
    h.clock.advance(3)
    assert app.published == []
    bob.received()


def test_an_awake_session_elsewhere_does_not_see_the_room(h: Harness) -> None:
    """WhatsApp-style: the desktop is online but not in the group: the phone still rings."""
    app = AppServer(h)
    bob = members_only_room(h)
    phone = h.login(f"{ALICE}/phone")
    enable(phone)
    phone.send("</stream:stream>")
    h.login(f"{ALICE}/desktop")
    bob.send(f"<message to='{ROOM}' type='groupchat'><body>news</body></message>")
    h.clock.advance(3)
    assert len(app.published) == 1
