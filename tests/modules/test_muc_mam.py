"""XEP-0313 on room JIDs on the in-memory harness: who may read, filters, XEP-0059 paging,
what a result shows, errors, and the archive of a temporary room (kept while the room lasts)."""
from __future__ import annotations

from lxml import etree

import pytest

from modules.muc.config import Limits, RoomConfig
from stanzas.jid import JID
from storage.muc import ArchivedMessage, StoredRoom
from tests.harness.server import HarnessClient, Harness, resolve
from tests.modules.muc_helpers import (ROOM, SERVICE, admin_set, configure, create, error_of, h,
                                       join, muc)

__all__ = ["h", "muc"]
MAM, RSM = "urn:xmpp:mam:2", "http://jabber.org/protocol/rsm"
LIMITS = Limits(max_users=200, max_users_limit=1000, history=20, history_limit=100)


def query(s: HarnessClient, form: str = "", rsm: str = "", extra: str = "", qid: str = "q1"
          ) -> tuple[list[etree._Element], etree._Element]:
    x = ""
    if form:
        x = (f"<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'>"
             f"<value>{MAM}</value></field>{form}</x>")
    r = f"<set xmlns='{RSM}'>{rsm}</set>" if rsm else ""
    s.send(f"<iq type='set' id='mam' to='{ROOM}'><query xmlns='{MAM}' queryid='{qid}'>{x}{r}"
           f"{extra}</query></iq>")
    got = s.received()
    return [e for e in got if e.tag.endswith("message")], got[-1]


def bodies(results: list[etree._Element]) -> list[str]:
    return [m.findtext(f"{{{MAM}}}result/{{urn:xmpp:forward:0}}forwarded/"
                       "{jabber:client}message/{jabber:client}body") or "" for m in results]


def archived_room(h: Harness, n: int = 5, **config: object) -> tuple[HarnessClient, HarnessClient]:
    alice, bob = h.login("alice@example.org/r"), h.login("bob@example.org/r")
    create(alice, "alice", persistentroom=True, **config)  # type: ignore[arg-type]
    if config.get("membersonly"):
        admin_set(alice, "<item affiliation='member' jid='bob@example.org'/>")
    join(bob, "bob")
    for i in range(n):
        (alice if i % 2 == 0 else bob).send(
            f"<message to='{ROOM}' type='groupchat'><body>m{i}</body></message>")
        h.clock.advance(10)
    alice.received()
    bob.received()
    return alice, bob


def test_query_returns_what_was_said_with_the_same_ids(h: Harness) -> None:
    alice, bob = archived_room(h, 2)
    alice.send(f"<message to='{ROOM}' type='groupchat' id='x'><body>live</body></message>")
    live = bob.received()[0].find("{urn:xmpp:sid:0}stanza-id").get("id")
    alice.received()
    results, fin = query(bob)
    assert bodies(results) == ["m0", "m1", "live"]
    last = results[-1]
    assert last.get("from") == ROOM and last.get("to") == "bob@example.org/r"
    result = last.find(f"{{{MAM}}}result")
    assert result.get("queryid") == "q1" and result.get("id") == live
    fwd = result.find("{urn:xmpp:forward:0}forwarded")
    assert fwd.find("{urn:xmpp:delay}delay").get("stamp")
    original = fwd.find("{jabber:client}message")
    assert original.get("from") == f"{ROOM}/alice" and original.get("type") == "groupchat"
    assert fin.get("type") == "result"
    f = fin.find(f"{{{MAM}}}fin")
    assert f.get("complete") == "true"
    assert f.findtext(f"{{{RSM}}}set/{{{RSM}}}count") == "3"
    assert f.findtext(f"{{{RSM}}}set/{{{RSM}}}last") == live
    assert f.find(f"{{{RSM}}}set/{{{RSM}}}first").get("index") == "0"


def test_paging_forward_backward_and_flipped(h: Harness) -> None:               # XEP-0059
    alice, bob = archived_room(h, 5)
    results, fin = query(bob, rsm="<max>2</max>")
    assert bodies(results) == ["m0", "m1"]
    f = fin.find(f"{{{MAM}}}fin")
    assert f.get("complete") is None
    last = f.findtext(f"{{{RSM}}}set/{{{RSM}}}last")
    results, fin = query(bob, rsm=f"<max>2</max><after>{last}</after>")
    assert bodies(results) == ["m2", "m3"]
    results, fin = query(bob, rsm="<max>2</max><before/>")
    assert bodies(results) == ["m3", "m4"]
    assert fin.find(f"{{{MAM}}}fin/{{{RSM}}}set/{{{RSM}}}first").get("index") == "3"
    results, _ = query(bob, rsm="<max>2</max><before/>", extra="<flip-page/>")
    assert bodies(results) == ["m4", "m3"]
    results, fin = query(bob, rsm="<max>0</max>")
    assert results == [] and fin.findtext(f".//{{{RSM}}}count") == "5"


