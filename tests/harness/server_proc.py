# tests: tests/integration/, tests/bot/
"""The real server (`python -m xmppd.main`) in a subprocess on free ports, with a config written
to a temp dir, and `xmppctl` against the same config. Used by integration and bot tests.

- `ServerFactory(kind, mktemp)`: started servers on one backend pair ("sqlite+memory" or
  "postgresql+redis"; "cluster": three nodes behind HAProxy, tests/harness/cluster_proc.py),
  each in its own directory with its accounts made; `close()` stops them
  all and drops their databases and Redis key spaces. Tests reach it through the
  `server_factory` fixture (tests/integration/conftest.py), whose docstring shows the options.
- `make_server(...)`: one server's config and process, not started and without accounts (the
  factory's building block; tests of `xmppctl` itself use it directly).
- `register_accounts(srv, accounts)`: accounts made by xmppctl's `register` command.
"""
from __future__ import annotations

import io
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.harness.backends import backend_urls

REPO = Path(__file__).resolve().parents[2]

Options = Mapping[str, Any]
# The modules a test server loads unless a test passes its own set: name -> options. To change
# one module's options, merge: `DEFAULT_MODULES | {"ping": {"keepalive_interval": "1 s"}}`.
DEFAULT_MODULES: dict[str, Options] = {
    "disco": {}, "ping": {}, "version": {}, "time": {},
    "register": {"allow_from": ["127.0.0.0/8", "::1"]},
    "roster": {}, "presence": {}, "last": {}, "blocking": {}, "vcard": {}, "offline": {},
    "receipts": {}, "carbons": {}, "mam": {}, "stream_mgmt": {}, "csi": {}, "muc": {},
    "caps": {}, "pep": {}, "private": {}, "bookmarks": {},
}
DEFAULT_USERS = ("alice", "bob", "carol")
DOMAIN = "localhost"


def toml(table: Mapping[str, Any], prefix: str = "") -> str:
    """`table` as TOML: its keys first, then its sub-tables ([a.b]) and arrays of tables
    ([[a]]). Values: str, bool, int, float and lists of those."""
    lines: list[str] = []
    nested: list[str] = []
    for key, value in table.items():
        assert re.fullmatch(r"[A-Za-z0-9_-]+", key), f"not a bare TOML key: {key!r}"
        if isinstance(value, Mapping):
            nested.append(f"\n[{prefix}{key}]\n" + toml(value, f"{prefix}{key}."))
        elif isinstance(value, (list, tuple)) and value and isinstance(value[0], Mapping):
            nested.extend(f"\n[[{prefix}{key}]]\n" + toml(item, f"{prefix}{key}.")
                          for item in value)
        else:
            lines.append(f"{key} = {_toml_value(value)}\n")
    return "".join(lines) + "".join(nested)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)          # a TOML basic string: the same escapes
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {value!r}")


def server_config(tmp: Path, storage_url: str, cache_url: str,
                  modules: Mapping[str, Options] | None = None,
                  listeners: Mapping[str, Options] | None = None,
                  **tables: Any) -> dict[str, Any]:
    """A test server's config: hosts "localhost" and "example.test", a STARTTLS listener on a
    free port (its port in `tmp/port`), one listener per `listeners` entry (`name -> options`,
    its port in `tmp/<name>_port`), `modules` (None: DEFAULT_MODULES), and `tables`: a table
    is merged over the default one (e.g. `limits={...}`, `server={"log_level": "debug"}`), an
    array of tables is set (`components=[{"domain": ..., "secret": ...}]`)."""
    config: dict[str, Any] = {
        "server": {"hosts": [DOMAIN, "example.test"], "log_level": "info",
                   "log_file": str(tmp / "xmppd.log")},
        "storage": {"url": storage_url},
        # servers sharing the test Redis never collide
        "cache": {"url": cache_url, "prefix": f"xmppd_t_{secrets.token_hex(6)}:"},
        "tls": {"cert": str(tmp / "cert.pem"), "key": str(tmp / "key.pem")},
        "listeners": [{"bind": "127.0.0.1", "port": 0, "port_file": str(tmp / "port"),
                       "starttls": "required"}]
        + [{"port": 0, "port_file": str(tmp / f"{name}_port"), **opts}
           for name, opts in (listeners or {}).items()],
    }
    for name, table in tables.items():
        config[name] = {**config.get(name, {}), **table} if isinstance(table, Mapping) else table
    config["modules"] = DEFAULT_MODULES if modules is None else modules
    return config


