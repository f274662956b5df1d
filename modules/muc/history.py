# tests: tests/modules/test_muc_occupants.py
"""What a joiner gets after the occupant list (XEP-0045 §7.1 order of events): the discussion
history (§7.2.15) within the limits the joiner asked for (§7.2.14) and the room allows
(muc#maxhistoryfetch), each message with a delay stamp by the room; then the subject (§7.2.16),
always, empty if none was set, from whoever set it and stamped with when.

Not here: what goes into the history (messages.py: groupchat messages with a body; service.py
refills it from the archive when a stored room is read in).
"""
from __future__ import annotations

import copy
import secrets
from typing import TYPE_CHECKING

from lxml import etree

from modules.muc import codec
from modules.muc.codec import JoinRequest
from stanzas.jid import JID

if TYPE_CHECKING:
    from modules.muc.room import Room

_E = etree._Element


def send_history(room: Room, session: JID, request: JoinRequest) -> None:
    limit = room.config.history_length
    if request.maxstanzas is not None:
        limit = min(limit, request.maxstanzas)
    since = request.since
    if request.seconds is not None:
        since = max(since or 0.0, room.service.now() - request.seconds)
    chosen: list[_E] = []
    chars = 0
    for entry in reversed(room.history):
        if len(chosen) >= limit or (since is not None and entry.at < since):
            break
        out = copy.deepcopy(entry.message)
        out.set("to", str(session))
        codec.add_delay(out, room.jid, entry.at)
        if request.maxchars is not None:
            # §7.2.14: characters of the complete stanzas; never a partial one.
            chars += len(etree.tostring(out, encoding="unicode"))
            if chars > request.maxchars:
                break
        chosen.append(out)
    for out in reversed(chosen):
        room.send(out)


def send_subject(room: Room, session: JID) -> None:
    sender = room.jid.with_resource(room.subject_nick) if room.subject_nick else room.jid
    out = codec.stanza("message", sender, session, type="groupchat", id=secrets.token_hex(8))
    etree.SubElement(out, codec.SUBJECT).text = room.subject
    if room.subject_nick and room.subject_by is not None:
        codec.el("occupant-id", codec.NS_OCCUPANT_ID, out, id=room.subject_by)    # XEP-0421
    if room.subject_at is not None:
        codec.add_delay(out, room.jid, room.subject_at)                # §7.2.16 SHOULD
    room.send(out)
