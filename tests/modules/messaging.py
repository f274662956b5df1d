# tests: modules/offline.py, modules/stream_mgmt/, modules/mam/, modules/carbons.py, modules/csi.py
"""Helpers for the messaging tests on the in-memory harness."""
from __future__ import annotations

from typing import Any, Callable

from lxml import etree
from twisted.internet import defer

from storage.offline import OfflineMessage
from tests.harness.server import Harness, resolve
from stanzas.jid import JID

MODULES: dict[str, dict[str, Any]] = {
    "disco": {}, "roster": {}, "presence": {}, "offline": {}, "receipts": {}, "carbons": {},
    "mam": {}, "stream_mgmt": {}, "csi": {}}
SM = "urn:xmpp:sm:3"
STANZA_ERRORS = "urn:ietf:params:xml:ns:xmpp-stanzas"


def messaging(make_harness: Callable[..., Harness], without: tuple[str, ...] = (),
              **options: dict[str, Any]) -> Harness:
    modules = {name: dict(opts) for name, opts in MODULES.items() if name not in without}
    for name, opts in options.items():
        modules[name] = opts
    return make_harness(modules=modules)


def stored(h: Harness, user: str) -> list[OfflineMessage]:
    return resolve(h.server.stores.offline.list(JID.parse(user)))


def module(h: Harness, name: str, host: str = "example.org") -> Any:
    return h.server.hosts[host].modules[name]


def body(el: etree._Element) -> str | None:
    return el.findtext("{jabber:client}body")


class Gate:
    """Replaces a group commit's write with one that finishes when the test says so."""

    def __init__(self, batch: Any) -> None:
        self.batch = batch
        self.inner = batch._write
        self.pending: list[tuple[list[Any], defer.Deferred[Any]]] = []
        batch._write = self._write

    def _write(self, items: list[Any]) -> defer.Deferred[Any]:
        d: defer.Deferred[Any] = defer.Deferred()
        self.pending.append((items, d))
        return d

    def open(self) -> None:
        """Finish the writes held so far (really writing them); the ones they let start
        stay held."""
        held, self.pending = self.pending, []
        for items, d in held:
            d.callback(resolve(self.inner(items)))

    def drain(self) -> None:
        """Finish writes until none is held."""
        while self.pending:
            self.open()

    def close_gate(self) -> None:
        self.batch._write = self.inner
