# tests: xmppd/ctl.py, xmppd/main.py
"""`xmppctl` and the `xmppd` entry point as an admin uses them (subprocesses, real config)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.harness.clients import XmppClient, run
from tests.harness.server_proc import REPO, make_server


def test_register_passwd_unregister_users(tmp_path: Path) -> None:
    srv = make_server(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}", "memory")
    assert srv.ctl("register", "Dave", "localhost", "pw1").returncode == 0
    dup = srv.ctl("register", "dave", "localhost", "other")
    assert dup.returncode == 1 and "already exists" in dup.stderr
    assert srv.ctl("register", "erin", "localhost", "-", input="from-stdin\n").returncode == 0
    assert srv.ctl("users", "localhost").stdout.split() == ["dave", "erin"]
    assert srv.ctl("users", "example.test").stdout.split() == []
    bad_host = srv.ctl("users", "nowhere.test")
    assert bad_host.returncode == 2 and "not a virtual host" in bad_host.stderr
    bad_name = srv.ctl("register", "a@b", "localhost", "x")
    assert bad_name.returncode == 2 and "invalid username" in bad_name.stderr
    assert srv.ctl("passwd", "dave", "localhost", "pw2").returncode == 0
    assert srv.ctl("passwd", "nobody", "localhost", "pw2").returncode == 1

    srv.start()
    try:
        async def go() -> None:
            ok = XmppClient("dave@localhost/r", "pw2")
            assert await ok.start(srv.port)
            await ok.stop()
            old = XmppClient("dave@localhost/r", "pw1")
            assert await old.start(srv.port) is False
            await old.stop()
            stdin_pw = XmppClient("erin@localhost/r", "from-stdin")
            assert await stdin_pw.start(srv.port)
            await stdin_pw.stop()
        run(go(), 60)
        # unregister while the server runs: the account is gone for the server too
        assert srv.ctl("unregister", "dave", "localhost").returncode == 0
        assert srv.ctl("unregister", "dave", "localhost").returncode == 1

        async def gone() -> None:
            c = XmppClient("dave@localhost/r", "pw2")
            assert await c.start(srv.port) is False
            await c.stop()
        run(gone(), 60)
    finally:
        srv.stop()


def test_check_config_names_the_bad_key(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[server]\nhosts = ['localhost']\nmax_users = 3\n")
    out = subprocess.run([sys.executable, "-m", "xmppd.ctl", "--config", str(cfg),
                          "check-config"], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 2
    assert "server: unknown key 'max_users'" in out.stderr
    cfg.write_text("[limits]\nmax_stanza_size = 'lots'\n")
    out = subprocess.run([sys.executable, "-m", "xmppd.main", "--config", str(cfg)],
                         cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "limits.max_stanza_size" in out.stderr and "expected a size" in out.stderr
    cfg.write_text("[modules.nosuchthing]\n")
    out = subprocess.run([sys.executable, "-m", "xmppd.ctl", "--config", str(cfg),
                          "check-config"], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 2 and "modules.nosuchthing: no such module" in out.stderr


def test_shipped_configs_pass_check_config() -> None:
    for name in ("conf/xmppd.toml", "conf/xmppd.production.toml"):
        out = subprocess.run([sys.executable, "-m", "xmppd.ctl", "--config", name,
                              "check-config"], cwd=REPO, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        assert "OK" in out.stdout
