"""The load generator's wire level: byte scanning, SASL (SCRAM-SHA-1, PLAIN) and the
asyncio connection every scenario drives (bench/loadgen.py)."""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import ssl

NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
STARTTLS = b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
CLOSE = b"</stream:stream>"
BODY_MARK = b"<body>B:"
BODY_END = b"</body>"


class XMPPError(Exception):
    pass


# --------------------------------------------------------------------------
# byte-level scanning helpers

def find_element(buf, names):
    """Find the first complete element among ``names`` (bytes tag names such
    as b'success' or b'stream:features') in ``buf``.

    Returns (end_offset, (name, open_tag, inner_bytes)) or None if no such
    element is complete yet.  Raises XMPPError on a stream error/close."""
    best = None
    for nm in names:
        start = 0
        while True:
            i = buf.find(b"<" + nm, start)
            if i < 0:
                break
            nxt = buf[i + 1 + len(nm):i + 2 + len(nm)]
            if nxt in (b" ", b">", b"/", b"\t", b"\n", b"\r"):
                if best is None or i < best[0]:
                    best = (i, nm)
                break
            start = i + 1
    if best is None:
        if b"<stream:error" in buf or CLOSE in buf:
            raise XMPPError("stream error/close: " + bytes(buf[-400:]).decode("utf-8", "replace"))
        return None
    i, nm = best
    j = buf.find(b">", i)
    if j < 0:
        return None
    open_tag = bytes(buf[i:j + 1])
    if buf[j - 1:j] == b"/":
        return j + 1, (nm, open_tag, b"")
    close = b"</" + nm + b">"
    k = buf.find(close, j)
    if k < 0:
        return None
    return k + len(close), (nm, open_tag, bytes(buf[j + 1:k]))


def attr(open_tag: bytes, name: bytes) -> bytes | None:
    for q in (b"'", b'"'):
        key = b" " + name + b"=" + q
        i = open_tag.find(key)
        if i >= 0:
            i += len(key)
            return open_tag[i:open_tag.index(q, i)]
    return None


# --------------------------------------------------------------------------
# SCRAM-SHA-1 client (RFC 5802), without channel binding ("n,,")

_salted_cache: dict[tuple, bytes] = {}


def _h(key: bytes, msg: bytes) -> bytes:
    return hmac.new(key, msg, hashlib.sha1).digest()


def _saslname(user: str) -> str:
    return user.replace("=", "=3D").replace(",", "=2C")


class ScramSha1:
    name = "SCRAM-SHA-1"

    def __init__(self, user: str, password: str):
        self.password = password.encode()
        self.cnonce = base64.b64encode(os.urandom(18)).decode()
        self.first_bare = f"n={_saslname(user)},r={self.cnonce}"
        self.server_sig = None

    def initial(self) -> bytes:
        return ("n,," + self.first_bare).encode()

    def respond(self, server_first: bytes) -> bytes:
        sf = server_first.decode()
        parts = dict(p.split("=", 1) for p in sf.split(","))
        nonce, salt, it = parts["r"], base64.b64decode(parts["s"]), int(parts["i"])
        if not nonce.startswith(self.cnonce):
            raise XMPPError("SCRAM: server nonce does not extend ours")
        # Real clients cache SaltedPassword too; without the cache the
        # client's PBKDF2 (10,000 iterations on Prosody) would dominate the
        # cost of a login on the *client* side.
        ck = (self.password, salt, it)
        salted = _salted_cache.get(ck)
        if salted is None:
            salted = hashlib.pbkdf2_hmac("sha1", self.password, salt, it)
            _salted_cache[ck] = salted
        client_key = _h(salted, b"Client Key")
        stored_key = hashlib.sha1(client_key).digest()
        without_proof = f"c=biws,r={nonce}"
        auth_msg = f"{self.first_bare},{sf},{without_proof}".encode()
        sig = _h(stored_key, auth_msg)
        proof = bytes(a ^ b for a, b in zip(client_key, sig))
        self.server_sig = _h(_h(salted, b"Server Key"), auth_msg)
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()

    def verify(self, server_final: bytes):
        sf = server_final.decode()
        if not sf.startswith("v="):
            raise XMPPError("SCRAM: bad server-final " + sf)
        if base64.b64decode(sf[2:]) != self.server_sig:
            raise XMPPError("SCRAM: server signature mismatch")


