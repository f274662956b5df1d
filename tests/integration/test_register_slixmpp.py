# tests: modules/register.py
"""XEP-0077 with slixmpp's xep_0077 plugin: sign up from loopback, duplicate refused,
password change and account removal by a logged-in user."""
from __future__ import annotations

import asyncio
import secrets

from slixmpp.exceptions import IqError

from tests.harness.clients import XmppClient, run
from tests.harness.server_proc import RunningServer


class Registrar(XmppClient):
    """Registers in-band during negotiation (slixmpp's documented register_bot pattern)."""

    def __init__(self, jid: str, password: str) -> None:
        super().__init__(jid, password, plugins=("xep_0030", "xep_0004", "xep_0066",
                                                 "xep_0077"))
        self.plugin["xep_0077"].force_registration = True
        self.result: asyncio.Future[str] = asyncio.get_event_loop().create_future()
        self.add_event_handler("register", self.register)

    async def register(self, _: object) -> None:
        iq = self.Iq()
        iq["type"] = "set"
        iq["register"]["username"] = self.boundjid.user
        iq["register"]["password"] = self.password
        try:
            await iq.send(timeout=10)
            outcome = "ok"
        except IqError as e:
            outcome = e.iq["error"]["condition"]
        if not self.result.done():
            self.result.set_result(outcome)


def test_sign_up_change_password_and_delete(server: RunningServer) -> None:
    name = "new" + secrets.token_hex(4)
    errors_before = server.errors()

    async def go() -> None:
        r = Registrar(f"{name}@localhost/reg", "first-pw")
        r.connect(host="127.0.0.1", port=server.port)
        assert await asyncio.wait_for(r.result, 20) == "ok"
        await r.stop()

        again = Registrar(f"{name}@localhost/reg", "other-pw")
        again.connect(host="127.0.0.1", port=server.port)
        assert await asyncio.wait_for(again.result, 20) == "conflict"
        await again.stop()

        c = XmppClient(f"{name}@localhost/a", "first-pw", plugins=("xep_0030", "xep_0004",
                                                                  "xep_0066", "xep_0077"))
        assert await c.start(server.port)
        await c.plugin["xep_0077"].change_password("second-pw", jid="localhost", timeout=10)
        await c.stop()

        c2 = XmppClient(f"{name}@localhost/a", "second-pw", plugins=("xep_0030", "xep_0004",
                                                                    "xep_0066", "xep_0077"))
        assert await c2.start(server.port)
        await c2.plugin["xep_0077"].cancel_registration(jid="localhost", timeout=10)
        await asyncio.wait_for(c2.gone.wait(), 10)
        assert c2.stream_errors == ["not-authorized"]

        c3 = XmppClient(f"{name}@localhost/a", "second-pw")
        assert await c3.start(server.port) is False
        await c3.stop()
    run(go(), 90)
    assert name not in server.ctl("users", "localhost").stdout.split()
    # The deleted user's session ended after its account: its logout hooks (last seen) have
    # nothing to write to, which is no error (a foreign-key violation on PostgreSQL once).
    assert server.errors() == errors_before
