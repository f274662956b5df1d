# tests: tests/integration/
"""The real server in a subprocess, once per backend pair and test module:
"sqlite+memory" (the embedded default) and "postgresql+redis" (production).
Under CI=true a missing backend fails instead of skipping (tests/harness/backends.py)."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.backends import postgres_url, redis_url, require
from tests.harness.server_proc import RunningServer, make_server

BACKENDS = ["sqlite+memory", "postgresql+redis"]


def backend_urls(kind: str, tmp: Path) -> tuple[str, str, list]:  # type: ignore[type-arg]
    storage, cache = kind.split("+")
    cleanups = []
    if storage == "sqlite":
        storage_url = f"sqlite:///{tmp / 'xmppd.sqlite'}"
    else:
        require("postgresql")
        pg = postgres_url()
        storage_url = pg.url
        cleanups.append(pg.drop)
    if cache == "memory":
        cache_url = "memory"
    else:
        require("redis")
        space = redis_url()
        cache_url = space.url
        cleanups.append(space.cleanup)
    return storage_url, cache_url, cleanups


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    tmp = tmp_path_factory.mktemp("xmppd")
    storage_url, cache_url, cleanups = backend_urls(request.param, tmp)
    srv = make_server(tmp, storage_url, cache_url)
    try:
        for user, pw in (("alice", "alice-pw"), ("bob", "bob-pw"), ("carol", "carol-pw")):
            done = srv.ctl("register", user, "localhost", pw)
            assert done.returncode == 0, done.stderr
        srv.start()
        yield srv
    finally:
        srv.stop()
        for c in cleanups:
            c()
