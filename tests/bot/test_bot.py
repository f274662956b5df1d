"""`Bot` in-process against the real server (both backend pairs): scheduling, reconnects after
a dropped or dead link, a second copy replacing the first, graceful shutdown, handler failures,
receipts policy; roster, subscriptions and file upload (marked until the server has them)."""
from __future__ import annotations

import asyncio
import logging
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.bot.conftest import (BASE_MODULES, MODULES, PASSWORD, UPLOAD_LIMIT, Person, run,
                                start_server)
from tests.harness.server_proc import RunningServer
from xmppd_bot import (JID, Bot, Message, OfflineError, ReplacedError, RequestError,
                       RoomError, UploadError)


def make_bot(port: int, tmp: Path | None = None, user: str = "helper", resource: str = "bot",
             **bot_table: object) -> Bot:
    config = None
    if tmp is not None and bot_table:
        config = tmp / f"{user}-{resource}.toml"
        config.write_text("[bot]\n" + "".join(f"{k} = {v!r}\n" for k, v in bot_table.items()))
    return Bot(f"{user}@localhost/{resource}", PASSWORD, server=f"127.0.0.1:{port}",
               tls_verify=False, config=config)


class LogLines(logging.Handler):
    """The xmppd_bot log as a queue of messages."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.queue: asyncio.Queue[str] = asyncio.Queue()

    def emit(self, record: logging.LogRecord) -> None:
        self.queue.put_nowait(record.getMessage())

    async def wait_for(self, needle: str, timeout: float = 15) -> str:
        async def find() -> str:
            while True:
                line = await self.queue.get()
                if needle in line:
                    return line
        return await asyncio.wait_for(find(), timeout)


@pytest.fixture
def log_lines() -> Iterator[LogLines]:
    h = LogLines()
    logger = logging.getLogger("xmppd_bot")
    logger.addHandler(h)
    old = logger.level
    logger.setLevel(logging.DEBUG)
    yield h
    logger.removeHandler(h)
    logger.setLevel(old)


async def serving(bot: Bot) -> asyncio.Task[None]:
    task = asyncio.create_task(bot.serve())
    done, _ = await asyncio.wait({task, asyncio.ensure_future(bot.wait_online())},
                                 timeout=20, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        task.result()                   # raises the BotError
    assert bot.online
    return task


async def stopped(bot: Bot, task: asyncio.Task[None]) -> None:
    bot.stop()
    await asyncio.wait_for(task, 20)


class Proxy:
    """A TCP relay between bot and server that can drop its links or silently freeze them."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.links: list[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = []
        self.frozen: set[asyncio.StreamWriter] = set()
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop_listening(self) -> None:
        self.server.close()
        await self.server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        self.links.append((writer, up_writer))
        await asyncio.gather(self._pipe(reader, up_writer, writer),
                             self._pipe(up_reader, writer, writer), return_exceptions=True)

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter,
                    link: asyncio.StreamWriter) -> None:
        while data := await src.read(65536):
            if link not in self.frozen:
                dst.write(data)
        dst.close()

    def drop(self) -> None:
        for a, b in self.links:
            a.transport.abort()
            b.transport.abort()
        self.links.clear()

    def freeze(self) -> None:
        """Keep the sockets open but pass nothing on: a dead link nobody closed."""
        self.frozen.update(a for a, _ in self.links)

    async def close(self) -> None:
        self.drop()
        self.server.close()


