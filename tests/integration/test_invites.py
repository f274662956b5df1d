# tests: modules/invites/__init__.py, modules/invites/page.py, modules/invites/commands.py, xmppd/listeners/http.py, xmppd/ctl_mobile.py
"""Invitations against the real server, on both backend pairs: alice (slixmpp) creates a link
with the XEP-0401 command (XEP-0050); her friend opens it in headless Chromium, sees the page,
makes a typo, then creates her account with the form; she logs in with slixmpp and has alice
as a contact. The link works once; an admin's link (`xmppctl invite`) expires."""
from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from tests.harness.clients import XmppClient, run
from tests.harness.server_proc import DEFAULT_MODULES, REPO, RunningServer, ServerFactory
from tests.integration.test_web_clients import CHROMIUM, need

WEB = REPO / "tests" / "web"


@pytest.fixture(scope="module")
def srv(server_factory: ServerFactory) -> RunningServer:
    need(CHROMIUM, "Chromium")
    need(WEB / "node_modules" / "playwright-core", "npm packages")
    return server_factory(DEFAULT_MODULES | {"adhoc": {}, "invites": {}}, users=("alice",),
                          listeners={"http": {"type": "http"}})


async def page(*args: str) -> list[dict[str, Any]]:
    proc = await asyncio.create_subprocess_exec(
        "node", "invite_page.mjs", *args, cwd=WEB,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 90)
    events = [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]
    assert proc.returncode == 0, f"{events}\n{err.decode()[-2000:]}"
    return events


async def invitation(alice: XmppClient) -> dict[str, str]:
    answer = await alice.plugin["xep_0050"].send_command(
        "localhost", "urn:xmpp:invite#invite", timeout=10)
    assert answer["command"]["status"] == "completed"
    form = answer["command"]["form"]
    return {var: str(field.get_value()) for var, field in form.get_fields().items()}


def test_a_friend_registers_on_the_invitation_page(srv: RunningServer) -> None:
    async def go() -> None:
        alice = XmppClient("alice@localhost/phone", "alice-pw", plugins=("xep_0050",))
        assert await alice.start(srv.port)
        link = await invitation(alice)
        assert link["uri"].startswith("xmpp:alice@localhost?roster;preauth=")
        url = link["landing-url"]
        http_port = srv.ports["http"]
        assert url.startswith(f"http://localhost:{http_port}/invite/")
        loaded, invite, mistake, created = await page("register", url, "juliet", "juliet-pw-1")
        assert loaded["status"] == 200 and loaded["title"] == "Join localhost"
        assert invite["who"] == "alice@localhost invites you to chat on localhost."
        assert invite["open"] == link["uri"] and "Conversations" in invite["apps"]
        assert mistake["error"] == "The passwords differ."
        assert created == {"event": "created", "status": 200, "title": "Your account is ready",
                           "jid": "juliet@localhost"}
        juliet = XmppClient("juliet@localhost/phone", "juliet-pw-1")
        assert await juliet.start(srv.port)                      # the account works
        roster = await juliet.get_roster(timeout=10)
        assert roster["roster"]["items"]["alice@localhost"]["subscription"] == "both"
        await juliet.stop()
        [again] = await page("visit", url)                       # single use
        assert again["status"] == 410 and again["title"] == "Invitation used or expired"
        await alice.stop()
    run(go())


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_an_admin_link_expires(srv: RunningServer) -> None:
    # Plain HTTP, not Chromium: a browser's start-up (seconds on a busy machine) must not eat
    # the link's validity before the first visit.
    made = srv.ctl("invite", "localhost", "--user", "kim", "--valid", "4 s")
    made_by = time.monotonic()                          # the link was made before this
    assert made.returncode == 0, made.stderr
    uri = made.stdout.splitlines()[-1].split("\t")[0]    # the first line is the landing URL
    assert uri.startswith("xmpp:kim@localhost?register;preauth=")
    token = uri.rsplit("preauth=", 1)[1]
    url = f"http://127.0.0.1:{srv.ports['http']}/invite/{token}"
    status, text = _get(url)
    assert status == 200 and "You are invited to create an account" in text
    time.sleep(max(0.0, made_by + 4.5 - time.monotonic()))     # past the 4 s it was made for
    status, text = _get(url)
    assert status == 410 and "expired" in text
    assert _get(url[:-4] + "abcd")[0] == 404
