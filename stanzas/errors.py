# tests: tests/core/test_stanzas.py
"""Stanza and stream errors (RFC 6120 §8.3, §4.9) as exceptions with one constructor per condition.

Each stanza condition carries its default error `type` (RFC 6120 §8.3.3), so call sites never pick it.
"""
from __future__ import annotations

from typing import Any

from lxml import etree

from stanzas import ns

_E = etree._Element

# RFC 6120 §8.3.3: condition -> the type the RFC's examples and ejabberd/Prosody use.
_STANZA_TYPES: dict[str, str] = {
    "bad-request": "modify",
    "conflict": "cancel",
    "feature-not-implemented": "cancel",
    "forbidden": "auth",
    "gone": "cancel",
    "internal-server-error": "cancel",
    "item-not-found": "cancel",
    "jid-malformed": "modify",
    "not-acceptable": "modify",
    "not-allowed": "cancel",
    "not-authorized": "auth",
    "policy-violation": "modify",
    "recipient-unavailable": "wait",
    "redirect": "modify",
    "registration-required": "auth",
    "remote-server-not-found": "cancel",
    "remote-server-timeout": "wait",
    "resource-constraint": "wait",
    "service-unavailable": "cancel",
    "subscription-required": "auth",
    "undefined-condition": "cancel",
    "unexpected-request": "wait",
}

STREAM_CONDITIONS = frozenset({
    "bad-format", "bad-namespace-prefix", "conflict", "connection-timeout", "host-gone",
    "host-unknown", "improper-addressing", "internal-server-error", "invalid-from",
    "invalid-namespace", "invalid-xml", "not-authorized", "not-well-formed", "policy-violation",
    "remote-connection-failed", "reset", "resource-constraint", "restricted-xml", "see-other-host",
    "system-shutdown", "undefined-condition", "unsupported-encoding", "unsupported-feature",
    "unsupported-stanza-type", "unsupported-version",
})


class StanzaError(Exception):
    """A stanza-level error; the framework turns it into `<error/>` on a reply (RFC 6120 §8.3)."""

    def __init__(self, condition: str, text: str | None = None, *, type: str | None = None,
                 app: _E | None = None) -> None:
        if condition not in _STANZA_TYPES:
            raise ValueError(f"unknown stanza error condition {condition!r}")
        super().__init__(condition if text is None else f"{condition}: {text}")
        self.condition = condition
        self.text = text
        self.type = type or _STANZA_TYPES[condition]
        self.app = app

    def to_xml(self) -> _E:
        err = etree.Element("{%s}error" % ns.CLIENT, type=self.type, nsmap=_default_ns(ns.CLIENT))
        etree.SubElement(err, "{%s}%s" % (ns.STANZA_ERRORS, self.condition),
                         nsmap=_default_ns(ns.STANZA_ERRORS))
        if self.text:
            t = etree.SubElement(err, "{%s}text" % ns.STANZA_ERRORS, nsmap=_default_ns(ns.STANZA_ERRORS))
            t.set("{%s}lang" % ns.XML, "en")
            t.text = self.text
        if self.app is not None:
            # A copy: appending moves an lxml element, so a second to_xml() (the same error
            # answering two stanzas) would otherwise steal it from the first.
            err.append(_copy(self.app))
        return err

    @classmethod
    def bad_request(cls, text: str | None = None) -> StanzaError:
        return cls("bad-request", text)

    @classmethod
    def conflict(cls, text: str | None = None) -> StanzaError:
        return cls("conflict", text)

    @classmethod
    def feature_not_implemented(cls, text: str | None = None) -> StanzaError:
        return cls("feature-not-implemented", text)

    @classmethod
    def forbidden(cls, text: str | None = None) -> StanzaError:
        return cls("forbidden", text)

    @classmethod
    def internal_server_error(cls, text: str | None = None, *, type: str | None = None) -> StanzaError:
        return cls("internal-server-error", text, type=type)

    @classmethod
    def item_not_found(cls, text: str | None = None) -> StanzaError:
        return cls("item-not-found", text)

    @classmethod
    def jid_malformed(cls, text: str | None = None) -> StanzaError:
        return cls("jid-malformed", text)

    @classmethod
    def not_acceptable(cls, text: str | None = None) -> StanzaError:
        return cls("not-acceptable", text)

    @classmethod
    def not_allowed(cls, text: str | None = None) -> StanzaError:
        return cls("not-allowed", text)

    @classmethod
    def not_authorized(cls, text: str | None = None) -> StanzaError:
        return cls("not-authorized", text)

    @classmethod
    def policy_violation(cls, text: str | None = None) -> StanzaError:
        return cls("policy-violation", text)

    @classmethod
    def remote_server_not_found(cls, text: str | None = None) -> StanzaError:
        return cls("remote-server-not-found", text)

    @classmethod
    def resource_constraint(cls, text: str | None = None) -> StanzaError:
        return cls("resource-constraint", text)

    @classmethod
    def service_unavailable(cls, text: str | None = None) -> StanzaError:
        return cls("service-unavailable", text)

    @classmethod
    def unexpected_request(cls, text: str | None = None) -> StanzaError:
        return cls("unexpected-request", text)


