"""XEP-0359 stanza ids from the archive's pooled randomness (modules/mam/archiving.py)."""
from __future__ import annotations

import os
import re

from modules.mam.archiving import _Uids


def test_ids_are_unique_url_safe_and_carry_96_bits() -> None:
    uids = _Uids()
    ids = [uids() for _ in range(5000)]             # several refills of the pool
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{16}", i) for i in ids)


def test_a_forked_child_does_not_repeat_its_parents_ids() -> None:
    uids = _Uids()
    uids()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:                                    # pragma: no cover (the child)
        os.write(w, uids().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(r, 64).decode()
    os.close(r)
    os.close(w)
    assert child != uids()
