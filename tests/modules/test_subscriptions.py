"""RFC 6121 §3 presence subscriptions: every row of the Appendix A state tables, then the flows
(both online, contact offline, pre-approval, strangers) on the in-memory harness."""
from __future__ import annotations

from typing import Any, Callable

import pytest
from lxml import etree
from twisted.internet import defer

from storage.roster import RosterItem
from tests.harness.server import Harness, parse
from tests.modules.contacts import MODULES, interested, item, kinds, put
from xmppd import hooks
from stanzas.jid import JID

ALICE, BOB = "alice@example.org", "bob@example.org"

# The nine states of RFC 6121 Appendix A.1 as (subscription, pending out, pending in).
STATES: dict[str, tuple[str, bool, bool]] = {
    "None": ("none", False, False),
    "None + Pending Out": ("none", True, False),
    "None + Pending In": ("none", False, True),
    "None + Pending Out+In": ("none", True, True),
    "To": ("to", False, False),
    "To + Pending In": ("to", False, True),
    "From": ("from", False, False),
    "From + Pending Out": ("from", True, False),
    "Both": ("both", False, False),
}

# Appendix A.2: (stanza the user sends, existing state, new state or None = no change, routed?)
OUTBOUND = [
    # A.2.1 subscribe: always routed (§3.1.2)
    ("subscribe", "None", "None + Pending Out", True),
    ("subscribe", "None + Pending Out", None, True),
    ("subscribe", "None + Pending In", "None + Pending Out+In", True),
    ("subscribe", "None + Pending Out+In", None, True),
    ("subscribe", "To", None, True),
    ("subscribe", "To + Pending In", None, True),
    ("subscribe", "From", "From + Pending Out", True),
    ("subscribe", "From + Pending Out", None, True),
    ("subscribe", "Both", None, True),
    # A.2.2 subscribed: routed only when it approves a pending request
    ("subscribed", "None", None, False),                 # pre-approval (§3.4)
    ("subscribed", "None + Pending Out", None, False),   # pre-approval
    ("subscribed", "None + Pending In", "From", True),
    ("subscribed", "None + Pending Out+In", "From + Pending Out", True),
    ("subscribed", "To", None, False),                   # pre-approval
    ("subscribed", "To + Pending In", "Both", True),
    ("subscribed", "From", None, False),
    ("subscribed", "From + Pending Out", None, False),
    ("subscribed", "Both", None, False),
    # A.2.3 unsubscribe: always routed (§3.3.2)
    ("unsubscribe", "None", None, True),
    ("unsubscribe", "None + Pending Out", "None", True),
    ("unsubscribe", "None + Pending In", None, True),
    ("unsubscribe", "None + Pending Out+In", "None + Pending In", True),
    ("unsubscribe", "To", "None", True),
    ("unsubscribe", "To + Pending In", "None + Pending In", True),
    ("unsubscribe", "From", None, True),
    ("unsubscribe", "From + Pending Out", "From", True),
    ("unsubscribe", "Both", "From", True),
    # A.2.4 unsubscribed: routed when the state changes (§3.2.2)
    ("unsubscribed", "None", None, False),
    ("unsubscribed", "None + Pending Out", None, False),
    ("unsubscribed", "None + Pending In", "None", True),
    ("unsubscribed", "None + Pending Out+In", "None + Pending Out", True),
    ("unsubscribed", "To", None, False),
    ("unsubscribed", "To + Pending In", "To", True),
    ("unsubscribed", "From", "None", True),
    ("unsubscribed", "From + Pending Out", "None + Pending Out", True),
    ("unsubscribed", "Both", "To", True),
]

