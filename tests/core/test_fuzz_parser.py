# tests: xmppd/xmlstream.py, xmppd/xmlreserved.py
"""Fuzzing the stream parser with hypothesis (bounded: a few seconds in `make test`): for any
bytes, only StreamError comes out, and every split of the bytes gives the same stanzas and
the same error. The regression corpus (tests/fuzz/corpus/: issue 13's attacks, restricted XML,
reserved namespaces) is replayed byte by byte and in random splits."""
from __future__ import annotations

import random

import pytest
from hypothesis import example, given

from tests.fuzz.strategies import CUTS, FUZZ, MARKUP, corpus_mutation, xml_stream
from tests.fuzz.targets import check_parser, corpus


@pytest.mark.parametrize(("name", "data"), corpus(), ids=[n for n, _ in corpus()])
def test_corpus_gives_the_same_outcome_in_every_split(name: str, data: bytes) -> None:
    check_parser(data, list(range(len(data))))                  # byte by byte
    rng = random.Random(name)
    for _ in range(10):
        check_parser(data, [rng.randrange(len(data) + 1) for _ in range(rng.randint(1, 12))])


@FUZZ
@given(xml_stream(MARKUP), CUTS)
def test_xml_ish_streams_split_anywhere(data: bytes, cuts: list[int]) -> None:
    check_parser(data, cuts)


@FUZZ
@given(corpus_mutation(MARKUP), CUTS)
# Found here: a read ending inside an `xmlns:xml` value holding '>' (tests/core/test_xmlstream.py).
@example(b"<tream:stream xmlns='jabber:client' xmlns:xml=']]> xmlns:stream='http://etherx.jabber"
         b".org/streams' to='example.org' version='1.0'>", [50])
def test_corpus_mutations_split_anywhere(data: bytes, cuts: list[int]) -> None:
    check_parser(data, cuts)
