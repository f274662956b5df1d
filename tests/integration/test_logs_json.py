# tests: xmppd/logs.py, xmppd/listeners/session.py
"""A running server logging JSON lines with hashed addresses: every line one object with the
documented fields, session records carry session id, JID and hashed address, and no message
body reaches the log at info level (slixmpp traffic with marked bodies, offline and MUC too)."""
from __future__ import annotations

import asyncio
import json
import secrets
from pathlib import Path

from tests.harness.clients import XmppClient
from tests.harness.server_proc import make_server


def test_json_lines_hashed_addresses_and_no_bodies(tmp_path: Path) -> None:
    srv = make_server(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}", "memory",
                      server={"log_format": "json", "log_ip": "hashed"})
    for user in ("alice", "bob", "carol"):
        assert srv.ctl("register", user, "localhost", f"{user}-pw").returncode == 0
    marker = "secret-" + secrets.token_hex(8)
    srv.start()
    try:
        async def go() -> None:
            alice = XmppClient("alice@localhost/a", "alice-pw", plugins=("xep_0045",))
            bob = XmppClient("bob@localhost/b", "bob-pw")
            wrong = XmppClient("bob@localhost/x", "wrong", sasl_mech="PLAIN")
            assert await alice.start(srv.port) and await bob.start(srv.port)
            assert await wrong.start(srv.port) is False
            await wrong.stop()
            alice.send_message(mto="bob@localhost", mbody=f"{marker} to bob", mtype="chat")
            alice.send_message(mto="carol@localhost", mbody=f"{marker} offline", mtype="chat")
            alice.send_message(mto="nobody@localhost", mbody=f"{marker} bounced", mtype="chat")
            await bob.next_message()
            await alice.plugin["xep_0045"].join_muc_wait("room@conference.localhost", "a",
                                                         maxchars=0, timeout=10)
            alice.send_message(mto="room@conference.localhost", mbody=f"{marker} room",
                               mtype="groupchat")
            await asyncio.sleep(0.5)
            await alice.stop()
            await bob.stop()
        asyncio.run(asyncio.wait_for(go(), 60))
    finally:
        srv.stop()
    text = (tmp_path / "xmppd.log").read_text()
    records = [json.loads(line) for line in text.splitlines()]
    assert len(records) > 5
    for r in records:
        assert {"time", "level", "logger", "event", "message"} <= set(r), r
        assert r["level"] in ("info", "warning", "error", "critical")
    logins = [r for r in records if r["event"] == "authenticated"]
    assert sorted(r["jid"] for r in logins) == ["alice@localhost", "bob@localhost"]
    for r in logins:
        assert len(r["session"]) == 12 and len(r["ip"]) == 16
    assert len({r["ip"] for r in logins}) == 1           # the same address, the same token
    # no client's address in the clear (the server's own listening address is no secret)
    assert not [r for r in records if "127.0.0.1" in json.dumps(r)
                and not r["message"].startswith(("c2s listening on", "metrics on"))]
    assert marker not in text
