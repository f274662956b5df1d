"""The runner (`xmppd-bot FILE`, `python -m xmppd_bot FILE`): finding the Bot, `--check`, and
the errors a bot author can act on — one line each, a non-zero exit, never a traceback."""
from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bot.conftest import EXAMPLES, PASSWORD, bot_env
from tests.harness.server_proc import REPO, RunningServer

SCRIPT = Path(sys.executable).parent / "xmppd-bot"


def runner(*args: str, env: dict[str, str], script: bool = False,
           timeout: float = 60) -> subprocess.CompletedProcess[str]:
    cmd = [str(SCRIPT)] if script else [sys.executable, "-m", "xmppd_bot"]
    return subprocess.run([*cmd, *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)


def one_line_error(done: subprocess.CompletedProcess[str], code: int, text: str,
                   prog: str = "xmppd-bot") -> None:
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"{prog}: error: "), done.stderr
    assert text in last, done.stderr


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write(tmp: Path, text: str, name: str = "bot.py") -> Path:
    path = tmp / name
    path.write_text(text)
    return path


# -- --check: validated without connecting (the server address is a closed port) ------------

@pytest.mark.parametrize("example", ["echo.py", "reminder.py", "moderator.py"])
def test_check_accepts_each_example(example: str) -> None:
    port = closed_port()
    done = runner("--check", str(EXAMPLES / example), env=bot_env(port, "echo"))
    assert done.returncode == 0, done.stderr
    assert "bot: echo@localhost/bot (from XMPPD_BOT_JID)" in done.stdout
    assert f"server: 127.0.0.1:{port}, TLS certificate NOT verified" in done.stdout
    assert done.stdout.rstrip().endswith(f"ok: {EXAMPLES / example} is ready to run")
    assert "online" not in done.stderr


def test_check_through_the_console_script_lists_commands_and_rooms() -> None:
    done = runner("--check", str(EXAMPLES / "moderator.py"), env=bot_env(closed_port()),
                  script=True)
    assert done.returncode == 0, done.stderr
    assert "commands: !words, !help" in done.stdout
    assert "on_group_message: watch" in done.stdout
    assert "room: lounge@conference.localhost as moderator" in done.stdout


def test_check_reads_a_config_file_given_on_the_command_line(tmp_path: Path) -> None:
    cfg = write(tmp_path, '[bot]\njid = "reminder@localhost"\npassword = "x"\n'
                          'server = "[::1]:5299"\n', "bot.toml")
    done = runner("--check", "--config", str(cfg), str(EXAMPLES / "reminder.py"),
                  env=bot_env(None, None))
    assert done.returncode == 0, done.stderr
    assert f"bot: reminder@localhost/bot (from {cfg} [bot] jid)" in done.stdout
    assert "server: [::1]:5299, TLS certificate NOT verified" in done.stdout


@pytest.mark.parametrize("env, text", [
    ({}, "no JID configured: pass Bot("),
    ({"XMPPD_BOT_JID": "echo@localhost"}, "no password configured for echo@localhost"),
    ({"XMPPD_BOT_JID": "not a jid@localhost", "XMPPD_BOT_PASSWORD": "x"},
     "XMPPD_BOT_JID: invalid JID 'not a jid@localhost'"),
    ({"XMPPD_BOT_JID": "localhost", "XMPPD_BOT_PASSWORD": "x"}, "has no user part"),
    ({"XMPPD_BOT_JID": "a@localhost", "XMPPD_BOT_PASSWORD": "x",
      "XMPPD_BOT_SERVER": "localhost:port"}, "XMPPD_BOT_SERVER: bad server address"),
    ({"XMPPD_BOT_CONFIG": "/nonexistent/bot.toml"}, "config file /nonexistent/bot.toml: "
                                                    "not found"),
])
def test_missing_or_bad_config_is_a_one_line_error(env: dict[str, str], text: str) -> None:
    done = runner("--check", str(EXAMPLES / "echo.py"), env=bot_env(None, None, **env))
    one_line_error(done, 2, text)


def test_a_run_without_config_stops_before_connecting() -> None:
    done = runner(str(EXAMPLES / "echo.py"), env=bot_env(None, None))
    one_line_error(done, 2, "no JID configured")


