"""The session manager (xmppd/sessions.py): binding policy, routing views, typed session slots."""
from __future__ import annotations

from typing import Any

import pytest

from stanzas.errors import StanzaError, StreamError
from stanzas.jid import JID
from xmppd.sessions import SessionKey, SessionManager, SessionState

ROMEO = JID.parse("romeo@example.org")


class Fake(SessionState):
    def __init__(self, priority: int = 0, available: bool = True) -> None:
        self._state: dict[SessionKey[Any], Any] = {}
        self.jid = ROMEO
        self.priority, self.available = priority, available
        self.closed_with: str | None = None

    def close(self, error: StreamError | None = None) -> None:
        self.closed_with = error.condition if error else None


def test_same_resource_replaces_the_old_session_with_conflict() -> None:
    sm = SessionManager()
    a, b = Fake(), Fake()
    a.jid = sm.bind(ROMEO, "phone", a)  # type: ignore[arg-type]
    b.jid = sm.bind(ROMEO, "phone", b)  # type: ignore[arg-type]
    assert a.closed_with == "conflict" and sm.get(b.jid) is b
    assert not sm.unbind(a) and sm.unbind(b)  # type: ignore[arg-type]
    assert sm.resources(ROMEO) == []


def test_too_many_resources_is_a_resource_constraint() -> None:
    sm = SessionManager(max_sessions_per_user=1)
    sm.bind(ROMEO, "a", Fake())  # type: ignore[arg-type]
    with pytest.raises(StanzaError) as e:
        sm.bind(ROMEO, "b", Fake())  # type: ignore[arg-type]
    assert e.value.condition == "resource-constraint"


def test_available_is_non_negative_priority_highest_first() -> None:
    sm = SessionManager()
    low, high, negative, away = Fake(1), Fake(5), Fake(-1), Fake(9, available=False)
    for res, s in (("l", low), ("h", high), ("n", negative), ("w", away)):
        sm.bind(ROMEO, res, s)  # type: ignore[arg-type]
    assert sm.available(ROMEO) == [high, low]       # RFC 6121 §8.5.2.1.1
    assert sm.is_online(ROMEO)


def test_session_keys_are_typed_slots_and_resumption_moves_only_resumable_ones() -> None:
    carbons: SessionKey[bool] = SessionKey("carbons")
    inactive: SessionKey[list[bytes]] = SessionKey("csi", resumable=False)
    old, new = Fake(), Fake()
    old.set(carbons, True)
    assert old.setdefault(inactive, list) == [] and old.get(inactive) == []
    assert old.get(SessionKey("other"), False) is False
    new.move_state(old)
    assert new.get(carbons) is True and new.get(inactive) is None
    assert old.get(carbons) is None
    assert new.pop(carbons) is True and new.get(carbons) is None
