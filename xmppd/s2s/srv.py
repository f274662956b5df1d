# tests: tests/core/test_s2s_srv.py
"""Where a domain's XMPP server is (RFC 6120 §3.2, RFC 2782, XEP-0368 §3), sans-IO: the
connection targets in the order to try them, from the answers to the SRV lookups.

- `_xmpp-server._tcp` (STARTTLS) and `_xmpps-server._tcp` (direct TLS) records are mixed into
  one set and ordered together (XEP-0368 §3): lowest priority first; within a priority, a
  weighted random order (RFC 2782: weight-0 records first in the running sum, so they are
  rarely picked first).
- A single record with target "." means "decidedly not available" (RFC 2782): such a service
  contributes nothing. With no usable record and no "." answer, the fallback is the domain
  itself on port 5269 (RFC 6120 §3.2.2). A "." answer for `_xmpp-server` with nothing else
  means the domain has no XMPP service; a "." for `_xmpps-server` alone forbids the fallback
  too (XEP-0368 §3: the SRV protocol is in use).
"""
from __future__ import annotations

import random
from dataclasses import dataclass

DEFAULT_PORT = 5269


@dataclass(frozen=True, slots=True)
class Target:
    host: str
    port: int
    direct_tls: bool = False

    def __str__(self) -> str:
        return f"{self.host}:{self.port}{' (direct TLS)' if self.direct_tls else ''}"


@dataclass(frozen=True, slots=True)
class SrvRecord:
    priority: int
    weight: int
    port: int
    target: str
    direct_tls: bool = False


def targets(domain: str, starttls: list[SrvRecord] | None, direct: list[SrvRecord] | None,
            rng: random.Random | None = None) -> list[Target]:
    """Targets to try, in order. `starttls`/`direct`: the answers of the two lookups, None
    when the lookup found nothing (NXDOMAIN, no records, or it failed)."""
    rng = rng or random.Random()
    usable: list[SrvRecord] = []
    refused = False
    for answer in (starttls, direct):
        if not answer:
            continue
        if len(answer) == 1 and answer[0].target.rstrip(".") == "":
            refused = True      # "decidedly not available" for this service
            continue
        usable += [r for r in answer if r.target.rstrip(".")]
    if usable:
        return [Target(r.target.rstrip("."), r.port, r.direct_tls) for r in order(usable, rng)]
    if refused:
        return []
    return [Target(domain, DEFAULT_PORT)]


def order(records: list[SrvRecord], rng: random.Random) -> list[SrvRecord]:
    """RFC 2782 ordering: by priority, then weighted random within each priority."""
    out: list[SrvRecord] = []
    for priority in sorted({r.priority for r in records}):
        group = [r for r in records if r.priority == priority]
        group.sort(key=lambda r: r.weight != 0)     # weight 0 first (RFC 2782)
        while group:
            total = sum(r.weight for r in group)
            pick = rng.randint(0, total)
            running = 0
            for i, r in enumerate(group):
                running += r.weight
                if running >= pick:
                    out.append(group.pop(i))
                    break
    return out
