# tests: modules/pep/, modules/caps.py, modules/private.py, modules/bookmarks.py
"""Helpers for the PEP, caps, private-storage and bookmark tests on the in-memory harness:
clients that advertise XEP-0115 caps (and answer the server's disco#info), and pubsub
request builders."""
from __future__ import annotations

import base64
import hashlib
from typing import Any

from lxml import etree

from tests.harness.server import HarnessClient, Harness

MODULES: dict[str, dict[str, Any]] = {"disco": {}, "roster": {}, "presence": {}, "caps": {},
                                      "pep": {}}
PUBSUB = "http://jabber.org/protocol/pubsub"
OWNER = PUBSUB + "#owner"
EVENT = PUBSUB + "#event"
ERRORS = PUBSUB + "#errors"
CAPS = "http://jabber.org/protocol/caps"
INFO = "http://jabber.org/protocol/disco#info"
TUNE = "http://jabber.org/protocol/tune"
MOOD = "http://jabber.org/protocol/mood"
IDENTITY = ("client", "pc", "", "test")


def caps(features: list[str], identity: tuple[str, str, str, str] = IDENTITY) -> tuple[str, str]:
    """(ver, the disco#info <query/> children) for a client with these features (§5.1)."""
    features = sorted(set(features) | {INFO})
    s = "/".join(identity) + "<" + "".join(f + "<" for f in features)
    ver = base64.b64encode(hashlib.sha1(s.encode()).digest()).decode()
    c, t, lang, name = identity
    body = f"<identity category='{c}' type='{t}' name='{name}'/>" + \
        "".join(f"<feature var='{f}'/>" for f in features)
    return ver, body


def caps_presence(ver: str, extra: str = "", hash: str = "sha-1") -> str:
    return (f"<presence>{extra}<c xmlns='{CAPS}' hash='{hash}' node='http://test.example/c' "
            f"ver='{ver}'/></presence>")


def disco_query(session: HarnessClient) -> etree._Element | None:
    """Take the server's disco#info question to `session` out of its inbox, if any."""
    for el in list(session.outbox):
        if el.tag == "{jabber:client}iq" and el.get("type") == "get" \
                and el.find(f"{{{INFO}}}query") is not None:
            session.outbox.remove(el)
            return el
    return None


def answer(session: HarnessClient, question: etree._Element, body: str) -> None:
    node = question.find(f"{{{INFO}}}query").get("node")  # type: ignore[union-attr]
    session.send(f"<iq type='result' id='{question.get('id')}' to='{question.get('from')}'>"
                 f"<query xmlns='{INFO}' node='{node}'>{body}</query></iq>")


def advertise(session: HarnessClient, features: list[str], status: str = "") -> None:
    """Send available presence with caps for `features`; answer the server's question."""
    ver, body = caps(features)
    session.send(caps_presence(ver, f"<status>{status}</status>" if status else ""))
    question = disco_query(session)
    if question is not None:
        answer(session, question, body)


def online(h: Harness, jid: str, features: list[str] | None = None) -> HarnessClient:
    """Log in and send initial presence with caps for `features` (none: no caps at all)."""
    s = h.login(jid, available=False)
    if features is None:
        s.send("<presence/>")
    else:
        advertise(s, features)
    return s


def notify(*nodes: str) -> list[str]:
    return [n + "+notify" for n in nodes] + list(nodes)


def publish(node: str, item: str = "", item_id: str | None = "1", options: str = "",
            to: str = "", iq_id: str = "pub") -> str:
    ident = f" id='{item_id}'" if item_id is not None else ""
    body = f"<item{ident}>{item}</item>" if item is not None else ""
    opts = ""
    if options:
        opts = (f"<publish-options><x xmlns='jabber:x:data' type='submit'>"
                f"<field var='FORM_TYPE' type='hidden'><value>{PUBSUB}#publish-options</value>"
                f"</field>{options}</x></publish-options>")
    target = f" to='{to}'" if to else ""
    return (f"<iq type='set' id='{iq_id}'{target}><pubsub xmlns='{PUBSUB}'>"
            f"<publish node='{node}'>{body}</publish>{opts}</pubsub></iq>")


def field(var: str, *values: str) -> str:
    return f"<field var='{var}'>" + "".join(f"<value>{v}</value>" for v in values) + "</field>"


def tune(artist: str) -> str:
    return f"<tune xmlns='{TUNE}'><artist>{artist}</artist></tune>"


def items(node: str, to: str, iq_id: str = "items", inner: str = "", attrs: str = "") -> str:
    return (f"<iq type='get' id='{iq_id}' to='{to}'><pubsub xmlns='{PUBSUB}'>"
            f"<items node='{node}'{attrs}>{inner}</items></pubsub></iq>")


def check_error(reply: etree._Element, condition: str, app: str | None = None,
                kind: str | None = None, feature: str | None = None) -> None:
    """`reply` is an error with this RFC 6120 condition and pubsub#errors condition."""
    assert reply.get("type") == "error", etree.tostring(reply)
    err = reply.find("{jabber:client}error")
    assert err is not None, etree.tostring(reply)
    names = {etree.QName(c).localname: c for c in err if isinstance(c.tag, str)}
    assert condition in names, etree.tostring(reply)
    if kind is not None:
        assert err.get("type") == kind, etree.tostring(reply)
    if app is not None:
        found = err.find(f"{{{ERRORS}}}{app}")
        assert found is not None, etree.tostring(reply)
        if feature is not None:
            assert found.get("feature") == feature, etree.tostring(reply)


def ok(reply: etree._Element) -> etree._Element:
    assert reply.get("type") == "result", etree.tostring(reply)
    return reply


def events(session: HarnessClient) -> list[etree._Element]:
    """The pubsub#event notifications in a session's inbox (drained), other stanzas dropped."""
    return [e.find(f"{{{EVENT}}}event") for e in session.received()  # type: ignore[misc]
            if e.find(f"{{{EVENT}}}event") is not None]


def event_items(session: HarnessClient) -> list[tuple[str, str, str]]:
    """(from, node, item id or 'retract:<id>') of each notification received (drained)."""
    out = []
    for msg in session.received():
        ev = msg.find(f"{{{EVENT}}}event")
        if ev is None:
            continue
        for child in ev:
            node = child.get("node") or ""
            if child.tag == f"{{{EVENT}}}items":
                for it in child:
                    prefix = "retract:" if it.tag == f"{{{EVENT}}}retract" else ""
                    out.append((msg.get("from") or "", node, prefix + (it.get("id") or "")))
            else:
                out.append((msg.get("from") or "", node, etree.QName(child).localname))
    return out


def result_of(session: HarnessClient, xml: str) -> etree._Element:
    """Send an IQ and return its answer (other stanzas stay in the inbox)."""
    session.send(xml)
    for el in list(session.outbox):
        if el.tag == "{jabber:client}iq" and el.get("type") in ("result", "error"):
            session.outbox.remove(el)
            return el
    raise AssertionError(f"{session.jid}: no answer to {xml}")
