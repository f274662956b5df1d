# tests: tests/storage/test_muc_store.py
"""Multi-user chat storage (XEP-0045, XEP-0313 on room JIDs): persistent rooms, their
configuration and affiliations, and each room's message archive.

- `MucStore` is the contract; `SqlMucStore` its SQL implementation (SQLite, PostgreSQL).
  Persistent rooms are stored (XEP-0045 §10.2 "Make Room Persistent?"), and so are temporary
  rooms that keep an archive, for as long as they last (the archive hangs off its room's row;
  modules/muc/ deletes the row with the room). A room's configuration is an opaque JSON object
  that modules/muc/ interprets.
- Affiliations (§5.2) are kept per (room, bare JID or domain), with the reserved nickname and
  the reason given; `set_affiliations` applies several changes in one transaction, so an admin
  IQ changing three members is all or nothing. Deleting a room deletes its affiliations and
  its archive (foreign keys, ON DELETE CASCADE).
- The archive stores each room message once (XEP-0313 §5.1.2 "MUST store each message only
  once"), in arrival order: a per-row sequence orders it, `stanza_id` (XEP-0359) names it.
  `archive` writes a batch in one transaction (group commit); messages for rooms that are gone
  are skipped. `query` answers XEP-0313 queries with XEP-0059 paging: forward from the start or
  after an id, backward before an id or from the end, with the total count and the index of
  the first item; an unknown `after`/`before` id raises `LookupError` (item-not-found).
- `recent` returns a room's last messages, which refill the in-memory discussion history
  (§7.2.15) when a persistent room is loaded after a restart.
Not here: who may read or change what (modules/muc/), the MAM and RSM wire formats.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from sqlalchemy import Connection, and_, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from storage.bulk import insert_rows
from storage.db import Database
from storage.models import muc_affiliations, muc_archive, muc_rooms
from stanzas.jid import JID

Affiliation = Literal["owner", "admin", "member", "outcast"]
AFFILIATIONS: tuple[Affiliation, ...] = ("owner", "admin", "member", "outcast")
MAX_STANZA_ID = 64          # muc_archive.stanza_id is String(64)


@dataclass(frozen=True, slots=True)
class AffiliationEntry:
    affiliation: Affiliation
    nick: str = ""              # reserved room nickname; "" = none
    reason: str = ""


@dataclass(frozen=True, slots=True)
class StoredRoom:
    room: JID                                   # bare room JID: room@service
    config: Mapping[str, Any]                   # JSON object, meaning owned by modules/muc
    secret: str                                 # the room's key for XEP-0421 occupant ids
    created_at: float                           # POSIX seconds
    subject: str = ""
    subject_nick: str = ""                      # "" = set by the room itself
    subject_at: float | None = None             # None = never set
    affiliations: Mapping[str, AffiliationEntry] = field(default_factory=dict)  # by JID text


@dataclass(frozen=True, slots=True)
class RoomSummary:
    room: JID
    config: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ArchivedMessage:
    room: JID                   # bare room JID
    stanza_id: str              # XEP-0359 id the room stamped (by = room JID)
    at: float                   # POSIX seconds
    nick: str                   # the sender's nickname at the time
    sender: str                 # the sender's real bare JID ("" if unknown)
    payload: bytes              # the message as the room sent it (no 'to'), serialized


@dataclass(frozen=True, slots=True)
class ArchiveQuery:
    start: float | None = None          # XEP-0313 §4.1.4 'start' (inclusive)
    end: float | None = None            # 'end' (inclusive)
    nick: str | None = None             # 'with' on a room archive: the publisher's nickname
    after: str | None = None            # XEP-0059 <after/>: a stanza id
    before: str | None = None           # XEP-0059 <before/>: a stanza id, "" = the last page
    limit: int = 50                     # <max/>


@dataclass(frozen=True, slots=True)
class ArchivePage:
    messages: list[ArchivedMessage]     # chronological
    complete: bool                      # no more results in the paging direction
    count: int                          # all messages matching the filters
    first_index: int | None             # index of messages[0] among them (None if empty)


class MucStore(Protocol):
    async def load_room(self, room: JID) -> StoredRoom | None:
        """A stored room with its affiliations, or None."""
        ...

    async def list_rooms(self, service: str) -> list[RoomSummary]:
        """Every stored room of a MUC service (its domain), in room JID order."""
        ...

    async def put_room(self, room: StoredRoom) -> None:
        """Store a room (insert or replace), its affiliations replaced by `room.affiliations`."""
        ...

    async def set_config(self, room: JID, config: Mapping[str, Any]) -> bool:
        """Replace a stored room's configuration; False if it is not stored."""
        ...

    async def set_subject(self, room: JID, subject: str, nick: str, at: float) -> bool:
        """Record a stored room's subject; False if it is not stored."""
        ...

    async def set_affiliations(self, room: JID,
                               changes: Mapping[str, AffiliationEntry | None]) -> bool:
        """Set (entry) or remove (None) affiliations by JID text, all in one transaction;
        False (and no change) if the room is not stored."""
        ...

    async def delete_room(self, room: JID) -> bool:
        """Forget a room, its affiliations and its archive; True if it was stored."""
        ...

    async def archive(self, messages: Sequence[ArchivedMessage]) -> int:
        """Append messages (one transaction); those of rooms not stored are skipped.
        Returns how many were stored."""
        ...

    async def recent(self, room: JID, limit: int) -> list[ArchivedMessage]:
        """The room's last `limit` archived messages, oldest first."""
        ...

    async def query(self, room: JID, q: ArchiveQuery) -> ArchivePage:
        """One page of the room's archive; LookupError if `q.after`/`q.before` names no
        message of this room."""
        ...