# Appendix A.3: (stanza arriving for the user, existing state, new state or None, delivered?)
INBOUND = [
    # A.3.1 subscribe (From states: auto-reply 'subscribed', tested below)
    ("subscribe", "None", "None + Pending In", True),
    ("subscribe", "None + Pending Out", "None + Pending Out+In", True),
    ("subscribe", "None + Pending In", None, False),
    ("subscribe", "None + Pending Out+In", None, False),
    ("subscribe", "To", "To + Pending In", True),
    ("subscribe", "To + Pending In", None, False),
    ("subscribe", "From", None, False),
    ("subscribe", "From + Pending Out", None, False),
    ("subscribe", "Both", None, False),
    # A.3.2 subscribed
    ("subscribed", "None", None, False),
    ("subscribed", "None + Pending Out", "To", True),
    ("subscribed", "None + Pending In", None, False),
    ("subscribed", "None + Pending Out+In", "To + Pending In", True),
    ("subscribed", "To", None, False),
    ("subscribed", "To + Pending In", None, False),
    ("subscribed", "From", None, False),
    ("subscribed", "From + Pending Out", "Both", True),
    ("subscribed", "Both", None, False),
    # A.3.3 unsubscribe
    ("unsubscribe", "None", None, False),
    ("unsubscribe", "None + Pending Out", None, False),
    ("unsubscribe", "None + Pending In", "None", True),
    ("unsubscribe", "None + Pending Out+In", "None + Pending Out", True),
    ("unsubscribe", "To", None, False),
    ("unsubscribe", "To + Pending In", "To", True),
    ("unsubscribe", "From", "None", True),
    ("unsubscribe", "From + Pending Out", "None + Pending Out", True),
    ("unsubscribe", "Both", "To", True),
    # A.3.4 unsubscribed
    ("unsubscribed", "None", None, False),
    ("unsubscribed", "None + Pending Out", "None", True),
    ("unsubscribed", "None + Pending In", None, False),
    ("unsubscribed", "None + Pending Out+In", "None + Pending In", True),
    ("unsubscribed", "To", "None", True),
    ("unsubscribed", "To + Pending In", "None + Pending In", True),
    ("unsubscribed", "From + Pending Out", "From", True),
    ("unsubscribed", "From", None, False),
    ("unsubscribed", "Both", "From", True),
]


@pytest.fixture
def h(make_harness: Callable[..., Harness]) -> Harness:
    return make_harness(modules=MODULES)


def set_state(h: Harness, user: str, contact: str, name: str, **fields: Any) -> None:
    sub, ask, pin = STATES[name]
    put(h, user, contact, sub, ask=ask, pending_in=pin, **fields)  # type: ignore[arg-type]


def state_of(h: Harness, user: str, contact: str) -> str | None:
    it = item(h, user, contact)
    if it is None:
        return None
    found = (it.subscription, it.ask, it.pending_in)
    return next(name for name, s in STATES.items() if s == found)


def route(h: Harness, xml: str) -> None:
    """A stanza from the server side (as another user's server would send it)."""
    h.server.router.route(parse(xml))


@pytest.mark.parametrize("kind, before, after, routed", OUTBOUND,
                         ids=[f"{k}-{s}" for k, s, _, _ in OUTBOUND])
def test_outbound_table(h: Harness, kind: str, before: str, after: str | None,
                        routed: bool) -> None:
    set_state(h, ALICE, BOB, before)
    h.user(BOB)
    roster = h.server.hosts["example.org"].modules["roster"]
    seen: list[etree._Element] = []

    async def spy(stanza: etree._Element) -> None:       # what reaches the contact's side
        seen.append(stanza)
    roster.inbound = spy  # type: ignore[attr-defined]
    alice = h.login(f"{ALICE}/phone")
    alice.send(f"<presence type='{kind}' to='{BOB}/pc' id='x1'><status>hi</status></presence>")
    assert state_of(h, ALICE, BOB) == (after or before)
    if routed:                                            # stamped with bare JIDs (§3.1.2)
        assert [etree.tostring(s) for s in seen] == [etree.tostring(parse(
            f"<presence type='{kind}' from='{ALICE}' to='{BOB}' id='x1'>"
            "<status>hi</status></presence>"))]
    else:
        assert seen == []
    approved = item(h, ALICE, BOB).approved                # type: ignore[union-attr]
    assert approved is (kind == "subscribed" and before in ("None", "None + Pending Out", "To"))


@pytest.mark.parametrize("kind, before, after, delivered", INBOUND,
                         ids=[f"{k}-{s}" for k, s, _, _ in INBOUND])
