# tests: tests/bot/test_runner.py, tests/bot/test_examples.py
"""`xmppd-bot path/to/bot.py` (also `python -m xmppd_bot`): load a bot file, find its `Bot`,
run it; `--check` validates without connecting.

- The file runs as a module named `__xmppd_bot__`, so `if __name__ == "__main__": bot.run()`
  does not fire; a bare top-level `bot.run()` is deferred to the runner, not run twice.
- Exactly one `Bot` instance must be reachable from the file's globals.
- `--check`: settings complete and valid (credentials present, JID valid, server address
  parses), handlers and rooms well-formed; prints a summary, exits 0. Nothing is contacted.
- A `BotError` (config, login, network, room) prints one line `xmppd-bot: error: ...` and
  exits 2 (configuration) or 1 (run time). Errors in the bot's own code show their traceback.
"""
from __future__ import annotations

import argparse
import asyncio
import importlib.util
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from xmppd_bot import bot as bot_module
from xmppd_bot.bot import Bot
from xmppd_bot.errors import BotError, ConfigError
from xmppd_bot.logs import setup_logging

PROG = "xmppd-bot"


def load(path: Path) -> tuple[Bot, ModuleType]:
    """Import the bot file and return its one Bot.

    Raises:
        ConfigError: the file is missing, does not parse, or has zero or several Bots.
        BotError: raised by the file itself while registering handlers.
    """
    if not path.is_file():
        raise ConfigError(f"bot file {path}: not found")
    spec = importlib.util.spec_from_file_location("__xmppd_bot__", path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"bot file {path}: cannot be loaded as Python")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    sys.path.insert(0, str(path.resolve().parent))   # the bot may import its neighbours
    bot_module._loading = True
    try:
        spec.loader.exec_module(module)
    except SyntaxError as e:
        raise ConfigError(f"{path}:{e.lineno}: {e.msg}") from None
    finally:
        bot_module._loading = False
    bots: list[tuple[str, Bot]] = []
    for name, value in vars(module).items():
        if isinstance(value, Bot) and all(value is not b for _, b in bots):
            bots.append((name, value))
    if not bots:
        raise ConfigError(f"{path} defines no Bot (expected e.g. `bot = Bot(...)` at the top "
                          "level)")
    if len(bots) > 1:
        raise ConfigError(f"{path} defines {len(bots)} Bots ({', '.join(n for n, _ in bots)});"
                          " a file runs exactly one")
    return bots[0][1], module


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Run an xmppd chat bot defined in a Python file.")
    parser.add_argument("file", type=Path, help="the bot's Python file")
    parser.add_argument("--check", action="store_true",
                        help="validate the settings and the file without connecting")
    parser.add_argument("--config", type=Path, metavar="FILE",
                        help="TOML file with a [bot] table (default: $XMPPD_BOT_CONFIG)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    try:
        try:
            bot, _ = load(args.file)
        except BotError:
            raise
        except Exception:
            sys.stderr.write(f"{PROG}: error while loading {args.file}:\n")
            traceback.print_exc()
            raise SystemExit(1) from None
        if args.config is not None:
            bot.load_config(args.config)
        if args.check:
            summary = bot.describe()
            sys.stdout.write(f"{summary}\nok: {args.file} is ready to run\n")
            return
        _ = bot.settings            # fail on settings before connecting
        asyncio.run(bot._main())
    except BotError as e:
        sys.stderr.write(f"{PROG}: error: {e}\n")
        raise SystemExit(e.exit_code) from None
    except KeyboardInterrupt:       # a second Ctrl-C during shutdown
        raise SystemExit(130) from None
