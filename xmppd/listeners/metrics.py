# tests: tests/integration/test_metrics_endpoint.py
"""The metrics listener (`type = "metrics"`, 127.0.0.1:5281 by default): for Prometheus and
for people.

- `GET /metrics`: the server's registry (xmppd/metrics.py) in the Prometheus text format, or
  OpenMetrics when the scraper's `Accept` asks for `application/openmetrics-text`. Collected on
  the reactor thread, so the counters it reads are never read half-way.
- `GET /` (or `/dashboard`): a self-contained HTML page that scrapes `/metrics` every few
  seconds and draws the same panels, with the same queries, as the Grafana dashboard in
  docs/grafana-dashboard.json (for a machine without Grafana).
Anything else is 404; only GET and HEAD. Bind it to loopback or a monitoring network: the
numbers are not secret, but they describe the server's load.
"""
from __future__ import annotations

from importlib import resources
from typing import TYPE_CHECKING, Any

from twisted.web import http, resource, server

if TYPE_CHECKING:
    from xmppd.config import ListenerConfig
    from xmppd.server import Server

HttpRequest = Any      # twisted.web.server.Request (untyped)


def dashboard_html() -> bytes:
    """The packaged dashboard page (xmppd/listeners/dashboard.html)."""
    return resources.files("xmppd.listeners").joinpath("dashboard.html").read_bytes()


class _Metrics(resource.Resource):
    isLeaf = True

    def __init__(self, server: Server) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.xmppd = server
        self.page = dashboard_html()

    def render(self, request: HttpRequest) -> bytes:
        request.setHeader("server", "xmppd")
        request.setHeader("x-content-type-options", "nosniff")
        request.setHeader("cache-control", "no-store")
        if request.method not in (b"GET", b"HEAD"):
            request.setResponseCode(http.NOT_ALLOWED)
            request.setHeader("allow", b"GET, HEAD")
            return b""
        path = request.path or b"/"
        if path == b"/metrics":
            accept = (request.getHeader("accept") or "")
            body, content_type = self.xmppd.metrics.exposition(accept)
            request.setHeader("content-type", content_type)
            return body
        if path in (b"/", b"/dashboard"):
            request.setHeader("content-type", "text/html; charset=utf-8")
            request.setHeader("content-security-policy",
                              "default-src 'none'; script-src 'unsafe-inline'; "
                              "style-src 'unsafe-inline'; connect-src 'self'")
            return self.page
        request.setResponseCode(http.NOT_FOUND)
        request.setHeader("content-type", "text/plain; charset=utf-8")
        return b"not found: try /metrics or /\n"


class _Site(server.Site):
    def log(self, request: HttpRequest) -> None:
        pass        # no access log line per scrape


def listen(reactor: Any, server: Server, lst: ListenerConfig) -> Any:
    """Serve the metrics of `server` as `lst` says (bind, port); the listening port."""
    site = _Site(_Metrics(server), timeout=30)  # type: ignore[no-untyped-call]
    return reactor.listenTCP(lst.port, site, interface=lst.bind)