def test_every_and_after_send_on_schedule(server: RunningServer) -> None:
    async def go() -> None:
        bot = make_bot(server.port)
        ticks: list[float] = []

        @bot.every(0.3)
        def tick() -> None:
            ticks.append(asyncio.get_running_loop().time())
            bot.send("alice@localhost", f"tick {len(ticks)}")

        @bot.command("later")
        def later(msg: Message, args: str) -> str:
            bot.after("0.2s", msg.reply, "later!")
            return "soon"

        alice = Person("alice")
        assert await alice.start(server.port)
        start = asyncio.get_running_loop().time()
        task = await serving(bot)
        try:
            assert (await alice.next_message())["body"] == "tick 1"
            assert (await alice.next_message())["body"] == "tick 2"
            # fixed rate from coming online: the k-th run is never before k intervals
            assert ticks[0] - start >= 0.3 and ticks[1] - start >= 0.6
            alice.say("helper@localhost", "!later")
            others: list[str] = []
            while len(others) < 2:          # the ticks go on meanwhile
                body = (await alice.next_message())["body"]
                if not body.startswith("tick"):
                    others.append(body)
            assert others == ["soon", "later!"]
        finally:
            await stopped(bot, task)
            await alice.stop()
    run(go())


def test_reconnects_with_backoff_after_the_link_drops(server: RunningServer, tmp_path: Path,
                                                      log_lines: LogLines) -> None:
    async def go() -> None:
        proxy = Proxy(server.port)
        await proxy.start()
        bot = make_bot(proxy.port, tmp_path, reconnect_min_delay="0.2 s",
                       reconnect_max_delay="1 s", keepalive=0)

        @bot.command("ping")
        def ping(msg: Message, args: str) -> str:
            return "pong"

        alice = Person("alice")
        assert await alice.start(server.port)
        task = await serving(bot)
        try:
            assert await alice.ask("helper@localhost", "!ping") == "pong"
            # the link drops, and the server stays away for a while
            await proxy.stop_listening()
            proxy.drop()
            lost = await log_lines.wait_for("connection lost")
            delay = float(lost.rsplit("reconnecting in ", 1)[1].split()[0])
            assert 0.1 <= delay <= 0.2              # first delay: jittered in [min/2, min]
            retry = await log_lines.wait_for(f"cannot reach the XMPP server 127.0.0.1:"
                                             f"{proxy.port}: connection refused; retrying in")
            delay = float(retry.rsplit("retrying in ", 1)[1].split()[0])
            assert 0.2 <= delay <= 0.4              # then doubled, still jittered
            await proxy.start()                     # the server is back on the same address
            await log_lines.wait_for("online as helper@localhost/bot")
            assert await alice.ask("helper@localhost", "!ping") == "pong"
        finally:
            await stopped(bot, task)
            await alice.stop()
            await proxy.close()
    run(go())


def test_the_stream_is_resumed_after_a_drop_and_nothing_is_lost(
        tmp_path_factory: pytest.TempPathFactory, log_lines: LogLines) -> None:
    tmp = tmp_path_factory.mktemp("sm")
    srv, cleanups = start_server(tmp, "sqlite+memory", modules=MODULES + "[modules.stream_mgmt]\n")

    async def go() -> None:
        proxy = Proxy(srv.port)
        await proxy.start()
        bot = make_bot(proxy.port, tmp, reconnect_min_delay="1 s", keepalive=0)

        @bot.command("ping")
        def ping(msg: Message, args: str) -> str:
            return f"pong {args}"

        alice = Person("alice")
        assert await alice.start(srv.port)
        task = await serving(bot)
        try:
            assert await alice.ask("helper@localhost", "!ping 1") == "pong 1"
            proxy.drop()
            await log_lines.wait_for("connection lost")
            alice.say("helper@localhost", "!ping 2")        # while the bot is away
            await log_lines.wait_for("online as helper@localhost/bot (stream resumed)")
            assert (await alice.next_message())["body"] == "pong 2"
        finally:
            await stopped(bot, task)
            await alice.stop()
            await proxy.close()
    try:
        run(go())
    finally:
        srv.stop()
        for c in cleanups:
            c()


