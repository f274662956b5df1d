"""PubsubStore contract on SQLite and PostgreSQL."""
from __future__ import annotations

import pytest

from storage.accounts import SqlAccountStore
from storage.db import Database
from storage.errors import StorageError
from storage.pubsub import Item, PubsubStore, SqlPubsubStore
from tests.harness.backends import resolve
from stanzas.jid import JID

ALICE = JID.parse("alice@example.org")
BOB = JID.parse("bob@example.org")
CAROL_NET = JID.parse("carol@example.net")
NOBODY = JID.parse("nobody@example.org")
TUNE, MOOD = "http://jabber.org/protocol/tune", "http://jabber.org/protocol/mood"
CONFIG = {"access_model": "presence", "max_items": 1}


@pytest.fixture
def store(db: Database) -> PubsubStore:
    accounts = SqlAccountStore(db)
    for user in (ALICE, BOB, CAROL_NET):
        assert user.local is not None
        resolve(accounts.create(user.local, user.domain, {}, 1.0))
    return SqlPubsubStore(db)


def item(id: str, payload: bytes = b"<x xmlns='urn:t'/>", at: float = 10.0) -> Item:
    return Item(id, payload, "alice@example.org/phone", at)


def ids(items: list[Item]) -> list[str]:
    return [i.id for i in items]


def test_create_reads_back_and_refuses_a_second_time(store: PubsubStore) -> None:
    assert resolve(store.node(ALICE, TUNE)) is None
    assert resolve(store.create(ALICE, TUNE, CONFIG, 5.0)) is True
    assert resolve(store.create(ALICE, TUNE, {"access_model": "open"}, 6.0)) is False
    node = resolve(store.node(ALICE, TUNE))
    assert (node.owner, node.name, dict(node.config), node.created_at) == (ALICE, TUNE, CONFIG, 5.0)
    assert resolve(store.node(BOB, TUNE)) is None          # nodes are per account


def test_nodes_lists_the_owners_nodes_by_name(store: PubsubStore) -> None:
    for name in (TUNE, MOOD, "a"):
        resolve(store.create(ALICE, name, CONFIG, 1.0))
    resolve(store.create(BOB, "b", CONFIG, 1.0))
    assert [n.name for n in resolve(store.nodes(ALICE))] == sorted(["a", MOOD, TUNE])
    assert [n.name for n in resolve(store.nodes(CAROL_NET))] == []


def test_node_of_an_unknown_account_cannot_be_created(store: PubsubStore) -> None:
    with pytest.raises(StorageError):
        resolve(store.create(NOBODY, TUNE, CONFIG, 1.0))


def test_configure_replaces_the_configuration(store: PubsubStore) -> None:
    assert resolve(store.configure(ALICE, TUNE, CONFIG)) is False
    resolve(store.create(ALICE, TUNE, CONFIG, 1.0))
    assert resolve(store.configure(ALICE, TUNE, {"access_model": "open", "groups": ["a b"]}))
    assert dict(resolve(store.node(ALICE, TUNE)).config) == {"access_model": "open",
                                                            "groups": ["a b"]}


def test_publish_keeps_order_and_replaces_by_id(store: PubsubStore) -> None:
    assert resolve(store.publish(ALICE, TUNE, item("1"), max_items=None)) is None   # no node
    resolve(store.create(ALICE, TUNE, CONFIG, 1.0))
    for i in ("1", "2", "3"):
        assert resolve(store.publish(ALICE, TUNE, item(i), max_items=None)) == []
    resolve(store.publish(ALICE, TUNE, item("1", b"<new xmlns='urn:t'/>", 11.0), max_items=None))
    got = resolve(store.items(ALICE, TUNE))
    assert ids(got) == ["2", "3", "1"]                     # republished: now the newest
    assert got[-1].payload == b"<new xmlns='urn:t'/>" and got[-1].published_at == 11.0
    assert got[-1].publisher == "alice@example.org/phone"


def test_publish_drops_the_oldest_beyond_max_items(store: PubsubStore) -> None:
    resolve(store.create(ALICE, TUNE, CONFIG, 1.0))
    for i in ("a", "b", "c"):
        resolve(store.publish(ALICE, TUNE, item(i), max_items=None))
    assert resolve(store.publish(ALICE, TUNE, item("d"), max_items=2)) == ["a", "b"]
    assert ids(resolve(store.items(ALICE, TUNE))) == ["c", "d"]
    assert resolve(store.publish(ALICE, TUNE, item("c"), max_items=2)) == []
    assert ids(resolve(store.items(ALICE, TUNE))) == ["d", "c"]


def test_items_by_id_and_newest(store: PubsubStore) -> None:
    resolve(store.create(ALICE, TUNE, CONFIG, 1.0))
    for i in ("a", "b", "c", "d"):
        resolve(store.publish(ALICE, TUNE, item(i), max_items=None))
    assert ids(resolve(store.items(ALICE, TUNE, last=2))) == ["c", "d"]
    assert ids(resolve(store.items(ALICE, TUNE, last=10))) == ["a", "b", "c", "d"]
    assert ids(resolve(store.items(ALICE, TUNE, ids=["d", "zz", "a"]))) == ["a", "d"]
    assert resolve(store.items(ALICE, "nope")) == []


def test_retract_and_purge(store: PubsubStore) -> None:
    resolve(store.create(ALICE, TUNE, CONFIG, 1.0))
    for i in ("a", "b", "c"):
        resolve(store.publish(ALICE, TUNE, item(i), max_items=None))
    assert resolve(store.retract(ALICE, TUNE, "b")) is True
    assert resolve(store.retract(ALICE, TUNE, "b")) is False
    assert ids(resolve(store.items(ALICE, TUNE))) == ["a", "c"]
    assert resolve(store.purge(ALICE, TUNE)) == 2
    assert resolve(store.items(ALICE, TUNE)) == []
    assert resolve(store.node(ALICE, TUNE)) is not None    # purge keeps the node


