# tests: modules/pep/remote.py, modules/pep/service.py, modules/caps.py
"""PEP for contacts on other servers (modules/pep/remote.py) on the in-memory harness: the
remote server is the router's `remote` seam (what we send it is captured) and what it sends
us is routed as S2SService.inbound does."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from lxml import etree

from modules.pep import PepService
from stanzas.jid import JID
from tests.harness.server import Harness, parse
from tests.modules.contacts import put
from tests.modules.pep_helpers import (
    CAPS, EVENT, INFO, MODULES, TUNE, caps, notify, ok, online, publish, result_of, tune)

A = "alice@example.org"
R = "romeo@remote.example"
NODE = "http://test.example/c"


class RemoteServer:
    """remote.example: captures what our server sends it, sends it stanzas."""

    def __init__(self, h: Harness) -> None:
        self.h = h
        self.out: list[etree._Element] = []
        h.server.router.remote = lambda el, sender, to: self.out.append(el)

    def send(self, xml: str) -> None:
        self.h.server.router.route(parse(xml))

    def take(self, tag: str) -> list[etree._Element]:
        found = [el for el in self.out if etree.QName(el).localname == tag]
        self.out = [el for el in self.out if el not in found]
        return found

    def online(self, full: str, features: list[str] | None, to: str = A) -> None:
        """Presence from `full` to our user, with caps for `features`; answers the server's
        disco#info question, if it asks one."""
        if features is None:
            self.send(f"<presence from='{full}' to='{to}'/>")
            return
        ver, body = caps(features)
        self.send(f"<presence from='{full}' to='{to}'><c xmlns='{CAPS}' hash='sha-1' "
                  f"node='{NODE}' ver='{ver}'/></presence>")
        for q in self.take("iq"):
            assert (q.get("type"), q.get("to"), q.get("from")) == ("get", full, "example.org")
            query = q.find(f"{{{INFO}}}query")
            assert query is not None and query.get("node") == f"{NODE}#{ver}"
            self.send(f"<iq type='result' id='{q.get('id')}' from='{full}' to='example.org'>"
                      f"<query xmlns='{INFO}' node='{NODE}#{ver}'>{body}</query></iq>")

    def notifications(self) -> list[tuple[str | None, str | None]]:
        """(to, artist) of each tune notification sent since the last call."""
        got = []
        for m in self.take("message"):
            assert m.get("type") == "headline" and m.get("from") == A, etree.tostring(m)
            artist = m.find(f"{{{EVENT}}}event/{{{EVENT}}}items/{{{EVENT}}}item/"
                            f"{{{TUNE}}}tune/{{{TUNE}}}artist")
            got.append((m.get("to"), artist.text if artist is not None else None))
        return got


@pytest.fixture
def h(make_harness: Callable[..., Harness]) -> Harness:
    return make_harness(modules=dict(MODULES))


@pytest.fixture
def remote(h: Harness) -> RemoteServer:
    return RemoteServer(h)


def remote_state(h: Harness) -> Any:
    service = h.server.hosts["example.org"].services[PepService]
    assert isinstance(service, PepService) and service.remote is not None
    return service.remote


def test_a_remote_contact_with_notify_caps_gets_live_notifications(
        h: Harness, remote: RemoteServer) -> None:
    put(h, A, R, "both")
    alice = online(h, A + "/phone")
    remote.online(R + "/pda", notify(TUNE))
    remote.online(R + "/laptop", [])                    # no interest: nothing for it
    ok(result_of(alice, publish(TUNE, tune("Finzi"))))
    assert remote.notifications() == [(R + "/pda", "Finzi")]


def test_a_remote_contact_coming_online_gets_the_last_item(
        h: Harness, remote: RemoteServer) -> None:
    put(h, A, R, "both")
    alice = online(h, A + "/phone")
    ok(result_of(alice, publish(TUNE, tune("Holst"))))
    assert remote.notifications() == []
    remote.online(R + "/pda", notify(TUNE))
    sent = remote.take("message")
    assert len(sent) == 1 and sent[0].get("to") == R + "/pda"
    assert sent[0].find(f"{{{EVENT}}}event") is not None
    assert sent[0].find("{urn:xmpp:delay}delay") is not None      # XEP-0163 §4.3.2
    remote.online(R + "/pda", notify(TUNE))             # a status change: not again
    assert remote.take("message") == []


