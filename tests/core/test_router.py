# tests: xmppd/router.py, xmppd/sessions.py
"""RFC 6120 §8/§10 and RFC 6121 §8 routing rules, on the in-memory harness."""
from __future__ import annotations

from tests.harness.server import Harness

SU = "<error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>"


def test_chat_to_bare_jid_goes_to_highest_priority_resources(harness: Harness) -> None:
    romeo = harness.login("romeo@example.org/a")
    j1 = harness.login("juliet@example.org/phone", available=False)
    j2 = harness.login("juliet@example.org/laptop", available=False)
    j3 = harness.login("juliet@example.org/tablet", available=False)
    j1.send("<presence><priority>5</priority></presence>")
    j2.send("<presence><priority>5</priority></presence>")
    j3.send("<presence><priority>1</priority></presence>")
    romeo.send("<message to='juliet@example.org' type='chat' id='m1'><body>hi</body></message>")
    for s in (j1, j2):
        s.expect("<message to='juliet@example.org' from='romeo@example.org/a' type='chat' "
                 "id='m1'><body>hi</body></message>")
    j3.expect_nothing()


def test_negative_priority_resource_gets_no_bare_messages(harness: Harness) -> None:
    romeo = harness.login("romeo@example.org/a")
    j = harness.login("juliet@example.org/bot", available=False)
    j.send("<presence><priority>-1</priority></presence>")
    romeo.send("<message to='juliet@example.org' type='chat' id='m2'><body>x</body></message>")
    j.expect_nothing()
    romeo.expect("<message type='error' id='m2' to='romeo@example.org/a' "
                 f"from='juliet@example.org'>{SU}</message>")


def test_full_jid_message_reaches_that_resource_only(harness: Harness) -> None:
    romeo = harness.login("romeo@example.org/a")
    j1 = harness.login("juliet@example.org/phone")
    j2 = harness.login("juliet@example.org/laptop")
    romeo.send("<message to='juliet@example.org/laptop' type='chat'><body>x</body></message>")
    j2.expect("<message to='juliet@example.org/laptop' from='romeo@example.org/a' "
              "type='chat'><body>x</body></message>")
    j1.expect_nothing()


def test_chat_to_gone_resource_falls_back_to_bare(harness: Harness) -> None:
    romeo = harness.login("romeo@example.org/a")
    j = harness.login("juliet@example.org/phone")
    romeo.send("<message to='juliet@example.org/old' type='chat'><body>x</body></message>")
    j.expect("<message to='juliet@example.org/old' from='romeo@example.org/a' "
             "type='chat'><body>x</body></message>")


def test_groupchat_to_user_bounces(harness: Harness) -> None:
    romeo = harness.login("romeo@example.org/a")
    harness.login("juliet@example.org/phone")
    romeo.send("<message to='juliet@example.org' type='groupchat' id='g'><body>x</body></message>")
    romeo.expect(f"<message type='error' id='g' to='romeo@example.org/a' "
                 f"from='juliet@example.org'>{SU}</message>")


def test_headline_to_offline_user_is_dropped_silently(harness: Harness) -> None:
    romeo = harness.login("romeo@example.org/a")
    harness.user("juliet@example.org")
    romeo.send("<message to='juliet@example.org' type='headline'><body>x</body></message>")
    romeo.expect_nothing()


def test_error_message_to_bare_jid_is_dropped(harness: Harness) -> None:
    romeo = harness.login("romeo@example.org/a")
    j = harness.login("juliet@example.org/phone")
    romeo.send("<message to='juliet@example.org' type='error'><body>x</body></message>")
    j.expect_nothing()
    romeo.expect_nothing()


def test_message_to_offline_user_bounces_without_offline_storage(harness: Harness) -> None:
    romeo = harness.login("romeo@example.org/a")
    harness.user("juliet@example.org")
    romeo.send("<message to='juliet@example.org' id='o1'><body>x</body></message>")
    romeo.expect(f"<message type='error' id='o1' to='romeo@example.org/a' "
                 f"from='juliet@example.org'>{SU}</message>")


def test_bad_to_gets_jid_malformed(harness: Harness) -> None:
    romeo = harness.login("romeo@example.org/a")
    romeo.send("<message to='a@b@c' id='j1'><body>x</body></message>")
    got = romeo.received()
    assert len(got) == 1 and got[0].get("type") == "error"
    assert got[0].find(".//{urn:ietf:params:xml:ns:xmpp-stanzas}jid-malformed") is not None


def test_remote_domain_gets_remote_server_not_found(harness: Harness) -> None:
    romeo = harness.login("romeo@example.org/a")
    romeo.send("<iq to='elsewhere.example' type='get' id='r1'><ping xmlns='urn:xmpp:ping'/></iq>")
    romeo.expect("<iq type='error' id='r1' to='romeo@example.org/a' from='elsewhere.example'>"
                 "<ping xmlns='urn:xmpp:ping'/><error type='cancel'>"
                 "<remote-server-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
                 "<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas' xml:lang='en'>{any}</text>"
                 "</error></iq>")


def test_unhandled_iq_gets_service_unavailable(harness: Harness) -> None:
    romeo = harness.login("romeo@example.org/a")
    romeo.send("<iq to='example.org' type='get' id='u1'><query xmlns='urn:unknown'/></iq>")
    romeo.expect("<iq type='error' id='u1' to='romeo@example.org/a' from='example.org'>"
                 f"<query xmlns='urn:unknown'/>{SU}</iq>")


