# tests: tests/integration/
"""The real server in a subprocess, once per backend pair and test module:
"sqlite+memory" (the embedded default) and "postgresql+redis" (production).
Under CI=true a missing backend fails instead of skipping (tests/harness/backends.py)."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.backends import backend_urls
from tests.harness.server_proc import RunningServer, make_server

BACKENDS = ["sqlite+memory", "postgresql+redis"]


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
