# tests: modules/invites/__init__.py, modules/invites/commands.py, modules/invites/service.py, modules/register.py
"""Invitations on the harness: XEP-0401 commands (XEP-0050), XEP-0445 pre-authenticated
in-band registration, single use, expiry, reserved names, and the contacts they make."""
from __future__ import annotations

import ipaddress
import re
from typing import Any, Callable

import pytest
from lxml import etree

from stanzas.jid import JID
from tests.harness.server import Harness, resolve
from tests.harness.stream import HEADER, StreamClient

CMD = "http://jabber.org/protocol/commands"
XDATA = "jabber:x:data"
STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
INVITE, CREATE = "urn:xmpp:invite#invite", "urn:xmpp:invite#create-account"


@pytest.fixture
def make(make_harness: Callable[..., Harness]) -> Callable[..., Harness]:
    def build(limits: dict[str, Any] | None = None, **invites: Any) -> Harness:
        return make_harness(modules={"disco": {}, "roster": {}, "presence": {}, "register": {},
                                     "adhoc": {},
                                     "invites": {"admins": ["admin@example.org"], **invites}},
                            limits=limits or {})
    return build


@pytest.fixture
def h(make: Callable[..., Harness]) -> Harness:
    return make()


def run(c: StreamClient, node: str, extra: str = "", attrs: str = "") -> etree._Element:
    c.send(f"<iq type='set' id='c1' to='example.org'><command xmlns='{CMD}' node='{node}' "
           f"{attrs}>{extra}</command></iq>")
    return c.received()[-1]


def fields(answer: etree._Element) -> dict[str, str]:
    x = answer.find(f".//{{{XDATA}}}x")
    return {f.get("var"): f.findtext(f"{{{XDATA}}}value") or "" for f in x}


def token_of(uri: str) -> str:
    found = re.search(r"preauth=([A-Za-z0-9_-]+)", uri)
    assert found
    return found.group(1)


def condition(answer: etree._Element) -> str:
    err = answer.find("{jabber:client}error")
    assert err is not None, etree.tostring(answer)
    return next(etree.QName(c).localname for c in err if etree.QName(c).namespace == STANZAS)


def preauth_stream(h: Harness, token: str | None) -> tuple[StreamClient, etree._Element]:
    """A new connection (not logged in) that presents `token` (XEP-0445 §4)."""
    c = StreamClient(h, "nobody@example.org", login=False)
    c.send(HEADER.format(host="example.org"))
    [features] = c.received()
    assert features.find("{urn:xmpp:ibr-token:0}register") is not None
    if token is None:
        return c, features
    c.send(f"<iq type='set' id='pa1' to='example.org'><preauth xmlns='urn:xmpp:pars:0' "
           f"token='{token}'/></iq>")
    return c, c.received()[-1]


def register(c: StreamClient, username: str, password: str = "new-pw-1") -> etree._Element:
    c.send(f"<iq type='set' id='r1'><query xmlns='jabber:iq:register'><username>{username}"
           f"</username><password>{password}</password></query></iq>")
    return c.received()[-1]


# -- the commands ------------------------------------------------------------------------------

def test_commands_are_listed_for_who_may_run_them(h: Harness) -> None:
    def nodes(who: str) -> list[str]:
        c = h.login(who)
        c.send(f"<iq type='get' id='d' to='example.org'><query xmlns="
               f"'http://jabber.org/protocol/disco#items' node='{CMD}'/></iq>")
        return [i.get("node") for i in c.received()[-1].iter("{*}item")]
    assert nodes("alice@example.org/a") == [INVITE]
    assert nodes("admin@example.org/a") == [INVITE, CREATE]
    admin = h.login("admin@example.org/b")
    admin.send(f"<iq type='get' id='i' to='example.org'><query xmlns="
               f"'http://jabber.org/protocol/disco#info' node='{CREATE}'/></iq>")
    info = admin.received()[-1]
    assert info.find("{*}query/{*}identity").get("type") == "command-node"


def test_a_user_invitation_completes_at_once(make: Callable[..., Harness]) -> None:
    h = make(landing_url="https://chat.example.org/invite")
    alice = h.login("alice@example.org/a")
    answer = run(alice, INVITE, attrs="action='execute'")
    assert answer.find(f"{{{CMD}}}command").get("status") == "completed"
    f = fields(answer)
    token = token_of(f["uri"])
    assert f["uri"] == f"xmpp:alice@example.org?roster;preauth={token};ibr=y"
    assert f["landing-url"] == f"https://chat.example.org/invite/{token}"
    assert f["FORM_TYPE"] == "urn:xmpp:invite#invitation" and f["expire"].endswith("Z")
    assert len(token) >= 32


