# tests: tests/core/test_web_shells.py, tests/core/test_http_config.py, tests/integration/test_limits.py, tests/integration/test_web_clients.py
"""The HTTP listener (`type = "http"`): one resource tree on a plain port (5280) or with TLS
(5443), for browser and mobile clients.

- `websocket_path` (default /xmpp-websocket): RFC 7395 (xmppd/listeners/websocket.py).
- `bosh_path` (default /http-bind): XEP-0124/0206 (xmppd/listeners/bosh.py).
- `/.well-known/host-meta` and `/.well-known/host-meta.json`: XEP-0156 §3 discovery of the two.
  The URLs are built from `public_url` when set; otherwise from the request's own effective
  URI (RFC 9110 §7.1: scheme of this listener + Host header), which is right for a client that
  reached us directly. XEP-0156 §3 says host-meta is fetched over HTTPS and names only https://
  and wss:// URLs, so a production listener sets `tls = true` (or sits behind a TLS proxy with
  `behind_tls_proxy = true` and `public_url`). Served with `Access-Control-Allow-Origin: *`
  (§3.2: CORS for web clients; the document is public and carries no credentials).
- `upload_path` (default /upload): files of XEP-0363 (modules/http_upload.py registers itself
  as an `HttpFiles` service on its host; this tree hands it every request under the path).
- Pages of modules (`HttpPages` services with an `http_prefix`, e.g. the invitation page of
  modules/invites at /invite/<token>): every request under the prefix goes to the module.
- CORS (Fetch standard): requests from an origin in `cors_origins` (or any with "*") get
  `Access-Control-Allow-Origin` and preflights are answered; with no list only same-origin
  pages may read our answers. WebSocket handshakes from other origins are refused the same way
  (browsers send `Origin` and do not enforce CORS on WebSockets).
- HttpRequest bodies are bounded before they are read: BOSH at 4 × `limits.max_stanza_size`,
  uploads at the largest file the upload service accepts, everything else at 64 KiB
  (413 and the connection closed).
- Slow clients (slowloris): a request's headers must all arrive within
  `limits.http_header_timeout` of its first byte, and its body within `http_body_timeout` of
  the headers plus one second per `http_body_min_rate` bytes received (Apache's
  mod_reqtimeout does the same); past that: 408 and the connection closed. Twisted's own idle
  timer only measures the silence between two bytes. Every connection holds a slot of the
  process's connection limits (xmppd/limits.py), handed to the WebSocket it may become.
"""
from __future__ import annotations

import json
import logging
import re
from typing import TYPE_CHECKING, Any

from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.web import http, resource, server

from xmppd.config import ListenerConfig
from xmppd.limits import ConnectionGuard, limits_of
from xmppd.listeners import bosh as bosh_mod
from xmppd.listeners import bosh_http
from xmppd.listeners import websocket as ws_mod
from xmppd.listeners.c2s import c2s_settings
from xmppd.listeners.http_services import HttpFiles, HttpPages, HttpRequest

__all__ = ["HttpFiles", "HttpListener", "HttpPages", "HttpRequest"]

if TYPE_CHECKING:
    from xmppd.server import Server

log = logging.getLogger(__name__)
_HOST_HEADER = re.compile(r"[A-Za-z0-9.-]+(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")
_SMALL_BODY = 64 * 1024


