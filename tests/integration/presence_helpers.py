# tests: tests/integration/test_heartbeat.py, tests/integration/test_blocking_vcard_slixmpp.py, tests/integration/test_pep_slixmpp.py
"""Helpers for integration tests that need contacts: slixmpp presence watching and mutual
subscriptions (the server and its accounts come from the `server_factory` fixture)."""
from __future__ import annotations

import asyncio
from typing import Any

from tests.harness.clients import XmppClient


class Watcher:
    """Queues a slixmpp client's incoming presence as (type, from, stanza)."""

    def __init__(self, client: XmppClient) -> None:
        self.queue: asyncio.Queue[tuple[str, str, Any]] = asyncio.Queue()
        for kind in ("available", "unavailable"):
            client.add_event_handler(
                f"presence_{kind}",
                lambda p, kind=kind: self.queue.put_nowait((kind, str(p["from"]), p)))

    async def wait_for(self, kind: str, sender: str, timeout: float = 10.0) -> Any:
        async def find() -> Any:
            while True:
                got_kind, got_from, stanza = await self.queue.get()
                if (got_kind, got_from) == (kind, sender):
                    return stanza
        return await asyncio.wait_for(find(), timeout)


async def befriend(a: XmppClient, wa: Watcher, b: XmppClient, wb: Watcher) -> None:
    """Mutual subscription; slixmpp approves and subscribes back on its own (auto_authorize,
    auto_subscribe). Done when the server has pushed 'both' to each side (a client's presence
    can overtake its own subscription approval, so seeing presence is not enough), and each
    has the other's presence."""
    done = [_pushed_both(a, b.boundjid.bare), _pushed_both(b, a.boundjid.bare)]
    for c in (a, b):
        await c.get_roster(timeout=10)      # interested in pushes (RFC 6121 §2.1.6)
    a.send_presence_subscription(pto=b.boundjid.bare)
    await asyncio.wait_for(asyncio.gather(*done), 10)
    await wa.wait_for("available", str(b.boundjid))
    await wb.wait_for("available", str(a.boundjid))


def _pushed_both(client: XmppClient, contact: str) -> asyncio.Future[None]:
    found: asyncio.Future[None] = asyncio.get_event_loop().create_future()
    path = "{jabber:iq:roster}query/{jabber:iq:roster}item"

    def watch(stanza: Any) -> Any:
        if stanza.name == "iq" and stanza["type"] == "set" and not found.done():
            for item in stanza.xml.findall(path):
                if item.get("jid") == contact and item.get("subscription") == "both":
                    found.set_result(None)
        return stanza
    client.add_filter("in", watch)
    return found
