# tests: tests/modules/test_invites.py, tests/integration/test_invites.py
"""Invitations (XEP-0401) and what redeeming one does (XEP-0445, XEP-0379), shared by the
ad-hoc commands, in-band registration (modules/register.py), the web page and `xmppctl`.

- `create(kind, inviter, username, valid)`: a token of 192 random bits (`secrets`), its
  XMPP URI (XEP-0401 §3.1: `xmpp:inviter?roster;preauth=T;ibr=y` for a user's invitation,
  `xmpp:[name@]host?register;preauth=T` for an account invitation) and the landing page URL.
- `sign_up(token, username, password, checked_at)`: registers an account with an invitation,
  once: the token is taken atomically before the account is created and given back if that
  fails (the name was taken; XEP-0445 §4: "single-use tokens MUST NOT be considered used
  until the actual registration has succeeded"). Expiry is checked at `checked_at`, when the
  client presented the token (§4: later steps "MUST NOT be rejected due to token expiry").
  A name reserved by an account invitation can only be registered with that invitation
  (XEP-0401 §5).
- `welcome`: a user's invitation (or an account invitation made by a user) makes inviter and
  invitee contacts with a mutual subscription, pushed to the inviter's roster (XEP-0401 §3.4).
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from stanzas.errors import StanzaError
from stanzas.jid import JID
from storage.invites import Invite, InviteStore
from xmppd.module import SessionKey

if TYPE_CHECKING:
    from xmppd.module import ModuleContext

# XEP-0445: the token a stream presented before registering, and when it was checked.
PREAUTH: SessionKey[tuple[str, float]] = SessionKey("invites.preauth", resumable=False)


@dataclass(frozen=True, slots=True)
class Links:
    uri: str                # xmpp: URI (XEP-0401 §3.1)
    landing: str            # https URL of the landing page; "" if no HTTP listener is known


class Invitations:
    def __init__(self, ctx: ModuleContext[Any], *, lifetime: float, landing_url: str) -> None:
        self.ctx = ctx
        self.store: InviteStore = ctx.stores.invites
        self.lifetime = lifetime
        self.landing_url = landing_url

    # -- making ------------------------------------------------------------------------------
    async def create(self, kind: str, *, inviter: str, username: str = "",
                     valid: float | None = None) -> tuple[Invite, Links]:
        """A new invitation of `kind` ("roster" or "account"); `username` reserves a name.
        Raises ValueError for a name that is not a valid localpart."""
        if username:
            jid = self.ctx.accounts.jid(username, self.ctx.host)
            assert jid.local is not None
            username = jid.local
            if await self.ctx.user_exists(jid):
                raise ValueError(f"{jid} exists already")
        now = self.ctx.clock.now()
        invite = Invite(secrets.token_urlsafe(24), self.ctx.host, kind, inviter, username, now,
                        now + (valid if valid is not None else self.lifetime))
        await self.store.create(invite)
        return invite, self.links(invite)

    def links(self, invite: Invite) -> Links:
        token = invite.token
        if invite.kind == "roster" and invite.inviter:
            uri = f"xmpp:{quote(invite.inviter, safe='@')}?roster;preauth={token};ibr=y"
        else:
            who = f"{quote(invite.username)}@" if invite.username else ""
            uri = f"xmpp:{who}{invite.host}?register;preauth={token}"
        base = self.landing_url.rstrip("/")
        if not base:
            endpoints = self.ctx.http_endpoints()
            base = endpoints[0].base_url + "/invite" if endpoints else ""
        return Links(uri, f"{base}/{token}" if base else "")

    # -- redeeming ---------------------------------------------------------------------------
    @staticmethod
    def token_of(session: Any) -> tuple[str, float] | None:
        """The token a stream presented (XEP-0445 <preauth/>) and when it was checked."""
        return session.get(PREAUTH) if session is not None else None

    async def usable(self, token: str) -> Invite | None:
        """The invitation if it can still be used now."""
        invite = await self.store.get(token)
        if invite is None or not invite.usable(self.ctx.clock.now()) \
                or invite.host not in self.ctx.local_domains:
            return None
        return invite

    async def reserved(self, username: str, token: str | None = None) -> bool:
        """Whether an unused account invitation other than `token` reserves `username`."""
        holder = await self.store.reserved(self.ctx.host, username, self.ctx.clock.now())
        return holder is not None and holder != token

    async def sign_up(self, token: str, username: str, password: str,
                      checked_at: float | None = None) -> JID:
        """Register `username` with the invitation `token` (module docstring); raises
        StanzaError (<item-not-found/> for a token that cannot be used, <conflict/> for a
        taken name, <not-acceptable/> for another name than the invitation's, <jid-malformed/>
        for a bad one)."""
        invite = await self.store.get(token)
        when = checked_at if checked_at is not None else self.ctx.clock.now()
        if invite is None or not invite.usable(when) or invite.host not in self.ctx.local_domains:
            raise StanzaError.item_not_found("this invitation is unknown, used or expired")
        try:
            jid = self.ctx.accounts.jid(username, invite.host)
        except ValueError as e:
            raise StanzaError.jid_malformed(str(e)) from None
        assert jid.local is not None
        if invite.username and jid.local != invite.username:
            raise StanzaError.not_acceptable(f"this invitation is for {invite.username}")
        if await self.reserved(jid.local, token):
            raise StanzaError.conflict("that username is reserved")
        if not await self.store.redeem(token, jid.local, when):
            raise StanzaError.item_not_found("this invitation was used meanwhile")
        try:
            created = await self.ctx.accounts.register(jid.local, invite.host, password)
        except ValueError as e:
            await self.store.release(token)
            raise StanzaError.not_acceptable(str(e)) from None
        except BaseException:
            await self.store.release(token)
            raise
        if not created:
            await self.store.release(token)
            raise StanzaError.conflict("that username is taken")
        self.ctx.log.info("%s registered with an invitation from %s", jid,
                          invite.inviter or "the admin")
        await self.welcome(invite, jid)
        return jid

    async def welcome(self, invite: Invite, user: JID) -> None:
        """Inviter and invitee become contacts (XEP-0401 §3.4; XEP-0379)."""
        if not invite.inviter:
            return
        from modules.roster import RosterService
        from storage.roster import RosterItem
        inviter = JID.parse(invite.inviter)
        for owner, contact in ((inviter, user), (user, inviter)):
            roster = self.ctx.service_on(owner.domain, RosterService)
            if roster is not None:
                await roster.put_item(owner, RosterItem(contact, subscription="both"))
