"""FastTokenStore contract (XEP-0484 §6 two slots) on SQLite and PostgreSQL."""
from __future__ import annotations

import pytest
from sqlalchemy import delete, insert

from storage.db import Database
from storage.fast import SqlFastTokenStore, StoredToken
from storage.models import accounts
from tests.harness.backends import resolve

H = "example.org"
PHONE, LAPTOP = "a5a1c2d4-0000-4000-8000-000000000001", "a5a1c2d4-0000-4000-8000-000000000002"


@pytest.fixture
def store(db: Database) -> SqlFastTokenStore:
    def txn(conn):  # type: ignore[no-untyped-def]
        for user in ("alice", "bob"):
            conn.execute(insert(accounts).values(host=H, username=user, created_at=1.0))
    resolve(db.run(txn))
    return SqlFastTokenStore(db)


def token(key: bytes, *, expires: float = 1000.0, mech: str = "HT-SHA-256-NONE") -> StoredToken:
    return StoredToken("new", key, mech, 1.0, expires, "Phone")


def test_issued_token_is_new_and_found(store: SqlFastTokenStore) -> None:
    resolve(store.issue(H, "alice", PHONE, token(b"k1")))
    [found] = resolve(store.tokens(H, "alice", PHONE))
    assert (found.slot, found.key, found.mechanism, found.expires_at) == \
        ("new", b"k1", "HT-SHA-256-NONE", 1000.0)
    assert resolve(store.tokens(H, "alice", LAPTOP)) == []
    assert resolve(store.tokens(H, "bob", PHONE)) == []


def test_using_the_new_token_makes_it_current_and_drops_the_old(store: SqlFastTokenStore) -> None:
    resolve(store.issue(H, "alice", PHONE, token(b"k1")))
    resolve(store.used(H, "alice", PHONE, b"k1"))
    resolve(store.issue(H, "alice", PHONE, token(b"k2", expires=2000.0)))     # rotation
    assert [(t.slot, t.key) for t in resolve(store.tokens(H, "alice", PHONE))] == \
        [("new", b"k2"), ("current", b"k1")]        # the old one works until k2 is used
    resolve(store.used(H, "alice", PHONE, b"k1"))    # still k1: nothing moves
    assert len(resolve(store.tokens(H, "alice", PHONE))) == 2
    resolve(store.used(H, "alice", PHONE, b"k2"))
    assert [(t.slot, t.key) for t in resolve(store.tokens(H, "alice", PHONE))] == \
        [("current", b"k2")]


def test_a_second_issue_replaces_the_unused_new_token(store: SqlFastTokenStore) -> None:
    resolve(store.issue(H, "alice", PHONE, token(b"k1")))
    resolve(store.issue(H, "alice", PHONE, token(b"k2")))
    assert [t.key for t in resolve(store.tokens(H, "alice", PHONE))] == [b"k2"]


def test_invalidate_revoke_and_devices(store: SqlFastTokenStore) -> None:
    resolve(store.issue(H, "alice", PHONE, token(b"k1")))
    resolve(store.issue(H, "alice", LAPTOP, token(b"k2", expires=3000.0)))
    assert [(d.client_id, d.expires_at) for d in resolve(store.devices(H, "alice"))] == \
        [(PHONE, 1000.0), (LAPTOP, 3000.0)]
    resolve(store.invalidate(H, "alice", PHONE, b"other"))
    assert len(resolve(store.tokens(H, "alice", PHONE))) == 1
    resolve(store.invalidate(H, "alice", PHONE, b"k1"))
    assert resolve(store.tokens(H, "alice", PHONE)) == []
    resolve(store.issue(H, "alice", PHONE, token(b"k3")))
    assert resolve(store.revoke(H, "alice", LAPTOP)) == 1
    assert resolve(store.revoke(H, "alice")) == 1
    assert resolve(store.devices(H, "alice")) == []


def test_expired_tokens_are_purged(store: SqlFastTokenStore) -> None:
    resolve(store.issue(H, "alice", PHONE, token(b"k1", expires=10.0)))
    resolve(store.issue(H, "bob", PHONE, token(b"k2", expires=100.0)))
    assert resolve(store.purge_expired(50.0)) == 1
    assert resolve(store.tokens(H, "alice", PHONE)) == []
    assert len(resolve(store.tokens(H, "bob", PHONE))) == 1


def test_deleting_the_account_deletes_its_tokens(store: SqlFastTokenStore, db: Database) -> None:
    resolve(store.issue(H, "alice", PHONE, token(b"k1")))
    resolve(db.run(lambda conn: conn.execute(delete(accounts).where(
        accounts.c.username == "alice"))))
    assert resolve(store.tokens(H, "alice", PHONE)) == []
