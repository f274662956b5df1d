# tests: tests/modules/test_receipts.py, tests/integration/test_messaging_slixmpp.py
"""XEP-0184 delivery receipts and XEP-0333 chat markers: ✓✓ delivered, ✓✓ read.

Clients make receipts and markers; the server's whole job is to never lose one. A receipt or
marker is a message like any other, so it is routed (RFC 6121 §8), stored offline when the
original sender is offline even without a body (DESIGN.md "Facts"; XEP-0160 §3 stores chat and
normal messages), archived (XEP-0313 §5.1.1 allows non-body messages), copied to carbons
(XEP-0280 §6.1 names XEP-0184 and XEP-0333), and never held back by CSI (XEP-0352 §3.2).
Those modules agree on what a message carries through `stanzas.content.classify`.

This module advertises the two features (XEP-0184 §4, XEP-0333 §3) on the server.

Config: none.   Storage: none.
"""
from __future__ import annotations

from stanzas import ns
from xmppd.module import Module, ModuleContext, NoOptions


class Receipts(Module[NoOptions]):
    name = "receipts"
    xeps = (184, 333)

    def __init__(self, ctx: ModuleContext[NoOptions]) -> None:
        ctx.disco_feature(ns.RECEIPTS)
        ctx.disco_feature(ns.MARKERS)