def test_a_dead_link_is_found_by_keepalive_and_replaced(server: RunningServer, tmp_path: Path,
                                                        log_lines: LogLines) -> None:
    async def go() -> None:
        proxy = Proxy(server.port)
        await proxy.start()
        bot = make_bot(proxy.port, tmp_path, reconnect_min_delay="0.1 s", keepalive="0.5 s")

        @bot.command("ping")
        def ping(msg: Message, args: str) -> str:
            return "pong"

        alice = Person("alice")
        assert await alice.start(server.port)
        task = await serving(bot)
        try:
            proxy.freeze()
            await log_lines.wait_for("did not answer a ping; reconnecting")
            await log_lines.wait_for("online as helper@localhost/bot")
            assert await alice.ask("helper@localhost", "!ping") == "pong"
        finally:
            await stopped(bot, task)
            await alice.stop()
            await proxy.close()
    run(go())


def test_a_second_copy_with_the_same_resource_stops_the_first(server: RunningServer) -> None:
    async def go() -> None:
        first, second = make_bot(server.port), make_bot(server.port)
        for b in (first, second):
            b.on_message(lambda msg: None)
        task1 = await serving(first)
        task2 = await serving(second)
        # RFC 6120 §4.9.3.3 <conflict/>: the server ended the older session
        with pytest.raises(ReplacedError, match="another session logged in as "
                                                "helper@localhost/bot and replaced this bot"):
            await asyncio.wait_for(task1, 20)
        assert second.online
        await stopped(second, task2)
    run(go())


def test_shutdown_lets_a_running_handler_finish(server: RunningServer) -> None:
    async def go() -> None:
        bot = make_bot(server.port)
        started = asyncio.Event()

        @bot.command("slow")
        async def slow(msg: Message, args: str) -> str:
            started.set()
            await asyncio.sleep(0.5)
            return "finished"

        bob = Person("bob")
        assert await bob.start(server.port)
        task = await serving(bot)
        try:
            bob.say("helper@localhost", "!slow")
            await asyncio.wait_for(started.wait(), 10)
            bot.stop()
            assert (await bob.next_message())["body"] == "finished"
            await asyncio.wait_for(task, 20)
            assert not bot.online
            with pytest.raises(OfflineError):
                await bot.contacts()
        finally:
            await bob.stop()
    run(go())


def test_a_failing_handler_is_logged_and_the_bot_carries_on(server: RunningServer,
                                                            log_lines: LogLines) -> None:
    async def go() -> None:
        bot = make_bot(server.port)

        @bot.command("boom")
        def boom(msg: Message, args: str) -> str:
            raise ValueError("kaboom")

        @bot.command("ok")
        async def ok(msg: Message, args: str) -> str:
            return "still here"

        carol = Person("carol")
        assert await carol.start(server.port)
        task = await serving(bot)
        try:
            carol.say("helper@localhost", "!boom")
            await log_lines.wait_for("command !boom failed on a message from carol@localhost")
            assert await carol.ask("helper@localhost", "!ok") == "still here"
            assert await carol.ask("helper@localhost", "!nope") == \
                "Unknown command !nope. Send !help for the list."
        finally:
            await stopped(bot, task)
            await carol.stop()
    run(go())


def test_receipts_off_sends_none(server: RunningServer) -> None:
    async def go() -> None:
        bot = Bot("helper@localhost", PASSWORD, server=f"127.0.0.1:{server.port}",
                  tls_verify=False, receipts="off")
        bot.on_message(lambda msg: "seen")
        alice = Person("alice")
        assert await alice.start(server.port)
        task = await serving(bot)
        try:
            alice.say("helper@localhost", "receipt?", receipt=True)
            assert (await alice.next_message())["body"] == "seen"
            await alice.roundtrip()
            # a receipt would go out before the reply, on the same stream: none came
            assert alice.receipts.empty()
        finally:
            await stopped(bot, task)
            await alice.stop()
    run(go())


