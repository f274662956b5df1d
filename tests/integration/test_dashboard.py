# tests: xmppd/listeners/dashboard.html, xmppd/listeners/metrics.py, docs/grafana-dashboard.json
"""The dashboard page of the metrics listener in headless Chromium, while load runs
(bench/loadgen.py's message pairs and a slixmpp group chat): it scrapes /metrics, evaluates
its PromQL and draws every panel with no page error; what it computes matches the server
(sessions, messages delivered per second, routing latency); the Grafana dashboard in docs/
carries exactly its panels and queries. XMPPD_DASHBOARD_SHOT=docs/dashboard.png keeps the
screenshot (how docs/dashboard.png was made)."""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.harness.clients import XmppClient
from tests.harness.server_proc import REPO, make_server
from tests.integration.test_web_clients import CHROMIUM, WEB, need

PAIRS = 4
_REGISTER = """
import sys
from xmppd.ctl import main
config, n = sys.argv[1], int(sys.argv[2])
sys.exit(max(main(["--config", config, "register", f"user{i}", "localhost", f"pw{i}"])
             for i in range(1, n + 1)))
"""


def test_grafana_dashboard_has_the_pages_panels_and_queries(tmp_path: Path) -> None:
    need("/usr/bin/node", "node")
    out = tmp_path / "grafana.json"
    subprocess.run(["node", str(WEB / "grafana_dashboard.mjs"),
                    str(REPO / "xmppd" / "listeners" / "dashboard.html"), str(out)],
                   check=True, timeout=60)
    assert out.read_text() == (REPO / "docs" / "grafana-dashboard.json").read_text(), \
        "regenerate docs/grafana-dashboard.json (see tests/web/grafana_dashboard.mjs)"
    board = json.loads(out.read_text())
    assert board["__inputs"][0]["pluginId"] == "prometheus"
    assert all(t["datasource"]["uid"] == "${DS_PROMETHEUS}"
               for p in board["panels"] for t in p["targets"])


def test_dashboard_in_chromium_under_load(tmp_path: Path) -> None:
    need(CHROMIUM, "Chromium")
    need(WEB / "node_modules" / "playwright-core", "playwright-core (npm ci in tests/web)")
    srv = make_server(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}", "memory",
                      listeners={"metrics": {"type": "metrics"}})
    done = subprocess.run([sys.executable, "-c", _REGISTER, str(srv.config), str(2 * PAIRS + 2)],
                          cwd=REPO, env=srv.env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    srv.start()
    stop = threading.Event()

    def group_chat() -> None:
        async def go() -> None:
            people = [XmppClient(f"user{i}@localhost/muc", f"pw{i}", plugins=("xep_0045",))
                      for i in (2 * PAIRS + 1, 2 * PAIRS + 2)]
            room = "ops@conference.localhost"
            for n, c in enumerate(people):
                assert await c.start(srv.port)
                muc = c.plugin["xep_0045"]
                await muc.join_muc_wait(room, f"p{n}", maxchars=0, timeout=10)
                if n == 0:          # the creator accepts the default configuration
                    form = await muc.get_room_config(room, timeout=10)
                    await muc.set_room_config(room, form, timeout=10)
            while not stop.is_set():
                people[0].send_message(mto="ops@conference.localhost", mbody="tick",
                                       mtype="groupchat")
                await asyncio.sleep(0.2)
            for c in people:
                await c.stop()
        asyncio.run(go())
    chat = threading.Thread(target=group_chat, daemon=True)
    try:
        chat.start()
        load = subprocess.Popen(
            [sys.executable, str(REPO / "bench" / "loadgen.py"), "messages",
             "--server", f"127.0.0.1:{srv.port}", "--pairs", str(PAIRS), "--messages", "3000",
             "--rate", "400", "--settle", "0.5"],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        port = srv.ports["metrics"]
        shot = tmp_path / "dashboard.png"
        page = subprocess.run(
            ["node", str(WEB / "dashboard_test.mjs"), f"http://127.0.0.1:{port}/?interval=0.5",
             str(shot), "16"], cwd=WEB, capture_output=True, text=True, timeout=150,
            env={**os.environ, "CHROMIUM": CHROMIUM})
        out, err = load.communicate(timeout=120)
        assert load.returncode == 0, err
        stop.set()
        chat.join(30)
    finally:
        stop.set()
        srv.stop()
    assert page.returncode == 0, page.stdout + page.stderr
    result = json.loads(page.stdout.strip().splitlines()[-1])
    assert result["errors"] == [] and result["pageError"] == ""
    assert "scrapes" in result["status"]
    panels = {p["title"]: p for p in result["panels"]}
    html = (REPO / "xmppd" / "listeners" / "dashboard.html").read_text()
    assert len(panels) == html.count("{title: ")
    # every panel drew something: its queries all have data under this load
    empty = [t for t, p in panels.items() if not p["series"] and t not in (
        "Redis call latency (p99)", "Hook handler errors per second")]
    assert not empty, empty
    sessions = panels["Sessions and users online"]["series"]
    assert sessions["sessions"] == 2 * PAIRS + 2 and sessions["users online"] == 2 * PAIRS + 2
    assert panels["Client connections"]["series"]["c2s"] == 2 * PAIRS + 2
    assert panels["Messages per second"]["series"]["delivered"] > 50
    assert panels["Stanzas per second"]["series"]["in message"] > 50
    assert panels["Group chats"]["series"] == {"rooms": 1, "occupants": 2}
    assert 0 < panels["Routing latency"]["series"]["p99 routing"] < 0.1
    assert [s["value"] for s in result["evaluated"]["sessions"]] == [2 * PAIRS + 2]
    assert result["evaluated"]["delivered"][0]["value"] > 50
    assert shot.stat().st_size > 50_000
    keep = os.environ.get("XMPPD_DASHBOARD_SHOT")
    if keep:
        shutil.copy(shot, REPO / keep)
