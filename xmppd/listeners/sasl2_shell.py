# tests: tests/modules/test_sasl2_inline.py, tests/integration/test_sasl2_clients.py
"""What the client session performs for a SASL2 login (XEP-0388) once the mechanism succeeded,
before <success/> goes out: the requests the client made inline.

1. FAST (XEP-0484): the token that authenticated is promoted ('new' → 'current', §6) or, with
   `invalidate`, removed (§3.5); a new token is issued when the client asked for one
   (<request-token/>) or the one it used is past half its lifetime (rotation, §3.4), never
   after `invalidate` alone. Storage trouble costs the token, not the login.
2. XEP-0198 resumption (<resume/>): stream management answers through `sasl2_resume`; a
   resumed session is bound already and the Bind 2 request is ignored (XEP-0386 §2.2 note).
3. Bind 2 (XEP-0386 §2.2): a resource `<tag>.<id>`, where id is stable for the account and
   the client's <user-agent id/> (so a reconnect replaces the client's old session, §2.2
   "SHOULD terminate any earlier sessions from the same client") without revealing the id;
   then `session_bound`, then `bind2_enable` for the features asked inline (carbons, CSI,
   stream management), whose answers form <bound/>.
Steps 2 and 3 end in the same reactor turn as <success/>: nothing addressed to the new
session can reach the client before it. Offline messages are not dropped at Bind 2 (XEP-0386
§2.2 says to clear them "as they will be provided by MAM"): a message a user's archive
preferences keep out of MAM would be lost; they are delivered as after any login, and clients
de-duplicate by XEP-0359 stanza-id.
"""
from __future__ import annotations

import hashlib
import logging
import secrets
from typing import TYPE_CHECKING, Any, Callable

from lxml import etree
from twisted.internet import defer

from stanzas.delay import stamp
from stanzas.errors import StanzaError
from stanzas.jid import JID, JIDError, resourceprep
from storage.errors import StorageError
from storage.fast import StoredToken
from xmppd import c2s, fast, hooks, throttle
from xmppd.hooks import InlineRequest, SessionEvent
from xmppd.sasl2 import BIND_NS

if TYPE_CHECKING:
    from xmppd.listeners.session import ClientSession

log = logging.getLogger(__name__)
_E = etree._Element
Completed = tuple[list[_E], "JID | None", list[Callable[[], Any]]]


def tokens(session: ClientSession, ev: c2s.NeedCredentials) -> defer.Deferred[Any]:
    """The FAST tokens of `ev.client_id` on the account, through the login throttle."""
    store = session.server.stores.fast

    def lookup() -> Any:
        return defer.Deferred.fromCoroutine(store.tokens(ev.host, ev.username, ev.client_id))
    return throttle.credentials(session.server, session.peer_ip, ev.username, ev.host,
                                lookup=lookup)


def complete(session: ClientSession, ev: c2s.Sasl2Success) -> defer.Deferred[Completed]:
    """The children of <success/>, the bound full JID (or None), and what to run once
    <success/> is written."""
    return defer.Deferred.fromCoroutine(_complete(session, ev))


async def _complete(session: ClientSession, ev: c2s.Sasl2Success) -> Completed:
    server = session.server
    req = ev.request
    host = server.hosts[ev.jid.domain]
    children: list[_E] = []
    after: list[Callable[[], Any]] = []
    token = await _fast(session, ev.jid, req)
    if token is not None:
        children.append(token)
    full: JID | None = None
    if req.resume is not None and host.hooks.has(hooks.sasl2_resume):
        answer = host.hooks.fold(hooks.sasl2_resume,
                                 InlineRequest(session, req.resume, after), None)
        if isinstance(answer, defer.Deferred):
            answer = await answer
        if answer is not None:
            children.append(answer)
        if session.bound:
            full = session.jid
    if full is None and req.bind is not None and session.connected:
        full = _bind2(session, ev.jid, req, children, after)
    return children, full, after


async def _fast(session: ClientSession, user: JID, req: c2s.Sasl2Request) -> _E | None:
    server = session.server
    store = server.stores.fast
    now = server.clock.now()
    lifetime = server.config.auth.fast_token_lifetime
    assert user.local is not None
    used = req.token
    try:
        rotate = False
        if used is not None and req.invalidate:
            await store.invalidate(user.domain, user.local, req.client_id, used.key)
        elif used is not None:
            if used.slot == "new":          # 'current' already: nothing to move (§6)
                await store.used(user.domain, user.local, req.client_id, used.key)
            rotate = used.expires_at - now < lifetime / 2
        mechanism = req.request_token or (used.mechanism if rotate and used else None)
        if mechanism is None:
            return None
        secret, key = fast.new_token()
        device = " / ".join(p for p in (req.software, req.device) if p)
        expires = now + lifetime
        await store.issue(user.domain, user.local, req.client_id,
                          StoredToken("new", key, mechanism, now, expires, device))
    except StorageError as e:
        log.warning("FAST token for %s not stored: %s", user, e)
        return None
    return etree.Element("{%s}token" % fast.NS, nsmap={None: fast.NS},  # type: ignore[dict-item]
                         token=secret, expiry=stamp(expires))


def _bind2(session: ClientSession, user: JID, req: c2s.Sasl2Request, children: list[_E],
           after: list[Callable[[], Any]]) -> JID | None:
    assert req.bind is not None
    try:
        full = session.bind_resource(user, _resource(user, req))
    except StanzaError as e:
        log.info("Bind 2 for %s refused: %s", user, e)
        return None         # the features after <success/> offer RFC 6120 binding instead
    host = session.server.hosts[full.domain]
    host.hooks.run(hooks.session_bound, SessionEvent(session))
    answers = host.hooks.fold(hooks.bind2_enable, InlineRequest(session, req.bind, after), [])
    if isinstance(answers, defer.Deferred):
        log.error("a bind2_enable handler is async; its answers are dropped")
        answers = []
    bound = etree.Element("{%s}bound" % BIND_NS, nsmap={None: BIND_NS})  # type: ignore[dict-item]
    bound.extend(answers)
    children.append(bound)
    return full


def _resource(user: JID, req: c2s.Sasl2Request) -> str:
    """XEP-0386 §2.2.1: `<tag>.<id>`; the id stable per account and client, random without a
    client id. The client id itself is not shown (only a hash mixed with the account)."""
    assert req.bind is not None
    tag = (req.bind.findtext("{%s}tag" % BIND_NS) or "").strip()[:64]
    try:
        tag = resourceprep(tag) if tag else ""
    except JIDError:
        tag = ""
    if req.client_id:
        ident = hashlib.sha256(f"{user}\0{req.client_id}".encode()).hexdigest()[:12]
    else:
        ident = secrets.token_hex(6)
    return f"{tag}.{ident}" if tag else ident
