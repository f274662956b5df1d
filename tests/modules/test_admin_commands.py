# tests: modules/admin_commands/__init__.py, modules/admin_commands/users.py, modules/admin_commands/announce.py, modules/admin_commands/lists.py
"""XEP-0133 on the harness: each command as an admin, and refused (<forbidden/>) otherwise."""
from __future__ import annotations

from collections.abc import Callable

import pytest

from modules.register import RegistrationPolicy
from stanzas.jid import JID
from tests.harness.server import Harness, resolve
from tests.modules.adhoc_helpers import ADMIN, CMD, cmd, command, error, notes, run, values
from xmppd.server import Server

MODULES = {"disco": {}, "roster": {}, "presence": {}, "adhoc": {}, "admin_commands": {},
           "register": {"allow_from": ["127.0.0.0/8"]}}
NODES = ["add-user", "delete-user", "disable-user", "reenable-user", "end-user-session",
         "change-user-password", "user-stats", "get-registered-users-num",
         "get-disabled-users-num", "get-online-users-num", "get-registered-users-list",
         "get-disabled-users-list", "get-online-users-list", "announce", "set-motd",
         "edit-motd", "delete-motd", "edit-whitelist", "edit-blacklist"]


@pytest.fixture
def h(make_harness: Callable[..., Harness]) -> Harness:
    return make_harness(modules=MODULES, hosts=("example.org", "example.net"),
                        server={"hosts": ["example.org", "example.net"],
                                "admins": ["boss@example.org"]})


def node(name: str) -> str:
    return f"{ADMIN}#{name}"


def test_admins_see_every_command_and_others_none(h: Harness) -> None:
    boss = h.login("boss@example.org/desk")
    alice = h.login("alice@example.org/a")
    for who, expected in ((boss, NODES), (alice, [])):
        who.send(f"<iq type='get' id='l' to='example.org'><query xmlns='http://jabber.org/protocol/disco#items' node='{CMD}'/></iq>")
        [answer] = who.received()
        assert sorted(i.get("node") for i in answer[0]) == sorted(node(n) for n in expected)


@pytest.mark.parametrize("name", NODES)
def test_non_admins_are_forbidden(h: Harness, name: str) -> None:
    alice = h.login("alice@example.org/a")
    assert error(command(alice, node(name))) == ("forbidden", None)
    assert resolve(h.server.stores.accounts.get("alice", "example.org")) is not None


def test_add_user(h: Harness) -> None:
    boss = h.login("boss@example.org/desk")
    form = cmd(command(boss, node("add-user")))
    assert form.get("status") == "executing"
    assert values(form, "FORM_TYPE") == [ADMIN]
    done = run(boss, node("add-user"), {"accountjid": "carol@example.org", "password": "pw1",
                                         "password-verify": "pw1"})
    assert cmd(done).get("status") == "completed"
    assert resolve(h.server.stores.accounts.get("carol", "example.org")) is not None
    assert error(run(boss, node("add-user"), {"accountjid": "carol@example.org",
                                              "password": "x"})) == ("conflict", None)
    assert error(run(boss, node("add-user"), {"accountjid": "dan@example.org", "password": "a",
                                              "password-verify": "b"})) == ("not-acceptable", None)
    assert error(run(boss, node("add-user"), {"accountjid": "dan@elsewhere.test",
                                              "password": "a"})) == ("not-acceptable", None)
    assert error(run(boss, node("add-user"), {"accountjid": "a@b@c", "password": "a"})) == \
        ("jid-malformed", None)


def test_delete_user_ends_sessions_and_reports_unknown_accounts(h: Harness) -> None:
    boss = h.login("boss@example.org/desk")
    alice = h.login("alice@example.org/a")
    done = run(boss, node("delete-user"), {"accountjids": ["alice@example.org",
                                                           "ghost@example.org"]})
    assert notes(done) == [("info", "deleted: alice@example.org"),
                           ("error", "no such account: ghost@example.org")]
    assert alice.closed_with == "not-authorized"
    assert resolve(h.server.stores.accounts.get("alice", "example.org")) is None


