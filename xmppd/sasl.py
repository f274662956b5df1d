# tests: tests/core/test_sasl.py
"""SASL server mechanisms (RFC 4422), sans-IO: SCRAM-SHA-1/-256 (RFC 5802/7677) and PLAIN (RFC 4616).

(Being written; the value type below is the contract storage uses.)
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ScramCredentials:
    """What we keep instead of a password, per hash (RFC 5802 §3): never the password itself."""

    salt: bytes
    iterations: int
    stored_key: bytes
    server_key: bytes