def test_filters_with_start_end(h: Harness) -> None:
    alice, bob = archived_room(h, 5)
    results, _ = query(bob, form=f"<field var='with'><value>{ROOM}/bob</value></field>")
    assert bodies(results) == ["m1", "m3"]
    results, _ = query(bob, form="<field var='start'><value>1970-01-12T13:46:50Z</value>"
                                 "</field><field var='end'><value>1970-01-12T13:47:10Z"
                                 "</value></field>")
    assert bodies(results) == ["m1", "m2", "m3"]     # sent at 1,000,010 s … 1,000,030 s


def test_bad_queries(h: Harness) -> None:
    alice, bob = archived_room(h, 2)
    _, fin = query(bob, rsm="<after>nope</after>")
    assert error_of(fin)[1] == "item-not-found"
    _, fin = query(bob, form="<field var='fulltext'><value>x</value></field>")
    assert error_of(fin)[1] == "bad-request"                            # §4.1.1
    _, fin = query(bob, form="<field var='with'><value>bob@example.org</value></field>")
    assert error_of(fin)[1] == "bad-request"
    _, fin = query(bob, form="<field var='start'><value>yesterday</value></field>")
    assert error_of(fin)[1] == "bad-request"


def test_real_jids_only_for_who_may_see_them(h: Harness) -> None:          # XEP-0313 §5.1.2
    alice, bob = archived_room(h, 2)
    bob_view, _ = query(bob)
    alice_view, _ = query(alice)
    x = "{http://jabber.org/protocol/muc#user}"
    assert all(m.find(f".//{x}item") is None for m in bob_view)        # semi-anonymous
    assert [m.find(f".//{x}item").get("jid") for m in alice_view] == \
        ["alice@example.org", "bob@example.org"]                         # a moderator
    configure(alice, whois="anyone")
    bob.received()
    bob_view, _ = query(bob)
    assert bob_view[0].find(f".//{x}item").get("jid") == "alice@example.org"


def test_members_only_archive_is_for_members(h: Harness) -> None:
    alice, bob = archived_room(h, 1, membersonly=True)
    eve = h.login("eve@example.org/r")
    _, fin = query(eve)
    assert error_of(fin) == ("auth", "forbidden")
    bob.send(f"<presence to='{ROOM}/bob' type='unavailable'/>")
    bob.received()
    results, _ = query(bob)                      # a member who left still catches up
    assert bodies(results) == ["m0"]
    admin_set(alice, "<item affiliation='outcast' jid='bob@example.org'/>")
    _, fin = query(bob)
    assert error_of(fin)[1] == "forbidden"


def test_open_room_archive_is_for_anyone_but_outcasts(h: Harness) -> None:
    alice, bob = archived_room(h, 1)
    eve = h.login("eve@example.org/r")
    assert bodies(query(eve)[0]) == ["m0"]


def say(s: HarnessClient, *bodies: str) -> None:
    for body in bodies:
        s.send(f"<message to='{ROOM}' type='groupchat'><body>{body}</body></message>")
    s.received()


def stored(h: Harness) -> object:
    return resolve(h.server.stores.muc.load_room(JID.parse(ROOM)))


def test_temporary_room_keeps_an_archive_that_goes_with_it(h: Harness) -> None:  # issue 11
    alice, bob = h.login("alice@example.org/r"), h.login("bob@example.org/r")
    create(alice, "alice")                                 # temporary; archiving is on
    join(bob, "bob")
    say(alice, "m0", "m1")
    bob.received()
    assert bodies(query(bob)[0]) == ["m0", "m1"]
    for s, nick in ((alice, "alice"), (bob, "bob")):
        s.send(f"<presence to='{ROOM}/{nick}' type='unavailable'/>")
        s.received()
    assert stored(h) is None                               # gone with its last occupant
    create(alice, "alice")                                 # the same name: a new room
    assert bodies(query(alice)[0]) == []


