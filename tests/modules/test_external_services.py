# tests: modules/external_services.py
"""XEP-0215 on the harness: the configured STUN/TURN services, and TURN credentials minted by
the TURN REST API convention (the password is checked the way coturn checks it)."""
from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Callable

import pytest
from lxml import etree

from stanzas.delay import parse_stamp
from stanzas.errors import StanzaError
from stanzas.jid import JID
from tests.harness.server import Harness
from tests.modules.messaging import module
from xmppd.config import ConfigError
from xmppd.module import IqRequest

NS = "urn:xmpp:extdisco:2"
SERVICES = [{"type": "stun", "host": "stun.example.org", "port": 3478},
            {"type": "turn", "host": "turn.example.org", "port": 3478, "transport": "udp",
             "secret": "s3cr3t", "name": "Relay"},
            {"type": "turns", "host": "turn.example.org", "port": 5349, "transport": "tcp",
             "secret": "s3cr3t"}]


@pytest.fixture
def h(make_harness: Callable[..., Harness]) -> Harness:
    return make_harness(modules={"disco": {}, "external_services": {
        "services": SERVICES, "credentials_lifetime": "1 h"}})


def ask(h: Harness, payload: str) -> etree._Element:
    alice = h.login("alice@example.org/phone")
    alice.send(f"<iq type='get' id='x' to='example.org'>{payload}</iq>")
    return alice.received()[-1]


def attrs(el: etree._Element) -> list[dict[str, str]]:
    return [dict(s.attrib) for s in el.iter(f"{{{NS}}}service")]


def test_services_are_listed_with_fresh_turn_credentials(h: Harness) -> None:
    answer = ask(h, f"<services xmlns='{NS}'/>")
    stun, turn, turns = attrs(answer)
    assert stun == {"host": "stun.example.org", "port": "3478", "transport": "udp",
                    "type": "stun"}
    now = h.clock.seconds()
    assert parse_stamp(turn["expires"]) == pytest.approx(now + 3600, abs=1)
    expiry, user = turn["username"].split(":", 1)
    assert user == "alice@example.org" and int(expiry) == int(now + 3600)
    expected = base64.b64encode(hmac.new(b"s3cr3t", turn["username"].encode(),
                                         hashlib.sha1).digest()).decode()
    assert turn["password"] == expected and turn["name"] == "Relay"
    assert turns["type"] == "turns" and turns["transport"] == "tcp"


def test_services_of_one_type(h: Harness) -> None:
    answer = ask(h, f"<services xmlns='{NS}' type='stun'/>")
    assert [a["type"] for a in attrs(answer)] == ["stun"]


def test_credentials_for_one_service(h: Harness) -> None:
    answer = ask(h, f"<credentials xmlns='{NS}'><service host='turn.example.org' type='turn'/>"
                    "</credentials>")
    [turn] = attrs(answer)
    assert turn["port"] == "3478" and turn["username"].endswith(":alice@example.org")


@pytest.mark.parametrize(("payload", "condition"), [
    (f"<credentials xmlns='{NS}'><service host='stun.example.org' type='stun'/></credentials>",
     "item-not-found"),
    (f"<credentials xmlns='{NS}'><service host='turn.example.org' type='turn' port='1'/>"
     "</credentials>", "item-not-found"),
    (f"<credentials xmlns='{NS}'/>", "bad-request"),
], ids=["no-secret", "other-port", "no-service"])
def test_credentials_errors(h: Harness, payload: str, condition: str) -> None:
    answer = ask(h, payload)
    assert answer.get("type") == "error"
    assert answer.find(f".//{{urn:ietf:params:xml:ns:xmpp-stanzas}}{condition}") is not None


def test_only_local_users_are_answered(h: Harness) -> None:
    mod = module(h, "external_services")
    stranger = JID.parse("mallory@elsewhere.example/x")
    el = etree.fromstring(f"<iq xmlns='jabber:client' type='get' id='q'><services xmlns='{NS}'/>"
                          "</iq>")
    with pytest.raises(StanzaError) as e:
        mod.list_services(IqRequest(el, stranger, JID.parse("example.org"), el[0]))
    assert e.value.condition == "forbidden"


def test_feature_is_announced(h: Harness) -> None:
    answer = ask(h, "<query xmlns='http://jabber.org/protocol/disco#info'/>")
    assert NS in [f.get("var") for f in answer.iter("{*}feature")]


def test_bad_service_config_is_refused(make_harness: Callable[..., Harness]) -> None:
    with pytest.raises(ConfigError, match="type"):
        make_harness(modules={"external_services": {"services": [{"type": "ftp",
                                                                  "host": "x"}]}})