@dataclass
class RunningServer:
    tmp: Path
    config: Path
    proc: subprocess.Popen[bytes] | None = None
    port: int = 0
    env: dict[str, str] = field(default_factory=dict)
    storage_url: str = ""
    cache_url: str = ""
    # the extra listeners' ports by name (server_config's `listeners`), read at start
    ports: dict[str, int] = field(default_factory=dict)
    registered_at: float = 0.0          # time.monotonic() once register_accounts was done
    fd_limits: tuple[int, int] | None = None    # (soft, hard) RLIMIT_NOFILE to start it with

    def start(self, timeout: float = 30.0) -> None:
        """Start the server; return once every listener's port file is written."""
        self.spawn()
        self.wait_ready(timeout)

    def spawn(self) -> None:
        """Start the process without waiting for it (`wait_ready` does)."""
        for path in self._port_files().values():
            path.unlink(missing_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "xmppd.main", "--config", str(self.config)],
            cwd=REPO, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            preexec_fn=self._set_fd_limits if self.fd_limits else None)

    def _port_files(self) -> dict[str, Path]:
        return {"": self.tmp / "port"} | {n: self.tmp / f"{n}_port" for n in self.ports}

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Until every listener's port file is written (the process was `spawn`ed)."""
        assert self.proc is not None
        files = self._port_files()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"xmppd exited with {self.proc.returncode}: {err}\n"
                                   f"{self.log()}")
            bound = {n: p.read_text().strip() if p.exists() else "" for n, p in files.items()}
            if all(bound.values()):
                self.port = int(bound.pop(""))
                self.ports = {n: int(v) for n, v in bound.items()}
                return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"xmppd did not start within {timeout} s\n{self.log()}")

    def _set_fd_limits(self) -> None:
        import resource
        assert self.fd_limits is not None
        resource.setrlimit(resource.RLIMIT_NOFILE, self.fd_limits)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc.stderr:
            self.proc.stderr.close()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def ctl(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "xmppd.ctl", "--config", str(self.config), *args],
            cwd=REPO, env=self.env, capture_output=True, text=True, input=input, timeout=60)

    def log(self) -> str:
        path = self.tmp / "xmppd.log"
        return path.read_text()[-4000:] if path.exists() else ""

    def errors(self) -> list[str]:
        """Every ERROR line and traceback start of the server's log so far."""
        path = self.tmp / "xmppd.log"
        text = path.read_text() if path.exists() else ""
        return [line for line in text.splitlines() if "ERROR" in line or "Traceback" in line]

    def cpu_seconds(self) -> float:
        """utime + stime of the server process, from /proc (Linux)."""
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def make_server(tmp: Path, storage_url: str, cache_url: str, extra: str = "",
                modules: Mapping[str, Options] | None = None,
                listeners: Mapping[str, Options] | None = None,
                **tables: Any) -> RunningServer:
    """A server configured by `server_config` (plus `extra`, raw TOML appended for what the
    keywords cannot say; "{tmp}" in the config becomes `tmp`), not started."""
    cfg = tmp / "xmppd.toml"
    text = toml(server_config(tmp, storage_url, cache_url, modules, listeners, **tables))
    cfg.write_text((text + "\n" + extra).replace("{tmp}", str(tmp)))
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO)
    return RunningServer(tmp=tmp, config=cfg, env=env, storage_url=storage_url,
                         cache_url=cache_url, ports=dict.fromkeys(listeners or {}, 0))


