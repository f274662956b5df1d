# tests: tests/core/test_gcpolicy.py
"""The cyclic garbage collector, set for a long-running server (issue 18).

Profiles of the message path with the archive on (bench/paths_bench.py) showed the collector as
a large share of the CPU: a server holds a big, long-lived heap (modules, SQLAlchemy metadata,
configuration, compiled statements) that every full collection walks again, and the archive's
group commit keeps each message's objects alive across young collections.

`settle()`, called once the server is built and listening, collects what start-up left behind
and moves every surviving object into the permanent generation (`gc.freeze`, the practice of
large Python servers): later collections never walk it. What the server allocates afterwards
is collected as usual; the thresholds are raised so young collections run less often (each
one is a fixed cost, and most of a message's objects die young anyway, by reference count).
"""
from __future__ import annotations

import gc

THRESHOLDS = (10_000, 20, 20)
"""Allocations before a young collection, and young/middle collections before the next older
one (CPython's defaults: 700, 10, 10)."""


def settle() -> int:
    """Collect, then freeze what is left; returns how many objects were frozen."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
    return gc.get_freeze_count()
