# tests: xmppd/listeners/sasl2_shell.py, xmppd/listeners/session.py, modules/stream_mgmt/, modules/carbons.py, modules/csi.py
"""SASL2 logins on real sessions in the in-memory harness: Bind 2 with stream management,
carbons and CSI inline, FAST tokens issued, used, rotated, invalidated and revoked, and
XEP-0198 resumption inside <authenticate/> — in one round trip."""
from __future__ import annotations

import base64
import hmac
from typing import Callable

import pytest
from lxml import etree

from modules.carbons import ENABLED as CARBONS
from modules.csi import STATE as CSI
from modules.stream_mgmt import STATE as SM_STATE
from tests.harness.server import Harness, resolve
from tests.harness.stream import HEADER, StreamClient
from tests.modules.messaging import SM, messaging
from xmppd.fast import key_of

S2, FAST, BIND2 = "urn:xmpp:sasl:2", "urn:xmpp:fast:0", "urn:xmpp:bind:0"
ALICE = "alice@example.org"
PHONE = "0b2a6c1e-5d3f-4a7b-9c8d-1e2f3a4b5c6d"
DAY = 86400.0


@pytest.fixture
def h(make_harness: Callable[..., Harness]) -> Harness:
    return messaging(make_harness, without=("mam",))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def ht(token: str, user: str = "alice") -> bytes:
    return user.encode() + b"\0" + hmac.digest(token.encode(), b"Initiator", "sha256")


def login(h: Harness, mechanism: str, initial: bytes, inline: str = "",
          agent: str = PHONE) -> tuple[StreamClient, list[etree._Element]]:
    """One SASL2 <authenticate/> on a new connection: what came back after the features."""
    c = StreamClient(h, ALICE, login=False)
    c.send(HEADER.format(host="example.org"))
    [features] = c.received()
    assert features.find(f"{{{S2}}}authentication") is not None
    c.send(f"<authenticate xmlns='{S2}' mechanism='{mechanism}'>"
           f"<initial-response>{b64(initial)}</initial-response>"
           f"<user-agent id='{agent}'><software>Tests</software><device>Phone</device>"
           f"</user-agent>{inline}</authenticate>")
    return c, c.received()


def password(h: Harness, inline: str = "", agent: str = PHONE
             ) -> tuple[StreamClient, list[etree._Element]]:
    return login(h, "PLAIN", b"\0alice\0pw", inline, agent)


BIND_ALL = (f"<bind xmlns='{BIND2}'><tag>Tests</tag><enable xmlns='{SM}' resume='true'/>"
            f"<enable xmlns='urn:xmpp:carbons:2'/><inactive xmlns='urn:xmpp:csi:0'/></bind>")
REQUEST = f"<request-token xmlns='{FAST}' mechanism='HT-SHA-256-NONE'/>"


def success(items: list[etree._Element]) -> etree._Element:
    assert items and items[0].tag == f"{{{S2}}}success", [etree.tostring(i) for i in items]
    return items[0]


def test_offered_inline_features(h: Harness) -> None:
    c = StreamClient(h, ALICE, login=False)
    c.send(HEADER.format(host="example.org"))
    [features] = c.received()
    inline = features.find(f"{{{S2}}}authentication/{{{S2}}}inline")
    assert {f.get("var") for f in inline.iter(f"{{{BIND2}}}feature")} == {
        SM, "urn:xmpp:carbons:2", "urn:xmpp:csi:0"}
    assert inline.find(f"{{{SM}}}sm") is not None
    assert [m.text for m in inline.find(f"{{{FAST}}}fast")] == ["HT-SHA-256-NONE"]


