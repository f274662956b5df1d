# tests: tests/modules/test_core_modules.py
"""XEP-0202: Entity Time — the server's clock, in UTC with offset +00:00.

- urn:xmpp:time to the server answers <tzo/> and <utc/> (XEP-0082 DateTime, §3, §4).

Config ([modules.time]): none.
Storage: none.
"""
from __future__ import annotations

import datetime

from lxml import etree

from stanzas import iq, ns
from xmppd.module import IqRequest, Module, ModuleContext, NoOptions


class EntityTime(Module[NoOptions]):
    name = "time"
    xeps = (202,)

    def __init__(self, ctx: ModuleContext[NoOptions]) -> None:
        self.clock = ctx.clock
        ctx.disco_feature(ns.TIME)
        ctx.iq_get(ns.TIME, "time", self.time, to="host")

    def time(self, req: IqRequest) -> iq.Reply:
        now = datetime.datetime.fromtimestamp(self.clock.now(), datetime.timezone.utc)
        q = iq.empty(ns.TIME, "time")
        # Servers run in UTC here; XEP-0202 §3: tzo is the entity's offset from UTC.
        etree.SubElement(q, "{%s}tzo" % ns.TIME).text = "+00:00"
        etree.SubElement(q, "{%s}utc" % ns.TIME).text = \
            now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
        return iq.result(req.stanza, q)
