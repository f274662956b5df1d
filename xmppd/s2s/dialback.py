# tests: tests/core/test_s2s_dialback.py
"""Server Dialback (XEP-0220) keys and elements, sans-IO.

- Keys as XEP-0185 §3 generates them: HMAC-SHA256 keyed with the hex SHA-256 of our secret,
  over "<receiving> <originating> <stream id>", in hex. The secret is random per process (a
  restart only fails the dialbacks in flight); nodes of one domain would need to share it.
- Elements are written with the `db:` prefix our stream header declares (§2 note: some servers
  accept no other prefix).
- Dialback errors (§2.4) carry a stanza error condition inside `<error/>` of jabber:server.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets

from stanzas import ns
from stanzas.errors import StanzaError, escape_attr, escape_text

DB = "{%s}" % ns.DIALBACK


class DialbackKeys:
    def __init__(self, secret: bytes | None = None) -> None:
        self._key = hashlib.sha256(secret or secrets.token_bytes(32)).hexdigest().encode()

    def key(self, receiving: str, originating: str, stream_id: str) -> str:
        msg = " ".join((receiving, originating, stream_id)).encode()
        return hmac.new(self._key, msg, hashlib.sha256).hexdigest()

    def check(self, key: str, receiving: str, originating: str, stream_id: str) -> bool:
        return hmac.compare_digest(key.strip().encode(),
                                   self.key(receiving, originating, stream_id).encode())


def element(name: str, *, from_: str, to: str, stream_id: str | None = None,
            type_: str | None = None, key: str | None = None,
            error: StanzaError | None = None) -> bytes:
    """`<db:result/>` or `<db:verify/>` with the given attributes and content."""
    attrs = [("from", from_), ("to", to)]
    if stream_id is not None:
        attrs.append(("id", stream_id))
    if type_ is not None:
        attrs.append(("type", type_))
    head = "<db:%s%s" % (name, "".join(" %s='%s'" % (k, escape_attr(v)) for k, v in attrs))
    if key is not None:
        return ("%s>%s</db:%s>" % (head, escape_text(key), name)).encode()
    if error is not None:
        return ("%s><error type='%s'><%s xmlns='%s'/></error></db:%s>"
                % (head, error.type, error.condition, ns.STANZA_ERRORS, name)).encode()
    return (head + "/>").encode()


def error_condition(el: object) -> str:
    """The stanza error condition inside a dialback element of type 'error'."""
    from lxml import etree
    assert isinstance(el, etree._Element)
    for err in el:
        if isinstance(err.tag, str) and etree.QName(err).localname == "error":
            for cond in err:
                if isinstance(cond.tag, str) and etree.QName(cond).namespace == ns.STANZA_ERRORS \
                        and etree.QName(cond).localname != "text":
                    return etree.QName(cond).localname
    return "undefined-condition"