def test_bind2_enables_sm_carbons_and_csi_and_issues_a_token(h: Harness) -> None:
    c, items = password(h, BIND_ALL + REQUEST)
    ok = success(items)
    full = ok.findtext(f"{{{S2}}}authorization-identifier")
    assert full.startswith(f"{ALICE}/Tests.") and len(full) == len(ALICE) + 1 + 6 + 12
    enabled = ok.find(f"{{{BIND2}}}bound/{{{SM}}}enabled")
    assert enabled is not None and enabled.get("resume") == "true" and enabled.get("id")
    token = ok.find(f"{{{FAST}}}token")
    assert len(token.get("token")) == 96 and token.get("expiry").endswith("Z")
    assert items[1].tag.endswith("}features") and items[1].find(
        "{urn:ietf:params:xml:ns:xmpp-bind}bind") is None
    assert c.bound and str(c.jid) == full
    assert c.get(CARBONS) and c.get(SM_STATE) is not None and c.get(CSI) is not None
    [kept] = resolve(h.server.stores.fast.tokens("example.org", "alice", PHONE))
    assert kept.key == key_of(token.get("token")) and kept.key != token.get("token").encode()
    assert kept.device == "Tests / Phone"
    c.send("<presence/>")                   # a bound, usable stream
    assert not c.closed


def test_fast_reconnect_is_one_round_trip_to_the_same_resource(h: Harness) -> None:
    first, items = password(h, f"<bind xmlns='{BIND2}'/>" + REQUEST)
    token = success(items).find(f"{{{FAST}}}token").get("token")
    full = str(first.jid)
    second, items = login(h, "HT-SHA-256-NONE", ht(token),
                          f"<fast xmlns='{FAST}'/><bind xmlns='{BIND2}'/>")
    ok = success(items)
    assert ok.findtext(f"{{{S2}}}authorization-identifier") == full     # stable resource
    responder = base64.b64decode(ok.findtext(f"{{{S2}}}additional-data"))
    assert responder == hmac.digest(token.encode(), b"Responder", "sha256")
    assert ok.find(f"{{{FAST}}}token") is None          # fresh token: no rotation yet
    assert first.closed                                  # the same client's old session went
    [kept] = resolve(h.server.stores.fast.tokens("example.org", "alice", PHONE))
    assert kept.slot == "current"


def test_tokens_are_per_client(h: Harness) -> None:
    _, items = password(h, REQUEST)
    token = success(items).find(f"{{{FAST}}}token").get("token")
    _, items = login(h, "HT-SHA-256-NONE", ht(token), f"<fast xmlns='{FAST}'/>",
                     agent="11111111-2222-4333-8444-555555555555")
    assert items[0].tag == f"{{{S2}}}failure"


def test_a_token_past_half_its_life_is_rotated_and_the_old_one_works_until_then(
        h: Harness) -> None:
    _, items = password(h, REQUEST)
    old = success(items).find(f"{{{FAST}}}token").get("token")
    h.clock.advance(11 * DAY)                    # lifetime 21 d
    _, items = login(h, "HT-SHA-256-NONE", ht(old), f"<fast xmlns='{FAST}'/>")
    missed = success(items).find(f"{{{FAST}}}token").get("token")
    assert missed != old
    # The client lost that <success/>: the old token still works (§3.4), and the new token
    # it now gets replaces the one it never saw (§3.4: unused tokens are invalidated).
    _, items = login(h, "HT-SHA-256-NONE", ht(old), f"<fast xmlns='{FAST}'/>")
    new = success(items).find(f"{{{FAST}}}token").get("token")
    assert new not in (old, missed)
    _, items = login(h, "HT-SHA-256-NONE", ht(missed), f"<fast xmlns='{FAST}'/>")
    assert items[0].tag == f"{{{S2}}}failure"
    _, items = login(h, "HT-SHA-256-NONE", ht(new), f"<fast xmlns='{FAST}'/>")
    assert success(items).find(f"{{{FAST}}}token") is None      # fresh: no rotation
    _, items = login(h, "HT-SHA-256-NONE", ht(old), f"<fast xmlns='{FAST}'/>")
    assert items[0].find(f"{{urn:ietf:params:xml:ns:xmpp-sasl}}not-authorized") is not None


