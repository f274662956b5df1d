# tests: tests/modules/test_mam.py, tests/integration/test_messaging_slixmpp.py
"""XEP-0313 queries on a user's own archive (§4), with XEP-0059 paging.

- IQ set <query/> to one's own account (another's: <forbidden/>). Form fields with, start,
  end, before-id, after-id, ids (urn:xmpp:mam:2#extended); another field →
  <feature-not-implemented/> (§4.1.5); a bad value → <bad-request/> (<jid-malformed/> for
  'with'); an id not in the archive → <item-not-found/> (§4.1.3, §4.3). RSM max (at most
  `max_page`), after, before (empty: the last page), index.
- Results go to the querying resource in archive order (reversed within the page for
  <flip-page/>), each <result queryid id><forwarded><delay stamp/><message/></forwarded>
  </result>; then the IQ result with <fin complete='true'?> and <set> first, last, count.
  A query first waits for the archive writes in flight, so it sees what the user was sent.
- IQ get <query/> returns the form (§4.1.5); <metadata/> the first and last entries (§6).
"""
from __future__ import annotations

import secrets
from typing import Any

from lxml import etree

from stanzas import forms, iq, ns, rsm
from stanzas.delay import forwarded, parse_stamp_us, stamp_us
from stanzas.errors import StanzaError
from stanzas.jid import JID, JIDError
from storage.archive import ArchiveEntry, ArchiveStore, ItemNotFound, Query
from storage.batch import GroupCommit
from xmppd.module import IqRequest, ModuleContext

NS = ns.MAM
_M = "{%s}" % NS


class Queries:
    def __init__(self, ctx: ModuleContext[Any], store: ArchiveStore,
                 writes: GroupCommit[ArchiveEntry, bool], max_page: int) -> None:
        self.ctx = ctx
        self.store = store
        self.writes = writes
        self.max_page = max_page

    def forbidden(self, req: IqRequest) -> iq.Reply:
        raise StanzaError.forbidden("only the owner may use an archive")

    def form(self, req: IqRequest) -> iq.Reply:
        q = iq.empty(NS, "query")
        q.append(forms.build("form", [
            forms.Field("with", "jid-single"), forms.Field("start"), forms.Field("end"),
            forms.Field("before-id"), forms.Field("after-id"),
            forms.Field("ids", "list-multi", validate=forms.Validate(method="open"))],  # §4.1.5
            form_type=NS))
        return iq.result(req.stanza, q)

    async def query(self, req: IqRequest) -> iq.Reply:
        user = req.to.bare
        flt, paging, flip = parse_query(req.payload)
        await self.writes.flushed()         # what the user was just sent is there
        try:
            page = await self.store.query(
                user, flt, max=paging.limit(self.max_page, self.max_page),
                after=paging.after, before=paging.before, index=paging.index)
        except ItemNotFound:
            raise StanzaError.item_not_found("no such message in the archive") from None
        queryid = req.payload.get("queryid")
        for item in page.items[::-1] if flip else page.items:
            self.ctx.send(result(user, req.sender, queryid, item.id, item.seq, item.stanza))
        fin = iq.empty(NS, "fin")
        if page.complete:
            fin.set("complete", "true")
        # No 'index' (XEP-0059 §2: optional): slixmpp's backward RSM iterator stops after the
        # first page when it sees one.
        rsm.answer(fin, first=page.items[0].id if page.items else None,
                   last=page.items[-1].id if page.items else None, count=page.count)
        return iq.result(req.stanza, fin)

    async def metadata(self, req: IqRequest) -> iq.Reply:
        first, last = await self.store.bounds(req.to.bare)
        md = iq.empty(NS, "metadata")
        for name, item in (("start", first), ("end", last)):
            if item is not None:
                etree.SubElement(md, _M + name, id=item.id, timestamp=stamp_us(item.seq))
        return iq.result(req.stanza, md)


def result(user: JID, to: JID, queryid: str | None, uid: str, seq: int,
           stanza: bytes) -> etree._Element:
    """One archived message as the querying resource gets it (§4.2)."""
    msg = iq.empty(ns.CLIENT, "message")
    msg.set("from", str(user))
    msg.set("to", str(to))
    msg.set("id", secrets.token_hex(8))
    found = etree.SubElement(msg, _M + "result", nsmap={None: NS})  # type: ignore[dict-item]
    if queryid is not None:
        found.set("queryid", queryid)
    found.set("id", uid)
    forwarded(etree.fromstring(stanza), when=stamp_us(seq), parent=found)
    return msg


def parse_query(q: etree._Element) -> tuple[Query, rsm.Request, bool]:
    """The filters, RSM parameters and flip-page of a <query/>; raises StanzaError."""
    args: dict[str, Any] = {}
    x = forms.find(q)
    form = forms.parse_submit(x, form_type=NS) if x is not None else forms.Submitted(None)
    for var in form.values:
        if var == "with":
            try:
                args["with_jid"] = JID.parse(form.one(var))
            except JIDError as e:
                raise StanzaError.jid_malformed(str(e)) from None
        elif var in ("start", "end"):
            try:
                args[var] = parse_stamp_us(form.one(var))
            except ValueError as e:
                raise StanzaError.bad_request(f"{var}: {e}") from None
        elif var in ("before-id", "after-id"):
            args[var.replace("-", "_")] = form.one(var)
        elif var == "ids":
            args["ids"] = form.strings(var)
            if not args["ids"]:
                raise StanzaError.bad_request("'ids' needs at least one value")
        else:                       # §4.1.5: a field the server does not know
            raise StanzaError.feature_not_implemented(f"unknown field {var!r}")
    return Query(**args), rsm.parse(q) or rsm.Request(), q.find(_M + "flip-page") is not None
