# tests: tests/bot/test_commands.py
"""Commands: `!name args` or `/name args`, and the `!help` text built from docstrings."""
from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from xmppd_bot.errors import ConfigError
from xmppd_bot.message import Message

__all__ = ["Command", "CommandHandler", "MessageHandler", "PREFIXES", "check_handler",
           "handler_name", "help_text", "parse_command"]

PREFIXES = ("!", "/")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")

Reply = str | None
CommandHandler = Callable[[Message, str], Reply | Awaitable[Reply]]
MessageHandler = Callable[[Message], Reply | Awaitable[Reply]]


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    handler: CommandHandler
    usage: str            # e.g. "<duration> <text>"; "" when it takes no arguments
    summary: str          # the docstring's first line
    doc: str              # the whole docstring, dedented


def check_name(name: str) -> str:
    n = name.strip().lower()
    if n[:1] in PREFIXES:
        n = n[1:]
    if not _NAME.match(n):
        raise ConfigError(f"bad command name {name!r}: use 1-32 letters, digits, '-' or '_'")
    return n


def check_handler(fn: Callable[..., object], what: str, shape: str) -> None:
    """A handler must be callable with the positional arguments `shape` names, e.g. "(msg)".

    Raises:
        ConfigError: naming the handler, where it is defined and what it must accept.
    """
    if not callable(fn):
        raise ConfigError(f"{what}: expected a function, got {fn!r}")
    params = 0 if shape == "()" else shape.count(",") + 1
    try:
        inspect.signature(fn).bind(*([None] * params))
    except TypeError:
        raise ConfigError(f"{what} {getattr(fn, '__name__', fn)!s}{_where(fn)} must accept "
                          f"{shape}") from None
    except ValueError:
        pass            # builtins without a signature: trust them


def handler_name(fn: object) -> str:
    """How logs and `--check` name a handler: its qualified name."""
    return str(getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or fn)


def _where(fn: Callable[..., object]) -> str:
    code = getattr(fn, "__code__", None)
    if code is None:
        return ""
    return f" ({code.co_filename.rsplit('/', 1)[-1]}:{code.co_firstlineno})"


def make_command(name: str, fn: CommandHandler, usage: str | None) -> Command:
    check_handler(fn, "@bot.command", "(msg, args)")
    doc = inspect.getdoc(fn) or ""
    summary = doc.splitlines()[0].strip() if doc else ""
    return Command(name=check_name(name), handler=fn, usage=(usage or "").strip(),
                   summary=summary, doc=doc)


def parse_command(body: str) -> tuple[str, str] | None:
    """("name", "args") for "!name args" or "/name args" (name lower-cased), else None."""
    text = body.strip()
    if len(text) < 2 or text[0] not in PREFIXES:
        return None
    head = text[1:].partition(" ")[0]
    head = head.split("\n", 1)[0]
    name = head.lower()
    if not _NAME.match(name):
        return None
    return name, text[1 + len(head):].strip()


def help_text(commands: dict[str, Command], topic: str = "") -> str:
    """The answer to `!help` (all commands) or `!help name` (one command's whole docstring)."""
    topic = topic.strip().lower().lstrip("".join(PREFIXES))
    if topic:
        cmd = commands.get(topic)
        if cmd is None:
            return f"No command !{topic}. Send !help for the list."
        head = f"!{cmd.name} {cmd.usage}".rstrip()
        return f"{head}\n{cmd.doc}" if cmd.doc else head
    lines = ["Commands:"]
    for cmd in sorted(commands.values(), key=lambda c: c.name):
        head = f"!{cmd.name} {cmd.usage}".rstrip()
        lines.append(f"  {head} — {cmd.summary}" if cmd.summary else f"  {head}")
    if "help" not in commands:
        lines.append("  !help [command] — Show this list, or one command's help.")
    return "\n".join(lines)
