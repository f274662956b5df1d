# tests: tests/modules/test_core_modules.py
"""XEP-0092: Software Version — the server's name and version.

- jabber:iq:version to the server answers name "xmppd" and our version (§2); the operating
  system only if `show_os` is on (§2 leaves it optional; it helps attackers pick exploits).

Config ([modules.version]):
  show_os   bool   default false   include <os/> (platform.system() and release)
Storage: none.
"""
from __future__ import annotations

import platform
from dataclasses import dataclass

from lxml import etree

from stanzas import iq, ns
from xmppd.module import IqRequest, Module, ModuleContext

VERSION = "0.1.0"


@dataclass(frozen=True, slots=True)
class VersionOptions:
    show_os: bool = False


class Version(Module[VersionOptions]):
    name = "version"
    xeps = (92,)
    Options = VersionOptions

    def __init__(self, ctx: ModuleContext[VersionOptions]) -> None:
        self.show_os = ctx.options.show_os
        ctx.disco_feature(ns.VERSION)
        ctx.iq_get(ns.VERSION, "query", self.version, to="host")

    def version(self, req: IqRequest) -> iq.Reply:
        q = iq.empty(ns.VERSION, "query")
        etree.SubElement(q, "{%s}name" % ns.VERSION).text = "xmppd"
        etree.SubElement(q, "{%s}version" % ns.VERSION).text = VERSION
        if self.show_os:
            etree.SubElement(q, "{%s}os" % ns.VERSION).text = \
                f"{platform.system()} {platform.release()}"
        return iq.result(req.stanza, q)
