# tests: tests/core/test_config.py
"""Configuration: `conf/xmppd.toml` read with tomllib into typed, validated, frozen sections.

- Unknown keys and bad values stop start-up with `ConfigError` naming the key and what was
  expected (STYLE §1.7); `xmppctl check-config` prints the same message.
- Durations are numbers of seconds or strings such as "60 s", "5 min", "2 h", "7 d", or "off"
  where allowed; sizes are numbers of bytes or "256 KiB", "10 MiB".
- Module options are frozen dataclasses declared by each module; `build(Options, table, where)`
  validates a `[modules.<name>]` table into one, using each field's type and metadata.
"""
from __future__ import annotations

import dataclasses
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from xmppd.cluster.options import ClusterSection
    from xmppd.s2s.options import ComponentConfig, S2SSection

from xmppd.schema import ConfigError as ConfigError
from xmppd.schema import build as build
from xmppd.schema import duration as duration
from xmppd.schema import networks as networks
from xmppd.schema import number as number
from xmppd.schema import processes as processes
from xmppd.schema import parse_duration as parse_duration
from xmppd.schema import parse_size as parse_size
from xmppd.schema import rate as rate
from xmppd.schema import size as size


@dataclass(frozen=True, slots=True)
class ServerSection:
    hosts: tuple[str, ...] = ("localhost",)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_file: str = ""            # "" = standard error
    log_format: Literal["text", "json"] = "text"        # json: one object per line
    log_ip: Literal["plain", "hashed", "off"] = "plain"  # client addresses in log records
    pid_file: str = ""
    admins: tuple[str, ...] = ()  # bare JIDs allowed XEP-0133 service administration
    admin_socket: str = ""        # UNIX socket for xmppctl's live commands; "" = none
    admin_socket_mode: int = number(default=0o600, minimum=0, maximum=0o777)
    shutdown_timeout: float = duration(default="15 s", minimum=1)   # SIGTERM to exit, at most
    # "auto" (0 here: one per core) or N worker processes sharing the listening sockets
    # (xmppd/supervisor.py, docs/CLUSTER.md "Every core"); 1 = one process, as always
    processes: int = processes(default=1)


@dataclass(frozen=True, slots=True)
class StorageSection:
    url: str = "sqlite:///var/xmppd.sqlite"
    threads: int = number(default=4, minimum=1, maximum=64)


@dataclass(frozen=True, slots=True)
class CacheSection:
    url: str = "memory"           # "memory" (in-process) or "redis://host:port/db"
    max_entries: int = number(default=100000, minimum=100)
    prefix: str = "xmppd:"        # Redis key prefix: deployments (and tests) sharing one Redis


@dataclass(frozen=True, slots=True)
class TlsSection:
    cert: str = "var/tls/cert.pem"
    key: str = "var/tls/key.pem"
    generate_self_signed: bool = True   # dev convenience: make a cert on first start if missing


@dataclass(frozen=True, slots=True)
class ListenerConfig:
    # default by type: c2s 5222, c2s_tls 5223 (XEP-0368), http 5280, or 5443 with tls = true
    port: int = number(default=5222, minimum=0, maximum=65535)
    # "c2s": STARTTLS (RFC 6120); "c2s_tls": TLS at once (XEP-0368);
    # "http": WebSocket (RFC 7395), BOSH (XEP-0206), host-meta (XEP-0156) and HTTP upload;
    # "s2s": other servers, STARTTLS (RFC 6120); "s2s_tls": other servers, TLS at once
    # (XEP-0368); "component": external components (XEP-0114);
    # "metrics": Prometheus /metrics and the dashboard page (xmppd/listeners/metrics.py)
    type: Literal["c2s", "c2s_tls", "http", "s2s", "s2s_tls", "component", "metrics"] = "c2s"
    bind: str = "127.0.0.1"
    starttls: Literal["required", "optional", "off"] = "required"     # c2s and s2s only
    port_file: str = ""           # write the bound port here (tests bind port 0)
    # -- http only --
    tls: bool = False             # HTTPS on this port
    behind_tls_proxy: bool = False  # plain port reached only through a TLS proxy: count as TLS
    cors_origins: tuple[str, ...] = ()  # browser origins allowed ("*": any); none = same-origin
    public_url: str = ""          # base URL clients use ("https://chat.example.org"); "" = Host
    websocket_path: str = "/xmpp-websocket"
    bosh_path: str = "/http-bind"
    upload_path: str = "/upload"


_DEFAULT_PORTS = {"c2s": 5222, "c2s_tls": 5223, "http": 5280, "s2s": 5269, "s2s_tls": 5270,
                  "component": 5347, "metrics": 5281}
