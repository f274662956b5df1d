# tests: tests/bot/test_examples.py, tests/bot/test_runner.py, tests/bot/test_bot.py
"""The slixmpp boundary: one XMPP connection with typed methods, so that nothing above this
file touches a slixmpp stanza, event name or plugin.

- `establish()` makes one connection attempt and returns once the session is up (RFC 6120 §7
  bind, or XEP-0198 resumption), or raises the author-facing error: `AuthError` (SASL refused,
  RFC 6120 §6.5), `TlsError`, `ConnectError` (unreachable, or a stream error such as
  <host-unknown/>). slixmpp's own retry loop is switched off: the bot decides about retries.
- Incoming messages with a body become `Incoming` values; receipts (XEP-0184) and markers
  (XEP-0333) are built here from plain XML.
- Requests (roster, MUC admin, disco, upload slots) return plain values or raise
  `RequestError` with the RFC 6120 §8.3 condition.
Not here: group chats (muc.py, which this connection owns as `muc`), the roster's wire format
(roster.py), what the bot does with a message (dispatch.py).
"""
from __future__ import annotations

import asyncio
import logging
import os
import ssl
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout

from xmppd_bot import roster
from xmppd_bot.errors import AuthError, ConnectError, ReplacedError, RequestError, TlsError
from xmppd_bot.jid import JID, JIDError
from xmppd_bot.message import Contact, Kind
from xmppd_bot.muc import Rooms
from xmppd_bot.settings import Settings

log = logging.getLogger(__name__)

NS_CLIENT = "jabber:client"
NS_RECEIPTS = "urn:xmpp:receipts"          # XEP-0184
NS_MARKERS = "urn:xmpp:chat-markers:0"     # XEP-0333
NS_DELAY = "urn:xmpp:delay"                # XEP-0203
NS_SID = "urn:xmpp:sid:0"                  # XEP-0359
NS_OOB = "jabber:x:oob"                    # XEP-0066
_C = "{%s}" % NS_CLIENT

IqKind = Literal["get", "set"]
PresenceKind = Literal["subscribe", "subscribed", "unsubscribe", "unsubscribed", "unavailable"]
PLUGINS = ("xep_0030", "xep_0066", "xep_0184", "xep_0198", "xep_0199",
           "xep_0203", "xep_0333", "xep_0359")


@dataclass(frozen=True, slots=True)
class Incoming:
    """A message stanza with a body, as plain values."""

    kind: str
    sender: JID
    id: str | None
    body: str
    thread: str | None
    wants_receipt: bool
    markable: bool
    delayed: bool
    stanza_ids: tuple[tuple[str, str], ...]     # (by, id) pairs, XEP-0359


class _Stream(slixmpp.ClientXMPP):
    """slixmpp's client with its reconnect scheduling turned into a callback."""

    def __init__(self, jid: str, password: str, on_unreachable: Callable[[], None]) -> None:
        super().__init__(jid, password)
        self._on_unreachable = on_unreachable

    def reschedule_connection_attempt(self) -> None:
        # slixmpp would retry forever with its own backoff; report instead (the bot retries).
        self._current_connection_attempt = None
        self._on_unreachable()


