# tests: modules/adhoc.py, modules/admin_commands/__init__.py, modules/admin_commands/users.py, modules/admin_commands/announce.py, modules/admin_commands/lists.py
"""XEP-0133 service administration driven by slixmpp's XEP-0050 client (xep_0050's command
workflow: start_command, then complete_command with the filled-in form) against a running
server, on both backend pairs: every command as an admin, and as a non-admin (<forbidden/>)."""
from __future__ import annotations

import asyncio
from typing import Any

import pytest
from slixmpp.exceptions import IqError

from tests.harness.clients import XmppClient
from tests.harness.server_proc import DEFAULT_MODULES, RunningServer, ServerFactory
from tests.integration.test_register_slixmpp import Registrar

ADMIN = "http://jabber.org/protocol/admin"
NODES = ["add-user", "delete-user", "disable-user", "reenable-user", "end-user-session",
         "change-user-password", "user-stats", "get-registered-users-num",
         "get-disabled-users-num", "get-online-users-num", "get-registered-users-list",
         "get-disabled-users-list", "get-online-users-list", "announce", "set-motd",
         "edit-motd", "delete-motd", "edit-whitelist", "edit-blacklist"]
PLUGINS = ("xep_0030", "xep_0004", "xep_0050")


@pytest.fixture(scope="module")
def srv(server_factory: ServerFactory) -> RunningServer:
    return server_factory(DEFAULT_MODULES | {"adhoc": {}, "admin_commands": {}},
                          users=("boss", "alice", "bob"), server={"admins": ["boss@localhost"]})


class Admin(XmppClient):
    def __init__(self, jid: str, password: str) -> None:
        super().__init__(jid, password, plugins=PLUGINS)

    async def run(self, node: str, fill: dict[str, Any] | None = None) -> Any:
        """Run a command with xep_0050's workflow: the form it returns is filled in with
        `fill` and completed. The final <command/> (or the IqError's IQ)."""
        loop = asyncio.get_running_loop()
        outcome: asyncio.Future[Any] = loop.create_future()
        xep = self.plugin["xep_0050"]

        def done(iq: Any, session: dict[str, Any]) -> None:
            if not outcome.done():
                outcome.set_result(iq)

        def failed(iq: Any, session: dict[str, Any]) -> None:
            # An error to a first <command/> has no sessionid: slixmpp files the session
            # under "client:" and would hand the next error to this handler; forget it.
            xep.terminate_command(session)
            if not outcome.done():
                outcome.set_exception(IqError(iq))

        def form(iq: Any, session: dict[str, Any]) -> None:
            if iq["command"]["status"] == "completed":
                return done(iq, session)
            submit = iq["command"]["form"]
            submit["type"] = "submit"
            for var, value in (fill or {}).items():
                submit.field[var]["value"] = value
            session["payload"] = submit
            session["next"] = done
            xep.complete_command(session)
        xep.start_command("localhost", f"{ADMIN}#{node}", {"next": form, "error": failed})
        return await asyncio.wait_for(outcome, 20)


class Attempt(Registrar):
    """An in-band sign-up: "ok", the error condition, or "not-offered" when the server does
    not offer registration to this address (XEP-0077 §5: no <register/> stream feature, so
    slixmpp goes on to log in, and fails)."""

    def __init__(self, jid: str, password: str) -> None:
        super().__init__(jid, password)
        self.add_event_handler("failed_all_auth", self._not_offered)

    def _not_offered(self, _: object) -> None:
        if not self.result.done():
            self.result.set_result("not-offered")


def values(iq: Any, var: str) -> Any:
    return iq["command"]["form"].get_fields()[var]["value"]


def notes(iq: Any) -> list[tuple[str, str]]:
    return [(n[0], n[1]) for n in iq["command"]["notes"]]


async def login(srv: RunningServer, jid: str, password: str, cls: type = XmppClient) -> Any:
    c = cls(jid, password) if cls is not XmppClient else XmppClient(jid, password)
    assert await c.start(srv.port)
    return c


async def seen(admin: Any, command: str, data: dict[str, Any] | None, var: str,
               want: Any) -> Any:
    """Run `command` until its field `var` is `want` (5 s at most), and return its answer: on
    a cluster the node answering learns of a session on another node through the registry's
    pub/sub (docs/CLUSTER.md "the mirror"), a few milliseconds after the login ends."""
    deadline = asyncio.get_running_loop().time() + 5
    while True:
        got = await admin.run(command, data)
        if values(got, var) == want or asyncio.get_running_loop().time() > deadline:
            assert values(got, var) == want
            return got
        await asyncio.sleep(0.1)


async def can_login(srv: RunningServer, jid: str, password: str) -> bool:
    c = XmppClient(jid, password)
    ok = await c.start(srv.port)
    await c.stop()
    return ok


def test_non_admins_see_no_command_and_are_forbidden(srv: RunningServer) -> None:
    async def go() -> None:
        alice = await login(srv, "alice@localhost/a", "alice-pw", Admin)
        boss = await login(srv, "boss@localhost/desk", "boss-pw", Admin)
        listed = await alice.plugin["xep_0050"].get_commands("localhost")
        assert [i[1] for i in listed["disco_items"]["items"]] == []
        listed = await boss.plugin["xep_0050"].get_commands("localhost")
        assert sorted(i[1] for i in listed["disco_items"]["items"]) == \
            sorted(f"{ADMIN}#{n}" for n in NODES)
        for node in NODES:
            with pytest.raises(IqError) as e:
                await alice.run(node)
            assert e.value.condition == "forbidden", node
        await alice.stop()
        await boss.stop()
    asyncio.run(asyncio.wait_for(go(), 120))


