# tests: tests/modules/test_caps.py, tests/integration/test_pep_slixmpp.py
"""XEP-0115: Entity Capabilities — what each connected client supports, learnt once per client
version instead of asked of every client.

- Every available broadcast presence (`presence_broadcast`) is read for <c hash= node= ver=/>.
  A verification string seen for the first time is checked (§5.4): the server asks that client
  for disco#info at node 'node#ver', rebuilds the string (§5.1, data forms included) and keeps
  the features only if it matches. Ill-formed answers (§5.4 3.3–3.5), mismatches, errors and
  timeouts give the session no features; that is logged. Verified strings are cached (the
  shared Cache, so every node of a cluster learns them once, plus an in-process memo); one
  question per string is in flight at a time, and if it fails the other clients that
  advertise the string are asked themselves (§5.4 3.8 "SHOULD check ... another generating
  entity").
- Hash functions: sha-1 (the MUST) and the sha-2/sha-3 names of the IANA registry. Any other
  (md5, unknown names) is answered by asking that client and using its answer for that
  session only, never cached (§5.4 2). A <c/> without 'hash' is the pre-1.4 legacy format and
  is ignored (§5.4 1).
- `CapsService.features(full_jid)` gives the verified features of a local session (empty when
  unknown). `CapsService.learn(full_jid, caps)` gives those of a remote entity (a contact on
  another server, from the <c/> of its presence), verified and cached the same way but asked
  of that entity (PEP notifications to remote contacts, modules/pep/remote.py). `caps_changed` fires at each initial presence, when the features change, and at
  unavailable presence; PEP uses it for "+notify" filtering (XEP-0163 §4.3).
Not here: the server's own caps (no stream feature), +notify semantics (modules/pep/).

Config ([modules.caps]):
  query_timeout  duration  default "30 s"    wait for a client's disco#info answer
  cache_ttl      duration  default "7 days"  how long a verified string stays in the shared cache
Storage: the Cache, keys "caps/<hash>/<ver>" (features, one per line).
"""
from __future__ import annotations

import base64
import hashlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lxml import etree
from twisted.internet import defer
from twisted.python.failure import Failure

from stanzas import iq, ns
from stanzas.errors import StanzaError
from storage.errors import StorageError
from xmppd import hooks
from xmppd.hooks import CapsChanged, StanzaEvent
from stanzas.jid import JID
from xmppd.concurrency import OneLoad
from xmppd.module import IqTimeout, Module, ModuleContext, SessionKey, duration

NS = ns.CAPS
_C = "{%s}c" % NS
_INFO = "{%s}" % ns.DISCO_INFO
_X = "{%s}" % ns.DATA_FORMS
_LANG = "{%s}lang" % ns.XML
def _listed(value: Caps | None) -> Any:
    return list(value) if value is not None else None


def _caps(value: Any) -> Caps | None:
    return (str(value[0]), str(value[1]), str(value[2])) if value else None


# the verified features of the session's client (read by a cluster's other nodes: PEP)
FEATURES: SessionKey[frozenset[str]] = SessionKey(
    "caps.features", shared=True, codec=(sorted, frozenset))
# (hash, node, ver) of its last presence; None: it advertised none
CURRENT: SessionKey[Caps | None] = SessionKey("caps.current", codec=(_listed, _caps))
# sent available presence, not unavailable since
ONLINE: SessionKey[bool] = SessionKey("caps.online", codec=(bool, bool))
_UNSET: Any = ()
EMPTY: frozenset[str] = frozenset()
MEMO_SIZE = 4096

# §5.1 step 9: "the algorithm specified in the 'hash' attribute", by its IANA name.
HASHES: dict[str, Callable[[bytes], Any]] = {
    "sha-1": hashlib.sha1, "sha-224": hashlib.sha224, "sha-256": hashlib.sha256,
    "sha-384": hashlib.sha384, "sha-512": hashlib.sha512, "sha3-256": hashlib.sha3_256,
    "sha3-512": hashlib.sha3_512,
}

