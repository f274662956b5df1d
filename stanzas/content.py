# tests: tests/core/test_content.py
"""What a <message/> carries, decided in one place, so that offline storage (XEP-0160),
the archive (XEP-0313), carbons (XEP-0280), CSI (XEP-0352) and stream management (XEP-0198)
recognise a receipt, a marker or a chat state the same way.

- Receipts (XEP-0184) and markers (XEP-0333) count as content: ✓✓ must never be lost
  (DESIGN.md), so a bodiless receipt is stored, archived and copied like a message.
- Chat states (XEP-0085) alone are not worth keeping (XEP-0160 §3).
- XEP-0334 hints, the XEP-0280 <private/> flag, and wrappers only the server makes (carbons
  <sent/>/<received/>, MAM <result/>) are reported as such; stanza ids and delays are not
  content.
"""
from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from stanzas import ns

_IGNORED = frozenset({ns.STANZA_ID, ns.DELAY})     # ids and delay stamps: no content


@dataclass(frozen=True, slots=True)
class Content:
    """What a <message/> carries, for storage, archive, carbons and CSI decisions."""
    body: bool = False              # <body/> or <subject/>
    receipt: bool = False           # XEP-0184 request or receipt
    marker: bool = False            # XEP-0333 markable or marker
    chat_state: bool = False        # XEP-0085
    other: bool = False             # any other payload (OMEMO, invitations, ...)
    private: bool = False           # XEP-0280 §7 <private/>
    copy: bool = False              # server-made wrapper: carbons sent/received, MAM result
    no_store: bool = False          # XEP-0334 hints
    no_permanent_store: bool = False
    no_copy: bool = False
    store: bool = False

    @property
    def meaningful(self) -> bool:
        """Worth storing for later: more than chat states and hints (XEP-0160 §3)."""
        return self.body or self.receipt or self.marker or self.other

    @property
    def chat_state_only(self) -> bool:
        return self.chat_state and not self.meaningful


_SHAPES: dict[tuple[str, ...], Content] = {}
"""Content by the tuple of a message's child tags (what decides it): a message passes through
classify several times (archive both sides, carbons, offline, push), and most messages have
one of a few shapes. Only short tuples are kept, and at most `_MAX_SHAPES` of them."""
_MAX_SHAPES = 256
_MAX_KEY = 2048         # characters of tags in a kept tuple


def classify(message: etree._Element) -> Content:
    tags = tuple([child.tag for child in message])
    known = _SHAPES.get(tags)
    if known is not None:
        return known
    content = _classify(tags)
    if len(tags) <= 16 and all(isinstance(t, str) for t in tags) \
            and sum(map(len, tags)) <= _MAX_KEY:
        if len(_SHAPES) >= _MAX_SHAPES:
            _SHAPES.clear()
        _SHAPES[tags] = content
    return content


def _classify(tags: tuple[object, ...]) -> Content:
    found: dict[str, bool] = {}
    for tag in tags:
        if not isinstance(tag, str):
            continue                # comments and processing instructions
        uri, _, name = tag[1:].partition("}") if tag[:1] == "{" else ("", "", tag)
        if uri == ns.CLIENT:
            if name in ("body", "subject"):
                found["body"] = True
            elif name not in ("thread", "error"):
                found["other"] = True
        elif uri == ns.RECEIPTS:
            found["receipt"] = True
        elif uri == ns.MARKERS:
            found["marker"] = True
        elif uri == ns.CHATSTATES:
            found["chat_state"] = True
        elif uri == ns.HINTS:
            if name in ("no-store", "no-permanent-store", "no-copy", "store"):
                found[name.replace("-", "_")] = True
        elif uri == ns.CARBONS:
            found["private" if name == "private" else "copy"] = True
        elif uri == ns.MAM and name == "result":
            found["copy"] = True
        elif uri not in _IGNORED:
            found["other"] = True
    return Content(**found)
