# tests: tests/modules/test_mam.py, tests/modules/test_stream_mgmt.py
"""What goes into each user's archive (XEP-0313 §5.1.1), and the stanza ids that say so.

- Archived once per archive, whatever the number of deliveries: chat and normal messages a
  user sends or receives that carry a body, a receipt, a marker or another payload (✓✓ are
  history: DESIGN.md), or the XEP-0334 <store/> hint. Not: chat states alone, <no-store/> or
  <no-permanent-store/> (XEP-0334 §4), groupchat, headline, errors, server-made copies.
- XEP-0359: a message archived for its recipient is delivered with <stanza-id by=recipient
  id=UID/>; the sender's UID appears only in its <sent/> carbon copies. Stanza-ids a client
  claims for one of our JIDs, and MAM <result/>s, are removed (XEP-0359 §4 "MUST delete").
  UIDs are random (§3 "MUST be unpredictable"); order and time come from a per-archive `seq`
  in microseconds, strictly increasing.
- Writes are group-committed (storage/batch.py, `batch_size` per transaction at most);
  delivery does not wait for the commit, the sender's XEP-0198 ack does (`StanzaEvent.hold`).
- Retention: messages older than `retention` go, oldest first (§3.2).
"""
from __future__ import annotations

import base64
import os
from typing import Any, Callable

from lxml import etree
from twisted.internet import defer

from modules.mam.prefs import Loaded, Preferences
from stanzas import ns
from stanzas.content import classify
from stanzas.errors import StanzaError, error_reply
from stanzas.jid import JID, JIDError
from storage.archive import ArchiveEntry, ArchiveStore
from storage.batch import MAX_PENDING, GroupCommit
from stanzas.wire import serialize
from storage.errors import StorageError
from xmppd.cluster.api import SEQ_STRIDE, cluster_of
from xmppd.hooks import STOP, SessionEvent, StanzaEvent
from xmppd.module import ModuleContext, SessionKey

_SID = "{%s}stanza-id" % ns.STANZA_ID
_MESSAGE = "{%s}message" % ns.CLIENT
_RESULT = "{%s}result" % ns.MAM
_ORIGIN = "{%s}origin-id" % ns.STANZA_ID
BOUND_AT: SessionKey[float] = SessionKey("mam.bound_at")   # when the session was bound


_forks = [0]       # a forked child never hands out its parent's pooled bytes
os.register_at_fork(after_in_child=lambda: _forks.__setitem__(0, _forks[0] + 1))


class _Uids:
    """XEP-0359 stanza ids: 12 random bytes each (96 bits, §3 "MUST be unpredictable"), as
    16 base64url characters. The bytes come from os.urandom 256 ids at a time: one system
    call per 256 archived messages instead of one each (issue 18 profile)."""
    __slots__ = ("_pool", "_at", "_fork")
    _SIZE = 12 * 256

    def __init__(self) -> None:
        self._pool = b""
        self._at = self._SIZE
        self._fork = _forks[0]

    def __call__(self) -> str:
        at = self._at
        if at >= self._SIZE or self._fork != _forks[0]:
            self._pool, at, self._fork = os.urandom(self._SIZE), 0, _forks[0]
        self._at = at + 12
        return base64.urlsafe_b64encode(self._pool[at:at + 12]).decode()


