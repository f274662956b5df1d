"""slixmpp clients for the cluster tests: stream management, carbons, MAM, roster pushes and
presence recorded, waits bounded and driven by events (no polling)."""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from tests.harness.clients import XmppClient

D = "localhost"


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 180))


class Client(XmppClient):
    def __init__(self, user: str, resource: str = "r", *, resume: bool = True,
                 plugins: tuple[str, ...] = ()) -> None:
        super().__init__(f"{user}@{D}/{resource}", f"{user}-pw",
                         plugins=("xep_0198", "xep_0280", "xep_0313", "xep_0012", "xep_0059",
                                  "xep_0203", "xep_0030") + plugins)
        self.plugin["xep_0198"].allow_resume = resume
        self.roster.auto_authorize = None
        self.roster.auto_subscribe = False
        self.presences: list[Any] = []
        self.pushes: list[tuple[str, str]] = []     # (contact, subscription) of roster pushes
        self.carbons: list[Any] = []
        self._waits: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []
        self.add_event_handler("presence", self._presence)
        self.add_event_handler("carbon_received", self._carbon)
        self.add_event_handler("carbon_sent", self._carbon)
        self.add_event_handler("roster_update", self._roster)
        for event in ("message", "stanza_acked", "session_resumed"):
            self.add_event_handler(event, lambda _: self._check())

    def _presence(self, p: Any) -> None:
        self.presences.append(p)
        self._check()

    def _carbon(self, m: Any) -> None:
        self.carbons.append(m)
        self._check()

    def _roster(self, iq: Any) -> None:
        for jid, item in iq["roster"]["items"].items():
            self.pushes.append((str(jid), item["subscription"]))
        self._check()

    def _check(self) -> None:
        for pred, fut in list(self._waits):
            if not fut.done() and pred():
                fut.set_result(None)

    async def until(self, pred: Callable[[], bool], timeout: float = 30.0) -> None:
        if pred():
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (pred, fut)
        self._waits.append(entry)
        try:
            await asyncio.wait_for(fut, timeout)
        finally:
            self._waits.remove(entry)

    async def all_acked(self, timeout: float = 60.0) -> None:
        """Everything sent is handled (XEP-0198: delivered or stored, on whatever node)."""
        await self.waiting_queue.join()
        sm = self.plugin["xep_0198"]
        sm.request_ack()
        await self.until(lambda: not sm.unacked_queue, timeout)

    def saw(self, kind: str, sender: str) -> bool:
        return any(p["type"] == kind and str(p["from"]) == sender for p in self.presences)

    async def messages(self, n: int, timeout: float = 30.0) -> list[Any]:
        return [await self.next_message(timeout) for _ in range(n)]


async def online(port: int, *clients: Client) -> None:
    for c in clients:
        assert await c.start(port)
