# tests: tests/modules/test_push.py, tests/storage/test_push_store.py, tests/integration/test_push_slixmpp.py
"""XEP-0357: Push Notifications — wake a sleeping phone app when something arrives for it.

- `<enable jid node/>` (with an optional publish-options form: the app server's secret) and
  `<disable jid [node]/>` (§5, §6) on the user's own account; enabling the same (jid, node)
  again replaces its options (§5). At most `max_registrations` per account, then
  <policy-violation/>. `urn:xmpp:push:0` is announced on accounts (§4.1).
- What notifies: a chat/normal message with a body, an encrypted payload (OMEMO) or a call
  (XEP-0353 <propose/>), and a subscription request, addressed to the account; a group chat
  message (MUC) in a members-only room the user is a member of, or one that mentions the user
  (their nick or localpart as a word in the body, or a XEP-0372 mention of their JID) —
  whether or not the user is in the room.
- When: only while no session of the account is awake. A session sleeps when its connection is
  gone while XEP-0198 waits to resume it, or when it has been XEP-0352 inactive for
  `inactive_after`; an account without sessions sleeps. (For a group chat: no session of
  the user that is in the room is awake.) The first such event starts a burst; `delay` later,
  if the account still sleeps, one notification per registration carries the whole burst
  (§7: the urn:xmpp:push:summary form: message-count, last-message-sender,
  pending-subscription-count, and last-message-body only with `include_body`). A session that
  wakes meanwhile cancels it.
- Publishing (§7): a pubsub publish from the user's bare JID to the app server (a local
  component, or a remote server over federation), with the stored publish-options. An error
  answer removes that registration (§7.1), unless it is transient (wait-type conditions, an
  unreachable server, no answer within `timeout`) — then `max_errors` in a row do.
Config ([modules.push]):
  delay             duration  default "2 s"    the burst's length before one notification
  inactive_after    duration  default "60 s"   a CSI-inactive session counts as asleep after
  include_body      bool      default false    send the last message's text to the app server
  max_registrations int       default 10       app server registrations per account
  timeout           duration  default "30 s"   wait for the app server's answer
  max_errors        int       default 3        transient errors in a row before removal
Storage: PushStore (storage/push.py).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from modules.csi import CsiService
from stanzas import forms, iq, ns
from stanzas.errors import StanzaError
from stanzas.jid import JID, JIDError
from storage.push import PushRegistration
from xmppd import hooks
from xmppd.hooks import LAST, GroupchatEvent, StanzaEvent, UserEvent
from xmppd.module import IqRequest, IqTimeout, Module, ModuleContext, duration, number

NS = "urn:xmpp:push:0"
SUMMARY = "urn:xmpp:push:summary"
PUBLISH_OPTIONS = "http://jabber.org/protocol/pubsub#publish-options"
_NOTIFYING = ("{eu.siacs.conversations.axolotl}encrypted", "{urn:xmpp:omemo:2}encrypted",
              "{urn:xmpp:jingle-message:0}propose")
_MENTION = "{urn:xmpp:reference:0}reference"
_MESSAGE = "{%s}message" % ns.CLIENT
_PRESENCE = "{%s}presence" % ns.CLIENT
_TRANSIENT = frozenset({"resource-constraint", "internal-server-error", "remote-server-timeout",
                        "remote-server-not-found", "recipient-unavailable"})


@dataclass(frozen=True, slots=True)
class PushOptions:
    delay: float = duration(default="2 s", minimum=0)
    inactive_after: float = duration(default="60 s", minimum=0)
    include_body: bool = False
    max_registrations: int = number(default=10, minimum=1, maximum=100)
    timeout: float = duration(default="30 s", minimum=1)
    max_errors: int = number(default=3, minimum=1, maximum=100)


@dataclass(slots=True)
class Burst:
    """What arrived for a sleeping account since its last notification."""
    messages: int = 0
    subscriptions: int = 0
    sender: str = ""
    body: str = ""
    direct: bool = False            # something for the account: any awake session saw it
    present: set[JID] = field(default_factory=set)   # group chats: the sessions in the room


class PushService:
    """One host's push, for the MUC of another virtual host with members here."""

    def __init__(self, module: Push) -> None:
        self._module = module

    def groupchat(self, user: JID, ev: GroupchatEvent) -> None:
        self._module.note(user, ev.stanza, _present(user, ev))


