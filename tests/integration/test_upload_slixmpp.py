# tests: modules/http_upload.py, storage/files.py, xmppd/listeners/http.py
"""XEP-0363 HTTP upload with slixmpp's xep_0363 plugin and plain HTTP (aiohttp) against the real
server, on sqlite+memory and postgresql+redis."""
from __future__ import annotations

import asyncio
import io
import os
import time
from pathlib import Path

import aiohttp
import pytest
from slixmpp.exceptions import IqError
from slixmpp.jid import JID as SlixJID

from tests.harness.clients import XmppClient, run
from tests.harness.server_proc import DEFAULT_MODULES, RunningServer, ServerFactory

EXPIRE = 5.0        # seconds a file lives on this test server


@pytest.fixture(scope="module")
def upload(server_factory: ServerFactory) -> RunningServer:
    options = {"directory": "{tmp}/files", "max_file_size": "16 MiB", "quota": "40 MiB",
              "slot_timeout": "30 s", "expire_after": f"{EXPIRE} s"}
    return server_factory(modules=DEFAULT_MODULES | {"http_upload": options},
                          users=("alice", "bob"), listeners={"http": {"type": "http"}})


async def client(srv: RunningServer, jid: str = "alice@localhost/up",
                 pw: str = "alice-pw") -> XmppClient:
    c = XmppClient(jid, pw, plugins=("xep_0030", "xep_0363"))
    assert await c.start(srv.port)
    return c


async def slot(c: XmppClient, size: int, ctype: str = "application/octet-stream",
               name: str = "f.bin") -> str:
    iq = await c.plugin["xep_0363"].request_slot(SlixJID("upload.localhost"), name, size, ctype)
    put = iq["http_upload_slot"]["put"]["url"]
    assert put == iq["http_upload_slot"]["get"]["url"]
    return str(put)


def test_ten_mib_upload_comes_back_identical(upload: RunningServer) -> None:
    data = os.urandom(10 * 1024 * 1024)

    async def go() -> None:
        alice = await client(upload)
        url = await alice.plugin["xep_0363"].upload_file(
            "holiday video.mp4", size=len(data), content_type="video/mp4",
            input_file=io.BytesIO(data), domain=SlixJID("localhost"), timeout=30)
        assert alice.plugin["xep_0363"].upload_service == "upload.localhost"
        assert alice.plugin["xep_0363"].max_file_size == 16 * 1024 * 1024
        async with aiohttp.ClientSession() as http:
            async with http.get(url) as r:
                assert r.status == 200
                assert await r.read() == data
                assert r.headers["Content-Type"] == "video/mp4"
                assert r.headers["X-Content-Type-Options"] == "nosniff"
                assert r.headers["Content-Disposition"].startswith("inline")
        await alice.stop()
    run(go())


def test_oversize_request_names_the_maximum(upload: RunningServer) -> None:
    async def go() -> None:
        alice = await client(upload)
        with pytest.raises(IqError) as e:
            await slot(alice, 17 * 1024 * 1024)
        err = e.value.iq["error"]
        assert err["condition"] == "not-acceptable"
        limit = err.xml.find("{urn:xmpp:http:upload:0}file-too-large/"
                             "{urn:xmpp:http:upload:0}max-file-size")
        assert limit is not None and limit.text == str(16 * 1024 * 1024)
        await alice.stop()
    run(go())


def test_slot_is_single_use_and_must_match_size_and_type(upload: RunningServer) -> None:
    async def go() -> None:
        alice = await client(upload)
        url = await slot(alice, 5, "text/plain", "note.txt")
        headers = {"Content-Type": "text/plain"}
        async with aiohttp.ClientSession() as http:
            async with http.put(url, data=b"12345678", headers=headers) as r:
                assert r.status in (400, 413)                  # wrong size
            async with http.put(url, data=b"12345", headers={"Content-Type": "text/html"}) as r:
                assert r.status == 400                         # wrong type
            async with http.put(url, data=b"12345", headers=headers) as r:
                assert r.status == 201
            async with http.put(url, data=b"54321", headers=headers) as r:
                assert r.status == 409                         # used
            async with http.get(url) as r:
                assert await r.read() == b"12345"
                assert r.headers["Content-Disposition"].startswith("attachment")
            async with http.get(url.rsplit("/", 2)[0] + "/" + "A" * 32 + "/note.txt") as r:
                assert r.status == 404                         # no such token
        await alice.stop()
    run(go())


def test_dangerous_types_are_served_as_downloads(upload: RunningServer) -> None:
    page = b"<html><script>alert(1)</script></html>"

    async def go() -> None:
        alice = await client(upload)
        url = await slot(alice, len(page), "text/html", "x.html")
        async with aiohttp.ClientSession() as http:
            async with http.put(url, data=page, headers={"Content-Type": "text/html"}) as r:
                assert r.status == 201
            async with http.get(url) as r:
                assert r.headers["Content-Type"] == "application/octet-stream"
                assert r.headers["Content-Disposition"].startswith("attachment")
                assert r.headers["X-Content-Type-Options"] == "nosniff"
                assert "sandbox" in r.headers["Content-Security-Policy"]
        await alice.stop()
    run(go())


def test_expired_file_is_gone(upload: RunningServer) -> None:
    async def go() -> None:
        alice = await client(upload)
        made = time.monotonic()
        url = await slot(alice, 3, "text/plain", "old.txt")
        async with aiohttp.ClientSession() as http:
            async with http.put(url, data=b"old", headers={"Content-Type": "text/plain"}) as r:
                assert r.status == 201
            async with http.get(url) as r:
                assert r.status == 200
            await asyncio.sleep(max(0.0, made + EXPIRE + 0.5 - time.monotonic()))
            async with http.get(url) as r:
                assert r.status == 404
        # ...and the sweep removes it from disk (it runs every EXPIRE seconds)
        token = url.split("/")[-2]
        path = Path(upload.tmp / "files" / token[:2] / token)
        deadline = time.monotonic() + 2 * EXPIRE + 5
        while path.exists():
            assert time.monotonic() < deadline, "the expired file is still on disk"
            await asyncio.sleep(0.2)
        await alice.stop()
    run(go())
