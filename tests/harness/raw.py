# tests: tests/integration/
"""A raw XMPP client on asyncio streams, for sending what no client library would send."""
from __future__ import annotations

import asyncio
import base64
import ssl

HEADER = ("<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
          "xmlns:stream='http://etherx.jabber.org/streams' to='{host}' version='1.0'>")


class RawClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.buf = b""

    @classmethod
    async def connect(cls, port: int, source: str | None = None) -> RawClient:
        """Connect to 127.0.0.1:`port`, from the loopback address `source` if given
        (127.0.0.0/8 is all ours: tests pose as several clients' addresses)."""
        r, w = await asyncio.open_connection(
            "127.0.0.1", port, local_addr=(source, 0) if source else None)
        return cls(r, w)

    async def send(self, data: bytes | str) -> None:
        self.writer.write(data.encode() if isinstance(data, str) else data)
        await self.writer.drain()

    async def read_until(self, token: bytes, timeout: float = 10.0) -> bytes:
        async def go() -> bytes:
            while token not in self.buf:
                chunk = await self.reader.read(65536)
                if not chunk:
                    raise EOFError(f"closed before {token!r}; got {self.buf[-500:]!r}")
                self.buf += chunk
            head, _, self.buf = self.buf.partition(token)
            return head + token
        return await asyncio.wait_for(go(), timeout)

    async def read_to_close(self, timeout: float = 10.0) -> bytes:
        async def go() -> bytes:
            while True:
                chunk = await self.reader.read(65536)
                if not chunk:
                    data, self.buf = self.buf, b""
                    return data
                self.buf += chunk
        return await asyncio.wait_for(go(), timeout)

    async def open(self, host: str = "localhost") -> bytes:
        await self.send(HEADER.format(host=host))
        return await self.read_until(b"</stream:features>")

    async def starttls(self, host: str = "localhost") -> bytes:
        """Open the stream, STARTTLS, and open it again: the features after TLS."""
        await self.open(host)
        await self.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        await self.read_until(b"<proceed")
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        await self.writer.start_tls(ctx)
        self.buf = b""
        return await self.open(host)

    async def plain(self, user: str, password: str) -> bytes:
        """One SASL PLAIN attempt on an open (encrypted) stream: the <success/> or <failure/>
        answer, or b"" if the server closed the stream instead."""
        token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        await self.send(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
                        f"mechanism='PLAIN'>{token}</auth>")
        async def go() -> bytes:
            while True:
                for start, end in ((b"<failure", b"</failure>"), (b"<success", b">")):
                    i = self.buf.find(start)
                    j = self.buf.find(end, i) if i >= 0 else -1
                    if j >= 0:
                        answer, self.buf = self.buf[i:j + len(end)], self.buf[j + len(end):]
                        return answer
                chunk = await self.reader.read(65536)
                if not chunk:
                    return b""
                self.buf += chunk
        return await asyncio.wait_for(go(), 30)

    async def login(self, user: str, password: str, host: str = "localhost",
                    resource: str = "raw") -> None:
        """STARTTLS, SASL PLAIN, bind: a logged-in stream."""
        await self.starttls(host)
        token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        await self.send(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
                        f"mechanism='PLAIN'>{token}</auth>")
        await self.read_until(b"<success")
        self.buf = b""
        await self.open(host)
        await self.send("<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                        f"<resource>{resource}</resource></bind></iq>")
        await self.read_until(b"</iq>")

    def close(self) -> None:
        self.writer.close()