class HttpListener:
    """What one `type = "http"` listener serves; `site` goes to listenTCP/listenSSL."""

    def __init__(self, server: Server, config: ListenerConfig) -> None:
        self.server = server
        self.config = config
        self.secure = config.tls or config.behind_tls_proxy
        self.bound_port = config.port
        limits = server.config.limits
        ws_settings = c2s_settings(server, tls="off", tls_available=False, framing="websocket")
        bosh_settings = c2s_settings(server, tls="off", tls_available=False, framing="bosh")
        self.ws_settings = ws_settings
        self.bosh = bosh_http.BoshManager(server, bosh_settings, bosh_mod.BoshSettings(),
                                         limits=limits_of(server))
        self.bosh_body_limit = 4 * limits.max_stanza_size
        self.site = _Site(_Root(self), self)
        server.http_listeners.append(self)

    # -- URLs ------------------------------------------------------------------------------
    def base_url(self, request: HttpRequest | None = None, *, host: str | None = None) -> str:
        """Our base URL: `public_url`, else from the request's Host (or `host`:port)."""
        if self.config.public_url:
            return self.config.public_url.rstrip("/")
        scheme = "https" if self.secure else "http"
        authority = None
        if request is not None:
            given = (request.getHeader("host") or "").strip()
            if _HOST_HEADER.fullmatch(given):
                authority = given
        if authority is None:
            authority = f"{host or self.server.config.server.hosts[0]}:{self.bound_port}"
        return f"{scheme}://{authority}"

    def service_urls(self, request: HttpRequest | None = None) -> tuple[str, str]:
        base = self.base_url(request)
        ws_base = "wss" + base[5:] if base.startswith("https") else "ws" + base[4:]
        return ws_base + self.config.websocket_path, base + self.config.bosh_path

    # -- files -----------------------------------------------------------------------------
    def files_for(self, path: list[str]) -> HttpFiles | None:
        for host in self.server.hosts.values():
            for svc in host.services.values():
                if isinstance(svc, HttpFiles) and svc.owns(path):
                    return svc
        return None

    def page_for(self, path: str) -> tuple[HttpPages, list[str]] | None:
        for host in self.server.hosts.values():
            for svc in host.services.values():
                if isinstance(svc, HttpPages) and path.startswith(svc.http_prefix + "/"):
                    return svc, path[len(svc.http_prefix) + 1:].split("/")
        return None

    def max_upload(self) -> int:
        sizes = [svc.max_body for host in self.server.hosts.values()
                 for svc in host.services.values() if isinstance(svc, HttpFiles)]
        return max(sizes, default=0)

    # -- CORS ------------------------------------------------------------------------------
    def origin_allowed(self, request: HttpRequest) -> bool:
        origin = request.getHeader("origin")
        if origin is None:
            return True             # not a browser's cross-origin request
        allowed = self.config.cors_origins
        if "*" in allowed or origin in allowed:
            return True
        return bool(origin == self.base_url(request))     # same origin

    def cors(self, request: HttpRequest, *, public: bool = False) -> None:
        """CORS response headers for an allowed origin (`public`: any origin, host-meta)."""
        origin = request.getHeader("origin")
        if public:
            request.setHeader("access-control-allow-origin", "*")
        elif origin is not None and self.origin_allowed(request):
            request.setHeader("access-control-allow-origin",
                              "*" if "*" in self.config.cors_origins else origin)
            request.setHeader("vary", "Origin")
        else:
            return
        request.setHeader("access-control-allow-methods", "GET, HEAD, POST, PUT, OPTIONS")
        request.setHeader("access-control-allow-headers", "Content-Type")
        request.setHeader("access-control-max-age", "86400")

    def body_limit(self, method: bytes, path: bytes) -> int:
        p = path.split(b"?", 1)[0].decode("latin-1")
        if p == self.config.bosh_path:
            return self.bosh_body_limit
        if p.startswith(self.config.upload_path + "/") and method == b"PUT":
            return self.max_upload()
        return _SMALL_BODY

    def stop(self) -> None:
        self.bosh.close_all()


class _Request(server.Request):
    """Refuses a body larger than the listener allows before reading it (413)."""
    _refused = False
    _received = 0

    def _limit(self) -> int:
        channel: Any = self.channel
        return int(channel.site.listener.body_limit(getattr(channel, "_command", b""),
                                                    getattr(channel, "_path", b"")))

    def gotLength(self, length: int | None) -> None:
        if length is not None and length > self._limit():
            self._refuse()
            length = 0
        super().gotLength(length)  # type: ignore[no-untyped-call]

    def handleContentChunk(self, data: bytes) -> None:
        if self._refused:
            return
        self._received += len(data)
        if self._received > self._limit():
            self._refuse()
            return
        super().handleContentChunk(data)  # type: ignore[no-untyped-call]

    def _refuse(self) -> None:
        self._refused = True
        transport = self.channel.transport if self.channel is not None else None
        if transport is not None:
            transport.write(b"HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\n"
                            b"Connection: close\r\n\r\n")
            transport.loseConnection()


