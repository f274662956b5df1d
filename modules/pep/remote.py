# tests: tests/modules/test_pep_remote.py, tests/integration/test_federation_xmppd.py, tests/integration/test_federation_prosody.py, tests/integration/test_federation_ejabberd.py
"""PEP for contacts on other servers (XEP-0163 §4 across the federation).

Our server sees a remote contact's resources only in the presence its server sends to our
users (broadcasts and probe answers). Each available presence from a remote full JID to a
local user who has that contact in the roster is remembered while the resource is available,
with the features of its XEP-0115 caps (`CapsService.learn`: disco#info asked of that
resource unless the verification string is already known). Then:
- the resource's '<node>+notify' interests get the notifications of every local owner whose
  roster gives the contact a 'from'/'both' subscription (auto-subscription, §4.1;
  `PepService.recipients` asks `interested` and checks the roster, §4.3);
- the first presence from it that reaches such an owner, and any that adds an interest to
  its caps, brings it the owner's last published items of those nodes (§4.3.2, as for local
  resources). (A subscription approved while the contact is online: its next presence.)
- an unavailable presence from it (to each local user that saw it) forgets it for them.
Presence for one resource is handled in arrival order. At most MAX_RESOURCES resources are
kept per remote contact (a remote server cannot grow our memory past its users' share of our
rosters). Delivery never waits for this: the caps question runs beside it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from twisted.internet import defer

from modules.caps import Caps, CapsService, caps_of
from modules.pep.config import PepOptions
from modules.pep.last_items import LastItems, interest
from modules.pep.service import PepService
from modules.roster import has_from
from stanzas.jid import JID
from xmppd.concurrency import KeyedLock
from xmppd.hooks import StanzaEvent
from xmppd.module import ModuleContext

MAX_RESOURCES = 16
_EMPTY: frozenset[str] = frozenset()


@dataclass
class RemoteResource:
    caps: Caps | None = None
    features: frozenset[str] = _EMPTY
    seen_by: set[JID] = field(default_factory=set)  # local users its presence reached
    sent: set[JID] = field(default_factory=set)     # owners whose last items it has had


class RemoteContacts:
    def __init__(self, ctx: ModuleContext[PepOptions], service: PepService,
                 last_items: LastItems) -> None:
        self.ctx = ctx
        self.service = service
        self.last_items = last_items
        self.caps = ctx.service(CapsService)
        self.resources: dict[JID, dict[JID, RemoteResource]] = {}   # contact -> full JIDs
        self.serial: KeyedLock[JID] = KeyedLock()

    def interested(self, contact: JID, node: str) -> list[JID]:
        """The available resources of the remote `contact` that want `node` notifications."""
        wanted = node + "+notify"
        return [jid for jid, r in self.resources.get(contact, {}).items()
                if wanted in r.features]

    # -- presence --------------------------------------------------------------------------
    def on_presence(self, ev: StanzaEvent) -> None:
        """Inbound presence from a remote full JID to a local user (hooks.presence_in)."""
        sender, owner = ev.sender, ev.to.bare
        kind = ev.stanza.get("type")
        if (ev.session is not None or kind not in (None, "unavailable")
                or sender.resource is None or sender.domain in self.ctx.local_domains
                or owner.local is None or owner.domain not in self.ctx.local_domains):
            return None
        if kind is None:
            caps = caps_of(ev.stanza)
            work = self.serial.run(sender, lambda: self._available(sender, owner, caps))
        else:
            work = self.serial.run(sender, lambda: self._unavailable(sender, owner))
        defer.Deferred.fromCoroutine(work).addErrback(
            lambda f: self.ctx.log.error("PEP presence of %s failed: %s", sender, f.value))
        return None

    async def _available(self, sender: JID, owner: JID, caps: Caps | None) -> None:
        item = (await self.service.roster.roster(owner)).items.get(sender.bare)
        if item is None:
            return                                  # directed presence from a stranger
        known = self.resources.setdefault(sender.bare, {})
        resource = known.get(sender)
        if resource is None:
            if len(known) >= MAX_RESOURCES:
                self.ctx.log.info("PEP: more than %d resources of %s, %s not tracked",
                                  MAX_RESOURCES, sender.bare, sender)
                return
            resource = known[sender] = RemoteResource()
        added = _EMPTY
        if caps != resource.caps or not resource.seen_by:
            old = interest(resource.features)
            resource.caps = caps
            resource.features = _EMPTY if caps is None else await self.caps.learn(sender, caps)
            added = interest(resource.features) - old
        resource.seen_by.add(owner)
        targets = [(o, added) for o in resource.sent if added and o != owner]
        if has_from(item):      # auto-subscribed (§4.1): its last items, once per presence
            targets.append((owner, added if owner in resource.sent
                            else interest(resource.features)))
            resource.sent.add(owner)
        for o, nodes in targets:
            if nodes:
                await self._send_last(o, sender, nodes)

    async def _unavailable(self, sender: JID, owner: JID) -> None:
        known = self.resources.get(sender.bare)
        resource = known.get(sender) if known is not None else None
        if known is None or resource is None:
            return
        resource.seen_by.discard(owner)
        resource.sent.discard(owner)
        if not resource.seen_by:
            del known[sender]
            if not known:
                del self.resources[sender.bare]

    async def _send_last(self, owner: JID, to: JID, nodes: frozenset[str]) -> None:
        found = [li for li in await self.service.store.last_items([owner])
                 if li.item is not None]
        if found:
            await self.last_items.send_last_items(owner, found, to, nodes)
