# tests: tests/cluster/test_multiproc.py
"""The supervisor: `xmppd` with `server.processes` above one (docs/CLUSTER.md "Every core").

It serves nothing itself. Before the workers start it makes the self-signed certificate if
one is due, brings the schema up to date, starts the private Redis if the plan needs one
(xmppd/multiproc.py), binds the listening sockets (xmppd/sharedsockets.py: one per worker
per listener, SO_REUSEPORT), writes the port files and the pid file. Then it runs N workers
(`python -m xmppd.main` with $XMPPD_WORKER: cluster nodes p1..pN) and watches them:

- a worker that exits by itself is started again (after 1 s, doubling up to 30 s while it
  keeps dying within 10 s of its start); its sockets stayed open, so connections the kernel
  queued for it wait for the next run. A worker that fails at its very first start with a
  config error (exit status 2) stops the supervisor: every worker would.
- SIGTERM / SIGINT: every worker is told to stop (SIGINT: close streams with
  <system-shutdown/>, flush, exit — no drain, there is nowhere to go), then the private Redis;
  past `shutdown_timeout` + 15 s a worker is killed.
- SIGHUP: passed to every worker (each reloads, xmppd/reload.py).
- SIGUSR2: a rolling restart, one worker at a time: its sockets leave the group, it gets
  SIGTERM and drains (its clients resume their sessions on the other workers, XEP-0198), it
  is started again on new sockets, and once it serves the next one follows.
"""
from __future__ import annotations

import logging
import os
import secrets
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from xmppd import sharedsockets
from xmppd.config import Config
from xmppd.multiproc import ENV, SHARED, Plan, WorkerSpec, serves

log = logging.getLogger("xmppd.supervisor")
_READY_TIMEOUT = 90.0


class Worker:
    def __init__(self, index: int) -> None:
        self.index = index
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready_r = -1
        self.ready = False
        self.started = 0.0
        self.delay = 1.0
        self.restart_at = 0.0          # > 0: start again at this time
        self.runs = 0
        self.socks: list[socket.socket | None] = []


