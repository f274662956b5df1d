# tests: tests/integration/
"""slixmpp clients for integration tests: TLS verification off (self-signed test certs),
STARTTLS only, and bounded waits for everything (no sleeps); `run()` drives them from a test."""
from __future__ import annotations

import asyncio
import ssl
from collections.abc import Coroutine
from typing import Any, TypeVar

import slixmpp

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T], timeout: float = 120) -> T:
    """Drive `coro` (slixmpp clients, RawClient, aiohttp...) from a plain pytest test and return
    its result: on a fresh asyncio event loop, so no client or task outlives the test, and for
    at most `timeout` seconds. The server under test is another process (its Twisted reactor
    never meets this loop), so nothing here waits on a Deferred."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


class XmppClient(slixmpp.ClientXMPP):  # type: ignore[misc]
    def __init__(self, jid: str, password: str, *, plugins: tuple[str, ...] = (),
                 sasl_mech: str | None = None) -> None:
        super().__init__(jid, password, sasl_mech=sasl_mech)
        self.enable_direct_tls = False          # our test server listens for STARTTLS only
        self.ssl_context.check_hostname = False
        self.ssl_context.verify_mode = ssl.CERT_NONE
        self.inbox: asyncio.Queue[Any] = asyncio.Queue()
        self.mechanism_used: str | None = None
        self._ready: asyncio.Future[bool] = asyncio.get_event_loop().create_future()
        self.add_event_handler("session_start", self._started)
        self.add_event_handler("failed_all_auth", self._failed)
        self.add_event_handler("message", self.inbox.put_nowait)
        self.add_event_handler("message_error", self.inbox.put_nowait)
        self.add_event_handler("auth_success", self._auth)
        self.gone = asyncio.Event()
        self.stream_errors: list[str] = []
        self.add_event_handler("disconnected", lambda _: self.gone.set())
        self.add_event_handler("stream_error", lambda e: self.stream_errors.append(e["condition"]))
        for p in ("xep_0199",) + plugins:
            self.register_plugin(p)
        self._sm_pending = False
        if "xep_0198" in plugins:
            self.add_event_handler("sm_enabled", self._sm_settled)
            self.add_event_handler("sm_failed", self._sm_settled)

    def _auth(self, _: Any) -> None:
        mech = self.plugin["feature_mechanisms"].mech
        self.mechanism_used = getattr(mech, "name", None)

    def _started(self, _: Any) -> None:
        # slixmpp starts the session at the bind result, before it asks for stream management
        # (its feature comes after bind): the presence would go first and offline messages
        # could be delivered before <enabled/>, untracked (XEP-0198 §3 counts from there).
        # As mobile clients do, a client with stream management comes online once it is on.
        if "xep_0198" in self.plugin and "sm" in self.plugin["feature_bind"].features["features"]:
            self._sm_pending = True
            return
        self._online()

    def _sm_settled(self, _: Any) -> None:
        if self._sm_pending:
            self._sm_pending = False
            self._online()

    def _online(self) -> None:
        self.send_presence()
        if not self._ready.done():
            self._ready.set_result(True)

    def _failed(self, _: Any) -> None:
        if not self._ready.done():
            self._ready.set_result(False)

    async def start(self, port: int, timeout: float = 15.0, host: str = "127.0.0.1") -> bool:
        """Connect and log in; True when the session started, False if auth failed."""
        self.connect(host=host, port=port)
        return await asyncio.wait_for(asyncio.shield(self._ready), timeout)

    async def stop(self) -> None:
        if not self.gone.is_set():
            self.disconnect()
            await asyncio.wait_for(self.gone.wait(), 10)

    async def next_message(self, timeout: float = 10.0) -> Any:
        return await asyncio.wait_for(self.inbox.get(), timeout)
