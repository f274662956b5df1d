# tests: tests/core/test_s2s_config.py
"""Config for federation and components: the `[s2s]` table and `[[components]]` entries
(README "Config reference", docs/FEDERATION.md). Built on xmppd/config.py's helpers, so a bad
or unknown key stops start-up with a message naming it.

- `[s2s]`: `require_valid_certificates` (no Server Dialback fallback), `ca_file` (extra CAs
  beside the system store), `allow` / `deny` (domains; an entry also covers its subdomains),
  `routes` (domain = "host:port", instead of DNS), `connect_timeout` (how long stanzas wait
  for a stream before they bounce), `idle_timeout` (silent streams are closed), `max_queue`
  (stanzas held per remote domain while its stream is being set up).
- `[[components]]`: `domain` and `secret` (XEP-0114).
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field

from xmppd.config import ConfigError, build, duration, number

_TARGET = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[^\s:\[\]/]+)(?::([0-9]{1,5}))?")


@dataclass(frozen=True, slots=True)
class S2SSection:
    require_valid_certificates: bool = False   # no Server Dialback (XEP-0220) fallback
    ca_file: str = ""             # extra CAs (PEM) trusted beside the system store
    allow: tuple[str, ...] = ()   # federate only with these domains (and their subdomains)
    deny: tuple[str, ...] = ()    # never with these (and their subdomains)
    connect_timeout: float = duration(default="30 s", minimum=1)   # queued -> bounced
    idle_timeout: float | None = duration(default="10 min", minimum=1, allow_off=True)
    max_queue: int = number(default=1000, minimum=1)   # stanzas held per remote domain
    # domain -> (host, port): static routes instead of DNS (private networks, tests)
    routes: dict[str, tuple[str, int]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ComponentConfig:
    domain: str                   # the component's own domain (XEP-0114 stream 'to')
    secret: str                   # shared secret of the handshake


def domain_name(value: str, where: str) -> str:
    """`value` if it is a domain in canonical form (as hosts are checked), else ConfigError."""
    from stanzas.jid import JID, JIDError
    try:
        if JID.parse(value) != JID.of(None, value) or str(JID.of(None, value)) != value:
            raise JIDError("not in canonical form")
    except JIDError as e:
        raise ConfigError(f"{where}: {value!r} is not a valid domain ({e})") from None
    return value


def parse_s2s(table: object) -> S2SSection:
    if not isinstance(table, dict):
        raise ConfigError(f"s2s: expected a table, got {table!r}")
    section = build(S2SSection, {k: v for k, v in table.items() if k != "routes"}, "s2s")
    raw_routes = table.get("routes", {})
    if not isinstance(raw_routes, dict):
        raise ConfigError('s2s.routes: expected a table of domain = "host:port"')
    routes: dict[str, tuple[str, int]] = {}
    for domain, target in raw_routes.items():
        where = f"s2s.routes.{domain}"
        domain_name(domain, where)
        m = _TARGET.fullmatch(target) if isinstance(target, str) else None
        if m is None or (m.group(2) is not None and not 0 < int(m.group(2)) < 65536):
            raise ConfigError(f'{where}: expected "host:port" such as '
                              f'"xmpp.example.net:5269", got {target!r}')
        routes[domain] = (m.group(1).strip("[]"), int(m.group(2) or 5269))
    for key in ("allow", "deny"):
        for i, d in enumerate(getattr(section, key)):
            domain_name(d, f"s2s.{key}[{i}]")
    return dataclasses.replace(section, routes=routes)


def parse_components(raw: object, hosts: tuple[str, ...]) -> tuple[ComponentConfig, ...]:
    if not isinstance(raw, list):
        raise ConfigError("components: expected an array of tables ([[components]])")
    out: list[ComponentConfig] = []
    for i, table in enumerate(raw):
        where = f"components[{i}]"
        comp = build(ComponentConfig, table, where)
        domain_name(comp.domain, f"{where}.domain")
        if comp.domain in hosts or any(c.domain == comp.domain for c in out):
            raise ConfigError(f"{where}.domain: {comp.domain} is already served here")
        if not comp.secret:
            raise ConfigError(f"{where}.secret: must not be empty")
        out.append(comp)
    return tuple(out)


def domain_listed(domain: str, entries: tuple[str, ...]) -> bool:
    """Whether `domain` is one of `entries` or a subdomain of one."""
    return any(domain == e or domain.endswith("." + e) for e in entries)


def federation_allowed(section: S2SSection, domain: str) -> bool:
    """`s2s.deny` wins; a non-empty `s2s.allow` admits only what it lists."""
    if domain_listed(domain, section.deny):
        return False
    return not section.allow or domain_listed(domain, section.allow)
