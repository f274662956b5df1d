# tests: tests/cluster/test_cluster_ops.py
"""`xmppctl cluster status`: the nodes Redis knows, read without joining the cluster.

One line per node: name, live or dead, seconds since its last heartbeat, its age, the client
sessions and MUC rooms it holds, its pid. Reads `<prefix>{cluster}:nodes` and each
`<prefix>{node:<name>}:info` (xmppd/cluster/nodes.py) with redis-py.
"""
from __future__ import annotations

from typing import Any

import redis

from xmppd.cluster.options import ClusterSection


def _client(url: str) -> Any:
    if url.startswith("redis+cluster://"):
        return redis.RedisCluster.from_url("redis://" + url[len("redis+cluster://"):],
                                           socket_timeout=5)
    return redis.Redis.from_url(url, socket_timeout=5)


def status(cluster: ClusterSection, prefix: str) -> list[dict[str, Any]]:
    client = _client(cluster.redis_url)
    try:
        sec, usec = client.time()
        now = sec + usec / 1e6
        nodes = client.zrange(f"{prefix}{{cluster}}:nodes", 0, -1, withscores=True)
        out = []
        for raw, seen in nodes:
            name = raw.decode()
            info = {k.decode(): v.decode() for k, v in
                    client.hgetall(f"{prefix}{{node:{name}}}:info").items()}
            started = float(info.get("started_at") or 0)
            out.append({"node": name, "live": now - seen < cluster.node_timeout,
                        "heartbeat_age": round(now - seen, 1),
                        "age": round(now - started) if started else None,
                        "sessions": int(info.get("sessions") or 0),
                        "rooms": int(info.get("rooms") or 0),
                        "pid": info.get("pid", "")})
        return out
    finally:
        client.close()


def render(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'node':<16} {'state':<5} {'beat':>6} {'age':>8} {'sessions':>8} "
             f"{'rooms':>6} {'pid':>7}"]
    for r in rows:
        age = f"{r['age']}s" if r["age"] is not None else "-"
        lines.append(f"{r['node']:<16} {'live' if r['live'] else 'dead':<5} "
                     f"{r['heartbeat_age']:>5}s {age:>8} {r['sessions']:>8} {r['rooms']:>6} "
                     f"{r['pid']:>7}")
    return "\n".join(lines)