class Plain:
    name = "PLAIN"

    def __init__(self, user: str, password: str):
        self.user, self.password = user, password

    def initial(self) -> bytes:
        return f"\0{self.user}\0{self.password}".encode()

    def respond(self, challenge: bytes) -> bytes:
        raise XMPPError("PLAIN: unexpected challenge")

    def verify(self, server_final: bytes):
        pass


MECHS = {"SCRAM-SHA-1": ScramSha1, "PLAIN": Plain}


# --------------------------------------------------------------------------
# connection

class Conn(asyncio.Protocol):
    """One client connection.  During setup ``wait()`` resolves predicates
    over the receive buffer; afterwards ``on_data`` gets raw chunks."""

    def __init__(self):
        self.transport = None
        self.buf = bytearray()
        self.pred = None
        self.fut = None
        self.on_data = None
        self.lost = False
        self.lost_exc = None
        self.closed_evt = asyncio.Event()
        self.paused = False
        self.resume_evt = asyncio.Event()
        self.resume_evt.set()

    # asyncio callbacks
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        od = self.on_data
        if od is not None:
            od(data)
            return
        self.buf += data
        self._check()

    def eof_received(self):
        return False

    def connection_lost(self, exc):
        self.lost = True
        self.lost_exc = exc
        self.closed_evt.set()
        self.resume_evt.set()
        if self.fut is not None and not self.fut.done():
            self.fut.set_exception(XMPPError(f"connection lost ({exc!r}); got: "
                                             + bytes(self.buf[-300:]).decode("utf-8", "replace")))

    def pause_writing(self):
        self.paused = True
        self.resume_evt.clear()

    def resume_writing(self):
        self.paused = False
        self.resume_evt.set()

    # setup helpers
    def _check(self):
        if self.pred is None or self.fut is None or self.fut.done():
            return
        try:
            r = self.pred(self.buf)
        except Exception as e:  # noqa: BLE001
            self.fut.set_exception(e)
            return
        if r is not None:
            n, val = r
            del self.buf[:n]
            self.pred = None
            self.fut.set_result(val)

    async def wait(self, pred, timeout: float):
        if self.lost:
            raise XMPPError(f"connection lost ({self.lost_exc!r})")
        self.fut = asyncio.get_running_loop().create_future()
        self.pred = pred
        self._check()
        try:
            return await asyncio.wait_for(self.fut, timeout)
        except asyncio.TimeoutError:
            raise XMPPError("timeout waiting; got: " + bytes(self.buf[-300:]).decode("utf-8", "replace")) from None
        finally:
            self.fut = None

    async def element(self, names, timeout):
        return await self.wait(lambda b: find_element(b, names), timeout)

    def write(self, data: bytes):
        self.transport.write(data)

    def write_units(self, units):
        self.transport.write(b"".join(units))

    async def close(self, timeout: float = 2.0):
        """Polite close: </stream:stream>, wait for the server to close."""
        if self.lost:
            return
        self.on_data = _discard
        try:
            self.transport.write(CLOSE)
            self.transport.close()
            await asyncio.wait_for(self.closed_evt.wait(), timeout)
        except (asyncio.TimeoutError, Exception):  # noqa: BLE001
            pass
        if not self.lost:
            self.transport.abort()


def _discard(_data):
    pass


_background: set = set()


def background(coro):
    """create_task that keeps a strong reference until the task is done."""
    t = asyncio.get_running_loop().create_task(coro)
    _background.add(t)
    t.add_done_callback(_background.discard)
    return t


def make_sslctx() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False          # servers use self-signed certs
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def stream_header(domain: str) -> bytes:
    return (f"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
            f"xmlns:stream='http://etherx.jabber.org/streams' to='{domain}' "
            f"version='1.0'>").encode()