def test_without_a_from_subscription_nothing_goes_until_it_is_approved(
        h: Harness, remote: RemoteServer) -> None:
    put(h, A, R, "to")                                  # alice sees romeo, not the reverse
    alice = online(h, A + "/phone")
    remote.online(R + "/pda", notify(TUNE))
    ok(result_of(alice, publish(TUNE, tune("Elgar"))))
    assert remote.notifications() == []
    put(h, A, R, "both")
    ok(result_of(alice, publish(TUNE, tune("Walton"))))
    assert remote.notifications() == [(R + "/pda", "Walton")]
    remote.online(R + "/pda", notify(TUNE))             # its next presence: the last item
    assert remote.notifications() == [(R + "/pda", "Walton")]


def test_unavailable_forgets_the_resource(h: Harness, remote: RemoteServer) -> None:
    put(h, A, R, "both")
    alice = online(h, A + "/phone")
    remote.online(R + "/pda", notify(TUNE))
    remote.send(f"<presence type='unavailable' from='{R}/pda' to='{A}'/>")
    ok(result_of(alice, publish(TUNE, tune("Byrd"))))
    assert remote.notifications() == []
    assert remote_state(h).resources == {}


def test_presence_from_strangers_is_not_tracked(h: Harness, remote: RemoteServer) -> None:
    h.user(A)
    ver, _ = caps(notify(TUNE))
    remote.send(f"<presence from='mallory@remote.example/x' to='{A}'><c xmlns='{CAPS}' "
                f"hash='sha-1' node='{NODE}' ver='{ver}'/></presence>")
    assert remote.take("iq") == []                      # not even asked
    assert remote_state(h).resources == {}


def test_a_known_caps_string_is_not_asked_again(h: Harness, remote: RemoteServer) -> None:
    put(h, A, R, "both")
    put(h, A, "juliet@remote.example", "both")
    alice = online(h, A + "/phone", notify(TUNE))       # the same client software as romeo
    remote.online(R + "/pda", notify(TUNE))
    ver, _ = caps(notify(TUNE))
    remote.send(f"<presence from='juliet@remote.example/x' to='{A}'><c xmlns='{CAPS}' "
                f"hash='sha-1' node='{NODE}' ver='{ver}'/></presence>")
    assert remote.take("iq") == []
    ok(result_of(alice, publish(TUNE, tune("Tallis"))))
    assert sorted(remote.notifications()) == [("juliet@remote.example/x", "Tallis"),
                                              (R + "/pda", "Tallis")]


def test_caps_that_do_not_verify_give_no_interest(h: Harness, remote: RemoteServer) -> None:
    put(h, A, R, "both")
    alice = online(h, A + "/phone")
    remote.send(f"<presence from='{R}/pda' to='{A}'><c xmlns='{CAPS}' hash='sha-1' "
                f"node='{NODE}' ver='bm90LXRoZS1oYXNo'/></presence>")
    q = remote.take("iq")[0]
    _, body = caps(notify(TUNE))                        # features that hash to something else
    remote.send(f"<iq type='result' id='{q.get('id')}' from='{R}/pda' to='example.org'>"
                f"<query xmlns='{INFO}' node='{NODE}#bm90LXRoZS1oYXNo'>{body}</query></iq>")
    ok(result_of(alice, publish(TUNE, tune("Dowland"))))
    assert remote.notifications() == []


def test_resources_per_remote_contact_are_bounded(h: Harness, remote: RemoteServer) -> None:
    from modules.pep.remote import MAX_RESOURCES
    put(h, A, R, "both")
    for n in range(MAX_RESOURCES + 5):
        remote.online(f"{R}/r{n}", None)
    assert len(remote_state(h).resources[JID.parse(R)]) == MAX_RESOURCES
