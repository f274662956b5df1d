# tests: tests/core/test_limits.py, tests/integration/test_limits.py
"""What one stranger (or one user) may take of the process: connections and read rates.

- `ConnectionLimits` (one per server, so across every listener and virtual host): a new
  connection — a socket of a c2s, c2s_tls or http listener, or a BOSH session — gets a `Slot`,
  or None and is closed at once, when its address already holds `max_connections_per_ip`
  connections or `max_unauthenticated_per_ip` unauthenticated ones, when
  `max_unauthenticated` connections are unauthenticated in all, or when the process is close
  to its file descriptor limit. A slot stops counting as unauthenticated when its stream
  authenticates, so logged-in users are never refused for what strangers hold.
  Addresses in `exempt_networks` (a reverse proxy, a load balancer) are not counted per IP.
- `raise_fd_limit()`: the soft RLIMIT_NOFILE up to the hard one, at start (xmppd/main.py).
  `max_unauthenticated` is lowered to half of what the soft limit leaves after a reserve for
  the database, logs and listeners, so strangers can never take the last descriptors.
- `ReadShaper`: traffic shaping of what one client sends, as ejabberd's shapers do: a token
  bucket of bytes (`preauth_rate`/`preauth_burst` until authenticated, then
  `c2s_rate`/`c2s_burst`) and one of stanzas (`stanza_rate`/`stanza_burst`). What was read is
  always processed; a connection in debt has its reading paused until the debt is paid, so
  TCP's flow control slows the sender and no data is ever dropped.
- `ReadGate`: whether one connection's socket is read. Paused while anyone holds it: the
  shaper, or the session with `max_unhandled` stanzas accepted but not yet stored or
  delivered (xmppd/listeners/session.py) — so a client sending faster than storage writes
  (the archive, offline storage) is slowed by TCP instead of filling memory or being refused.
Not here: failed logins and sign-ups (xmppd/throttle.py); the HTTP deadlines
(xmppd/listeners/http.py); stanza size and depth (xmppd/xmlstream.py).
"""
from __future__ import annotations

import ipaddress
import logging
import weakref
from typing import TYPE_CHECKING, Any, Callable, Protocol, runtime_checkable

from twisted.internet.interfaces import IDelayedCall

from xmppd.config import LimitsSection

if TYPE_CHECKING:
    from xmppd.server import Server

log = logging.getLogger(__name__)
FD_RESERVE = 64             # descriptors kept for the database, log files, listeners
_WARN_EVERY = 60.0          # seconds between two "refused" warnings of one kind


class Slot:
    """One counted connection; `close()` it exactly when the connection is gone."""
    __slots__ = ("_owner", "ip", "authenticated", "closed")

    def __init__(self, owner: ConnectionLimits, ip: str | None) -> None:
        self._owner = owner
        self.ip = ip
        self.authenticated = False
        self.closed = False

    def authenticate(self) -> None:
        """The connection's stream authenticated: it no longer counts as a stranger's."""
        if self.authenticated or self.closed:
            return
        self.authenticated = True
        self._owner._authenticated(self)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._owner._closed(self)