def test_delete_removes_items_and_subscriptions(store: PubsubStore) -> None:
    resolve(store.create(ALICE, TUNE, CONFIG, 1.0))
    resolve(store.publish(ALICE, TUNE, item("a"), max_items=None))
    resolve(store.subscribe(ALICE, TUNE, BOB, 2.0))
    assert resolve(store.delete(ALICE, TUNE)) is True
    assert resolve(store.delete(ALICE, TUNE)) is False
    assert resolve(store.items(ALICE, TUNE)) == []
    assert resolve(store.subscriptions_of(BOB)) == []
    resolve(store.create(ALICE, TUNE, CONFIG, 3.0))        # a new node starts empty
    assert resolve(store.items(ALICE, TUNE)) == []
    assert resolve(store.publish(ALICE, TUNE, item("z"), max_items=1)) == []


def test_last_items_reads_every_nodes_newest_item(store: PubsubStore) -> None:
    resolve(store.create(ALICE, TUNE, CONFIG, 1.0))
    resolve(store.create(ALICE, MOOD, CONFIG, 1.0))      # no items
    resolve(store.create(BOB, TUNE, {"access_model": "open"}, 1.0))
    resolve(store.create(CAROL_NET, TUNE, CONFIG, 1.0))
    for i in ("a1", "a2"):
        resolve(store.publish(ALICE, TUNE, item(i), max_items=None))
    resolve(store.publish(BOB, TUNE, item("b1"), max_items=None))
    resolve(store.publish(CAROL_NET, TUNE, item("c1"), max_items=None))
    got = {(li.node.owner, li.node.name): (li.item.id if li.item else None,
                                           li.node.config.get("access_model"))
           for li in resolve(store.last_items([ALICE, BOB, CAROL_NET, NOBODY, ALICE]))}
    assert got == {(ALICE, TUNE): ("a2", "presence"), (ALICE, MOOD): (None, "presence"),
                   (BOB, TUNE): ("b1", "open"), (CAROL_NET, TUNE): ("c1", "presence")}
    assert resolve(store.last_items([])) == []
    assert [li.node.owner for li in resolve(store.last_items([BOB]))] == [BOB]


def test_last_items_for_many_owners(store: PubsubStore, db: Database) -> None:
    accounts = SqlAccountStore(db)
    owners = [JID.parse(f"u{n}@example.org") for n in range(600)]
    for o in owners:
        assert o.local is not None
        resolve(accounts.create(o.local, o.domain, {}, 1.0))
    for o in owners[::100]:
        resolve(store.create(o, TUNE, CONFIG, 1.0))
        resolve(store.publish(o, TUNE, item(str(o)), max_items=1))
    got = resolve(store.last_items(owners))
    assert sorted(li.item.id for li in got if li.item) == sorted(str(o) for o in owners[::100])


def test_subscriptions(store: PubsubStore) -> None:
    bob_phone = JID.parse("bob@example.org/phone")
    assert resolve(store.subscribe(ALICE, TUNE, BOB, 1.0)) is False    # no node
    resolve(store.create(ALICE, TUNE, CONFIG, 1.0))
    resolve(store.create(CAROL_NET, MOOD, CONFIG, 1.0))
    assert resolve(store.subscribe(ALICE, TUNE, BOB, 1.0)) is True
    assert resolve(store.subscribe(ALICE, TUNE, BOB, 2.0)) is True     # again: no change
    assert resolve(store.subscribe(ALICE, TUNE, bob_phone, 2.0)) is True
    assert resolve(store.subscribe(CAROL_NET, MOOD, bob_phone, 2.0)) is True
    assert resolve(store.subscribers(ALICE, TUNE)) == [BOB, bob_phone]
    got = resolve(store.subscriptions_of(bob_phone))                  # by bare JID
    assert {(s.owner, s.node, s.subscriber) for s in got} == {
        (ALICE, TUNE, BOB), (ALICE, TUNE, bob_phone), (CAROL_NET, MOOD, bob_phone)}
    assert resolve(store.unsubscribe(ALICE, TUNE, BOB)) is True
    assert resolve(store.unsubscribe(ALICE, TUNE, BOB)) is False
    assert resolve(store.subscribers(ALICE, TUNE)) == [bob_phone]
    resolve(store.forget_subscriber(BOB))
    assert resolve(store.subscriptions_of(BOB)) == []


def test_deleting_the_account_deletes_its_nodes(store: PubsubStore, db: Database) -> None:
    resolve(store.create(ALICE, TUNE, CONFIG, 1.0))
    resolve(store.publish(ALICE, TUNE, item("a"), max_items=None))
    resolve(store.subscribe(ALICE, TUNE, BOB, 1.0))
    resolve(SqlAccountStore(db).delete("alice", "example.org"))
    assert resolve(store.nodes(ALICE)) == []
    assert resolve(store.items(ALICE, TUNE)) == []
    assert resolve(store.subscriptions_of(BOB)) == []


def test_bad_keys_are_refused(store: PubsubStore) -> None:
    with pytest.raises(ValueError):
        resolve(store.create(JID.parse("alice@example.org/phone"), TUNE, CONFIG, 1.0))
    with pytest.raises(ValueError):
        resolve(store.create(ALICE, "x" * 256, CONFIG, 1.0))
    resolve(store.create(ALICE, TUNE, CONFIG, 1.0))
    with pytest.raises(ValueError):
        resolve(store.publish(ALICE, TUNE, item(""), max_items=None))
    with pytest.raises(ValueError):
        resolve(store.publish(ALICE, TUNE, item("a"), max_items=0))
