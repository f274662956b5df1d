# tests: tests/modules/test_invites.py
"""The XEP-0401 ad-hoc commands of the server, run by the XEP-0050 framework (modules/adhoc.py):
`urn:xmpp:invite#invite` for this server's users, `urn:xmpp:invite#create-account` for its
admins (the module's `admins`, and `server.admins`).

- `invite` completes at once (XEP-0401 §3.1) with the urn:xmpp:invite#invitation form: uri,
  landing-url, expire. `create-account` answers its form (username, roster-subscription),
  unless the execute already carries a submitted one; submitting it completes the same way
  (§3.3). Listing, <forbidden/> to others, sessions and `cancel` are the framework's.
"""
from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING

from modules.adhoc import Command, CommandsQuery, Done, Input, Stage
from stanzas import forms
from stanzas.delay import stamp
from stanzas.errors import StanzaError
from stanzas.jid import JID

if TYPE_CHECKING:
    from modules.invites.service import Invitations

INVITE = "urn:xmpp:invite#invite"
CREATE = "urn:xmpp:invite#create-account"
FORM = "urn:xmpp:invite#invitation"
NAMES = {INVITE: "Invite user", CREATE: "Create account"}


class Commands:
    def __init__(self, invitations: Invitations, *, users: bool,
                 admins: frozenset[JID]) -> None:
        self.inv = invitations
        self.users = users
        self.admins = admins

    def commands(self, q: CommandsQuery, acc: list[Command]) -> list[Command]:
        """The `adhoc.commands` fold: ours, each for who may run it."""
        return [*acc, Command(INVITE, NAMES[INVITE], self.invite, allowed=self._user),
                Command(CREATE, NAMES[CREATE], self.create, allowed=self._admin)]

    def _user(self, asker: JID) -> bool:
        return self.users and asker.local is not None and \
            asker.domain in self.inv.ctx.local_domains

    def _admin(self, asker: JID) -> bool:
        return asker.bare in self.admins or self.inv.ctx.accounts.is_admin(asker)

    async def invite(self, data: Input) -> Done:
        return await self._completed("roster", str(data.asker.bare), "")

    def create(self, data: Input) -> Stage | Awaitable[Done]:
        if data.form is not None:
            return self.submitted(data)
        return Stage(forms.build("form", [
            forms.Field("username", "text-single", "Username (empty: the invitee chooses)"),
            forms.Field("roster-subscription", "boolean", "Add them to my contacts", ["0"])],
            title="Create an account invitation"), then=self.submitted)

    async def submitted(self, data: Input) -> Done:
        form = data.form
        if form is None:
            raise StanzaError.bad_request("submit the form")
        # with roster-subscription the admin becomes the new account's contact (§3.3)
        inviter = str(data.asker.bare) if form.boolean("roster-subscription", False) else ""
        return await self._completed("account", inviter, form.text("username").strip())

    async def _completed(self, kind: str, inviter: str, username: str) -> Done:
        try:
            invite, links = await self.inv.create(kind, inviter=inviter, username=username)
        except ValueError as e:
            raise StanzaError.not_acceptable(str(e)) from None
        fields = [forms.Field("uri", "text-single", "Invitation URI", [links.uri])]
        if links.landing:
            fields.append(forms.Field("landing-url", "text-single", "Invitation page",
                                      [links.landing]))
        fields.append(forms.Field("expire", "text-single", "Expires",
                                  [stamp(invite.expires_at)]))
        return Done(form=forms.build("result", fields, form_type=FORM))
