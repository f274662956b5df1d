# tests: tests/modules/test_offline.py, tests/integration/test_messaging_slixmpp.py
"""XEP-0160: offline messages — what a user missed while none of their resources was available.

- Storage (`message_offline`: no available resource with a non-negative priority): chat and
  normal messages, in arrival order — bodiless ones too when they carry a receipt, a marker or
  another payload (DESIGN.md "Facts"), or the XEP-0334 <store/> hint. Messages with only chat
  states (XEP-0085) are dropped without an error (§3: "SHOULD NOT be stored"); <no-store/>
  (XEP-0334 §4.2) is not stored, so its sender hears <service-unavailable/>; server-made copies
  (carbons, MAM results) are dropped. Past `max_messages` the sender gets
  <service-unavailable/> (§3) and nothing stored is dropped. Writes are group-committed; the
  router counts the message as handled (the sender's XEP-0198 ack) only after the commit.
- Delivery when a session sends available presence with a non-negative priority (§2, hook
  `session_available`): every stored message, oldest first, with a XEP-0203 delay from this host
  stamped with the time it was stored (§2 RECOMMENDED), unless it already carries one from this
  host (a XEP-0198 leftover keeps the time it was first sent).
- Deletion only once the client has the message: when it acknowledged it through XEP-0198
  (`StreamManagementService.send_tracked`), or, without stream management, once it was written
  to its connection. Messages in flight to one session are not handed to another; if that
  session ends without acknowledging them they stay stored and go at once to the user's
  available session of highest priority, if there is one (XEP-0198 §4: what a session did not
  acknowledge is treated as undelivered), else at the next available presence.
- Disco feature `msgoffline` (§4).

Config ([modules.offline]):
  max_messages  int  default 1000  stored messages per user; more: <service-unavailable/>
Storage: OfflineStore (table offline_messages), written by group commit (storage/batch.py).
Optional: the stream_mgmt module (StreamManagementService, looked up when delivering): without
it a message is deleted once written to the client's connection.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from lxml import etree
from twisted.internet import defer
from twisted.python.failure import Failure

from modules.stream_mgmt import StreamManagementService
from stanzas.content import classify
from stanzas.errors import StanzaError, error_reply
from stanzas.delay import delay, delayed_by, stamp
from storage.batch import MAX_PENDING, GroupCommit
from storage.errors import StorageError
from storage.offline import NewOffline
from xmppd.cluster.api import cluster_memory
from xmppd import hooks
from xmppd.hooks import STOP, AvailableEvent, StanzaEvent, UserEvent, UserOffline
from stanzas.jid import JID
from xmppd.module import Module, ModuleContext, number
from stanzas.wire import serialize

FEATURE = "msgoffline"


@dataclass(frozen=True, slots=True)
class OfflineOptions:
    max_messages: int = number(default=1000, minimum=1, maximum=1_000_000)


class Offline(Module[OfflineOptions]):
    name = "offline"
    xeps = (160, 203)
    Options = OfflineOptions

    def __init__(self, ctx: ModuleContext[OfflineOptions]) -> None:
        self.ctx = ctx
        self.store = ctx.stores.offline
        self.limit = ctx.options.max_messages
        # Storage down: writes wait and are retried (bounded); acks wait with them.
        self.adds: GroupCommit[NewOffline, bool] = GroupCommit(
            lambda items: self.store.add(items, self.limit), name="offline store",
            clock=ctx.clock, max_pending=MAX_PENDING)
        self.deletes: GroupCommit[tuple[JID, int], int] = GroupCommit(
            self._delete, name="offline delete", clock=ctx.clock, max_pending=MAX_PENDING)
        self.in_flight: dict[JID, set[int]] = {}    # stored messages a session has, unacked
        self.clean: set[JID] = set()                # available users with nothing to deliver
        self.released: set[JID] = set()             # in flight, not acknowledged: offer again
        self.stored = ctx.metrics.counter("offline_stored", "messages stored for offline users")
        # On a cluster another node may store for a user clean here (docs/CLUSTER.md).
        self.cluster = cluster_memory(ctx, "offline", self.clean.discard)
        ctx.disco_feature(FEATURE)
        ctx.hook(hooks.message_offline, self.keep)
        ctx.hook(hooks.session_available, self.deliver)
        ctx.hook(hooks.user_offline, self.gone)
        ctx.hook(hooks.user_deleted, self.forget)

    async def stop(self) -> None:
        await self.adds.flushed()
        await self.deletes.flushed()

    # -- storing -----------------------------------------------------------------------------
    def keep(self, ev: StanzaEvent) -> Any:
        content = classify(ev.stanza)
        if content.copy:
            return STOP             # a copy of what is kept elsewhere (carbons, MAM results)
        if content.no_store:
            return None             # XEP-0334: not stored; the router answers the sender
        if not (content.meaningful or content.store):
            return STOP             # §3: chat states only are not stored (and not an error)
        user = ev.to.bare
        self.clean.discard(user)
        if self.cluster is not None:
            self.cluster.changed("offline", user)
        d = self.adds.add(NewOffline(user, self.ctx.clock.now(), serialize(ev.stanza)))
        return d.addCallbacks(self._stored, self._not_stored, errbackArgs=(ev,))

    def _stored(self, stored: bool) -> Any:
        if not stored:
            return None             # past max_messages: the router answers the sender
        self.stored.inc()
        return STOP

    def _not_stored(self, failure: Failure, ev: StanzaEvent) -> object:
        error = failure.value
        if isinstance(error, StorageError) and error.transient:
            # Too much waits for storage (it is down): a transient refusal, never a permanent
            # error for a transient fault (DESIGN.md "Storage down").
            self.ctx.send(error_reply(ev.stanza, StanzaError.resource_constraint(
                "messages cannot be stored right now; try again later")))
            return STOP
        self.ctx.log.warning("offline message not stored: %s", error)
        return None                 # the router answers <service-unavailable/>

    # -- delivering --------------------------------------------------------------------------
    def deliver(self, ev: AvailableEvent) -> Any:
        session = ev.session
        user = session.jid.bare
        if session.priority < 0 or user in self.clean:
            return None
        return self._deliver(session, user)

    async def _deliver(self, session: Any, user: JID) -> None:
        await self.adds.flushed()   # what was stored just before this presence comes too,
        await self.deletes.flushed()    # and what was acknowledged meanwhile does not
        stored = await self.store.list(user)
        busy = self.in_flight.setdefault(user, set())
        live = self.ctx.sessions.get(session.jid) is session
        if live and session.available:
            tracker = self._tracker()
            for msg in stored:
                if msg.seq in busy:
                    continue
                el = etree.fromstring(msg.stanza)
                if not delayed_by(el, self.ctx.host):
                    delay(stamp(msg.stored_at, micro=True), self.ctx.host, el)
                busy.add(msg.seq)
                done = functools.partial(self._done, user, msg.seq)
                if tracker is not None:
                    tracker.send_tracked(session, el, done)
                else:
                    session.send_element(el)
                    done(True)
            self.clean.add(user)
        if not busy:
            self.in_flight.pop(user, None)

    def _tracker(self) -> StreamManagementService | None:
        try:
            return self.ctx.service(StreamManagementService)    # optional (module docstring)
        except LookupError:
            return None

    def _done(self, user: JID, seq: int, acked: bool) -> None:
        if acked:
            self.deletes.add((user, seq)).addErrback(self._delete_failed)
        else:
            self.clean.discard(user)        # still stored: offered again (module docstring)
        busy = self.in_flight.get(user)
        if busy is None:
            return                          # the account went meanwhile (forget)
        if not acked:
            self.released.add(user)
        busy.discard(seq)
        if not busy:
            del self.in_flight[user]
            if user in self.released:
                self._offer_again(user)

    def _offer_again(self, user: JID) -> None:
        """Nothing is in flight to `user` any more, and some of it was not acknowledged."""
        self.released.discard(user)
        available = self.ctx.sessions.available(user)
        if available:
            defer.Deferred.fromCoroutine(self._deliver(available[0], user)).addErrback(
                self._offer_failed)

    def _offer_failed(self, failure: Failure) -> None:
        # Still stored: they come at the next available presence.
        self.ctx.log.warning("offline messages not offered again: %s", failure.value)

    async def _delete(self, items: list[tuple[JID, int]]) -> list[int]:
        await self.store.delete(items)
        return [0] * len(items)

    def _delete_failed(self, failure: Failure) -> None:
        # The message stays stored and comes again at the next login: a duplicate, never a loss.
        self.ctx.log.warning("delivered offline messages not deleted: %s", failure.value)

    # -- bookkeeping -------------------------------------------------------------------------
    def gone(self, ev: UserOffline) -> None:
        self.clean.discard(ev.user)

    def forget(self, ev: UserEvent) -> None:
        self.clean.discard(ev.user)
        self.released.discard(ev.user)
        self.in_flight.pop(ev.user, None)
