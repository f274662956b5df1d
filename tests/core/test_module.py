# tests: xmppd/module.py, xmppd/clock.py
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.harness.server import Harness, parse
from xmppd.config import ConfigError
from xmppd.loader import resolve
from xmppd.module import IqTimeout, ModuleContext


def test_unknown_module_and_bad_option_name_the_key() -> None:
    with pytest.raises(ConfigError, match="modules.nope: no such module"):
        resolve({"nope": {}})
    with pytest.raises(ConfigError, match="modules.version: unknown key 'shows_os'"):
        resolve({"version": {"shows_os": True}})
    with pytest.raises(ConfigError, match="modules.register.allow_from"):
        resolve({"register": {"allow_from": ["not-an-ip"]}})


def test_modules_are_ordered_by_name_when_independent() -> None:
    plan = resolve({"ping": {}, "disco": {}})
    assert [cls.name for cls, _ in plan] == ["disco", "ping"]


def test_closing_a_module_context_undoes_every_registration(harness: Harness) -> None:
    host = harness.server.hosts["example.org"]
    assert host.iq_handlers and host.features["host"]
    for ctx in host.contexts:
        ctx.close()
    assert host.iq_handlers == {}
    assert host.features == {"host": [], "account": []}
    assert host.stream_features == {"preauth": [], "session": []}
    assert host.preauth_policies == [] and host.services == {}
    assert host.items == [] and host.output_filters == [] and host.input_observers == []


def test_scoped_clock_calls_die_with_the_context(harness: Harness) -> None:
    host = harness.server.hosts["example.org"]
    ctx = host.contexts[0]
    fired: list[int] = []
    ctx.clock.call_later(10, fired.append, 1)
    ctx.clock.looping_call(5, lambda: fired.append(2))
    harness.clock.advance(5)
    assert fired == [2]
    ctx.close()
    harness.clock.advance(100)
    assert fired == [2]


def test_send_iq_resolves_with_the_result(harness: Harness) -> None:
    alice = harness.login("alice@example.org/a")
    ctx = harness.server.hosts["example.org"].contexts[0]
    iq = parse("<iq type='get' id='s1' to='alice@example.org/a'>"
               "<ping xmlns='urn:xmpp:ping'/></iq>")
    d = ctx.send_iq(iq, timeout=5)
    alice.expect("<iq type='get' id='s1' to='alice@example.org/a' from='example.org'>"
                 "<ping xmlns='urn:xmpp:ping'/></iq>")
    alice.send("<iq type='result' id='s1' to='example.org'/>")
    got: list[object] = []
    d.addCallback(got.append)
    assert got and got[0].get("type") == "result"   # type: ignore[attr-defined]


def test_send_iq_times_out_and_error_reply_raises(harness: Harness) -> None:
    alice = harness.login("alice@example.org/a")
    ctx = harness.server.hosts["example.org"].contexts[0]
    d = ctx.send_iq(parse("<iq type='get' id='s2' to='alice@example.org/a'>"
                          "<ping xmlns='urn:xmpp:ping'/></iq>"), timeout=5)
    failures: list[object] = []
    d.addErrback(failures.append)
    harness.clock.advance(5)
    assert failures and failures[0].check(IqTimeout)   # type: ignore[attr-defined]
    d2 = ctx.send_iq(parse("<iq type='get' id='s3' to='alice@example.org/a'>"
                           "<ping xmlns='urn:xmpp:ping'/></iq>"), timeout=5)
    alice.received()
    alice.send("<iq type='error' id='s3' to='example.org'><error type='cancel'>"
               "<feature-not-implemented xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
               "</error></iq>")
    errs: list[object] = []
    d2.addErrback(errs.append)
    assert errs and errs[0].value.condition == "feature-not-implemented"  # type: ignore[attr-defined]


def test_new_registrations_are_undone_too(harness: Harness) -> None:
    host = harness.server.hosts["example.org"]
    ctx = host.contexts[0]
    ctx.disco_item("rooms.example.org", "Rooms")
    ctx.output_filter(lambda session, data: False)
    ctx.input_observer(lambda session, handled: None)
    assert ctx.host_disco().items == (("rooms.example.org", "Rooms"),)
    ctx.close()
    assert host.items == [] and host.output_filters == [] and host.input_observers == []


