# tests: tests/modules/test_muc_service.py, tests/modules/test_muc_mam.py
"""What the MUC service keeps in the database: persistent rooms (configuration, affiliations,
subject) and room archives. `RoomStorage` is a part of `MucService` (service.py), split out to
keep each file readable; it uses the service's `store`, `writes`, `archive_writes` and `_due`.

- One room's writes reach the database in the order they were made (`_serial`).
- Archive writes are group-committed (storage/batch.py): what arrives while a write runs goes
  in the next transaction; the stanza being handled waits for its write (`_due`).
- A temporary room's archive goes with it; a destroyed room's rows are deleted only after the
  archive writes queued before are done, so none lands in a new room of the same name.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from lxml import etree
from twisted.internet import defer
from twisted.python.failure import Failure

from modules.muc import codec
from modules.muc.config import RoomConfig
from modules.muc.room import Occupant, Room
from stanzas.wire import serialize
from storage.batch import GroupCommit
from storage.muc import AffiliationEntry, ArchivedMessage, MucStore
from stanzas.jid import JID
from xmppd.concurrency import KeyedLock

if TYPE_CHECKING:
    from xmppd.module import ModuleContext


class RoomStorage:
    ctx: ModuleContext[Any]
    store: MucStore
    writes: KeyedLock[JID]
    archive_writes: GroupCommit[ArchivedMessage, None]
    _due: list[defer.Deferred[None]] | None
    _failed: Callable[[Failure, str], None]     # the service's error log

    def stored(self, room: Room) -> bool:
        return room.config.in_store and not room.locked

    async def store_affiliations(self, room: Room,
                                 changes: dict[str, AffiliationEntry | None]) -> None:
        if self.stored(room):
            await self._serial(room, lambda: self.store.set_affiliations(room.jid, changes))

    async def store_config(self, room: Room, config: RoomConfig,
                           changes: dict[str, AffiliationEntry | None]) -> None:
        if config.in_store:
            affs = dict(room.affiliations)
            for k, e in changes.items():
                if e is None:
                    affs.pop(k, None)
                else:
                    affs[k] = e
            target = replace(room.stored(), config=config.to_json(), affiliations=affs)
            await self._serial(room, lambda: self.store.put_room(target))
        elif self.stored(room):
            await self._serial(room, lambda: self.store.delete_room(room.jid))

    def subject_changed(self, room: Room) -> None:
        if self.stored(room):
            subject, nick, at = room.subject, room.subject_nick, room.subject_at or 0.0
            d = defer.Deferred.fromCoroutine(self._serial(
                room, lambda: self.store.set_subject(room.jid, subject, nick, at)))
            d.addErrback(self._failed, f"storing the subject of {room.jid}")

    async def _serial(self, room: Room, write: Callable[[], Awaitable[Any]]) -> Any:
        """One room's writes reach the database in the order they were made."""
        return await self.writes.run(room.jid, write)

    def archive(self, room: Room, message: etree._Element, at: float, occ: Occupant) -> None:
        """Queue `message` for the room archive (group commit: what arrives while a write
        runs goes in the next transaction); the stanza being handled waits for it."""
        if not room.config.archived or room.locked:
            return
        sid = message.find(codec.STANZA_ID)
        if sid is None:
            return
        written = self.archive_writes.add(ArchivedMessage(
            room.jid, sid.get("id") or "", at, occ.nick, str(occ.bare), serialize(message)))
        written.addErrback(lambda f: self.ctx.log.warning("not in the room archive: %s",
                                                          f.value))
        if self._due is not None:
            self._due.append(written)

    async def _write_archive(self, batch: list[ArchivedMessage]) -> list[None]:
        await self.store.archive(batch)
        return [None] * len(batch)

    def archive_settled(self) -> defer.Deferred[None]:
        """Fires once every archive write queued so far is committed (or failed)."""
        return self.archive_writes.flushed()

    async def _delete(self, room: Room) -> None:
        """Delete a stored room and its archive once the archive writes queued so far are
        done (none may land after the delete, in a new room of the same name)."""
        async def delete() -> Any:
            await self.archive_settled()
            return await self.store.delete_room(room.jid)
        if self.stored(room):
            await self._serial(room, delete)

    def forget(self, room: Room) -> None:
        """A temporary room went away: its archive goes with it."""
        d = defer.Deferred.fromCoroutine(self._delete(room))
        d.addErrback(self._failed, f"deleting {room.jid}")
