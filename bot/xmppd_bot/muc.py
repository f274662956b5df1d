# tests: tests/bot/test_bot.py, tests/bot/test_examples.py, tests/bot/test_runner.py
"""XEP-0045 group chats from the bot's side: join, stay aware of our own occupancy, leave, and
the one moderator request the SDK offers (roles).

- Joining sends presence to room/nick asking for no history (§7.2.15) and waits for our own
  occupant presence (status 110, §7.2.3), whose nick the room may have changed; an error
  presence fails the join with its condition and a hint for the author (§7.2.6-§7.2.11).
- `Rooms.joined` maps each joined room to our nick; our own 'unavailable' presence removes the
  room (307 kicked, §8.2; 301 banned, §9.1).
- `set_role` is §8.2 (kick: role 'none') and §8.4/§8.5 (voice).
Not here: what arrives *in* a room (dispatch.py), affiliations, invitations, configuration.
"""
from __future__ import annotations

import asyncio
import logging
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING

from xmppd_bot.errors import RoomError
from xmppd_bot.jid import JID, JIDError

if TYPE_CHECKING:
    from xmppd_bot.client import Connection

log = logging.getLogger(__name__)

NS_MUC = "http://jabber.org/protocol/muc"
NS_MUC_USER = "http://jabber.org/protocol/muc#user"
NS_MUC_ADMIN = "http://jabber.org/protocol/muc#admin"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
_C = "{jabber:client}"

_ROOM_HINTS = {"item-not-found": "no such room",
               "remote-server-not-found": "no such group chat service",
               "registration-required": "the room is members-only",
               "forbidden": "the bot is banned from the room",
               "conflict": "the nickname is taken",
               "not-authorized": "the room needs a password",
               "service-unavailable": "the room is full or not accepting occupants",
               "not-allowed": "the room does not exist and may not be created"}


class Rooms:
    """The group chats one connection is in."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self.joined: dict[JID, str] = {}          # room -> our nick
        self._joins: dict[JID, asyncio.Future[str]] = {}

    async def join(self, room: JID, nick: str, timeout: float) -> None:
        """Enter `room` as `nick` (§7.2).

        Done by hand rather than with slixmpp's xep_0045 `join_muc_wait`, which only sees
        an error presence that echoes the <x/> of the join (RFC 6120 §8.3.1 makes that a MAY).

        Raises:
            RoomError: the error condition the room (or our server) returned, or no answer.
        """
        joined: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._joins[room] = joined
        x = ET.Element("{%s}x" % NS_MUC)
        ET.SubElement(x, "{%s}history" % NS_MUC, maxstanzas="0")
        self._conn.send_presence(room.with_resource(nick), payload=x)
        try:
            self.joined[room] = await asyncio.wait_for(joined, timeout)
        except RoomError as e:
            raise RoomError(f"cannot join room {room}: {e}") from None
        except TimeoutError:
            raise RoomError(f"cannot join room {room}: no answer within {timeout:g} s") from None
        finally:
            self._joins.pop(room, None)

    def on_presence(self, xml: ET.Element) -> None:
        """Any presence the connection received; only those of our rooms matter here."""
        try:
            sender = JID.parse(xml.get("from") or "")
        except JIDError:
            return
        room = sender.bare
        joining = self._joins.get(room)
        if joining is None and room not in self.joined:
            return
        kind = xml.get("type")
        codes = {c.get("code") for c in xml.iterfind("{%s}x/{%s}status" % (NS_MUC_USER,
                                                                              NS_MUC_USER))}
        if kind == "error":
            if joining is not None and not joining.done():
                joining.set_exception(RoomError(_room_error(xml.find(_C + "error"))))
            return
        mine = "110" in codes        # §7.2.3: the occupant's own presence
        if not mine or sender.resource is None:
            return
        if kind == "unavailable":
            if self.joined.pop(room, None) is not None:
                why = "kicked" if "307" in codes else "banned" if "301" in codes else "removed"
                log.warning("the bot was %s from %s", why, room)
        elif joining is not None and not joining.done():
            joining.set_result(sender.resource)      # the room may have changed it (§7.2.3)

    def leave(self, room: JID) -> None:
        nick = self.joined.pop(room, None)
        if nick is not None:
            self._conn.send_presence(room.with_resource(nick), "unavailable")     # §7.14

    async def set_role(self, room: JID, nick: str, role: str, reason: str) -> None:
        """Give `nick` in `room` this role (the bot must be a moderator).

        Raises:
            RequestError: the room refused (e.g. "not-allowed" for a non-moderator).
        """
        q = ET.Element("{%s}query" % NS_MUC_ADMIN)
        item = ET.SubElement(q, "{%s}item" % NS_MUC_ADMIN, nick=nick, role=role)
        if reason:
            ET.SubElement(item, "{%s}reason" % NS_MUC_ADMIN).text = reason
        await self._conn.request(room, "set", q, f"setting {nick}'s role in {room} to {role}")


def _room_error(err: ET.Element | None) -> str:
    """"item-not-found (no such room; <text>)" from an <error/> (RFC 6120 §8.3, XEP-0045 §7.2)."""
    if err is None:
        return "undefined-condition"
    ns = "{%s}" % NS_STANZAS
    cond = next((c.tag[len(ns):] for c in err if c.tag.startswith(ns) and c.tag != ns + "text"),
                "undefined-condition")
    detail = "; ".join(x for x in (_ROOM_HINTS.get(cond, ""), err.findtext(ns + "text") or "")
                       if x)
    return f"{cond} ({detail})" if detail else cond
