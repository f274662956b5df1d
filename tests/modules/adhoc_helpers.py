"""Driving XEP-0050 commands from a harness client: execute, submit a form, read the answer."""
from __future__ import annotations

from itertools import count

from lxml import etree

from tests.harness.stream import StreamClient

CMD = "http://jabber.org/protocol/commands"
ADMIN = "http://jabber.org/protocol/admin"
X = "jabber:x:data"
_ids = count()


def command(client: StreamClient, node: str, *, action: str | None = "execute",
            sessionid: str | None = None, fields: dict[str, list[str] | str] | None = None,
            to: str = "example.org") -> etree._Element:
    """Send one <command/>; returns the IQ answer (result or error)."""
    attrs = f" node='{node}'" if node else ""
    if action is not None:
        attrs += f" action='{action}'"
    if sessionid is not None:
        attrs += f" sessionid='{sessionid}'"
    form = ""
    if fields is not None:
        parts = [f"<field var='FORM_TYPE' type='hidden'><value>{ADMIN}</value></field>"]
        for var, values in fields.items():
            vals = [values] if isinstance(values, str) else values
            parts.append(f"<field var='{var}'>" + "".join(f"<value>{v}</value>" for v in vals)
                         + "</field>")
        form = f"<x xmlns='{X}' type='submit'>{''.join(parts)}</x>"
    iq_id = f"c{next(_ids)}"
    client.send(f"<iq type='set' id='{iq_id}' to='{to}'><command xmlns='{CMD}'{attrs}>"
                f"{form}</command></iq>")
    box = client.outbox             # the rest stays for the test (announcements, ...)
    for el in box:
        if el.tag == "{jabber:client}iq" and el.get("id") == iq_id:
            box.remove(el)
            return el
    raise AssertionError(f"no answer to {iq_id}")


def cmd(answer: etree._Element) -> etree._Element:
    el = answer.find(f"{{{CMD}}}command")
    assert el is not None, etree.tostring(answer)
    return el


def error(answer: etree._Element) -> tuple[str, str | None]:
    """(stanza error condition, XEP-0050 specific condition or None)."""
    assert answer.get("type") == "error", etree.tostring(answer)
    err = answer.find("{jabber:client}error")
    assert err is not None
    names = [(etree.QName(c).namespace, etree.QName(c).localname) for c in err]
    general = next(n for ns, n in names if ns == "urn:ietf:params:xml:ns:xmpp-stanzas"
                   and n != "text")
    specific = next((n for ns, n in names if ns == CMD), None)
    return general, specific


def values(el: etree._Element, var: str) -> list[str]:
    field = el.find(f".//{{{X}}}field[@var='{var}']")
    assert field is not None, f"no field {var} in {etree.tostring(el)}"
    return [v.text or "" for v in field.findall(f"{{{X}}}value")]


def notes(el: etree._Element) -> list[tuple[str, str]]:
    return [(n.get("type", "info"), n.text or "") for n in cmd(el).findall(f"{{{CMD}}}note")]


def run(client: StreamClient, node: str, fields: dict[str, list[str] | str] | None = None,
        to: str = "example.org") -> etree._Element:
    """Execute, and if a form comes back, complete it with `fields`; the final answer."""
    first = command(client, node, to=to)
    if first.get("type") == "error" or cmd(first).get("status") == "completed":
        return first
    return command(client, node, action="complete", sessionid=cmd(first).get("sessionid"),
                   fields=fields or {}, to=to)
