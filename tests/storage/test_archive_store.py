"""ArchiveStore contract on SQLite and PostgreSQL (XEP-0313 archives, XEP-0441 prefs): the same
pages, counts and errors on both."""
from __future__ import annotations

import pytest
from sqlalchemy import delete, insert

from storage.archive import (ArchiveEntry, ArchiveSettings, ArchiveStore, ItemNotFound, Prefs,
                             Query, SqlArchiveStore)
from storage.db import Database
from storage.models import accounts
from tests.harness.backends import resolve
from stanzas.jid import JID

ALICE = JID.parse("alice@example.org")
BOB = JID.parse("bob@example.org")
CAROL = JID.parse("carol@example.org")
NOBODY = JID.parse("nobody@example.org")
T0 = 1_700_000_000_000_000          # µs


@pytest.fixture
def store(db: Database) -> ArchiveStore:
    def txn(conn):  # type: ignore[no-untyped-def]
        for user in ("alice", "bob", "carol"):
            conn.execute(insert(accounts).values(host="example.org", username=user,
                                                 created_at=1.0))
    resolve(db.run(txn))
    return SqlArchiveStore(db)


def entry(n: int, peer: JID = BOB, user: JID = ALICE, outgoing: bool = False) -> ArchiveEntry:
    return ArchiveEntry(user, T0 + n, f"id{n}", peer, outgoing,
                        b"<message xmlns='jabber:client'><body>%d</body></message>" % n)


@pytest.fixture
def filled(store: ArchiveStore) -> ArchiveStore:
    """Alice's archive: 0..9 with bob/phone (even: outgoing), 10..14 with carol/home."""
    entries = [entry(n, JID.parse("bob@example.org/phone"), outgoing=n % 2 == 0)
               for n in range(10)]
    entries += [entry(n, JID.parse("carol@example.org/home")) for n in range(10, 15)]
    assert resolve(store.append(entries)) == [True] * 15
    return store


def ids(page) -> list[str]:  # type: ignore[no-untyped-def]
    return [m.id for m in page.items]


def test_append_refuses_unknown_accounts_only(store: ArchiveStore) -> None:
    got = resolve(store.append([entry(1), entry(2, user=NOBODY), entry(3, user=BOB)]))
    assert got == [True, False, True]
    assert ids(resolve(store.query(ALICE, Query(), max=10))) == ["id1"]
    assert ids(resolve(store.query(BOB, Query(), max=10))) == ["id3"]


def test_forward_pages_with_after(filled: ArchiveStore) -> None:
    p1 = resolve(filled.query(ALICE, Query(), max=4))
    assert ids(p1) == ["id0", "id1", "id2", "id3"]
    assert (p1.count, p1.complete) == (15, False)
    p2 = resolve(filled.query(ALICE, Query(), max=4, after="id3"))
    assert ids(p2) == ["id4", "id5", "id6", "id7"] and not p2.complete
    p4 = resolve(filled.query(ALICE, Query(), max=4, after="id11"))
    assert ids(p4) == ["id12", "id13", "id14"] and p4.complete
    assert resolve(filled.query(ALICE, Query(), max=3, after="id11")).complete
    empty = resolve(filled.query(ALICE, Query(), max=4, after="id14"))
    assert ids(empty) == [] and empty.complete and empty.count == 15


def test_backward_pages_with_before(filled: ArchiveStore) -> None:
    last = resolve(filled.query(ALICE, Query(), max=4, before=""))
    assert ids(last) == ["id11", "id12", "id13", "id14"]        # chronological within the page
    assert not last.complete
    prev = resolve(filled.query(ALICE, Query(), max=4, before="id3"))
    assert ids(prev) == ["id0", "id1", "id2"] and prev.complete
    short = resolve(filled.query(ALICE, Query(), max=3, before="id4"))
    assert ids(short) == ["id1", "id2", "id3"] and not short.complete   # id0 is left


def test_index_pages_out_of_order(filled: ArchiveStore) -> None:
    page = resolve(filled.query(ALICE, Query(), max=3, index=6))
    assert ids(page) == ["id6", "id7", "id8"] and not page.complete


