# tests: tests/modules/test_vcard.py, tests/integration/test_blocking_vcard_slixmpp.py
"""XEP-0054 vcard-temp and XEP-0153 avatar hashes — profile cards and the photo in presence.

- Get one's own vCard (no 'to', or one's bare JID): the stored one, or an empty <vCard/> when
  there is none (XEP-0054 §3.1 allows that or an error; clients such as slixmpp's avatar code
  read before they write). Set one's own: replaces it whole (§3.2); an empty one deletes it.
  A set to anyone else's JID: <forbidden/> (§3.2). Larger than `max_size`: <not-acceptable/>
  (RFC 6120 §8.3.3.9, the request "does not meet criteria defined by the ... server").
  A PHOTO/BINVAL that is not base64: <bad-request/> (XEP-0153 §4.6 "MUST conform").
- Get another user's vCard (to their bare JID) is answered by the server (§3.3 "MUST respond
  on behalf of the requestor"); no vCard and no such user both get <service-unavailable/>
  (§3.3, 1.3: "MUST be used in both cases", against directory harvesting).
- XEP-0153: the SHA-1 of the decoded PHOTO/BINVAL, in hex, is the avatar hash. XEP-0153 leaves
  presence to the client (§3.1, §4.1); the server-side rules are XEP-0398 §4, applied to each
  available presence broadcast (`presence_broadcast`): an <x xmlns='vcard-temp:x:update'/>
  without <photo/>, or none at all, gets <photo>hash</photo> (empty: no avatar); an empty
  <photo/> is left alone ("doesn't touch the photo element"); a different non-empty hash is
  replaced by the stored vCard's ("MAY be overwritten"; XEP-0153 §4.3 defers to the vCard).
  Publishing a new photo re-broadcasts nothing: the client sends new presence (XEP-0153 §4.1
  rule 3; XEP-0398 §5.1 "will not resend the presence").
- Hashes of online users are kept in memory: stamping a broadcast reads no storage.
Not here: XEP-0084 PEP avatars and their conversion (XEP-0398 §3: modules/pep/avatar.py,
through `vcard_published` and `VCardService.set_photo`), a server vCard.

Config ([modules.vcard]):
  max_size   size   default "64 KiB"   largest vCard accepted, as serialized XML
Storage: KeyValueStore, namespaces "vcard-temp" (the vCard XML) and "vcard-temp:x:update" (the
photo hash, "" for none), written together in one transaction.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from typing import Any

from lxml import etree
from twisted.internet import defer
from twisted.python.failure import Failure

from stanzas import iq, ns
from stanzas.errors import StanzaError
from xmppd.cluster.api import cluster_memory
from xmppd import hooks
from xmppd.hooks import SessionEvent, StanzaEvent, UserEvent, VCardEvent
from stanzas.jid import JID
from xmppd.concurrency import OneLoad
from xmppd.module import IqRequest, Module, ModuleContext, size

NS = ns.VCARD
NS_UPDATE = ns.VCARD_UPDATE
_V, _U = "{%s}" % NS, "{%s}" % NS_UPDATE
# Our own stored data, parsed without entities, DTDs or network, like any input.
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                          remove_comments=True, remove_pis=True)


@dataclass(frozen=True, slots=True)
class VCardOptions:
    max_size: int = size(default="64 KiB", minimum=1024)


class VCard(Module[VCardOptions]):
    name = "vcard"
    xeps = (54, 153)
    Options = VCardOptions

    def __init__(self, ctx: ModuleContext[VCardOptions]) -> None:
        self.ctx = ctx
        self.kv = ctx.stores.kv
        self.hashes: dict[JID, str] = {}          # photo hash ("" = none) of online users
        self.loading: OneLoad[JID, str | None] = OneLoad(self._unreadable)
        # A cluster node forgets a hash another node changed (docs/CLUSTER.md).
        self.cluster = cluster_memory(ctx, "vcard", lambda user: self.hashes.pop(user, None))
        ctx.disco_feature(NS)                     # XEP-0054 §4
        ctx.disco_feature(NS, to="account")
        ctx.iq_get(NS, "vCard", self.own, to="self")
        ctx.iq_set(NS, "vCard", self.publish, to="self")
        ctx.iq_get(NS, "vCard", self.other, to="bare")
        ctx.iq_set(NS, "vCard", self.not_yours, to="bare")
        ctx.hook(hooks.presence_broadcast, self.stamp)
        ctx.hook(hooks.session_bound, self.warm)
        ctx.hook(hooks.session_closed, self.cool)
        ctx.hook(hooks.user_deleted, self.forget)
        ctx.provide(VCardService(self))

    # -- XEP-0054 --------------------------------------------------------------------------
    async def own(self, req: IqRequest) -> iq.Reply:
        stored = await self.kv.get(req.sender.bare, NS)
        return iq.result(req.stanza, _parse(stored) if stored else iq.empty(NS, "vCard"))

    async def other(self, req: IqRequest) -> iq.Reply:
        stored = await self.kv.get(req.to.bare, NS) if req.to.local is not None else None
        if not stored:
            raise StanzaError.service_unavailable()     # §3.3: no vCard, or no such user
        return iq.result(req.stanza, _parse(stored))

    def not_yours(self, req: IqRequest) -> iq.Reply:
        raise StanzaError.forbidden("you can only change your own vCard")   # §3.2

    async def publish(self, req: IqRequest) -> iq.Reply:
        card = req.payload
        data = etree.tostring(card)
        if len(data) > self.ctx.options.max_size:
            raise StanzaError.not_acceptable(
                f"a vCard may have at most {self.ctx.options.max_size} bytes")
        photo = photo_hash(card)
        user = req.sender.bare
        empty = not any(isinstance(c.tag, str) for c in card)
        changes: dict[str, bytes | None] = \
            {NS: None, NS_UPDATE: None} if empty else {NS: data, NS_UPDATE: photo.encode()}
        if not await self.kv.update(user, changes, self.ctx.clock.now()):
            raise StanzaError.internal_server_error("the account is gone")
        if self.ctx.sessions.resources(user):
            self.hashes[user] = photo
        if self.cluster is not None:
            self.cluster.changed("vcard", user)
        # XEP-0398 §3.2: PEP publishes the photo as an XEP-0084 avatar.
        done = self.ctx.run(hooks.vcard_published,
                                                              VCardEvent(user, card))
        if isinstance(done, defer.Deferred):
            await done
        return iq.result(req.stanza)

    # -- XEP-0153 in presence --------------------------------------------------------------
    def stamp(self, ev: StanzaEvent) -> Any:
        """Put the avatar hash into a user's available presence (XEP-0398 §4 rules)."""
        if ev.stanza.get("type") is not None:
            return None
        user = ev.sender.bare
        known = self.hashes.get(user)
        if known is not None:
            _stamp(ev.stanza, known)
            return None
        d = self._load(user)
        d.addCallback(lambda h: _stamp(ev.stanza, h) if h is not None else None)
        return d

    def _load(self, user: JID) -> defer.Deferred[str | None]:
        """The user's photo hash from storage (None if unreadable); one read per user at once."""
        return self.loading(user, lambda: self._read_hash(user))

    async def _read_hash(self, user: JID) -> str | None:
        stored = await self.kv.get(user, NS_UPDATE)
        if stored is not None:
            found = stored.decode()
        else:
            card = await self.kv.get(user, NS)      # a vCard written without its hash
            found = photo_hash(_parse(card)) if card else ""
        if self.ctx.sessions.resources(user):
            self.hashes[user] = found
        return found

    def _unreadable(self, user: JID, failure: Failure) -> None:
        self.ctx.log.warning("avatar hash of %s unreadable: %s", user, failure.value)

    def warm(self, ev: SessionEvent) -> None:
        user = ev.session.jid.bare
        if user not in self.hashes and user not in self.loading:
            self._load(user)            # read ahead: the first broadcast finds it in memory

    def cool(self, ev: SessionEvent) -> None:
        user = ev.session.jid.bare
        if not any(s is not ev.session for s in self.ctx.sessions.resources(user)):
            self.hashes.pop(ev.session.jid.bare, None)

    async def forget(self, ev: UserEvent) -> None:
        self.hashes.pop(ev.user, None)
        # The rows went with the account (foreign key); this clears the cache.
        await self.kv.update(ev.user, {NS: None, NS_UPDATE: None}, self.ctx.clock.now())