class Connection:
    """One account's XMPP connection, reused across reconnects (XEP-0198 state lives here)."""

    def __init__(self, settings: Settings, on_message: Callable[[Incoming], None],
                 on_subscribe: Callable[[JID], None]) -> None:
        self.settings = settings
        self._on_message = on_message
        self._on_subscribe = on_subscribe
        self._outcome: asyncio.Future[bool] | None = None
        self._closed: asyncio.Future[str] | None = None
        self._last_error: str = ""
        self._stream_error: str = ""
        self._auth_failure: str = ""
        self._no_mechanism = False
        self.muc = Rooms(self)
        self.rooms = self.muc.joined         # joined room -> our nick
        self._online = False

        s = _Stream(str(settings.jid), settings.password, self._unreachable)
        self._s = s
        s.enable_direct_tls = False          # XEP-0368 ports differ; an explicit port is STARTTLS
        s.enable_plaintext = False
        if not settings.tls_verify:
            s.ssl_context.check_hostname = False
            s.ssl_context.verify_mode = ssl.CERT_NONE
        # RFC 6121 §3.1.3: subscription requests are the bot author's decision, not slixmpp's.
        s.roster.auto_authorize = None  # type: ignore[assignment]  # None = "ask the app"
        s.roster.auto_subscribe = False
        for name in PLUGINS:
            s.register_plugin(name)
        s.plugin["xep_0184"].auto_ack = False     # we ack ourselves, per the receipts policy
        s.plugin["xep_0184"].auto_request = False
        s.plugin["xep_0199"].keepalive = False    # the bot's own keepalive decides on drops
        s.add_event_handler("session_start", lambda _: self._resolve(False))
        s.add_event_handler("session_resumed", lambda _: self._resolve(True))
        s.add_event_handler("connection_failed", self._connection_failed)
        s.add_event_handler("ssl_invalid_chain", self._tls_failed)
        s.add_event_handler("failed_auth", self._auth_failed)
        s.add_event_handler("no_auth", self._no_auth)
        s.add_event_handler("failed_all_auth", self._all_auth_failed)
        s.add_event_handler("stream_error", self._stream_error_seen)
        s.add_event_handler("disconnected", self._disconnected)
        s.add_event_handler("message", self._message)
        s.add_event_handler("presence_subscribe", self._subscribe)
        s.add_event_handler("presence", lambda stanza: self.muc.on_presence(stanza.xml))

    # -- connecting ------------------------------------------------------------------------
    @property
    def jid(self) -> JID:
        bound = str(self._s.boundjid)
        try:
            return JID.parse(bound)
        except JIDError:
            return self.settings.jid

    @property
    def online(self) -> bool:
        """Logged in, and the stream has not closed since."""
        return self._online

    async def establish(self) -> bool:
        """Connect and log in once. Returns True if a XEP-0198 session was resumed.

        Raises:
            AuthError, TlsError, ConnectError, ReplacedError: one-line, for the author.
        """
        loop = asyncio.get_running_loop()
        self._outcome = loop.create_future()
        # An outcome can also arrive after we stopped waiting (timeout): mark it retrieved.
        self._outcome.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._closed = loop.create_future()
        self._last_error = self._stream_error = self._auth_failure = ""
        self._no_mechanism = False
        server = self.settings.server
        if server is not None:
            self._s.connect(host=server.host, port=server.port)
        else:
            self._s.connect()
        try:
            return await asyncio.wait_for(asyncio.shield(self._outcome),
                                          self.settings.connect_timeout)
        except TimeoutError:
            self.abort()
            raise ConnectError(f"no answer from {self.settings.describe_server()} within "
                               f"{self.settings.connect_timeout:g} s") from None

    async def wait_closed(self) -> str:
        """Wait until the connection is gone; the reason, for the log."""
        assert self._closed is not None
        return await asyncio.shield(self._closed)

    def replaced(self) -> bool:
        """The last stream ended with <conflict/> (RFC 6120 §4.9.3.3, another session)."""
        return self._stream_error.startswith("conflict")

    async def close(self, timeout: float = 5.0) -> None:
        """Close the stream politely (the server then sends our unavailable presence)."""
        if not self._s.is_connected():
            self._s.cancel_connection_attempt()
            return
        try:
            await asyncio.wait_for(self._s.disconnect(wait=timeout), timeout + 1)
        except TimeoutError:
            self.abort()

    def abort(self) -> None:
        self._s.cancel_connection_attempt()
        self._s.abort()

    def _resolve(self, resumed: bool) -> None:
        if self._outcome is not None and not self._outcome.done():
            self._online = True
            self._outcome.set_result(resumed)

    def _fail(self, error: Exception) -> None:
        if self._outcome is not None and not self._outcome.done():
            self._outcome.set_exception(error)

    def _where(self) -> str:
        return self.settings.describe_server()

    def _connection_failed(self, error: Any) -> None:
        errno = getattr(error, "errno", None)
        self._last_error = os.strerror(errno).lower() if isinstance(errno, int) else str(error)

    def _unreachable(self) -> None:
        why = self._last_error or "connection failed"
        self._fail(ConnectError(f"cannot reach the XMPP server {self._where()}: {why}"))

    def _tls_failed(self, error: Any) -> None:
        self._fail(self._untrusted(error))
        self.abort()

    def _untrusted(self, error: Any) -> TlsError:
        reason = getattr(error, "verify_message", None) or getattr(error, "reason", None) \
            or str(error)
        return TlsError(
            f"the TLS certificate of {self._where()} is not trusted ({reason}); for a dev "
            "server with a self-signed certificate set XMPPD_BOT_TLS_VERIFY=false "
            "(tls_verify = false)")

    def _auth_failed(self, stanza: Any) -> None:
        self._auth_failure = str(stanza["condition"] or "not-authorized")

    def _no_auth(self, _: Any) -> None:
        self._no_mechanism = True

    def _all_auth_failed(self, _: Any) -> None:
        jid = self.settings.jid.bare
        if self._no_mechanism:
            self._fail(AuthError(f"cannot log in as {jid}: the server offers no SASL mechanism "
                                 "this client can use"))
        else:
            self._fail(AuthError(f"login refused for {jid}: wrong password or no such account "
                                 f"({self._auth_failure or 'not-authorized'})"))

    def _stream_error_seen(self, stanza: Any) -> None:
        text = str(stanza["text"] or "")
        cond = str(stanza["condition"] or "undefined-condition")
        self._stream_error = f"{cond}: {text}" if text else cond

    def _disconnected(self, reason: Any) -> None:
        self._online = False
        if isinstance(reason, ssl.SSLCertVerificationError):
            err: Exception = self._untrusted(reason)     # the handshake failed under us
        elif self.replaced():
            err = ReplacedError(
                f"another session logged in as {self.settings.jid} and replaced this bot "
                "(is it running twice? give each copy its own resource)")
        else:
            why = self._stream_error or (str(reason) if reason else "") or "connection closed"
            err = ConnectError(f"the server {self._where()} closed the connection during "
                               f"login ({why})")
        self._fail(err)
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(self._stream_error or str(reason or "connection closed"))

    # -- incoming --------------------------------------------------------------------------
    def _message(self, stanza: Any) -> None:
        xml: ET.Element = stanza.xml
        try:
            sender = JID.parse(xml.get("from") or "")
        except JIDError:
            log.debug("ignoring a message with a bad from")
            return
        body = xml.findtext(_C + "body")
        if body is None:
            return
        ids = tuple((el.get("by") or "", el.get("id") or "")
                    for el in xml.findall("{%s}stanza-id" % NS_SID))
        self._on_message(Incoming(
            kind=xml.get("type") or "normal", sender=sender, id=xml.get("id"), body=body,
            thread=xml.findtext(_C + "thread"),
            wants_receipt=xml.find("{%s}request" % NS_RECEIPTS) is not None,
            markable=xml.find("{%s}markable" % NS_MARKERS) is not None,
            delayed=xml.find("{%s}delay" % NS_DELAY) is not None,
            stanza_ids=ids))

    def _subscribe(self, stanza: Any) -> None:
        try:
            who = JID.parse(str(stanza["from"])).bare
        except JIDError:
            return
        self._on_subscribe(who)

    # -- outgoing --------------------------------------------------------------------------
    def _message_to(self, to: JID, kind: Kind) -> Any:
        return self._s.make_message(mto=str(to), mtype=kind)

    def send_text(self, to: JID, text: str, kind: Kind, thread: str | None,
                  oob_url: str | None = None) -> None:
        msg = self._message_to(to, kind)
        ET.SubElement(msg.xml, _C + "body").text = text
        if thread:
            ET.SubElement(msg.xml, _C + "thread").text = thread
        if oob_url:
            x = ET.SubElement(msg.xml, "{%s}x" % NS_OOB)
            ET.SubElement(x, "{%s}url" % NS_OOB).text = oob_url
        msg.send()

    def send_receipt(self, to: JID, ref: str, kind: Kind) -> None:
        # XEP-0184 §7: the ack carries only <received id=…/>; same type as the content message.
        msg = self._message_to(to, kind)
        ET.SubElement(msg.xml, "{%s}received" % NS_RECEIPTS, id=ref)
        msg.send()

    def send_displayed(self, to: JID, ref: str, kind: Kind, thread: str | None) -> None:
        msg = self._message_to(to, kind)
        ET.SubElement(msg.xml, "{%s}displayed" % NS_MARKERS, id=ref)
        if thread:
            ET.SubElement(msg.xml, _C + "thread").text = thread
        msg.send()

    def send_presence(self, to: JID | None = None, kind: PresenceKind | None = None,
                      status: str | None = None, payload: ET.Element | None = None) -> None:
        pres = self._s.make_presence(pto=str(to) if to else None, ptype=kind)
        if status:
            ET.SubElement(pres.xml, _C + "status").text = status
        if payload is not None:
            pres.xml.append(payload)
        pres.send()

    def subscribed_to_us(self, who: JID) -> bool:
        """`who` may see our presence (roster subscription 'from' or 'both', RFC 6121 §2.1.2.5)."""
        roster = self._s.client_roster
        key = str(who.bare)
        return key in roster and bool(roster[key]["from"])

    # -- requests --------------------------------------------------------------------------
    async def request(self, to: JID | None, kind: IqKind, payload: ET.Element, what: str,
                      timeout: float = 30.0) -> ET.Element:
        """Send an IQ get/set; the result's XML.

        Raises:
            RequestError: the error reply's condition, or remote-server-timeout.
        """
        iq = self._s.make_iq(ito=str(to) if to else None, itype=kind)
        iq.xml.append(payload)
        try:
            result = await iq.send(timeout=timeout)  # type: ignore[no-untyped-call]
        except IqError as e:
            raise RequestError(what, str(e.condition), str(e.text or "")) from None
        except IqTimeout:
            raise RequestError(what, "remote-server-timeout",
                               f"no answer within {timeout:g} s") from None
        xml: ET.Element = result.xml
        return xml

    async def ping_server(self, timeout: float) -> bool:
        """XEP-0199 ping to our server: False only if no answer came in time."""
        try:
            await self.request(JID.of(None, self.settings.jid.domain), "get",
                               ET.Element("{urn:xmpp:ping}ping"), "ping", timeout)
        except RequestError as e:
            return e.condition != "remote-server-timeout"  # any error reply proves the link
        return True

    async def fetch_roster(self) -> list[Contact]:
        found = roster.contacts(await self.request(None, "get", roster.query(),
                                                   "fetching the roster"))
        view = self._s.client_roster        # slixmpp's copy answers `subscribed_to_us`
        for c in found:
            view[str(c.jid)]["from"] = c.subscription in ("from", "both")
            view[str(c.jid)]["to"] = c.subscription in ("to", "both")
        return found

    async def set_roster_item(self, jid: JID, name: str, groups: Sequence[str],
                              remove: bool = False) -> None:
        await self.request(None, "set", roster.item_set(jid, name, groups, remove),
                           f"{'removing' if remove else 'adding'} contact {jid.bare}")
