# tests: tests/integration/test_ctl.py, tests/integration/test_limits.py, tests/integration/test_core_slixmpp.py
"""`xmppd`: start the server from a config file (default conf/xmppd.toml)."""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

from xmppd import logs
from xmppd.config import Config, ConfigError, load

log = logging.getLogger("xmppd")


def setup_logging(config: Config) -> None:
    s = config.server
    logs.configure(s.log_level, s.log_file, s.log_format, s.log_ip)   # xmppd/logs.py


def sqlite_dir(url: str) -> None:
    """Create the directory of a file SQLite database, so a fresh checkout just runs."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and len(url) > len(prefix):
        Path(url[len(prefix):]).parent.mkdir(parents=True, exist_ok=True)


def _malloc_trim() -> Any:
    """glibc's malloc_trim(0) as a no-argument callable, or None where there is none."""
    import ctypes
    import ctypes.util
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        fn = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_size_t]
    return lambda: fn(0)


def _housekeeping(server: Any, trim: Any) -> None:
    """Memory per idle connection (docs/PERFORMANCE.md): free the XML parser state of streams
    silent for a while (rebuilt on their next byte) — client, server-to-server and component
    streams — then hand freed heap back to the OS: glibc keeps it mapped after TLS handshakes
    and bursts."""
    now = server.clock.now()
    streams = [getattr(conn, "stream", None) for conn in list(server.connections)]
    if server.s2s is not None:
        streams += server.s2s.streams()
    for stream in streams:
        if stream is not None and now - stream.last_activity >= _IDLE_COMPACT_AFTER:
            stream.parser.compact()
    if trim is not None:
        trim()


_IDLE_COMPACT_AFTER = float(os.environ.get("XMPPD_IDLE_COMPACT_AFTER", "20"))


def announce_when(starting: list[Any], ready: list[tuple[str, int]]) -> Any:
    """Port files say "serving": written (port numbers) once every listener and the admin
    socket are up and the modules have read what they need at start (`starting`,
    ModuleContext.before_serving). What a reload adds later is not waited for."""
    from twisted.internet import defer

    def serving(_: Any) -> None:
        for port_file, bound in ready:
            try:
                Path(port_file).write_text(f"{bound}\n")
            except OSError as e:
                log.error("port file not written: %s", e)
    waited, starting[:] = list(starting), []
    return defer.DeferredList(waited, consumeErrors=True).addCallback(serving)