def test_with_bare_full_and_time(filled: ArchiveStore) -> None:
    assert ids(resolve(filled.query(ALICE, Query(with_jid=CAROL), max=50))) == \
        [f"id{n}" for n in range(10, 15)]
    assert ids(resolve(filled.query(ALICE, Query(with_jid=JID.parse(
        "bob@example.org/phone")), max=50))) == [f"id{n}" for n in range(10)]
    assert ids(resolve(filled.query(ALICE, Query(with_jid=JID.parse(
        "bob@example.org/laptop")), max=50))) == []
    page = resolve(filled.query(ALICE, Query(start=T0 + 3, end=T0 + 6), max=50))
    assert ids(page) == ["id3", "id4", "id5", "id6"] and page.count == 4 and page.complete
    both = resolve(filled.query(ALICE, Query(with_jid=BOB, start=T0 + 8), max=1))
    assert ids(both) == ["id8"] and both.count == 2 and not both.complete


def test_form_ids_and_their_errors(filled: ArchiveStore) -> None:
    between = Query(after_id="id2", before_id="id6")
    assert ids(resolve(filled.query(ALICE, between, max=50))) == ["id3", "id4", "id5"]
    assert ids(resolve(filled.query(ALICE, Query(ids=("id9", "id1")), max=50))) == \
        ["id1", "id9"]
    for bad in (Query(after_id="nope"), Query(before_id="nope"), Query(ids=("id1", "nope"))):
        with pytest.raises(ItemNotFound):
            resolve(filled.query(ALICE, bad, max=50))
    for kw in ({"after": "nope"}, {"before": "nope"}):
        with pytest.raises(ItemNotFound):
            resolve(filled.query(ALICE, Query(), max=5, **kw))  # type: ignore[arg-type]
    with pytest.raises(ItemNotFound):           # another archive's id is not in this one
        resolve(filled.query(BOB, Query(after_id="id1"), max=5))


def test_max_zero_counts_only(filled: ArchiveStore) -> None:
    page = resolve(filled.query(ALICE, Query(with_jid=CAROL), max=0))
    assert ids(page) == [] and page.count == 5 and not page.complete


def test_bounds_and_purge(filled: ArchiveStore) -> None:
    first, last = resolve(filled.bounds(ALICE))
    assert first is not None and last is not None
    assert (first.id, first.seq, last.id, last.seq) == ("id0", T0, "id14", T0 + 14)
    assert resolve(filled.bounds(BOB)) == (None, None)
    assert resolve(filled.purge(T0 + 5)) == 5
    assert ids(resolve(filled.query(ALICE, Query(), max=3))) == ["id5", "id6", "id7"]


def test_prefs_and_settings(db: Database, store: ArchiveStore) -> None:
    assert resolve(store.settings(ALICE)) == ArchiveSettings(None)
    assert resolve(store.settings(NOBODY)) is None
    prefs = Prefs("roster", (BOB, JID.parse("carol@example.org/home")), (JID.parse("x.org"),))
    resolve(store.set_prefs(ALICE, prefs))
    assert resolve(store.settings(ALICE)) == ArchiveSettings(prefs)
    resolve(store.set_prefs(ALICE, Prefs("never")))
    assert resolve(store.settings(ALICE)) == ArchiveSettings(Prefs("never"))
    resolve(db.run(lambda conn: conn.execute(delete(accounts).where(
        accounts.c.username == "alice"))))
    assert resolve(store.settings(ALICE)) is None
    assert ids(resolve(store.query(ALICE, Query(), max=5))) == []


def test_a_sent_origin_id_is_found_for_its_sender_only(store: ArchiveStore) -> None:
    sent = ArchiveEntry(ALICE, T0 + 1, "id1", BOB, True, b"<message/>", origin_id="o-1")
    received = ArchiveEntry(BOB, T0 + 2, "id2", ALICE, False, b"<message/>")
    resolve(store.append([sent, received]))
    assert resolve(store.sent_before(ALICE, "o-1")) is True
    assert resolve(store.sent_before(ALICE, "o-2")) is False
    assert resolve(store.sent_before(BOB, "o-1")) is False     # another's archive
