# tests: modules/roster/, modules/presence.py, modules/last.py, storage/roster.py, storage/last.py
"""Contacts, presence and last seen driven by slixmpp against the real server, on both backend
pairs: subscriptions with both users online and with the contact offline, who sees whose
presence among three users with two resources each (also after a socket is dropped without a
goodbye), roster versioning, and XEP-0012 last seen across a server restart."""
from __future__ import annotations

import asyncio
from typing import Any, Callable

import pytest
from slixmpp.exceptions import IqError

from tests.harness.clients import XmppClient, run
from tests.harness.server_proc import RunningServer, ServerFactory

USERS = ("ann", "ben", "cat", "dan", "eve", "fay", "gus", "hal", "ida", "jon", "kim")
D = "localhost"


@pytest.fixture(scope="module")
def server(server_factory: ServerFactory) -> RunningServer:
    return server_factory(users=USERS)


class Contact(XmppClient):
    """A client that, like real ones, fetches the roster before its initial presence, answers
    subscription requests only when told to, and records every presence it receives."""

    def __init__(self, user: str, resource: str = "r") -> None:
        super().__init__(f"{user}@{D}/{resource}", f"{user}-pw", plugins=("xep_0012",))
        self.roster.auto_authorize = None       # None: the test answers (False would deny)
        self.roster.auto_subscribe = False
        self.seen: dict[str, str] = {}           # full JID -> "available" / "unavailable"
        self.received: list[tuple[str, str]] = []  # (type, from) of subscription stanzas
        self._waiters: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []
        self.add_event_handler("presence", self._presence)
        self.add_event_handler("roster_update", lambda _: self._check())

    def _started(self, _: Any) -> None:
        async def begin() -> None:
            await self.get_roster(timeout=10)
            self.send_presence()
            if not self._ready.done():
                self._ready.set_result(True)
        asyncio.ensure_future(begin())

    def _presence(self, p: Any) -> None:
        kind = p["type"]
        if kind in ("subscribe", "subscribed", "unsubscribe", "unsubscribed"):
            self.received.append((kind, str(p["from"])))
        elif kind == "unavailable":
            self.seen[str(p["from"])] = "unavailable"
        elif kind in ("available",) + tuple(p.showtypes):
            self.seen[str(p["from"])] = "available"
        self._check()

    def _check(self) -> None:
        for pred, fut in list(self._waiters):
            if not fut.done() and pred():
                fut.set_result(None)

    async def until(self, pred: Callable[[], bool], timeout: float = 10.0) -> None:
        """Wait for `pred` to hold; checked whenever a presence or roster push arrives."""
        if pred():
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (pred, fut)
        self._waiters.append(entry)
        try:
            await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"{self.boundjid}: condition not met; saw {self.seen}, "
                                 f"subscription stanzas {self.received}") from None
        finally:
            self._waiters.remove(entry)

    def available(self) -> set[str]:
        return {j for j, s in self.seen.items() if s == "available"}

    def sub(self, bare: str) -> tuple[str, bool]:
        """(subscription, pending out) of the roster item for `bare`, as pushed by the server."""
        item = self.client_roster[bare]
        return item["subscription"], bool(item["pending_out"])

    def has_item(self, bare: str) -> bool:
        return bare in self.client_roster

    def presence_to(self, to: str, kind: str) -> None:
        self.send_presence(pto=to, ptype=kind)

    async def sync(self) -> None:
        """A server round trip: everything the server sent before it has arrived."""
        await self.plugin["xep_0199"].ping(D, timeout=10)


async def online(*clients: Contact, port: int) -> None:
    for c in clients:
        assert await c.start(port)


async def befriend(a: Contact, b: Contact) -> None:
    """Mutual subscription through the protocol: a asks, b approves, and back."""
    ja, jb = a.boundjid.bare, b.boundjid.bare
    for asker, approver, target, source in ((a, b, jb, ja), (b, a, ja, jb)):
        asker.presence_to(target, "subscribe")
        await approver.until(lambda: ("subscribe", source) in approver.received)
        approver.presence_to(source, "subscribed")
        await asker.until(lambda: ("subscribed", target) in asker.received)
    await a.until(lambda: a.sub(jb) == ("both", False))
    await b.until(lambda: b.sub(ja) == ("both", False))


