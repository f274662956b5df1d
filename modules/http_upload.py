# tests: tests/modules/test_http_upload.py, tests/storage/test_upload_store.py, tests/integration/test_upload_slixmpp.py
"""XEP-0363 v1.1: HTTP File Upload — photos, videos and files, shared as links.

- The service is `upload.<host>` (`domain`), listed in the host's disco#items (XEP-0030) with
  identity store/file, feature urn:xmpp:http:upload:0 and a XEP-0128 form announcing
  `max-file-size` (§3).
- Slot requests (§4) from this host's users only (others `<forbidden/>`): `filename` (1–255
  characters, no path separators or control characters), `size` (a positive integer) and an
  optional `content-type`; else `<bad-request/>`. Over `max_file_size`: `<not-acceptable/>` with
  `<file-too-large><max-file-size/></file-too-large>` (§4 example 6). Over the user's `quota`
  (files held plus open slots): `<resource-constraint/>` type wait (§5).
- A slot is a token of 192 random bits (`secrets`) under the HTTP listener's `upload_path`:
  PUT and GET share one URL. The PUT must come within `slot_timeout`, once (a second PUT is 409,
  a late one 410), with `Content-Length` equal to the announced size and `Content-Type` equal to
  the announced type (else 400; larger bodies are cut at 413 by the listener) (§6).
- GET/HEAD serve the bytes with `X-Content-Type-Options: nosniff`, a safe `Content-Type` (types a
  browser could run as a page or script, such as HTML, SVG or XML, are served as
  application/octet-stream) and `Content-Disposition: attachment` for everything but images,
  audio and video, plus a sandboxing CSP.
- Files expire `expire_after` after the slot was made (or never, "off"); a sweep on `ctx.clock`
  deletes expired files and slots never used; an expired file is 404 at once.
Not here: bytes on disk and slot rows (storage/files.py), HTTP plumbing (xmppd/listeners/http.py).

Config ([modules.http_upload]):
  domain         str         default "upload.{host}"  the service's JID ({host}: the vhost)
  directory      str         default "var/upload"     where files are kept
  max_file_size  size        default "100 MiB"        largest file
  quota          size        default "1 GiB"          bytes one user may hold ("0": no limit)
  slot_timeout   duration    default "5 min"          time to start the PUT
  expire_after   duration    default "30 d"           files are deleted after this ("off": kept)
  base_url       str         default ""               public URL of upload_path; "" = derived
                                                      from the first HTTP listener
"""
from __future__ import annotations

import re
import secrets
import urllib.parse
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any

from lxml import etree
from twisted.internet import defer
from twisted.web.server import NOT_DONE_YET

from stanzas import forms, iq, ns
from stanzas.errors import StanzaError, error_reply
from storage.files import DiskFileStorage, FileStorage, Slot, UploadStore
from stanzas.jid import JID
from xmppd.module import IqRequest, Module, ModuleContext, duration, size

NS = ns.HTTP_UPLOAD
_Q = "{%s}" % NS
_FILENAME_BAD = re.compile(r"[/\\\x00-\x1f\x7f]")
_MIME = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}")
_TOKEN = re.compile(r"[A-Za-z0-9_-]{32,64}")
# Types a browser shows or plays but never runs; anything else is served as a download.
_INLINE = re.compile(r"(image/(png|jpeg|gif|webp|avif|bmp|heic|heif)|audio/[a-z0-9.+-]+"
                     r"|video/[a-z0-9.+-]+)")
_SAFE = re.compile(r"(text/plain|application/pdf|application/octet-stream|application/zip"
                   r"|application/x-[a-z0-9.+-]+|application/vnd\.[a-z0-9.+-]+)")


@dataclass(frozen=True, slots=True)
class UploadOptions:
    domain: str = ""
    directory: str = "var/upload"
    max_file_size: int = size(default="100 MiB", minimum=1)
    quota: int = size(default="1 GiB", minimum=0)
    slot_timeout: float = duration(default="5 min", minimum=1)
    expire_after: float | None = duration(default="30 d", minimum=1, allow_off=True)
    base_url: str = ""


