"""A bot run as an external component (XEP-0114) by the real runner against the component
listener of the real server: the unchanged echo example, with a secret instead of a
password. A slixmpp user chats with it at any address of its domain (commands, plain
messages, receipts, markers, !help); a wrong secret, an unconfigured domain and a second
copy end the run with one line."""
from __future__ import annotations

import asyncio
import tomllib
from collections.abc import Iterator

import pytest

from tests.bot.conftest import EXAMPLES, MODULES, BotProcess, Person, bot_env, run, start_server
from tests.bot.test_runner import one_line_error, runner
from tests.bot.test_tutorial import blocks
from tests.harness.server_proc import RunningServer
from xmppd.config import from_dict

DOMAIN, SECRET = "echo.localhost", "c0mp0nent-s3cret"
LISTENER = f"""
[[listeners]]
type = "component"
bind = "127.0.0.1"
port = 0
port_file = "{{tmp}}/component_port"

[[components]]
domain = "{DOMAIN}"
secret = "{SECRET}"
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    tmp = tmp_path_factory.mktemp("xmppd")
    srv, cleanups = start_server(tmp, "sqlite+memory", MODULES, LISTENER)
    try:
        yield srv
    finally:
        srv.stop()
        for c in cleanups:
            c()


def component_env(srv: RunningServer, domain: str = DOMAIN, secret: str = SECRET
                  ) -> dict[str, str]:
    port = int((srv.tmp / "component_port").read_text())
    return bot_env(None, None, XMPPD_BOT_JID=domain, XMPPD_BOT_SECRET=secret,
                   XMPPD_BOT_SERVER=f"127.0.0.1:{port}")


def test_the_echo_bot_runs_as_a_component_and_chats(server: RunningServer) -> None:
    async def go() -> None:
        bot = await BotProcess.start(EXAMPLES / "echo.py", component_env(server))
        line = await bot.wait_for_line("online as")
        alice = Person("alice")
        assert await alice.start(server.port)
        try:
            # any address at the domain reaches the bot; answers come from that address
            for to in (DOMAIN, f"echo@{DOMAIN}", f"anyone@{DOMAIN}/r"):
                alice.say(to, "!echo hello")
                got = await alice.next_message()
                assert (got["body"], str(got["from"]), got["type"]) == ("hello", to, "chat")
            assert await alice.ask(f"echo@{DOMAIN}", "!whoami") == \
                "You are alice@localhost/test."
            assert (await alice.ask(DOMAIN, "!help")).startswith("Commands:\n  !echo")
            wanted = alice.say(f"echo@{DOMAIN}", "read me", receipt=True, markable=True)
            assert (await alice.next_message())["body"] == "read me"        # on_message
            receipt = await asyncio.wait_for(alice.receipts.get(), 10)
            assert (receipt["receipt"], str(receipt["from"])) == (wanted, f"echo@{DOMAIN}")
            marker = await asyncio.wait_for(alice.markers.get(), 10)
            assert (marker["displayed"]["id"], str(marker["from"])) == (wanted, f"echo@{DOMAIN}")
        finally:
            await alice.stop()
            code = await bot.finish()
        assert code == 0, bot.text()
        assert f"online as {DOMAIN}" in line and "offline" in bot.text()
    run(go())


@pytest.mark.parametrize("domain, secret, message", [
    (DOMAIN, "wrong", f"refused the component {DOMAIN}: wrong secret"),
    ("other.localhost", SECRET, "has no component other.localhost configured"),
])
def test_a_refused_handshake_ends_the_run_with_one_line(server: RunningServer, domain: str,
                                                        secret: str, message: str) -> None:
    async def go() -> None:
        bot = await BotProcess.start(EXAMPLES / "echo.py",
                                     component_env(server, domain, secret))
        code = await bot.finish(sig=None)
        assert code == 1, bot.text()
        assert f"xmppd-bot: error: the server 127.0.0.1:" in bot.text()
        assert message in bot.text(), bot.text()
        assert "Traceback" not in bot.text()
    run(go())


def test_a_second_copy_is_refused_and_the_first_carries_on(server: RunningServer) -> None:
    async def go() -> None:
        first = await BotProcess.start(EXAMPLES / "echo.py", component_env(server))
        await first.online()
        second = await BotProcess.start(EXAMPLES / "echo.py", component_env(server))
        assert await second.finish(sig=None) == 1, second.text()
        assert f"another connection already serves the component {DOMAIN}" in second.text()
        bob = Person("bob")
        assert await bob.start(server.port)
        try:
            assert await bob.ask(DOMAIN, "!echo still here") == "still here"
        finally:
            await bob.stop()
            assert await first.finish() == 0, first.text()
    run(go())


def test_check_describes_the_component_and_refuses_what_needs_an_account(
        server: RunningServer) -> None:
    env = component_env(server)
    done = runner("--check", str(EXAMPLES / "echo.py"), env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"component: {DOMAIN} (XEP-0114, from XMPPD_BOT_JID)\n"
                                  f"server: {env['XMPPD_BOT_SERVER']} (component listener")
    # the moderator example joins a room: a component has no account to join with
    one_line_error(runner("--check", str(EXAMPLES / "moderator.py"), env=env), 2,
                   "bot.join needs an account")


def test_the_tutorial_component_section_matches_what_runs() -> None:
    """docs/bot-tutorial.md §11: its server config is valid for xmppd, and its command line
    sets the variables this module runs the bot with (component_env)."""
    (server_toml,) = [b for lang, b, _ in blocks() if lang == "toml" and "[[components]]" in b]
    config = from_dict({"server": {"hosts": ["localhost"]}, **tomllib.loads(server_toml)})
    assert [c.domain for c in config.components] == ["mybot.localhost"]
    assert [(lst.type, lst.port) for lst in config.listeners] == [("component", 5347)]
    (command,) = [b for lang, b, _ in blocks() if lang == "sh" and "XMPPD_BOT_SECRET" in b]
    for setting in ("XMPPD_BOT_JID=mybot.localhost ", "XMPPD_BOT_SECRET=",
                    "XMPPD_BOT_SERVER=127.0.0.1:5347 "):
        assert setting in command
