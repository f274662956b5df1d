# tests: tests/modules/test_register.py, tests/integration/test_core_slixmpp.py
"""XEP-0077: In-Band Registration — sign up, change password, delete account from a client.

- Before login (only from addresses in `allow_from`; none by default, as ejabberd's default
  config): `get` returns the fields (username, password) (§3.1); `set` creates the account, or
  <conflict/> if the name is taken (§3.1), <not-acceptable/> if a field is missing or the
  password too short (§3.1, §3.5), <jid-malformed/> for a name that is not a valid localpart.
  The `<register/>` stream feature is offered to those addresses (§5).
- Sign-ups are limited (xmppd/throttle.py, for the whole process): one per stream (a second:
  <not-acceptable/>, as §3.1's "register a second identity" allows), `max_per_ip` per address
  and `max_total` from everyone within `window`; past those <resource-constraint/> of type
  wait (ejabberd answers the same "so quickly" error; Prosody's mod_register_limits counts
  the same way).
- With an invitation (XEP-0445, modules/invites): a stream that presented a valid token
  registers whatever `allow_from` says, once per token, without the sign-up limits (the token
  is the permission); a name an account invitation reserves is <conflict/> for everyone else.
  Without a token and outside `allow_from`: <not-allowed/>.
- Logged in: `get` answers <registered/> with the username (§3.2); `set` with username and
  password changes the password (§3.3); `set` with <remove/> deletes the account: the result
  is sent first, then the account's sessions close (§3.2, ejabberd and Prosody do the same).
- Admins edit who may register (XEP-0133 §4.11/§4.12 through modules/admin_commands/, using
  the `RegistrationPolicy` service): an allow list (starts as `allow_from`) and a deny list of
  networks refused even inside it. Edited lists are stored per host and win over `allow_from`
  from then on, across restarts. Until the stored lists are read at start, nobody registers
  (the server says it serves, its port files, only once they are).
  On a cluster the node where an admin edits a list tells every other node before answering.
Not here: account creation from the command line (xmppd/ctl.py), account storage.

Config ([modules.register]):
  allow_from            list of IP networks   default []   who may register before logging in
  min_password_length   int                   default 1    shorter passwords get <not-acceptable/>
  max_per_ip            int                   default 5    sign-ups from one address per window (0: no limit)
  max_total             int                   default 100  sign-ups from anyone per window (0: no limit)
  window                duration              default "1 h"
Storage: accounts (through the server's account operations); the edited lists in host
settings "register.allow" / "register.deny" (JSON lists of networks).
"""
from __future__ import annotations

import ipaddress
import json
import weakref
from dataclasses import dataclass
from typing import Any

from lxml import etree
from twisted.internet import defer

from stanzas import iq, ns
from stanzas.errors import StanzaError
from xmppd.cluster.api import cluster_of
from xmppd.module import IqRequest, Module, ModuleContext, duration, networks, number
from xmppd.throttle import registration_throttle

_Q = "{%s}" % ns.REGISTER
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class RegisterOptions:
    allow_from: tuple[_Network, ...] = networks(default=())
    min_password_length: int = number(default=1, minimum=1, maximum=1024)
    max_per_ip: int = number(default=5, minimum=0)
    max_total: int = number(default=100, minimum=0)
    window: float = duration(default="1 h", minimum=1)


