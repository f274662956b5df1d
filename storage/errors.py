# tests: tests/storage/test_db.py
"""Errors raised by stores and caches.

`StorageError` is the *expected* failure of a storage backend: the database or Redis is down,
busy, timed out, lost the connection, or refused a write because of a concurrent change. An IQ
handler lets it propagate (the framework answers `internal-server-error`, type `wait`); a hook
logs it and continues (STYLE.md §8). Programming errors (bad SQL, wrong types) are not wrapped:
they surface as themselves so they are logged as bugs.
"""
from __future__ import annotations


class StorageError(Exception):
    """A storage backend failed in a way the caller should expect and survive.

    `transient`: the backend is unreachable, overloaded or restarting (connection refused or
    lost, timeouts, "database is locked"): the same operation can succeed later, so a write the
    server promised must be retried, and a client may only be told to wait. False for failures
    that repeating will not fix (a constraint violation, a value the column cannot hold)."""

    def __init__(self, message: str = "", *, transient: bool = True) -> None:
        super().__init__(message)
        self.transient = transient


class NoSuchAccount(StorageError):
    """A write for an account that does not exist (any more): a per-user row has nothing to
    belong to. Not transient."""

    def __init__(self, message: str = "no such account") -> None:
        super().__init__(message, transient=False)