class _Channel(http.HTTPChannel):
    """Twisted's HTTP/1.1 channel with total deadlines for headers and bodies (see the module
    docstring) and a slot of the connection limits."""

    guard: ConnectionGuard | None = None
    _deadline: Any = None
    _phase = "idle"                 # "idle", "head" (request line and headers), "body", "busy"
    _body_started = 0.0
    _body_bytes = 0

    def dataReceived(self, data: bytes) -> None:
        if self._phase == "idle" and not self._handlingRequest and data:
            self._phase = "head"
            self._arm(self._limits().http_header_timeout)
        elif self._phase == "body":
            self._body_bytes += len(data)
        super().dataReceived(data)  # type: ignore[no-untyped-call]

    def allHeadersReceived(self) -> None:
        super().allHeadersReceived()  # type: ignore[no-untyped-call]
        self._phase = "body"
        self._body_started = self._clock().now()
        self._body_bytes = 0
        self._arm(self._limits().http_body_timeout)

    def allContentReceived(self) -> None:
        self._cancel()
        self._phase = "busy"
        super().allContentReceived()  # type: ignore[no-untyped-call]

    def requestDone(self, request: Any) -> None:
        if self._phase == "busy":
            self._phase = "idle"    # before Twisted replays what was pipelined meanwhile
        super().requestDone(request)  # type: ignore[no-untyped-call]

    def _protocolUpgradeForWebsockets(self, protocol: Any) -> None:
        self._cancel()
        self._phase = "upgraded"
        protocol.guard, self.guard = self.guard, None      # the WebSocket closes the slot
        super()._protocolUpgradeForWebsockets(protocol)

    def connectionLost(self, reason: Any = None) -> None:
        self._cancel()
        if self.guard is not None:
            self.guard.close()
            self.guard = None
        super().connectionLost(reason)  # type: ignore[no-untyped-call]

    def _limits(self) -> Any:
        return self.site.listener.server.config.limits  # type: ignore[attr-defined]

    def _clock(self) -> Any:
        return self.site.listener.server.clock  # type: ignore[attr-defined]

    def _arm(self, delay: float) -> None:
        self._cancel()
        self._deadline = self._clock().call_later(delay, self._expired)

    def _cancel(self) -> None:
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if self._phase == "body":
            limits = self._limits()
            rate = limits.http_body_min_rate
            allowed = limits.http_body_timeout + (self._body_bytes / rate if rate else 0.0)
            left = self._body_started + allowed - self._clock().now()
            if left > 0:                # a steady upload: its time grows with what came
                self._deadline = self._clock().call_later(left, self._expired)
                return
        elif self._phase != "head":
            return
        transport: Any = self.transport
        if transport is None:
            return
        log.info("HTTP request from %s too slow (%s): closed", transport.getPeer(), self._phase)
        self._phase = "closed"
        transport.write(b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n"
                        b"Connection: close\r\n\r\n")
        transport.loseConnection()
        self._abortingCall = self._clock().call_later(self.abortTimeout, self.forceAbortClient)


class _Site(server.Site):
    protocol = _Channel  # type: ignore[assignment]

    def __init__(self, root: resource.Resource, listener: HttpListener) -> None:
        super().__init__(root, requestFactory=_Request, timeout=120)  # type: ignore[no-untyped-call]
        self.listener = listener
        self.displayTracebacks = False

    def buildProtocol(self, addr: Any) -> Any:
        slot = limits_of(self.listener.server).open(getattr(addr, "host", None))
        if slot is None:
            return None             # Twisted closes the socket at once
        channel = super().buildProtocol(addr)  # type: ignore[no-untyped-call]
        channel.guard = ConnectionGuard(slot)
        return channel

    def log(self, request: HttpRequest) -> None:
        pass        # no access log lines per BOSH poll; errors are logged where they happen