def test_subscription_flow_with_both_online(server: RunningServer) -> None:
    async def go() -> None:
        ann, ben = Contact("ann"), Contact("ben")
        await online(ann, ben, port=server.port)
        # request: ann's roster shows the pending request, ben gets it
        ann.presence_to(f"ben@{D}", "subscribe")
        await ann.until(lambda: ann.sub(f"ben@{D}") == ("none", True))
        await ben.until(lambda: ("subscribe", f"ann@{D}") in ben.received)
        # approve: ann subscribes to ben and sees him online; ben has a 'from'
        ben.presence_to(f"ann@{D}", "subscribed")
        await ann.until(lambda: ann.sub(f"ben@{D}") == ("to", False))
        await ann.until(lambda: f"ben@{D}/r" in ann.available())
        await ben.until(lambda: ben.sub(f"ann@{D}") == ("from", False))
        assert f"ann@{D}/r" not in ben.seen               # 'from' only: ben does not see ann
        # and back: both
        ben.presence_to(f"ann@{D}", "subscribe")
        await ann.until(lambda: ("subscribe", f"ben@{D}") in ann.received)
        ann.presence_to(f"ben@{D}", "subscribed")
        await ben.until(lambda: ben.sub(f"ann@{D}") == ("both", False))
        await ben.until(lambda: f"ann@{D}/r" in ben.available())
        await ann.until(lambda: ann.sub(f"ben@{D}") == ("both", False))
        # removal cancels both directions (RFC 6121 §2.5.2): ben sees ann leave his presence
        ann.del_roster_item(f"ben@{D}")
        await ben.until(lambda: ben.sub(f"ann@{D}") == ("none", False))
        await ben.until(lambda: ben.seen.get(f"ann@{D}/r") == "unavailable")
        await ann.until(lambda: not ann.has_item(f"ben@{D}")
                        or ann.client_roster[f"ben@{D}"]["subscription"] == "none")
        # ask again, and ben denies: ann is told, nothing pending remains
        ann.presence_to(f"ben@{D}", "subscribe")
        await ben.until(lambda: ben.received.count(("subscribe", f"ann@{D}")) == 2)
        ben.presence_to(f"ann@{D}", "unsubscribed")
        await ann.until(lambda: ("unsubscribed", f"ben@{D}") in ann.received)
        await ann.until(lambda: ann.sub(f"ben@{D}") == ("none", False))
        await ann.stop()
        await ben.stop()
    run(go())


def test_subscription_request_waits_for_an_offline_contact(server: RunningServer) -> None:
    async def go() -> None:
        cat = Contact("cat")
        await online(cat, port=server.port)
        cat.presence_to(f"dan@{D}", "subscribe")
        await cat.until(lambda: cat.sub(f"dan@{D}") == ("none", True))
        await cat.sync()
        dan = Contact("dan")                    # logs in later: the request is waiting
        await online(dan, port=server.port)
        await dan.until(lambda: ("subscribe", f"cat@{D}") in dan.received)
        dan.presence_to(f"cat@{D}", "subscribed")
        await cat.until(lambda: cat.sub(f"dan@{D}") == ("to", False))
        await cat.until(lambda: f"dan@{D}/r" in cat.available())
        await dan.until(lambda: dan.sub(f"cat@{D}") == ("from", False))
        await cat.stop()
        await dan.stop()
    run(go())


