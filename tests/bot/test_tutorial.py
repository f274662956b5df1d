"""docs/bot-tutorial.md cannot rot: every ```python block is checked (`xmppd-bot --check`) and
run against the real server, and the ```text conversation after it ("you> …" / "bot> …") is
replayed by a slixmpp client; the ```toml block must load as bot settings."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.bot.conftest import BotProcess, Person, bot_env, run
from tests.harness.server_proc import REPO, RunningServer
from xmppd_bot.settings import resolve

TUTORIAL = REPO / "docs" / "bot-tutorial.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class Example:
    line: int
    code: str
    conversation: tuple[tuple[str, str], ...]   # ("you" | "bot", text)


def parse_conversation(text: str) -> tuple[tuple[str, str], ...]:
    """"you> x" / "bot> y"; lines after a "bot>" line, indented by five spaces to line up with
    the text, continue that message."""
    turns: list[tuple[str, str]] = []
    for line in text.splitlines():
        if line.startswith(("you> ", "bot> ")):
            turns.append((line[:3], line[5:]))
        else:
            assert turns and turns[-1][0] == "bot" and (line == "" or line.startswith("     ")), \
                f"not a conversation line: {line!r}"
            who, said = turns[-1]
            turns[-1] = (who, f"{said}\n{line[5:]}")
    return tuple(turns)


def blocks() -> list[tuple[str, str, int]]:
    text = TUTORIAL.read_text()
    return [(m.group(1), m.group(2), text.count("\n", 0, m.start()) + 1)
            for m in FENCE.finditer(text)]


def examples() -> list[Example]:
    found: list[Example] = []
    fenced = blocks()
    for i, (lang, body, line) in enumerate(fenced):
        if lang != "python":
            continue
        conversation: tuple[tuple[str, str], ...] = ()
        if i + 1 < len(fenced) and fenced[i + 1][0] == "text" and \
                fenced[i + 1][1].startswith("you> "):
            conversation = parse_conversation(fenced[i + 1][1])
        found.append(Example(line, body, conversation))
    return found


def test_the_tutorial_has_examples_with_conversations() -> None:
    found = examples()
    assert len(found) >= 5
    assert sum(1 for e in found if e.conversation) >= 4
    assert all('Bot("mybot@localhost", "bot-secret")' in e.code for e in found)


@pytest.mark.parametrize("example", examples(), ids=lambda e: f"line{e.line}")
def test_tutorial_example_runs_and_answers_as_shown(server: RunningServer, tmp_path: Path,
                                                    example: Example) -> None:
    file = tmp_path / "mybot.py"
    file.write_text(example.code)
    # the reader's environment from section 1: server address, self-signed certificate
    env = bot_env(server.port, None)

    async def go() -> None:
        check = await BotProcess.start(file, env, "--check")
        assert await check.finish(None) == 0, check.text()
        bot = await BotProcess.start(file, env)
        await bot.online()
        alice = Person("alice")
        assert await alice.start(server.port)
        try:
            for who, text in example.conversation:
                if who == "you":
                    alice.say("mybot@localhost", text)
                else:
                    got = await alice.next_message(timeout=10)
                    assert got["body"] == text, f"tutorial line {example.line}"
                    assert str(got["from"]) == "mybot@localhost/bot"
        finally:
            await alice.stop()
            assert await bot.finish() == 0, bot.text()
    run(go())


def test_tutorial_config_file_loads_as_bot_settings(tmp_path: Path) -> None:
    (toml,) = [body for lang, body, _ in blocks() if lang == "toml"]
    cfg = tmp_path / "bot.toml"
    cfg.write_text(toml)
    settings, document = resolve({}, {}, cfg)
    assert str(settings.jid) == "mybot@localhost/bot"
    assert str(settings.server) == "127.0.0.1:5222" and settings.tls_verify is False
    assert settings.reconnect_max_delay == 120
    assert document["greetings"] == {"text": "Hello!"}
