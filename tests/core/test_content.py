# tests: stanzas/content.py
"""What a message carries (stanzas/content.py): receipts, markers and other payloads are
content, chat states alone are not, hints and server-made wrappers are reported; moved here
from tests/modules/test_receipts.py with the code."""
from __future__ import annotations

import pytest

from stanzas.content import classify
from tests.harness.match import parse

RECEIPT = "<received xmlns='urn:xmpp:receipts' id='m1'/>"
MARKER = "<displayed xmlns='urn:xmpp:chat-markers:0' id='m1'/>"


@pytest.mark.parametrize("payload, expected", [
    ("<body>x</body>", {"body"}),
    (RECEIPT, {"receipt"}),
    ("<request xmlns='urn:xmpp:receipts'/><body>x</body>", {"body", "receipt"}),
    (MARKER, {"marker"}),
    ("<markable xmlns='urn:xmpp:chat-markers:0'/>", {"marker"}),
    ("<composing xmlns='http://jabber.org/protocol/chatstates'/><thread>t</thread>",
     {"chat_state"}),
    ("<encrypted xmlns='eu.siacs.conversations.axolotl'/>", {"other"}),
    ("<private xmlns='urn:xmpp:carbons:2'/><no-copy xmlns='urn:xmpp:hints'/>",
     {"private", "no_copy"}),
    ("<received xmlns='urn:xmpp:carbons:2'/>", {"copy"}),
    ("<result xmlns='urn:xmpp:mam:2'/>", {"copy"}),
    ("<no-store xmlns='urn:xmpp:hints'/><no-permanent-store xmlns='urn:xmpp:hints'/>"
     "<store xmlns='urn:xmpp:hints'/>", {"no_store", "no_permanent_store", "store"}),
    ("<stanza-id xmlns='urn:xmpp:sid:0' by='a@b' id='1'/><delay xmlns='urn:xmpp:delay'/>",
     set()),
], ids=lambda v: str(sorted(v) if isinstance(v, set) else v)[:40])  # not in hash order
def test_classify(payload: str, expected: set[str]) -> None:
    content = classify(parse(f"<message>{payload}</message>"))
    flags = {f for f in ("body", "receipt", "marker", "chat_state", "other", "private", "copy",
                         "no_store", "no_permanent_store", "no_copy", "store")
             if getattr(content, f)}
    assert flags == expected
    assert content.chat_state_only == (expected == {"chat_state"})


def test_server_wrappers_and_hints_are_not_content() -> None:
    copy = classify(parse("<message><sent xmlns='urn:xmpp:carbons:2'/></message>"))
    assert copy.copy and not copy.meaningful
    hinted = classify(parse("<message><store xmlns='urn:xmpp:hints'/></message>"))
    assert hinted.store and not hinted.meaningful
    assert not classify(parse("<message><thread>t</thread></message>")).meaningful


def test_shapes_are_remembered_within_bounds() -> None:
    """classify keeps the content of each shape (tuple of child tags) it saw, at most
    _MAX_SHAPES of them and none with long tags: a stranger's many shapes cannot grow it."""
    from stanzas import content
    for i in range(3 * content._MAX_SHAPES):
        assert classify(parse(f"<message><x{i} xmlns='urn:x:{i}'/></message>")).other
    assert len(content._SHAPES) <= content._MAX_SHAPES
    long_ns = "urn:x:" + "y" * content._MAX_KEY
    before = len(content._SHAPES)
    assert classify(parse(f"<message><x xmlns='{long_ns}'/><body>b</body></message>")).body
    assert len(content._SHAPES) == before            # too long to keep
    # the same shape twice: the same answer, now from the table
    commented = "<message><!-- c --><receipt xmlns='urn:xmpp:receipts'/></message>"
    assert classify(parse(commented)) == classify(parse(commented))
    assert classify(parse(commented)).receipt
