"""`when_handled` (xmppd/router_deliver.py): the router's "handled" for a client's stanza, which
the sender's XEP-0198 ack waits for — routing finished, then everything hooks held."""
from __future__ import annotations

from typing import Any

from lxml import etree
from twisted.internet import defer

from xmppd.router_deliver import when_handled

EL = etree.fromstring(b"<message xmlns='jabber:client' to='bob@example.org'/>")


def fired(d: defer.Deferred[Any]) -> bool:
    seen: list[object] = []
    d.addBoth(seen.append)
    return bool(seen)


def test_fires_at_once_when_routing_finished_and_nothing_was_held() -> None:
    assert fired(when_handled(None, [], EL))


def test_waits_for_every_held_deferred_in_any_order() -> None:
    a: defer.Deferred[None] = defer.Deferred()
    b: defer.Deferred[None] = defer.Deferred()
    handled = when_handled(None, [a, b], EL)
    b.callback(None)
    assert not handled.called
    a.callback(None)
    assert handled.called


def test_waits_for_routing_then_for_what_was_held_while_it_ran() -> None:
    routing: defer.Deferred[None] = defer.Deferred()
    held: list[defer.Deferred[Any]] = []
    handled = when_handled(routing, held, EL)
    late: defer.Deferred[None] = defer.Deferred()
    held.append(late)               # a hook held the archive write after an await
    routing.callback(None)
    assert not handled.called
    late.callback(None)
    assert handled.called


def test_held_work_added_while_waiting_is_waited_for_too() -> None:
    first: defer.Deferred[None] = defer.Deferred()
    second: defer.Deferred[None] = defer.Deferred()
    held: list[defer.Deferred[Any]] = [first]
    handled = when_handled(None, held, EL)
    held.append(second)
    first.callback(None)
    assert not handled.called
    second.callback(None)
    assert handled.called


def test_failures_are_logged_and_still_count_as_handled(caplog: Any) -> None:
    routing: defer.Deferred[None] = defer.Deferred()
    write: defer.Deferred[None] = defer.Deferred()
    handled = when_handled(routing, [write], EL)
    routing.errback(RuntimeError("routing broke"))
    write.errback(RuntimeError("disk gone"))
    results: list[object] = []
    handled.addBoth(results.append)
    assert results == [None]
    assert "routing failed" in caplog.text and "disk gone" in caplog.text


def test_already_fired_held_work_does_not_fire_twice() -> None:
    done = defer.succeed(None)
    handled = when_handled(None, [done, defer.succeed(None)], EL)
    calls: list[object] = []
    handled.addBoth(calls.append)
    assert calls == [None]