def test_account_invitation_form_then_submit(h: Harness) -> None:
    admin = h.login("admin@example.org/a")
    answer = run(admin, CREATE)
    cmd = answer.find(f"{{{CMD}}}command")
    assert cmd.get("status") == "executing"
    session = cmd.get("sessionid")
    form = (f"<x xmlns='{XDATA}' type='submit'><field var='username'><value>juliet</value>"
            "</field></x>")
    answer = run(admin, CREATE, form, f"sessionid='{session}' action='complete'")
    uri = fields(answer)["uri"]
    assert uri == f"xmpp:juliet@example.org?register;preauth={token_of(uri)}"
    answer = run(admin, CREATE, form, f"sessionid='{session}'")        # the session is over
    assert condition(answer) == "not-allowed"       # XEP-0050 §4.6 session-expired (adhoc)


def test_only_admins_create_accounts(h: Harness) -> None:
    assert condition(run(h.login("alice@example.org/a"), CREATE)) == "forbidden"
    assert condition(run(h.login("alice@example.org/b"), "urn:nope")) == "item-not-found"


# -- XEP-0445 registration with a token --------------------------------------------------------

def test_invited_sign_up_makes_contacts_and_is_single_use(h: Harness) -> None:
    alice = h.login("alice@example.org/a")
    alice.send("<iq type='get' id='rost'><query xmlns='jabber:iq:roster'/></iq>")
    alice.received()
    token = token_of(fields(run(alice, INVITE))["uri"])
    c, answer = preauth_stream(h, token)
    assert answer.get("type") == "result"
    assert register(c, "juliet").get("type") == "result"
    assert resolve(h.server.accounts.exists(JID.parse("juliet@example.org")))
    push = alice.received()[-1]                     # XEP-0401 §5: a roster push
    assert push.find("{jabber:iq:roster}query/{jabber:iq:roster}item").get("jid") == \
        "juliet@example.org"
    from modules.roster import RosterService
    roster = h.server.hosts["example.org"].services[RosterService]
    assert resolve(roster.subscription(JID.parse("juliet@example.org"),
                                       JID.parse("alice@example.org"))) == "both"
    _, again = preauth_stream(h, token)
    assert condition(again) == "item-not-found"


def test_without_a_token_registration_is_refused_outside_allow_from(h: Harness) -> None:
    c, _ = preauth_stream(h, None)
    assert condition(register(c, "mallory")) == "not-allowed"


def test_an_expired_token_is_refused_but_expiry_counts_when_presented(
        make: Callable[..., Harness]) -> None:
    h = make(lifetime="2 min", limits={"auth_timeout": "10 min"})
    alice = h.login("alice@example.org/a")
    token = token_of(fields(run(alice, INVITE))["uri"])
    c, answer = preauth_stream(h, token)
    assert answer.get("type") == "result"
    h.clock.advance(180)                            # expired since
    assert register(c, "juliet").get("type") == "result"     # §4: checked at <preauth/>
    token2 = token_of(fields(run(alice, INVITE))["uri"])
    h.clock.advance(180)
    _, late = preauth_stream(h, token2)
    assert condition(late) == "item-not-found"


def test_a_reserved_name_needs_its_invitation(make: Callable[..., Harness]) -> None:
    h = make()
    h.server.hosts["example.org"].modules["register"].policy.allow = \
        (ipaddress.ip_network("127.0.0.0/8"),)      # in-band sign-up open to this client
    admin = h.login("admin@example.org/a")
    form = (f"<x xmlns='{XDATA}' type='submit'><field var='username'><value>juliet</value>"
            "</field></x>")
    token = token_of(fields(run(admin, CREATE, form))["uri"])
    other, _ = preauth_stream(h, None)
    assert condition(register(other, "juliet")) == "conflict"      # XEP-0401 §5
    c, _ = preauth_stream(h, token)
    assert condition(register(c, "romeo")) == "not-acceptable"      # not the invitation's name
    c2, _ = preauth_stream(h, token)
    assert register(c2, "juliet").get("type") == "result"


def test_a_failed_sign_up_does_not_spend_the_token(h: Harness) -> None:
    h.user("taken@example.org")
    alice = h.login("alice@example.org/a")
    token = token_of(fields(run(alice, INVITE))["uri"])
    c, _ = preauth_stream(h, token)
    assert condition(register(c, "taken")) == "conflict"
    c2, _ = preauth_stream(h, token)
    assert register(c2, "free").get("type") == "result"