def multiproc_worker(r: Any, server: Any, spec: Any) -> None:
    """A worker tells the supervisor once it serves (its cluster node joined). SIGINT (the
    supervisor stopping them all, or Ctrl-C) stops it without the drain SIGTERM does: there
    is no other process left to move to."""
    import signal

    # Ready once this node sees every worker live: a node learns of one that joined after it
    # only at its next heartbeat, and until then it would not tell it of its writes (users'
    # data kept in memory, ClusterService.changed) — so the port files wait for that too.
    waited = [0]

    def ready(_: Any = None) -> None:
        if len(server.cluster.live()) < spec.count and waited[0] < 100:
            waited[0] += 1
            r.callLater(0.1, ready)
            return
        os.write(spec.ready_fd, b"1")
        os.close(spec.ready_fd)
    server.cluster.ready.addCallback(ready)

    def on_int(signum: int, frame: Any) -> None:
        server.cluster.drain = False
        r.callFromThread(r.stop)
    r.callWhenRunning(signal.signal, signal.SIGINT, on_int)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="xmppd", description="xmppd XMPP server")
    parser.add_argument("--config", "-c", default=None,
                        help="config file (default: $XMPPD_CONFIG, ./conf/xmppd.toml, "
                             "/etc/xmppd/xmppd.toml, the packaged default; xmppd/paths.py)")
    parser.add_argument("--processes", default=None, metavar="N|auto",
                        help="override server.processes: worker processes, 'auto' = one "
                             "per core, 1 = one process (docs/CLUSTER.md \"Every core\")")
    args = parser.parse_args(argv)
    if args.config is None:
        from xmppd.paths import default_config
        args.config = default_config()
    try:
        config = load(args.config)
    except ConfigError as e:
        print(f"xmppd: {e}", file=sys.stderr)
        return 2
    from xmppd import multiproc
    if args.processes is not None:
        try:
            config = multiproc.with_processes(config, args.processes)
        except ConfigError as e:
            print(f"xmppd: {e}", file=sys.stderr)
            return 2
    spec = None
    if os.environ.get(multiproc.ENV):                 # a worker of the supervisor
        spec = multiproc.WorkerSpec.loads(os.environ[multiproc.ENV])
        config = multiproc.worker_config(config, spec)
    setup_logging(config)
    if spec is not None:
        multiproc.tag_logs(f"p{spec.index}")
    if spec is None and config.server.processes != 1:
        plan = multiproc.plan(config)
        if plan.processes > 1:
            from xmppd.supervisor import supervise
            try:
                return int(supervise(config, args.config, plan))
            except (ConfigError, ValueError, OSError) as e:
                print(f"xmppd: {e}", file=sys.stderr)
                return 2
        log.warning("server.processes: serving with one process: %s", plan.reason,
                    extra={"event": "one_process"})
    # Every connection is a file descriptor: take all the kernel allows us (xmppd/limits.py
    # keeps strangers below it).
    from xmppd.limits import raise_fd_limit
    soft, hard = raise_fd_limit()
    log.info("file descriptor limit %d (hard %d)", soft, hard)

    from twisted.internet import reactor

    from storage.cache import open_cache
    from storage.db import Database
    from xmppd.listeners.c2s import C2SFactory
    from xmppd.listeners.http import HttpListener, TlsSiteFactory
    from xmppd.server import Server
    from xmppd.tls import TLSConfigError, ensure_certificate, server_context, stream_context

    r: Any = reactor
    try:
        sqlite_dir(config.storage.url)
        db = Database.open(config.storage.url, r, max_threads=config.storage.threads)
        db.migrate()
        cache = open_cache(config.cache.url, r, clock=r.seconds,
                           max_entries=config.cache.max_entries, prefix=config.cache.prefix)
        server = Server(config, reactor=r, db=db, cache=cache)
        server.load_modules()
        from xmppd.runtime import Runtime
        runtime = Runtime(server, r)            # ports, admin socket, signals, shutdown
        if spec is not None:
            runtime.adapt = lambda c: multiproc.worker_config(c, spec)
        tls_ctx = None
        ready: list[tuple[str, int]] = []       # port files, written once all is up
        cert, key = Path(config.tls.cert), Path(config.tls.key)
        if any((lst.type in ("c2s", "s2s") and lst.starttls != "off")
               or lst.type in ("c2s_tls", "s2s_tls") or (lst.type == "http" and lst.tls)
               for lst in config.listeners):
            if ensure_certificate(cert, key, list(config.server.hosts),
                                  generate=config.tls.generate_self_signed):
                log.warning("generated a self-signed certificate at %s (development only)", cert)
            tls_ctx = stream_context(cert, key)
        from xmppd.listeners import federation
        s2s = federation.start(server, r, cert, key)
        for k, lst in enumerate(config.listeners):
            if multiproc.skipped(spec, k):
                continue
            rk = multiproc.reactor_for(r, spec, k)     # a worker adopts the shared socket
            if lst.type in federation.TYPES:
                assert s2s is not None
                port = federation.listen(rk, s2s, lst)
            elif lst.type == "http":
                web = HttpListener(server, lst)
                if lst.tls:
                    site_tls = TlsSiteFactory(server_context(cert, key, alpn=[b"http/1.1"]),
                                              False, web.site)
                    port = rk.listenTCP(lst.port, site_tls, interface=lst.bind)
                else:
                    port = rk.listenTCP(lst.port, web.site, interface=lst.bind)
                web.bound_port = port.getHost().port
                log.info("http listening on %s:%d (tls %s): WebSocket %s, BOSH %s", lst.bind,
                         web.bound_port, "on" if lst.tls else "off", lst.websocket_path,
                         lst.bosh_path)
            elif lst.type == "metrics":
                from xmppd.listeners import metrics
                port = metrics.listen(r, server, lst)
                log.info("metrics on http://%s:%d/metrics", lst.bind, port.getHost().port)
            elif lst.type == "c2s_tls":
                # XEP-0368 §3: ALPN "xmpp-client" on direct TLS.
                direct = stream_context(cert, key, alpn=["xmpp-client"])
                port = rk.listenTCP(lst.port, C2SFactory(server, lst, direct),
                                    interface=lst.bind)
                log.info("c2s listening on %s:%d (direct TLS)", lst.bind, port.getHost().port)
            else:
                port = rk.listenTCP(lst.port, C2SFactory(server, lst, tls_ctx),
                                    interface=lst.bind)
                log.info("c2s listening on %s:%d (starttls %s)", lst.bind,
                         port.getHost().port, lst.starttls)
            runtime.listening(lst, port)
            if lst.port_file:
                ready.append((lst.port_file, port.getHost().port))
        runtime.start_control()
    except (ConfigError, TLSConfigError, ValueError, OSError) as e:
        print(f"xmppd: {e}", file=sys.stderr)
        return 2
    if config.server.pid_file:
        Path(config.server.pid_file).write_text(f"{os.getpid()}\n")

    from twisted.internet import defer, task

    announce_when(server.starting, ready)
    housekeeping = task.LoopingCall(_housekeeping, server, _malloc_trim())
    housekeeping.start(float(os.environ.get("XMPPD_HOUSEKEEPING_INTERVAL", "30")), now=False)
    runtime.install_signals()
    if spec is not None:
        multiproc_worker(r, server, spec)
    r.addSystemEventTrigger("before", "shutdown",
                            lambda: defer.Deferred.fromCoroutine(runtime.shutdown()))
    r.addSystemEventTrigger("after", "shutdown", db.close)
    log.info("xmppd serving %s", ", ".join(config.server.hosts))
    from xmppd import gcpolicy
    r.callWhenRunning(gcpolicy.settle)      # start-up's heap out of the collector's way
    r.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
