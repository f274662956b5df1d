"""MucStore contract (storage/muc.py) on SQLite and PostgreSQL."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from storage.db import Database
from storage.models import muc_affiliations, muc_archive
from storage.muc import (AffiliationEntry, ArchivedMessage, ArchiveQuery, MucStore, SqlMucStore,
                         StoredRoom)
from tests.harness.backends import resolve
from stanzas.jid import JID

COVEN = JID.parse("coven@chat.example.org")
HEATH = JID.parse("heath@chat.example.org")
OTHER = JID.parse("coven@muc.example.net")
OWNER = AffiliationEntry("owner", "firstwitch")


@pytest.fixture
def store(db: Database) -> MucStore:
    return SqlMucStore(db)


def room(jid: JID = COVEN, **kw: object) -> StoredRoom:
    values: dict[str, object] = {"room": jid, "config": {"name": "A Dark Cave", "persistent": True},
                                 "secret": "s3cret", "created_at": 10.0,
                                 "affiliations": {"crone1@example.org": OWNER}}
    values.update(kw)
    return StoredRoom(**values)  # type: ignore[arg-type]


def msg(n: int, at: float | None = None, nick: str = "firstwitch", jid: JID = COVEN
        ) -> ArchivedMessage:
    return ArchivedMessage(jid, f"id{n}", float(n) if at is None else at, nick,
                           "crone1@example.org", f"<message>{n}</message>".encode())


def count(db: Database, table: object) -> int:
    return int(resolve(db.run(lambda c: c.execute(
        select(func.count()).select_from(table)).scalar_one())))  # type: ignore[arg-type]


def test_missing_room_is_none(store: MucStore) -> None:
    assert resolve(store.load_room(COVEN)) is None


def test_room_round_trips_with_affiliations(store: MucStore) -> None:
    resolve(store.put_room(room(subject="Spells", subject_nick="secondwitch", subject_at=12.5)))
    got = resolve(store.load_room(COVEN))
    assert got == room(subject="Spells", subject_nick="secondwitch", subject_at=12.5)
    assert resolve(store.load_room(OTHER)) is None      # same name, other service


def test_put_room_replaces_config_and_affiliations(store: MucStore) -> None:
    resolve(store.put_room(room()))
    resolve(store.put_room(room(config={"name": "Heath"},
                                affiliations={"hag66@example.org": AffiliationEntry("member")})))
    got = resolve(store.load_room(COVEN))
    assert got is not None
    assert got.config == {"name": "Heath"}
    assert dict(got.affiliations) == {"hag66@example.org": AffiliationEntry("member")}


def test_set_config_and_subject_need_a_stored_room(store: MucStore) -> None:
    assert resolve(store.set_config(COVEN, {"x": 1})) is False
    assert resolve(store.set_subject(COVEN, "s", "n", 1.0)) is False
    resolve(store.put_room(room()))
    assert resolve(store.set_config(COVEN, {"x": 1})) is True
    assert resolve(store.set_subject(COVEN, "Fire", "", 20.0)) is True
    got = resolve(store.load_room(COVEN))
    assert got is not None
    assert (got.config, got.subject, got.subject_nick, got.subject_at) == ({"x": 1}, "Fire", "",
                                                                           20.0)


def test_set_affiliations_is_all_or_nothing_per_room(store: MucStore, db: Database) -> None:
    assert resolve(store.set_affiliations(COVEN, {"a@example.org": AffiliationEntry("member")})) \
        is False
    assert count(db, muc_affiliations) == 0
    resolve(store.put_room(room()))
    assert resolve(store.set_affiliations(COVEN, {
        "a@example.org": AffiliationEntry("member", "a"),
        "evil.example": AffiliationEntry("outcast", reason="spam"),
        "crone1@example.org": None})) is True
    got = resolve(store.load_room(COVEN))
    assert got is not None
    assert dict(got.affiliations) == {"a@example.org": AffiliationEntry("member", "a"),
                                      "evil.example": AffiliationEntry("outcast", "", "spam")}
    resolve(store.set_affiliations(COVEN, {"a@example.org": AffiliationEntry("admin")}))
    got = resolve(store.load_room(COVEN))
    assert got is not None and got.affiliations["a@example.org"] == AffiliationEntry("admin")


def test_unknown_affiliation_is_refused(store: MucStore) -> None:
    resolve(store.put_room(room()))
    with pytest.raises(ValueError):
        resolve(store.set_affiliations(COVEN, {"a@example.org": AffiliationEntry("king")}))  # type: ignore[arg-type]


def test_list_rooms_of_one_service_in_order(store: MucStore) -> None:
    for jid in (HEATH, COVEN, OTHER):
        resolve(store.put_room(room(jid)))
    assert [r.room for r in resolve(store.list_rooms("chat.example.org"))] == [COVEN, HEATH]
    assert resolve(store.list_rooms("nowhere.example")) == []


def test_delete_room_takes_affiliations_and_archive(store: MucStore, db: Database) -> None:
    resolve(store.put_room(room()))
    resolve(store.archive([msg(1), msg(2)]))
    assert resolve(store.delete_room(COVEN)) is True
    assert resolve(store.delete_room(COVEN)) is False
    assert count(db, muc_affiliations) == 0 and count(db, muc_archive) == 0


def test_archive_skips_rooms_that_are_not_stored(store: MucStore) -> None:
    resolve(store.put_room(room()))
    assert resolve(store.archive([msg(1), msg(2, jid=HEATH), msg(3)])) == 2
    assert [m.stanza_id for m in resolve(store.recent(COVEN, 10))] == ["id1", "id3"]
    assert resolve(store.archive([])) == 0


def test_recent_returns_the_last_messages_oldest_first(store: MucStore) -> None:
    resolve(store.put_room(room()))
    resolve(store.archive([msg(n) for n in range(1, 8)]))
    got = resolve(store.recent(COVEN, 3))
    assert [m.stanza_id for m in got] == ["id5", "id6", "id7"]
    assert got[0] == msg(5)
    assert resolve(store.recent(COVEN, 0)) == []


@pytest.fixture
def filled(store: MucStore) -> MucStore:
    resolve(store.put_room(room()))
    resolve(store.put_room(room(HEATH)))
    resolve(store.archive([msg(n, nick="hag" if n % 3 == 0 else "crone") for n in range(1, 11)]))
    resolve(store.archive([msg(99, jid=HEATH)]))
    return store


def ids(page: object) -> list[str]:
    return [m.stanza_id for m in page.messages]  # type: ignore[attr-defined]


def test_query_pages_forward_from_the_start(filled: MucStore) -> None:
    page = resolve(filled.query(COVEN, ArchiveQuery(limit=4)))
    assert ids(page) == ["id1", "id2", "id3", "id4"]
    assert (page.complete, page.count, page.first_index) == (False, 10, 0)
    page = resolve(filled.query(COVEN, ArchiveQuery(limit=4, after="id8")))
    assert ids(page) == ["id9", "id10"]
    assert (page.complete, page.count, page.first_index) == (True, 10, 8)


def test_query_pages_backward_from_the_end_and_before_an_id(filled: MucStore) -> None:
    page = resolve(filled.query(COVEN, ArchiveQuery(limit=3, before="")))
    assert ids(page) == ["id8", "id9", "id10"]
    assert (page.complete, page.first_index) == (False, 7)
    page = resolve(filled.query(COVEN, ArchiveQuery(limit=3, before="id3")))
    assert ids(page) == ["id1", "id2"]
    assert (page.complete, page.first_index) == (True, 0)


def test_query_filters_by_time_and_nick(filled: MucStore) -> None:
    page = resolve(filled.query(COVEN, ArchiveQuery(start=3.0, end=7.0)))
    assert ids(page) == ["id3", "id4", "id5", "id6", "id7"]
    assert page.count == 5 and page.complete
    page = resolve(filled.query(COVEN, ArchiveQuery(nick="hag")))
    assert ids(page) == ["id3", "id6", "id9"]


def test_query_unknown_id_is_lookup_error(filled: MucStore) -> None:
    with pytest.raises(LookupError):
        resolve(filled.query(COVEN, ArchiveQuery(after="nope")))
    with pytest.raises(LookupError):
        resolve(filled.query(COVEN, ArchiveQuery(before="id99")))   # another room's id


def test_empty_archive_page(filled: MucStore) -> None:
    page = resolve(filled.query(COVEN, ArchiveQuery(start=100.0)))
    assert (ids(page), page.complete, page.count, page.first_index) == ([], True, 0, None)
