# tests: tests/bot/test_settings.py
"""Durations people type ("30s", "10m", "2h", "1h30m", "5 min") and the reconnect backoff."""
from __future__ import annotations

import random
import re

__all__ = ["Backoff", "parse_duration"]

_UNITS = {"s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1,
          "m": 60, "min": 60, "mins": 60, "minute": 60, "minutes": 60,
          "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600,
          "d": 86400, "day": 86400, "days": 86400}
_PART = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-z]*)", re.IGNORECASE)


def parse_duration(text: str | int | float) -> float:
    """Seconds in a duration: a number of seconds, or parts such as "30s", "10m", "2h",
    "1d", "1h30m", "5 min".

    Raises:
        ValueError: with a one-line message naming the text, if it is not a duration.
    """
    if isinstance(text, bool):
        raise ValueError(f"not a duration: {text!r}")
    if isinstance(text, (int, float)):
        if text < 0 or text != text or text == float("inf"):
            raise ValueError(f"not a duration: {text!r} (expected zero or more seconds)")
        return float(text)
    total, pos, parts = 0.0, 0, 0
    s = text.strip()
    while pos < len(s):
        m = _PART.match(s, pos)
        if m is None or m.end() == pos:
            break
        unit = m.group(2).lower()
        if unit == "" and (parts or m.end() < len(s)):
            break                   # a bare number is allowed only on its own: "90"
        if unit and unit not in _UNITS:
            break
        total += float(m.group(1)) * _UNITS.get(unit, 1)
        pos, parts = m.end(), parts + 1
        while pos < len(s) and s[pos] == " ":
            pos += 1
    if not parts or pos != len(s):
        raise ValueError(f"not a duration: {text!r} (try 30s, 10m, 2h or 1h30m)")
    return total


class Backoff:
    """Exponential backoff with jitter for reconnecting.

    The n-th delay (from 0) is drawn uniformly from [cap/2, cap] with cap = min(max_delay,
    min_delay * 2**n) ("equal jitter"): never a hammering zero, and bots that lost the same
    server at the same moment do not come back in lock-step.
    """

    def __init__(self, min_delay: float, max_delay: float,
                 rng: random.Random | None = None) -> None:
        if min_delay <= 0 or max_delay < min_delay:
            raise ValueError("need 0 < min_delay <= max_delay")
        self.min_delay = min_delay
        self.max_delay = max_delay
        self.attempt = 0
        self._rng = rng or random.Random()

    def next(self) -> float:
        cap = min(self.max_delay, self.min_delay * 2 ** min(self.attempt, 62))
        self.attempt += 1
        return self._rng.uniform(cap / 2, cap)

    def reset(self) -> None:
        self.attempt = 0
