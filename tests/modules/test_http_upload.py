# tests: modules/http_upload.py
"""XEP-0363 slot requests, discovery and expiry on the in-memory harness (the HTTP side with a
real client is tests/integration/test_upload_slixmpp.py)."""
from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from modules.http_upload import HttpUpload
from tests.harness.server import Harness, resolve

BASE = "https://files.example.org/upload"
NS = "urn:xmpp:http:upload:0"


@pytest.fixture
def up(make_harness: Callable[..., Harness], tmp_path: Path) -> Harness:
    return make_harness(modules={"disco": {}, "http_upload": {
        "directory": str(tmp_path / "files"), "max_file_size": "10 MiB", "quota": "15 MiB",
        "base_url": BASE, "slot_timeout": "60 s", "expire_after": "1 h"}},
        hosts=("example.org", "other.org"))


def request(size: int, filename: str = "photo.jpg", ctype: str = "image/jpeg",
            id: str = "s1") -> str:
    return (f"<iq type='get' id='{id}' to='upload.example.org'><request xmlns='{NS}' "
            f"filename='{filename}' size='{size}' content-type='{ctype}'/></iq>")


def slot_result(id: str, to: str = "alice@example.org/phone") -> str:
    return (f"<iq type='result' id='{id}' from='upload.example.org' to='{to}'>"
            f"<slot xmlns='{NS}'><put url='{{any}}'/><get url='{{any}}'/></slot></iq>")


def error(id: str, kind: str, condition: str, extra: str = "",
          to: str = "alice@example.org/phone") -> str:
    """An error reply: the request is echoed back (RFC 6120 §8.3.1), then <error/>."""
    return (f"<iq type='error' id='{id}' from='upload.example.org' to='{to}'>"
            f"<request xmlns='{NS}' filename='{{any}}' size='{{any}}' content-type='{{any}}'/>"
            f"<error type='{kind}'><{condition} xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
            "<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas' xml:lang='en'>{any}</text>"
            f"{extra}</error></iq>")


def test_service_is_listed_in_the_hosts_disco_items(up: Harness) -> None:
    alice = up.login("alice@example.org/phone")
    alice.send("<iq type='get' id='i1' to='example.org'>"
               "<query xmlns='http://jabber.org/protocol/disco#items'/></iq>")
    alice.expect("<iq type='result' id='i1' from='example.org' to='alice@example.org/phone'>"
                 "<query xmlns='http://jabber.org/protocol/disco#items'>"
                 "<item jid='upload.example.org' name='HTTP File Upload'/></query></iq>")


def test_service_announces_identity_feature_and_max_file_size(up: Harness) -> None:
    alice = up.login("alice@example.org/phone")
    alice.send("<iq type='get' id='i2' to='upload.example.org'>"
               "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
    alice.expect(
        "<iq type='result' id='i2' from='upload.example.org' to='alice@example.org/phone'>"
        "<query xmlns='http://jabber.org/protocol/disco#info'>"
        "<identity category='store' type='file' name='HTTP File Upload'/>"
        "<feature var='http://jabber.org/protocol/disco#info'/>"
        "<feature var='http://jabber.org/protocol/disco#items'/>"
        f"<feature var='{NS}'/>"
        "<x xmlns='jabber:x:data' type='result'>"
        f"<field var='FORM_TYPE' type='hidden'><value>{NS}</value></field>"
        "<field var='max-file-size'><value>10485760</value></field></x></query></iq>")


def test_slot_has_one_unguessable_url_for_put_and_get(up: Harness) -> None:
    alice = up.login("alice@example.org/phone")
    alice.send(request(1234, "très cool.jpg"))
    reply = alice.expect(f"<iq type='result' id='s1' from='upload.example.org' "
                         f"to='alice@example.org/phone'><slot xmlns='{NS}'>"
                         f"<put url='{{any}}'/><get url='{{any}}'/></slot></iq>")
    put = reply[0][0].get("url")
    assert put == reply[0][1].get("url")
    m = re.fullmatch(re.escape(BASE) + r"/([A-Za-z0-9_-]+)/tr%C3%A8s%20cool\.jpg", put)
    assert m is not None and len(m.group(1)) * 6 >= 128     # >= 128 random bits
    alice.send(request(1234, id="s2"))
    other = alice.expect(slot_result("s2"))
    assert other[0][0].get("url").split("/")[-2] != m.group(1)


def test_file_over_the_limit_names_the_maximum(up: Harness) -> None:
    alice = up.login("alice@example.org/phone")
    alice.send(request(10 * 1024 * 1024 + 1))
    alice.expect(error("s1", "modify", "not-acceptable",
                       f"<file-too-large xmlns='{NS}'><max-file-size>10485760</max-file-size>"
                       "</file-too-large>"))


def test_quota_counts_open_slots_and_refuses_more(up: Harness) -> None:
    alice = up.login("alice@example.org/phone")
    alice.send(request(10 * 1024 * 1024, id="a"))
    alice.expect(slot_result("a"))
    alice.send(request(6 * 1024 * 1024, id="b"))
    alice.expect(error("b", "wait", "resource-constraint"))
    # an unused slot stops counting once it expires
    up.clock.advance(61)
    alice.send(request(6 * 1024 * 1024, id="c"))
    alice.expect(slot_result("c"))


@pytest.mark.parametrize("size, filename, ctype", [
    ("0", "a.jpg", "image/jpeg"), ("-5", "a.jpg", "image/jpeg"), ("x", "a.jpg", "image/jpeg"),
    ("10", "", "image/jpeg"), ("10", "../../etc/passwd", "image/jpeg"),
    ("10", "a" * 256, "image/jpeg"), ("10", "a.jpg", "not a type"),
])
def test_bad_requests_are_refused(up: Harness, size: str, filename: str, ctype: str) -> None:
    alice = up.login("alice@example.org/phone")
    alice.send(f"<iq type='get' id='s1' to='upload.example.org'><request xmlns='{NS}' "
               f"filename='{filename}' size='{size}' content-type='{ctype}'/></iq>")
    alice.expect(error("s1", "modify", "bad-request"))


def test_users_of_another_host_may_not_upload_here(up: Harness) -> None:
    mallory = up.login("mallory@other.org/x")
    mallory.send(request(10))
    mallory.expect(error("s1", "auth", "forbidden", to="mallory@other.org/x"))


def test_other_stanzas_to_the_service_are_unavailable(up: Harness) -> None:
    alice = up.login("alice@example.org/phone")
    alice.send("<iq type='set' id='x1' to='upload.example.org'><query xmlns='jabber:iq:version'/>"
               "</iq>")
    alice.expect("<iq type='error' id='x1' from='upload.example.org' "
                 "to='alice@example.org/phone'><query xmlns='jabber:iq:version'/>"
                 "<error type='cancel'><service-unavailable "
                 "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>")


def test_expired_slots_are_swept(up: Harness) -> None:
    alice = up.login("alice@example.org/phone")
    alice.send(request(100))
    token = alice.expect(slot_result("s1"))[0][0].get("url").split("/")[-2]
    module: Any = up.server.hosts["example.org"].modules["http_upload"]
    assert isinstance(module, HttpUpload)
    assert resolve(module.store.get(token)) is not None
    up.clock.advance(60)                        # slot_timeout passes, then the sweep runs
    up.clock.advance(60)
    assert resolve(module.store.get(token)) is None
