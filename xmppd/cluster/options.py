# tests: tests/cluster/test_options.py
"""The `[cluster]` table (docs/CLUSTER.md). Without it the server is one process, exactly as
before: nothing of xmppd/cluster/ is imported.

  node          string    required     this node's name, unique in the cluster ([A-Za-z0-9_-])
  heartbeat     duration  "1 s"        how often the node says it lives
  node_timeout  duration  "5 s"        silent this long: the node counts as dead
  redis_url     string    cache.url    redis://host:port/db, or redis+cluster://host:port for a
                                       Redis Cluster (any node; the others are discovered)
  drain_timeout duration  "30 s"       SIGTERM: how long clients get to move (XEP-0198 resume
                                       elsewhere) before the node stops anyway
A cluster needs PostgreSQL (`storage.url`) and Redis (`cache.url` or `redis_url`): the nodes
share every store and the session registry.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from xmppd.config import ConfigError, build, duration


@dataclass(frozen=True, slots=True)
class ClusterSection:
    node: str
    heartbeat: float = duration(default="1 s", minimum=0.05)
    node_timeout: float = duration(default="5 s", minimum=0.2)
    redis_url: str = ""
    drain_timeout: float = duration(default="30 s", minimum=0)


def parse_cluster(table: object, storage_url: str, cache_url: str) -> ClusterSection:
    section = build(ClusterSection, table, "cluster")
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", section.node):
        raise ConfigError(f"cluster.node: expected a name of letters, digits, '-' and '_', "
                          f"got {section.node!r}")
    if section.node_timeout <= section.heartbeat * 2:
        raise ConfigError("cluster.node_timeout: must be more than twice cluster.heartbeat")
    if not storage_url.startswith("postgresql"):
        raise ConfigError("cluster: the nodes share their stores: storage.url must be "
                          f"PostgreSQL, not {storage_url.split(':', 1)[0]!r}")
    url = section.redis_url or cache_url
    if not url.startswith(("redis://", "redis+cluster://")):
        raise ConfigError("cluster: the nodes meet in Redis: set cache.url (or "
                          "cluster.redis_url) to redis://... or redis+cluster://...")
    if section.redis_url and not section.redis_url.startswith(("redis://",
                                                               "redis+cluster://")):
        raise ConfigError(f"cluster.redis_url: expected redis:// or redis+cluster://, "
                          f"got {section.redis_url!r}")
    return ClusterSection(section.node, section.heartbeat, section.node_timeout, url,
                          section.drain_timeout)