class Supervisor:
    def __init__(self, config: Config, config_path: str, plan: Plan) -> None:
        self.config = config
        self.path = config_path
        self.plan = plan
        self.n = plan.processes
        self.workers = [Worker(i + 1) for i in range(self.n)]
        self.ports: list[int] = [lst.port for lst in config.listeners]
        self.steered: list[bool] = [False] * len(config.listeners)
        self.redis: subprocess.Popen[bytes] | None = None
        self.redis_url = plan.redis_url
        self.redis_dir = ""
        self.signals: list[int] = []
        self.stopping = False
        self.rolling: list[int] = []       # worker indexes still to restart
        self._draining: Worker | None = None
        self.stop_deadline = 0.0
        self.announced = False
        self.status = 0

    # -- start ------------------------------------------------------------------------------
    def prepare(self) -> None:
        cfg = self.config
        from xmppd.tls import ensure_certificate
        if any(lst.type in ("c2s", "s2s", "c2s_tls", "s2s_tls") or lst.tls
               for lst in cfg.listeners):
            if ensure_certificate(Path(cfg.tls.cert), Path(cfg.tls.key), list(cfg.server.hosts),
                                  generate=cfg.tls.generate_self_signed):
                log.warning("generated a self-signed certificate at %s (development only)",
                            cfg.tls.cert)
        from storage.db import Database
        from xmppd.main import sqlite_dir
        sqlite_dir(cfg.storage.url)
        db = Database.open(cfg.storage.url)
        db.migrate()
        db.close()
        if self.plan.private_redis:
            self._start_redis()
        for w in self.workers:
            self._bind(w)
        if cfg.server.pid_file:
            Path(cfg.server.pid_file).write_text(f"{os.getpid()}\n")

    def _bind(self, w: Worker) -> None:
        w.socks = []
        for k, lst in enumerate(self.config.listeners):
            if lst.type not in SHARED:
                w.socks.append(None)
                continue
            s = sharedsockets.bind(lst.bind, self.ports[k])
            self.ports[k] = s.getsockname()[1]
            if lst.type == "http" and w.index == 1:
                self.steered[k] = sharedsockets.steer_by_source(s, self.n)
            w.socks.append(s)

    def _close_socks(self, w: Worker) -> None:
        for s in w.socks:
            if s is not None:
                s.close()
        w.socks = []

    def _start_redis(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        password = secrets.token_hex(16)
        self.redis_dir = tempfile.mkdtemp(prefix="xmppd-redis-")
        self.redis = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--requirepass",
             password, "--save", "", "--appendonly", "no", "--dir", self.redis_dir,
             "--loglevel", "warning", "--logfile", "redis.log"], stdin=subprocess.DEVNULL)
        self.redis_url = f"redis://:{password}@127.0.0.1:{port}/0"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and self.redis.poll() is None:
            try:
                with socket.create_connection(("127.0.0.1", port), 1) as c:
                    c.sendall(f"AUTH {password}\r\nPING\r\n".encode())
                    got = b""
                    while b"PONG" not in got:
                        more = c.recv(100)
                        if not more:
                            break
                        got += more
                    if b"PONG" in got:
                        log.info("private redis-server on 127.0.0.1:%d (pid %d)", port,
                                 self.redis.pid)
                        return
            except OSError:
                time.sleep(0.05)
        self._stop_redis()
        raise OSError("the private redis-server did not start")

    def spawn(self, w: Worker) -> None:
        if not w.socks:
            self._bind(w)
        fds = []
        for k, lst in enumerate(self.config.listeners):
            s = w.socks[k] if k < len(w.socks) else None
            if not serves(lst, w.index) or (lst.type == "http" and not self.steered[k]
                                            and w.index != 1):
                fds.append(-2)          # not this worker's
            elif s is None:
                fds.append(-1)          # its own (metrics: port + index - 1)
            else:
                fds.append(s.fileno())
        ready_r, ready_w = os.pipe()
        spec = WorkerSpec(w.index, self.n, tuple(fds), ready_w, self.redis_url)
        env = dict(os.environ, **{ENV: spec.dumps()})
        w.proc = subprocess.Popen(
            [sys.executable, "-m", "xmppd.main", "--config", self.path], env=env,
            pass_fds=[f for f in fds if f >= 0] + [ready_w], stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent)
        os.close(ready_w)
        w.ready_r, w.ready, w.started, w.restart_at = ready_r, False, time.monotonic(), 0.0
        w.runs += 1
        log.info("worker p%d started (pid %d)", w.index, w.proc.pid,
                 extra={"event": "worker_started"})

    # -- the loop ---------------------------------------------------------------------------
    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR2):
            signal.signal(sig, lambda signum, frame: self.signals.append(signum))
        for w in self.workers:
            self.spawn(w)
        log.info("xmppd serving %s with %d processes", ", ".join(self.config.server.hosts),
                 self.n)
        while True:
            self._wait_ready(0.1)
            if not self.announced and all(w.ready for w in self.workers):
                self._announce()
            while self.signals:
                self._on_signal(self.signals.pop(0))
            self._reap()
            if self.stopping:
                if all(w.proc is None for w in self.workers):
                    break
                self._kill_late()
                continue
            self._restart_due()
            self._roll()
            self._watch_redis()
        self._stop_redis()
        if self.config.server.pid_file:
            Path(self.config.server.pid_file).unlink(missing_ok=True)
        log.info("all workers stopped", extra={"event": "stopped"})
        return self.status

    def _announce(self) -> None:
        """Every worker serves: the port files say so (scripts and tests wait for them)."""
        self.announced = True
        for k, lst in enumerate(self.config.listeners):
            if lst.port_file and lst.type in SHARED:
                Path(lst.port_file).write_text(f"{self.ports[k]}\n")
        log.info("every worker serves", extra={"event": "serving"})

    def _wait_ready(self, timeout: float) -> None:
        fds = [w.ready_r for w in self.workers if w.ready_r >= 0]
        try:
            readable, _, _ = select.select(fds, [], [], timeout)
        except InterruptedError:
            return
        for w in self.workers:
            if w.ready_r in readable:
                data = os.read(w.ready_r, 16)
                os.close(w.ready_r)
                w.ready_r = -1
                if data:
                    w.ready = True
                    w.delay = 1.0 if time.monotonic() - w.started > 10 else w.delay
                    log.info("worker p%d serving", w.index, extra={"event": "worker_ready"})

    def _on_signal(self, sig: int) -> None:
        if sig in (signal.SIGTERM, signal.SIGINT):
            self.stop()
        elif sig == signal.SIGHUP:
            log.info("reload: passing SIGHUP to the workers")
            self._signal_all(signal.SIGHUP)
        elif sig == signal.SIGUSR2 and not self.stopping:
            if self.rolling:
                log.info("a rolling restart is already under way")
            else:
                log.info("rolling restart of %d workers", self.n,
                         extra={"event": "rolling_restart"})
                self.rolling = [w.index for w in self.workers]

    def stop(self) -> None:
        if self.stopping:
            return
        self.stopping = True
        self.stop_deadline = time.monotonic() + self.config.server.shutdown_timeout + 15
        log.info("stopping %d workers", self.n, extra={"event": "shutdown"})
        self._signal_all(signal.SIGINT)
        for w in self.workers:
            self._close_socks(w)

    def _signal_all(self, sig: int) -> None:
        for w in self.workers:
            if w.proc is not None and w.proc.poll() is None:
                w.proc.send_signal(sig)

    def _kill_late(self) -> None:
        if time.monotonic() > self.stop_deadline:
            for w in self.workers:
                if w.proc is not None and w.proc.poll() is None:
                    log.error("worker p%d still runs: killing it", w.index)
                    w.proc.kill()

    def _reap(self) -> None:
        for w in self.workers:
            if w.proc is None or w.proc.poll() is None:
                continue
            code = w.proc.returncode
            w.proc = None
            if w.ready_r >= 0:
                os.close(w.ready_r)
                w.ready_r = -1
            if self.stopping:
                continue
            if self.rolling and self._draining is w:
                log.info("worker p%d drained (status %s): starting it again", w.index, code)
                self.spawn(w)
                continue
            if code == 2 and w.runs == 1 and not w.ready:
                log.error("worker p%d could not start (status 2): stopping", w.index)
                self.status = 2
                self.stop()
                continue
            quick = time.monotonic() - w.started < 10
            w.delay = min(30.0, w.delay * 2) if quick else 1.0
            log.error("worker p%d exited (status %s): starting it again in %.0f s", w.index,
                      code, w.delay, extra={"event": "worker_died"})
            w.restart_at = time.monotonic() + w.delay

    def _restart_due(self) -> None:
        now = time.monotonic()
        for w in self.workers:
            if w.proc is None and 0 < w.restart_at <= now:
                self.spawn(w)

    def _roll(self) -> None:
        if not self.rolling:
            return
        current = self._draining
        if current is not None:
            if current.proc is None or not current.ready:
                if current.proc is not None and time.monotonic() - current.started > \
                        _READY_TIMEOUT:
                    log.warning("worker p%d not serving after %.0f s: going on",
                                current.index, _READY_TIMEOUT)
                else:
                    return
            self.rolling.remove(current.index)
            self._draining = None
            if not self.rolling:
                log.info("rolling restart done", extra={"event": "rolling_restart_done"})
                return
        w = self.workers[self.rolling[0] - 1]
        if w.proc is None:          # dead meanwhile: the ordinary restart brings it back
            self.spawn(w)
            self._draining = w
            return
        log.info("worker p%d: draining for the rolling restart", w.index)
        self._close_socks(w)        # new connections go to the others from now on
        self._draining = w
        w.ready = False
        w.proc.send_signal(signal.SIGTERM)

    def _watch_redis(self) -> None:
        if self.redis is not None and self.redis.poll() is not None:
            log.error("the private redis-server exited (status %s): stopping",
                      self.redis.returncode)
            self.redis = None
            self.status = 1
            self.stop()

    def _stop_redis(self) -> None:
        if self.redis is not None:
            self.redis.terminate()
            try:
                self.redis.wait(10)
            except subprocess.TimeoutExpired:
                self.redis.kill()
        if self.redis_dir:
            import shutil
            shutil.rmtree(self.redis_dir, ignore_errors=True)


def _die_with_parent() -> None:
    """In the child before exec: SIGINT (a plain stop) when the supervisor dies."""
    try:
        import ctypes
        ctypes.CDLL(None).prctl(1, int(signal.SIGINT))     # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def supervise(config: Config, config_path: str, plan: Plan) -> Any:
    sup = Supervisor(config, config_path, plan)
    sup.prepare()
    return sup.run()