def _key(room: JID) -> tuple[str, str]:
    if room.local is None or room.resource is not None:
        raise ValueError(f"a room is a bare JID with a localpart, not {room}")
    return room.domain, room.local


def _dump(config: Mapping[str, Any]) -> str:
    return json.dumps(dict(config), ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def _row_message(service: str, name: str, r: Any) -> ArchivedMessage:
    return ArchivedMessage(JID(name, service), r.stanza_id, float(r.at), r.nick, r.sender,
                           bytes(r.payload))


class SqlMucStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._insert: Any = postgresql.insert if db.dialect == "postgresql" else sqlite.insert

    async def load_room(self, room: JID) -> StoredRoom | None:
        service, name = _key(room)

        def txn(conn: Connection) -> StoredRoom | None:
            r, a = muc_rooms.c, muc_affiliations.c
            row = conn.execute(select(muc_rooms).where(r.service == service, r.room == name)
                               ).first()
            if row is None:
                return None
            affs = {x.jid: AffiliationEntry(x.affiliation, x.nick, x.reason) for x in
                    conn.execute(select(a.jid, a.affiliation, a.nick, a.reason).where(
                        a.service == service, a.room == name))}
            return StoredRoom(room.bare, json.loads(row.config), row.secret,
                              float(row.created_at), row.subject, row.subject_nick,
                              None if row.subject_at is None else float(row.subject_at), affs)

        return await self._db.run(txn)

    async def list_rooms(self, service: str) -> list[RoomSummary]:
        def txn(conn: Connection) -> list[RoomSummary]:
            r = muc_rooms.c
            rows = conn.execute(select(r.room, r.config).where(r.service == service)
                                .order_by(r.room)).all()
            return [RoomSummary(JID(x.room, service), json.loads(x.config)) for x in rows]

        return await self._db.run(txn)

    async def put_room(self, room: StoredRoom) -> None:
        service, name = _key(room.room)
        values = {"config": _dump(room.config), "secret": room.secret,
                  "created_at": room.created_at, "subject": room.subject,
                  "subject_nick": room.subject_nick, "subject_at": room.subject_at}
        affs = [{"service": service, "room": name, "jid": jid, "affiliation": e.affiliation,
                 "nick": e.nick, "reason": e.reason} for jid, e in room.affiliations.items()]

        def txn(conn: Connection) -> None:
            r, a = muc_rooms.c, muc_affiliations.c
            stmt = self._insert(muc_rooms).values(service=service, room=name, **values)
            conn.execute(stmt.on_conflict_do_update(index_elements=[r.service, r.room],
                                                    set_=values))
            conn.execute(delete(muc_affiliations).where(a.service == service, a.room == name))
            if affs:
                conn.execute(muc_affiliations.insert(), affs)

        await self._db.run(txn)

    async def set_config(self, room: JID, config: Mapping[str, Any]) -> bool:
        return await self._update(room, config=_dump(config))

    async def set_subject(self, room: JID, subject: str, nick: str, at: float) -> bool:
        return await self._update(room, subject=subject, subject_nick=nick, subject_at=at)

    async def _update(self, room: JID, **values: Any) -> bool:
        service, name = _key(room)

        def txn(conn: Connection) -> bool:
            r = muc_rooms.c
            done = conn.execute(update(muc_rooms).where(r.service == service, r.room == name)
                                .values(**values))
            return done.rowcount > 0

        return await self._db.run(txn)

    async def set_affiliations(self, room: JID,
                               changes: Mapping[str, AffiliationEntry | None]) -> bool:
        service, name = _key(room)
        for entry in changes.values():
            if entry is not None and entry.affiliation not in AFFILIATIONS:
                raise ValueError(f"unknown affiliation {entry.affiliation!r}")

        def txn(conn: Connection) -> bool:
            r, a = muc_rooms.c, muc_affiliations.c
            # Lock the room row: a concurrent delete_room cannot slip between check and write.
            found = conn.execute(select(r.room).where(r.service == service, r.room == name)
                                 .with_for_update()).first()
            if found is None:
                return False
            gone = [jid for jid, e in changes.items() if e is None]
            if gone:
                conn.execute(delete(muc_affiliations).where(
                    a.service == service, a.room == name, a.jid.in_(gone)))
            for jid, e in changes.items():
                if e is None:
                    continue
                row = {"affiliation": e.affiliation, "nick": e.nick, "reason": e.reason}
                stmt = self._insert(muc_affiliations).values(service=service, room=name,
                                                             jid=jid, **row)
                conn.execute(stmt.on_conflict_do_update(
                    index_elements=[a.service, a.room, a.jid], set_=row))
            return True

        return await self._db.run(txn)

    async def delete_room(self, room: JID) -> bool:
        service, name = _key(room)

        def txn(conn: Connection) -> bool:
            r, a, m = muc_rooms.c, muc_affiliations.c, muc_archive.c
            # Children first: SQLite only cascades with foreign_keys=ON, and being explicit
            # keeps the cost visible.
            conn.execute(delete(muc_archive).where(m.service == service, m.room == name))
            conn.execute(delete(muc_affiliations).where(a.service == service, a.room == name))
            gone = conn.execute(delete(muc_rooms).where(r.service == service, r.room == name))
            return gone.rowcount > 0

        return await self._db.run(txn)

    async def archive(self, messages: Sequence[ArchivedMessage]) -> int:
        rows = []
        for msg in messages:
            service, name = _key(msg.room)
            if not msg.stanza_id or len(msg.stanza_id) > MAX_STANZA_ID:
                raise ValueError(f"stanza id must have 1 to {MAX_STANZA_ID} characters")
            rows.append({"service": service, "room": name, "stanza_id": msg.stanza_id,
                         "at": msg.at, "nick": msg.nick, "sender": msg.sender,
                         "payload": msg.payload})
        if not rows:
            return 0
        wanted: set[tuple[str, str]] = {(str(r["service"]), str(r["room"])) for r in rows}

        def txn(conn: Connection) -> int:
            r = muc_rooms.c
            stored: set[tuple[str, str]] = set()
            for service in {s for s, _ in wanted}:
                names = [n for s, n in wanted if s == service]
                stored.update((service, x.room) for x in conn.execute(
                    select(r.room).where(r.service == service, r.room.in_(names))))
            keep = [row for row in rows if (row["service"], row["room"]) in stored]
            if keep:
                insert_rows(conn, muc_archive, keep)
            return len(keep)

        return await self._db.run(txn)

    async def recent(self, room: JID, limit: int) -> list[ArchivedMessage]:
        service, name = _key(room)
        if limit <= 0:
            return []

        def txn(conn: Connection) -> list[ArchivedMessage]:
            m = muc_archive.c
            rows = conn.execute(select(muc_archive).where(m.service == service, m.room == name)
                                .order_by(m.seq.desc()).limit(limit)).all()
            return [_row_message(service, name, x) for x in reversed(rows)]

        return await self._db.run(txn)

    async def query(self, room: JID, q: ArchiveQuery) -> ArchivePage:
        service, name = _key(room)
        limit = max(0, q.limit)

        def txn(conn: Connection) -> ArchivePage:
            m = muc_archive.c
            where = [m.service == service, m.room == name]
            if q.start is not None:
                where.append(m.at >= q.start)
            if q.end is not None:
                where.append(m.at <= q.end)
            if q.nick is not None:
                where.append(m.nick == q.nick)
            count = int(conn.execute(select(func.count()).select_from(muc_archive)
                                     .where(*where)).scalar_one())

            def seq_of(stanza_id: str) -> int:
                found = conn.execute(select(m.seq).where(
                    m.service == service, m.room == name, m.stanza_id == stanza_id)).scalar()
                if found is None:
                    raise LookupError(f"no archived message {stanza_id!r} in {room}")
                return int(found)

            page = select(muc_archive).where(*where)
            backward = q.before is not None
            if q.after is not None:
                page = page.where(m.seq > seq_of(q.after))
            if q.before:
                page = page.where(m.seq < seq_of(q.before))
            order = m.seq.desc() if backward else m.seq.asc()
            found = conn.execute(page.order_by(order).limit(limit + 1)).all()
            complete = len(found) <= limit
            rows = list(found[:limit])
            if backward:
                rows.reverse()
            first_index = None
            if rows:
                first_index = int(conn.execute(
                    select(func.count()).select_from(muc_archive)
                    .where(and_(*where), m.seq < rows[0].seq)).scalar_one())
            return ArchivePage([_row_message(service, name, x) for x in rows], complete,
                               count, first_index)

        return await self._db.run(txn)
