# tests: xmppd/router.py, xmppd/hooks.py
"""`Router.from_client` says when a stanza is handled (XEP-0198 acks, DESIGN.md "✓ sent"):
None when delivered or answered at once, else a Deferred that fires after storage and after
whatever hook handlers held."""
from __future__ import annotations

from typing import Any, Callable

from twisted.internet import defer

from tests.harness.server import Harness, parse
from xmppd import hooks
from xmppd.hooks import STOP, StanzaEvent

ALICE, BOB = "alice@example.org", "bob@example.org"


def send(h: Harness, session: Any, xml: str) -> defer.Deferred[None] | None:
    el = parse(xml)
    el.set("from", str(session.jid))
    return h.server.router.from_client(session, el)


def fired(d: defer.Deferred[Any] | None) -> bool:
    if d is None:
        return True
    out: list[Any] = []
    d.addBoth(out.append)
    return bool(out)


def test_live_delivery_and_iqs_are_handled_at_once(harness: Harness) -> None:
    alice, bob = harness.login(f"{ALICE}/a"), harness.login(f"{BOB}/b")
    assert send(harness, alice, f"<message to='{BOB}/b'><body>hi</body></message>") is None
    assert bob.received()
    assert send(harness, alice, "<iq type='get' id='p' to='example.org'>"
                                "<ping xmlns='urn:xmpp:ping'/></iq>") is None
    assert send(harness, alice, "<presence/>") is None


def test_offline_storage_and_held_work_delay_it(
        make_harness: Callable[..., Harness]) -> None:
    h = make_harness(modules={"disco": {}, "ping": {}})
    store: defer.Deferred[object] = defer.Deferred()
    archive: defer.Deferred[None] = defer.Deferred()
    host = h.server.hosts["example.org"]
    host.hooks.add(hooks.message_offline, lambda ev: store)
    host.hooks.add(hooks.stanza_in, lambda ev: ev.hold(archive))
    h.user(BOB)
    alice = h.login(f"{ALICE}/a")
    d = send(h, alice, f"<message to='{BOB}'><body>hi</body></message>")
    assert d is not None and not fired(d)
    store.callback(STOP)
    assert not fired(d)                         # stored, but the held archive write is not
    archive.callback(None)
    assert fired(d)
    alice.expect_nothing()


def test_a_failed_hold_still_ends_with_handled(make_harness: Callable[..., Harness]) -> None:
    h = make_harness(modules={"disco": {}, "ping": {}})
    h.server.hosts["example.org"].hooks.add(
        hooks.stanza_in, lambda ev: ev.hold(defer.fail(RuntimeError("disk full"))))
    alice, bob = h.login(f"{ALICE}/a"), h.login(f"{BOB}/b")
    d = send(h, alice, f"<message to='{BOB}/b'><body>hi</body></message>")
    assert fired(d) and bob.received()          # delivered; the failure was logged


def test_stanzas_the_server_sends_hold_nothing(make_harness: Callable[..., Harness]) -> None:
    h = make_harness(modules={"disco": {}, "ping": {}})
    seen: list[StanzaEvent] = []
    h.server.hosts["example.org"].hooks.add(hooks.user_inbound, seen.append)
    bob = h.login(f"{BOB}/b")
    h.server.router.route(parse(f"<message from='example.org' to='{BOB}/b'><body>x</body>"
                                "</message>"))
    assert bob.received() and seen and seen[-1].held is None
    seen[-1].hold(defer.Deferred())             # a no-op: nobody waits on server stanzas