class HttpUpload(Module[UploadOptions]):
    name = "http_upload"
    xeps = (363,)
    Options = UploadOptions

    def __init__(self, ctx: ModuleContext[UploadOptions]) -> None:
        self.ctx = ctx
        opts = ctx.options
        self.domain = (opts.domain or "upload.{host}").replace("{host}", ctx.host)
        self.max_body = opts.max_file_size
        self.store: UploadStore = ctx.stores.upload
        self.files: FileStorage = DiskFileStorage(opts.directory, ctx.stores.db.runner)
        ctx.service_domain(self.domain, self.stanza)
        ctx.disco_item(self.domain, "HTTP File Upload")
        ctx.provide(self)           # the HTTP listener finds us as an HttpFiles service
        sweep = min(60.0, opts.expire_after or 60.0, opts.slot_timeout)
        ctx.clock.looping_call(sweep, self.sweep)

    # -- XMPP ------------------------------------------------------------------------------
    def stanza(self, el: etree._Element, sender: JID, to: JID) -> None:
        """Everything addressed to the service domain."""
        if el.tag != "{%s}iq" % ns.CLIENT or to.local is not None or to.resource is not None:
            if el.get("type") not in ("error", "result") and el.tag != "{%s}presence" % ns.CLIENT:
                self._reply(error_reply(el, StanzaError.service_unavailable()))
            return
        kind = el.get("type")
        if kind not in ("get", "set"):
            return
        payload = iq.payload(el)
        tag = payload.tag if payload is not None else None
        if kind == "get" and tag == "{%s}query" % ns.DISCO_INFO:
            handler: Any = self.disco_info
        elif kind == "get" and tag == "{%s}query" % ns.DISCO_ITEMS:
            handler = self.disco_items
        elif kind == "get" and tag == _Q + "request":
            handler = self.request_slot
        else:
            self._reply(error_reply(el, StanzaError.service_unavailable()))
            return
        assert payload is not None
        req = IqRequest(el, sender, to, payload)
        self.ctx.call_iq(handler, req, self._reply)

    def _reply(self, reply: etree._Element) -> None:
        if reply.get("from") is None or reply.get("from") != self.domain:
            reply.set("from", self.domain)
        self.ctx.send(reply)

    def disco_info(self, req: IqRequest) -> iq.Reply:
        if req.payload.get("node"):
            raise StanzaError.item_not_found("no such node")
        q = iq.empty(ns.DISCO_INFO, "query")
        d = "{%s}" % ns.DISCO_INFO
        etree.SubElement(q, d + "identity", category="store", type="file",
                         name="HTTP File Upload")
        for feature in (ns.DISCO_INFO, ns.DISCO_ITEMS, NS):
            etree.SubElement(q, d + "feature", var=feature)
        q.append(forms.build("result", [                                 # XEP-0128, §3
            forms.Field("max-file-size", None, values=[str(self.ctx.options.max_file_size)])],
            form_type=NS))
        return iq.result(req.stanza, q)

    def disco_items(self, req: IqRequest) -> iq.Reply:
        return iq.result(req.stanza, iq.empty(ns.DISCO_ITEMS, "query"))

    async def request_slot(self, req: IqRequest) -> iq.Reply:
        user = req.sender
        if user.domain != self.ctx.host or user.local is None:
            raise StanzaError.forbidden("only accounts of this server may upload")
        p = req.payload
        filename = (p.get("filename") or "").strip()
        if not filename or len(filename) > 255 or _FILENAME_BAD.search(filename) \
                or filename in (".", ".."):
            raise StanzaError.bad_request("a file name of 1 to 255 characters is required")
        raw_size = p.get("size") or ""
        if not raw_size.isdigit() or int(raw_size) <= 0:
            raise StanzaError.bad_request("size must be a positive integer")
        nbytes = int(raw_size)
        content_type = (p.get("content-type") or "application/octet-stream").strip().lower()
        if not _MIME.fullmatch(content_type):
            raise StanzaError.bad_request("content-type must be a MIME type")
        opts = self.ctx.options
        if nbytes > opts.max_file_size:
            raise _too_large(opts.max_file_size)
        now = self.ctx.clock.now()
        if opts.quota and await self.store.usage(user.domain, user.local, now) + nbytes \
                > opts.quota:
            raise StanzaError("resource-constraint", "upload quota reached", type="wait")
        base = self._base_url()
        if base is None:
            raise StanzaError.service_unavailable("no HTTP listener is configured")
        token = secrets.token_urlsafe(24)      # 192 bits (DESIGN.md: slots from `secrets`)
        await self.store.create(Slot(
            token=token, host=user.domain, username=user.local, filename=filename,
            size=nbytes, content_type=content_type, created_at=now,
            slot_expires_at=now + opts.slot_timeout,
            expires_at=None if opts.expire_after is None else now + opts.expire_after))
        url = f"{base}/{token}/{urllib.parse.quote(filename, safe='')}"
        slot = iq.empty(NS, "slot")
        etree.SubElement(slot, _Q + "put", url=url)
        etree.SubElement(slot, _Q + "get", url=url)
        return iq.result(req.stanza, slot)

    def _base_url(self) -> str | None:
        if self.ctx.options.base_url:
            return self.ctx.options.base_url.rstrip("/")
        endpoints = self.ctx.http_endpoints()
        if not endpoints:
            return None
        return endpoints[0].base_url + endpoints[0].upload_path

    # -- expiry ----------------------------------------------------------------------------
    async def sweep(self) -> None:
        gone = await self.store.expired(self.ctx.clock.now())
        for slot in gone:
            await self.files.delete(slot.token)
        await self.store.delete([s.token for s in gone])
        if gone:
            self.ctx.log.info("deleted %d expired uploads", len(gone))

    # -- HTTP (xmppd/listeners/http.py HttpFiles) -------------------------------------------
    def owns(self, path: list[str]) -> bool:
        return len(path) == 2 and _TOKEN.fullmatch(path[0]) is not None \
            and self.ctx.host == min(self.ctx.local_domains)      # one host answers for all

    def render_http(self, request: Any, path: list[str]) -> bytes | int:
        method = request.method
        if method == b"PUT":
            handler = self._put
        elif method in (b"GET", b"HEAD"):
            handler = self._get
        else:
            request.setResponseCode(405)
            request.setHeader("allow", "GET, HEAD, PUT, OPTIONS")
            return b""
        d = defer.Deferred.fromCoroutine(handler(request, path[0]))
        d.addErrback(self._failed, request)
        return NOT_DONE_YET

    def _failed(self, failure: Any, request: Any) -> None:
        self.ctx.log.error("upload request failed: %s", failure.getErrorMessage())
        _finish(request, 500, b"internal error\n")

    async def _put(self, request: Any, token: str) -> None:
        now = self.ctx.clock.now()
        slot = await self.store.get(token)
        if slot is None:
            return _finish(request, 404, b"no such slot\n")
        if slot.uploaded:
            return _finish(request, 409, b"this slot was used already\n")
        if slot.slot_expires_at <= now:
            return _finish(request, 410, b"this slot has expired\n")
        length = request.getHeader("content-length")
        if length is None or not length.isdigit() or int(length) != slot.size:
            return _finish(request, 400, b"Content-Length must be the size of the slot\n")
        given = (request.getHeader("content-type") or "").split(";")[0].strip().lower()
        if given and given != slot.content_type:
            return _finish(request, 400, b"Content-Type must be the type of the slot\n")
        if not await self.store.claim(token, now):
            return _finish(request, 409, b"this slot was used already\n")
        request.content.seek(0)
        if not await self.files.put(token, request.content, slot.size):
            await self.store.delete([token])
            return _finish(request, 400, b"the body is not the size of the slot\n")
        _finish(request, 201, b"")

    async def _get(self, request: Any, token: str) -> None:
        slot = await self.store.get(token)
        now = self.ctx.clock.now()
        if slot is None or not slot.uploaded or (slot.expires_at is not None
                                                 and slot.expires_at <= now):
            return _finish(request, 404, b"not found\n")
        f = await self.files.open(token)
        if f is None:
            return _finish(request, 404, b"not found\n")
        kind = slot.content_type
        inline = _INLINE.fullmatch(kind) is not None
        if not inline and _SAFE.fullmatch(kind) is None:
            kind = "application/octet-stream"
        request.setHeader("content-type", kind)
        request.setHeader("content-length", str(slot.size))
        quoted = urllib.parse.quote(slot.filename, safe="")
        request.setHeader("content-disposition",
                          f"{'inline' if inline else 'attachment'}; filename*=UTF-8''{quoted}")
        request.setHeader("content-security-policy", "default-src 'none'; sandbox")
        request.setHeader("cache-control", "private, max-age=31536000, immutable")
        request.setHeader("last-modified", formatdate(slot.created_at, usegmt=True))
        if request.method == b"HEAD":
            f.close()
            request.finish()
            return
        from twisted.protocols.basic import FileSender
        try:
            await FileSender().beginFileTransfer(f, request)  # type: ignore[no-untyped-call]
        finally:
            f.close()
        if not getattr(request, "_disconnected", False):
            request.finish()


def _too_large(limit: int) -> StanzaError:
    """§4: <not-acceptable/> carrying <file-too-large><max-file-size/>."""
    extra = etree.Element(_Q + "file-too-large", nsmap={None: NS})  # type: ignore[dict-item]
    etree.SubElement(extra, _Q + "max-file-size").text = str(limit)
    return StanzaError("not-acceptable",
                       f"File too large. The maximum file size is {limit} bytes", app=extra)


def _finish(request: Any, code: int, body: bytes) -> None:
    if getattr(request, "_disconnected", False) or getattr(request, "finished", False):
        return
    request.setResponseCode(code)
    request.setHeader("content-type", "text/plain; charset=utf-8")
    request.setHeader("content-length", str(len(body)))
    request.write(body)
    request.finish()
