# tests: tests/integration/test_live_control.py
"""`xmppctl`'s side of the admin socket (xmppd/control.py): one JSON request, one answer.

`ask(path, command, args)` returns the server's answer, or raises `NoServer` when nothing
listens at `path` (not configured, no file, or a stale one); the account commands then fall
back to the database, as before there was a socket.
"""
from __future__ import annotations

import json
import socket
from typing import Any

LIVE = ("status", "sessions", "kick", "announce", "reload", "stats", "rooms")


class NoServer(Exception):
    pass


def ask(path: str, command: str, args: dict[str, Any], timeout: float = 60.0) -> dict[str, Any]:
    if not path:
        raise NoServer("server.admin_socket is not set in the config")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(path)
        except (FileNotFoundError, ConnectionRefusedError) as e:
            raise NoServer(f"no server answers on {path} ({e.strerror})") from None
        sock.sendall(json.dumps({"command": command, "args": args}).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                raise NoServer(f"the server closed {path} without answering")
            data += chunk
    finally:
        sock.close()
    answer: dict[str, Any] = json.loads(data)
    return answer


def add_parsers(sub: Any) -> None:
    """The live commands' argparse entries (xmppd/ctl.py)."""
    sub.add_parser("status", help="a running server's state (admin socket)")
    s = sub.add_parser("sessions", help="connected sessions, all or one account's")
    s.add_argument("user", nargs="?", default="", help="user@host")
    k = sub.add_parser("kick", help="end a session (user@host/resource) or all of an account's")
    k.add_argument("user")
    a = sub.add_parser("announce", help="send a message to every online user")
    a.add_argument("text")
    a.add_argument("--host", default="", help="only this virtual host's users")
    sub.add_parser("reload", help="reload the config and TLS certificates (like SIGHUP)")
    sub.add_parser("stats", help="the main counters (as on the metrics listener)")
    r = sub.add_parser("rooms", help="group chats and their occupants")
    r.add_argument("host", nargs="?", default="")


def args_for(ns: Any) -> dict[str, Any]:
    return {k: v for k, v in vars(ns).items() if k in ("user", "text", "host") and v}
