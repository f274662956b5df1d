# tests: xmppd/c2s.py, xmppd/sasl.py
"""Fuzzing the client-to-server negotiation with hypothesis (bounded, in `make test`): any run
of client moves and garbage, cut anywhere, on a plain or an encrypted stream; invariants in
tests/fuzz/targets.py (no exception, nothing after the close, a well-formed answer, no stanza
before binding, no login without the password). The corpus is replayed too."""
from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.strategies import CUTS, FUZZ, MOVES, corpus_mutation, xml_stream
from tests.fuzz.targets import corpus, drive_c2s


@pytest.mark.parametrize(("name", "data"), corpus(), ids=[n for n, _ in corpus()])
def test_corpus_negotiations_keep_the_invariants(name: str, data: bytes) -> None:
    rng = random.Random(name)
    for secure in (True, False):
        drive_c2s(data, [], secure=secure)
        drive_c2s(data, [rng.randrange(len(data) + 1) for _ in range(8)], secure=secure)


def test_the_right_password_does_log_in() -> None:
    """The invariants are not vacuous: the corpus's good login reaches a bound stream (fed
    byte by byte: what a client pipelines after <auth/> is dropped, RFC 6120 §6.4.6)."""
    data = dict(corpus())["plain_guesses_then_right.xml"]
    assert drive_c2s(data, list(range(len(data)))).state == "bound"
    assert drive_c2s(data, []).state == "restart"


@FUZZ
@given(xml_stream(MOVES), CUTS, st.booleans())
def test_random_negotiations_keep_the_invariants(data: bytes, cuts: list[int],
                                                 secure: bool) -> None:
    drive_c2s(data, cuts, secure=secure)


@FUZZ
@given(corpus_mutation(MOVES), CUTS, st.booleans())
def test_corpus_mutations_keep_the_invariants(data: bytes, cuts: list[int],
                                              secure: bool) -> None:
    drive_c2s(data, cuts, secure=secure)
