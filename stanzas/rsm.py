# tests: tests/core/test_rsm.py
"""XEP-0059: Result Set Management — paging through long lists (archives, room lists).

- `parse(parent)` reads the <set xmlns='http://jabber.org/protocol/rsm'/> child of a query
  into a typed `Request` (None without one): <max/> and <index/> are non-negative integers
  (xs:int, §2.1, §2.4), <after/> names the UID of an item (§2.2), <before/> too, or is
  empty for the last page (§2.5). Anything else is <bad-request/>.
- `answer(...)` builds the <set/> of a reply: <first index=?/> and <last/> only when the
  page has items (§2.1 "MUST NOT be included" otherwise), <count/> when known.
- `window(uids, req)` pages an in-memory list the same way (a room list): <item-not-found/>
  for an unknown UID (§2.6).
The store queries behind archives page in SQL; they take the `Request`'s values.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from lxml import etree

from stanzas import ns
from stanzas.errors import StanzaError

_E = etree._Element
_R = "{%s}" % ns.RSM


@dataclass(frozen=True, slots=True)
class Request:
    """What a requester asked for. `before == ""`: the last page (§2.5)."""
    max: int | None = None
    after: str | None = None
    before: str | None = None
    index: int | None = None

    def limit(self, default: int, ceiling: int | None = None) -> int:
        """The page size: `max` or `default`, never above `ceiling` (a server's cap, §2.1
        "the responding entity MAY return fewer")."""
        n = default if self.max is None else self.max
        return n if ceiling is None else min(n, ceiling)


def parse(parent: _E) -> Request | None:
    """The RSM request in `parent` (a query element), or None if it has no <set/>.

    Raises:
        StanzaError: bad-request for a <max/> or <index/> that is not a non-negative integer,
            or an empty <after/>.
    """
    s = parent.find(_R + "set")
    if s is None:
        return None
    after = s.find(_R + "after")
    before = s.find(_R + "before")
    after_uid = None
    if after is not None:
        after_uid = (after.text or "").strip()
        if not after_uid:
            raise StanzaError.bad_request("RSM <after/> needs a UID")
    return Request(max=_number(s, "max"), after=after_uid,
                   before=None if before is None else (before.text or "").strip(),
                   index=_number(s, "index"))


def answer(parent: _E | None = None, *, first: str | None = None, last: str | None = None,
           first_index: int | None = None, count: int | None = None) -> _E:
    """The <set/> of a reply (§2.1), appended to `parent` if given. `first`/`last` are the
    UIDs of the page's first and last items (None for an empty page)."""
    if parent is None:
        s = etree.Element(_R + "set", nsmap={None: ns.RSM})  # type: ignore[dict-item]
    else:
        s = etree.SubElement(parent, _R + "set", nsmap={None: ns.RSM})  # type: ignore[dict-item]
    if first is not None and last is not None:
        f = etree.SubElement(s, _R + "first")
        f.text = first
        if first_index is not None:
            f.set("index", str(first_index))
        etree.SubElement(s, _R + "last").text = last
    if count is not None:
        etree.SubElement(s, _R + "count").text = str(count)
    return s


def window(uids: Sequence[str], req: Request | None, default: int | None = None
           ) -> tuple[int, int]:
    """The slice [start, end) of `uids` (a whole, ordered result set) that `req` asks for;
    all of it without a request. `default`: the page size when <max/> is absent (None: to
    the end).

    Raises:
        StanzaError: item-not-found for an <after/> or <before/> UID not in `uids` (§2.6).
    """
    if req is None:
        return 0, len(uids)
    size = req.max if req.max is not None else (len(uids) if default is None else default)
    if req.before is not None:
        end = len(uids) if req.before == "" else _position(uids, req.before)
        return max(0, end - size), end
    if req.after is not None:
        start = _position(uids, req.after) + 1
    else:
        start = min(req.index or 0, len(uids))
    return start, min(len(uids), start + size)


def _position(uids: Sequence[str], uid: str) -> int:
    try:
        return list(uids).index(uid)
    except ValueError:
        raise StanzaError.item_not_found(f"no item {uid!r} in this result set") from None


def _number(s: _E, name: str) -> int | None:
    el = s.find(_R + name)
    if el is None:
        return None
    text = (el.text or "").strip()
    if not (text.isascii() and text.isdigit()):     # no sign: both are non-negative (§2.1)
        raise StanzaError.bad_request(f"RSM <{name}/> must be a non-negative integer")
    return int(text)
