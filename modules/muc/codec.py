# tests: tests/modules/test_muc_occupants.py
"""The MUC wire format: namespaces, the join request (XEP-0045 §7.2, §7.2.14 history limits),
the muc#user extension on what rooms send, error stanzas with `by` (§7.2.x examples), and the
cleaning of what occupants send before it is reflected (§17.3 "If a MUC service receives such
extended presence information from an occupant, it MUST NOT reflect it"; XEP-0421 §4, XEP-0359
§3.1: ids claiming to be the room's are the room's to set)."""
from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass

from lxml import etree

from stanzas import delay, ns
from stanzas.errors import StanzaError, error_reply
from stanzas.jid import JID

NS_MUC = ns.MUC
NS_USER = NS_MUC + "#user"
NS_ADMIN = NS_MUC + "#admin"
NS_OWNER = NS_MUC + "#owner"
NS_REQUEST = NS_MUC + "#request"
NS_STABLE_ID = NS_MUC + "#stable_id"
NS_SELF_PING = NS_MUC + "#self-ping-optimization"       # XEP-0410 §3.3
NS_OCCUPANT_ID = ns.OCCUPANT_ID               # XEP-0421
NS_CONFERENCE = ns.CONFERENCE                   # XEP-0249

_C = "{%s}" % ns.CLIENT
_E = etree._Element
MUC_X, USER_X = "{%s}x" % NS_MUC, "{%s}x" % NS_USER
OCCUPANT_ID = "{%s}occupant-id" % NS_OCCUPANT_ID
STANZA_ID = "{%s}stanza-id" % ns.STANZA_ID
DELAY = "{%s}delay" % ns.DELAY
BODY, SUBJECT, THREAD = _C + "body", _C + "subject", _C + "thread"

# XEP-0045 §18.1.2 Ghost Users: "delivery-related errors" after which an occupant is removed.
# RFC 6121 §8.5.3.2.1 makes a server answer a groupchat message to a gone resource with
# <service-unavailable/>, so that counts too.
DELIVERY_ERRORS = frozenset({"gone", "item-not-found", "recipient-unavailable", "redirect",
                             "remote-server-not-found", "remote-server-timeout",
                             "service-unavailable"})


def el(tag: str, namespace: str, parent: _E | None = None, **attrs: str) -> _E:
    name = "{%s}%s" % (namespace, tag)
    if parent is None:
        return etree.Element(name, attrs, nsmap={None: namespace})  # type: ignore[dict-item]
    if etree.QName(parent).namespace == namespace:
        return etree.SubElement(parent, name, attrs)
    return etree.SubElement(parent, name, attrs, nsmap={None: namespace})  # type: ignore[dict-item]


def stanza(kind: str, sender: JID | str, to: JID | str | None = None, *, type: str | None = None,
           id: str | None = None) -> _E:
    out = etree.Element(_C + kind, nsmap={None: ns.CLIENT})  # type: ignore[dict-item]
    out.set("from", str(sender))
    if to is not None:
        out.set("to", str(to))
    if type is not None:
        out.set("type", type)
    if id is not None:
        out.set("id", id)
    return out


def parse_stamp(text: str) -> float:
    """XEP-0082 DateTime to POSIX seconds; bad-request if it is not one."""
    try:
        return delay.parse_stamp(text)
    except ValueError as e:
        raise StanzaError.bad_request(str(e)) from None


def add_delay(msg: _E, room: JID, at: float) -> None:
    """History and the subject on join say when they were sent (§7.2.15, XEP-0203)."""
    delay.delay(delay.stamp(at, micro=True), str(room), msg)


@dataclass(frozen=True, slots=True)
class JoinRequest:
    """The <x xmlns='http://jabber.org/protocol/muc'/> of a join (§7.2.1, §7.2.5, §7.2.14)."""
    password: str | None = None
    maxchars: int | None = None
    maxstanzas: int | None = None
    seconds: int | None = None
    since: float | None = None

    @classmethod
    def parse(cls, x: _E) -> JoinRequest:
        password = x.findtext("{%s}password" % NS_MUC)
        h = x.find("{%s}history" % NS_MUC)
        if h is None:
            return cls(password)
        since = h.get("since")
        return cls(password, _count(h, "maxchars"), _count(h, "maxstanzas"),
                   _count(h, "seconds"), None if since is None else parse_stamp(since))


