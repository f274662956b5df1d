# tests: tests/modules/test_muc_*.py, tests/integration/test_muc_slixmpp.py
"""XEP-0045: Multi-User Chat — group chats with members, admins and history, the way
Conversations, Gajim and Converse.js speak them.

- A MUC service per virtual host at `domain` (`conference.<host>`), listed in the host's
  disco#items; its rooms are instant or reserved (§10.1), configured with the muc#roomconfig
  form (§10.2: persistent, members-only, moderated, password, size, whois, public, history,
  subject, invitations, private messages, archive), and destroyed with a reason and an
  alternate venue (§10.9). Details: service.py (the service), room.py (occupants and
  messages), admin.py (roles, affiliations, configuration), mam.py (the room archive).
- Every join error exactly as §7.2 says; status codes 100, 104, 110, 170-173, 201, 210, 301,
  303, 307, 321, 322, 332, 333.
- Mediated invitations (§7.8.2; in members-only rooms they grant membership) and XEP-0249
  direct invitations (client to client: the server routes them; this module adds nothing).
- XEP-0313 on room JIDs, XEP-0359 stanza ids (by the room), XEP-0421 occupant ids, XEP-0410
  self-ping answered by the service.
- Persistent rooms, their configuration, subject and affiliations live in the database and
  come back after a restart, as does their archive; temporary rooms go away when empty.
- On a cluster each room lives on the node rendezvous hashing picks (stanzas for it are
  forwarded there); when the live set changes, rooms placed elsewhere leave memory and are read
  again on their new node (a temporary room is gone, as on a restart); occupants notice by
  XEP-0410 self-ping and join again (docs/CLUSTER.md).
Not here: routing to the service domain (xmppd/router.py `service_domain`, `fan_out`), leaving
rooms on disconnect (the presence module's directed presence, RFC 6121 §4.6.3).

Config ([modules.muc]):
  domain               string  default "conference.{host}"  the service's domain ({host}: the vhost)
  name                 string  default "Chatrooms"  its name in service discovery
  create_rooms         "anyone" | "local" | "admins"  default "local"  who may create rooms
                       ("local": accounts of this server; "admins": the `admins` list)
  admins               list of JIDs  default []  who may create rooms under "admins"
  max_occupants        int  default 200    size of a new room (muc#roomconfig_maxusers)
  max_occupants_limit  int  default 1000   the largest size an owner may choose
  history              int  default 20     messages a joiner gets (muc#maxhistoryfetch default)
  history_limit        int  default 100    the most an owner may choose (kept in memory per room)
Storage: MucStore (storage/muc.py): persistent rooms, affiliations, room archives.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from lxml import etree

from modules.muc.config import Limits, RoomConfig
from xmppd import hooks
from modules.muc.service import MucService, Policy
from xmppd.cluster.api import cluster_of
from xmppd.config import ConfigError
from stanzas.jid import JID, JIDError
from xmppd.module import Module, ModuleContext, number


@dataclass(frozen=True, slots=True)
class MucOptions:
    domain: str = "conference.{host}"
    name: str = "Chatrooms"
    create_rooms: Literal["anyone", "local", "admins"] = "local"
    admins: tuple[str, ...] = ()
    max_occupants: int = number(default=200, minimum=1, maximum=100_000)
    max_occupants_limit: int = number(default=1000, minimum=1, maximum=100_000)
    history: int = number(default=20, minimum=0, maximum=10_000)
    history_limit: int = number(default=100, minimum=0, maximum=10_000)


class Muc(Module[MucOptions]):
    name = "muc"
    xeps = (45, 249, 313, 359, 410, 421)
    Options = MucOptions

    def __init__(self, ctx: ModuleContext[MucOptions]) -> None:
        self.ctx = ctx
        o = ctx.options
        domain = o.domain.replace("{host}", ctx.host)
        try:
            if JID.parse(domain) != JID.of(None, domain):
                raise JIDError("not a bare domain")
            admins = frozenset(JID.parse(a).bare for a in o.admins)
        except JIDError as e:
            raise ConfigError(f"modules.muc: {e}") from None
        if o.max_occupants > o.max_occupants_limit or o.history > o.history_limit:
            raise ConfigError("modules.muc: max_occupants and history must not exceed "
                              "max_occupants_limit and history_limit")
        self.service = MucService(
            ctx, domain, Limits(o.max_occupants, o.max_occupants_limit, o.history,
                                o.history_limit), Policy(o.create_rooms, admins, o.name))
        handler: Callable[[etree._Element, JID, JID], Any] = self.service.receive
        self.cluster = cluster_of(ctx)
        self._unreport: Callable[[], None] | None = None
        if self.cluster is not None:
            # A cluster: each room lives on one node; stanzas for it go there (docs/CLUSTER.md).
            handler = self.cluster.placed(domain, handler)
            self.service.cluster = self.cluster
            ctx.hook(hooks.placement_changed, lambda ev: self.service.placement_changed())
            self._unreport = self.cluster.report("rooms", lambda: len(self.service.rooms))
        ctx.service_domain(domain, handler)
        ctx.disco_item(domain, o.name)      # XEP-0045 §6.1: the host lists its MUC service
        ctx.hook(hooks.server_stopping, lambda ev: self.service.shutting_down())
        rooms = self.service.rooms
        ctx.metrics.gauge("muc_rooms", "rooms in use (loaded)", lambda: len(rooms))
        ctx.metrics.gauge("muc_occupants", "occupants (nicks) in all rooms",
                          lambda: sum(len(r.occupants) for r in rooms.values()))
        ctx.hook(hooks.control_command, self.control)

    async def control(self, req: hooks.ControlRequest, acc: Any) -> Any:
        """`xmppctl rooms`: the stored rooms and those in use, with their occupants."""
        if req.command != "rooms":
            return acc
        service = self.service
        found: dict[JID, dict[str, Any]] = {}
        for summary in await service.store.list_rooms(service.domain):
            cfg = RoomConfig.from_json(summary.config)
            found[summary.room] = {"room": str(summary.room), "name": cfg.name,
                                   "occupants": 0, "persistent": cfg.persistent,
                                   "public": cfg.public, "members_only": cfg.members_only}
        for room in service.rooms.values():
            cfg = room.config
            found[room.jid] = {"room": str(room.jid), "name": cfg.name,
                               "occupants": len(room.occupants), "persistent": cfg.persistent,
                               "public": cfg.public, "members_only": cfg.members_only}
        return [*(acc or []), *(found[j] for j in sorted(found, key=str))]

    async def stop(self) -> None:
        if self._unreport is not None:
            self._unreport()
        await self.service.stop()
