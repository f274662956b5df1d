"""RosterStore contract on SQLite and PostgreSQL, bare and behind each cache."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import insert

from storage.cache import MemoryCache, RedisCache
from storage.db import Database
from storage.models import accounts
from storage.roster import (
    CachedRosterStore,
    Roster,
    RosterItem,
    RosterStore,
    SqlRosterStore,
    decode_roster,
    encode_roster,
)
from storage.runner import ImmediateRunner
from tests.harness.backends import FakeClock, redis_url, require, resolve
from stanzas.jid import JID

ALICE = JID.parse("alice@example.org")
BOB = JID.parse("bob@example.org")
CAROL = JID.parse("carol@example.net")
SERVICE = JID.parse("pubsub.example.org")


@pytest.fixture(params=["sql", "cached-memory", "cached-redis"])
def store(request: pytest.FixtureRequest, db: Database) -> Iterator[RosterStore]:
    def accounts_(conn):  # type: ignore[no-untyped-def]
        for user in ("alice", "bob"):
            conn.execute(insert(accounts).values(host="example.org", username=user,
                                                 created_at=1.0))
    resolve(db.run(accounts_))
    sql = SqlRosterStore(db)
    if request.param == "sql":
        yield sql
    elif request.param == "cached-memory":
        yield CachedRosterStore(sql, MemoryCache(clock=FakeClock()))
    else:
        require("redis")
        space = redis_url()
        cache = RedisCache(space.url, runner=ImmediateRunner(), prefix=space.prefix)
        try:
            yield CachedRosterStore(sql, cache)
        finally:
            cache.close()
            space.cleanup()


def test_empty_roster_has_version_zero(store: RosterStore) -> None:
    assert resolve(store.get(ALICE)) == Roster(0, {})


def test_put_reads_back_every_field_and_bumps_the_version(store: RosterStore) -> None:
    item = RosterItem(BOB, "Bob ♥", ("Friends", "Ünïcode"), "to", ask=False, pending_in=True,
                      approved=False, listed=True)
    assert resolve(store.put(ALICE, item)) == 1
    other = RosterItem(CAROL, "", (), "none", ask=True, approved=True)
    assert resolve(store.put(ALICE, other)) == 2
    assert resolve(store.get(ALICE)) == Roster(2, {BOB: item, CAROL: other})


def test_put_replaces_the_item_of_the_same_contact(store: RosterStore) -> None:
    resolve(store.put(ALICE, RosterItem(BOB, "old", ("A",))))
    resolve(store.get(ALICE))                       # a cache, if any, holds the old item
    new = RosterItem(BOB, "new", (), "both")
    assert resolve(store.put(ALICE, new)) == 2
    assert resolve(store.get(ALICE)) == Roster(2, {BOB: new})


def test_unbumped_writes_keep_the_version(store: RosterStore) -> None:
    resolve(store.put(ALICE, RosterItem(BOB)))
    hidden = RosterItem(CAROL, pending_in=True, listed=False)
    assert resolve(store.put(ALICE, hidden, bump=False)) == 1
    assert resolve(store.get(ALICE)).items[CAROL] == hidden
    assert resolve(store.remove(ALICE, CAROL, bump=False)) == 1
    assert resolve(store.get(ALICE)) == Roster(1, {BOB: RosterItem(BOB)})


def test_unbumped_write_on_a_fresh_roster_stays_at_zero(store: RosterStore) -> None:
    assert resolve(store.put(ALICE, RosterItem(BOB, pending_in=True, listed=False),
                             bump=False)) == 0


def test_remove_deletes_and_bumps_even_when_absent(store: RosterStore) -> None:
    resolve(store.put(ALICE, RosterItem(BOB)))
    resolve(store.get(ALICE))
    assert resolve(store.remove(ALICE, BOB)) == 2
    assert resolve(store.get(ALICE)) == Roster(2, {})
    assert resolve(store.remove(ALICE, BOB)) == 3


def test_domain_contacts_are_kept(store: RosterStore) -> None:
    resolve(store.put(ALICE, RosterItem(SERVICE, "feeds")))
    got = resolve(store.get(ALICE)).items
    assert got == {SERVICE: RosterItem(SERVICE, "feeds")} and got[SERVICE].contact.local is None


def test_users_are_isolated(store: RosterStore) -> None:
    resolve(store.put(ALICE, RosterItem(BOB, "b")))
    resolve(store.put(BOB, RosterItem(ALICE, "a")))
    resolve(store.put(BOB, RosterItem(CAROL, "c")))
    assert resolve(store.get(ALICE)) == Roster(1, {BOB: RosterItem(BOB, "b")})
    assert resolve(store.get(BOB)).version == 2


def test_delete_user_forgets_items_and_version(store: RosterStore) -> None:
    resolve(store.put(ALICE, RosterItem(BOB)))
    resolve(store.get(ALICE))
    resolve(store.delete_user(ALICE))
    assert resolve(store.get(ALICE)) == Roster(0, {})


def test_many_items_round_trip(store: RosterStore) -> None:
    for i in range(100):
        resolve(store.put(ALICE, RosterItem(JID.parse(f"u{i}@example.org"), subscription="both"),
                          bump=(i % 2 == 0)))
    roster = resolve(store.get(ALICE))
    assert len(roster.items) == 100 and roster.version == 50


def test_cache_record_round_trips_and_rejects_garbage() -> None:
    roster = Roster(7, {BOB: RosterItem(BOB, "x", ("g",), "from", True, True, True, False),
                        SERVICE: RosterItem(SERVICE)})
    assert decode_roster(encode_roster(roster)) == roster
    for bad in (b"", b"{}", b"[1]", b'{"f":2,"v":1,"i":[]}',
                b'{"f":1,"v":1,"i":[["a@b","",[],"sideways",0,0,0,1]]}'):
        with pytest.raises(ValueError):
            decode_roster(bad)


def test_cached_store_serves_reads_from_the_cache(db: Database) -> None:
    resolve(db.run(lambda conn: conn.execute(insert(accounts).values(
        host="example.org", username="alice", created_at=1.0))))
    sql = SqlRosterStore(db)
    cache = MemoryCache(clock=FakeClock())
    cached = CachedRosterStore(sql, cache)
    resolve(cached.put(ALICE, RosterItem(BOB)))
    assert resolve(cached.get(ALICE)).version == 1
    resolve(sql.put(ALICE, RosterItem(CAROL)))      # behind the cache's back
    assert resolve(cached.get(ALICE)).version == 1  # served from the cache
    resolve(cached.put(ALICE, RosterItem(BOB, "n")))  # a write through it invalidates
    assert resolve(cached.get(ALICE)).version == 3


def test_holders_are_the_users_whose_rosters_name_a_contact(store: RosterStore) -> None:
    assert resolve(store.holders(CAROL)) == []
    resolve(store.put(BOB, RosterItem(CAROL, pending_in=True, listed=False), bump=False))
    resolve(store.put(ALICE, RosterItem(CAROL)))
    resolve(store.put(ALICE, RosterItem(BOB)))
    assert resolve(store.holders(CAROL)) == [ALICE, BOB]
    assert resolve(store.holders(BOB)) == [ALICE]