class Push(Module[PushOptions]):
    name = "push"
    xeps = (357,)
    Options = PushOptions

    def __init__(self, ctx: ModuleContext[PushOptions]) -> None:
        self.ctx = ctx
        self.opts = ctx.options
        self.store = ctx.stores.push
        self.bursts: dict[JID, Burst] = {}
        self.errors: dict[tuple[JID, str, str], int] = {}
        ctx.disco_feature(NS, to="account")
        ctx.iq_set(NS, "enable", self.enable, to="self")
        ctx.iq_set(NS, "disable", self.disable, to="self")
        ctx.hook(hooks.user_inbound, self.inbound, priority=LAST)
        ctx.hook(hooks.groupchat_sent, self.groupchat)
        ctx.hook(hooks.user_deleted, self.forget)
        ctx.provide(PushService(self))

    # -- registrations (§5, §6) --------------------------------------------------------------
    async def enable(self, req: IqRequest) -> iq.Reply:
        service, node = _target(req.payload)
        if not node:
            raise StanzaError.bad_request("a node is needed")
        options: dict[str, list[str]] = {}
        x = forms.find(req.payload)
        if x is not None:
            form = forms.parse_submit(x)
            if form.form_type != PUBLISH_OPTIONS:
                raise StanzaError.bad_request(f"the form must be {PUBLISH_OPTIONS}")
            options = {var: list(values) for var, values in form.values.items()}
        user = req.sender.bare
        assert user.local is not None
        current = await self.store.list(user.domain, user.local)
        if not any(r.service == service and r.node == node for r in current) \
                and len(current) >= self.opts.max_registrations:
            raise StanzaError.policy_violation("too many push registrations")
        await self.store.add(user.domain, user.local, PushRegistration(
            service, node, options, self.ctx.clock.now()))
        self.ctx.log.info("push enabled for %s at %s", user, service)
        return iq.result(req.stanza)

    async def disable(self, req: IqRequest) -> iq.Reply:
        service, node = _target(req.payload)
        user = req.sender.bare
        assert user.local is not None
        await self.store.remove(user.domain, user.local, service, node or None)
        return iq.result(req.stanza)

    def forget(self, ev: UserEvent) -> None:
        self.bursts.pop(ev.user, None)

    # -- what notifies -----------------------------------------------------------------------
    def inbound(self, ev: StanzaEvent) -> None:
        el = ev.stanza
        if el.tag == _PRESENCE and el.get("type") == "subscribe":
            self.note(ev.to.bare, None)
        elif el.tag == _MESSAGE and el.get("type", "normal") in ("chat", "normal"):
            user = ev.to.bare
            # Most messages find a session awake: asked first, as it is the cheaper question.
            if self._wakes_at(user, None) != 0.0 and _notifies(el):
                self.note(user, el)

    def groupchat(self, ev: GroupchatEvent) -> None:
        body = ev.stanza.findtext("{%s}body" % ns.CLIENT) or ""
        mentioned = {r.get("uri", "")[5:] for r in ev.stanza.iter(_MENTION)
                     if r.get("type") == "mention" and r.get("uri", "").startswith("xmpp:")}
        nicks: dict[JID, set[str]] = {}
        for full, nick in ev.occupants:
            nicks.setdefault(full.bare, set()).add(nick)
        for bare, nick in ev.members:
            nicks.setdefault(bare, set()).update({nick} if nick else set())
        members = {bare for bare, _ in ev.members}
        for user, names in nicks.items():
            if user == ev.sender:
                continue
            names.add(user.local or "")
            if (ev.members_only and user in members) or str(user) in mentioned or \
                    any(_said(name, body) for name in names if name):
                self._groupchat_for(user, ev)

    def _groupchat_for(self, user: JID, ev: GroupchatEvent) -> None:
        if user.domain == self.ctx.host:
            self.note(user, ev.stanza, _present(user, ev))
        else:
            other = self.ctx.service_on(user.domain, PushService)
            if other is not None:
                other.groupchat(user, ev)

    def note(self, user: JID, el: etree._Element | None,
             present: frozenset[JID] | None = None) -> None:
        """Something for `user` (`present`: for a group chat, their sessions in the room):
        start or grow a burst unless a session that would have shown it is awake."""
        if user.local is None or self._wakes_at(user, present) == 0.0:
            return
        burst = self.bursts.get(user)
        if burst is None:
            burst = self.bursts[user] = Burst()
            self.ctx.clock.call_later(self.opts.delay, self._due, user)
        if present is None:
            burst.direct = True
        else:
            burst.present.update(present)
        if el is None:
            burst.subscriptions += 1
            return
        burst.messages += 1
        burst.sender = el.get("from") or burst.sender
        burst.body = el.findtext("{%s}body" % ns.CLIENT) or burst.body

    def _wakes_at(self, user: JID, present: frozenset[JID] | None) -> float | None:
        """0.0: a session is awake; else when the last dozing session counts as asleep (None:
        all asleep already). `present`: only these sessions count (a group chat's)."""
        csi = self._csi()
        now = self.ctx.clock.now()
        latest: float | None = None
        for s in self.ctx.sessions.resources(user):
            if not getattr(s, "connected", True) or (present is not None
                                                     and s.jid not in present):
                continue                    # XEP-0198 waits for it: asleep
            since = csi.inactive_since(s) if csi is not None else None
            if since is None:
                return 0.0
            asleep = since + self.opts.inactive_after
            if asleep > now:
                latest = asleep if latest is None else max(latest, asleep)
        return latest

    def _due(self, user: JID) -> None:
        burst = self.bursts.get(user)
        if burst is None:
            return
        wakes = self._wakes_at(user, None if burst.direct else frozenset(burst.present))
        if wakes == 0.0:
            del self.bursts[user]           # it woke up and got them
            return
        if wakes is not None:               # a session still dozes: wait until it sleeps
            self.ctx.clock.call_later(wakes - self.ctx.clock.now(), self._due, user)
            return
        del self.bursts[user]
        self._publish_all(user, burst)

    def _csi(self) -> CsiService | None:
        try:
            return self.ctx.service(CsiService)
        except LookupError:
            return None

    # -- publishing (§7) -------------------------------------------------------------------
    def _publish_all(self, user: JID, burst: Burst) -> None:
        from twisted.internet import defer
        d = defer.Deferred.fromCoroutine(self._notify(user, burst))
        d.addErrback(lambda f: self.ctx.log.warning("push for %s failed: %s", user, f.value))

    async def _notify(self, user: JID, burst: Burst) -> None:
        assert user.local is not None
        for reg in await self.store.list(user.domain, user.local):
            await self._publish(user, reg, burst)

    async def _publish(self, user: JID, reg: PushRegistration, burst: Burst) -> None:
        key = (user, reg.service, reg.node)
        stanza = iq.request("set", to=reg.service, payload=self._pubsub(reg, burst),
                            sender=str(user))
        try:
            await self.ctx.send_iq(stanza, timeout=self.opts.timeout)
        except (StanzaError, IqTimeout) as e:
            condition = e.condition if isinstance(e, StanzaError) else "timeout"
            errors = self.errors[key] = self.errors.get(key, 0) + 1
            if condition in _TRANSIENT or condition == "timeout":
                if errors < self.opts.max_errors:
                    return
            self.errors.pop(key, None)
            assert user.local is not None
            await self.store.remove(user.domain, user.local, reg.service, reg.node)
            self.ctx.log.info("push registration of %s at %s removed: %s", user, reg.service,
                              condition)
            return
        self.errors.pop(key, None)

    def _pubsub(self, reg: PushRegistration, burst: Burst) -> etree._Element:
        summary: list[forms.Field] = [
            forms.Field("message-count", None, values=[str(burst.messages)])]
        if burst.subscriptions:
            summary.append(forms.Field("pending-subscription-count", None,
                                       values=[str(burst.subscriptions)]))
        if burst.sender:
            summary.append(forms.Field("last-message-sender", None, values=[burst.sender]))
        if burst.body and self.opts.include_body:
            summary.append(forms.Field("last-message-body", None, values=[burst.body]))
        pubsub = iq.empty(ns.PUBSUB, "pubsub")
        publish = etree.SubElement(pubsub, "{%s}publish" % ns.PUBSUB, node=reg.node)
        notification = etree.SubElement(etree.SubElement(publish, "{%s}item" % ns.PUBSUB),
                                        "{%s}notification" % NS, nsmap={None: NS})  # type: ignore[dict-item]
        notification.append(forms.build("submit", summary, form_type=SUMMARY))
        if reg.options:
            opts = etree.SubElement(pubsub, "{%s}publish-options" % ns.PUBSUB)
            opts.append(forms.build("submit", [forms.Field(var, None, values=values)
                                               for var, values in reg.options.items()
                                               if var != "FORM_TYPE"],
                                    form_type=PUBLISH_OPTIONS))
        return pubsub


def _target(payload: etree._Element) -> tuple[str, str]:
    try:
        service = JID.parse(payload.get("jid") or "")
    except JIDError:
        raise StanzaError.jid_malformed("jid must be the push service's JID") from None
    return str(service), payload.get("node") or ""


def _notifies(el: etree._Element) -> bool:
    """Worth waking a phone for: a body, an encrypted message or a call."""
    if el.find("{%s}body" % ns.CLIENT) is not None:
        return True
    return any(el.find(tag) is not None for tag in _NOTIFYING)


def _said(name: str, body: str) -> bool:
    return re.search(r"(?<!\w)@?%s(?!\w)" % re.escape(name), body, re.IGNORECASE) is not None


def _present(user: JID, ev: GroupchatEvent) -> frozenset[JID]:
    return frozenset(full for full, _ in ev.occupants if full.bare == user)
