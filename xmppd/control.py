# tests: tests/integration/test_live_control.py
"""The admin socket (`server.admin_socket`): live control of a running server by `xmppctl`,
over a UNIX socket whose file permissions say who may use it (`admin_socket_mode`, 0600 by
default: the user the server runs as) — never a network port.

Protocol: one JSON object per line each way. A request is `{"command": NAME, "args": {...}}`;
the answer `{"ok": true|false, "text": "...", "data": ..., "code": 0|1|2}` (`code` is the exit
status xmppctl uses: 1 refused, 2 bad input). Commands:
  status                    pid, version, uptime, hosts, listeners, connections, sessions, modules
  sessions [user]           bound sessions (all, or one account's): JID, transport, address,
                            TLS, availability, priority, age, idle time
  kick user[/resource]      end one session or all of an account's (<policy-violation/>)
  announce text [host]      a headline to every online session (of one host)
  reload                    config and certificates (xmppd/reload.py), without dropping anyone
  stats                     the main counters and gauges of the metrics registry
  rooms [host]              group chats (answered by the MUC module, hook `control_command`)
  register/unregister/passwd user host [password]
                            account operations in the running server (its caches, its hooks)
"""
from __future__ import annotations

import json
import logging
import os
import socket
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lxml import etree
from prometheus_client.samples import Sample
from twisted.internet import defer, protocol
from twisted.protocols.basic import LineOnlyReceiver

from stanzas import ns
from stanzas.errors import StreamError
from stanzas.jid import JID, JIDError
from xmppd import hooks
from xmppd.metrics import transport_kind

if TYPE_CHECKING:
    from xmppd.runtime import Runtime

log = logging.getLogger(__name__)


class Refused(Exception):
    """The command cannot be done (exit status 1), e.g. no such user."""


class BadInput(Exception):
    """The request is wrong (exit status 2)."""