class Archiver:
    def __init__(self, ctx: ModuleContext[Any], store: ArchiveStore, prefs: Preferences,
                 batch_size: int, dedup_window: float | None = None) -> None:
        self.ctx = ctx
        self.store = store
        self.prefs = prefs
        self.local = ctx.local_domains
        self.dedup_window = dedup_window
        # Storage down: writes wait and are retried (the senders' acks wait with them); past
        # MAX_PENDING new messages are refused with a wait-type error before delivery.
        self.writes: GroupCommit[ArchiveEntry, bool] = GroupCommit(
            store.append, max_batch=batch_size, name="archive", clock=ctx.clock,
            max_pending=MAX_PENDING)
        self._seq = 0
        self._uid = _Uids()
        # A cluster: nodes write one archive side by side; each takes its own residue of seq
        # (ClusterService.slot) so two never pick the same (docs/CLUSTER.md).
        self._cluster = cluster_of(ctx)

    def outgoing(self, ev: StanzaEvent) -> Any:
        """A message from a local client: clean it, archive it for the sender."""
        el = ev.stanza
        if el.tag != _MESSAGE or not ev.mutable:
            return None
        for child in list(el):
            if (child.tag == _SID and self._ours(child.get("by"))) or child.tag == _RESULT:
                el.remove(child)     # XEP-0359 §4: only we say what our archives hold
        if ev.to.local is None or not archivable(el):
            return None
        if self.writes.full:
            return self._refuse(ev)
        user = ev.sender.bare
        origin = _origin_id(el)
        if origin is not None and self._young(ev.session):
            return defer.Deferred.fromCoroutine(self._unless_resent(ev, user, origin))
        return self._then(user, lambda loaded: self._archive(ev, loaded, user, ev.to,
                                                             outgoing=True))

    def bound(self, ev: SessionEvent) -> None:
        ev.session.set(BOUND_AT, self.ctx.clock.now())

    def _young(self, session: Any) -> bool:
        """Bound less than `dedup_window` ago: when clients send again what a restart left
        unacknowledged (XEP-0198 could not resume). Later traffic pays no look-up."""
        if self.dedup_window is None or session is None:
            return False
        bound_at: float = session.get(BOUND_AT, 0.0)
        return self.ctx.clock.now() - bound_at < self.dedup_window

    async def _unless_resent(self, ev: StanzaEvent, user: JID, origin: str) -> object:
        """DESIGN.md "Restart or crash": a message this user's client sent before (same
        XEP-0359 origin-id, in the archive) was handled then; the resend is dropped, not shown
        twice, and counts as handled (its ack goes out)."""
        try:
            if await self.store.sent_before(user, origin):
                self.ctx.log.info("%s sent message %s again; dropped as a duplicate",
                                  user, origin)
                return STOP
        except StorageError as e:
            self.ctx.log.warning("duplicate check skipped for %s: %s", user, e)
        found = self._then(user, lambda loaded: self._archive(ev, loaded, user, ev.to,
                                                              outgoing=True))
        if found is not None:
            await found
        return None

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
        if not archivable(el):
            return None
        if self.writes.full:
            return self._refuse(ev)
        return self._then(user, lambda loaded: self._archive(ev, loaded, user, ev.sender,
                                                             outgoing=False))

    def _then(self, user: JID, fn: Callable[[Loaded], None]) -> Any:
        found = self.prefs.settings(user)
        if type(found) is Loaded:       # not isinstance(Deferred): an ABC check, µs each
            fn(found)
            return None
        return found.addCallback(fn)    # type: ignore[union-attr]

    def _archive(self, ev: StanzaEvent, loaded: Loaded, user: JID, peer: JID,
                 outgoing: bool) -> None:
        if loaded.prefs is None or not self.prefs.wanted(user, loaded, peer):
            return
        el = ev.stanza
        now = int(self.ctx.clock.now() * 1_000_000)
        if self._cluster is None:
            self._seq = max(now, self._seq + 1)
        else:
            stride, slot = SEQ_STRIDE, self._cluster.slot
            self._seq = max(now - now % stride + slot, self._seq + stride)
        uid = self._uid()
        entry = ArchiveEntry(user, self._seq, uid, peer, outgoing, serialize(el),
                             _origin_id(el) if outgoing else None)
        sid = etree.SubElement(el, _SID, nsmap={None: ns.STANZA_ID})  # type: ignore[dict-item]
        sid.set("by", str(user))
        sid.set("id", uid)
        written = self.writes.add(entry)
        if not ev.hold(written):        # held: a failure is logged where it is awaited
            written.addErrback(self._not_archived)

    def _not_archived(self, failure: Any) -> None:
        self.ctx.log.warning("not archived: %s", failure.value)

    def _refuse(self, ev: StanzaEvent) -> object:
        """The archive cannot keep up (storage down): a message that could not be archived
        is not taken at all — a wait-type error, so its sender tries again (DESIGN.md)."""
        self.ctx.send(error_reply(ev.stanza, StanzaError.resource_constraint(
            "the archive is not available right now; try again later")))
        return STOP

    def _ours(self, by: str | None) -> bool:
        try:
            return by is not None and JID.parse(by).domain in self.local
        except JIDError:
            return True             # malformed: not a valid stanza-id either

    def expire(self, retention: float) -> None:
        cutoff = int((self.ctx.clock.now() - retention) * 1_000_000)
        d = defer.Deferred.fromCoroutine(self.store.purge(cutoff))
        d.addErrback(lambda f: self.ctx.log.warning("archive retention failed: %s", f.value))


def _origin_id(el: etree._Element) -> str | None:
    found = el.find(_ORIGIN)
    value = found.get("id") if found is not None else None
    return value if value and len(value) <= 128 else None


def archivable(el: etree._Element) -> bool:
    content = classify(el)
    if (el.get("type") or "normal") not in ("chat", "normal") or content.copy:
        return False
    if content.no_store or content.no_permanent_store:
        return False
    return content.meaningful or content.store