def test_inbound_table(h: Harness, kind: str, before: str, after: str | None,
                       delivered: bool) -> None:
    set_state(h, BOB, ALICE, before)
    set_state(h, ALICE, BOB, "None + Pending Out")        # shows an auto-reply when one comes
    bob = h.login(f"{BOB}/pc")
    route(h, f"<presence type='{kind}' from='{ALICE}' to='{BOB}'/>")
    assert state_of(h, BOB, ALICE) == (after or before)
    got = [k for k in kinds(bob) if k[0] == "presence" and k[1] == kind]
    assert got == ([("presence", kind, ALICE, BOB)] if delivered else [])
    auto_reply = kind == "subscribe" and before in ("From", "From + Pending Out", "Both")
    assert state_of(h, ALICE, BOB) == ("To" if auto_reply else "None + Pending Out")  # §3.1.3


@pytest.mark.parametrize("before, after", [
    ("None", "From"), ("None + Pending Out", "From + Pending Out"), ("To", "Both")])
def test_inbound_subscribe_is_approved_by_a_pre_approval(h: Harness, before: str,
                                                         after: str) -> None:
    set_state(h, BOB, ALICE, before, approved=True)
    set_state(h, ALICE, BOB, "None + Pending Out")
    bob = h.login(f"{BOB}/pc")
    interested(bob)
    route(h, f"<presence type='subscribe' from='{ALICE}' to='{BOB}'/>")
    assert state_of(h, BOB, ALICE) == after
    assert item(h, BOB, ALICE).approved is False           # type: ignore[union-attr]
    assert state_of(h, ALICE, BOB) == "To"                 # the server answered 'subscribed'
    got = kinds(bob)
    assert ("presence", "subscribe", ALICE, BOB) not in got     # §3.4: not delivered
    assert ("iq", "set", None, f"{BOB}/pc") in got                # pushed: approved is gone


# -- flows ---------------------------------------------------------------------------------

def test_full_flow_with_both_online(h: Harness) -> None:
    alice = h.login(f"{ALICE}/phone")
    bob = h.login(f"{BOB}/pc")
    interested(alice)
    interested(bob)
    alice.send(f"<presence type='subscribe' to='{BOB}'/>")
    alice.expect(f"<iq type='set' id='{{any}}' to='{ALICE}/phone'><query xmlns='jabber:iq:roster'"
                 f" ver='1'><item jid='{BOB}' subscription='none' ask='subscribe'/></query></iq>")
    bob.expect(f"<presence type='subscribe' from='{ALICE}' to='{BOB}'/>")
    bob.expect_nothing()                 # not in bob's roster yet: no push (§3.1.3)
    bob.send(f"<presence type='subscribed' to='{ALICE}'/>")
    bob.expect(f"<iq type='set' id='{{any}}' to='{BOB}/pc'><query xmlns='jabber:iq:roster'"
               f" ver='1'><item jid='{ALICE}' subscription='from'/></query></iq>")
    alice.expect(f"<iq type='set' id='{{any}}' to='{ALICE}/phone'><query xmlns='jabber:iq:roster'"
                 f" ver='2'><item jid='{BOB}' subscription='to'/></query></iq>")
    alice.expect(f"<presence type='subscribed' from='{BOB}' to='{ALICE}'/>")
    alice.expect(f"<presence from='{BOB}/pc' to='{ALICE}'/>")           # §3.1.5
    alice.expect_nothing()
    # and back: bob subscribes to alice, alice approves → both
    bob.send(f"<presence type='subscribe' to='{ALICE}'/>")
    alice.expect(f"<presence type='subscribe' from='{BOB}' to='{ALICE}'/>")
    alice.send(f"<presence type='subscribed' to='{BOB}'/>")
    assert state_of(h, ALICE, BOB) == state_of(h, BOB, ALICE) == "Both"
    assert ("presence", None, f"{ALICE}/phone", BOB) in kinds(bob)
    # alice cancels her subscription: bob's 'from' ends, alice stops seeing bob
    kinds(alice)
    alice.send(f"<presence type='unsubscribe' to='{BOB}'/>")
    assert state_of(h, ALICE, BOB) == "From" and state_of(h, BOB, ALICE) == "To"
    assert ("presence", "unavailable", f"{BOB}/pc", ALICE) in kinds(alice)   # §3.3.3
    assert ("presence", "unsubscribe", ALICE, BOB) in kinds(bob)


