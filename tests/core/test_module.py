# tests: xmppd/module.py, xmppd/clock.py
from __future__ import annotations

import pytest

from tests.harness.server import Harness, parse
from xmppd.config import ConfigError
from xmppd.module import IqTimeout, resolve


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