Caps = tuple[str, str, str]     # (hash, node, ver)


@dataclass(frozen=True, slots=True)
class CapsOptions:
    query_timeout: float = duration(default="30 s", minimum=1)
    cache_ttl: float = duration(default="7 days", minimum=60)


class CapsService:
    """Read-only view for other modules (ctx.service(CapsService))."""

    def __init__(self, ctx: ModuleContext[Any],
                 learn: Callable[[JID, Caps], defer.Deferred[frozenset[str]]]) -> None:
        self._sessions = ctx.sessions
        self.learn = learn
        """learn(full_jid, caps): the verified features of a remote entity advertising `caps`
        (ask it, unless the string is known); empty if it cannot be verified."""

    def features(self, jid: JID) -> frozenset[str]:
        """The verified disco#info features of the local session `jid` (a full JID)."""
        session = self._sessions.get(jid) if jid.resource is not None else None
        if session is None:
            return EMPTY
        found = session.get(FEATURES, EMPTY)
        return found


class EntityCaps(Module[CapsOptions]):
    name = "caps"
    xeps = (115,)
    depends = ("presence",)         # presence_broadcast is fired by the presence module
    Options = CapsOptions

    def __init__(self, ctx: ModuleContext[CapsOptions]) -> None:
        self.ctx = ctx
        self.memo: OrderedDict[tuple[str, str], frozenset[str]] = OrderedDict()
        # one disco#info question per verification string in flight (§5.4 3.8)
        self.verifying: OneLoad[tuple[str, str], frozenset[str] | None] = \
            OneLoad(self._unverified)
        self.queries: set[defer.Deferred[Any]] = set()
        ctx.provide(CapsService(ctx, self.learn))
        ctx.hook(hooks.presence_broadcast, self.on_available, priority=hooks.LATE)
        ctx.hook(hooks.presence_in, self.on_presence, priority=hooks.EARLY)

    async def stop(self) -> None:
        for d in list(self.queries):
            d.cancel()                  # nothing dangles past the module (send_iq trackers)

    # -- presence --------------------------------------------------------------------------
    def on_available(self, ev: StanzaEvent) -> None:
        session = ev.session
        if session is None or ev.stanza.get("type") is not None:
            return None
        initial = not session.get(ONLINE)
        session.set(ONLINE, True)
        caps = caps_of(ev.stanza)
        if caps == session.get(CURRENT, _UNSET) and not initial:
            return None                 # the same client as before: nothing new to learn
        session.set(CURRENT, caps)
        if caps is None:
            self._set(session, EMPTY, initial)
            return None
        known = self.memo.get((caps[0], caps[2])) if caps[0] in HASHES else None
        if known is not None:
            self.memo.move_to_end((caps[0], caps[2]))
            self._set(session, known, initial)
            return None
        if initial:
            self._set(session, EMPTY, initial=True)   # interest known once the answer is in
        d = defer.Deferred.fromCoroutine(self._learn(session, caps))
        d.addErrback(self._failed, session)
        return None

    def on_presence(self, ev: StanzaEvent) -> None:
        """Unavailable broadcast presence (RFC 6121 §4.5): the session advertises nothing."""
        session = ev.session
        if session is None or ev.stanza.get("to") is not None \
                or ev.stanza.get("type") != "unavailable":
            return None
        if session.pop(ONLINE):
            session.pop(CURRENT)
            old = session.pop(FEATURES) or EMPTY
            self._fire(CapsChanged(session, old, EMPTY, initial=False))
        return None

    def _set(self, session: Any, features: frozenset[str], initial: bool) -> None:
        old = session.get(FEATURES, EMPTY)
        session.set(FEATURES, features)
        if initial or old != features:
            self._fire(CapsChanged(session, old, features, initial))

    def _fire(self, ev: CapsChanged) -> None:
        result = self.ctx.run(hooks.caps_changed, ev)
        if isinstance(result, defer.Deferred):
            result.addErrback(self._failed, ev.session)

    def _failed(self, failure: Failure, session: Any) -> None:
        self.ctx.log.error("caps handling failed for %s: %s", session.jid, failure.value)

    # -- learning a verification string -----------------------------------------------------
    def learn(self, jid: JID, caps: Caps) -> defer.Deferred[frozenset[str]]:
        """CapsService.learn: the features of the remote entity `jid`."""
        return defer.Deferred.fromCoroutine(self._learn_remote(jid, caps))

    async def _learn_remote(self, jid: JID, caps: Caps) -> frozenset[str]:
        if caps[0] not in HASHES:
            return await self._ask(jid, caps, verify=False) or EMPTY      # §5.4 2
        features, asked_this_one = await self._shared(jid, caps)
        if features is None and not asked_this_one:
            features = await self._ask(jid, caps, verify=True)            # §5.4 3.8
            if features is not None:
                await self._remember((caps[0], caps[2]), features)
        return features or EMPTY

    async def _learn(self, session: Any, caps: Caps) -> None:
        algo, node, ver = caps
        if algo not in HASHES:
            # §5.4 2: ask, use for this entity only, do not validate or cache globally.
            self.ctx.log.info("caps of %s use hash %r: not cached", session.jid, algo)
            features = await self._ask(session.jid, caps, verify=False)
        else:
            features, asked_this_one = await self._shared(session.jid, caps)
            if features is None and not asked_this_one and self._current(session, caps):
                # Another client advertising this string failed to prove it: ask this one
                # (§5.4 3.8).
                features = await self._ask(session.jid, caps, verify=True)
                if features is not None:
                    await self._remember((algo, ver), features)
        if self._current(session, caps):
            self._set(session, features or EMPTY, initial=False)

    def _current(self, session: Any, caps: Caps) -> bool:
        """Is `session` still bound, available and advertising `caps`?"""
        live: Any = self.ctx.sessions.get(session.jid)
        return live is session and bool(live.get(ONLINE)) and live.get(CURRENT) == caps

    async def _shared(self, jid: JID, caps: Caps) -> tuple[frozenset[str] | None, bool]:
        """The verified features for `caps`: memo, then the shared cache, then one question
        in flight per string (others wait for it); None if that question failed. The flag
        says whether `jid` was the one asked."""
        algo, node, ver = caps
        key = (algo, ver)
        if key in self.memo:
            return self.memo[key], False
        try:
            stored = await self.ctx.stores.cache.get(_cache_key(key))
        except StorageError as e:
            self.ctx.log.warning("caps cache unavailable: %s", e)
            stored = None
        if stored is not None:
            cached = frozenset(f for f in stored.decode().split("\n") if f)
            self._memo(key, cached)
            return cached, False
        asked_this_one = key not in self.verifying
        features = await self.verifying(key, lambda: self._verify(jid, caps))
        return features, asked_this_one

    async def _verify(self, jid: JID, caps: Caps) -> frozenset[str] | None:
        features = await self._ask(jid, caps, verify=True)
        if features is not None:
            await self._remember((caps[0], caps[2]), features)
        return features

    def _unverified(self, key: tuple[str, str], failure: Failure) -> None:
        self.ctx.log.error("verifying caps %s failed: %s", key[1], failure.value)

    async def _ask(self, jid: JID, caps: Caps, verify: bool) -> frozenset[str] | None:
        algo, node, ver = caps
        query = iq.empty(ns.DISCO_INFO, "query")
        query.set("node", f"{node}#{ver}")              # §6.2: node#ver
        d = self.ctx.send_iq(iq.request("get", to=str(jid), payload=query),
                             timeout=self.ctx.options.query_timeout)
        self.queries.add(d)
        try:
            reply = await d
        except (IqTimeout, StanzaError, defer.CancelledError) as e:
            self.ctx.log.info("no disco#info for caps %s from %s: %s", ver, jid, e)
            return None
        finally:
            self.queries.discard(d)
        info = reply.find(_INFO + "query")
        if info is None:
            self.ctx.log.warning("caps %s of %s: disco#info result without <query/>", ver,
                                 jid)
            return None
        if not verify:
            return frozenset(f.get("var") or "" for f in info.findall(_INFO + "feature")) - {""}
        features = verified(info, algo, ver)
        if features is None:
            self.ctx.log.warning("caps %s of %s do not verify (%s): no +notify interest",
                                 ver, jid, algo)
        return features

    async def _remember(self, key: tuple[str, str], features: frozenset[str]) -> None:
        self._memo(key, features)
        try:
            await self.ctx.stores.cache.set(_cache_key(key), "\n".join(sorted(features)).encode(),
                                            self.ctx.options.cache_ttl)
        except StorageError as e:
            self.ctx.log.warning("caps cache unavailable, not shared: %s", e)

    def _memo(self, key: tuple[str, str], features: frozenset[str]) -> None:
        self.memo[key] = features
        self.memo.move_to_end(key)
        while len(self.memo) > MEMO_SIZE:
            self.memo.popitem(last=False)


