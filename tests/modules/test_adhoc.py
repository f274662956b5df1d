# tests: modules/adhoc.py
"""XEP-0050 framework on the harness, with a two-stage test command: discovery, sessions,
actions (next, prev, complete, cancel), and every error of §4.6."""
from __future__ import annotations

from collections.abc import Callable

import pytest

from modules import adhoc
from stanzas import forms
from tests.harness.server import Harness
from tests.modules.adhoc_helpers import CMD, cmd, command, error, notes, values
from xmppd.module import ModuleContext

NODE = "urn:test:wizard"
SECRET = "urn:test:secret"


def install(h: Harness) -> None:
    """A wizard (name, then colour, then done) for everyone, a secret command for nobody."""
    host = h.server.hosts["example.org"]
    ctx: ModuleContext[object] = host.contexts[-1]

    def first(data: adhoc.Input) -> adhoc.Stage:
        return adhoc.Stage(forms.build("form", [forms.Field("name")]), second, ("next",))

    def second(data: adhoc.Input) -> adhoc.Stage:
        assert data.form is not None
        name = data.form.one("name")
        return adhoc.Stage(forms.build("form", [forms.Field("colour")]),
                           lambda d: adhoc.Done((("info", f"{name} likes {d.form and d.form.one('colour')}"),)),
                           ("complete",), (("info", f"hello {name}"),))

    def contribute(q: adhoc.CommandsQuery, found: list[adhoc.Command]) -> list[adhoc.Command]:
        return [*found, adhoc.Command(NODE, "Wizard", first),
                adhoc.Command(SECRET, "Secret", first, lambda asker: False)]
    ctx.hook(adhoc.commands, contribute)


@pytest.fixture
def h(make_harness: Callable[..., Harness]) -> Harness:
    harness = make_harness(modules={"disco": {}, "adhoc": {"session_timeout": "1 min",
                                                           "max_sessions": 2}})
    install(harness)
    return harness


def test_discovery_lists_only_what_the_asker_may_run(h: Harness) -> None:
    alice = h.login("alice@example.org/a")
    alice.send("<iq type='get' id='i' to='example.org'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
    [got] = alice.received()
    assert got.get("type") == "result"
    assert got.find(f".//{{*}}feature[@var='{CMD}']") is not None
    alice.send(f"<iq type='get' id='l' to='example.org'><query xmlns='http://jabber.org/protocol/disco#items' node='{CMD}'/></iq>")
    alice.expect(f"<iq type='result' id='l' from='example.org' to='alice@example.org/a'><query xmlns='http://jabber.org/protocol/disco#items' node='{CMD}'>"
                 f"<item jid='example.org' node='{NODE}' name='Wizard'/></query></iq>")
    alice.send(f"<iq type='get' id='n' to='example.org'><query xmlns='http://jabber.org/protocol/disco#info' node='{NODE}'/></iq>")
    alice.expect(f"<iq type='result' id='n' from='example.org' to='alice@example.org/a'><query xmlns='http://jabber.org/protocol/disco#info' node='{NODE}'>"
                 "<identity category='automation' type='command-node' name='Wizard'/>"
                 f"<feature var='{CMD}'/><feature var='jabber:x:data'/></query></iq>")
    alice.send(f"<iq type='get' id='s' to='example.org'><query xmlns='http://jabber.org/protocol/disco#info' node='{SECRET}'/></iq>")
    assert error(alice.received()[0]) == ("forbidden", None)
    alice.send("<iq type='get' id='u' to='example.org'><query xmlns='http://jabber.org/protocol/disco#info' node='urn:nothing'/></iq>")
    assert error(alice.received()[0]) == ("item-not-found", None)


def test_next_prev_complete_through_a_session(h: Harness) -> None:
    alice = h.login("alice@example.org/a")
    one = cmd(command(alice, NODE))
    sid = one.get("sessionid")
    assert one.get("status") == "executing" and sid
    assert [(a.tag, a.get("execute")) for a in one.findall(f"{{{CMD}}}actions")] == \
        [(f"{{{CMD}}}actions", "next")]
    two = command(alice, NODE, action="next", sessionid=sid, fields={"name": "Alice"})
    assert notes(two) == [("info", "hello Alice")]
    actions = cmd(two).find(f"{{{CMD}}}actions")
    assert actions is not None and actions.get("execute") == "complete"
    assert [c.tag.split("}")[1] for c in actions] == ["prev", "complete"]
    back = cmd(command(alice, NODE, action="prev", sessionid=sid))
    assert values(back, "name") == []
    command(alice, NODE, action="next", sessionid=sid, fields={"name": "Al"})
    done = command(alice, NODE, action="complete", sessionid=sid, fields={"colour": "red"})
    assert cmd(done).get("status") == "completed" and notes(done) == [("info", "Al likes red")]
    # §3.4: the session has ended
    assert error(command(alice, NODE, action="complete", sessionid=sid,
                         fields={"colour": "red"})) == ("not-allowed", "session-expired")


def test_cancel_ends_the_session(h: Harness) -> None:
    alice = h.login("alice@example.org/a")
    sid = cmd(command(alice, NODE)).get("sessionid")
    gone = command(alice, NODE, action="cancel", sessionid=sid)
    assert cmd(gone).get("status") == "canceled"
    assert error(command(alice, NODE, action="next", sessionid=sid,
                         fields={"name": "x"})) == ("not-allowed", "session-expired")


def test_errors_of_section_4_6(h: Harness) -> None:
    alice = h.login("alice@example.org/a")
    assert error(command(alice, NODE, action="jump")) == ("bad-request", "malformed-action")
    assert error(command(alice, "")) == ("bad-request", "malformed-action")
    assert error(command(alice, "urn:nothing")) == ("item-not-found", None)
    assert error(command(alice, SECRET)) == ("forbidden", None)
    sid = cmd(command(alice, NODE)).get("sessionid")
    assert error(command(alice, NODE, action="complete", sessionid=sid,
                         fields={"name": "x"})) == ("bad-request", "bad-action")
    assert error(command(alice, NODE, action="prev", sessionid=sid)) == ("bad-request", "bad-action")
    assert error(command(alice, NODE, action="next", sessionid=sid)) == ("bad-request", "bad-payload")
    assert error(command(alice, NODE, action="next", sessionid="made-up",
                         fields={"name": "x"})) == ("not-allowed", "session-expired")


def test_sessions_belong_to_their_requester_and_expire(h: Harness) -> None:
    alice = h.login("alice@example.org/a")
    other = h.login("alice@example.org/b")
    sid = cmd(command(alice, NODE)).get("sessionid")
    assert error(command(other, NODE, action="next", sessionid=sid,
                         fields={"name": "x"})) == ("not-allowed", "session-expired")
    h.clock.advance(61)
    assert error(command(alice, NODE, action="next", sessionid=sid,
                         fields={"name": "x"})) == ("not-allowed", "session-expired")


def test_open_sessions_per_requester_are_bounded(h: Harness) -> None:
    alice = h.login("alice@example.org/a")
    cmd(command(alice, NODE))
    cmd(command(alice, NODE))
    assert error(command(alice, NODE)) == ("not-allowed", None)