def test_an_expired_token_is_credentials_expired(h: Harness) -> None:
    _, items = password(h, REQUEST)
    token = success(items).find(f"{{{FAST}}}token").get("token")
    h.clock.advance(22 * DAY)
    _, items = login(h, "HT-SHA-256-NONE", ht(token), f"<fast xmlns='{FAST}'/>")
    assert items[0].find(
        "{urn:ietf:params:xml:ns:xmpp-sasl}credentials-expired") is not None


def test_invalidate_ends_the_token(h: Harness) -> None:
    _, items = password(h, REQUEST)
    token = success(items).find(f"{{{FAST}}}token").get("token")
    _, items = login(h, "HT-SHA-256-NONE", ht(token), f"<fast xmlns='{FAST}' invalidate='1'/>")
    assert success(items).find(f"{{{FAST}}}token") is None
    _, items = login(h, "HT-SHA-256-NONE", ht(token), f"<fast xmlns='{FAST}'/>")
    assert items[0].tag == f"{{{S2}}}failure"


def test_a_password_change_revokes_every_token(h: Harness) -> None:
    _, items = password(h, REQUEST)
    token = success(items).find(f"{{{FAST}}}token").get("token")
    assert resolve(h.server.accounts.set_password("alice", "example.org", "new-pw"))
    _, items = login(h, "HT-SHA-256-NONE", ht(token), f"<fast xmlns='{FAST}'/>")
    assert items[0].find("{urn:ietf:params:xml:ns:xmpp-sasl}not-authorized") is not None


def test_resumption_inside_authenticate_resends_after_success(h: Harness) -> None:
    first, items = password(h, f"<bind xmlns='{BIND2}'><enable xmlns='{SM}' resume='true'/>"
                               f"</bind>" + REQUEST)
    ok = success(items)
    previd = ok.find(f"{{{BIND2}}}bound/{{{SM}}}enabled").get("id")
    token = ok.find(f"{{{FAST}}}token").get("token")
    first.send("<presence/>")
    first.received()
    bob = h.login("bob@example.org/x")
    bob.send(f"<message to='{first.jid}' type='chat'><body>while away</body></message>")
    first.drop()                                  # lost before acknowledging it
    second, items = login(h, "HT-SHA-256-NONE", ht(token),
                          f"<fast xmlns='{FAST}'/><bind xmlns='{BIND2}'/>"
                          f"<resume xmlns='{SM}' previd='{previd}' h='0'/>")
    ok = success(items)
    resumed = ok.find(f"{{{SM}}}resumed")
    assert resumed is not None and resumed.get("previd") == previd
    assert ok.find(f"{{{BIND2}}}bound") is None           # resumed: no new resource
    assert ok.findtext(f"{{{S2}}}authorization-identifier") == str(first.jid)
    rest = items[1:]
    assert rest[0].tag.endswith("}features")        # what was not acknowledged comes after
    assert [m.findtext("{jabber:client}body") for m in rest[1:]
            if m.tag == "{jabber:client}message"] == ["while away"]
    assert rest[-1].tag == f"{{{SM}}}r"


def test_failed_resumption_still_binds(h: Harness) -> None:
    _, items = password(h, f"<resume xmlns='{SM}' previd='nope' h='0'/>"
                           f"<bind xmlns='{BIND2}'/>")
    ok = success(items)
    assert ok.find(f"{{{SM}}}failed/{{urn:ietf:params:xml:ns:xmpp-stanzas}}item-not-found") \
        is not None
    assert ok.find(f"{{{BIND2}}}bound") is not None


def test_legacy_login_still_works_next_to_sasl2(h: Harness) -> None:
    alice = h.login(f"{ALICE}/old")
    assert alice.bound and alice.features.find(f"{{{SM}}}sm") is not None


def test_sasl2_is_not_offered_over_bosh(h: Harness) -> None:
    """XEP-0206 restarts the stream after SASL; SASL2 has no restart."""
    from xmppd.listeners.c2s import c2s_settings
    assert c2s_settings(h.server, tls="off", tls_available=False, framing="bosh").sasl2 is False
    assert c2s_settings(h.server, tls="off", tls_available=False, framing="websocket").sasl2
