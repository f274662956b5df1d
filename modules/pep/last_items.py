# tests: tests/modules/test_pep.py, tests/integration/test_pep_slixmpp.py
"""Last published items (XEP-0163 §4.3.2, §4.3.4): what a resource gets without asking.

- At initial presence and when its caps (XEP-0115) gain a '+notify' interest: the last item
  of each such node of the user's own account and of every contact it is subscribed to (one
  store query for all of them), as the owner's access model allows.
- After a new presence subscription: the owner's available presence reaching a resource that
  has not had that owner's items since its initial presence (on_sub, §4.3.4).
- Explicit subscribers get the last item of their nodes at initial presence
  (`on_sub_and_presence`).
Each owner's items are sent by the owner's host (`ctx.service_on`), whose rules apply.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from twisted.internet import defer

from modules.pep.config import NodeConfig, PepOptions
from modules.pep.service import PepService
from modules.roster import has_from, has_to
from stanzas.jid import JID
from storage.pubsub import LastItem
from xmppd import hooks
from xmppd.module import ModuleContext, SessionKey

# owners whose last items the session got since its initial presence
SENT: SessionKey[set[JID]] = SessionKey(
    "pep.sent", codec=(lambda s: sorted(map(str, s)), lambda v: set(map(JID.parse, v))))


def interest(features: Iterable[str]) -> frozenset[str]:
    """The nodes a client asked to be notified about: 'node+notify' features (§4.3)."""
    return frozenset(f[:-7] for f in features if f.endswith("+notify") and len(f) > 7)


class LastItems:
    def __init__(self, ctx: ModuleContext[PepOptions], service: PepService) -> None:
        self.ctx = ctx
        self.service = service

    # -- the owner's side ------------------------------------------------------------------
    async def send_last_items(self, owner: JID, found: list[LastItem], to: JID,
                              nodes: frozenset[str]) -> None:
        """Send `to` (a resource of the owner, or of a contact subscribed to the owner, local
        or remote) the last item of each of the owner's `nodes` it may have (§4.3.2,
        §4.3.4)."""
        user = to.bare
        roster_item = None
        if user != owner:
            roster_item = (await self.service.roster.roster(owner)).items.get(user)
            if not has_from(roster_item):
                return
        for li in found:
            config = NodeConfig.from_json(li.node.config)
            if li.item is None or li.node.name not in nodes or not config.deliver_notifications \
                    or config.send_last_published_item != "on_sub_and_presence":
                continue
            if roster_item is not None and \
                    not await self.service.auto_subscribed(owner, config, roster_item):
                continue
            self.service.send_last(owner, li.node.name, li.item, to)

    async def send_last_explicit(self, owner: JID, name: str, session: Any) -> None:
        """At initial presence: the last item of a node `session`'s user subscribed to."""
        node = await self.service.store.node(owner, name)
        if node is None:
            return
        config = NodeConfig.from_json(node.config)
        if config.send_last_published_item != "on_sub_and_presence" or \
                not config.deliver_notifications or not config.persist_items or \
                await self.service.access_error(owner, config, session.jid) is not None:
            return
        last = await self.service.store.items(owner, name, last=1)
        if last:
            self.service.send_last(owner, name, last[0], session.jid)

    # -- the subscriber's side -------------------------------------------------------------
    async def on_caps_changed(self, ev: hooks.CapsChanged) -> None:
        """A resource's interests became known or changed (XEP-0115 via the caps module)."""
        session = ev.session
        user = session.jid.bare
        new, old = interest(ev.new), interest(ev.old)
        if ev.initial:
            session.set(SENT, set())
        added = new if ev.initial else new - old
        owners: list[JID] = []
        if added:
            roster = await self.service.roster.roster(user)
            owners = [user] + [i.contact for i in roster.items.values()
                               if has_to(i) and i.contact.domain in self.ctx.local_domains
                               and i.contact.local is not None]
            sent = session.setdefault(SENT, set)
            sent.update(owners)
            by_owner: dict[JID, list[LastItem]] = defaultdict(list)
            for li in await self.service.store.last_items(owners):
                if li.item is not None and li.node.name in added:
                    by_owner[li.node.owner].append(li)
            for owner, found in by_owner.items():
                peer = self._peer(owner.domain)
                if peer is not None:
                    await peer.send_last_items(owner, found, session.jid, added)
        if ev.initial:
            handled = set(owners) if added else set()
            for sub in await self.service.store.subscriptions_of(user):
                if sub.owner in handled and sub.node in added:
                    continue                    # the presence-based path covered it
                if sub.subscriber in (user, session.jid):
                    peer = self._peer(sub.owner.domain)
                    if peer is not None:
                        await peer.send_last_explicit(sub.owner, sub.node, session)

    def on_presence(self, ev: hooks.StanzaEvent) -> None:
        """The owner's available presence reaching a subscriber (a probe answer, a broadcast,
        a subscription just approved): a resource that has not had that owner's last items
        since its initial presence gets them now (on_sub, §4.3.4)."""
        if ev.session is not None or ev.stanza.get("type") is not None:
            return None
        owner, user = ev.sender.bare, ev.to.bare
        if owner == user or owner.local is None or owner.domain not in self.ctx.local_domains:
            return None
        targets = []
        for s in self.ctx.sessions.resources(user):
            sent = s.get(SENT) if s.available else None
            if sent is not None and owner not in sent:
                nodes = interest(self.service.caps.features(s.jid))
                if nodes:
                    sent.add(owner)
                    targets.append((s, nodes))
        if targets:
            defer.Deferred.fromCoroutine(self._after_presence(owner, targets)).addErrback(
                lambda f: self.ctx.log.error("last items of %s failed: %s", owner, f.value))
        return None

    async def _after_presence(self, owner: JID, targets: list[tuple[Any, frozenset[str]]]) \
            -> None:
        peer = self._peer(owner.domain)
        if peer is None:
            return
        found = [li for li in await self.service.store.last_items([owner]) if li.item is not None]
        for session, nodes in targets:
            await peer.send_last_items(owner, found, session.jid, nodes)

    def _peer(self, domain: str) -> LastItems | None:
        """The last items of the owner's host (access follows the owner's rules)."""
        return self.ctx.service_on(domain, LastItems)