class Commands:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.server = runtime.server
        self.table: dict[str, Callable[[dict[str, Any]], Awaitable[tuple[str, Any]]]] = {
            "status": self.status, "sessions": self.sessions, "kick": self.kick,
            "announce": self.announce, "reload": self.reload, "stats": self.stats,
            "rooms": self.rooms, "register": self.register, "unregister": self.unregister,
            "passwd": self.passwd}

    async def run(self, request: object) -> dict[str, Any]:
        if not isinstance(request, dict) or not isinstance(request.get("command"), str):
            return {"ok": False, "code": 2, "text": "expected {\"command\": ..., \"args\": {}}"}
        name, args = request["command"], request.get("args") or {}
        handler = self.table.get(name)
        if handler is None or not isinstance(args, dict):
            return {"ok": False, "code": 2, "text": f"unknown command {name!r}"}
        try:
            text, data = await handler(args)
        except Refused as e:
            return {"ok": False, "code": 1, "text": str(e)}
        except (BadInput, ValueError) as e:
            return {"ok": False, "code": 2, "text": str(e)}
        return {"ok": True, "code": 0, "text": text, "data": data}

    # -- looking -----------------------------------------------------------------------------
    async def status(self, args: dict[str, Any]) -> tuple[str, Any]:
        s = self.server
        data: dict[str, Any] = {
            "pid": os.getpid(), "version": _version(), "config": str(s.config.path),
            "uptime": round(s.clock.now() - s.started_at, 1), "hosts": sorted(s.hosts),
            "listeners": self.runtime.listeners(), "connections": len(s.connections),
            "sessions": len(s.sessions), "users_online": len(s.sessions.users()),
            "modules": {h: list(host.modules) for h, host in sorted(s.hosts.items())},
        }
        lines = [f"xmppd {data['version']} running, pid {data['pid']}, up {_age(data['uptime'])}",
                 f"config: {data['config']}", f"hosts: {', '.join(data['hosts'])}"]
        lines += [f"listening: {lst['type']} on {lst['bind']}:{lst['port']}"
                  for lst in data["listeners"]]
        lines.append(f"{data['connections']} connection(s), {data['sessions']} session(s), "
                     f"{data['users_online']} user(s) online")
        return "\n".join(lines), data

    async def sessions(self, args: dict[str, Any]) -> tuple[str, Any]:
        now = self.server.clock.now()
        users = self.server.sessions.users()
        if args.get("user"):
            users = [u for u in users if u == _jid(args["user"]).bare]
        rows: list[dict[str, Any]] = []
        for user in sorted(users, key=str):
            for s in sorted(self.server.sessions.resources(user), key=lambda s: str(s.jid)):
                rows.append({
                    "jid": str(s.jid), "session": getattr(s, "id", None),
                    "transport": transport_kind(getattr(s, "transport", None))
                    if getattr(s, "connected", True) else "detached",
                    "ip": s.peer_ip, "secure": bool(getattr(getattr(s, "stream", None),
                                                            "secure", False)),
                    "available": s.available, "priority": s.priority,
                    "age": round(now - getattr(s, "opened_at", now), 1),
                    "idle": round(now - getattr(s, "last_activity", now), 1)})
        text = "\n".join(f"{r['jid']}  {r['transport']}  {r['ip']}  "
                         f"{'available' if r['available'] else 'unavailable'}  "
                         f"prio {r['priority']}  up {_age(r['age'])}  idle {_age(r['idle'])}"
                         for r in rows)
        return text or "no sessions", rows

    async def stats(self, args: dict[str, Any]) -> tuple[str, Any]:
        samples: dict[str, float] = {}
        for family in self.server.metrics.registry.collect():
            for sample in family.samples:
                samples[_sample_name(sample)] = sample.value
        wanted = [k for k in samples if k.startswith(_STATS)]
        data = {k: samples[k] for k in sorted(wanted)}
        return "\n".join(f"{k} {_num(v)}" for k, v in data.items()), data

    async def rooms(self, args: dict[str, Any]) -> tuple[str, Any]:
        found: list[dict[str, Any]] | None = None
        for name, host in sorted(self.server.hosts.items()):
            if args.get("host") and args["host"] != name:
                continue
            got = host.hooks.fold(hooks.control_command, hooks.ControlRequest("rooms", name),
                                  None)
            if isinstance(got, defer.Deferred):
                got = await got
            if got is not None:
                found = [*(found or []), *got]
        if found is None:
            raise Refused("no module answers 'rooms' (is [modules.muc] enabled?)")
        text = "\n".join(f"{r['room']}  {r['occupants']} occupant(s)  "
                         f"{'persistent' if r['persistent'] else 'temporary'}"
                         f"{'' if r['public'] else ', hidden'}"
                         f"{', members only' if r['members_only'] else ''}  {r['name']}"
                         for r in found)
        return text or "no rooms", found

    # -- acting ------------------------------------------------------------------------------
    async def kick(self, args: dict[str, Any]) -> tuple[str, Any]:
        target = _jid(args.get("user", ""))
        if target.local is None:
            raise BadInput(f"expected user@host or user@host/resource, got {str(target)!r}")
        sessions = [s for s in self.server.sessions.resources(target.bare)
                    if target.resource is None or s.jid == target]
        if not sessions:
            raise Refused(f"no session for {target}")
        kicked = [str(s.jid) for s in sessions]
        for s in sessions:
            s.close(StreamError.policy_violation("your session was ended by an administrator"))
        log.info("kicked %s", ", ".join(kicked), extra={"event": "kick"})
        return f"kicked {', '.join(kicked)}", kicked

    async def announce(self, args: dict[str, Any]) -> tuple[str, Any]:
        text = str(args.get("text", "")).strip()
        if not text:
            raise BadInput("the announcement is empty")
        host = args.get("host")
        if host and host not in self.server.hosts:
            raise BadInput(f"{host!r} is not a virtual host")
        n = 0
        for user in self.server.sessions.users():
            if host and user.domain != host:
                continue
            for s in self.server.sessions.resources(user):
                self.server.router.route(_headline(user.domain, str(s.jid), text))
                n += 1
        log.info("announcement to %d session(s)", n, extra={"event": "announce"})
        return f"sent to {n} session(s)", {"sessions": n}

    async def reload(self, args: dict[str, Any]) -> tuple[str, Any]:
        outcome = self.runtime.reload()
        data = {"applied": outcome.applied, "restart_needed": outcome.restart_needed,
                "errors": outcome.errors}
        if not outcome.ok:
            raise Refused(outcome.text())
        return outcome.text(), data

    async def register(self, args: dict[str, Any]) -> tuple[str, Any]:
        user, host = _user(args)
        if not await self.server.accounts.register(user, host, str(args.get("password", ""))):
            raise Refused(f"{user}@{host} already exists")
        return f"created {user}@{host}", None

    async def unregister(self, args: dict[str, Any]) -> tuple[str, Any]:
        user, host = _user(args)
        if not await self.server.accounts.delete(user, host):
            raise Refused(f"no such user {user}@{host}")
        return f"deleted {user}@{host}", None

    async def passwd(self, args: dict[str, Any]) -> tuple[str, Any]:
        user, host = _user(args)
        if not await self.server.accounts.set_password(user, host,
                                                        str(args.get("password", ""))):
            raise Refused(f"no such user {user}@{host}")
        return f"password changed for {user}@{host}", None


