# tests: tests/integration/test_storage_faults.py
"""Private PostgreSQL and Redis instances for fault tests: started by the test on a free
loopback port, stopped and started again at will, removed afterwards. The machine's shared
services are never touched (DEVELOPERS.md).

PostgreSQL refuses to run as root, so as root the cluster belongs to the `postgres` user
(`runuser`); trust authentication on 127.0.0.1 only.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.harness.ports import free_port

PG_BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"))), Path("/nonexistent"))


def _wait_port(port: int, up: bool, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                if up:
                    return
        except OSError:
            if not up:
                return
        time.sleep(0.05)
    raise TimeoutError(f"port {port} did not go {'up' if up else 'down'} in {timeout} s")


class PrivatePostgres:
    """initdb in a temp dir; `start()`/`stop()` as often as wanted; `close()` removes it."""

    def __init__(self) -> None:
        if not (PG_BIN / "initdb").exists():
            raise FileNotFoundError("PostgreSQL server binaries are not installed")
        self.dir = Path(tempfile.mkdtemp(prefix="xmppd-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self._as_owner = os.geteuid() == 0
        if self._as_owner:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run(str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "xmppd",
                  "--no-sync")
        self.start()
        self._run(str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U",
                  "xmppd", "xmppd")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://xmppd@127.0.0.1:{self.port}/xmppd"

    def start(self) -> None:
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-w", "-l",
                  str(self.dir / "log"), "-o",
                  f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.dir} "
                  "-c fsync=off -c synchronous_commit=on", "start")
        _wait_port(self.port, True, 30)

    def stop(self) -> None:
        """Fast shutdown: connections are cut, as in an outage."""
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")
        _wait_port(self.port, False, 30)

    def close(self) -> None:
        try:
            self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop",
                      check=False)
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def _run(self, *argv: str, check: bool = True) -> None:
        cmd = ["runuser", "-u", "postgres", "--", *argv] if self._as_owner else list(argv)
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                              cwd=self.dir)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[:2])} failed: {done.stderr}{done.stdout}")


class PrivateRedis:
    """A redis-server of our own, keeping nothing on disk."""

    def __init__(self) -> None:
        self.binary = shutil.which("redis-server")
        if self.binary is None:
            raise FileNotFoundError("redis-server is not installed")
        self.dir = Path(tempfile.mkdtemp(prefix="xmppd-redis-"))
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary or "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(self.dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_port(self.port, True, 30)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None
        _wait_port(self.port, False, 30)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
