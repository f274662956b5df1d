"""Stores are built on first use and shared (storage/stores.py)."""
from __future__ import annotations

from storage.cache import MemoryCache
from storage.db import Database, ImmediateRunner
from storage.stores import Stores


def test_nothing_is_built_until_asked_and_then_once() -> None:
    db = Database("sqlite://", runner=ImmediateRunner())
    stores = Stores(db, MemoryCache())
    assert stores.built() == []
    muc = stores.muc
    assert stores.muc is muc and stores.built() == ["muc"]
    assert stores.roster is stores.roster and stores.built() == ["muc", "roster"]
    db.close()
