# tests: tests/integration/test_ctl.py
"""`xmppctl`: account and config administration, reading the server's config file.

Argument order follows prosodyctl and ejabberdctl: `xmppctl register USER HOST PASSWORD`.
A PASSWORD of "-" is read from standard input (keeps it out of shell history and `ps`).
Live commands (status, sessions, kick, announce, reload, stats, rooms) talk to the running
server over its admin socket (`server.admin_socket`, xmppd/control.py); `--json` prints the
answer's data as JSON. The account commands go through that socket too when a server answers
on it, so they take effect in the running server at once (its caches, its hooks); otherwise
they write the database directly.
Exit codes: 0 done, 1 refused (user exists / unknown), 2 bad input or config, 3 no server
answers on the admin socket (live commands).
`xmppctl cluster status` lists a cluster's nodes (xmppd/cluster/status.py).
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from typing import Any, Coroutine, TypeVar

from twisted.internet import defer, task
from twisted.python.failure import Failure

from xmppd import ctl_live
from xmppd import ctl_mobile
from xmppd.config import Config, ConfigError, load

T = TypeVar("T")


def _wait(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine whose storage calls complete inline (ImmediateRunner)."""
    d = defer.Deferred.fromCoroutine(coro)
    results: list[Any] = []
    d.addBoth(results.append)
    if not results:
        raise RuntimeError("storage did not complete inline")
    if isinstance(results[0], Failure):
        results[0].raiseException()
    return results[0]  # type: ignore[no-any-return]


def _server(config: Config) -> Any:
    from storage.cache import MemoryCache, open_cache
    from storage.db import Database
    from xmppd.main import sqlite_dir
    from xmppd.server import Server
    sqlite_dir(config.storage.url)
    db = Database.open(config.storage.url)
    db.migrate()
    clock = task.Clock()
    clock.rightNow = time.time()
    # The server's own cache when it is shared (Redis), so what this command changes is
    # invalidated for a running server too; an in-process cache cannot be reached from here.
    cache = (MemoryCache(clock=clock.seconds) if config.cache.url == "memory" else
             open_cache(config.cache.url, None, clock=clock.seconds,
                        max_entries=config.cache.max_entries, prefix=config.cache.prefix))
    # One node's config or not, this command is no node: it joins no cluster.
    server = Server(dataclasses.replace(config, cluster=None), reactor=clock, db=db,
                    cache=cache)
    server.load_modules()
    return server


def _cluster_status(config: Config) -> int:
    if config.cluster is None:
        print(f"xmppctl: {config.path} has no [cluster] table: this server is one node",
              file=sys.stderr)
        return 2
    from xmppd.cluster.status import render, status
    print(render(status(config.cluster, config.cache.prefix)))
    return 0


def _password(value: str) -> str:
    if value == "-":
        return sys.stdin.readline().rstrip("\n")
    return value


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="xmppctl", description="xmppd administration")
    p.add_argument("--config", "-c", default=None,
                   help="config file (default as for xmppd: xmppd/paths.py)")
    p.add_argument("--json", action="store_true", help="live commands: print the data as JSON")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("register", help="create an account")
    r.add_argument("user"), r.add_argument("host"), r.add_argument("password")
    u = sub.add_parser("unregister", help="delete an account and its data")
    u.add_argument("user"), u.add_argument("host")
    pw = sub.add_parser("passwd", help="set an account's password")
    pw.add_argument("user"), pw.add_argument("host"), pw.add_argument("password")
    us = sub.add_parser("users", help="list the accounts of a host")
    us.add_argument("host")
    sub.add_parser("check-config", help="validate the config file and its modules")
    sub.add_parser("migrate", help="bring the database schema up to date")
    ctl_live.add_parsers(sub)
    ctl_mobile.add_commands(sub)
    cl = sub.add_parser("cluster", help="the nodes of a cluster (docs/CLUSTER.md)")
    cl.add_argument("action", choices=["status"])
    args = p.parse_args(argv)
    if args.config is None:
        from xmppd.paths import default_config
        args.config = default_config()

    try:
        config = load(args.config)
        if args.command in ctl_live.LIVE:
            return _live(config, args.command, ctl_live.args_for(args), args.json)
        if args.command in ("register", "unregister", "passwd"):
            done = _account_live(config, args)
            if done is not None:
                return done
        if args.command == "check-config":
            from xmppd.loader import resolve
            plan = resolve(config.modules)
            print(f"{config.path}: OK ({len(config.server.hosts)} host(s), "
                  f"{len(config.listeners)} listener(s), modules: "
                  f"{', '.join(cls.name for cls, _ in plan) or 'none'})")
            return 0
        if args.command == "cluster":
            return _cluster_status(config)
        server = _server(config)
    except ConfigError as e:
        print(f"xmppctl: {e}", file=sys.stderr)
        return 2
    except Exception as e:      # storage unreachable and the like: say so, no traceback
        print(f"xmppctl: cannot open storage: {e}", file=sys.stderr)
        return 2
    try:
        if args.command == "migrate":
            print("schema is up to date")
            return 0
        done = ctl_mobile.run(args, server, _wait)
        if done is not None:
            return done
        if args.command == "users":
            if args.host not in server.hosts:
                print(f"xmppctl: {args.host!r} is not a virtual host in {config.path}",
                      file=sys.stderr)
                return 2
            for name in _wait(server.stores.accounts.list_users(args.host)):
                print(name)
            return 0
        if args.command == "register":
            if _wait(server.accounts.register(args.user, args.host, _password(args.password))):
                print(f"created {args.user}@{args.host}")
                return 0
            print(f"xmppctl: {args.user}@{args.host} already exists", file=sys.stderr)
            return 1
        if args.command == "passwd":
            if _wait(server.accounts.set_password(args.user, args.host, _password(args.password))):
                print(f"password changed for {args.user}@{args.host}")
                return 0
            print(f"xmppctl: no such user {args.user}@{args.host}", file=sys.stderr)
            return 1
        if args.command == "unregister":
            if _wait(server.accounts.delete(args.user, args.host)):
                print(f"deleted {args.user}@{args.host}")
                return 0
            print(f"xmppctl: no such user {args.user}@{args.host}", file=sys.stderr)
            return 1
    except ValueError as e:
        print(f"xmppctl: {e}", file=sys.stderr)
        return 2
    finally:
        server.db.close()
    return 2


def _live(config: Config, command: str, args: dict[str, Any], as_json: bool) -> int:
    try:
        answer = ctl_live.ask(config.server.admin_socket, command, args)
    except ctl_live.NoServer as e:
        print(f"xmppctl: {e}", file=sys.stderr)
        return 3
    if answer.get("ok"):
        if as_json:
            import json
            print(json.dumps(answer.get("data"), indent=1))
        elif answer.get("text"):
            print(answer["text"])
        return 0
    print(f"xmppctl: {answer.get('text')}", file=sys.stderr)
    return int(answer.get("code", 2))


def _account_live(config: Config, args: argparse.Namespace) -> int | None:
    """An account command through the running server's socket; None if none answers."""
    payload: dict[str, Any] = {"user": args.user, "host": args.host}
    if args.command != "unregister":
        payload["password"] = _password(args.password)
    try:
        answer = ctl_live.ask(config.server.admin_socket, args.command, payload)
    except ctl_live.NoServer:
        if args.command != "unregister":
            args.password = payload["password"]     # already read from stdin
        return None
    if answer.get("ok"):
        print(answer.get("text"))
        return 0
    print(f"xmppctl: {answer.get('text')}", file=sys.stderr)
    return int(answer.get("code", 2))


if __name__ == "__main__":
    sys.exit(main())