def test_receipts_to_contacts_only_spare_strangers(server: RunningServer) -> None:
    # XEP-0184 §8: no receipts to those who may not see the bot's presence
    async def go() -> None:
        bot = Bot("polite@localhost", PASSWORD, server=f"127.0.0.1:{server.port}",
                  tls_verify=False, receipts="contacts")
        bot.on_message(lambda msg: "seen")
        bot.on_subscription_request(lambda jid: str(jid) == "alice@localhost")
        alice, bob = Person("alice"), Person("bob")
        approved: asyncio.Queue[Any] = asyncio.Queue()
        alice.add_event_handler("presence_subscribed", approved.put_nowait)
        assert await alice.start(server.port) and await bob.start(server.port)
        task = await serving(bot)
        try:
            alice.send_presence(pto="polite@localhost", ptype="subscribe")
            await asyncio.wait_for(approved.get(), 10)
            wanted = alice.say("polite@localhost", "receipt?", receipt=True)
            assert (await alice.next_message())["body"] == "seen"
            assert (await asyncio.wait_for(alice.receipts.get(), 10))["receipt"] == wanted
            bob.say("polite@localhost", "receipt?", receipt=True)
            assert (await bob.next_message())["body"] == "seen"
            await bob.roundtrip()
            assert bob.receipts.empty()
        finally:
            await stopped(bot, task)
            await alice.stop()
            await bob.stop()
    run(go())


def test_joining_an_unknown_room_while_running_ends_the_run(server: RunningServer) -> None:
    async def go() -> None:
        bot = make_bot(server.port)

        @bot.command("join")
        def join(msg: Message, args: str) -> str:
            bot.join(args)
            return "joining"

        alice = Person("alice")
        assert await alice.start(server.port)
        task = await serving(bot)
        try:
            assert await alice.ask("helper@localhost", "!join nosuch@rooms.nowhere.example") \
                == "joining"
            with pytest.raises(RoomError, match="cannot join room nosuch@rooms.nowhere.example: "
                                                "remote-server-not-found"):
                await asyncio.wait_for(task, 20)
        finally:
            await alice.stop()
    run(go())


def test_requests_before_the_bot_runs_say_so() -> None:
    bot = Bot("helper@localhost", PASSWORD)
    with pytest.raises(OfflineError, match="not running"):
        bot.send("alice@localhost", "hi")
    with pytest.raises(RuntimeError, match="while the bot runs"):
        bot.after(1, print)


# -- contacts (RFC 6121) ------------------------------------------------------------------------

async def subscription_becomes(bot: Bot, jid: str, subscription: str, peer: Person) -> bool:
    """The server stores roster changes after answering; ask again, one round trip at a time
    (bounded, no sleeping), until the bot's roster shows `subscription` for `jid`."""
    for _ in range(50):
        if {str(c.jid): c.subscription for c in await bot.contacts()}.get(jid) == subscription:
            return True
        await peer.roundtrip()
    return False


def test_subscription_requests_are_approved_or_refused_by_the_handler(
        server: RunningServer) -> None:
    async def go() -> None:
        bot = make_bot(server.port, user="doorman")
        asked: list[JID] = []

        @bot.on_subscription_request
        async def approve(jid: JID) -> bool:
            asked.append(jid)
            return str(jid) == "alice@localhost"

        alice, bob = Person("alice"), Person("bob")
        answers: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        for p in (alice, bob):
            for kind in ("subscribed", "unsubscribed"):
                p.add_event_handler(f"presence_{kind}",
                                    lambda pres, k=kind: answers.put_nowait(
                                        (str(pres["to"].bare), k)))
        assert await alice.start(server.port) and await bob.start(server.port)
        task = await serving(bot)
        try:
            alice.send_presence(pto="doorman@localhost", ptype="subscribe")
            bob.send_presence(pto="doorman@localhost", ptype="subscribe")
            got = {await asyncio.wait_for(answers.get(), 10) for _ in range(2)}
            assert got == {("alice@localhost", "subscribed"), ("bob@localhost", "unsubscribed")}
            assert {str(j) for j in asked} == {"alice@localhost", "bob@localhost"}
            assert await subscription_becomes(bot, "alice@localhost", "from", alice)
        finally:
            await stopped(bot, task)
            await alice.stop()
            await bob.stop()
    run(go())