class ConnectionLimits:
    """Counts of open connections by address, and the refusals (see the module docstring)."""

    def __init__(self, *, per_ip: int, unauthenticated_per_ip: int, max_unauthenticated: int,
                 max_total: int, exempt: tuple[Any, ...] = (),
                 now: Callable[[], float] = lambda: 0.0) -> None:
        self.per_ip = per_ip
        self.unauthenticated_per_ip = unauthenticated_per_ip
        self.max_unauthenticated = max_unauthenticated
        self.max_total = max_total
        self.exempt = exempt
        self.total = 0
        self.unauthenticated = 0
        self.refused: dict[str, int] = {}           # reason -> count, for logs and tests
        self._by_ip: dict[str, list[int]] = {}      # ip -> [open, unauthenticated]
        self._now = now
        self._warned: dict[str, float] = {}

    def open(self, ip: str | None) -> Slot | None:
        """A slot for a new connection from `ip`, or None: refuse it (close it now)."""
        reason = None
        counts = self._by_ip.get(ip) if ip is not None and not self._exempt(ip) else None
        if self.total >= self.max_total:
            reason = "file descriptors"
        elif self.unauthenticated >= self.max_unauthenticated:
            reason = "max_unauthenticated"
        elif counts is not None and counts[0] >= self.per_ip:
            reason = "max_connections_per_ip"
        elif counts is not None and counts[1] >= self.unauthenticated_per_ip:
            reason = "max_unauthenticated_per_ip"
        if reason is not None:
            self._refuse(reason, ip)
            return None
        self.total += 1
        self.unauthenticated += 1
        if ip is not None and not self._exempt(ip):
            if counts is None:
                counts = self._by_ip[ip] = [0, 0]
            counts[0] += 1
            counts[1] += 1
        return Slot(self, ip)

    def connections_from(self, ip: str) -> tuple[int, int]:
        """(open, unauthenticated) connections counted for `ip`."""
        counts = self._by_ip.get(ip, [0, 0])
        return counts[0], counts[1]

    def _exempt(self, ip: str) -> bool:
        if not self.exempt:
            return False
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(addr in net for net in self.exempt)

    def _authenticated(self, slot: Slot) -> None:
        self.unauthenticated -= 1
        counts = self._by_ip.get(slot.ip) if slot.ip is not None else None
        if counts is not None:
            counts[1] -= 1

    def _closed(self, slot: Slot) -> None:
        self.total -= 1
        if not slot.authenticated:
            self.unauthenticated -= 1
        counts = self._by_ip.get(slot.ip) if slot.ip is not None else None
        if counts is not None:
            counts[0] -= 1
            if not slot.authenticated:
                counts[1] -= 1
            if counts[0] <= 0:
                del self._by_ip[slot.ip]  # type: ignore[arg-type]

    def _refuse(self, reason: str, ip: str | None) -> None:
        self.refused[reason] = self.refused.get(reason, 0) + 1
        now = self._now()
        if now - self._warned.get(reason, -_WARN_EVERY) >= _WARN_EVERY:
            self._warned[reason] = now
            log.warning("refusing connections (%s reached; the latest from %s; %d refused so "
                        "far)", reason, ip, self.refused[reason])


def raise_fd_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit; returns (soft, hard) afterwards."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as e:
            log.warning("could not raise the file descriptor limit to %d: %s", hard, e)
    return soft, hard


