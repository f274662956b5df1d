# tests: tests/modules/test_receipts.py, tests/integration/test_messaging_slixmpp.py
"""XEP-0184 delivery receipts and XEP-0333 chat markers: ✓✓ delivered, ✓✓ read.

Clients make receipts and markers; the server's whole job is to never lose one. A receipt or
marker is a message like any other, so it is routed (RFC 6121 §8), stored offline when the
original sender is offline even without a body (DESIGN.md "Facts"; XEP-0160 §3 stores chat and
normal messages), archived (XEP-0313 §5.1.1 allows non-body messages), copied to carbons
(XEP-0280 §6.1 names XEP-0184 and XEP-0333), and never held back by CSI (XEP-0352 §3.2).

`classify(message)` is where those modules agree on what a message carries, so a receipt is
recognised the same way everywhere; `stamp`/`parse_stamp` are their XEP-0082 timestamps and
`delay` their XEP-0203 element. This module advertises the two features (XEP-0184 §4,
XEP-0333 §3) on the server.

Config: none.   Storage: none.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from lxml import etree

from stanzas import ns
from xmppd.module import Module, ModuleContext, NoOptions

NS_RECEIPTS = ns.RECEIPTS
NS_MARKERS = ns.MARKERS
NS_CHATSTATES = ns.CHATSTATES
NS_HINTS = ns.HINTS
NS_CARBONS = ns.CARBONS
NS_MAM = ns.MAM
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


def classify(message: etree._Element) -> Content:
    found: dict[str, bool] = {}
    for child in message:
        tag = child.tag
        if not isinstance(tag, str):
            continue
        q = etree.QName(tag)
        uri, name = q.namespace, q.localname
        if uri == ns.CLIENT:
            if name in ("body", "subject"):
                found["body"] = True
            elif name not in ("thread", "error"):
                found["other"] = True
        elif uri == NS_RECEIPTS:
            found["receipt"] = True
        elif uri == NS_MARKERS:
            found["marker"] = True
        elif uri == NS_CHATSTATES:
            found["chat_state"] = True
        elif uri == NS_HINTS:
            if name in ("no-store", "no-permanent-store", "no-copy", "store"):
                found[name.replace("-", "_")] = True
        elif uri == NS_CARBONS:
            found["private" if name == "private" else "copy"] = True
        elif uri == NS_MAM and name == "result":
            found["copy"] = True
        elif uri not in _IGNORED:
            found["other"] = True
    return Content(**found)


_STAMP = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(\.\d+)?"
                    r"(Z|[+-]\d\d:\d\d)")


def stamp(t: float, *, micro: bool = False) -> str:
    """XEP-0082 DateTime in UTC: "2026-11-28T09:15:00Z" (with microseconds if `micro`)."""
    dt = datetime.fromtimestamp(t, timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if micro else "%Y-%m-%dT%H:%M:%SZ")


def stamp_us(us: int) -> str:
    """XEP-0082 DateTime (UTC, microseconds) of an integer count of µs since the epoch."""
    dt = datetime.fromtimestamp(us // 1_000_000, timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + ".%06dZ" % (us % 1_000_000)


def parse_stamp_us(text: str) -> int:
    """µs since the epoch of a XEP-0082 DateTime (digits past µs are cut); ValueError if bad."""
    m = _STAMP.fullmatch(text.strip())
    if m is None:
        raise ValueError(f"not a XEP-0082 DateTime: {text!r}")
    whole = int(parse_stamp(text.strip()[:m.start(7)] + m.group(8)) if m.group(7) else
                parse_stamp(text))
    return whole * 1_000_000 + (int((m.group(7)[1:] + "000000")[:6]) if m.group(7) else 0)


def parse_stamp(text: str) -> float:
    """POSIX seconds of a XEP-0082 DateTime (any fraction, Z or ±hh:mm); ValueError if bad."""
    m = _STAMP.fullmatch(text.strip())
    if m is None:
        raise ValueError(f"not a XEP-0082 DateTime: {text!r}")
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    zone = m.group(8)
    tz = timezone.utc if zone == "Z" else timezone(
        (1 if zone[0] == "+" else -1) * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])))
    dt = datetime(year, month, day, hour, minute, second, tzinfo=tz)   # ValueError if invalid
    fraction = float("0" + m.group(7)) if m.group(7) else 0.0
    return dt.timestamp() + fraction


def delay(host: str, t: float) -> etree._Element:
    """<delay xmlns='urn:xmpp:delay' from=host stamp=.../> (XEP-0203 §4)."""
    el = etree.Element("{%s}delay" % ns.DELAY, nsmap={None: ns.DELAY})  # type: ignore[dict-item]
    el.set("from", host)
    el.set("stamp", stamp(t, micro=True))
    return el


class Receipts(Module[NoOptions]):
    name = "receipts"
    xeps = (184, 333)

    def __init__(self, ctx: ModuleContext[NoOptions]) -> None:
        ctx.disco_feature(NS_RECEIPTS)
        ctx.disco_feature(NS_MARKERS)
