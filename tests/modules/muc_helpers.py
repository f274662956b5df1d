"""Shared pieces of the MUC harness tests (tests/modules/test_muc_*.py)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from lxml import etree

from tests.harness.server import HarnessClient, Harness

SERVICE = "conference.example.org"
ROOM = f"room@{SERVICE}"
MUC = "http://jabber.org/protocol/muc"
USER = MUC + "#user"
ADMIN = MUC + "#admin"
OWNER = MUC + "#owner"
STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
MODULES: dict[str, dict[str, Any]] = {"disco": {}, "roster": {}, "presence": {}, "muc": {}}


@pytest.fixture
def muc(make_harness: Callable[..., Harness]) -> Callable[..., Harness]:
    """A harness with the MUC module; keyword `muc` sets [modules.muc] options."""
    def make(**options: Any) -> Harness:
        return make_harness(modules={**MODULES, "muc": options})
    return make


@pytest.fixture
def h(muc: Callable[..., Harness]) -> Harness:
    return muc()


def join_xml(nick: str, room: str = ROOM, extra: str = "", id: str | None = None) -> str:
    ident = f" id='{id}'" if id else ""
    return f"<presence to='{room}/{nick}'{ident}><x xmlns='{MUC}'>{extra}</x></presence>"


def join(s: HarnessClient, nick: str, room: str = ROOM, extra: str = "") -> list[etree._Element]:
    """Join and return everything the joiner got (presence, history, subject)."""
    s.send(join_xml(nick, room, extra))
    return s.received()


def field(var: str, *values: str) -> str:
    vals = "".join(f"<value>{v}</value>" for v in values)
    return f"<field var='{var}'>{vals}</field>"


def configure(owner: HarnessClient, room: str = ROOM, **fields: str | bool | int | list[str]
              ) -> etree._Element:
    """Submit muc#roomconfig fields (muc#roomconfig_<name> unless the name has a '#' or is
    ejabberd's `mam`)."""
    body = field("FORM_TYPE", "http://jabber.org/protocol/muc#roomconfig")
    for name, value in fields.items():
        var = name if "#" in name or name == "mam" else f"muc#roomconfig_{name}"
        if isinstance(value, bool):
            body += field(var, "1" if value else "0")
        elif isinstance(value, list):
            body += field(var, *value)
        else:
            body += field(var, str(value))
    owner.send(f"<iq type='set' id='cfg' to='{room}'><query xmlns='{OWNER}'>"
               f"<x xmlns='jabber:x:data' type='submit'>{body}</x></query></iq>")
    got = owner.received()
    replies = [e for e in got if e.tag == "{jabber:client}iq"]
    assert replies and replies[-1].get("type") == "result", \
        [etree.tostring(e).decode() for e in got]
    return replies[-1]


def create(owner: HarnessClient, nick: str = "owner", room: str = ROOM,
           **fields: str | bool | int | list[str]) -> None:
    """Create and configure a room (an instant room when no fields are given)."""
    got = join(owner, nick, room)
    assert any(s.get("code") == "201" for s in got[0].iter(f"{{{USER}}}status")), \
        etree.tostring(got[0]).decode()
    configure(owner, room, **fields)


def admin_set(s: HarnessClient, items: str, room: str = ROOM, id: str = "a1") -> etree._Element:
    """Send a muc#admin set; returns the answer, leaving whatever else came in the outbox."""
    s.send(f"<iq type='set' id='{id}' to='{room}'><query xmlns='{ADMIN}'>{items}</query></iq>")
    got = s.received()
    iqs = [e for e in got if e.tag == "{jabber:client}iq"]
    s.outbox[:0] = [e for e in got if e.tag != "{jabber:client}iq"]
    assert iqs, "no IQ answer"
    return iqs[-1]


def codes(el: etree._Element) -> set[int]:
    return {int(c.get("code") or 0) for c in el.iter(f"{{{USER}}}status")}


def item(el: etree._Element) -> etree._Element:
    found = el.find(f"{{{USER}}}x/{{{USER}}}item")
    assert found is not None, etree.tostring(el).decode()
    return found


def error_of(el: etree._Element) -> tuple[str | None, str | None]:
    """(type, condition) of an error stanza."""
    e = el.find("{jabber:client}error")
    assert e is not None, etree.tostring(el).decode()
    cond = next((etree.QName(c).localname for c in e
                 if etree.QName(c).namespace == STANZAS and etree.QName(c).localname != "text"),
                None)
    return e.get("type"), cond


def kinds(got: list[etree._Element]) -> list[str]:
    """A compact trace: 'presence:nick', 'message:body', 'subject'."""
    out = []
    for e in got:
        name = etree.QName(e).localname
        if name == "message" and e.find("{jabber:client}subject") is not None and \
                e.find("{jabber:client}body") is None:
            out.append("subject")
        elif name == "message":
            out.append(f"message:{e.findtext('{jabber:client}body')}")
        else:
            out.append(f"{name}:{(e.get('from') or '').partition('/')[2]}")
    return out
