# tests: tests/core/test_reload.py, tests/integration/test_live_control.py
"""Reloading a running server (SIGHUP, `xmppctl reload`) without dropping a connection.

- Read the config file again; a file that does not load changes nothing (the answer says why).
- Applied at once: the `[server]` log keys (the log file is reopened in any case, for
  logrotate), `server.admins`, `server.shutdown_timeout`, and the TLS certificate and key —
  reloaded from their (possibly new) paths into every listener's context, so new handshakes
  use the new certificate while established streams keep theirs.
- Everything else needs a restart and is named in the answer: virtual hosts, listeners,
  storage, cache, limits, auth, module options, the admin socket, the pid file.
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from xmppd import logs
from xmppd.config import Config, ConfigError, load
from xmppd.tls import TLSConfigError, reload_certificates

if TYPE_CHECKING:
    from xmppd.server import Server

log = logging.getLogger(__name__)

_LIVE_SERVER_KEYS = ("log_level", "log_file", "log_format", "log_ip", "admins",
                     "shutdown_timeout")
_RESTART_SECTIONS = ("storage", "cache", "limits", "auth")


@dataclass
class Outcome:
    ok: bool = True
    applied: list[str] = field(default_factory=list)
    restart_needed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def text(self) -> str:
        lines = []
        if self.applied:
            lines.append("reloaded: " + ", ".join(self.applied))
        if self.restart_needed:
            lines.append("changed but not reloaded (restart to apply): "
                         + ", ".join(self.restart_needed))
        lines += [f"error: {e}" for e in self.errors]
        return "\n".join(lines) or "nothing to reload"


def reload(server: Server, *, tls_in_use: bool,
           adapt: Callable[[Config], Config] | None = None) -> Outcome:
    """Reload `server`'s config file and certificates (module docstring). `adapt`: what the
    process makes of the file's config (a worker of several, xmppd/multiproc.py), so only
    real changes are compared."""
    out = Outcome()
    old = server.config
    try:
        new = load(old.path)
        if adapt is not None:
            new = adapt(new)
    except ConfigError as e:
        out.ok = False
        out.errors.append(str(e))
        return out
    s_old, s_new = old.server, new.server
    changed = {k for k in _LIVE_SERVER_KEYS if getattr(s_old, k) != getattr(s_new, k)}
    for k in ("hosts", "pid_file", "admin_socket", "admin_socket_mode"):
        if getattr(s_old, k) != getattr(s_new, k):
            out.restart_needed.append(f"server.{k}")
    for name in _RESTART_SECTIONS:
        if getattr(old, name) != getattr(new, name):
            out.restart_needed.append(name)
    if old.listeners != new.listeners:
        out.restart_needed.append("listeners")
    for name in sorted(set(old.modules) | set(new.modules)):
        if old.modules.get(name) != new.modules.get(name):
            out.restart_needed.append(f"modules.{name}")
    tls = new.tls
    if tls_in_use:
        try:
            what = reload_certificates(Path(tls.cert), Path(tls.key))
            out.applied.append(f"TLS certificate ({what})")
        except TLSConfigError as e:
            out.ok = False
            out.errors.append(str(e))
            tls = old.tls
    live = {k: getattr(s_new, k) for k in _LIVE_SERVER_KEYS}
    server.config = dataclasses.replace(old, server=dataclasses.replace(s_old, **live), tls=tls)
    if changed & {"log_level", "log_file", "log_format", "log_ip"}:
        logs.configure(s_new.log_level, s_new.log_file, s_new.log_format, s_new.log_ip)
    elif logs.reopen():
        out.applied.append("log file reopened")
    out.applied += [f"server.{k}" for k in sorted(changed)]
    log.info("reload: %s", out.text().replace("\n", "; "), extra={"event": "reload"})
    return out
