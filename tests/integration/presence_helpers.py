# tests: tests/integration/test_heartbeat.py, tests/integration/test_blocking_vcard_slixmpp.py
"""Helpers for integration tests that need contacts: a server config with the roster, presence
and last modules, accounts made in one interpreter, and slixmpp presence watching."""
from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any

from tests.harness.clients import XmppClient
from tests.harness.server_proc import DEFAULT_MODULES, REPO, RunningServer

CONTACT_MODULES = ("roster", "presence", "last")


def modules_with_contacts() -> str:
    """The default test modules, plus roster/presence/last if the default lacks them."""
    text = DEFAULT_MODULES
    for name in CONTACT_MODULES:
        if f"[modules.{name}]" not in text:
            text += f"[modules.{name}]\n"
    return text


def register(srv: RunningServer, users: tuple[str, ...]) -> None:
    """Accounts `user` / `user-pw`, made by xmppctl's code in one interpreter."""
    code = ("import sys; from xmppd.ctl import main; sys.exit(max(main(['--config', sys.argv[1],"
            " 'register', u, 'localhost', u + '-pw']) for u in sys.argv[2:]))")
    done = subprocess.run([sys.executable, "-c", code, str(srv.config), *users], cwd=REPO,
                          env=srv.env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


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
