"""PLAIN against SCRAM credentials: a password that matched is remembered (keyed hash) for
those credentials, so the next PLAIN login costs no PBKDF2 (xmppd/sasl.py)."""
from __future__ import annotations

import hashlib
from typing import Any

from xmppd import sasl
from xmppd.sasl import PlainServer, derive_scram


def counting_pbkdf2(monkeypatch: Any) -> list[int]:
    calls: list[int] = []
    real = hashlib.pbkdf2_hmac

    def pbkdf2(*args: Any, **kwargs: Any) -> bytes:
        calls.append(1)
        return real(*args, **kwargs)
    monkeypatch.setattr(sasl.hashlib, "pbkdf2_hmac", pbkdf2)
    return calls


def test_a_matched_password_is_checked_again_without_pbkdf2(monkeypatch: Any) -> None:
    creds = derive_scram("correct horse", "SCRAM-SHA-256", iterations=64)
    calls = counting_pbkdf2(monkeypatch)
    assert PlainServer.verify("correct horse", creds, "SCRAM-SHA-256")
    assert len(calls) == 1
    assert PlainServer.verify("correct horse", creds, "SCRAM-SHA-256")
    assert len(calls) == 1


def test_a_wrong_password_always_pays_the_full_check(monkeypatch: Any) -> None:
    creds = derive_scram("correct horse", "SCRAM-SHA-256", iterations=64)
    assert PlainServer.verify("correct horse", creds, "SCRAM-SHA-256")
    calls = counting_pbkdf2(monkeypatch)
    for _ in range(2):
        assert not PlainServer.verify("battery staple", creds, "SCRAM-SHA-256")
    assert len(calls) == 2


def test_a_changed_password_leaves_nothing_that_matches() -> None:
    old = derive_scram("old secret", "SCRAM-SHA-1", iterations=64)
    assert PlainServer.verify("old secret", old, "SCRAM-SHA-1")
    new = derive_scram("new secret", "SCRAM-SHA-1", iterations=64)
    assert not PlainServer.verify("old secret", new, "SCRAM-SHA-1")
    assert PlainServer.verify("new secret", new, "SCRAM-SHA-1")


def test_the_memory_is_bounded(monkeypatch: Any) -> None:
    monkeypatch.setattr(sasl, "PLAIN_MEMORY", 3)
    monkeypatch.setattr(sasl, "_PLAIN_VERIFIED", {})
    for i in range(5):
        creds = derive_scram(f"pw{i}", "SCRAM-SHA-1", iterations=16)
        assert PlainServer.verify(f"pw{i}", creds, "SCRAM-SHA-1")
    assert len(sasl._PLAIN_VERIFIED) == 3
