# tests: tests/modules/test_mam.py, tests/storage/test_archive_store.py, tests/integration/test_messaging_slixmpp.py
"""XEP-0313: Message Archive Management (urn:xmpp:mam:2, with XEP-0059 RSM) — the same history
on every device.

- Archived, once per archive whatever the number of deliveries (§5.1.1): chat and normal
  messages a user sends or receives that carry a body, a receipt, a marker or another payload
  (✓✓ states are part of the history: DESIGN.md), or the XEP-0334 <store/> hint. Not: chat
  states alone, <no-store/> or <no-permanent-store/> (XEP-0334 §4), groupchat, headline, errors,
  server-made copies (carbons, results).
- Preferences (XEP-0441, formerly XEP-0313 §6): default always, roster or never (the server's
  `default` until the user sets one), always and never lists (a bare JID covers its resources;
  never wins). Get and set answer with the preferences in force.
- Stanza ids (§3.5, XEP-0359): a message archived for its recipient is delivered (and stored
  offline) with <stanza-id by=recipient id=UID/>; the sender's UID appears only in its <sent/>
  carbon copies (never in what the contact gets). Stanza-ids a client puts in that claim one of
  our JIDs, and MAM <result/>s, are removed (XEP-0359 §4 "MUST delete"; DESIGN.md "Facts").
  UIDs are random (§3: "MUST be unpredictable"); order and time come from a per-archive `seq`
  in microseconds, strictly increasing.
- Writes are group-committed (storage/batch.py, at most `batch_size` per transaction); delivery
  does not wait for the commit, the sender's XEP-0198 ack does (`StanzaEvent.hold`).
- Queries (§4): IQ set to the user's own account (another's → <forbidden/>). Form fields with,
  start, end, before-id, after-id, ids (urn:xmpp:mam:2#extended); another field →
  <feature-not-implemented/> (§4.1.5); a bad value → <bad-request/> (<jid-malformed/> for
  'with'); an id not in the archive → <item-not-found/> (§4.1.3, §4.3). RSM max (at most
  `max_page`), after, before (empty: the last page), index. Results go to the querying resource
  in archive order (reversed within the page for <flip-page/>), each
  <result queryid id><forwarded><delay stamp/><message/></forwarded></result>; then the IQ
  result with <fin complete='true'?> and <set> first, last, count.
- IQ get <query/> returns the form (§4.1.5); <metadata/> the first and last entries (§6).
- Retention: with `retention` set, messages older than that go, oldest first (§3.2).

Config ([modules.mam]):
  default     "always" | "roster" | "never"   default "always"   for users without preferences
  max_page    int       default 50     results per page at most (RSM max is capped to it)
  retention   duration  default "off"  keep messages this long
  batch_size  int       default 500    messages per archive transaction at most
Storage: ArchiveStore (archive_messages, archive_prefs).
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any, Literal

from lxml import etree
from twisted.internet import defer
from twisted.python.failure import Failure

from modules.roster import RosterService
from stanzas import forms, iq, ns, rsm
from stanzas.content import Content, classify
from stanzas.delay import forwarded, parse_stamp_us, stamp_us
from stanzas.errors import StanzaError
from storage.archive import ArchiveEntry, ArchiveSettings, ItemNotFound, Prefs, Query
from storage.batch import GroupCommit
from xmppd import hooks
from xmppd.hooks import LAST, LATE, SessionEvent, StanzaEvent, UserEvent
from stanzas.jid import JID, JIDError
from xmppd.concurrency import OneLoad
from xmppd.module import IqRequest, Module, ModuleContext, duration, number
from xmppd.xmlstream import serialize

NS = ns.MAM
NS_EXTENDED = ns.MAM_EXTENDED
_M = "{%s}" % NS
_SID = "{%s}stanza-id" % ns.STANZA_ID
_MESSAGE = "{%s}message" % ns.CLIENT
_FIELDS = ("with", "start", "end", "before-id", "after-id", "ids")


@dataclass(frozen=True, slots=True)
class MamOptions:
    default: Literal["always", "roster", "never"] = "always"
    max_page: int = number(default=50, minimum=1, maximum=1000)
    retention: float | None = duration(default=None, minimum=60)
    batch_size: int = number(default=500, minimum=1, maximum=10_000)


class _Loaded:
    """A user's archiving settings, with their roster's contacts when `roster` mode needs
    them and the user has no session (whose roster RosterService keeps in memory)."""
    __slots__ = ("prefs", "contacts")

    def __init__(self, prefs: Prefs | None, contacts: frozenset[JID] | None) -> None:
        self.prefs, self.contacts = prefs, contacts       # prefs None: no such account


class Mam(Module[MamOptions]):
    name = "mam"
    xeps = (313, 359, 59, 441)
    depends = ("roster",)           # "roster" preferences read RosterService
    Options = MamOptions

    def __init__(self, ctx: ModuleContext[MamOptions]) -> None:
        self.ctx = ctx
        self.store = ctx.stores.archive
        self.sessions = ctx.sessions
        self.roster = ctx.service(RosterService)
        self.default = Prefs(ctx.options.default)
        self.max_page = ctx.options.max_page
        self.local = ctx.local_domains
        self.writes: GroupCommit[ArchiveEntry, bool] = GroupCommit(
            self.store.append, max_batch=ctx.options.batch_size, name="archive")
        self.prefs: dict[JID, Prefs] = {}               # users with sessions
        self.loading: OneLoad[JID, _Loaded] = OneLoad(self._unreadable)
        self._seq = 0
        for feature in (NS, NS_EXTENDED, ns.STANZA_ID):
            ctx.disco_feature(feature, to="account")
        ctx.disco_feature(ns.STANZA_ID)
        ctx.iq_set(NS, "query", self.query, to="self")
        ctx.iq_get(NS, "query", self.form, to="self")
        ctx.iq_get(NS, "metadata", self.metadata, to="self")
        ctx.iq_get(NS, "prefs", self.get_prefs, to="self")
        ctx.iq_set(NS, "prefs", self.set_prefs, to="self")
        for handler in (ctx.iq_set, ctx.iq_get):
            for name in ("query", "prefs") + (("metadata",) if handler == ctx.iq_get else ()):
                handler(NS, name, self.forbidden, to="bare")
        ctx.hook(hooks.stanza_in, self.outgoing)
        ctx.hook(hooks.stanza_in, self.unstamp, priority=LAST)
        ctx.hook(hooks.user_inbound, self.incoming, priority=LATE)
        ctx.hook(hooks.session_bound, self.warm)
        ctx.hook(hooks.session_closed, self.cool)
        ctx.hook(hooks.user_deleted, self.forget)
        if ctx.options.retention is not None:
            ctx.clock.looping_call(min(3600.0, ctx.options.retention), self.expire)

    async def stop(self) -> None:
        await self.writes.flushed()

    # -- archiving -------------------------------------------------------------------------
    def outgoing(self, ev: StanzaEvent) -> Any:
        """A message from a local client: clean it, archive it for the sender."""
        el = ev.stanza
        if el.tag != _MESSAGE or not ev.mutable:
            return None
        for child in list(el):
            if (child.tag == _SID and self._ours(child.get("by"))) or child.tag == _M + "result":
                el.remove(child)     # XEP-0359 §4: only we say what our archives hold
        if ev.to.local is None or not _archivable(el, classify(el)):
            return None
        user = ev.sender.bare
        return self._then(self._settings(user), lambda loaded: self._archive(
            ev, loaded, user, ev.to, outgoing=True))

    def unstamp(self, ev: StanzaEvent) -> None:
        """The sender's UID was there for its carbon copies; the contact must not see it."""
        el = ev.stanza
        if el.tag == _MESSAGE and ev.mutable:
            for sid in el.findall(_SID):
                if sid.get("by") == str(ev.sender.bare):
                    el.remove(sid)

    def incoming(self, ev: StanzaEvent) -> Any:
        """A message for a local user: archive it for them, stamp the UID on it."""
        el = ev.stanza
        if el.tag != _MESSAGE or not ev.mutable or ev.to.local is None:
            return None
        user = ev.to.bare
        mine = [s for s in el.findall(_SID) if s.get("by") == str(user)]
        if mine and ev.session is None:
            return None             # stamped by us already (routed again by the server)
        for sid in mine:
            el.remove(sid)
        if not _archivable(el, classify(el)):
            return None
        return self._then(self._settings(user), lambda loaded: self._archive(
            ev, loaded, user, ev.sender, outgoing=False))

    def _archive(self, ev: StanzaEvent, loaded: _Loaded, user: JID, peer: JID,
                 outgoing: bool) -> None:
        if loaded.prefs is None or not self._wanted(user, loaded, peer):
            return
        el = ev.stanza
        now = int(self.ctx.clock.now() * 1_000_000)
        self._seq = max(now, self._seq + 1)
        uid = secrets.token_urlsafe(12)
        entry = ArchiveEntry(user, self._seq, uid, peer, outgoing, serialize(el))
        sid = etree.SubElement(el, _SID, nsmap={None: ns.STANZA_ID})  # type: ignore[dict-item]
        sid.set("by", str(user))
        sid.set("id", uid)
        written = self.writes.add(entry)
        written.addErrback(lambda f: self.ctx.log.warning("not archived: %s", f.value))
        ev.hold(written)

    def _wanted(self, user: JID, loaded: _Loaded, peer: JID) -> bool:
        prefs = loaded.prefs
        assert prefs is not None
        if peer in prefs.never or peer.bare in prefs.never:
            return False
        if peer in prefs.always or peer.bare in prefs.always:
            return True
        if prefs.default != "roster":
            return prefs.default == "always"
        if loaded.contacts is not None:
            return peer.bare in loaded.contacts
        roster = self.roster.cached(user)
        item = roster.items.get(peer.bare) if roster is not None else None
        return item is not None and item.listed

    # -- preferences, in memory for users with sessions --------------------------------------
    def _settings(self, user: JID) -> _Loaded | defer.Deferred[_Loaded]:
        """At once for a user with sessions; else one shared read per user at a time, whose
        waiters resume in the order they asked (message order is kept)."""
        prefs = self.prefs.get(user)
        if prefs is not None:
            return _Loaded(prefs, None)
        return self.loading(user, lambda: self._load(user))

    async def _load(self, user: JID) -> _Loaded:
        settings: ArchiveSettings | None = await self.store.settings(user)
        if settings is None:
            return _Loaded(None, None)
        prefs = settings.prefs or self.default
        online = bool(self.sessions.resources(user))
        if online:
            self.prefs[user] = prefs
        contacts = None
        if prefs.default == "roster" and not online:
            roster = await self.roster.roster(user)
            contacts = frozenset(i.contact for i in roster.items.values() if i.listed)
        return _Loaded(prefs, contacts)

    def _unreadable(self, user: JID, failure: Failure) -> _Loaded:
        self.ctx.log.warning("archive preferences of %s not read: %s", user, failure.value)
        return _Loaded(None, None)              # not archived rather than stuck

    @staticmethod
    def _then(value: _Loaded | defer.Deferred[_Loaded], fn: Any) -> Any:
        if type(value) is _Loaded:      # not isinstance(Deferred): an ABC check, µs each
            fn(value)
            return None
        return value.addCallback(fn)    # type: ignore[union-attr]

    def warm(self, ev: SessionEvent) -> Any:
        user = ev.session.jid.bare
        if user in self.prefs or user in self.loading:
            return None
        return self._then(self._settings(user), lambda _: None)

    def cool(self, ev: SessionEvent) -> None:
        user = ev.session.jid.bare
        if not self.sessions.resources(user):
            self.prefs.pop(user, None)

    def forget(self, ev: UserEvent) -> None:
        self.prefs.pop(ev.user, None)

    def expire(self) -> Any:
        retention = self.ctx.options.retention
        assert retention is not None
        cutoff = int((self.ctx.clock.now() - retention) * 1_000_000)
        d = defer.Deferred.fromCoroutine(self.store.purge(cutoff))
        d.addErrback(lambda f: self.ctx.log.warning("archive retention failed: %s", f.value))
        return None

    def _ours(self, by: str | None) -> bool:
        try:
            return by is not None and JID.parse(by).domain in self.local
        except JIDError:
            return True             # malformed: not a valid stanza-id either

    # -- IQs -------------------------------------------------------------------------------
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
        flt, paging, flip = _parse_query(req.payload)
        await self.writes.flushed()         # what the user was just sent is there
        try:
            page = await self.store.query(user, flt, max=paging.limit(self.max_page, self.max_page),
                                          after=paging.after, before=paging.before,
                                          index=paging.index)
        except ItemNotFound:
            raise StanzaError.item_not_found("no such message in the archive") from None
        queryid = req.payload.get("queryid")
        items = page.items[::-1] if flip else page.items
        for item in items:
            self.ctx.send(self._result(user, req.sender, queryid, item.id, item.seq,
                                       item.stanza))
        fin = etree.Element(_M + "fin", nsmap={None: NS})  # type: ignore[dict-item]
        if page.complete:
            fin.set("complete", "true")
        # No 'index' (XEP-0059 §2: optional): slixmpp's backward RSM iterator stops after the
        # first page when it sees one.
        rsm.answer(fin, first=page.items[0].id if page.items else None,
                   last=page.items[-1].id if page.items else None, count=page.count)
        return iq.result(req.stanza, fin)

    def _result(self, user: JID, to: JID, queryid: str | None, uid: str, seq: int,
                stanza: bytes) -> etree._Element:
        msg = etree.Element(_MESSAGE, nsmap={None: ns.CLIENT})  # type: ignore[dict-item]
        msg.set("from", str(user))
        msg.set("to", str(to))
        msg.set("id", secrets.token_hex(8))
        result = etree.SubElement(msg, _M + "result", nsmap={None: NS})  # type: ignore[dict-item]
        if queryid is not None:
            result.set("queryid", queryid)
        result.set("id", uid)
        forwarded(etree.fromstring(stanza), when=stamp_us(seq), parent=result)
        return msg

    async def metadata(self, req: IqRequest) -> iq.Reply:
        first, last = await self.store.bounds(req.to.bare)
        md = etree.Element(_M + "metadata", nsmap={None: NS})  # type: ignore[dict-item]
        for name, item in (("start", first), ("end", last)):
            if item is not None:
                etree.SubElement(md, _M + name, id=item.id, timestamp=stamp_us(item.seq))
        return iq.result(req.stanza, md)

    async def get_prefs(self, req: IqRequest) -> iq.Reply:
        loaded = await _settle(self._settings(req.to.bare))
        return iq.result(req.stanza, _prefs_element(loaded.prefs or self.default))

    async def set_prefs(self, req: IqRequest) -> iq.Reply:
        el = req.payload
        mode = el.get("default")
        if mode not in ("always", "roster", "never"):
            raise StanzaError.bad_request("default must be always, roster or never")
        lists = {}
        for name in ("always", "never"):
            jids = []
            for j in el.findall("%s%s/%sjid" % (_M, name, _M)):
                try:
                    jids.append(JID.parse((j.text or "").strip()))
                except JIDError as e:
                    raise StanzaError.jid_malformed(str(e)) from None
            lists[name] = tuple(dict.fromkeys(jids))
        prefs = Prefs(mode, lists["always"], lists["never"])  # type: ignore[arg-type]
        user = req.to.bare
        await self.store.set_prefs(user, prefs)
        if self.sessions.resources(user):
            self.prefs[user] = prefs
        return iq.result(req.stanza, _prefs_element(prefs))


def _archivable(el: etree._Element, content: Content) -> bool:
    if (el.get("type") or "normal") not in ("chat", "normal") or content.copy:
        return False
    if content.no_store or content.no_permanent_store:
        return False
    return content.meaningful or content.store


def _prefs_element(prefs: Prefs) -> etree._Element:
    el = etree.Element(_M + "prefs", nsmap={None: NS}, default=prefs.default)  # type: ignore[dict-item]
    for name, jids in (("always", prefs.always), ("never", prefs.never)):
        lst = etree.SubElement(el, _M + name)
        for j in jids:
            etree.SubElement(lst, _M + "jid").text = str(j)
    return el


def _parse_query(q: etree._Element) -> tuple[Query, rsm.Request, bool]:
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


async def _settle(value: Any) -> Any:
    if isinstance(value, defer.Deferred):
        return await value
    return value

