# tests: tests/cluster/
"""A cluster of xmppd nodes sharing PostgreSQL and Redis (docs/CLUSTER.md). Imported only when
the config has a `[cluster]` table: xmppd/server.py builds `node.ClusterNode` and
`sessions.ClusterSessions`; modules see `api.ClusterService` and its hooks, nothing else.
"""
