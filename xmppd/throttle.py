# tests: tests/core/test_throttle.py, tests/integration/test_auth_throttle.py
"""Password guessing and mass sign-up, throttled for the whole process (every listener and
virtual host), after ejabberd's mod_fail2ban and Prosody's mod_limit_auth.

- Failed logins (SASL `not-authorized`: a wrong password or an unknown user) are counted per
  IP address and per account over `limits.auth_window`. From `auth_delay_after` failures on,
  each new attempt from that address or for that account waits before its credentials are
  even looked up: 0.25 s, doubling per failure, at most `auth_max_delay` (a tarpit that costs
  a guesser time, not us threads). At `auth_max_failures_per_ip` failures an address, and at
  `auth_max_failures_per_account` an account, is refused for `auth_ban_time`: every attempt
  gets `<temporary-auth-failure/>` (RFC 6120 §6.5.11: "try again later"), right password or
  not. An account's refusal spares addresses it logged in from successfully before (remembered
  in memory), so a guesser cannot lock its owner out of their usual network.
  `limits.exempt_networks` (a reverse proxy whose clients all share its address) are not
  refused per address. A success does not clear the counts (a guesser holding one account of
  its own could otherwise clear its address's count between guesses).
- In-band registrations (modules/register.py) are counted per address and in total over a
  window; the module answers `<resource-constraint/>` (type wait) past its limits.
- State is in memory, behind `Counters` (keyed counts in a window, and bans), so a cluster
  can put the same counts in Redis later without touching the callers. Every table is bounded:
  the oldest keys go first.
Not here: connection limits and shaping (xmppd/limits.py); the SASL exchange (xmppd/c2s.py).
"""
from __future__ import annotations

import ipaddress
import logging
import weakref
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Callable, Protocol

from twisted.internet import defer

from xmppd.config import LimitsSection

if TYPE_CHECKING:
    from xmppd.server import Server

log = logging.getLogger(__name__)
_FIRST_DELAY = 0.25
_MAX_KEYS = 100_000
_MAX_TRUSTED = 100_000


class Throttled(Exception):
    """Refused for now: the SASL answer is `<temporary-auth-failure/>`."""


class Counters(Protocol):
    """Counts by key within a window, and bans until a time (seconds on the server clock)."""

    def add(self, key: str, now: float, window: float) -> int:
        """Count one more for `key`; the count within the window that began with its first."""

    def count(self, key: str, now: float, window: float) -> int: ...

    def ban(self, key: str, until: float) -> None: ...

    def banned_until(self, key: str, now: float) -> float | None: ...


class MemoryCounters:
    """`Counters` in this process, at most `max_keys` of each kind (oldest dropped first)."""

    def __init__(self, max_keys: int = _MAX_KEYS) -> None:
        self.max_keys = max_keys
        self._counts: OrderedDict[str, tuple[float, int]] = OrderedDict()  # key -> (start, n)
        self._bans: OrderedDict[str, float] = OrderedDict()

    def add(self, key: str, now: float, window: float) -> int:
        start, n = self._counts.pop(key, (now, 0))
        if now - start >= window:
            start, n = now, 0
        self._counts[key] = (start, n + 1)
        while len(self._counts) > self.max_keys:
            self._counts.popitem(last=False)
        return n + 1

    def count(self, key: str, now: float, window: float) -> int:
        found = self._counts.get(key)
        if found is None or now - found[0] >= window:
            return 0
        return found[1]

    def ban(self, key: str, until: float) -> None:
        self._bans.pop(key, None)
        self._bans[key] = until
        while len(self._bans) > self.max_keys:
            self._bans.popitem(last=False)

    def banned_until(self, key: str, now: float) -> float | None:
        until = self._bans.get(key)
        if until is None:
            return None
        if until <= now:
            del self._bans[key]
            return None
        return until