def test_three_users_with_two_resources_see_exactly_what_they_should(
        server: RunningServer) -> None:
    """eve and fay are mutual contacts; fay is subscribed to gus (gus has a 'from' for fay);
    eve and gus know nothing of each other."""
    async def go() -> None:
        eve1, fay1, gus1 = Contact("eve", "1"), Contact("fay", "1"), Contact("gus", "1")
        await online(eve1, fay1, gus1, port=server.port)
        await befriend(eve1, fay1)
        fay1.presence_to(f"gus@{D}", "subscribe")
        await gus1.until(lambda: ("subscribe", f"fay@{D}") in gus1.received)
        gus1.presence_to(f"fay@{D}", "subscribed")
        await fay1.until(lambda: fay1.sub(f"gus@{D}") == ("to", False))
        eve2, fay2, gus2 = Contact("eve", "2"), Contact("fay", "2"), Contact("gus", "2")
        await online(eve2, fay2, gus2, port=server.port)
        everyone = (eve1, eve2, fay1, fay2, gus1, gus2)
        eves, fays, guss = ({f"{u}@{D}/1", f"{u}@{D}/2"} for u in ("eve", "fay", "gus"))
        expected = {"eve": eves | fays, "fay": eves | fays | guss, "gus": guss}

        async def settled(exp: dict[str, set[str]]) -> None:
            for c in everyone:
                await c.until(lambda c=c: c.available() == exp[c.boundjid.user])
            for c in everyone:
                await c.sync()
            for c in everyone:          # and nothing else arrived afterwards
                assert c.available() == exp[c.boundjid.user], (c.boundjid, c.seen)
        await settled(expected)
        for c in (eve1, eve2):
            assert not any(j.startswith(f"gus@{D}") for j in c.seen)
        for c in (gus1, gus2):
            assert not any(j.startswith((f"eve@{D}", f"fay@{D}")) for j in c.seen)

        # gus/2's socket dies without a goodbye: fay and gus/1 see it go, eve sees nothing
        gus2.transport.abort()
        expected = {"eve": eves | fays, "fay": eves | fays | {f"gus@{D}/1"},
                    "gus": {f"gus@{D}/1"}}
        everyone = (eve1, eve2, fay1, fay2, gus1)
        await settled(expected)
        for c in (fay1, fay2, gus1):
            assert c.seen[f"gus@{D}/2"] == "unavailable"
        # eve/1 logs out cleanly: fay and eve/2 see it
        await eve1.stop()
        expected = {"eve": {f"eve@{D}/2"} | fays, "fay": {f"eve@{D}/2"} | fays | {f"gus@{D}/1"},
                    "gus": {f"gus@{D}/1"}}
        everyone = (eve2, fay1, fay2, gus1)
        await settled(expected)
        for c in everyone:
            await c.stop()
    run(go())


def test_roster_versioning_returns_an_empty_result_when_nothing_changed(
        server: RunningServer) -> None:
    async def go() -> None:
        hal = Contact("hal")
        await online(hal, port=server.port)
        assert "rosterver" in hal.features
        await hal.update_roster(f"kim@{D}", name="Kim", groups=["Work"], timeout=10)
        version = hal.client_roster.version
        assert version

        async def roster_get(ver: str) -> Any:
            iq = hal.Iq(stype="get")
            iq.enable("roster")
            iq["roster"]["ver"] = ver
            return await iq.send(timeout=10)
        again = await roster_get(version)
        assert again["type"] == "result" and len(again.xml) == 0    # empty: no <query/>
        # another change: the old version now gets the full roster with the new version
        await hal.update_roster(f"ann@{D}", name="Ann", timeout=10)
        full = await roster_get(version)
        assert full["roster"]["ver"] not in ("", version)
        assert set(full["roster"]["items"]) == {f"kim@{D}", f"ann@{D}"}
        assert full["roster"]["items"][f"kim@{D}"]["groups"] == ["Work"]
        await hal.stop()
    run(go())


def test_last_seen_after_logout_and_after_a_restart(server: RunningServer) -> None:
    async def go() -> None:
        ida, jon, kim = Contact("ida"), Contact("jon"), Contact("kim")
        await online(ida, jon, kim, port=server.port)
        await befriend(ida, jon)
        online_now = await jon.plugin["xep_0012"].get_last_activity(f"ida@{D}", timeout=10)
        assert online_now["last_activity"]["seconds"] == 0
        ida.send_presence(ptype="unavailable", pstatus="gone fishing")
        await jon.until(lambda: jon.seen.get(f"ida@{D}/r") == "unavailable")
        await ida.stop()
        await asyncio.sleep(1.1)                # a real second must pass for seconds > 0
        got = await jon.plugin["xep_0012"].get_last_activity(f"ida@{D}", timeout=10)
        assert got["last_activity"]["seconds"] >= 1
        assert got["last_activity"]["status"] == "gone fishing"
        with pytest.raises(IqError) as err:     # a stranger: XEP-0012 §3 forbidden
            await kim.plugin["xep_0012"].get_last_activity(f"ida@{D}", timeout=10)
        assert err.value.condition == "forbidden"
        await jon.stop()
        await kim.stop()
    run(go())
    server.restart()

    async def after() -> None:
        jon = Contact("jon")
        await online(jon, port=server.port)
        got = await jon.plugin["xep_0012"].get_last_activity(f"ida@{D}", timeout=10)
        assert got["last_activity"]["seconds"] >= 1
        assert got["last_activity"]["status"] == "gone fishing"
        uptime = await jon.plugin["xep_0012"].get_last_activity(D, timeout=10)
        assert uptime["last_activity"]["seconds"] < got["last_activity"]["seconds"] + 60
        await jon.stop()
    run(after())