def register_accounts(srv: RunningServer, accounts: Mapping[str, str]) -> None:
    """Accounts `user@localhost` with their passwords, made by xmppctl's `register` command:
    its `main()`, called in this process (another interpreter would cost more time than all
    of a server's accounts)."""
    from xmppd.ctl import main      # the server's code is imported only where a server is made
    for user, password in accounts.items():
        out = io.StringIO()
        with redirect_stdout(out), redirect_stderr(out):
            code = main(["--config", str(srv.config), "register", user, DOMAIN, password])
        assert code == 0, f"xmppctl register {user} {DOMAIN}: {out.getvalue()}"
    srv.registered_at = time.monotonic()


class ServerFactory:
    """Started test servers on one backend pair, each in a directory from `mktemp`;
    `close()` (or the end of a `with` block) stops them and removes their data."""

    def __init__(self, kind: str | tuple[str, str], mktemp: Callable[[], Path]) -> None:
        """`kind`: a backend pair by name, each server with a fresh database and Redis key
        space, or (storage URL, cache URL) of backends the caller owns (a fault test's private
        instances)."""
        self.kind = kind
        self.mktemp = mktemp
        self.servers: list[RunningServer] = []
        self.cleanups: list[Callable[[], None]] = []

    def __call__(self, modules: Mapping[str, Options] | None = None,
                 users: Iterable[str] | Mapping[str, str] = DEFAULT_USERS, *,
                 listeners: Mapping[str, Options] | None = None, extra: str = "",
                 fd_limits: tuple[int, int] | None = None, **tables: Any) -> RunningServer:
        """A started server (see `server_config` for the arguments). `users`: names, each
        with the password "<name>-pw", or a mapping name -> password. `fd_limits`: the
        (soft, hard) RLIMIT_NOFILE it starts with."""
        tmp = self.mktemp()
        if self.kind == "cluster":
            return self._cluster(tmp, modules, users, listeners, extra, tables)
        if isinstance(self.kind, str):
            storage_url, cache_url, cleanups = backend_urls(self.kind, tmp)
        else:
            (storage_url, cache_url), cleanups = self.kind, []
        self.cleanups.extend(cleanups)
        srv = make_server(tmp, storage_url, cache_url, extra, modules, listeners, **tables)
        self.servers.append(srv)
        accounts = (dict(users) if isinstance(users, Mapping) else
                    {u: f"{u}-pw" for u in users})
        register_accounts(srv, accounts)
        srv.fd_limits = fd_limits
        srv.start()
        return srv

    def _cluster(self, tmp: Path, modules: Mapping[str, Options] | None,
                 users: Iterable[str] | Mapping[str, str],
                 listeners: Mapping[str, Options] | None, extra: str,
                 tables: dict[str, Any]) -> RunningServer:
        """Three nodes behind HAProxy, used as one server (tests/harness/cluster_proc.py)."""
        from tests.harness.backends import redis_url, require
        from tests.harness.cluster_proc import make_cluster
        require("haproxy")
        storage_url, cache_url, cleanups = backend_urls("postgresql+redis", tmp)
        space = redis_url()
        self.cleanups.extend([*cleanups, space.cleanup])
        cluster = make_cluster(tmp, storage_url, cache_url, space.prefix, modules, listeners,
                               extra, tables, proxy=True)
        self.servers.append(cluster)  # type: ignore[arg-type]
        accounts = (dict(users) if isinstance(users, Mapping) else
                    {u: f"{u}-pw" for u in users})
        register_accounts(cluster.nodes[0], accounts)
        cluster.registered_at = cluster.nodes[0].registered_at
        cluster.start()
        return cluster  # type: ignore[return-value]

    def close(self) -> None:
        for srv in self.servers:
            srv.stop()
        for cleanup in self.cleanups:
            cleanup()
        self.servers.clear()
        self.cleanups.clear()

    def __enter__(self) -> ServerFactory:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