@pytest.mark.parametrize("source, text", [
    ("x = 1\n", "defines no Bot"),
    ("from xmppd_bot import Bot\na = Bot('a@localhost', 'p')\nb = Bot('b@localhost', 'p')\n",
     "defines 2 Bots (a, b); a file runs exactly one"),
    ("from xmppd_bot import Bot\nbot = Bot('a@localhost', 'p')\n",
     "the bot has no handlers"),
    ("from xmppd_bot import Bot\nbot = Bot('a@localhost', 'p')\n"
     "@bot.command('x')\ndef x(msg):\n    return ''\n",
     "@bot.command x (bot.py:3) must accept (msg, args)"),
    ("from xmppd_bot import Bot\nbot = Bot('a@localhost', 'p')\nbot.join('not-a-room')\n",
     "invalid room 'not-a-room'"),
    ("def broken(:\n", "bot.py:1: "),
])
def test_bot_files_the_runner_cannot_use_are_one_line_errors(tmp_path: Path, source: str,
                                                             text: str) -> None:
    done = runner("--check", str(write(tmp_path, source)), env=bot_env(None, None))
    one_line_error(done, 2, text)


def test_a_missing_bot_file_is_a_one_line_error(tmp_path: Path) -> None:
    one_line_error(runner(str(tmp_path / "nope.py"), env=bot_env(None)), 2,
                   f"bot file {tmp_path / 'nope.py'}: not found")


def test_a_bug_in_the_bot_file_shows_its_traceback(tmp_path: Path) -> None:
    done = runner("--check", str(write(tmp_path, "import nonexistent_module_xyz\n")),
                  env=bot_env(None))
    assert done.returncode == 1
    assert "error while loading" in done.stderr and "Traceback" in done.stderr
    assert "nonexistent_module_xyz" in done.stderr


def test_a_top_level_run_call_is_left_to_the_runner(tmp_path: Path) -> None:
    source = ("from xmppd_bot import Bot, Message\nbot = Bot()\n"
              "@bot.on_message\ndef m(msg: Message) -> None:\n    pass\nbot.run()\n")
    done = runner("--check", str(write(tmp_path, source)), env=bot_env(closed_port()))
    assert done.returncode == 0, done.stderr        # --check did not connect
    assert "ok:" in done.stdout


# -- errors met at run time -------------------------------------------------------------------

def test_unreachable_server_is_a_one_line_error() -> None:
    port = closed_port()
    done = runner(str(EXAMPLES / "echo.py"), env=bot_env(port))
    one_line_error(done, 1, f"cannot reach the XMPP server 127.0.0.1:{port}: connection refused")


def test_wrong_password_is_a_one_line_error(server: RunningServer) -> None:
    done = runner(str(EXAMPLES / "echo.py"),
                  env=bot_env(server.port, XMPPD_BOT_PASSWORD="wrong"))
    one_line_error(done, 1, "login refused for echo@localhost: wrong password or no such "
                            "account (not-authorized)")


def test_unknown_account_is_the_same_error(server: RunningServer) -> None:
    # SASL does not say which part was wrong (RFC 6120 §6.5.10), so neither do we.
    done = runner(str(EXAMPLES / "echo.py"), env=bot_env(server.port, "nobody"))
    one_line_error(done, 1, "login refused for nobody@localhost: wrong password")


def test_unknown_room_is_a_one_line_error(server: RunningServer) -> None:
    done = runner(str(EXAMPLES / "moderator.py"),
                  env=bot_env(server.port, "moderator",
                              MODERATOR_ROOM="nosuchroom@rooms.nowhere.example"))
    one_line_error(done, 1, "cannot join room nosuchroom@rooms.nowhere.example: "
                            "remote-server-not-found (no such group chat service")


def test_untrusted_certificate_is_a_one_line_error_with_the_fix(server: RunningServer) -> None:
    done = runner(str(EXAMPLES / "echo.py"),
                  env=bot_env(server.port, XMPPD_BOT_TLS_VERIFY="true"))
    one_line_error(done, 1, f"the TLS certificate of 127.0.0.1:{server.port} is not trusted")
    assert "XMPPD_BOT_TLS_VERIFY=false" in done.stderr


def test_domain_the_server_does_not_serve_is_a_one_line_error(server: RunningServer) -> None:
    done = runner(str(EXAMPLES / "echo.py"),
                  env=bot_env(server.port, XMPPD_BOT_JID="echo@elsewhere.example"))
    one_line_error(done, 1, "closed the connection during login (host-unknown")


def test_running_the_file_directly_reports_errors_the_same_way(server: RunningServer) -> None:
    done = subprocess.run([sys.executable, str(EXAMPLES / "echo.py")], cwd=REPO,
                          env=bot_env(server.port, XMPPD_BOT_PASSWORD=PASSWORD + "x"),
                          capture_output=True, text=True, timeout=60)
    one_line_error(done, 1, "login refused for echo@localhost", prog="echo.py")
