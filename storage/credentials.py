# tests: tests/core/test_sasl.py, tests/storage/test_accounts_store.py
"""The SCRAM credential type (RFC 5802 §3) stored per account: storage keeps it, xmppd/sasl.py
derives and checks it."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ScramCredentials:
    """What we keep instead of a password, per hash (RFC 5802 §3): never the password itself."""

    salt: bytes
    iterations: int
    stored_key: bytes
    server_key: bytes