_HTTP_ONLY = ("tls", "behind_tls_proxy", "cors_origins", "public_url", "websocket_path",
              "bosh_path", "upload_path")


def _listener(table: object, where: str) -> ListenerConfig:
    lst = build(ListenerConfig, table, where)
    assert isinstance(table, dict)
    if lst.type != "http":
        for key in _HTTP_ONLY:
            if key in table:
                raise ConfigError(f"{where}.{key}: only for type = \"http\" listeners")
    if lst.type not in ("c2s", "s2s") and "starttls" in table:
        raise ConfigError(f"{where}.starttls: only for type = \"c2s\" and \"s2s\" listeners "
                          "(c2s_tls, s2s_tls and http carry TLS themselves; components have none)")
    if lst.type == "http":
        for key in ("websocket_path", "bosh_path", "upload_path"):
            path = getattr(lst, key)
            if not re.fullmatch(r"(/[A-Za-z0-9._~-]+)+", path):
                raise ConfigError(f"{where}.{key}: expected a path such as \"/http-bind\", "
                                  f"got {path!r}")
        if lst.public_url and not re.fullmatch(r"https?://[^/\s?#]+(/[^\s?#]*)?",
                                               lst.public_url):
            raise ConfigError(f"{where}.public_url: expected an http(s):// URL, "
                              f"got {lst.public_url!r}")
        for i, origin in enumerate(lst.cors_origins):
            if origin != "*" and not re.fullmatch(r"https?://[^/\s?#]+", origin):
                raise ConfigError(f"{where}.cors_origins[{i}]: expected \"*\" or an origin "
                                  f"such as \"https://chat.example.org\", got {origin!r}")
    if "port" not in table:
        port = 5443 if lst.type == "http" and lst.tls else _DEFAULT_PORTS[lst.type]
        lst = dataclasses.replace(lst, port=port)
    return lst


@dataclass(frozen=True, slots=True)
class LimitsSection:
    max_stanza_size: int = size(default="256 KiB", minimum=1024)
    max_depth: int = number(default=64, minimum=4, maximum=1024)
    preauth_stanza_size: int = size(default="8 KiB", minimum=1024)
    preauth_elements: int = number(default=32, minimum=4)
    auth_timeout: float = duration(default="60 s", minimum=1)   # stream open to bound resource
    max_sessions_per_user: int = number(default=16, minimum=1)
    # bytes waiting for a client that does not read; past it the link counts as dead
    max_output_buffer: int = size(default="1 MiB", minimum=64 * 1024)
    # stanzas from one session accepted but not yet stored or delivered (the archive, offline
    # storage); past it the session's reading pauses until half are handled
    max_unhandled: int = number(default=100, minimum=2)
    # Connections (xmppd/limits.py): sockets of every listener, and BOSH sessions.
    max_connections_per_ip: int = number(default=256, minimum=1)
    max_unauthenticated_per_ip: int = number(default=32, minimum=1)
    max_unauthenticated: int = number(default=4096, minimum=1)   # lowered below the fd limit
    exempt_networks: tuple[Any, ...] = networks(default=())      # e.g. a reverse proxy
    # HTTP: total time for a request's headers; for its body, plus 1 s per min-rate bytes
    http_header_timeout: float = duration(default="20 s", minimum=1)
    http_body_timeout: float = duration(default="30 s", minimum=1)
    http_body_min_rate: float | None = rate(default="4 KiB/s")
    # Traffic shaping of what a client sends (paused reads, never dropped data)
    preauth_rate: float | None = rate(default="8 KiB/s")
    preauth_burst: int = size(default="32 KiB", minimum=1024)
    c2s_rate: float | None = rate(default="256 KiB/s")
    c2s_burst: int = size(default="1 MiB", minimum=1024)
    stanza_rate: float | None = rate(default="100/s")
    stanza_burst: int = number(default=1000, minimum=1)
    # Failed authentication (xmppd/throttle.py), per IP address and per account
    auth_window: float = duration(default="10 min", minimum=1)
    auth_delay_after: int = number(default=3, minimum=1)
    auth_max_delay: float = duration(default="5 s", minimum=0)
    auth_max_failures_per_ip: int = number(default=20, minimum=1)
    auth_max_failures_per_account: int = number(default=50, minimum=1)
    auth_ban_time: float = duration(default="10 min", minimum=1)


