# tests: tests/core/test_delay.py
"""Time on the wire: XEP-0082 date-times, XEP-0203 delayed delivery, XEP-0297 forwarding.

- `stamp(t)` / `stamp_us(us)` write a XEP-0082 DateTime in UTC (seconds, or with
  microseconds); `parse_stamp` / `parse_stamp_us` read one (any fraction, 'Z' or ±hh:mm) and
  raise ValueError for anything else, so a caller answers its own error (<bad-request/>).
- `delay(stamp, by)` is the <delay/> of XEP-0203 §4 (offline messages, resent stanzas, MUC
  history, last PEP items); `delayed_by(stanza, by)` says whether one from `by` is already
  there (a stanza keeps the time it was first delayed).
- `forwarded(stanza, stamp=)` wraps a stanza in XEP-0297 <forwarded/> (carbons, MAM results),
  with the delay of when it was first sent if given.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from lxml import etree

from stanzas import ns

_E = etree._Element
DELAY = "{%s}delay" % ns.DELAY
FORWARDED = "{%s}forwarded" % ns.FORWARD
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


def parse_stamp_us(text: str) -> int:
    """µs since the epoch of a XEP-0082 DateTime (digits past µs are cut); ValueError if bad."""
    m = _STAMP.fullmatch(text.strip())
    if m is None:
        raise ValueError(f"not a XEP-0082 DateTime: {text!r}")
    whole = int(parse_stamp(text.strip()[:m.start(7)] + m.group(8)) if m.group(7) else
                parse_stamp(text))
    return whole * 1_000_000 + (int((m.group(7)[1:] + "000000")[:6]) if m.group(7) else 0)


def delay(when: str, by: str | None = None, parent: _E | None = None) -> _E:
    """<delay xmlns='urn:xmpp:delay' from=by stamp=when/> (XEP-0203 §4), appended to `parent`
    if given. `when` is a XEP-0082 DateTime (`stamp`, `stamp_us`)."""
    el = _child(parent, DELAY, ns.DELAY)
    if by is not None:
        el.set("from", by)
    el.set("stamp", when)
    return el


def delayed_by(stanza: _E, by: str) -> bool:
    """Whether `stanza` already carries a <delay/> from `by` (XEP-0203 §3: an entity adds
    its own; the first one says when the stanza was first sent)."""
    return any(d.get("from") == by for d in stanza.iter(DELAY))


def forwarded(stanza: _E, *, when: str | None = None, parent: _E | None = None) -> _E:
    """<forwarded xmlns='urn:xmpp:forward:0'> (XEP-0297 §3) holding `stanza` itself (copy it
    first to keep the original), after a <delay stamp=when/> if `when` is given (§3.1)."""
    el = _child(parent, FORWARDED, ns.FORWARD)
    if when is not None:
        delay(when, parent=el)
    el.append(stanza)
    return el


def _child(parent: _E | None, tag: str, namespace: str) -> _E:
    if parent is None:
        return etree.Element(tag, nsmap={None: namespace})  # type: ignore[dict-item]
    return etree.SubElement(parent, tag, nsmap={None: namespace})  # type: ignore[dict-item]
