"""Bot SDK tests (the `xmppd-bot` distribution in bot/): the real server in a subprocess, once
for this package per backend pair ("sqlite+memory" and "postgresql+redis"; tests use their own
bot accounts), bots run through the real runner (`python -m xmppd_bot FILE`) or in-process, and
slixmpp test clients. Every wait is bounded; none polls with sleep."""
from __future__ import annotations

import asyncio
import os
import signal
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.harness.backends import SERVER_BACKENDS
from tests.harness.clients import XmppClient
from tests.harness.clients import run as run  # the tests here import it from this module
from tests.harness.server_proc import REPO, RunningServer, ServerFactory

BOT_DIST = REPO / "bot"              # the distribution: bot/pyproject.toml, bot/xmppd_bot/
EXAMPLES = BOT_DIST / "examples"
PASSWORD = "bot-secret"
# Bot accounts (password PASSWORD) and people (password "<name>-pw").
BOT_ACCOUNTS = ("echo", "reminder", "moderator", "mybot", "helper", "doorman", "keeper",
                "polite")
PEOPLE = ("alice", "bob", "carol")
BASE_MODULES = """
[modules.disco]
[modules.ping]
[modules.roster]
[modules.presence]
"""
UPLOAD_LIMIT = 1 << 20
# "{tmp}" becomes the server's directory.
MODULES = BASE_MODULES + f"""
[modules.http_upload]
directory = "{{tmp}}/files"
max_file_size = {UPLOAD_LIMIT}
"""
HTTP_LISTENER = """
[[listeners]]
type = "http"
port = 0
port_file = "{tmp}/http_port"
"""


# Every test server has all the accounts above.
ACCOUNTS = {u: PASSWORD for u in BOT_ACCOUNTS} | {u: f"{u}-pw" for u in PEOPLE}


def _serve(factory: ServerFactory, modules: str, extra: str) -> RunningServer:
    return factory(modules=tomllib.loads(modules).get("modules", {}), users=ACCOUNTS,
                   extra=extra)


def start_server(tmp: Path, kind: str, modules: str = MODULES,
                 extra: str = HTTP_LISTENER) -> tuple[RunningServer, list[Any]]:
    """A started server of `kind` in `tmp` for one test, with every account; `modules` and
    `extra` are TOML. Stop it, then call the cleanups (its database, its Redis keys)."""
    factory = ServerFactory(kind, lambda: tmp)
    try:
        return _serve(factory, modules, extra), [factory.close]
    except BaseException:
        factory.close()
        raise


@pytest.fixture(scope="package", params=SERVER_BACKENDS)
def server(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with ServerFactory(request.param, lambda: tmp_path_factory.mktemp("xmppd")) as factory:
        yield _serve(factory, MODULES, HTTP_LISTENER)


def bot_env(port: int | None, user: str | None = "echo", **extra: str) -> dict[str, str]:
    """Environment for a bot subprocess: its account, our server, TLS verification off
    (the test server's certificate is self-signed)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("XMPPD_BOT_")}
    env["PYTHONPATH"] = str(BOT_DIST)          # this checkout's SDK, not an installed copy
    if user is not None:
        env["XMPPD_BOT_JID"] = f"{user}@localhost"
        env["XMPPD_BOT_PASSWORD"] = PASSWORD
    if port is not None:
        env["XMPPD_BOT_SERVER"] = f"127.0.0.1:{port}"
    env["XMPPD_BOT_TLS_VERIFY"] = "false"
    env.update(extra)
    return env


@dataclass
class BotProcess:
    """A bot run by `python -m xmppd_bot FILE`, its stderr collected line by line."""

    proc: asyncio.subprocess.Process
    lines: list[str] = field(default_factory=list)

    @classmethod
    async def start(cls, file: Path, env: dict[str, str], *args: str) -> BotProcess:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "xmppd_bot", str(file), *args, cwd=REPO, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        return cls(proc)

    async def wait_for_line(self, needle: str, timeout: float = 30) -> str:
        """The first stderr line containing `needle`; fails if the bot exits first."""
        assert self.proc.stderr is not None
        for line in self.lines:
            if needle in line:
                return line

        async def read() -> str:
            assert self.proc.stderr is not None
            while True:
                raw = await self.proc.stderr.readline()
                if not raw:
                    raise AssertionError(f"bot exited before {needle!r}:\n" + self.text())
                line = raw.decode()
                self.lines.append(line)
                if needle in line:
                    return line
        try:
            return await asyncio.wait_for(read(), timeout)
        except TimeoutError:
            raise AssertionError(f"no {needle!r} within {timeout} s:\n" + self.text()) from None

    async def online(self) -> None:
        await self.wait_for_line("online as")

    async def finish(self, sig: int | None = signal.SIGTERM, timeout: float = 20) -> int:
        """Signal the bot (if given), wait for it to exit; its exit code."""
        if sig is not None and self.proc.returncode is None:
            self.proc.send_signal(sig)
        assert self.proc.stderr is not None
        rest = await asyncio.wait_for(self.proc.stderr.read(), timeout)
        self.lines.extend(rest.decode().splitlines(keepends=True))
        return await asyncio.wait_for(self.proc.wait(), timeout)

    def text(self) -> str:
        return "".join(self.lines)


class Person(XmppClient):
    """A test user with slixmpp's receipts (XEP-0184) and markers (XEP-0333) plugins; bodyless
    receipts and markers are collected apart from the inbox of messages with a body."""

    def __init__(self, name: str, resource: str = "test",
                 plugins: tuple[str, ...] = ()) -> None:
        super().__init__(f"{name}@localhost/{resource}", f"{name}-pw",
                         plugins=("xep_0030", "xep_0184", "xep_0333") + plugins)
        self.plugin["xep_0184"].auto_ack = False
        self.receipts: asyncio.Queue[Any] = asyncio.Queue()
        self.markers: asyncio.Queue[Any] = asyncio.Queue()
        self.add_event_handler("receipt_received", self.receipts.put_nowait)
        self.add_event_handler("marker_displayed", self.markers.put_nowait)

    def say(self, to: str, body: str, *, receipt: bool = False, markable: bool = False,
            thread: str | None = None) -> str:
        """Send a chat message; its id."""
        msg = self.make_message(mto=to, mbody=body, mtype="chat")
        if receipt:
            msg["request_receipt"] = True
        if markable:
            msg["markable"] = True
        if thread:
            msg["thread"] = thread
        msg.send()
        return str(msg["id"])

    async def ask(self, to: str, body: str, timeout: float = 10) -> str:
        """Send `body` and return the body of the next message with one."""
        self.say(to, body)
        return str((await self.next_message(timeout))["body"])

    async def roundtrip(self) -> None:
        """Everything the server sent before now is in our queues (XEP-0199 to the server)."""
        await self.plugin["xep_0199"].ping("localhost", timeout=10)
