"""OfflineStore contract on SQLite and PostgreSQL (XEP-0160 storage)."""
from __future__ import annotations

import pytest
from sqlalchemy import insert

from storage.db import Database
from storage.models import accounts
from storage.offline import NewOffline, OfflineStore, SqlOfflineStore
from tests.harness.backends import resolve
from stanzas.jid import JID

ALICE = JID.parse("alice@example.org")
BOB = JID.parse("bob@example.org")
NOBODY = JID.parse("nobody@example.org")


@pytest.fixture
def store(db: Database) -> OfflineStore:
    def txn(conn):  # type: ignore[no-untyped-def]
        for user in ("alice", "bob"):
            conn.execute(insert(accounts).values(host="example.org", username=user,
                                                 created_at=1.0))
    resolve(db.run(txn))
    return SqlOfflineStore(db)


def msg(n: int) -> bytes:
    return b"<message xmlns='jabber:client'><body>%d</body></message>" % n


def test_messages_come_back_in_arrival_order(store: OfflineStore) -> None:
    assert resolve(store.add([NewOffline(ALICE, 10.0 + i, msg(i)) for i in range(5)], 100)) \
        == [True] * 5
    resolve(store.add([NewOffline(ALICE, 20.0, msg(5))], 100))
    got = resolve(store.list(ALICE))
    assert [m.stanza for m in got] == [msg(i) for i in range(6)]
    assert [m.stored_at for m in got] == [10.0, 11.0, 12.0, 13.0, 14.0, 20.0]
    assert [m.seq for m in got] == sorted(m.seq for m in got)
    assert [m.stanza for m in resolve(store.list(ALICE, limit=2))] == [msg(0), msg(1)]
    assert resolve(store.list(BOB)) == []


def test_a_large_batch_for_two_users_keeps_its_order(store: OfflineStore) -> None:
    # One executemany (PostgreSQL: a multi-row VALUES): seq must still follow the batch.
    items = [NewOffline(ALICE if i % 3 else BOB, float(i), msg(i)) for i in range(300)]
    assert resolve(store.add(items, 1000)) == [True] * 300
    for user in (ALICE, BOB):
        got = resolve(store.list(user))
        assert [m.stanza for m in got] == [i.stanza for i in items if i.user == user]


def test_the_limit_refuses_new_messages_and_keeps_the_old(store: OfflineStore) -> None:
    got = resolve(store.add([NewOffline(ALICE, 1.0, msg(i)) for i in range(3)]
                            + [NewOffline(BOB, 1.0, msg(9))], 2))
    assert got == [True, True, False, True]
    assert resolve(store.add([NewOffline(ALICE, 2.0, msg(4))], 2)) == [False]
    assert [m.stanza for m in resolve(store.list(ALICE))] == [msg(0), msg(1)]
    assert resolve(store.count(ALICE)) == 2 and resolve(store.count(BOB)) == 1


def test_a_user_without_account_is_refused_without_failing_the_batch(
        store: OfflineStore) -> None:
    got = resolve(store.add([NewOffline(ALICE, 1.0, msg(1)), NewOffline(NOBODY, 1.0, msg(2)),
                             NewOffline(BOB, 1.0, msg(3))], 10))
    assert got == [True, False, True]
    assert resolve(store.count(NOBODY)) == 0


def test_delete_removes_only_what_is_named(store: OfflineStore) -> None:
    resolve(store.add([NewOffline(ALICE, 1.0, msg(i)) for i in range(4)]
                      + [NewOffline(BOB, 1.0, msg(7))], 10))
    a = resolve(store.list(ALICE))
    b = resolve(store.list(BOB))
    assert resolve(store.delete([(ALICE, a[0].seq), (ALICE, a[2].seq), (ALICE, a[2].seq)])) == 2
    assert resolve(store.delete([(BOB, a[1].seq)])) == 0     # someone else's number: no effect
    assert [m.stanza for m in resolve(store.list(ALICE))] == [msg(1), msg(3)]
    assert resolve(store.delete([(BOB, b[0].seq)])) == 1
    assert resolve(store.count(BOB)) == 0
    assert resolve(store.delete([])) == 0


def test_deleting_the_account_deletes_its_messages(db: Database, store: OfflineStore) -> None:
    resolve(store.add([NewOffline(ALICE, 1.0, msg(1))], 10))
    from sqlalchemy import delete

    resolve(db.run(lambda conn: conn.execute(delete(accounts).where(
        accounts.c.username == "alice"))))
    assert resolve(store.count(ALICE)) == 0