@pytest.mark.parametrize("var", ["enablelogging", "enablearchiving", "mam"])
def test_archiving_is_switched_by_every_field_name_clients_send(h: Harness, var: str) -> None:
    """Ours (XEP-0045's registered field), Prosody's and ejabberd's."""
    alice = h.login("alice@example.org/r")
    create(alice, "alice", **{var: False})
    say(alice, "unkept")
    assert error_of(query(alice)[1])[1] == "service-unavailable"
    assert stored(h) is None                               # a temporary room without archive
    configure(alice, **{var: True})
    say(alice, "kept")
    assert bodies(query(alice)[0]) == ["kept"]


def test_a_changed_archiving_field_wins_over_an_echoed_one(h: Harness) -> None:
    alice = h.login("alice@example.org/r")
    create(alice, "alice", enablelogging=True, mam=False)
    assert error_of(query(alice)[1])[1] == "service-unavailable"
    configure(alice, enablelogging=False, enablearchiving=True)
    say(alice, "kept")
    assert bodies(query(alice)[0]) == ["kept"]


def test_a_temporary_archive_left_by_a_crash_is_deleted(h: Harness) -> None:
    muc = h.server.stores.muc
    config = RoomConfig.defaults(LIMITS).to_json()          # temporary, archiving on
    resolve(muc.put_room(StoredRoom(JID.parse(ROOM), config, "secret", 1.0)))
    resolve(muc.archive([ArchivedMessage(JID.parse(ROOM), "old1", 2.0, "x", "x@example.org",
                                         b"<message xmlns='jabber:client'><body>old</body>"
                                         b"</message>")]))
    alice = h.login("alice@example.org/r")
    create(alice, "alice")                                 # 201: a brand new room
    assert bodies(query(alice)[0]) == []


def test_shutdown_deletes_temporary_archives_and_keeps_persistent_ones(h: Harness) -> None:
    alice = h.login("alice@example.org/r")
    create(alice, "alice")
    create(alice, "alice", room=f"kept@{SERVICE}", persistentroom=True)
    resolve(h.server.stop())
    assert stored(h) is None
    assert resolve(h.server.stores.muc.load_room(JID.parse(f"kept@{SERVICE}"))) is not None


def test_query_form(h: Harness) -> None:                                            # §4.1.5
    alice, _ = archived_room(h, 0)
    alice.send(f"<iq type='get' id='f' to='{ROOM}'><query xmlns='{MAM}'/></iq>")
    got = alice.received()[0]
    assert {f.get("var") for f in got.iter("{jabber:x:data}field")} == {
        "FORM_TYPE", "with", "start", "end", "after-id", "before-id"}


def test_subject_changes_are_archived(h: Harness) -> None:                 # XEP-0313 §5.1.2
    alice, bob = archived_room(h, 0)
    alice.send(f"<message to='{ROOM}' type='groupchat'><subject>Spells</subject></message>")
    results, _ = query(bob)
    assert results[0].findtext(".//{jabber:client}subject") == "Spells"


def test_private_messages_are_not_archived(h: Harness) -> None:           # XEP-0313 §5.1.2
    alice, bob = archived_room(h, 0)
    alice.send(f"<message to='{ROOM}/bob' type='chat'><body>secret</body></message>")
    assert [m.findtext("{jabber:client}body") for m in bob.received()] == ["secret"]
    assert query(bob)[0] == []


def test_a_message_is_handled_once_its_archive_write_is_committed(h: Harness) -> None:
    """DESIGN.md "✓ sent": the service says a groupchat message is handled only after the
    room archive write it caused is committed (group commit, storage/batch.py)."""
    from stanzas.jid import JID
    from tests.harness.match import parse
    from tests.modules.messaging import Gate, module
    alice, bob = archived_room(h, 0)
    service = module(h, "muc").service
    gate = Gate(service.archive_writes)

    def say(text: str) -> object:
        msg = parse(f"<message from='alice@example.org/r' to='{ROOM}' type='groupchat'>"
                    f"<body>{text}</body></message>")
        return service.receive(msg, JID.parse("alice@example.org/r"), JID.parse(ROOM))
    first, second = say("one"), say("two")
    assert first is not None and second is not None
    assert len(bob.received()) == 2                         # delivered before any commit
    assert not first.called and not second.called           # type: ignore[attr-defined]
    assert [len(items) for items, _ in gate.pending] == [1]  # the second waits for the first
    gate.open()
    assert first.called and not second.called               # type: ignore[attr-defined]
    gate.open()
    assert second.called                                    # type: ignore[attr-defined]
    assert bodies(query(bob)[0]) == ["one", "two"]
    presence = parse(f"<presence from='alice@example.org/r' to='{ROOM}/alice'/>")
    assert service.receive(presence, JID.parse("alice@example.org/r"),
                           JID.parse(f"{ROOM}/alice")) is None       # nothing to wait for
