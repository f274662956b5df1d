# tests: tests/modules/test_subscriptions.py
"""RFC 6121 Appendix A: the subscription states and their transitions, as data.

A state is (subscription, pending out, pending in): "None + Pending Out" is ("none", True,
False). A missing roster row is "None". The tables list only the rows that change the state;
every other row is "no state change". Routing and delivery rules live with their use
(modules/roster/__init__.py).
"""
from __future__ import annotations

from dataclasses import replace

from storage.roster import RosterItem, Subscription

State = tuple[Subscription, bool, bool]
NONE: State = ("none", False, False)
NONE_PO: State = ("none", True, False)
NONE_PI: State = ("none", False, True)
NONE_PO_PI: State = ("none", True, True)
TO: State = ("to", False, False)
TO_PI: State = ("to", False, True)
FROM: State = ("from", False, False)
FROM_PO: State = ("from", True, False)
BOTH: State = ("both", False, False)
STATES = (NONE, NONE_PO, NONE_PI, NONE_PO_PI, TO, TO_PI, FROM, FROM_PO, BOTH)

# Rows that are not listed keep their state. A missing row is "None".
OUTBOUND: dict[str, dict[State, State]] = {
    # A.2.1: the user asks for the contact's presence (always routed, §3.1.2).
    "subscribe": {NONE: NONE_PO, NONE_PI: NONE_PO_PI, FROM: FROM_PO},
    # A.2.2: the user approves (routed only if the state changes; §3.4 pre-approval otherwise).
    "subscribed": {NONE_PI: FROM, NONE_PO_PI: FROM_PO, TO_PI: BOTH},
    # A.2.3: the user cancels its subscription (always routed, §3.3.2).
    "unsubscribe": {NONE_PO: NONE, NONE_PO_PI: NONE_PI, TO: NONE, TO_PI: NONE_PI,
                    FROM_PO: FROM, BOTH: FROM},
    # A.2.4: the user denies or cancels the contact's subscription (routed if it changes).
    "unsubscribed": {NONE_PI: NONE, NONE_PO_PI: NONE_PO, TO_PI: TO, FROM: NONE,
                     FROM_PO: NONE_PO, BOTH: TO},
}
INBOUND: dict[str, dict[State, State]] = {
    # A.3.1: a request arrives (delivered only if the state changes).
    "subscribe": {NONE: NONE_PI, NONE_PO: NONE_PO_PI, TO: TO_PI},
    # A.3.2–A.3.4: delivered to the user only if the state changes.
    "subscribed": {NONE_PO: TO, NONE_PO_PI: TO_PI, FROM_PO: BOTH},
    "unsubscribe": {NONE_PI: NONE, NONE_PO_PI: NONE_PO, TO_PI: TO, FROM: NONE,
                    FROM_PO: NONE_PO, BOTH: TO},
    "unsubscribed": {NONE_PO: NONE, NONE_PO_PI: NONE_PI, TO: NONE, TO_PI: NONE_PI,
                     FROM_PO: FROM, BOTH: FROM},
}
PRE_APPROVABLE = frozenset({NONE, NONE_PO, TO})       # §3.4.1 rule 3
PRE_APPROVED = {NONE: FROM, NONE_PO: FROM_PO, TO: BOTH}  # §3.4 + A.3.1: approved on arrival
AUTO_REPLY = frozenset({FROM, FROM_PO, BOTH})          # §3.1.3: already subscribed → 'subscribed'


def state(item: RosterItem | None) -> State:
    if item is None:
        return NONE
    return (item.subscription, item.ask, item.pending_in)


def with_state(item: RosterItem, s: State) -> RosterItem:
    return replace(item, subscription=s[0], ask=s[1], pending_in=s[2])


def has_from(item: RosterItem | None) -> bool:
    return item is not None and item.subscription in ("from", "both")


def has_to(item: RosterItem | None) -> bool:
    return item is not None and item.subscription in ("to", "both")