def _cache_key(key: tuple[str, str]) -> str:
    return f"caps/{key[0]}/{key[1]}"


def caps_of(presence: etree._Element) -> Caps | None:
    """The (hash, node, ver) a presence advertises in its <c/>, or None."""
    c = presence.find(_C)
    if c is None:
        return None
    algo, node, ver = c.get("hash"), c.get("node"), c.get("ver")
    if not algo or not node or not ver:
        return None                     # legacy (no 'hash') or incomplete: ignored (§5.4 1)
    return algo.lower(), node, ver


def verification_string(info: etree._Element) -> str | None:
    """S of XEP-0115 §5.1 for a disco#info <query/>, or None if it is ill-formed (§5.4)."""
    identities = [(i.get("category") or "", i.get("type") or "", i.get(_LANG) or "",
                   i.get("name") or "") for i in info.findall(_INFO + "identity")]
    if len(set(identities)) != len(identities):
        return None                                             # §5.4 3.3
    features = [f.get("var") or "" for f in info.findall(_INFO + "feature")]
    if len(set(features)) != len(features):
        return None                                             # §5.4 3.4
    forms: dict[str, list[tuple[str, list[str]]]] = {}
    for x in info.findall(_X + "x"):
        form_type: str | None = None
        fields: list[tuple[str, list[str]]] = []
        for f in x.findall(_X + "field"):
            values = [v.text or "" for v in f.findall(_X + "value")]
            if f.get("var") == "FORM_TYPE":
                if f.get("type") != "hidden":
                    break                                       # §5.4 3.6: ignore the form
                if len(set(values)) > 1:
                    return None                                 # §5.4 3.5
                form_type = values[0] if values else ""
            else:
                fields.append((f.get("var") or "", values))
        else:
            if form_type is None:
                continue                                        # §5.4 3.6: no FORM_TYPE
            if form_type in forms:
                return None                                     # §5.4 3.5
            forms[form_type] = fields
    s = "".join(f"{c}/{t}/{lang}/{n}<" for c, t, lang, n in sorted(identities))
    s += "".join(f"{f}<" for f in sorted(features))
    for form_type in sorted(forms):
        s += f"{form_type}<"
        for var, values in sorted(forms[form_type], key=lambda fv: fv[0]):
            s += f"{var}<" + "".join(f"{v}<" for v in sorted(values))
    return s


def verified(info: etree._Element, algo: str, ver: str) -> frozenset[str] | None:
    """The features of `info` if it is well-formed and hashes to `ver` with `algo`."""
    s = verification_string(info)
    if s is None or algo not in HASHES:
        return None
    digest = base64.b64encode(HASHES[algo](s.encode("utf-8")).digest()).decode()
    if digest != ver:
        return None
    return frozenset(f.get("var") or "" for f in info.findall(_INFO + "feature"))
