"""InviteStore contract (XEP-0401/0445 single-use, expiring tokens) on SQLite and PostgreSQL."""
from __future__ import annotations

import pytest

from storage.db import Database
from storage.invites import Invite, SqlInviteStore
from tests.harness.backends import resolve

H = "example.org"


@pytest.fixture
def store(db: Database) -> SqlInviteStore:
    return SqlInviteStore(db)


def invite(token: str, *, kind: str = "roster", username: str = "", expires: float = 100.0,
           inviter: str = "alice@example.org") -> Invite:
    return Invite(token, H, kind, inviter, username, 1.0, expires)


def test_create_and_get(store: SqlInviteStore) -> None:
    resolve(store.create(invite("t1")))
    assert resolve(store.get("t1")) == invite("t1")
    assert resolve(store.get("nope")) is None


def test_a_token_is_redeemed_once(store: SqlInviteStore) -> None:
    resolve(store.create(invite("t1")))
    assert resolve(store.redeem("t1", "juliet", 10.0))
    assert not resolve(store.redeem("t1", "romeo", 11.0))
    got = resolve(store.get("t1"))
    assert (got.used_at, got.used_by, got.usable(12.0)) == (10.0, "juliet", False)


def test_an_expired_token_is_not_redeemed(store: SqlInviteStore) -> None:
    resolve(store.create(invite("t1", expires=50.0)))
    assert not resolve(store.redeem("t1", "juliet", 50.0))
    assert resolve(store.get("t1")).used_at is None


def test_release_gives_the_token_back(store: SqlInviteStore) -> None:
    resolve(store.create(invite("t1")))
    assert resolve(store.redeem("t1", "juliet", 10.0))
    resolve(store.release("t1"))
    assert resolve(store.redeem("t1", "romeo", 11.0))


def test_account_invitations_reserve_their_name_until_used_or_expired(
        store: SqlInviteStore) -> None:
    resolve(store.create(invite("t1", kind="account", username="juliet", expires=50.0)))
    resolve(store.create(invite("t2", username="romeo")))       # roster kind: no reservation
    assert resolve(store.reserved(H, "juliet", 10.0)) == "t1"
    assert resolve(store.reserved(H, "romeo", 10.0)) is None
    assert resolve(store.reserved(H, "juliet", 60.0)) is None
    assert resolve(store.redeem("t1", "juliet", 20.0))
    assert resolve(store.reserved(H, "juliet", 30.0)) is None


def test_list_delete_and_purge(store: SqlInviteStore) -> None:
    resolve(store.create(invite("t1", expires=10.0)))
    resolve(store.create(invite("t2", inviter="")))
    resolve(store.create(invite("t3")))
    resolve(store.redeem("t3", "x", 5.0))
    assert [i.token for i in resolve(store.list(H))] == ["t1", "t2", "t3"]
    assert [i.token for i in resolve(store.list(H, inviter=""))] == ["t2"]
    assert resolve(store.purge(20.0)) == 2          # expired t1, used t3
    assert [i.token for i in resolve(store.list(H))] == ["t2"]
    assert resolve(store.delete("t2")) and not resolve(store.delete("t2"))
