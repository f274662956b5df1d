# tests: modules/roster/, modules/presence.py, modules/last.py
"""Helpers for the contact-list tests on the in-memory harness."""
from __future__ import annotations

from typing import Any

from lxml import etree

from modules.roster import RosterService
from storage.roster import RosterItem, Subscription
from tests.harness.server import HarnessClient, Harness, resolve
from stanzas.jid import JID

MODULES: dict[str, dict[str, Any]] = {"disco": {}, "roster": {}, "presence": {}, "last": {}}
ROSTER = "jabber:iq:roster"


def service(h: Harness, host: str = "example.org") -> RosterService:
    found = h.server.hosts[host].services[RosterService]
    assert isinstance(found, RosterService)
    return found


def item(h: Harness, user: str, contact: str) -> RosterItem | None:
    roster = resolve(service(h, JID.parse(user).domain).roster(JID.parse(user)))
    got: RosterItem | None = roster.items.get(JID.parse(contact))
    return got


def put(h: Harness, user: str, contact: str, subscription: Subscription = "none",
        **fields: Any) -> None:
    """Set `user`'s item for `contact` as is: written and pushed, no stanzas exchanged."""
    h.user(user)
    resolve(service(h, JID.parse(user).domain).put_item(
        JID.parse(user), RosterItem(JID.parse(contact), subscription=subscription, **fields)))


def make_contacts(h: Harness, a: str, b: str) -> None:
    """`a` and `b` see each other's presence ('both' on both sides)."""
    put(h, a, b, "both")
    put(h, b, a, "both")


def interested(session: HarnessClient) -> etree._Element:
    """Request the roster (making the session interested); returns the result. Drains the
    session's inbox first."""
    session.received()
    session.send(f"<iq type='get' id='rg'><query xmlns='{ROSTER}'/></iq>")
    got = session.received()
    assert len(got) == 1 and got[0].get("type") == "result", [etree.tostring(g) for g in got]
    return got[0]


def kinds(session: HarnessClient) -> list[tuple[str, str | None, str | None, str | None]]:
    """What a session received, as (element, type, from, to) tuples; drains it."""
    return [(etree.QName(e).localname, e.get("type"), e.get("from"), e.get("to"))
            for e in session.received()]
