# tests: tests/core/test_web_shells.py, tests/integration/test_invites.py, tests/integration/test_upload_slixmpp.py
"""What modules serve through the HTTP listener (xmppd/listeners/http.py): they `ctx.provide`
an object of one of these shapes and the listener hands it the requests under its path."""
from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

HttpRequest = Any      # twisted.web.server.Request (untyped)


@runtime_checkable
class HttpFiles(Protocol):
    """A module's files under the listener's `upload_path` (modules/http_upload.py)."""

    max_body: int

    def render_http(self, request: HttpRequest, path: list[str]) -> bytes | int:
        """Answer `request` for the path segments after `upload_path`; None if not ours."""
        ...

    def owns(self, path: list[str]) -> bool:
        """Whether the path (segments after `upload_path`) names one of this service's files."""
        ...


@runtime_checkable
class HttpPages(Protocol):
    """A module's pages under `http_prefix` (modules/invites: /invite/<token>)."""

    http_prefix: str

    def render_page(self, request: HttpRequest, rest: list[str]) -> bytes | int:
        """Answer `request` for the path segments after the prefix."""
        ...
