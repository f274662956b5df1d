# tests: tests/bot/test_bot.py
"""XEP-0363: HTTP File Upload, client side — find the service, get a slot, PUT the file.

- The service is the server itself or one of its disco#items that announces
  urn:xmpp:http:upload:0 (§3); its `max-file-size` (XEP-0128 form) is checked before asking.
- A slot request names the file, its size and content type (§4); the reply's PUT URL gets the
  file with Content-Length, Content-Type and only the Authorization, Cookie and Expires headers
  of the slot, newlines stripped, order kept (§4, §9.2 "Uploader").
- The file counts as uploaded on any 2xx (201 per §7); the GET URL is then shared by the bot,
  as body and XEP-0066 <x xmlns='jabber:x:oob'/>, which is how clients show it inline.
Not here: encryption (XEP-0454), purposes other than the default "message".
"""
from __future__ import annotations

import http.client
import mimetypes
import ssl
import urllib.parse
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from xmppd_bot.client import Connection
from xmppd_bot.errors import RequestError, UploadError
from xmppd_bot.jid import JID, JIDError

NS_UPLOAD = "urn:xmpp:http:upload:0"
NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
NS_DISCO_ITEMS = "http://jabber.org/protocol/disco#items"
NS_DATA = "jabber:x:data"
ALLOWED_HEADERS = {"authorization": "Authorization", "cookie": "Cookie", "expires": "Expires"}
_CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True)
class Service:
    jid: JID
    max_size: int | None


@dataclass(frozen=True, slots=True)
class Slot:
    put_url: str
    get_url: str
    headers: tuple[tuple[str, str], ...]


async def find_service(conn: Connection) -> Service:
    """The first upload service of our server (§3).

    Raises:
        UploadError: none offered.
    """
    domain = JID.of(None, conn.jid.domain)
    candidates = [domain]
    try:
        items = await conn.request(domain, "get", ET.Element("{%s}query" % NS_DISCO_ITEMS),
                                   "listing the server's services")
        for item in items.iter("{%s}item" % NS_DISCO_ITEMS):
            try:
                candidates.append(JID.parse(item.get("jid") or ""))
            except JIDError:
                continue
    except RequestError:
        pass
    for jid in candidates:
        try:
            info = await conn.request(jid, "get", ET.Element("{%s}query" % NS_DISCO_INFO),
                                      f"service discovery on {jid}")
        except RequestError:
            continue
        features = {f.get("var") for f in info.iter("{%s}feature" % NS_DISCO_INFO)}
        if NS_UPLOAD in features:
            return Service(jid, _max_size(info))
    raise UploadError(f"the server {domain} offers no HTTP file upload service (XEP-0363)")


def _max_size(info: ET.Element) -> int | None:
    for form in info.iter("{%s}x" % NS_DATA):
        fields = {f.get("var"): f.findtext("{%s}value" % NS_DATA)
                  for f in form.iter("{%s}field" % NS_DATA)}
        if fields.get("FORM_TYPE") == NS_UPLOAD and (fields.get("max-file-size") or "").isdigit():
            return int(fields["max-file-size"] or 0)
    return None


async def request_slot(conn: Connection, service: Service, filename: str, size: int,
                       content_type: str) -> Slot:
    """Ask for a PUT/GET URL pair (§4).

    Raises:
        UploadError: the service refused (too large, quota, forbidden) or answered nonsense.
    """
    req = ET.Element("{%s}request" % NS_UPLOAD, filename=filename, size=str(size))
    req.set("content-type", content_type)
    try:
        result = await conn.request(service.jid, "get", req,
                                    f"asking {service.jid} for an upload slot for {filename}")
    except RequestError as e:
        raise UploadError(str(e)) from None
    slot = result.find("{%s}slot" % NS_UPLOAD)
    put = slot.find("{%s}put" % NS_UPLOAD) if slot is not None else None
    get = slot.find("{%s}get" % NS_UPLOAD) if slot is not None else None
    if put is None or get is None or not put.get("url") or not get.get("url"):
        raise UploadError(f"{service.jid} answered the slot request without PUT and GET URLs")
    headers = []
    for h in put.findall("{%s}header" % NS_UPLOAD):
        name = (h.get("name") or "").replace("\r", "").replace("\n", "").strip()
        canonical = ALLOWED_HEADERS.get(name.lower())
        if canonical is None:
            continue                    # §4: other header names MUST be ignored
        value = (h.text or "").replace("\r", "").replace("\n", "").strip()
        headers.append((canonical, value))
    return Slot(put_url=put.get("url") or "", get_url=get.get("url") or "",
                headers=tuple(headers))


def content_type_of(path: Path) -> str:
    return mimetypes.guess_type(path.name)[0] or "application/octet-stream"


def put_file(slot: Slot, path: Path, size: int, content_type: str, tls_verify: bool,
             timeout: float = 120.0) -> None:
    """HTTP PUT of the file to the slot (blocking: run it in a thread).

    Raises:
        UploadError: a non-2xx answer, or the HTTP server could not be reached.
    """
    url = urllib.parse.urlsplit(slot.put_url)
    if url.scheme not in ("https", "http") or not url.hostname:
        raise UploadError(f"the upload slot's PUT URL is not HTTP(S): {slot.put_url}")
    conn: http.client.HTTPConnection
    if url.scheme == "https":
        ctx = ssl.create_default_context()
        if not tls_verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        conn = http.client.HTTPSConnection(url.hostname, url.port, timeout=timeout, context=ctx)
    else:
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=timeout)
    target = url.path or "/"
    if url.query:
        target += "?" + url.query
    try:
        conn.putrequest("PUT", target)
        conn.putheader("Content-Length", str(size))
        conn.putheader("Content-Type", content_type)
        for name, value in slot.headers:
            conn.putheader(name, value)
        conn.endheaders()
        with path.open("rb") as f:
            while chunk := f.read(_CHUNK):
                conn.send(chunk)
        resp = conn.getresponse()
        resp.read()
        if not 200 <= resp.status < 300:
            raise UploadError(f"uploading {path.name} failed: HTTP {resp.status} {resp.reason}")
    except (OSError, http.client.HTTPException) as e:
        raise UploadError(f"uploading {path.name} to {url.hostname} failed: {e}") from None
    finally:
        conn.close()
