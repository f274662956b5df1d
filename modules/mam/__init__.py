# tests: tests/modules/test_mam.py, tests/storage/test_archive_store.py, tests/integration/test_messaging_slixmpp.py
"""XEP-0313: Message Archive Management (urn:xmpp:mam:2, with XEP-0059 RSM) — the same history
on every device.

- Archiving (archiving.py): chat and normal messages a user sends or receives that carry
  content (✓✓ included), once per archive, group-committed; the sender's XEP-0198 ack waits
  for the commit. XEP-0359 stanza ids on what is delivered; forged ones stripped.
- Preferences (prefs.py, XEP-0441): default always, roster or never; always/never lists.
- Queries (query.py, §4): filters with, start, end, before-id, after-id, ids
  (urn:xmpp:mam:2#extended), RSM paging, <flip-page/>, the form, <metadata/> (§6). Only the
  owner may use an archive: <forbidden/> for anyone else.
- Retention: with `retention` set, messages older than that go, oldest first (§3.2).

Config ([modules.mam]):
  default     "always" | "roster" | "never"   default "always"   for users without preferences
  max_page    int       default 50     results per page at most (RSM max is capped to it)
  retention   duration  default "off"  keep messages this long
  batch_size  int       default 500    messages per archive transaction at most
  dedup_window duration default "5 min" a message a client sends within this time after
                                       logging in is dropped if it sent one with the same
                                       XEP-0359 origin-id before (a resend after a restart);
                                       "off": no check
Storage: ArchiveStore (archive_messages, archive_prefs).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from modules.mam.archiving import Archiver
from modules.mam.prefs import Preferences
from modules.mam.query import Queries
from stanzas import ns
from storage.archive import Prefs
from xmppd import hooks
from xmppd.hooks import FIRST, LAST, LATE
from xmppd.module import Module, ModuleContext, duration, number

NS = ns.MAM

__all__ = ["Mam", "MamOptions"]


@dataclass(frozen=True, slots=True)
class MamOptions:
    default: Literal["always", "roster", "never"] = "always"
    max_page: int = number(default=50, minimum=1, maximum=1000)
    retention: float | None = duration(default=None, minimum=60)
    batch_size: int = number(default=500, minimum=1, maximum=10_000)
    dedup_window: float | None = duration(default="5 min", minimum=1, allow_off=True)


class Mam(Module[MamOptions]):
    name = "mam"
    xeps = (313, 359, 59, 441)
    depends = ("roster",)           # "roster" preferences read RosterService
    Options = MamOptions

    def __init__(self, ctx: ModuleContext[MamOptions]) -> None:
        self.ctx = ctx
        store = ctx.stores.archive
        o = ctx.options
        self.prefs = Preferences(ctx, store, Prefs(o.default))
        self.archiver = Archiver(ctx, store, self.prefs, o.batch_size, o.dedup_window)
        self.writes = self.archiver.writes          # the group commit, for stop() and tests
        queries = Queries(ctx, store, self.writes, o.max_page)
        for feature in (NS, ns.MAM_EXTENDED, ns.STANZA_ID):
            ctx.disco_feature(feature, to="account")
        ctx.disco_feature(ns.STANZA_ID)
        ctx.iq_set(NS, "query", queries.query, to="self")
        ctx.iq_get(NS, "query", queries.form, to="self")
        ctx.iq_get(NS, "metadata", queries.metadata, to="self")
        ctx.iq_get(NS, "prefs", self.prefs.get, to="self")
        ctx.iq_set(NS, "prefs", self.prefs.set, to="self")
        for name in ("query", "prefs"):
            ctx.iq_set(NS, name, queries.forbidden, to="bare")
        for name in ("query", "prefs", "metadata"):
            ctx.iq_get(NS, name, queries.forbidden, to="bare")
        ctx.hook(hooks.stanza_in, self.archiver.outgoing)
        ctx.hook(hooks.stanza_in, self.archiver.unstamp, priority=LAST)
        ctx.hook(hooks.user_inbound, self.archiver.incoming, priority=LATE)
        ctx.hook(hooks.session_bound, self.archiver.bound, priority=FIRST)   # before any await
        ctx.hook(hooks.session_bound, self.prefs.warm)
        ctx.hook(hooks.user_deleted, self.prefs.forget)
        if o.retention is not None:
            retention = o.retention
            ctx.clock.looping_call(min(3600.0, retention),
                                   lambda: self.archiver.expire(retention))

    async def stop(self) -> None:
        await self.writes.flushed()
