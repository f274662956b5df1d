# tests: tests/modules/test_invites.py, tests/storage/test_invite_store.py, tests/integration/test_invites.py
"""Invitations: XEP-0401 ad-hoc invitation links, XEP-0445 pre-authenticated in-band
registration, and a registration page in the browser — inviting a friend is sharing a link.

- A user runs `urn:xmpp:invite#invite` (XEP-0050 command, commands.py) and gets an xmpp: URI
  and a landing page link that expire after `lifetime`; whoever redeems it gets an account
  here and becomes the inviter's contact (mutual subscription, XEP-0401 §3.4). Admins (`admins`,
  or `xmppctl invite`) make account invitations, optionally for a given name, which is then
  reserved until the invitation expires (§5).
- A client redeems a token in-band (XEP-0445): the `<register xmlns='urn:xmpp:ibr-token:0'/>`
  stream feature, `<preauth xmlns='urn:xmpp:pars:0' token/>` before logging in (an unknown,
  used or expired token: <item-not-found/>), then XEP-0077 registration (modules/register.py)
  on that stream uses the token, whatever register's `allow_from` says.
- A browser redeems it on the landing page /invite/<token> (page.py) of the HTTP listener.
- Every invitation is single-use; used and expired ones are deleted a day later.
Config ([modules.invites]):
  lifetime             duration  default "7 d"  how long an invitation works
  allow_user_invites   bool      default true   users may invite (urn:xmpp:invite#invite)
  admins               list of JIDs  default [] who may create account invitations
  landing_url          string    default ""     the page's base URL ("https://chat.example/invite");
                                                "" = the first HTTP listener's URL + "/invite"
  min_password_length  int       default 8      for accounts made on the page
Storage: InviteStore (storage/invites.py).
"""
from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from modules import adhoc
from modules.invites import commands
from modules.invites.page import InvitePage
from modules.invites.service import PREAUTH, Invitations, Links
from stanzas import iq
from stanzas.errors import StanzaError
from stanzas.jid import JID, JIDError
from xmppd.config import ConfigError
from xmppd.module import IqRequest, Module, ModuleContext, duration, number

__all__ = ["Invitations", "Invites", "InvitesOptions", "Links"]

IBR_TOKEN = "urn:xmpp:ibr-token:0"
PARS = "urn:xmpp:pars:0"
_KEEP = 86400.0             # used and expired invitations are kept this long


@dataclass(frozen=True, slots=True)
class InvitesOptions:
    lifetime: float = duration(default="7 d", minimum=60)
    allow_user_invites: bool = True
    admins: tuple[str, ...] = ()
    landing_url: str = ""
    min_password_length: int = number(default=8, minimum=1, maximum=1024)


class Invites(Module[InvitesOptions]):
    name = "invites"
    xeps = (401, 445)
    depends = ("adhoc",)            # its commands run in the XEP-0050 framework
    Options = InvitesOptions

    def __init__(self, ctx: ModuleContext[InvitesOptions]) -> None:
        self.ctx = ctx
        opts = ctx.options
        try:
            admins = frozenset(JID.parse(a).bare for a in opts.admins)
        except JIDError as e:
            raise ConfigError(f"modules.invites.admins: {e}") from None
        self.invitations = Invitations(ctx, lifetime=opts.lifetime,
                                       landing_url=opts.landing_url)
        cmds = commands.Commands(self.invitations, users=opts.allow_user_invites,
                                 admins=admins)
        ctx.provide(self.invitations)
        ctx.provide(InvitePage(self.invitations, opts.min_password_length))
        ctx.hook(adhoc.commands, cmds.commands)     # run by the XEP-0050 framework
        # XEP-0445: anyone may present a token; modules/register.py decides who registers.
        ctx.stream_feature(lambda stream: etree.Element(
            "{%s}register" % IBR_TOKEN, nsmap={None: IBR_TOKEN}), stage="preauth")  # type: ignore[dict-item]
        ctx.allow_preauth_iq(lambda peer_ip: True)
        ctx.iq_set(PARS, "preauth", self.preauth, to="preauth")
        ctx.clock.looping_call(3600, self.purge)

    async def preauth(self, req: IqRequest) -> iq.Reply:
        """XEP-0445 §4: check the token now; registration on this stream may use it."""
        token = req.payload.get("token") or ""
        if not token or await self.invitations.usable(token) is None:
            raise StanzaError.item_not_found("The provided token is invalid or expired")
        if req.session is not None:
            req.session.set(PREAUTH, (token, self.ctx.clock.now()))
        return iq.result(req.stanza)

    async def purge(self) -> None:
        await self.invitations.store.purge(self.ctx.clock.now() - _KEEP)