class VCardService:
    """For XEP-0398 (modules/pep/avatar.py): change a user's vCard photo on the server's
    initiative. Does not fire `vcard_published` (the change came from PEP)."""

    def __init__(self, module: VCard) -> None:
        self._m = module

    async def set_photo(self, user: JID, image: bytes | None, mime: str = "") -> bool:
        """Replace the PHOTO (None: remove it), keeping the rest of the card. False if the
        card would exceed `max_size` or the account is gone."""
        m = self._m
        stored = await m.kv.get(user, NS)
        card = _parse(stored) if stored else iq.empty(NS, "vCard")
        for old in card.findall(_V + "PHOTO"):
            card.remove(old)
        if image is not None:
            photo = etree.SubElement(card, _V + "PHOTO")
            if mime:
                etree.SubElement(photo, _V + "TYPE").text = mime
            etree.SubElement(photo, _V + "BINVAL").text = base64.b64encode(image).decode()
        data = etree.tostring(card)
        if len(data) > m.ctx.options.max_size:
            return False
        digest = hashlib.sha1(image).hexdigest() if image is not None else ""
        empty = not any(isinstance(c.tag, str) for c in card)
        changes: dict[str, bytes | None] = \
            {NS: None, NS_UPDATE: None} if empty else {NS: data, NS_UPDATE: digest.encode()}
        if not await m.kv.update(user, changes, m.ctx.clock.now()):
            return False
        if m.ctx.sessions.resources(user):
            m.hashes[user] = digest
        return True


def photo_hash(card: etree._Element) -> str:
    """XEP-0153 §3.1: hex SHA-1 of the image data (not its base64), "" without a BINVAL.

    Raises:
        StanzaError: bad-request if BINVAL is not base64 (§4.6: whitespace is ignored).
    """
    binval = card.find(f"{_V}PHOTO/{_V}BINVAL")
    text = "".join((binval.text or "").split()) if binval is not None else ""
    if not text:
        return ""
    try:
        image = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise StanzaError.bad_request("PHOTO/BINVAL is not base64") from None
    return hashlib.sha1(image).hexdigest()


def _stamp(presence: etree._Element, photo: str) -> None:
    x = presence.find(_U + "x")
    if x is None:
        x = etree.SubElement(presence, _U + "x", nsmap={None: NS_UPDATE})  # type: ignore[dict-item]
    el = x.find(_U + "photo")
    if el is None:
        etree.SubElement(x, _U + "photo").text = photo or None
        return
    said = (el.text or "").strip()
    if said and said.lower() != photo:
        el.text = photo or None


def _parse(data: bytes) -> etree._Element:
    return etree.fromstring(data, _PARSER)
