"""HostSettingsStore contract on SQLite and PostgreSQL (storage/settings.py)."""
from __future__ import annotations

import pytest

from storage.db import Database
from storage.settings import SqlHostSettingsStore
from tests.harness.backends import resolve


def test_put_get_replace_delete_per_host(db: Database) -> None:
    store = SqlHostSettingsStore(db)
    assert resolve(store.get("example.org", "motd")) is None
    resolve(store.put("example.org", "motd", b"hello", 1.0))
    resolve(store.put("example.net", "motd", b"other host", 1.0))
    assert resolve(store.get("example.org", "motd")) == b"hello"
    resolve(store.put("example.org", "motd", b"\x00binary\xff", 2.0))     # replaced
    assert resolve(store.get("example.org", "motd")) == b"\x00binary\xff"
    assert resolve(store.get("example.net", "motd")) == b"other host"
    assert resolve(store.delete("example.org", "motd")) is True
    assert resolve(store.delete("example.org", "motd")) is False
    assert resolve(store.get("example.org", "motd")) is None
    assert resolve(store.get("example.net", "motd")) == b"other host"


@pytest.mark.parametrize("name", ["", "x" * 65])
def test_names_are_bounded(db: Database, name: str) -> None:
    with pytest.raises(ValueError):
        resolve(SqlHostSettingsStore(db).get("example.org", name))
