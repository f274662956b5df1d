"""The example bots (bot/examples/), each run by the real runner (`python -m xmppd_bot`)
against the real server on both backend pairs, talked to by a slixmpp client."""
from __future__ import annotations

import asyncio
import signal
import time

import pytest

from tests.bot.conftest import EXAMPLES, BotProcess, Person, bot_env, run, start_server
from tests.harness.server_proc import RunningServer


def test_echo_bot_answers_commands_plain_text_and_help(server: RunningServer) -> None:
    async def go() -> None:
        bot = await BotProcess.start(EXAMPLES / "echo.py", bot_env(server.port, "echo"))
        await bot.online()
        alice = Person("alice")
        assert await alice.start(server.port)
        try:
            assert await alice.ask("echo@localhost", "!echo hello") == "hello"
            assert await alice.ask("echo@localhost", "/echo  two  words ") == "two  words"
            assert await alice.ask("echo@localhost", "!ECHO loud") == "loud"
            assert await alice.ask("echo@localhost", "!whoami") == \
                "You are alice@localhost/test."
            assert await alice.ask("echo@localhost", "just words") == "just words"
            assert await alice.ask("echo@localhost", "!unknown") == "!unknown"   # on_message
            assert await alice.ask("echo@localhost", "!help") == (
                "Commands:\n"
                "  !echo — Say the text back.\n"
                "  !whoami — Tell you your address.\n"
                "  !help [command] — Show this list, or one command's help.")
            assert await alice.ask("echo@localhost", "!help echo") == \
                "!echo\nSay the text back."
            # a reply goes to the full JID it came from, in the same thread
            alice.say("echo@localhost", "threaded", thread="t-42")
            reply = await alice.next_message()
            assert (reply["body"], reply["thread"], str(reply["from"])) == \
                ("threaded", "t-42", "echo@localhost/bot")
            assert reply["type"] == "chat"
        finally:
            await alice.stop()
            code = await bot.finish()
        assert code == 0, bot.text()
        assert "offline" in bot.text()
    run(go())


def test_receipts_are_sent_for_messages_that_ask_and_only_those(server: RunningServer) -> None:
    async def go() -> None:
        bot = await BotProcess.start(EXAMPLES / "echo.py", bot_env(server.port, "echo"))
        await bot.online()
        bob = Person("bob")
        assert await bob.start(server.port)
        try:
            bob.say("echo@localhost", "no receipt please")
            assert (await bob.next_message())["body"] == "no receipt please"
            wanted = bob.say("echo@localhost", "receipt please", receipt=True)
            assert (await bob.next_message())["body"] == "receipt please"
            receipt = await asyncio.wait_for(bob.receipts.get(), 10)
            # XEP-0184 §7: the ack echoes the id, from the bot, with the message's type
            assert receipt["receipt"] == wanted
            assert str(receipt["from"]) == "echo@localhost/bot"
            assert receipt["type"] == "chat"
            assert receipt["body"] == ""
            await bob.roundtrip()
            assert bob.receipts.empty()        # nothing for the first message
        finally:
            await bob.stop()
            assert await bot.finish() == 0
    run(go())


def test_echo_bot_marks_markable_messages_read(server: RunningServer) -> None:
    async def go() -> None:
        bot = await BotProcess.start(EXAMPLES / "echo.py", bot_env(server.port, "echo"))
        await bot.online()
        carol = Person("carol")
        assert await carol.start(server.port)
        try:
            carol.say("echo@localhost", "not markable")
            await carol.next_message()
            wanted = carol.say("echo@localhost", "markable", markable=True)
            await carol.next_message()
            marker = await asyncio.wait_for(carol.markers.get(), 10)
            assert marker["displayed"]["id"] == wanted          # XEP-0333 §4.2
            assert str(marker["from"]) == "echo@localhost/bot"
            await carol.roundtrip()
            assert carol.markers.empty()
        finally:
            await carol.stop()
            assert await bot.finish() == 0
    run(go())


def test_reminder_fires_after_its_duration(server: RunningServer) -> None:
    async def go() -> None:
        bot = await BotProcess.start(EXAMPLES / "reminder.py", bot_env(server.port, "reminder"))
        await bot.online()
        alice = Person("alice")
        assert await alice.start(server.port)
        try:
            to = "reminder@localhost"
            assert await alice.ask(to, "!remind soon call mum") == \
                "Usage: !remind <duration> <text>, e.g. !remind 10m call mum"
            assert await alice.ask(to, "!remind 10m") == \
                "Usage: !remind <duration> <text>, e.g. !remind 10m call mum"
            assert await alice.ask(to, "!remind 2h water the plants") == \
                "OK, I'll remind you in 2h."
            started = time.monotonic()
            assert await alice.ask(to, "!remind 1s stretch") == "OK, I'll remind you in 1s."
            assert await alice.ask(to, "!pending") == "You have 2 reminders waiting."
            fired = await alice.next_message(timeout=10)
            assert fired["body"] == "⏰ Reminder: stretch"
            assert time.monotonic() - started >= 0.9
            assert await alice.ask(to, "!pending") == "You have 1 reminder waiting."
            assert "!remind <duration> <text> — Remind you of something later, e.g. " \
                   "!remind 10m call mum" in await alice.ask(to, "!help")
        finally:
            await alice.stop()
            # SIGINT like Ctrl-C: the pending 2 h reminder is dropped, the exit is clean
            assert await bot.finish(signal.SIGINT) == 0, bot.text()
    run(go())


def test_moderator_warns_then_kicks_in_a_real_room(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    room = "lounge@conference.localhost"
    srv, cleanups = start_server(tmp_path_factory.mktemp("muc"), "sqlite+memory",
                                 modules="[modules.disco]\n[modules.ping]\n[modules.muc]\n")

    async def go() -> None:
        owner = Person("alice", plugins=("xep_0045",))
        bob = Person("bob", plugins=("xep_0045",))
        assert await owner.start(srv.port) and await bob.start(srv.port)
        muc = owner.plugin["xep_0045"]
        await muc.join_muc_wait(room, "alice", maxstanzas=0, timeout=10)
        # XEP-0045 §10.1.2: accept the default configuration (an instant room)
        form = await muc.get_room_config(room)
        await muc.set_room_config(room, form)
        await muc.set_affiliation(room, "admin", jid="moderator@localhost")
        bot = await BotProcess.start(EXAMPLES / "moderator.py",
                                     bot_env(srv.port, "moderator", MODERATOR_ROOM=room))
        await bot.online()
        await bob.plugin["xep_0045"].join_muc_wait(room, "bob", maxstanzas=0, timeout=10)
        kicked: asyncio.Future[object] = asyncio.get_running_loop().create_future()

        def watch(pres: object) -> None:
            codes = pres["muc"]["status_codes"]  # type: ignore[index]
            if 307 in codes and 110 in codes and not kicked.done():
                kicked.set_result(pres)
        bob.add_event_handler(f"muc::{room}::got_offline", watch)
        try:
            bob.send_message(mto=room, mbody="this is spam", mtype="groupchat")
            warning = None
            while warning is None:
                msg = await bob.next_message()
                if msg["mucnick"] == "moderator":
                    warning = msg["body"]
            assert warning == "bob: please mind your language; next time you are out."
            bob.send_message(mto=room, mbody="more SPAM!", mtype="groupchat")
            await asyncio.wait_for(kicked, 10)
        finally:
            await owner.stop()
            await bob.stop()
            assert await bot.finish() == 0
    try:
        run(go())
    finally:
        srv.stop()
        for c in cleanups:
            c()
