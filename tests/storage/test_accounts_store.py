"""AccountStore contract on SQLite and PostgreSQL, bare and behind each cache."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import func, select
from twisted.internet import defer
from twisted.internet.defer import Deferred

from storage.accounts import (
    Account,
    AccountStore,
    CachedAccountStore,
    SqlAccountStore,
    decode_account,
    encode_account,
)
from storage.cache import MemoryCache, RedisCache
from storage.db import Database
from storage.models import account_credentials
from storage.runner import ImmediateRunner
from tests.harness.backends import FakeClock, redis_url, require, resolve
from storage.credentials import ScramCredentials

HOST = "example.org"
OTHER = "example.net"


def creds(tag: bytes, iterations: int = 4096) -> dict[str, ScramCredentials]:
    return {
        "SCRAM-SHA-1": ScramCredentials(salt=b"s1" + tag, iterations=iterations, stored_key=b"\x00k1" + tag, server_key=b"K1" + tag),
        "SCRAM-SHA-256": ScramCredentials(salt=b"s256" + tag, iterations=iterations, stored_key=b"k256" + tag, server_key=b"\xffK256" + tag),
    }


@pytest.fixture(params=["sql", "cached-memory", "cached-redis"])
def store(request: pytest.FixtureRequest, db: Database) -> Iterator[AccountStore]:
    sql = SqlAccountStore(db)
    if request.param == "sql":
        yield sql
    elif request.param == "cached-memory":
        yield CachedAccountStore(sql, MemoryCache(clock=FakeClock()))
    else:
        require("redis")
        space = redis_url()
        cache = RedisCache(space.url, runner=ImmediateRunner(), prefix=space.prefix)
        try:
            yield CachedAccountStore(sql, cache)
        finally:
            cache.close()
            space.cleanup()


def credential_rows(db: Database) -> int:
    return int(resolve(db.run(lambda conn: conn.execute(select(func.count()).select_from(account_credentials)).scalar_one())))


def test_created_account_reads_back(store: AccountStore) -> None:
    assert resolve(store.create("alice", HOST, creds(b"a"), 1700000000.25)) is True
    assert resolve(store.get("alice", HOST)) == Account("alice", HOST, 1700000000.25, creds(b"a"))


def test_unknown_account_is_none(store: AccountStore) -> None:
    assert resolve(store.get("nobody", HOST)) is None
    assert resolve(store.get("nobody", HOST)) is None  # and again, from a cache if any


def test_taken_username_is_refused_and_left_unchanged(store: AccountStore) -> None:
    assert resolve(store.create("alice", HOST, creds(b"first"), 1.0)) is True
    assert resolve(store.create("alice", HOST, creds(b"second"), 2.0)) is False
    assert resolve(store.get("alice", HOST)) == Account("alice", HOST, 1.0, creds(b"first"))
    assert resolve(store.count(HOST)) == 1


def test_account_without_credentials(store: AccountStore) -> None:
    assert resolve(store.create("bot", HOST, {}, 5.0)) is True
    assert resolve(store.get("bot", HOST)) == Account("bot", HOST, 5.0, {})


def test_set_credentials_replaces_all_of_them(store: AccountStore) -> None:
    resolve(store.create("alice", HOST, creds(b"old"), 1.0))
    resolve(store.get("alice", HOST))  # a cache, if any, now holds the old credentials
    only_256 = {"SCRAM-SHA-256": creds(b"new", 8192)["SCRAM-SHA-256"]}
    assert resolve(store.set_credentials("alice", HOST, only_256)) is True
    account = resolve(store.get("alice", HOST))
    assert account is not None and account.credentials == only_256 and account.created_at == 1.0


def test_set_credentials_of_unknown_account_is_false(store: AccountStore) -> None:
    assert resolve(store.set_credentials("nobody", HOST, creds(b"x"))) is False
    assert resolve(store.get("nobody", HOST)) is None


def test_delete_removes_account_and_credentials(store: AccountStore, db: Database) -> None:
    resolve(store.create("alice", HOST, creds(b"a"), 1.0))
    resolve(store.get("alice", HOST))
    assert resolve(store.delete("alice", HOST)) is True
    assert resolve(store.get("alice", HOST)) is None
    assert resolve(store.delete("alice", HOST)) is False
    assert credential_rows(db) == 0
    assert resolve(store.create("alice", HOST, creds(b"again"), 9.0)) is True  # the name is free again
    assert resolve(store.get("alice", HOST)) == Account("alice", HOST, 9.0, creds(b"again"))


def test_create_after_a_cached_miss_is_visible(store: AccountStore) -> None:
    assert resolve(store.get("newbie", HOST)) is None
    resolve(store.create("newbie", HOST, creds(b"n"), 3.0))
    assert resolve(store.get("newbie", HOST)) == Account("newbie", HOST, 3.0, creds(b"n"))


def test_list_users_is_sorted_by_code_point(store: AccountStore) -> None:
    for name in ("zoe", "émile", "bob", "alice", "_x"):
        resolve(store.create(name, HOST, {}, 1.0))
    # Code point order, whatever the database's collation ("é" sorts after "z").
    assert resolve(store.list_users(HOST)) == ["_x", "alice", "bob", "zoe", "émile"]
    assert resolve(store.count(HOST)) == 5


def test_empty_host_lists_nobody(store: AccountStore) -> None:
    assert resolve(store.list_users(HOST)) == []
    assert resolve(store.count(HOST)) == 0


def test_hosts_are_isolated(store: AccountStore) -> None:
    assert resolve(store.create("alice", HOST, creds(b"org"), 1.0)) is True
    assert resolve(store.create("alice", OTHER, creds(b"net"), 2.0)) is True
    resolve(store.create("bob", OTHER, {}, 2.0))
    assert resolve(store.get("alice", OTHER)) == Account("alice", OTHER, 2.0, creds(b"net"))
    assert resolve(store.list_users(HOST)) == ["alice"]
    assert resolve(store.list_users(OTHER)) == ["alice", "bob"]
    assert resolve(store.count(OTHER)) == 2
    resolve(store.set_credentials("alice", HOST, creds(b"changed")))
    assert resolve(store.get("alice", OTHER)) == Account("alice", OTHER, 2.0, creds(b"net"))
    assert resolve(store.delete("alice", OTHER)) is True
    assert resolve(store.get("alice", HOST)) == Account("alice", HOST, 1.0, creds(b"changed"))
    assert resolve(store.count(HOST)) == 1


@pytest.mark.parametrize("mechanism", ["scram-sha-1", "", "SCRAM-SHA-256-PLUS-EXTRA-LONG", "SCRAM SHA"])
def test_credentials_need_a_sasl_mechanism_name(store: AccountStore, mechanism: str) -> None:
    bad = {mechanism: creds(b"x")["SCRAM-SHA-1"]}
    with pytest.raises(ValueError):
        resolve(store.create("alice", HOST, bad, 1.0))
    assert resolve(store.get("alice", HOST)) is None
    resolve(store.create("alice", HOST, creds(b"ok"), 1.0))
    with pytest.raises(ValueError):
        resolve(store.set_credentials("alice", HOST, bad))
    assert resolve(store.get("alice", HOST)) == Account("alice", HOST, 1.0, creds(b"ok"))


# ---- the cache wrapper


@pytest.mark.parametrize(
    "account",
    [None, Account("a", HOST, 0.0, {}), Account("alice", HOST, 1700000000.123456, creds(b"\x00\xff" * 20, 2**31))],
    ids=["absent", "no-credentials", "two-mechanisms"],
)
def test_cache_record_round_trips(account: Account | None) -> None:
    username, host = (account.username, account.host) if account else ("x", HOST)
    assert decode_account(encode_account(account), username, host) == account


@pytest.mark.parametrize("data", [b"", b"\x02", b"\x01\x00", encode_account(Account("a", HOST, 1.0, creds(b"x")))[:-1],
                                  encode_account(Account("a", HOST, 1.0, creds(b"x"))) + b"\x00"])
def test_corrupt_cache_record_is_refused(data: bytes) -> None:
    with pytest.raises(ValueError):
        decode_account(data, "a", HOST)


def test_cached_get_is_served_without_the_database() -> None:
    inner = ScriptedStore()
    cached = CachedAccountStore(inner, MemoryCache(clock=FakeClock()))
    inner.answers.append(Deferred())
    pending = Deferred.fromCoroutine(cached.get("alice", HOST))
    inner.answers[0].callback(ALICE_OLD)
    assert resolve(pending) == ALICE_OLD
    assert resolve(cached.get("alice", HOST)) == ALICE_OLD
    assert inner.gets == 1


def test_read_overlapping_a_password_change_does_not_cache_the_old_credentials() -> None:
    inner = ScriptedStore()
    cached = CachedAccountStore(inner, MemoryCache(clock=FakeClock()))
    inner.answers.append(Deferred())
    slow_read = Deferred.fromCoroutine(cached.get("alice", HOST))  # reads before the change...
    assert resolve(cached.set_credentials("alice", HOST, ALICE_NEW.credentials)) is True
    inner.answers[0].callback(ALICE_OLD)  # ...and returns after it
    assert resolve(slow_read) == ALICE_OLD
    inner.answers.append(Deferred())
    fresh = Deferred.fromCoroutine(cached.get("alice", HOST))
    assert not fresh.called, "the old credentials were served from the cache"
    inner.answers[1].callback(ALICE_NEW)
    assert resolve(fresh) == ALICE_NEW


def test_logins_read_the_database_while_the_cache_is_down() -> None:
    inner = ScriptedStore()
    down = RedisCache("redis://127.0.0.1:1/0", runner=ImmediateRunner())
    try:
        cached = CachedAccountStore(inner, down)
        inner.answers.append(defer.succeed(ALICE_OLD))
        assert resolve(cached.get("alice", HOST)) == ALICE_OLD
        # Issue 13 §2: the cache down is no error for the write (it went through); the entry
        # it could not delete is remembered, and the next login reads the database.
        assert resolve(cached.set_credentials("alice", HOST, ALICE_NEW.credentials)) is True
        inner.answers.append(defer.succeed(ALICE_NEW))
        assert resolve(cached.get("alice", HOST)) == ALICE_NEW and inner.gets == 2
    finally:
        down.close()


ALICE_OLD = Account("alice", HOST, 1.0, creds(b"old"))
ALICE_NEW = Account("alice", HOST, 1.0, creds(b"new"))


class ScriptedStore:
    """An AccountStore whose `get` answers with Deferreds the test fires."""

    def __init__(self) -> None:
        self.answers: list[Deferred[Account | None]] = []
        self.gets = 0

    async def get(self, username: str, host: str) -> Account | None:
        self.gets += 1
        return await self.answers[self.gets - 1]

    async def create(self, username: str, host: str, credentials: dict[str, ScramCredentials], created_at: float) -> bool:
        return True

    async def set_credentials(self, username: str, host: str, credentials: dict[str, ScramCredentials]) -> bool:
        return True

    async def delete(self, username: str, host: str) -> bool:
        return True

    async def list_users(self, host: str) -> list[str]:
        return []

    async def count(self, host: str) -> int:
        return 0


def test_disabled_accounts_keep_their_data_and_are_listed(store: AccountStore) -> None:
    assert resolve(store.create("alice", HOST, creds(b"a"), 1.0))
    assert resolve(store.create("bob", HOST, creds(b"b"), 1.0))
    assert resolve(store.create("alice", OTHER, creds(b"c"), 1.0))
    assert resolve(store.get("alice", HOST)).disabled is False
    assert resolve(store.set_disabled("alice", HOST, True)) is True
    found = resolve(store.get("alice", HOST))           # through the cache wrappers too
    assert found.disabled is True and found.credentials == creds(b"a")
    assert resolve(store.get("alice", OTHER)).disabled is False
    assert resolve(store.disabled_users(HOST)) == ["alice"]
    assert resolve(store.disabled_users(OTHER)) == []
    assert resolve(store.set_disabled("alice", HOST, False)) is True
    assert resolve(store.get("alice", HOST)).disabled is False
    assert resolve(store.disabled_users(HOST)) == []
    assert resolve(store.set_disabled("nobody", HOST, True)) is False


def test_version_1_cache_records_are_read_as_enabled() -> None:
    account = Account("alice", HOST, 5.0, creds(b"x"))
    v2 = encode_account(account)
    v1 = b"\x01" + v2[1:-1]                     # the same record before the flags byte
    assert decode_account(v1, "alice", HOST) == account
    disabled = Account("alice", HOST, 5.0, creds(b"x"), disabled=True)
    assert decode_account(encode_account(disabled), "alice", HOST) == disabled
