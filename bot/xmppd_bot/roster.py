# tests: tests/bot/test_bot.py
"""The roster on the wire (RFC 6121 §2): the query, its items as `Contact`s, and the set that
adds, updates or removes one item. The requests themselves go through `Connection`."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence

from xmppd_bot.jid import JID, JIDError
from xmppd_bot.message import Contact, Subscription

NS_ROSTER = "jabber:iq:roster"
_SUBSCRIPTIONS: dict[str, Subscription] = {"none": "none", "to": "to", "from": "from",
                                         "both": "both"}


def query() -> ET.Element:
    """The payload of a roster get (§2.1.3)."""
    return ET.Element("{%s}query" % NS_ROSTER)


def contacts(result: ET.Element) -> list[Contact]:
    """The items of a roster result (§2.1.4); items with a bad JID are skipped."""
    found = []
    for item in result.iter("{%s}item" % NS_ROSTER):
        try:
            jid = JID.parse(item.get("jid") or "")
        except JIDError:
            continue
        found.append(Contact(
            jid=jid, name=item.get("name") or "",
            subscription=_SUBSCRIPTIONS.get(item.get("subscription") or "none", "none"),
            pending_out=item.get("ask") == "subscribe",
            groups=tuple(g.text or "" for g in item.findall("{%s}group" % NS_ROSTER))))
    return found


def item_set(jid: JID, name: str, groups: Sequence[str], remove: bool = False) -> ET.Element:
    """The payload of a roster set: add or update (§2.3), or remove (§2.5)."""
    q = ET.Element("{%s}query" % NS_ROSTER)
    item = ET.SubElement(q, "{%s}item" % NS_ROSTER, jid=str(jid.bare))
    if remove:
        item.set("subscription", "remove")
    else:
        if name:
            item.set("name", name)
        for g in groups:
            ET.SubElement(item, "{%s}group" % NS_ROSTER).text = g
    return q
