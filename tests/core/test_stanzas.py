# tests: tests/core/test_stanzas.py
"""Stanza and stream errors (stanzas/errors.py, RFC 6120 §8.3, §4.9) and IQ builders
(stanzas/iq.py, RFC 6120 §8.2.3)."""
from __future__ import annotations

import copy
import re

import pytest
from lxml import etree

from stanzas import iq, ns
from stanzas.errors import (
    STREAM_CONDITIONS,
    StanzaError,
    StreamError,
    error_reply,
    escape_attr,
    escape_text,
)
from xmppd.xmlstream import XmlStreamParser, serialize

_E = etree._Element
CLIENT = "{jabber:client}"
STANZAS = "{%s}" % ns.STANZA_ERRORS


def xml(text: str) -> _E:
    """A stanza in jabber:client, detached, as the stream parser delivers it."""
    return copy.copy(etree.fromstring(f"<stream xmlns='jabber:client'>{text}</stream>")[0])


def s(el: _E) -> str:
    return serialize(el).decode()


# --- StanzaError ------------------------------------------------------------------------------

# RFC 6120 §8.3.3: each condition with the type its examples use.
CONDITION_TYPES = [
    ("bad-request", "modify"), ("conflict", "cancel"), ("feature-not-implemented", "cancel"),
    ("forbidden", "auth"), ("gone", "cancel"), ("internal-server-error", "cancel"),
    ("item-not-found", "cancel"), ("jid-malformed", "modify"), ("not-acceptable", "modify"),
    ("not-allowed", "cancel"), ("not-authorized", "auth"), ("policy-violation", "modify"),
    ("recipient-unavailable", "wait"), ("redirect", "modify"), ("registration-required", "auth"),
    ("remote-server-not-found", "cancel"), ("remote-server-timeout", "wait"),
    ("resource-constraint", "wait"), ("service-unavailable", "cancel"),
    ("subscription-required", "auth"), ("undefined-condition", "cancel"),
    ("unexpected-request", "wait"),
]


@pytest.mark.parametrize(("condition", "type_"), CONDITION_TYPES)
def test_every_stanza_condition_has_its_default_type(condition: str, type_: str) -> None:
    e = StanzaError(condition)
    assert (e.condition, e.type, e.text) == (condition, type_, None)
    assert str(e) == condition


@pytest.mark.parametrize(("factory", "condition"), [
    (StanzaError.bad_request, "bad-request"), (StanzaError.conflict, "conflict"),
    (StanzaError.feature_not_implemented, "feature-not-implemented"),
    (StanzaError.forbidden, "forbidden"), (StanzaError.internal_server_error, "internal-server-error"),
    (StanzaError.item_not_found, "item-not-found"), (StanzaError.jid_malformed, "jid-malformed"),
    (StanzaError.not_acceptable, "not-acceptable"), (StanzaError.not_allowed, "not-allowed"),
    (StanzaError.not_authorized, "not-authorized"), (StanzaError.policy_violation, "policy-violation"),
    (StanzaError.remote_server_not_found, "remote-server-not-found"),
    (StanzaError.resource_constraint, "resource-constraint"),
    (StanzaError.service_unavailable, "service-unavailable"),
    (StanzaError.unexpected_request, "unexpected-request"),
])
def test_classmethods_build_their_condition(factory: object, condition: str) -> None:
    e = factory("why")
    assert isinstance(e, StanzaError) and isinstance(e, Exception)
    assert (e.condition, e.text, str(e)) == (condition, "why", f"{condition}: why")
    assert e.type == dict(CONDITION_TYPES)[condition]


def test_type_can_be_overridden_where_the_rfc_allows() -> None:
    e = StanzaError.internal_server_error(type="wait")    # storage down: retry later
    assert (e.condition, e.type) == ("internal-server-error", "wait")


def test_unknown_stanza_condition_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown stanza error condition 'not-found'"):
        StanzaError("not-found")


def test_stanza_error_xml_shape() -> None:
    assert s(StanzaError.forbidden().to_xml()) == (
        '<error xmlns="jabber:client" type="auth">'
        '<forbidden xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/></error>')


def test_stanza_error_xml_with_text() -> None:
    assert s(StanzaError.bad_request("a < b & 'c'").to_xml()) == (
        '<error xmlns="jabber:client" type="modify">'
        '<bad-request xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/>'
        '<text xmlns="urn:ietf:params:xml:ns:xmpp-stanzas" xml:lang="en">a &lt; b &amp; \'c\''
        "</text></error>")