def test_disable_and_reenable(h: Harness) -> None:
    boss = h.login("boss@example.org/desk")
    alice = h.login("alice@example.org/a")
    run(boss, node("disable-user"), {"accountjids": "alice@example.org"})
    assert alice.closed_with == "not-authorized"
    assert resolve(h.server.stores.accounts.get("alice", "example.org")).disabled
    count = run(boss, node("get-disabled-users-num"))
    assert values(cmd(count), "disabledusersnum") == ["1"]
    listed = run(boss, node("get-disabled-users-list"), {"max_items": "25"})
    assert values(cmd(listed), "disableduserjids") == ["alice@example.org"]
    run(boss, node("reenable-user"), {"accountjids": "alice@example.org"})
    assert not resolve(h.server.stores.accounts.get("alice", "example.org")).disabled
    h.login("alice@example.org/again")


def test_end_user_session_bare_ends_all_full_ends_one(h: Harness) -> None:
    boss = h.login("boss@example.org/desk")
    a1, a2 = h.login("alice@example.org/one"), h.login("alice@example.org/two")
    run(boss, node("end-user-session"), {"accountjids": "alice@example.org/one"})
    assert a1.closed_with == "policy-violation" and a2.closed_with is None
    b1, b2 = h.login("bob@example.org/one"), h.login("bob@example.org/two")
    done = run(boss, node("end-user-session"), {"accountjids": ["bob@example.org",
                                                                "nobody@example.org"]})
    assert b1.closed_with == b2.closed_with == "policy-violation"
    assert ("warn", "no session: nobody@example.org") in notes(done)


def test_change_password(h: Harness) -> None:
    boss = h.login("boss@example.org/desk")
    h.user("alice@example.org", "old")
    before = resolve(h.server.stores.accounts.get("alice", "example.org")).credentials
    run(boss, node("change-user-password"), {"accountjid": "alice@example.org",
                                             "password": "new"})
    assert resolve(h.server.stores.accounts.get("alice", "example.org")).credentials != before
    missing = run(boss, node("change-user-password"), {"accountjid": "ghost@example.org",
                                                       "password": "new"})
    assert notes(missing) == [("error", "no such account: ghost@example.org")]


def test_user_stats_numbers_and_lists(h: Harness) -> None:
    boss = h.login("boss@example.org/desk")
    h.login("alice@example.org/phone")
    h.login("alice@example.org/laptop")
    h.user("carol@example.org")
    h.login("dave@example.net/x")                       # another host: not counted here
    stats = cmd(run(boss, node("user-stats"), {"accountjid": "alice@example.org"}))
    assert sorted(values(stats, "onlineresources")) == ["alice@example.org/laptop",
                                                        "alice@example.org/phone"]
    assert values(stats, "ipaddresses") == ["127.0.0.1"]
    assert values(stats, "rostersize") == ["0"]
    assert values(cmd(run(boss, node("get-registered-users-num"))), "registeredusersnum") == ["3"]
    assert values(cmd(run(boss, node("get-online-users-num"))), "onlineusersnum") == ["2"]
    online = cmd(run(boss, node("get-online-users-list"), {"max_items": "none"}))
    assert values(online, "onlineuserjids") == ["alice@example.org", "boss@example.org"]
    one = run(boss, node("get-registered-users-list"), {"max_items": "25"})
    assert values(cmd(one), "registereduserjids") == ["alice@example.org", "boss@example.org",
                                                      "carol@example.org"]
    assert error(run(boss, node("get-online-users-list"), {"max_items": "7"})) == \
        ("not-acceptable", None)