def test_output_filters_run_in_priority_order_and_pass_on_continues(harness: Harness) -> None:
    from xmppd.hooks import EARLY, LATE
    alice = harness.login("alice@example.org/a")
    ctx = harness.server.hosts["example.org"].contexts[0]
    order: list[str] = []
    held: list[bytes] = []

    def late(session: object, data: bytes) -> bool:
        order.append("late")
        return False

    def early(session: object, data: bytes) -> bool:
        order.append("early")
        held.append(data)
        return True                             # taken: sent on later with pass_on
    ctx.output_filter(late, priority=LATE)
    ctx.output_filter(early, priority=EARLY)
    alice.send("<message to='alice@example.org/a'><body>hi</body></message>")
    assert order == ["early"] and alice.received() == []
    alice.pass_on(early, held[0])
    assert order == ["early", "late"] and len(alice.received()) == 1


def test_close_cancels_the_iqs_still_waited_for(harness: Harness) -> None:
    harness.login("alice@example.org/a")
    ctx = harness.server.hosts["example.org"].contexts[0]
    d = ctx.send_iq(parse("<iq type='get' id='c1' to='alice@example.org/a'>"
                          "<ping xmlns='urn:xmpp:ping'/></iq>"), timeout=30)
    failed: list[object] = []
    d.addErrback(lambda f: failed.append(f.value))
    ctx.close()
    import twisted.internet.defer as defer
    assert len(failed) == 1 and isinstance(failed[0], defer.CancelledError)
    assert not harness.server.hosts["example.org"].pending_iqs


def test_an_iq_to_a_session_that_ends_fails_at_once(harness: Harness) -> None:
    alice = harness.login("alice@example.org/a")
    ctx = harness.server.hosts["example.org"].contexts[0]
    d = ctx.send_iq(parse("<iq type='get' id='g1' to='alice@example.org/a'>"
                          "<ping xmlns='urn:xmpp:ping'/></iq>"), timeout=30)
    failed: list[object] = []
    d.addErrback(lambda f: failed.append(getattr(f.value, "condition", f.value)))
    alice.drop()
    assert failed == ["service-unavailable"]     # RFC 6121 §8.5.3.2.1, not a 30 s wait


def test_recipients_follow_rfc_6121_message_rules(harness: Harness) -> None:
    from stanzas.jid import JID
    a = harness.login("alice@example.org/a")
    b = harness.login("alice@example.org/b")
    b.send("<presence><priority>5</priority></presence>")
    ctx = harness.server.hosts["example.org"].contexts[0]
    bare = JID.parse("alice@example.org")
    assert ctx.recipients(bare, "chat") == [b]
    assert set(ctx.recipients(bare, "headline")) == {a, b}
    assert ctx.recipients(bare, "groupchat") == [] and ctx.recipients(bare, "error") == []
    assert ctx.recipients(JID.parse("alice@example.org/a"), "groupchat") == [a]
    assert ctx.recipients(JID.parse("alice@example.org/gone"), "chat") == [b]


def test_service_on_finds_the_peer_on_another_host(make_harness: Any) -> None:
    h = make_harness(modules={"roster": {}}, hosts=("a.example", "b.example"))
    from modules.roster import RosterModule
    ctx = h.server.hosts["a.example"].contexts[0]
    peer = ctx.service_on("b.example", RosterModule)
    assert peer is h.server.hosts["b.example"].modules["roster"]
    assert ctx.service_on("elsewhere.example", RosterModule) is None


def test_port_files_wait_for_what_modules_read_at_start(make_harness: Any,
                                                        tmp_path: Path) -> None:
    from twisted.internet import defer

    from xmppd.main import announce_when
    h = make_harness(modules={"register": {"allow_from": ["127.0.0.0/8"]}})
    reading: defer.Deferred[None] = defer.Deferred()
    host = h.server.hosts["example.org"]
    ctx = ModuleContext(host, "reader", None)
    ctx.before_serving(reading)                 # a module's start-up read, not done yet
    port_file = tmp_path / "port"
    announce_when(h.server.starting, [(str(port_file), 5222)])
    assert not port_file.exists() and h.server.starting == []
    reading.errback(RuntimeError("storage down"))   # failed reads (logged) do not hold it up
    assert port_file.read_text() == "5222\n"