def test_accounts_sessions_numbers_and_lists(srv: RunningServer) -> None:
    async def go() -> None:
        boss = await login(srv, "boss@localhost/desk", "boss-pw", Admin)
        done = await boss.run("add-user", {"accountjid": "carol@localhost", "password": "c1",
                                           "password-verify": "c1"})
        assert done["command"]["status"] == "completed"
        with pytest.raises(IqError) as e:
            await boss.run("add-user", {"accountjid": "carol@localhost", "password": "x"})
        assert e.value.condition == "conflict"
        await boss.run("change-user-password", {"accountjid": "carol@localhost",
                                                "password": "c2"})
        assert not await can_login(srv, "carol@localhost/x", "c1")
        carol = await login(srv, "carol@localhost/phone", "c2")
        stats = await seen(boss, "user-stats", {"accountjid": "carol@localhost"},
                           "onlineresources", ["carol@localhost/phone"])
        assert values(stats, "ipaddresses") == ["127.0.0.1"]
        await seen(boss, "get-online-users-num", None, "onlineusersnum", "2")
        await seen(boss, "get-online-users-list", {"max_items": "none"}, "onlineuserjids",
                   ["boss@localhost", "carol@localhost"])
        assert values(await boss.run("get-registered-users-num"), "registeredusersnum") == "4"
        listed = await boss.run("get-registered-users-list", {"max_items": "25"})
        assert set(values(listed, "registereduserjids")) >= {"alice@localhost", "carol@localhost"}
        await boss.run("end-user-session", {"accountjids": ["carol@localhost"]})
        await asyncio.wait_for(carol.gone.wait(), 10)
        assert carol.stream_errors == ["policy-violation"]
        carol = await login(srv, "carol@localhost/phone", "c2")
        await boss.run("disable-user", {"accountjids": ["carol@localhost"]})
        await asyncio.wait_for(carol.gone.wait(), 10)
        assert not await can_login(srv, "carol@localhost/x", "c2")
        assert values(await boss.run("get-disabled-users-num"), "disabledusersnum") == "1"
        listed = await boss.run("get-disabled-users-list", {"max_items": "25"})
        assert values(listed, "disableduserjids") == ["carol@localhost"]
        await boss.run("reenable-user", {"accountjids": ["carol@localhost"]})
        assert await can_login(srv, "carol@localhost/x", "c2")
        gone = await boss.run("delete-user", {"accountjids": ["carol@localhost"]})
        assert notes(gone) == [("info", "deleted: carol@localhost")]
        assert not await can_login(srv, "carol@localhost/x", "c2")
        await boss.stop()
    asyncio.run(asyncio.wait_for(go(), 120))


def test_announce_and_message_of_the_day(srv: RunningServer) -> None:
    async def go() -> None:
        boss = await login(srv, "boss@localhost/desk", "boss-pw", Admin)
        alice = await login(srv, "alice@localhost/a", "alice-pw")
        await boss.run("announce", {"subject": "Maintenance", "announcement": "Down at ten"})
        msg = await alice.next_message()
        assert (msg["type"], msg["from"].full, msg["body"]) == ("headline", "localhost",
                                                                "Down at ten")
        await boss.run("set-motd", {"motd": "Be nice"})
        assert (await alice.next_message())["body"] == "Be nice"
        edit = await boss.run("edit-motd", {"motd": "Be nice!"})
        assert edit["command"]["status"] == "completed"
        assert (await alice.next_message())["body"] == "Be nice!"
        bob = await login(srv, "bob@localhost/b", "bob-pw")       # was offline: gets it once
        assert (await bob.next_message())["body"] == "Be nice!"
        await bob.stop()
        bob = await login(srv, "bob@localhost/b", "bob-pw")
        with pytest.raises(asyncio.TimeoutError):
            await bob.next_message(timeout=1.5)
        await boss.run("delete-motd")
        for c in (boss, alice, bob):
            await c.stop()
    asyncio.run(asyncio.wait_for(go(), 120))


def test_registration_lists_hold_across_a_restart(srv: RunningServer) -> None:
    async def register(name: str) -> str:
        r = Attempt(f"{name}@localhost/reg", "pw")
        r.connect(host="127.0.0.1", port=srv.port)
        outcome = await asyncio.wait_for(r.result, 20)
        await r.stop()
        return outcome

    async def edit(node: str, var: str, networks: list[str]) -> None:
        boss = await login(srv, "boss@localhost/desk", "boss-pw", Admin)
        await boss.run(node, {var: networks})
        await boss.stop()

    async def before_restart() -> None:
        await edit("edit-blacklist", "blacklistjids", ["127.0.0.1"])
        assert await register("mallory") == "not-offered"

    async def after_restart() -> None:
        assert await register("mallory") == "not-offered"
        await edit("edit-blacklist", "blacklistjids", [])
        await edit("edit-whitelist", "whitelistjids", ["10.0.0.0/8"])
        assert await register("mallory") == "not-offered"
        await edit("edit-whitelist", "whitelistjids", ["127.0.0.0/8", "::1"])
        assert await register("mallory") == "ok"
    asyncio.run(asyncio.wait_for(before_restart(), 60))
    srv.restart()
    asyncio.run(asyncio.wait_for(after_restart(), 90))