class TlsSiteFactory(TLSMemoryBIOFactory):
    """What `listenSSL` wraps a site in, except that a connection the limits refuse (the site
    builds no channel) is closed at once instead of wrapped around nothing."""

    def buildProtocol(self, addr: Any) -> Any:
        wrapped = self.wrappedFactory.buildProtocol(addr)
        return None if wrapped is None else self.protocol(self, wrapped)


class _Root(resource.Resource):
    """One leaf for the whole tree: paths are matched exactly (configured, may have several
    segments)."""
    isLeaf = True

    def __init__(self, listener: HttpListener) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.listener = listener

    def render(self, request: HttpRequest) -> bytes | int:
        lst = self.listener
        cfg = lst.config
        request.setHeader("server", "xmppd")
        request.setHeader("x-content-type-options", "nosniff")
        path = (request.path or b"/").decode("utf-8", "replace")
        method = request.method
        if path in ("/.well-known/host-meta", "/.well-known/host-meta.json"):
            lst.cors(request, public=True)
            if method == b"OPTIONS":
                return _no_content(request)
            if method not in (b"GET", b"HEAD"):
                return _not_allowed(request, b"GET, HEAD, OPTIONS")
            if lst.server.stopping:     # a load balancer's health check: send clients elsewhere
                request.setResponseCode(http.SERVICE_UNAVAILABLE)
                return b"shutting down\n"
            return self._host_meta(request, json_form=path.endswith(".json"))
        if not lst.origin_allowed(request):
            request.setResponseCode(http.FORBIDDEN)
            return b"origin not allowed\n"
        lst.cors(request)
        if method == b"OPTIONS":
            return _no_content(request)
        if path == cfg.websocket_path:
            if method != b"GET":
                return _not_allowed(request, b"GET, OPTIONS")

            def make() -> ws_mod.XmppWebSocket:
                peer = request.getClientAddress()
                return ws_mod.XmppWebSocket(
                    lst.server, lst.ws_settings, peer_ip=getattr(peer, "host", None),
                    secure=lst.secure, ping_interval=60.0)
            return ws_mod.accept_upgrade(request, make)
        if path == cfg.bosh_path:
            if method == b"POST":
                return bosh_http.render_post(lst.bosh, request, secure=lst.secure,
                                            headers=lambda r: None)
            if method in (b"GET", b"HEAD"):
                request.setHeader("content-type", "text/plain; charset=utf-8")
                return b"xmppd BOSH endpoint (XEP-0206): POST <body/> here\n"
            return _not_allowed(request, b"GET, HEAD, POST, OPTIONS")
        if path.startswith(cfg.upload_path + "/"):
            segments = path[len(cfg.upload_path) + 1:].split("/")
            files = lst.files_for(segments)
            if files is not None:
                return files.render_http(request, segments)
        page = lst.page_for(path)
        if page is not None:
            return page[0].render_page(request, page[1])
        request.setResponseCode(http.NOT_FOUND)
        request.setHeader("content-type", "text/plain; charset=utf-8")
        return b"not found\n"

    def _host_meta(self, request: HttpRequest, *, json_form: bool) -> bytes:
        ws_url, bosh_url = self.listener.service_urls(request)
        links = [("urn:xmpp:alt-connections:xbosh", bosh_url),
                 ("urn:xmpp:alt-connections:websocket", ws_url)]
        if json_form:
            request.setHeader("content-type", "application/json")
            return json.dumps({"links": [{"rel": rel, "href": href} for rel, href in links]},
                              indent=1).encode() + b"\n"
        from xml.sax.saxutils import quoteattr
        request.setHeader("content-type", "application/xrd+xml")
        return ("<?xml version='1.0' encoding='utf-8'?>\n"
                "<XRD xmlns='http://docs.oasis-open.org/ns/xri/xrd-1.0'>\n"
                + "".join("  <Link rel=%s href=%s/>\n" % (quoteattr(r), quoteattr(h))
                          for r, h in links)
                + "</XRD>\n").encode()


def _no_content(request: HttpRequest) -> bytes:
    request.setResponseCode(http.NO_CONTENT)
    return b""


def _not_allowed(request: HttpRequest, allow: bytes) -> bytes:
    request.setResponseCode(http.NOT_ALLOWED)
    request.setHeader("allow", allow)
    return b""
