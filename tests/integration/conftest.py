# tests: tests/integration/
"""Integration tests run the real server in a subprocess (tests/harness/server_proc.py) on both
backend pairs, "sqlite+memory" (the embedded default) and "postgresql+redis" (production),
and on "cluster": three nodes on PostgreSQL and Redis behind HAProxy, which tests use as one
server (tests/harness/cluster_proc.py; `server.port` and `server.ports` are HAProxy's, clients
land on the nodes in turn): every test that uses a server runs once on each. Under CI=true a missing backend fails
instead of skipping (tests/harness/backends.py).

Fixtures:

- `server`: the default server (DEFAULT_MODULES; alice, bob and carol with passwords
  "alice-pw", ...), one per test module and backend pair.
- `server_factory(modules=None, users=DEFAULT_USERS, *, listeners=None, extra="", **tables)`:
  more servers, started and with their accounts, stopped and their databases and Redis key
  spaces dropped when the test module is done. Make a module's own server with it
  (`from tests.harness.server_proc import DEFAULT_MODULES, RunningServer, ServerFactory`):

      @pytest.fixture(scope="module")
      def server(server_factory: ServerFactory) -> RunningServer:
          return server_factory(
              users=("ann", "ben"),                       # password "<name>-pw"; or a dict
              modules=DEFAULT_MODULES | {"ping": {"keepalive_interval": "1 s"},
                                         "http_upload": {"directory": "{tmp}/files"}},
              listeners={"http": {"type": "http"}},       # its port: server.ports["http"]
              limits={"max_stanza_size": "64 KiB"})       # any other config table

  `modules` is the whole set (name -> options); "{tmp}" anywhere in the config is the
  server's own directory (`server.tmp`); accounts are on "localhost"; `extra` is raw TOML
  appended for what the keywords cannot say. Call it in a test for a server of its own (it
  stops with the module's others).
- A module whose servers need one backend only (e.g. a fault test) uses the same factory
  without the fixture's parametrization:

      @pytest.fixture(scope="module")
      def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
          with ServerFactory("sqlite+memory",
                             lambda: tmp_path_factory.mktemp("xmppd")) as factory:
              yield factory(users=("alice", "bob"))

- A module that tests one process's own surface (its admin socket, its signals, its metrics
  listener) sets `NODE_LOCAL = "why"`: its tests run on the two backend pairs, not on the
  cluster (they are deselected there; a cluster's own drain, restart and status are tested in
  tests/cluster/).

Clients: tests/harness/clients.py (XmppClient on slixmpp; `run(coro, timeout=120)` drives a
coroutine from a plain test function), tests/harness/raw.py (raw XML on a socket), and
presence_helpers.py here (befriend, Watcher).
"""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.harness.backends import CLUSTER, INTEGRATION_BACKENDS
from tests.harness.server_proc import RunningServer, ServerFactory


@pytest.fixture(scope="module", params=INTEGRATION_BACKENDS)
def server_factory(request: pytest.FixtureRequest,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerFactory]:
    with ServerFactory(request.param, lambda: tmp_path_factory.mktemp("xmppd")) as factory:
        yield factory


@pytest.fixture(scope="module")
def server(server_factory: ServerFactory) -> RunningServer:
    return server_factory()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    keep, node_local = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        reason = getattr(getattr(item, "module", None), "NODE_LOCAL", None)
        if reason and callspec is not None and callspec.params.get("server_factory") == CLUSTER:
            node_local.append(item)
        else:
            keep.append(item)
    if node_local:
        config.hook.pytest_deselected(items=node_local)
        items[:] = keep