def _count(h: _E, attr: str) -> int | None:
    v = h.get(attr)
    if v is None:
        return None
    try:
        n = int(v)
    except ValueError:
        raise StanzaError.bad_request(f"history {attr} must be a number") from None
    if n < 0:
        raise StanzaError.bad_request(f"history {attr} must not be negative")
    return n


@dataclass(frozen=True, slots=True)
class Item:
    """The <item/> of a muc#user <x/> (§7.2.3, §17.3.8: role and affiliation always)."""
    affiliation: str
    role: str
    jid: JID | None = None              # the occupant's full JID, to those who may see it
    nick: str | None = None             # new nick (303), or in role lists
    actor: str | None = None            # nick of who kicked or banned (§8.2, §9.1)
    reason: str | None = None


def user_x(item: Item | None, codes: Iterable[int] = (), parent: _E | None = None) -> _E:
    x = el("x", NS_USER, parent)
    if item is not None:
        i = el("item", NS_USER, x, affiliation=item.affiliation, role=item.role)
        if item.jid is not None:
            i.set("jid", str(item.jid))
        if item.nick is not None:
            i.set("nick", item.nick)
        if item.actor is not None:
            el("actor", NS_USER, i, nick=item.actor)
        if item.reason:
            el("reason", NS_USER, i).text = item.reason
    for code in sorted(set(codes)):
        el("status", NS_USER, x, code=str(code))
    return x


def error(original: _E, err: StanzaError, room: JID) -> _E:
    """The error answer to `original`, `by` the room (§7.2.x examples); presence errors
    carry the empty muc <x/> the examples show (never the password the user sent)."""
    reply = error_reply(original, err)
    e = reply.find(_C + "error")
    if e is not None:
        e.set("by", str(room))
    if etree.QName(original).localname == "presence":
        if e is not None:
            e.addprevious(el("x", NS_MUC))
        else:
            reply.append(el("x", NS_MUC))
    elif etree.QName(original).localname == "message":
        # The XEP's examples return the content (§8.1, §9.5); RFC 6120 §8.3.1 allows it.
        for child in original:
            if isinstance(child.tag, str) and child.tag in (BODY, SUBJECT, USER_X):
                assert e is not None
                e.addprevious(copy.deepcopy(child))
    return reply


def condition(el_: _E) -> str | None:
    """The defined condition of an error stanza, or None."""
    e = el_.find(_C + "error")
    if e is None:
        return None
    for c in e:
        if isinstance(c.tag, str) and c.tag.startswith("{%s}" % ns.STANZA_ERRORS) \
                and not c.tag.endswith("}text"):
            return etree.QName(c).localname
    return None


_PRESENCE_DROPPED = frozenset({MUC_X, USER_X, OCCUPANT_ID})


def clean_presence(presence: _E) -> _E:
    """What of an occupant's presence is reflected: show, status, priority and extensions
    (caps, avatar hash), not the MUC elements or an occupant id (§17.3.6, XEP-0421 §4)."""
    out = etree.Element(_C + "presence", nsmap={None: ns.CLIENT})  # type: ignore[dict-item]
    for child in presence:
        if isinstance(child.tag, str) and child.tag not in _PRESENCE_DROPPED \
                and not child.tag.startswith("{%s}" % ns.STANZA_ERRORS):
            out.append(copy.deepcopy(child))
    return out


def clean_message(message: _E, room: JID, *, keep_user_x: bool = False) -> _E:
    """A copy of an occupant's message with what only the room may say removed: stanza-ids
    and delays claiming the room (XEP-0359 §3.1, XEP-0203), occupant ids (XEP-0421 §4),
    the muc#user <x/> (XEP-0313 §8.2: "MUST strip any existing <x/>"), unless `keep_user_x`."""
    out = etree.Element(_C + "message", nsmap={None: ns.CLIENT})  # type: ignore[dict-item]
    for attr in ("type", "id", "{%s}lang" % ns.XML):
        v = message.get(attr)
        if v is not None:
            out.set(attr, v)
    for child in message:
        if not isinstance(child.tag, str):
            continue
        if child.tag == OCCUPANT_ID or (child.tag == USER_X and not keep_user_x):
            continue
        if child.tag in (STANZA_ID, DELAY) and child.get("by", child.get("from")) in (
                str(room), room.domain):
            continue
        out.append(copy.deepcopy(child))
    return out


def is_subject_change(message: _E) -> bool:
    """§8.1: a <subject/> without <body/> or <thread/>."""
    return message.find(SUBJECT) is not None and message.find(BODY) is None \
        and message.find(THREAD) is None
