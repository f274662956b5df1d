# tests: tests/cluster/test_placement.py
"""Rendezvous (highest random weight) hashing: which live node owns a JID.

Every node scores `blake2b(node + "\\0" + jid)`; the highest score wins. All nodes agree as soon
as they agree on the live set, and a change moves only what the joining node wins or the
leaving node held (1/N of the JIDs), never reshuffles the rest. No coordination, no state.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable


def score(node: str, key: str) -> int:
    h = hashlib.blake2b(f"{node}\0{key}".encode(), digest_size=8)
    return int.from_bytes(h.digest(), "big")


def owner(nodes: Iterable[str], key: str) -> str | None:
    """The node among `nodes` that owns `key`; None if there is none."""
    best, best_score = None, -1
    for node in nodes:
        s = score(node, key)
        if s > best_score or (s == best_score and best is not None and node < best):
            best, best_score = node, s
    return best


class Placement:
    """Owners for the current live set, memoised until it changes."""

    def __init__(self, me: str) -> None:
        self.me = me
        self.live: tuple[str, ...] = (me,)
        self._memo: dict[str, str] = {}

    def set_live(self, live: Iterable[str]) -> None:
        new = tuple(sorted(live)) or (self.me,)
        if new != self.live:
            self.live = new
            self._memo.clear()

    def owner(self, key: str) -> str:
        found = self._memo.get(key)
        if found is None:
            found = owner(self.live, key) or self.me
            if len(self._memo) > 100_000:
                self._memo.clear()
            self._memo[key] = found
        return found