class RegistrationPolicy:
    """Who may register in-band on one host: in `allow` and not in `deny` (networks)."""
    KEYS = {"allow": "register.allow", "deny": "register.deny"}

    def __init__(self, ctx: ModuleContext[RegisterOptions]) -> None:
        self.ctx = ctx
        self.allow: tuple[_Network, ...] = ctx.options.allow_from
        self.deny: tuple[_Network, ...] = ()
        self.loaded = False
        d = defer.Deferred.fromCoroutine(self._load())
        d.addErrback(self._load_failed)
        ctx.before_serving(d)       # a client told "serving" finds the lists read
        # A cluster: an edit on one node is applied by every node before the admin hears "done".
        self.cluster = cluster_of(ctx)
        self.close = self.cluster.answer(f"register.lists.{ctx.host}", self._told) \
            if self.cluster is not None else (lambda: None)

    async def _load(self) -> None:
        store = self.ctx.stores.settings
        for which, key in self.KEYS.items():
            raw = await store.get(self.ctx.host, key)
            if raw is not None:
                setattr(self, which, parse_networks(json.loads(raw)))
        self.loaded = True

    def _load_failed(self, failure: Any) -> None:
        self.ctx.log.error("registration lists not read, using allow_from: %s", failure.value)
        self.loaded = True

    def permits(self, peer_ip: str | None) -> bool:
        if not self.loaded or not self.allow or peer_ip is None:
            return False
        try:
            addr = ipaddress.ip_address(peer_ip)
        except ValueError:
            return False
        return any(addr in net for net in self.allow) and not any(addr in n for n in self.deny)

    async def set(self, which: str, networks: tuple[_Network, ...]) -> None:
        """Replace the "allow" or "deny" list, stored for good."""
        value = json.dumps([str(n) for n in networks]).encode()
        await self.ctx.stores.settings.put(self.ctx.host, self.KEYS[which], value,
                                           self.ctx.clock.now())
        setattr(self, which, networks)
        if self.cluster is not None:
            told = [self.cluster.call(node, f"register.lists.{self.ctx.host}",
                                      [which, [str(n) for n in networks]])
                    for node in sorted(self.cluster.live()) if node != self.cluster.node]
            for d in told:
                try:
                    await d
                except Exception as e:      # that node died: it reads the store at start
                    self.ctx.log.warning("registration list change not confirmed: %r", e)

    def _told(self, args: Any) -> bool:
        """Another node of the cluster set a list (already stored)."""
        if args[0] in self.KEYS:
            setattr(self, str(args[0]), parse_networks(list(args[1])))
        return True


def parse_networks(values: list[str]) -> tuple[_Network, ...]:
    """Addresses or networks ("10.0.0.0/8", "::1"); raises ValueError naming a bad one."""
    out = []
    for v in values:
        try:
            out.append(ipaddress.ip_network(v.strip(), strict=False))
        except ValueError:
            raise ValueError(f"not an IP address or network: {v!r}") from None
    return tuple(out)


