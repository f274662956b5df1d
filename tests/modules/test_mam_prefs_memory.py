# tests: modules/mam/prefs.py
"""XEP-0441 preferences kept in memory for the users seen lately (issue 18): a login and a
message for a user who has been seen read no storage, and what is kept stays right."""
from __future__ import annotations

from typing import Any, Callable

import pytest

from stanzas.jid import JID
from tests.harness.server import Harness, resolve
from tests.modules.messaging import messaging, module

ALICE, BOB = "alice@example.org", "bob@example.org"
NS = "urn:xmpp:mam:2"


@pytest.fixture
def h(make_harness: Callable[..., Harness]) -> Harness:
    return messaging(make_harness)


def counting_reads(h: Harness, monkeypatch: Any) -> list[JID]:
    store = h.server.stores.archive
    reads: list[JID] = []
    real = store.settings

    async def settings(user: JID) -> Any:
        reads.append(user)
        return await real(user)
    monkeypatch.setattr(store, "settings", settings)
    return reads


def test_a_second_login_and_messages_to_the_user_read_no_preferences(
        h: Harness, monkeypatch: Any) -> None:
    b = h.login(f"{BOB}/b")
    b.close()
    reads = counting_reads(h, monkeypatch)
    b = h.login(f"{BOB}/b")
    b.close()
    a = h.login(f"{ALICE}/a")
    a.send(f"<message to='{BOB}' type='chat'><body>while you were out</body></message>")
    assert JID.parse(BOB) not in reads


def test_preferences_set_in_a_session_apply_after_it_ended(h: Harness,
                                                           monkeypatch: Any) -> None:
    b = h.login(f"{BOB}/b")
    b.send(f"<iq type='set' id='p'><prefs xmlns='{NS}' default='never'><always/><never/>"
           "</prefs></iq>")
    b.expect(f"<iq type='result' id='p' to='{BOB}/b' from='{BOB}'><prefs xmlns='{NS}' "
             "default='never'><always/><never/></prefs></iq>")
    b.close()
    reads = counting_reads(h, monkeypatch)
    writes = module(h, "mam").writes
    before = writes.items_written
    h.login(f"{ALICE}/a").send(f"<message to='{BOB}' type='chat'><body>x</body></message>")
    assert writes.items_written == before + 1        # alice's copy only: bob said never
    assert JID.parse(BOB) not in reads


def test_a_deleted_account_is_forgotten(h: Harness) -> None:
    h.login(f"{BOB}/b").close()
    prefs = module(h, "mam").prefs
    assert JID.parse(BOB) in prefs.known
    assert resolve(h.server.accounts.delete("bob", "example.org"))
    assert JID.parse(BOB) not in prefs.known
