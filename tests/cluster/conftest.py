"""A three-node cluster on the machine's PostgreSQL (a fresh database per test module), nodes
reached directly (tests/harness/cluster_proc.py), once on the machine's Redis (a fresh key
prefix) and once on a three-shard Redis Cluster the test starts (tests/harness/redis_cluster.py)
carrying both the cluster and the stores' cache."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.harness import redis_cluster
from tests.harness.backends import backend_urls, redis_url, require, skip_or_fail
from tests.harness.cluster_proc import RunningCluster, make_cluster
from tests.harness.server_proc import DEFAULT_MODULES, register_accounts

USERS = ("alice", "bob", "carol", "dave", "erin", "frank")


@pytest.fixture(scope="module", params=["redis", "redis-cluster"])
def cluster(request: pytest.FixtureRequest,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCluster]:
    require("postgresql")
    require("redis")
    tmp = tmp_path_factory.mktemp("cluster")
    storage_url, cache_url, cleanups = backend_urls("postgresql+redis", tmp)
    space = redis_url()
    if request.param == "redis-cluster":
        why = redis_cluster.available()
        if why:
            skip_or_fail(why)
        shards = redis_cluster.RedisCluster(tmp)
        shards.start()
        cleanups.append(shards.stop)
        cache_url = shards.url
    # Every node has an HTTP listener and keeps uploads in one directory (docs/CLUSTER.md).
    c = make_cluster(tmp, storage_url, cache_url, space.prefix,
                     DEFAULT_MODULES | {"http_upload": {"directory": "{tmp}/files"}},
                     {"http": {"type": "http"}})
    try:
        register_accounts(c.nodes[0], {u: f"{u}-pw" for u in USERS})
        c.start()
        yield c
    finally:
        c.stop()
        space.cleanup()
        for f in cleanups:
            f()