class AuthThrottle:
    """Failed-login accounting and its verdicts (see the module docstring)."""

    def __init__(self, cfg: LimitsSection, counters: Counters | None = None) -> None:
        self.cfg = cfg
        self.counters: Counters = counters if counters is not None else MemoryCounters()
        self._trusted: OrderedDict[tuple[str, str], None] = OrderedDict()

    def _ip_key(self, ip: str | None) -> str | None:
        if ip is None or _in(ip, self.cfg.exempt_networks):
            return None
        return "ip:" + ip

    def verdict(self, ip: str | None, account: str, now: float) -> float:
        """Seconds to wait before checking this attempt's credentials.

        Raises:
            Throttled: the address or the account is refused for now.
        """
        ip_key = self._ip_key(ip)
        if ip_key is not None and self.counters.banned_until(ip_key, now) is not None:
            raise Throttled(f"too many failed logins from {ip}")
        acct_key = "account:" + account
        if self.counters.banned_until(acct_key, now) is not None \
                and (account, ip or "") not in self._trusted:
            raise Throttled("too many failed logins for this account")
        window = self.cfg.auth_window
        failures = self.counters.count(acct_key, now, window)
        if ip_key is not None:
            failures = max(failures, self.counters.count(ip_key, now, window))
        if failures < self.cfg.auth_delay_after:
            return 0.0
        step = failures - self.cfg.auth_delay_after
        return min(self.cfg.auth_max_delay, _FIRST_DELAY * 2.0 ** min(step, 32))

    def failed(self, ip: str | None, account: str, now: float) -> None:
        cfg = self.cfg
        ip_key = self._ip_key(ip)
        if ip_key is not None and self.counters.add(ip_key, now, cfg.auth_window) \
                >= cfg.auth_max_failures_per_ip:
            if self.counters.banned_until(ip_key, now) is None:
                log.warning("failed logins: refusing %s for %s s", ip, cfg.auth_ban_time)
            self.counters.ban(ip_key, now + cfg.auth_ban_time)
        acct_key = "account:" + account
        if self.counters.add(acct_key, now, cfg.auth_window) >= cfg.auth_max_failures_per_account:
            if self.counters.banned_until(acct_key, now) is None:
                log.warning("failed logins: refusing logins to %s for %s s (except from "
                            "addresses it logged in from)", account, cfg.auth_ban_time)
            self.counters.ban(acct_key, now + cfg.auth_ban_time)

    def succeeded(self, ip: str | None, account: str) -> None:
        key = (account, ip or "")
        self._trusted.pop(key, None)
        self._trusted[key] = None
        while len(self._trusted) > _MAX_TRUSTED:
            self._trusted.popitem(last=False)


class RegistrationThrottle:
    """In-band sign-ups by address and in total within a window (modules/register.py)."""

    def __init__(self, counters: Counters | None = None) -> None:
        self.counters: Counters = counters if counters is not None else MemoryCounters()

    def allowed(self, ip: str | None, now: float, *, window: float, per_ip: int,
                total: int) -> str | None:
        """None if one more sign-up from `ip` is allowed, else which limit is reached
        (0 means no limit)."""
        if total and self.counters.count("total", now, window) >= total:
            return "total"
        if per_ip and ip is not None and self.counters.count("ip:" + ip, now, window) >= per_ip:
            return "ip"
        return None

    def registered(self, ip: str | None, now: float, *, window: float) -> None:
        self.counters.add("total", now, window)
        if ip is not None:
            self.counters.add("ip:" + ip, now, window)


def _in(ip: str, networks: tuple[Any, ...]) -> bool:
    if not networks:
        return False
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(addr in net for net in networks)


# -- the process-wide instances, and the calls the client session makes ------------------------

_auth: weakref.WeakKeyDictionary[Any, AuthThrottle] = weakref.WeakKeyDictionary()
_registrations: weakref.WeakKeyDictionary[Any, RegistrationThrottle] = \
    weakref.WeakKeyDictionary()


def auth_throttle(server: Server) -> AuthThrottle:
    found = _auth.get(server)
    if found is None:
        found = _auth[server] = AuthThrottle(server.config.limits)
    return found


def registration_throttle(owner: object) -> RegistrationThrottle:
    """The sign-up counts of the process `owner` stands for (anything one per process, such
    as the server or its account operations)."""
    found = _registrations.get(owner)
    if found is None:
        found = _registrations[owner] = RegistrationThrottle()
    return found


def _account(username: str, host: str) -> str:
    return f"{username}@{host}"


def credentials(server: Server, ip: str | None, username: str, host: str, *,
                lookup: Callable[[], Any] | None = None) -> defer.Deferred[Any]:
    """Look up an account for a login attempt, after the throttle's delay; fails with
    `Throttled` when the attempt is refused (the session answers temporary-auth-failure).
    `lookup` replaces the account look-up (FAST tokens, XEP-0484)."""
    throttle = auth_throttle(server)
    clock = server.clock
    try:
        wait = throttle.verdict(ip, _account(username, host), clock.now())
    except Throttled as e:
        return defer.fail(e)

    def account() -> defer.Deferred[Any]:
        d = server.stores.accounts.get(username, host)
        return d if isinstance(d, defer.Deferred) else defer.Deferred.fromCoroutine(d)
    if lookup is None:
        lookup = account
    if wait <= 0:
        return lookup()
    delayed: defer.Deferred[None] = defer.Deferred()
    clock.call_later(wait, delayed.callback, None)
    return delayed.addCallback(lambda _: lookup())


def login_failed(server: Server, ip: str | None, username: str, host: str) -> None:
    auth_throttle(server).failed(ip, _account(username, host), server.clock.now())


def login_succeeded(server: Server, session: Any, username: str, host: str) -> None:
    """The stream of `session` authenticated: remember the address for its account, and tell
    its connection (xmppd/limits.py: no longer a stranger's; the users' read rate)."""
    from xmppd.limits import on_authenticated
    auth_throttle(server).succeeded(session.peer_ip, _account(username, host))
    on_authenticated(session.transport)