def test_stanza_error_xml_with_application_condition() -> None:
    app = etree.Element("{urn:xmpp:example}too-many", nsmap={None: "urn:xmpp:example"})
    e = StanzaError("policy-violation", "slow down", app=app)
    out = s(e.to_xml())
    assert out.endswith('<too-many xmlns="urn:xmpp:example"/></error>')
    assert "<policy-violation " in out and "<text " in out


def test_application_condition_survives_a_second_to_xml() -> None:
    # Regression: appending moved the app element, so the first error lost it.
    app = etree.Element("{urn:xmpp:example}x")
    e = StanzaError("bad-request", app=app)
    first, second = e.to_xml(), e.to_xml()
    assert first.find("{urn:xmpp:example}x") is not None
    assert second.find("{urn:xmpp:example}x") is not None


# --- error_reply ------------------------------------------------------------------------------


def test_error_reply_swaps_addresses_and_keeps_the_id() -> None:
    req = xml("<message from='a@example.org/r' to='b@example.org' id='m1' type='chat'>"
              "<body>secret</body></message>")
    reply = error_reply(req, StanzaError.service_unavailable())
    assert s(reply) == (
        '<message xmlns="jabber:client" type="error" id="m1" to="a@example.org/r" '
        'from="b@example.org"><error type="cancel"><service-unavailable '
        'xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/></error></message>')


def test_error_reply_to_an_iq_includes_its_payload() -> None:
    req = xml("<iq from='a@example.org/r' to='example.org' id='q1' type='get'>"
              "<query xmlns='jabber:iq:version'/></iq>")
    reply = error_reply(req, StanzaError.feature_not_implemented())
    assert s(reply) == (
        '<iq xmlns="jabber:client" type="error" id="q1" to="a@example.org/r" from="example.org">'
        '<query xmlns="jabber:iq:version"/><error type="cancel"><feature-not-implemented '
        'xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/></error></iq>')
    assert len(req) == 1                                    # the request keeps its payload


def test_error_reply_to_a_message_leaves_the_body_out() -> None:
    reply = error_reply(xml("<message id='m'><body>big</body></message>"), StanzaError.forbidden())
    assert reply.find(CLIENT + "body") is None


def test_error_reply_without_addresses_or_id() -> None:
    reply = error_reply(xml("<presence/>"), StanzaError.not_allowed())
    assert dict(reply.attrib) == {"type": "error"}


@pytest.mark.parametrize("tag", ["message", "presence", "iq"])
def test_error_reply_refuses_to_answer_an_error(tag: str) -> None:
    # RFC 6120 §8.3.1: never an error in reply to an error (it would loop).
    with pytest.raises(ValueError, match="never answer an error"):
        error_reply(xml(f"<{tag} type='error' id='e'/>"), StanzaError.bad_request())


def test_error_reply_keeps_the_stanza_namespace() -> None:
    req = etree.fromstring("<message xmlns='jabber:server' from='a@x' to='b@y'/>")
    assert etree.QName(error_reply(req, StanzaError.bad_request())).namespace == "jabber:server"


def test_error_reply_serialises_without_stray_prefixes() -> None:
    parser = XmlStreamParser()
    parser.feed(b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'"
                b" to='example.org' version='1.0'>")
    [req] = parser.feed(b"<iq type='set' id='1'><query xmlns='jabber:iq:roster'/></iq>")
    out = s(error_reply(req, StanzaError.not_authorized("x")))
    assert "ns0" not in out and "stream" not in out
    assert out.startswith('<iq xmlns="jabber:client" type="error" id="1">')


# --- StreamError ------------------------------------------------------------------------------


@pytest.mark.parametrize("condition", sorted(STREAM_CONDITIONS))
def test_every_stream_condition_serialises(condition: str) -> None:
    assert StreamError(condition).to_bytes() == (
        b"<stream:error><%s xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>"
        % condition.encode())


def test_stream_conditions_are_those_of_rfc_6120() -> None:
    assert len(STREAM_CONDITIONS) == 25                      # RFC 6120 §4.9.3.1–§4.9.3.25


def test_stream_error_with_text_is_escaped() -> None:
    assert StreamError.policy_violation("a <b> & c").to_bytes() == (
        b"<stream:error><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
        b"<text xmlns='urn:ietf:params:xml:ns:xmpp-streams' xml:lang='en'>a &lt;b&gt; &amp; c"
        b"</text></stream:error>")


def test_stream_error_bytes_parse_inside_a_stream() -> None:
    data = (b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
            + StreamError.not_well_formed("bad <xml>").to_bytes() + b"</stream:stream>")
    root = etree.fromstring(data)
    err = root[0]
    assert err.tag == "{%s}error" % ns.STREAMS
    assert err[0].tag == "{%s}not-well-formed" % ns.STREAM_ERRORS
    assert err[1].text == "bad <xml>"


