"""Operating a cluster: `xmppctl cluster status` (xmppd/cluster/status.py)."""
from __future__ import annotations

import asyncio
import subprocess
import sys

from tests.cluster.clients import Client, online, run
from tests.harness.cluster_proc import RunningCluster
from tests.harness.server_proc import REPO


def test_cluster_status_lists_nodes_with_age_and_sessions(cluster: RunningCluster) -> None:
    async def go() -> None:
        a, b = Client("alice", "x"), Client("bob", "y")
        await online(cluster.nodes[1].port, a, b)
        await asyncio.sleep(1.0)                    # a heartbeat carries the counts
        done = await asyncio.to_thread(cluster.ctl, "cluster", "status")
        for c in (a, b):
            await c.stop()
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        assert lines[0].split() == ["node", "state", "beat", "age", "sessions", "rooms", "pid"]
        rows = {line.split()[0]: line.split() for line in lines[1:]}
        assert sorted(rows) == ["n1", "n2", "n3"]
        assert all(r[1] == "live" for r in rows.values())
        assert rows["n2"][4] == "2" and rows["n1"][4] == "0"
        assert int(rows["n1"][6]) == cluster.nodes[0].proc.pid   # type: ignore[union-attr]
    run(go())


def test_cluster_status_on_a_single_server_says_so(cluster: RunningCluster) -> None:
    cfg = cluster.tmp / "single.toml"
    cfg.write_text(cluster.config.read_text().split("[cluster]")[0])
    done = subprocess.run([sys.executable, "-m", "xmppd.ctl", "--config", str(cfg), "cluster",
                           "status"], cwd=REPO, env=cluster.env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2 and "no [cluster] table" in done.stderr