@dataclass(frozen=True, slots=True)
class AuthSection:
    # -PLUS: only where the connection has TLS channel bindings (XEP-0440)
    mechanisms: tuple[str, ...] = ("SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256",
                                   "SCRAM-SHA-1", "PLAIN")
    scram_iterations: int = number(default=4096, minimum=4096, maximum=1000000)
    sasl2: bool = True            # XEP-0388 SASL2 with XEP-0386 Bind 2 (not over BOSH)
    fast: bool = True             # XEP-0484 FAST tokens (with SASL2, encrypted streams only)
    fast_token_lifetime: float = duration(default="21 d", minimum=60)


_MECHANISMS = {"SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256", "SCRAM-SHA-1",
               "PLAIN"}


@dataclass(frozen=True, slots=True)
class Config:
    path: Path
    server: ServerSection
    storage: StorageSection
    cache: CacheSection
    tls: TlsSection
    listeners: tuple[ListenerConfig, ...]
    limits: LimitsSection
    auth: AuthSection
    modules: dict[str, dict[str, Any]]   # raw tables; each module validates its own
    s2s: S2SSection = field(default_factory=lambda: _s2s_options().S2SSection())
    components: tuple[ComponentConfig, ...] = ()
    cluster: ClusterSection | None = None     # [cluster]: one node of several (docs/CLUSTER.md)


_SECTIONS: dict[str, type] = {"server": ServerSection, "storage": StorageSection,
                              "cache": CacheSection, "tls": TlsSection,
                              "limits": LimitsSection, "auth": AuthSection}


def load(path: str | Path) -> Config:
    """Read and validate a config file; raises ConfigError with a message naming the problem."""
    p = Path(path)
    try:
        with p.open("rb") as f:
            raw = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such config file") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p}: not valid TOML: {e}") from None
    return from_dict(raw, p)


def from_dict(raw: dict[str, Any], path: Path = Path("<config>")) -> Config:
    known = set(_SECTIONS) | {"listeners", "modules", "s2s", "components", "cluster"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{path}: unknown section {unknown[0]!r} (known: "
                          f"{', '.join(sorted(known))})")
    sections: dict[str, Any] = {name: build(cls, raw.get(name, {}), name)
                                for name, cls in _SECTIONS.items()}
    listeners_raw = raw.get("listeners", [{}])
    if not isinstance(listeners_raw, list):
        raise ConfigError("listeners: expected an array of tables ([[listeners]])")
    listeners = tuple(_listener(t, f"listeners[{i}]") for i, t in enumerate(listeners_raw))
    modules = raw.get("modules", {})
    if not isinstance(modules, dict) or not all(isinstance(v, dict) for v in modules.values()):
        raise ConfigError("modules: expected one table per module ([modules.<name>])")
    server: ServerSection = sections["server"]
    if not server.hosts:
        raise ConfigError("server.hosts: at least one virtual host is needed")
    from stanzas.jid import JID, JIDError
    for i, h in enumerate(server.hosts):
        try:
            if JID.parse(h) != JID.of(None, h) or str(JID.of(None, h)) != h:
                raise JIDError("not in canonical form")
        except JIDError as e:
            raise ConfigError(f"server.hosts[{i}]: {h!r} is not a valid domain ({e})") from None
    for i, a in enumerate(server.admins):
        try:
            admin = JID.parse(a)
        except JIDError as e:
            raise ConfigError(f"server.admins[{i}]: {a!r} is not a JID ({e})") from None
        if admin.local is None or admin.resource is not None:
            raise ConfigError(f"server.admins[{i}]: expected a bare JID such as "
                              f"\"admin@{server.hosts[0]}\", got {a!r}")
    auth: AuthSection = sections["auth"]
    if not auth.mechanisms:
        raise ConfigError("auth.mechanisms: at least one SASL mechanism is needed")
    for i, m in enumerate(auth.mechanisms):
        if m not in _MECHANISMS:
            raise ConfigError(f"auth.mechanisms[{i}]: unknown mechanism {m!r} "
                              f"(known: {', '.join(sorted(_MECHANISMS))})")
    options = _s2s_options()
    s2s = options.parse_s2s(raw.get("s2s", {}))
    components = options.parse_components(raw.get("components", []), server.hosts)
    cluster = None
    if "cluster" in raw:
        from xmppd.cluster.options import parse_cluster
        cluster = parse_cluster(raw["cluster"], sections["storage"].url, sections["cache"].url)
    return Config(path=path, listeners=listeners, modules=dict(modules), s2s=s2s,
                  components=components, cluster=cluster, **sections)


def _s2s_options() -> Any:
    """xmppd/s2s/options.py, which builds on this module's helpers (imported late)."""
    from xmppd.s2s import options
    return options