def test_request_to_an_offline_contact_waits_for_their_next_login(h: Harness) -> None:
    h.user(BOB)
    alice = h.login(f"{ALICE}/phone")
    alice.send(f"<presence type='subscribe' to='{BOB}'><status>it's me</status></presence>")
    assert state_of(h, BOB, ALICE) == "None + Pending In"
    bob = h.login(f"{BOB}/pc", available=False)
    bob.expect_nothing()                            # not before initial presence
    bob.send("<presence/>")
    assert ("presence", "subscribe", ALICE, BOB) in kinds(bob)
    bob.close()
    bob = h.login(f"{BOB}/pc", available=False)     # unanswered: delivered again
    bob.send("<presence/>")
    assert ("presence", "subscribe", ALICE, BOB) in kinds(bob)
    bob.send(f"<presence type='subscribed' to='{ALICE}'/>")
    assert state_of(h, ALICE, BOB) == "To"
    bob.close()
    bob = h.login(f"{BOB}/pc", available=False)
    bob.send("<presence/>")
    assert ("presence", "subscribe", ALICE, BOB) not in kinds(bob)    # answered: done


def test_a_request_during_the_initial_presence_is_delivered_once(h: Harness) -> None:
    """A request that reaches an available session while its initial presence is still being
    broadcast is not delivered a second time as a pending one (§3.1.3): a client answering
    the copy would answer a request made again since."""
    h.user(BOB)
    held: defer.Deferred[None] = defer.Deferred()
    h.server.hosts["example.org"].hooks.add(hooks.presence_broadcast, lambda ev: held)
    bob = h.login(f"{BOB}/pc", available=False)
    bob.send("<presence/>")                         # its broadcast waits for `held`
    alice = h.login(f"{ALICE}/phone")
    alice.send(f"<presence type='subscribe' to='{BOB}'/>")
    assert ("presence", "subscribe", ALICE, BOB) in kinds(bob)     # available: delivered
    held.callback(None)
    assert ("presence", "subscribe", ALICE, BOB) not in kinds(bob)
    bob.close()
    bob = h.login(f"{BOB}/pc", available=False)     # still unanswered: at the next login
    bob.send("<presence/>")
    assert ("presence", "subscribe", ALICE, BOB) in kinds(bob)


def test_a_stranger_request_stays_out_of_the_roster_until_approved(h: Harness) -> None:
    bob = h.login(f"{BOB}/pc")
    interested(bob)
    alice = h.login(f"{ALICE}/phone")
    alice.send(f"<presence type='subscribe' to='{BOB}'/>")
    assert kinds(bob) == [("presence", "subscribe", ALICE, BOB)]
    assert item(h, BOB, ALICE) == RosterItem(JID.parse(ALICE), pending_in=True, listed=False)
    bob.send(f"<presence type='subscribed' to='{ALICE}'/>")
    assert item(h, BOB, ALICE) == RosterItem(JID.parse(ALICE), subscription="from")


def test_denying_a_stranger_leaves_no_trace(h: Harness) -> None:
    bob = h.login(f"{BOB}/pc")
    interested(bob)
    alice = h.login(f"{ALICE}/phone")
    alice.send(f"<presence type='subscribe' to='{BOB}'/>")
    bob.send(f"<presence type='unsubscribed' to='{ALICE}'/>")
    assert item(h, BOB, ALICE) is None
    assert [k for k in kinds(bob) if k[0] == "iq"] == []      # never pushed
    assert state_of(h, ALICE, BOB) == "None"
    assert ("presence", "unsubscribed", BOB, ALICE) in kinds(alice)