def fd_soft_limit() -> int:
    import resource
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def connection_limits(cfg: LimitsSection, fd_limit: int,
                      now: Callable[[], float] = lambda: 0.0) -> ConnectionLimits:
    """The limits of `cfg`, with the totals kept below `fd_limit` (see the module docstring)."""
    max_total = max(16, fd_limit - FD_RESERVE)
    max_unauth = min(cfg.max_unauthenticated, max(8, max_total // 2))
    if max_unauth < cfg.max_unauthenticated:
        log.warning("limits.max_unauthenticated lowered from %d to %d (file descriptor limit "
                    "%d)", cfg.max_unauthenticated, max_unauth, fd_limit)
    return ConnectionLimits(per_ip=cfg.max_connections_per_ip,
                            unauthenticated_per_ip=cfg.max_unauthenticated_per_ip,
                            max_unauthenticated=max_unauth, max_total=max_total,
                            exempt=cfg.exempt_networks, now=now)


_limits: weakref.WeakKeyDictionary[Any, ConnectionLimits] = weakref.WeakKeyDictionary()


def limits_of(server: Server) -> ConnectionLimits:
    """The process's connection limits for `server` (made on first use)."""
    found = _limits.get(server)
    if found is None:
        found = _limits[server] = connection_limits(server.config.limits, fd_soft_limit(),
                                                    server.clock.now)
    return found


# -- traffic shaping ---------------------------------------------------------------------------

class TokenBucket:
    """`rate` tokens a second, at most `burst` saved; `take` may go into debt."""
    __slots__ = ("rate", "burst", "tokens", "at")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate, self.burst, self.tokens, self.at = rate, burst, burst, now

    def take(self, amount: float, now: float) -> float:
        """Spend `amount`; seconds until the balance is back to zero (0.0: no debt)."""
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate) - amount
        self.at = now
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate

    def reconfigure(self, rate: float, burst: float, now: float) -> None:
        """New rate and burst; the balance grows by what the burst grew (a debt stays)."""
        tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        tokens = min(burst, tokens + max(0.0, burst - self.burst))
        self.rate, self.burst, self.tokens, self.at = rate, burst, tokens, now


class Pausable(Protocol):
    def pauseProducing(self) -> None: ...

    def resumeProducing(self) -> None: ...


class ReadGate:
    """Reading of one connection: paused while any holder (a bit: `SHAPED`, `UNHANDLED`)
    holds it, resumed once none does. `transport()` returns the connection's transport (a
    Twisted push producer), or None once it is gone."""
    __slots__ = ("_transport", "_holds")
    SHAPED = 1          # the read shaper: the connection is in debt
    UNHANDLED = 2       # the session holds `max_unhandled` stanzas not yet handled

    def __init__(self, transport: Callable[[], Pausable | None]) -> None:
        self._transport = transport
        self._holds = 0

    @property
    def paused(self) -> bool:
        return self._holds != 0

    def hold(self, why: int) -> None:
        if not self._holds:
            transport = self._transport()
            if transport is not None:
                transport.pauseProducing()
        self._holds |= why

    def release(self, why: int) -> None:
        if not self._holds & why:
            return
        self._holds &= ~why
        if not self._holds:
            transport = self._transport()
            if transport is not None:
                transport.resumeProducing()


class ReadShaper:
    """Paces the reads of one connection (see the module docstring) through its gate."""

    def __init__(self, server: Server, gate: ReadGate) -> None:
        cfg = server.config.limits
        self._cfg = cfg
        self._clock = server.clock
        self._gate = gate
        now = self._clock.now()
        self._bytes = TokenBucket(cfg.preauth_rate, cfg.preauth_burst, now) \
            if cfg.preauth_rate is not None else None
        self._stanzas = TokenBucket(cfg.stanza_rate, cfg.stanza_burst, now) \
            if cfg.stanza_rate is not None else None
        self._resume: IDelayedCall | None = None
        self._resume_at = 0.0
        self.paused_for = 0.0       # seconds of paused reading so far (tests, metrics)

    def data(self, size: int) -> None:
        if self._bytes is not None:
            self._pay(self._bytes.take(size, self._clock.now()))

    def stanza(self) -> None:
        if self._stanzas is not None:
            self._pay(self._stanzas.take(1, self._clock.now()))

    def authenticated(self) -> None:
        """Switch from the pre-authentication rate to the users' one."""
        cfg, now = self._cfg, self._clock.now()
        if cfg.c2s_rate is None:
            self._bytes = None
        elif self._bytes is None:
            self._bytes = TokenBucket(cfg.c2s_rate, cfg.c2s_burst, now)
        else:
            self._bytes.reconfigure(cfg.c2s_rate, cfg.c2s_burst, now)

    def close(self) -> None:
        if self._resume is not None and self._resume.active():
            self._resume.cancel()
        self._resume = None

    def _pay(self, wait: float) -> None:
        if wait <= 0:
            return
        until = self._clock.now() + wait
        if self._resume is not None and self._resume.active():
            if until <= self._resume_at:
                return
            self._resume.cancel()
            self.paused_for += until - self._resume_at
        else:
            self._gate.hold(ReadGate.SHAPED)
            self.paused_for += wait
        self._resume_at = until
        self._resume = self._clock.call_later(wait, self._go_on)

    def _go_on(self) -> None:
        self._resume = None
        self._gate.release(ReadGate.SHAPED)


@runtime_checkable
class Guarded(Protocol):
    """A client transport that keeps a `ConnectionGuard` (TCP, WebSocket, BOSH)."""

    guard: ConnectionGuard | None


class ConnectionGuard:
    """What one client connection holds of the limits: its slot and, for stream transports,
    its read gate and shaper. Built by the listener when it accepts the connection."""

    def __init__(self, slot: Slot | None, shaper: ReadShaper | None = None) -> None:
        self.slot = slot
        self.shaper = shaper
        self.gate: ReadGate | None = None

    def stream(self, server: Server, transport: Callable[[], Pausable | None]) -> None:
        """The connection carries a stream: its reading can be paused and is shaped."""
        self.gate = ReadGate(transport)
        self.shaper = ReadShaper(server, self.gate)

    def data(self, size: int) -> None:
        if self.shaper is not None:
            self.shaper.data(size)

    def stanza(self) -> None:
        if self.shaper is not None:
            self.shaper.stanza()

    def authenticated(self) -> None:
        if self.slot is not None:
            self.slot.authenticate()
        if self.shaper is not None:
            self.shaper.authenticated()

    def close(self) -> None:
        if self.slot is not None:
            self.slot.close()
        if self.shaper is not None:
            self.shaper.close()


def hold_reading(transport: object, held: bool) -> None:
    """Pause (or resume) reading a session's connection: it holds `max_unhandled` stanzas
    not yet handled (xmppd/listeners/session.py). Transports without a gate (BOSH) go on."""
    if isinstance(transport, Guarded) and transport.guard is not None:
        gate = transport.guard.gate
        if gate is not None:
            (gate.hold if held else gate.release)(ReadGate.UNHANDLED)


def on_authenticated(transport: object) -> None:
    """A session's stream authenticated: tell its connection's guard (if it has one)."""
    if isinstance(transport, Guarded) and transport.guard is not None:
        transport.guard.authenticated()
