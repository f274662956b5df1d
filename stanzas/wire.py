# tests: tests/core/test_stanzas.py
"""Stanzas on the wire."""
from __future__ import annotations

from lxml import etree


def serialize(el: etree._Element) -> bytes:
    """One stanza as UTF-8 bytes, re-serialised (never a client's raw bytes: stanza smuggling).

    UTF-8, not lxml's default ASCII: that writes every other character as a reference
    ("🌹" as "&#127801;", 9 bytes for 4), bloating non-Latin text and emoji on mobile links.
    """
    return etree.tostring(el, encoding="utf-8")
