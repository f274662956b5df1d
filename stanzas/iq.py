# tests: tests/core/test_stanzas.py
"""IQ builders (RFC 6120 §8.2.3): replies keep the id and swap the addresses."""
from __future__ import annotations

import secrets
from typing import Any

from lxml import etree

from stanzas import ns

_E = etree._Element
Reply = _E


def result(req: _E, payload: _E | None = None) -> _E:
    """The `type='result'` answer to an IQ get/set."""
    if req.get("type") not in ("get", "set"):
        raise ValueError("only get/set IQs are answered (RFC 6120 §8.2.3)")
    el = etree.Element("{%s}iq" % ns.CLIENT, nsmap=_default_ns(ns.CLIENT), type="result")
    el.set("id", req.get("id") or "")
    if (sender := req.get("from")) is not None:
        el.set("to", sender)
    if (target := req.get("to")) is not None:
        el.set("from", target)
    if payload is not None:
        el.append(payload)
    return el


def request(type: str, *, to: str | None = None, payload: _E | None = None,
            id: str | None = None, sender: str | None = None) -> _E:
    """A new IQ get/set with a fresh unguessable id unless one is given."""
    el = etree.Element("{%s}iq" % ns.CLIENT, nsmap=_default_ns(ns.CLIENT), type=type,
                       id=id or secrets.token_hex(8))
    if to is not None:
        el.set("to", to)
    if sender is not None:
        el.set("from", sender)
    if payload is not None:
        el.append(payload)
    return el


def empty(namespace: str, name: str) -> _E:
    return etree.Element("{%s}%s" % (namespace, name), nsmap=_default_ns(namespace))


def payload(el: _E) -> _E | None:
    """The one child of a get/set IQ (RFC 6120 §8.2.3: exactly one), or None."""
    for child in el:
        if isinstance(child.tag, str) and not child.tag.endswith("}error"):
            return child
    return None


def _default_ns(uri: str) -> Any:
    """An nsmap making `uri` the default namespace (lxml takes the None key; lxml-stubs do not)."""
    return {None: uri}