@pytest.mark.parametrize(("factory", "condition"), [
    (StreamError.bad_format, "bad-format"), (StreamError.conflict, "conflict"),
    (StreamError.connection_timeout, "connection-timeout"), (StreamError.host_unknown, "host-unknown"),
    (StreamError.invalid_namespace, "invalid-namespace"), (StreamError.not_authorized, "not-authorized"),
    (StreamError.not_well_formed, "not-well-formed"), (StreamError.policy_violation, "policy-violation"),
    (StreamError.restricted_xml, "restricted-xml"), (StreamError.system_shutdown, "system-shutdown"),
    (StreamError.unsupported_stanza_type, "unsupported-stanza-type"),
    (StreamError.unsupported_version, "unsupported-version"),
    (StreamError.internal_server_error, "internal-server-error"),
])
def test_stream_error_classmethods(factory: object, condition: str) -> None:
    e = factory("t")
    assert (e.condition, e.text, str(e)) == (condition, "t", f"{condition}: t")
    assert factory().text is None


def test_unknown_stream_condition_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown stream error condition 'oops'"):
        StreamError("oops")


@pytest.mark.parametrize(("raw", "text", "attr"), [
    ("a&b", "a&amp;b", "a&amp;b"), ("<x>", "&lt;x&gt;", "&lt;x&gt;"),
    ("it's \"q\"", "it's \"q\"", "it&apos;s &quot;q&quot;"), ("&amp;", "&amp;amp;", "&amp;amp;"),
])
def test_escaping(raw: str, text: str, attr: str) -> None:
    assert (escape_text(raw), escape_attr(raw)) == (text, attr)


# --- iq builders ------------------------------------------------------------------------------


def test_result_swaps_addresses_and_keeps_the_id() -> None:
    req = xml("<iq type='get' id='v1' from='a@example.org/r' to='example.org'>"
              "<query xmlns='jabber:iq:version'/></iq>")
    assert s(iq.result(req)) == (
        '<iq xmlns="jabber:client" type="result" id="v1" to="a@example.org/r" from="example.org"/>')


def test_result_carries_the_payload() -> None:
    req = xml("<iq type='get' id='v1'><query xmlns='jabber:iq:version'/></iq>")
    payload = etree.Element("{jabber:iq:version}query", nsmap={None: "jabber:iq:version"})
    etree.SubElement(payload, "{jabber:iq:version}name").text = "xmppd"
    assert s(iq.result(req, payload)) == (
        '<iq xmlns="jabber:client" type="result" id="v1"><query xmlns="jabber:iq:version">'
        "<name>xmppd</name></query></iq>")


def test_result_of_an_iq_without_id_has_an_empty_id() -> None:
    assert iq.result(xml("<iq type='set'/>")).get("id") == ""


@pytest.mark.parametrize("type_", ["result", "error", None, "bogus"])
def test_only_get_and_set_are_answered(type_: str | None) -> None:
    attr = f" type='{type_}'" if type_ else ""
    with pytest.raises(ValueError, match="only get/set"):
        iq.result(xml(f"<iq id='x'{attr}/>"))


def test_request_gets_a_fresh_unguessable_id() -> None:
    ids = {iq.request("get").get("id") for _ in range(100)}
    assert len(ids) == 100
    assert all(re.fullmatch(r"[0-9a-f]{16}", i or "") for i in ids)


def test_request_shape() -> None:
    ping = iq.empty(ns.PING, "ping")
    req = iq.request("get", to="a@example.org/r", payload=ping, id="p1", sender="example.org")
    assert s(req) == ('<iq xmlns="jabber:client" type="get" id="p1" to="a@example.org/r" '
                      'from="example.org"><ping xmlns="urn:xmpp:ping"/></iq>')


def test_empty_payload_declares_its_namespace() -> None:
    assert s(iq.empty("jabber:iq:roster", "query")) == '<query xmlns="jabber:iq:roster"/>'


@pytest.mark.parametrize(("text", "expected"), [
    ("<iq type='get' id='1'><query xmlns='jabber:iq:roster'/></iq>", "{jabber:iq:roster}query"),
    ("<iq type='error' id='1'><query xmlns='jabber:iq:roster'/><error type='cancel'/></iq>",
     "{jabber:iq:roster}query"),
    ("<iq type='error' id='1'><error type='cancel'/><query xmlns='jabber:iq:roster'/></iq>",
     "{jabber:iq:roster}query"),
    ("<iq type='result' id='1'/>", None),
    ("<iq type='error' id='1'><error type='cancel'/></iq>", None),
])
def test_payload_is_the_first_child_that_is_not_an_error(text: str, expected: str | None) -> None:
    p = iq.payload(xml(text))
    assert (p.tag if p is not None else None) == expected
