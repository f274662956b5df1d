"""The [cluster] table (xmppd/cluster/options.py): required name, PostgreSQL and Redis."""
from __future__ import annotations

import pytest

from xmppd.config import ConfigError, from_dict

PG = {"url": "postgresql+psycopg2://u@h/db"}
REDIS = {"url": "redis://127.0.0.1:6379/0"}


def test_without_the_table_the_server_is_one_node() -> None:
    assert from_dict({}).cluster is None


def test_defaults_and_the_redis_url_of_the_cache() -> None:
    c = from_dict({"storage": PG, "cache": REDIS, "cluster": {"node": "n1"}}).cluster
    assert c is not None
    assert (c.node, c.heartbeat, c.node_timeout, c.redis_url, c.drain_timeout) == \
        ("n1", 1.0, 5.0, "redis://127.0.0.1:6379/0", 30.0)


def test_a_redis_cluster_may_carry_the_cluster_alone() -> None:
    c = from_dict({"storage": PG, "cache": {"url": "memory"}, "cluster": {
        "node": "a-1", "redis_url": "redis+cluster://10.0.0.1:7000", "heartbeat": "500 ms",
        "node_timeout": "3 s"}}).cluster
    assert c is not None and c.redis_url == "redis+cluster://10.0.0.1:7000"
    assert (c.heartbeat, c.node_timeout) == (0.5, 3.0)


@pytest.mark.parametrize(("raw", "message"), [
    ({"storage": PG, "cache": REDIS, "cluster": {}}, "cluster: missing required key 'node'"),
    ({"storage": PG, "cache": REDIS, "cluster": {"node": "a b"}}, "cluster.node: expected"),
    ({"cache": REDIS, "cluster": {"node": "n"}}, "storage.url must be PostgreSQL"),
    ({"storage": PG, "cluster": {"node": "n"}}, "set cache.url (or cluster.redis_url)"),
    ({"storage": PG, "cache": REDIS, "cluster": {"node": "n", "nodes": 3}},
     "cluster: unknown key 'nodes'"),
    ({"storage": PG, "cache": REDIS, "cluster": {"node": "n", "heartbeat": 3}},
     "more than twice cluster.heartbeat"),
])
def test_bad_tables_are_named(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        from_dict(raw)
