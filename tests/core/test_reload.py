"""Reloading the config of a running server (xmppd/reload.py): what applies at once, what is
named as needing a restart, and a bad file or certificate changing nothing."""
from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from twisted.internet.testing import MemoryReactorClock

from storage.cache import MemoryCache
from storage.db import Database, ImmediateRunner
from stanzas.jid import JID
from tests.harness.server import resolve
from xmppd.config import load
from xmppd.reload import reload
from xmppd.server import Server
from xmppd.tls import ensure_certificate, stream_context

BASE = """
[server]
hosts = ["example.org"]
admins = ["boss@example.org"]
[tls]
cert = "{tmp}/cert.pem"
key = "{tmp}/key.pem"
[[listeners]]
port = 5222
[modules.disco]
"""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    cfg = tmp_path / "xmppd.toml"
    cfg.write_text(BASE.format(tmp=tmp_path))
    ensure_certificate(tmp_path / "cert.pem", tmp_path / "key.pem", ["example.org"],
                       generate=True)
    clock = MemoryReactorClock()
    db = Database("sqlite://", runner=ImmediateRunner())
    db.migrate()
    srv = Server(load(cfg), reactor=clock, db=db, cache=MemoryCache(clock=clock.seconds))
    srv.load_modules()
    yield srv
    resolve(srv.stop())
    db.close()
    for h in root.handlers:
        h.close()
    root.handlers[:] = handlers
    root.setLevel(level)


def edit(server: Server, old: str, new: str) -> None:
    path = Path(server.config.path)
    path.write_text(path.read_text().replace(old, new))


def test_admins_and_log_level_apply_at_once(server: Server) -> None:
    assert server.accounts.is_admin(JID.parse("boss@example.org/x"))
    edit(server, 'admins = ["boss@example.org"]', 'admins = ["chief@example.org"]\nlog_level = "debug"')
    out = reload(server, tls_in_use=False)
    assert out.ok and out.applied == ["server.admins", "server.log_level"]
    assert out.restart_needed == []
    assert not server.accounts.is_admin(JID.parse("boss@example.org"))
    assert server.accounts.is_admin(JID.parse("chief@example.org"))
    assert logging.getLogger().level == logging.DEBUG


def test_what_needs_a_restart_is_named_and_left_alone(server: Server) -> None:
    edit(server, 'hosts = ["example.org"]', 'hosts = ["example.org", "example.net"]')
    edit(server, "port = 5222", "port = 5333")
    edit(server, "[modules.disco]", "[modules.disco]\n[modules.ping]\n[storage]\nthreads = 2")
    out = reload(server, tls_in_use=False)
    assert out.ok
    assert out.restart_needed == ["server.hosts", "storage", "listeners", "modules.ping"]
    assert server.config.server.hosts == ("example.org",)
    assert server.config.listeners[0].port == 5222
    assert "changed but not reloaded (restart to apply): server.hosts" in out.text()


def test_a_bad_file_changes_nothing(server: Server) -> None:
    before = server.config
    edit(server, "[server]", "[server]\nnonsense = 1")
    out = reload(server, tls_in_use=False)
    assert not out.ok and "unknown key 'nonsense'" in out.errors[0]
    assert server.config is before


def test_a_bad_certificate_changes_nothing(server: Server, tmp_path: Path) -> None:
    stream_context(tmp_path / "cert.pem", tmp_path / "key.pem")
    good = (tmp_path / "cert.pem").read_text()
    (tmp_path / "cert.pem").write_text("not a certificate")
    out = reload(server, tls_in_use=True)
    assert not out.ok and "cannot load TLS certificate" in out.errors[0]
    assert not any("TLS" in a for a in out.applied)
    (tmp_path / "cert.pem").write_text(good)
    again = reload(server, tls_in_use=True)
    assert again.ok and again.applied[0].startswith("TLS certificate (CN=example.org")