class Register(Module[RegisterOptions]):
    name = "register"
    xeps = (77,)
    Options = RegisterOptions

    def __init__(self, ctx: ModuleContext[RegisterOptions]) -> None:
        self.ctx = ctx
        self.accounts = ctx.accounts
        self.policy = RegistrationPolicy(ctx)
        ctx.provide(self.policy)
        # One count for the process: keyed by the account operations every host shares.
        self.throttle = registration_throttle(ctx.accounts)
        self.signed_up: weakref.WeakSet[object] = weakref.WeakSet()   # streams that did
        ctx.disco_feature(ns.REGISTER)
        ctx.allow_preauth_iq(self.allowed)
        ctx.stream_feature(self.feature, stage="preauth")
        ctx.iq_get(ns.REGISTER, "query", self.fields, to="preauth")
        ctx.iq_set(ns.REGISTER, "query", self.sign_up, to="preauth")
        ctx.iq_get(ns.REGISTER, "query", self.registered, to=("host", "self"))
        ctx.iq_set(ns.REGISTER, "query", self.change, to=("host", "self"))

    async def stop(self) -> None:
        self.policy.close()

    def allowed(self, peer_ip: str | None) -> bool:
        return self.policy.permits(peer_ip)

    def feature(self, stream: object) -> etree._Element | None:
        if not self.allowed(getattr(stream, "peer_ip", None)):
            return None
        return iq.empty(ns.REGISTER_FEATURE, "register")

    def fields(self, req: IqRequest) -> iq.Reply:
        self._may_sign_up(req)
        q = iq.empty(ns.REGISTER, "query")
        etree.SubElement(q, _Q + "instructions").text = \
            "Choose a username and password to register with this server."
        etree.SubElement(q, _Q + "username")
        etree.SubElement(q, _Q + "password")
        return iq.result(req.stanza, q)

    async def sign_up(self, req: IqRequest) -> iq.Reply:
        if req.payload.find(_Q + "remove") is not None:
            raise StanzaError.not_authorized("log in to delete an account")     # §3.2
        token = self._may_sign_up(req)
        username, password = self._credentials(req)
        opts, now = self.ctx.options, self.ctx.clock.now()
        ip = getattr(req.session, "peer_ip", None)
        if req.session is not None and req.session in self.signed_up:
            raise StanzaError.not_acceptable("one account per connection")      # §3.1
        invitations = self._invitations()
        if token is not None and invitations is not None:
            jid = await invitations.sign_up(token[0], username, password, token[1])
            self.signed_up.add(req.session)
            self.ctx.log.info("registered %s in-band with an invitation from %s", jid, ip)
            return iq.result(req.stanza)
        if invitations is not None and await invitations.reserved(username.lower()):
            raise StanzaError.conflict("that username is taken")
        reached = self.throttle.allowed(ip, now, window=opts.window, per_ip=opts.max_per_ip,
                                        total=opts.max_total)
        if reached is not None:
            self.ctx.log.warning("in-band registration refused: %s limit reached", reached,
                                 extra={"event": "registration_throttled", "ip": ip})
            raise StanzaError.resource_constraint("too many new accounts; try again later")
        try:
            created = await self.accounts.register(username, self.ctx.host, password)
        except ValueError as e:
            raise StanzaError.jid_malformed(str(e)) from None
        if not created:
            raise StanzaError.conflict("that username is taken")               # §3.1
        self.throttle.registered(ip, now, window=opts.window)
        if req.session is not None:
            self.signed_up.add(req.session)
        self.ctx.log.info("registered %s@%s in-band", username, self.ctx.host,
                          extra={"event": "registered", "ip": ip})
        return iq.result(req.stanza)

    def _may_sign_up(self, req: IqRequest) -> tuple[str, float] | None:
        """The invitation the stream presented, if any; <not-allowed/> without one from an
        address outside `allow_from` (another module may open pre-auth IQs to everyone)."""
        invitations = self._invitations()
        token = invitations.token_of(req.session) if invitations is not None else None
        if token is None and not self.allowed(getattr(req.session, "peer_ip", None)):
            raise StanzaError.not_allowed("registration needs an invitation here")
        return token

    def _invitations(self) -> Any:
        from modules.invites import Invitations
        try:
            return self.ctx.service(Invitations)
        except LookupError:
            return None

    def registered(self, req: IqRequest) -> iq.Reply:
        q = iq.empty(ns.REGISTER, "query")
        etree.SubElement(q, _Q + "registered")
        etree.SubElement(q, _Q + "username").text = req.sender.local
        etree.SubElement(q, _Q + "password")
        return iq.result(req.stanza, q)

    async def change(self, req: IqRequest) -> iq.Reply:
        user = req.sender.bare
        assert user.local is not None
        if req.to.local is not None and req.to.bare != user:
            raise StanzaError.forbidden()
        if req.payload.find(_Q + "remove") is not None:
            # §3.2: answer first, then the account's streams close.
            self.ctx.clock.call_later(0, self._delete, user.local)
            return iq.result(req.stanza)
        username, password = self._credentials(req)
        if username != user.local:
            raise StanzaError.bad_request("you can only change your own password")  # §3.3
        if not await self.accounts.set_password(user.local, self.ctx.host, password):
            raise StanzaError.item_not_found()
        return iq.result(req.stanza)

    def _delete(self, username: str) -> None:
        from twisted.internet import defer
        d = defer.Deferred.fromCoroutine(self.accounts.delete(username, self.ctx.host))
        d.addErrback(lambda f: self.ctx.log.error("deleting %s failed: %s", username, f.value))

    def _credentials(self, req: IqRequest) -> tuple[str, str]:
        user_el = req.payload.find(_Q + "username")
        pass_el = req.payload.find(_Q + "password")
        username = (user_el.text or "").strip() if user_el is not None else ""
        password = pass_el.text or "" if pass_el is not None else ""
        if not username or not password:
            raise StanzaError.not_acceptable("username and password are required")
        if len(password) < self.ctx.options.min_password_length:
            raise StanzaError.not_acceptable(
                f"the password needs at least {self.ctx.options.min_password_length} characters")
        return username.lower(), password