def test_roster_helpers_add_list_and_remove_contacts(server: RunningServer) -> None:
    async def go() -> None:
        bot = make_bot(server.port, user="keeper")
        bot.on_message(lambda msg: None)
        carol = Person("carol")
        # slixmpp approves requests by default, racing the bot's roster read below; carol
        # answers herself once the pending request was seen.
        carol.auto_authorize = None
        requests: asyncio.Queue[Any] = asyncio.Queue()
        carol.add_event_handler("presence_subscribe", requests.put_nowait)
        assert await carol.start(server.port)
        task = await serving(bot)
        try:
            assert await bot.contacts() == []
            await bot.add_contact("carol@localhost", name="Carol", groups=["team"])
            req = await asyncio.wait_for(requests.get(), 10)     # RFC 6121 §3.1.3
            assert str(req["from"].bare) == "keeper@localhost"
            (c,) = await bot.contacts()
            assert (str(c.jid), c.name, c.groups, c.pending_out) == \
                ("carol@localhost", "Carol", ("team",), True)
            carol.send_presence(pto="keeper@localhost", ptype="subscribed")
            assert await subscription_becomes(bot, "carol@localhost", "to", carol)
            await bot.remove_contact("carol@localhost")
            assert await bot.contacts() == []
            with pytest.raises(RequestError):
                await bot.remove_contact("nobody@elsewhere.example")
        finally:
            await stopped(bot, task)
            await carol.stop()
    run(go())


def test_send_file_uploads_and_shares_the_link(server: RunningServer, tmp_path: Path) -> None:
    payload = tmp_path / "report.txt"
    payload.write_bytes(b"quarterly numbers\n" * 100)
    too_big = tmp_path / "video.bin"
    too_big.write_bytes(b"x" * (UPLOAD_LIMIT + 1))

    async def go() -> None:
        bot = make_bot(server.port)
        bot.on_message(lambda msg: None)
        alice = Person("alice", plugins=("xep_0066",))
        assert await alice.start(server.port)
        task = await serving(bot)
        try:
            url = await bot.send_file(payload, "alice@localhost")
            msg = await alice.next_message()
            assert msg["body"] == url and msg["oob"]["url"] == url      # XEP-0066
            body = await asyncio.to_thread(
                lambda: urllib.request.urlopen(url, timeout=10).read())
            assert body == payload.read_bytes()
            # XEP-0363 §3: the announced max-file-size is checked before asking for a slot
            with pytest.raises(UploadError, match=f"video.bin is {UPLOAD_LIMIT + 1} bytes; the "
                                                  f"upload service upload.localhost accepts at "
                                                  f"most {UPLOAD_LIMIT}"):
                await bot.send_file(too_big, "alice@localhost")
            with pytest.raises(UploadError, match="cannot send .*missing.txt: No such file"):
                await bot.send_file(tmp_path / "missing.txt", "alice@localhost")
        finally:
            await stopped(bot, task)
            await alice.stop()
    run(go())


def test_send_file_without_an_upload_service_says_so(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    tmp = tmp_path_factory.mktemp("no-upload")
    srv, cleanups = start_server(tmp, "sqlite+memory", modules=BASE_MODULES, extra="")
    (tmp / "a.txt").write_text("x")

    async def go() -> None:
        bot = make_bot(srv.port)
        bot.on_message(lambda msg: None)
        task = await serving(bot)
        try:
            with pytest.raises(UploadError, match="the server localhost offers no HTTP file "
                                                  "upload service"):
                await bot.send_file(tmp / "a.txt", "alice@localhost")
        finally:
            await stopped(bot, task)
    try:
        run(go())
    finally:
        srv.stop()
        for c in cleanups:
            c()
