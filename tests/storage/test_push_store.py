"""PushStore contract (XEP-0357 registrations) on SQLite and PostgreSQL."""
from __future__ import annotations

import pytest
from sqlalchemy import delete, insert

from storage.db import Database
from storage.models import accounts
from storage.push import PushRegistration, SqlPushStore
from tests.harness.backends import resolve

H = "example.org"


@pytest.fixture
def store(db: Database) -> SqlPushStore:
    def txn(conn):  # type: ignore[no-untyped-def]
        for user in ("alice", "bob"):
            conn.execute(insert(accounts).values(host=H, username=user, created_at=1.0))
    resolve(db.run(txn))
    return SqlPushStore(db)


def test_add_list_and_replace(store: SqlPushStore) -> None:
    resolve(store.add(H, "alice", PushRegistration("push.example.net", "n1",
                                                   {"secret": ["s1"]}, 1.0)))
    resolve(store.add(H, "alice", PushRegistration("push.example.net", "n2", {}, 2.0)))
    resolve(store.add(H, "alice", PushRegistration("push.example.net", "n1",
                                                   {"secret": ["s2"]}, 3.0)))    # §5: update
    found = resolve(store.list(H, "alice"))
    assert [(r.service, r.node, r.options) for r in found] == [
        ("push.example.net", "n1", {"secret": ["s2"]}), ("push.example.net", "n2", {})]
    assert resolve(store.list(H, "bob")) == []


def test_remove_one_node_or_the_whole_service(store: SqlPushStore) -> None:
    for i, node in enumerate(("n1", "n2")):
        resolve(store.add(H, "alice", PushRegistration("a.example", node, {}, float(i))))
    resolve(store.add(H, "alice", PushRegistration("b.example", "n1", {}, 5.0)))
    assert resolve(store.remove(H, "alice", "a.example", "n1")) == 1
    assert resolve(store.remove(H, "alice", "a.example", "nope")) == 0
    assert [(r.service, r.node) for r in resolve(store.list(H, "alice"))] == \
        [("a.example", "n2"), ("b.example", "n1")]
    assert resolve(store.remove(H, "alice", "a.example")) == 1
    assert [r.service for r in resolve(store.list(H, "alice"))] == ["b.example"]


def test_registrations_go_with_the_account(store: SqlPushStore, db: Database) -> None:
    resolve(store.add(H, "alice", PushRegistration("a.example", "n", {}, 1.0)))
    resolve(db.run(lambda conn: conn.execute(delete(accounts).where(
        accounts.c.username == "alice"))))
    assert resolve(store.list(H, "alice")) == []