class StreamError(Exception):
    """A stream-level error: sent, then `</stream:stream>`, then the connection closes (RFC 6120 §4.9)."""

    def __init__(self, condition: str, text: str | None = None) -> None:
        if condition not in STREAM_CONDITIONS:
            raise ValueError(f"unknown stream error condition {condition!r}")
        super().__init__(condition if text is None else f"{condition}: {text}")
        self.condition = condition
        self.text = text

    def to_bytes(self) -> bytes:
        text = ""
        if self.text:
            text = ("<text xmlns='urn:ietf:params:xml:ns:xmpp-streams' xml:lang='en'>%s</text>"
                    % escape_text(self.text))
        return ("<stream:error><%s xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>%s</stream:error>"
                % (self.condition, text)).encode()

    @classmethod
    def bad_format(cls, text: str | None = None) -> StreamError:
        return cls("bad-format", text)

    @classmethod
    def conflict(cls, text: str | None = None) -> StreamError:
        return cls("conflict", text)

    @classmethod
    def connection_timeout(cls, text: str | None = None) -> StreamError:
        return cls("connection-timeout", text)

    @classmethod
    def host_unknown(cls, text: str | None = None) -> StreamError:
        return cls("host-unknown", text)

    @classmethod
    def invalid_namespace(cls, text: str | None = None) -> StreamError:
        return cls("invalid-namespace", text)

    @classmethod
    def not_authorized(cls, text: str | None = None) -> StreamError:
        return cls("not-authorized", text)

    @classmethod
    def not_well_formed(cls, text: str | None = None) -> StreamError:
        return cls("not-well-formed", text)

    @classmethod
    def policy_violation(cls, text: str | None = None) -> StreamError:
        return cls("policy-violation", text)

    @classmethod
    def restricted_xml(cls, text: str | None = None) -> StreamError:
        return cls("restricted-xml", text)

    @classmethod
    def system_shutdown(cls, text: str | None = None) -> StreamError:
        return cls("system-shutdown", text)

    @classmethod
    def unsupported_stanza_type(cls, text: str | None = None) -> StreamError:
        return cls("unsupported-stanza-type", text)

    @classmethod
    def unsupported_version(cls, text: str | None = None) -> StreamError:
        return cls("unsupported-version", text)

    @classmethod
    def internal_server_error(cls, text: str | None = None) -> StreamError:
        return cls("internal-server-error", text)


def escape_text(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def escape_attr(s: str) -> str:
    return escape_text(s).replace("'", "&apos;").replace('"', "&quot;")


def error_reply(stanza: _E, error: StanzaError) -> _E:
    """The error stanza answering `stanza` (RFC 6120 §8.3.1): from/to swapped, same id and payload.

    Refuses (ValueError) to answer an error with an error: that loops between entities.
    """
    if stanza.get("type") == "error":
        raise ValueError("never answer an error stanza with an error (RFC 6120 §8.3.1)")
    reply = etree.Element(stanza.tag, nsmap=_default_ns(etree.QName(stanza).namespace or ns.CLIENT))
    reply.set("type", "error")
    for attr, value in (("id", stanza.get("id")), ("to", stanza.get("from")),
                        ("from", stanza.get("to"))):
        if value is not None:
            reply.set(attr, value)
    # RFC 6120 §8.3.1: the error stanza SHOULD include the original payload for IQ get/set;
    # we include it for IQs only (messages may be large, and clients don't need the body back).
    if etree.QName(stanza).localname == "iq":
        for child in stanza:
            reply.append(_copy(child))
    reply.append(error.to_xml())
    return reply


def _copy(el: _E) -> _E:
    from copy import deepcopy
    return deepcopy(el)


def _default_ns(uri: str) -> Any:
    """An nsmap making `uri` the default namespace (lxml takes the None key; lxml-stubs do not)."""
    return {None: uri}
