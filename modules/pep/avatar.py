# tests: tests/modules/test_avatar_conversion.py, tests/integration/test_pep_slixmpp.py
"""XEP-0398: the same picture for XEP-0084 (PEP) and XEP-0153 (vCard) clients.

- PEP to vCard (§3.1, MUST): a publish to 'urn:xmpp:avatar:metadata' stores the image of its
  first <info/> without a 'url' (read from 'urn:xmpp:avatar:data' by that id) as the vCard
  PHOTO, with its type, and so as the XEP-0153 hash in presence. The image must hash (SHA-1) to
  the id (§3.1 "SHOULD verify"). Only an avatar whose data node is "open" is copied (§8 "SHOULD
  perform conversion only if the access model ... has been set to 'open'"): vCards are
  readable by anyone. Metadata without <info/> (XEP-0084 §4.2: avatar disabled) removes the
  PHOTO.
- vCard to PEP (§3.2): a vCard set with a valid photo publishes the image to the data node
  (id = its SHA-1), then the metadata (one <info/> with bytes, id and the vCard's TYPE), which
  notifies the metadata node's subscribers. New nodes are created "open", as the vCard is. A
  vCard without a photo leaves the PEP avatar alone (the XEP converts only "a valid photo").
- Each direction marks what it writes (`origin`), so neither converts its own writes back.
Needs the vcard module; without it nothing is converted and the account does not advertise
'urn:xmpp:pep-vcard-conversion:0' (§2).
"""
from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import replace
from typing import Any

from lxml import etree

from stanzas import ns
from modules.pep.config import NS, NodeConfig
from modules.pep.service import PepService, payload_of
from stanzas.errors import StanzaError
from xmppd import hooks
from xmppd.hooks import PepEvent, VCardEvent
from stanzas.jid import JID
from xmppd.module import ModuleContext

FEATURE = ns.PEP_VCARD_CONVERSION
NS_DATA = ns.AVATAR_DATA
NS_METADATA = ns.AVATAR_METADATA
_M = "{%s}" % NS_METADATA
_V = "{%s}" % ns.VCARD
_ITEM = "{%s}item" % NS
ORIGIN = "vcard"
OPEN = replace(NodeConfig(), access_model="open")


class AvatarConversion:
    def __init__(self, ctx: ModuleContext[Any], pep: PepService) -> None:
        self.ctx = ctx
        self.pep = pep
        ctx.hook(hooks.pep_changed, self.from_pep)
        ctx.hook(hooks.vcard_published, self.from_vcard)

    def vcard(self) -> object | None:
        from modules.vcard import VCardService
        try:
            return self.ctx.service(VCardService)
        except LookupError:
            return None

    # -- PEP -> vCard (§3.1) ---------------------------------------------------------------
    async def from_pep(self, ev: PepEvent) -> None:
        from modules.vcard import VCardService
        if ev.node != NS_METADATA or ev.kind != "publish" or ev.origin == ORIGIN \
                or ev.item is None:
            return
        service = self.vcard()
        if not isinstance(service, VCardService):
            return
        metadata = ev.item.find(_M + "metadata")
        if metadata is None:
            return
        infos = metadata.findall(_M + "info")
        if not infos:
            await service.set_photo(ev.owner, None)                  # XEP-0084 §4.2: disabled
            return
        info = next((i for i in infos if not i.get("url")), None)   # §3.1: not an external URL
        if info is None or not info.get("id"):
            return
        image = await self._image(ev.owner, info.get("id") or "")
        if image is None:
            return
        if not await service.set_photo(ev.owner, image, info.get("type") or ""):
            self.ctx.log.info("avatar of %s not copied to the vCard: too large", ev.owner)

    async def _image(self, owner: JID, item_id: str) -> bytes | None:
        try:
            node, config = await self.pep.node(owner, NS_DATA)
        except StanzaError:
            return None
        if config.access_model != "open":
            return None                                             # §8
        found = await self.pep.store.items(owner, NS_DATA, ids=[item_id])
        data = payload_of(found[0]) if found else None
        if data is None:
            return None
        try:
            image = base64.b64decode("".join((data.text or "").split()), validate=True)
        except (binascii.Error, ValueError):
            return None
        if hashlib.sha1(image).hexdigest() != item_id.lower():      # §3.1 SHOULD verify
            self.ctx.log.info("avatar of %s does not match its id %s", owner, item_id)
            return None
        return image

    # -- vCard -> PEP (§3.2) ---------------------------------------------------------------
    async def from_vcard(self, ev: VCardEvent) -> None:
        binval = ev.card.find(f"{_V}PHOTO/{_V}BINVAL")
        text = "".join((binval.text or "").split()) if binval is not None else ""
        if not text:
            return
        try:
            image = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            return
        digest = hashlib.sha1(image).hexdigest()
        mime = (ev.card.findtext(f"{_V}PHOTO/{_V}TYPE") or "image/png").strip()
        owner = ev.user
        current = await self.pep.store.items(owner, NS_METADATA, last=1)
        if current and current[0].id == digest:
            return                                      # already the PEP avatar
        data = etree.Element(_ITEM, id=digest)
        etree.SubElement(data, "{%s}data" % NS_DATA,
                         nsmap={None: NS_DATA}).text = base64.b64encode(image).decode()  # type: ignore[dict-item]
        meta = etree.Element(_ITEM, id=digest)
        md = etree.SubElement(meta, _M + "metadata", nsmap={None: NS_METADATA})  # type: ignore[dict-item]
        etree.SubElement(md, _M + "info", bytes=str(len(image)), id=digest, type=mime)
        try:
            await self.pep.publish(owner, NS_DATA, data, publisher=owner, defaults=OPEN,
                                   origin=ORIGIN)
            await self.pep.publish(owner, NS_METADATA, meta, publisher=owner, defaults=OPEN,
                                   origin=ORIGIN)
        except StanzaError as e:
            self.ctx.log.info("vCard photo of %s not published to PEP: %s", owner, e)