def test_a_cancelled_request_is_forgotten(h: Harness) -> None:
    h.user(BOB)
    alice = h.login(f"{ALICE}/phone")
    alice.send(f"<presence type='subscribe' to='{BOB}'/>")
    alice.send(f"<presence type='unsubscribe' to='{BOB}'/>")
    assert item(h, BOB, ALICE) is None and state_of(h, ALICE, BOB) == "None"
    bob = h.login(f"{BOB}/pc", available=False)
    bob.send("<presence/>")
    assert ("presence", "subscribe", ALICE, BOB) not in kinds(bob)


def test_pre_approval_then_request_is_approved_at_once(h: Harness) -> None:
    bob = h.login(f"{BOB}/pc")
    interested(bob)
    bob.send(f"<presence type='subscribed' to='{ALICE}'/>")            # §3.4.1 rule 4
    bob.expect(f"<iq type='set' id='{{any}}' to='{BOB}/pc'><query xmlns='jabber:iq:roster' "
               f"ver='1'><item jid='{ALICE}' subscription='none' approved='true'/></query></iq>")
    bob.expect_nothing()
    alice = h.login(f"{ALICE}/phone")
    interested(alice)
    alice.send(f"<presence type='subscribe' to='{BOB}'/>")
    got = kinds(alice)
    assert ("presence", "subscribed", BOB, ALICE) in got
    assert ("presence", None, f"{BOB}/pc", ALICE) in got               # bob's presence
    assert state_of(h, ALICE, BOB) == "To" and state_of(h, BOB, ALICE) == "From"
    assert ("presence", "subscribe", ALICE, BOB) not in kinds(bob)


def test_unsubscribed_cancels_a_pre_approval(h: Harness) -> None:
    bob = h.login(f"{BOB}/pc")
    bob.send(f"<presence type='subscribed' to='{ALICE}'/>")
    bob.send(f"<presence type='unsubscribed' to='{ALICE}'/>")
    assert item(h, BOB, ALICE) == RosterItem(JID.parse(ALICE))
    alice = h.login(f"{ALICE}/phone")
    alice.send(f"<presence type='subscribe' to='{BOB}'/>")
    assert state_of(h, BOB, ALICE) == "None + Pending In"


def test_request_to_a_user_that_does_not_exist_is_answered_unsubscribed(h: Harness) -> None:
    alice = h.login(f"{ALICE}/phone")
    alice.send("<presence type='subscribe' to='ghost@example.org'/>")
    assert ("presence", "unsubscribed", "ghost@example.org", ALICE) in kinds(alice)
    assert state_of(h, ALICE, "ghost@example.org") == "None"


def test_subscribing_to_oneself_is_ignored(h: Harness) -> None:
    alice = h.login(f"{ALICE}/phone")
    alice.send(f"<presence type='subscribe' to='{ALICE}'/>")
    alice.send("<presence type='subscribe'/>")
    assert item(h, ALICE, ALICE) is None and kinds(alice) == []


def test_subscription_across_virtual_hosts(make_harness: Callable[..., Harness]) -> None:
    h = make_harness(modules=MODULES, hosts=("example.org", "example.net"))
    carol = h.login("carol@example.net/x")
    alice = h.login(f"{ALICE}/phone")
    alice.send("<presence type='subscribe' to='carol@example.net'/>")
    assert ("presence", "subscribe", ALICE, "carol@example.net") in kinds(carol)
    carol.send(f"<presence type='subscribed' to='{ALICE}'/>")
    assert state_of(h, ALICE, "carol@example.net") == "To"
    assert state_of(h, "carol@example.net", ALICE) == "From"
    assert ("presence", None, "carol@example.net/x", ALICE) in kinds(alice)


def test_requests_from_strangers_are_bounded(make_harness: Callable[..., Harness]) -> None:
    h = make_harness(modules={**MODULES, "roster": {"max_items": 2}})
    h.user(BOB)
    for i in range(3):
        route(h, f"<presence type='subscribe' from='s{i}@example.org' to='{BOB}'/>")
    bob = h.login(f"{BOB}/pc", available=False)
    bob.send("<presence/>")
    assert [k[2] for k in kinds(bob) if k[1] == "subscribe"] == ["s0@example.org",
                                                                 "s1@example.org"]