def test_announce_reaches_every_online_session_of_the_host(h: Harness) -> None:
    boss = h.login("boss@example.org/desk")
    a1, a2 = h.login("alice@example.org/one"), h.login("alice@example.org/two")
    other = h.login("dave@example.net/x")
    done = run(boss, node("announce"), {"subject": "Maintenance",
                                        "announcement": "Down at 10:00"})
    assert notes(done) == [("info", "sent to 3 online session(s)")]
    for c in (a1, a2, boss):
        [msg] = [e for e in c.received() if e.tag.endswith("message")]
        assert msg.get("type") == "headline" and msg.get("from") == "example.org"
        assert msg.findtext("{jabber:client}body") == "Down at 10:00"
        assert msg.findtext("{jabber:client}subject") == "Maintenance"
    assert not [e for e in other.received() if e.tag.endswith("message")]


def arrive(h: Harness, jid: str) -> object:
    """Log in and send initial presence, keeping what comes after it for the test."""
    c = h.login(jid, available=False)
    c.send("<presence/>")
    return c


def motd_bodies(client: object) -> list[str]:
    return [e.findtext("{jabber:client}body") or "" for e in client.received()  # type: ignore[attr-defined]
            if e.tag.endswith("message")]


def test_message_of_the_day_once_per_user_and_change(h: Harness) -> None:
    boss = h.login("boss@example.org/desk")
    alice = h.login("alice@example.org/a")
    h.user("carol@example.org")
    run(boss, node("set-motd"), {"motd": "Welcome back"})
    assert motd_bodies(alice) == ["Welcome back"] and motd_bodies(boss) == ["Welcome back"]
    alice2 = arrive(h, "alice@example.org/b")           # alice saw this one already
    assert motd_bodies(alice2) == []
    carol = arrive(h, "carol@example.org/c")            # offline when it was set: once, now
    assert motd_bodies(carol) == ["Welcome back"]
    h.disconnect(carol)  # type: ignore[arg-type]
    assert motd_bodies(arrive(h, "carol@example.org/c")) == []
    form = cmd(command(boss, node("edit-motd")))
    assert values(form, "motd") == ["Welcome back"]     # §4.25: prefilled
    command(boss, node("edit-motd"), action="complete", sessionid=form.get("sessionid"),
            fields={"motd": "Welcome back!"})
    assert motd_bodies(alice) == ["Welcome back!"]      # a change: everyone sees it once
    dave = arrive(h, "dave@example.org/d")
    assert motd_bodies(dave) == ["Welcome back!"]
    run(boss, node("delete-motd"))
    assert motd_bodies(arrive(h, "erin@example.org/e")) == []


def test_registration_lists_are_edited_and_survive_a_restart(h: Harness) -> None:
    boss = h.login("boss@example.org/desk")
    policy = h.server.hosts["example.org"].services[RegistrationPolicy]
    assert isinstance(policy, RegistrationPolicy)
    assert policy.permits("127.0.0.5") and not policy.permits("10.1.2.3")
    form = cmd(command(boss, node("edit-whitelist")))
    assert values(form, "whitelistjids") == ["127.0.0.0/8"]
    command(boss, node("edit-whitelist"), action="complete", sessionid=form.get("sessionid"),
            fields={"whitelistjids": ["127.0.0.0/8", "10.0.0.0/8"]})
    run(boss, node("edit-blacklist"), {"blacklistjids": ["10.9.0.0/16"]})
    assert policy.permits("10.1.2.3") and not policy.permits("10.9.1.1")
    assert error(run(boss, node("edit-blacklist"), {"blacklistjids": "not-a-network"})) == \
        ("not-acceptable", None)
    # a second server on the same database reads the stored lists, not allow_from
    again = Server(h.config, reactor=h.clock, db=h.db, cache=h.cache)
    again.load_modules()
    try:
        other = again.hosts["example.org"].services[RegistrationPolicy]
        assert isinstance(other, RegistrationPolicy)
        assert other.permits("10.1.2.3") and not other.permits("10.9.1.1")
        net = again.hosts["example.net"].services[RegistrationPolicy]
        assert isinstance(net, RegistrationPolicy) and not net.permits("10.1.2.3")
    finally:
        resolve(again.stop())