_STATS = ("xmppd_connections", "xmppd_sessions", "xmppd_users_online", "xmppd_logins",
          "xmppd_login_failures", "xmppd_stanzas_", "xmppd_messages_", "xmppd_offline_stored",
          "xmppd_hook_errors", "xmppd_group_commit_queue", "xmppd_group_commit_items",
          "xmppd_muc_", "xmppd_sql_pending", "xmppd_output_backlog", "xmppd_uptime",
          "process_resident_memory_bytes", "process_cpu_seconds_total", "process_open_fds")


def _sample_name(sample: Sample) -> str:
    if not sample.labels:
        return sample.name
    return sample.name + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items())) + "}"


def _num(v: float) -> str:
    return str(int(v)) if v == int(v) else f"{v:.3f}"


def _age(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 86400}d{s % 86400 // 3600}h" if s >= 86400 else \
        f"{s // 3600}h{s % 3600 // 60}m" if s >= 3600 else f"{s // 60}m{s % 60}s"


def _jid(value: object) -> JID:
    try:
        return JID.parse(str(value))
    except JIDError as e:
        raise BadInput(f"{value!r}: {e}") from None


def _user(args: dict[str, Any]) -> tuple[str, str]:
    user, host = args.get("user"), args.get("host")
    if not isinstance(user, str) or not isinstance(host, str):
        raise BadInput("expected a user and a host")
    return user, host


def _headline(host: str, to: str, text: str) -> etree._Element:
    el = etree.Element("{%s}message" % ns.CLIENT, nsmap={None: ns.CLIENT},  # type: ignore[dict-item]
                       type="headline", to=to)
    el.set("from", host)
    etree.SubElement(el, "{%s}body" % ns.CLIENT).text = text
    return el


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("xmppd")
    except PackageNotFoundError:
        return "unknown"


class ControlProtocol(LineOnlyReceiver):
    delimiter = b"\n"
    MAX_LENGTH = 1 << 20

    def __init__(self, commands: Commands) -> None:
        self.commands = commands

    def lineReceived(self, line: bytes) -> None:
        try:
            request = json.loads(line)
        except ValueError:
            self._answer({"ok": False, "code": 2, "text": "not JSON"})
            return
        d = defer.Deferred.fromCoroutine(self.commands.run(request))
        d.addCallbacks(self._answer, self._failed)

    def _answer(self, reply: dict[str, Any]) -> None:
        if self.transport is not None:
            self.sendLine(json.dumps(reply).encode())  # type: ignore[no-untyped-call]

    def _failed(self, failure: Any) -> None:
        log.error("admin command failed: %s", failure.getTraceback())
        self._answer({"ok": False, "code": 2, "text": f"internal error: {failure.value}"})

    def lineLengthExceeded(self, line: bytes) -> None:
        self._answer({"ok": False, "code": 2, "text": "request too long"})
        if self.transport is not None:
            self.transport.loseConnection()


class ControlFactory(protocol.ServerFactory):
    def __init__(self, commands: Commands) -> None:
        self.commands = commands

    def buildProtocol(self, addr: Any) -> ControlProtocol:
        return ControlProtocol(self.commands)


def listen(reactor: Any, runtime: Runtime, path: str, mode: int) -> Any:
    """Listen on the UNIX socket `path` with permissions `mode`. The socket is made under
    umask 077 (nobody else can connect in the moment before the chmod). A socket left by a
    server that died is removed; one that answers belongs to a running server: OSError."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
    if p.exists() or p.is_symlink():
        if not stat.S_ISSOCK(p.lstat().st_mode):
            raise OSError(f"admin socket {path}: exists and is not a socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(p))
        except OSError:
            p.unlink()                      # stale: nobody listens
        else:
            raise OSError(f"admin socket {path}: another server is listening on it")
        finally:
            probe.close()
    old = os.umask(0o077)
    try:
        port = reactor.listenUNIX(str(p), ControlFactory(Commands(runtime)), mode=mode,
                                  wantPID=False)
    finally:
        os.umask(old)
    os.chmod(p, mode)
    return port