def test_iq_to_full_jid_is_forwarded_and_result_routed_back(harness: Harness) -> None:
    romeo = harness.login("romeo@example.org/a")
    juliet = harness.login("juliet@example.org/phone")
    romeo.send("<iq to='juliet@example.org/phone' type='get' id='v1'>"
               "<query xmlns='jabber:iq:version'/></iq>")
    juliet.expect("<iq to='juliet@example.org/phone' from='romeo@example.org/a' type='get' "
                  "id='v1'><query xmlns='jabber:iq:version'/></iq>")
    juliet.send("<iq to='romeo@example.org/a' type='result' id='v1'/>")
    romeo.expect("<iq to='romeo@example.org/a' from='juliet@example.org/phone' type='result' "
                 "id='v1'/>")


def test_iq_to_gone_full_jid_gets_service_unavailable(harness: Harness) -> None:
    romeo = harness.login("romeo@example.org/a")
    harness.login("juliet@example.org/phone")
    romeo.send("<iq to='juliet@example.org/gone' type='get' id='v2'><ping xmlns='urn:xmpp:ping'/></iq>")
    romeo.expect("<iq type='error' id='v2' to='romeo@example.org/a' "
                 "from='juliet@example.org/gone'><ping xmlns='urn:xmpp:ping'/>"
                 f"{SU}</iq>")


def test_iq_without_id_is_bad_request(harness: Harness) -> None:
    romeo = harness.login("romeo@example.org/a")
    romeo.send("<iq to='example.org' type='get'><ping xmlns='urn:xmpp:ping'/></iq>")
    got = romeo.received()
    assert got and got[0].find(".//{urn:ietf:params:xml:ns:xmpp-stanzas}bad-request") is not None


def test_second_session_with_same_resource_closes_first_with_conflict(harness: Harness) -> None:
    first = harness.login("romeo@example.org/a")
    second = harness.login("romeo@example.org/a")
    assert first.closed_with == "conflict"
    assert harness.server.sessions.get(second.jid) is second


def test_session_limit_refuses_extra_resources(make_harness) -> None:  # type: ignore[no-untyped-def]
    h = make_harness(limits={"max_sessions_per_user": 2})
    h.login("romeo@example.org/a")
    h.login("romeo@example.org/b")
    try:
        h.login("romeo@example.org/c")
    except Exception as e:
        assert getattr(e, "condition", None) == "resource-constraint"
    else:
        raise AssertionError("third session was accepted")


def test_virtual_hosts_are_separate(make_harness) -> None:  # type: ignore[no-untyped-def]
    h = make_harness(hosts=("example.org", "example.net"))
    a = h.login("alice@example.org/a")
    b = h.login("alice@example.net/a")
    a.send("<message to='alice@example.net' type='chat'><body>hop</body></message>")
    b.expect("<message to='alice@example.net' from='alice@example.org/a' type='chat'>"
             "<body>hop</body></message>")
    a.expect_nothing()


def test_directed_presence_reaches_the_resource(harness: Harness) -> None:
    romeo = harness.login("romeo@example.org/a")
    juliet = harness.login("juliet@example.org/phone")
    romeo.send("<presence to='juliet@example.org/phone'><show>away</show></presence>")
    juliet.expect("<presence to='juliet@example.org/phone' from='romeo@example.org/a'>"
                  "<show>away</show></presence>")


def test_failing_iq_handler_answers_internal_server_error_and_server_survives(
        harness: Harness) -> None:
    host = harness.server.hosts["example.org"]

    def broken(req):  # type: ignore[no-untyped-def]
        raise RuntimeError("boom")
    host.iq_handlers[("get", "host", "{urn:test}q")] = broken
    romeo = harness.login("romeo@example.org/a")
    romeo.send("<iq to='example.org' type='get' id='b1'><q xmlns='urn:test'/></iq>")
    got = romeo.received()
    assert got[0].find(".//{urn:ietf:params:xml:ns:xmpp-stanzas}internal-server-error") \
        is not None
    romeo.send("<iq to='example.org' type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>")
    romeo.expect("<iq type='result' id='p1' to='romeo@example.org/a' from='example.org'/>")


def test_service_domain_gets_its_stanzas_and_answers_through_ctx(harness: Harness) -> None:
    ctx = harness.server.hosts["example.org"].contexts[0]
    seen: list[tuple[str, str, str]] = []

    def handler(el, sender, to):  # type: ignore[no-untyped-def]
        seen.append((el.get("id"), str(sender), str(to)))
        from stanzas import iq
        ctx.send(iq.result(el))
    ctx.service_domain("svc.example.org", handler)
    romeo = harness.login("romeo@example.org/a")
    romeo.send("<iq to='room@svc.example.org/nick' type='get' id='s1'>"
               "<query xmlns='urn:test'/></iq>")
    assert seen == [("s1", "romeo@example.org/a", "room@svc.example.org/nick")]
    romeo.expect("<iq type='result' id='s1' to='romeo@example.org/a' "
                 "from='room@svc.example.org/nick'/>")
    ctx.close()
    romeo.send("<iq to='svc.example.org' type='get' id='s2'><query xmlns='urn:test'/></iq>")
    got = romeo.received()[0]
    assert got.find(".//{urn:ietf:params:xml:ns:xmpp-stanzas}remote-server-not-found") \
        is not None


def test_service_domain_cannot_shadow_a_host(harness: Harness) -> None:
    import pytest
    from xmppd.config import ConfigError
    ctx = harness.server.hosts["example.org"].contexts[0]
    with pytest.raises(ConfigError):
        ctx.service_domain("example.org", lambda el, s, t: None)
