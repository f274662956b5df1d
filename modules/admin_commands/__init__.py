# tests: tests/modules/test_admin_commands.py, tests/integration/test_admin_commands_slixmpp.py
"""XEP-0133: Service Administration — the server's admins manage it from any client with
ad-hoc commands (XEP-0050, modules/adhoc.py): Gajim's "Execute command" window, Psi, Profanity.

- Who: the bare JIDs in `server.admins` (reloadable); everyone else gets <forbidden/> (§5) and
  sees no commands. Commands go to the virtual host they act on, for that host's accounts.
- Accounts (users.py): add (§4.1), delete (§4.2), disable (§4.3: sessions end, logins are
  refused, data stays) and re-enable (§4.4), end sessions (§4.5: all of a bare JID's, or one
  full JID's), change password (§4.7), user statistics (§4.10: online resources and their
  addresses, roster size), numbers (§4.13-4.15) and lists (§4.18-4.20) of registered,
  disabled and online users.
- Announcements (announce.py): to every online user (§4.23, a headline from the host), and the
  message of the day (§4.24-4.26, mod_announce's behaviour): set or edit sends it now to the
  online users, and to everyone else once, at their next login; each change is a new message
  of the day, sent once per user; delete stops it.
- Registration (lists.py): edit the in-band registration allow list ("whitelist", §4.12) and
  deny list ("blacklist", §4.11) of modules/register.py — IP addresses or networks, stored, so
  they survive a restart. Offered only where the register module runs.
Not here: the command framework (modules/adhoc.py), account operations (xmppd/accounts.py).

Config ([modules.admin_commands]): none (admins are `server.admins`).
Storage: accounts; host settings "motd"; per-user "urn:xmppd:motd" in the key-value store.
"""
from __future__ import annotations

from typing import Any

from modules import adhoc
from modules.admin_commands import announce, lists, users
from modules.admin_commands.common import Admin
from modules.register import RegistrationPolicy
from stanzas.jid import JID
from xmppd import hooks
from xmppd.module import Module, ModuleContext, NoOptions


class AdminCommands(Module[NoOptions]):
    name = "admin_commands"
    xeps = (133,)
    depends = ("adhoc",)

    def __init__(self, ctx: ModuleContext[NoOptions]) -> None:
        self.ctx = ctx
        self.admin = Admin(ctx)
        self.motd = announce.MessageOfTheDay(self.admin)
        self.commands = users.commands(self.admin) + announce.commands(self.admin, self.motd)
        ctx.hook(adhoc.commands, self.contribute)
        ctx.hook(hooks.session_available, self.motd.at_login)

    async def stop(self) -> None:
        self.motd.close()

    def contribute(self, q: adhoc.CommandsQuery, found: list[adhoc.Command]) -> list[Any]:
        policy = self._policy()
        extra = lists.commands(self.admin, policy) if policy is not None else []
        return [*found, *self.commands, *extra]

    def _policy(self) -> RegistrationPolicy | None:
        try:
            return self.ctx.service(RegistrationPolicy)
        except LookupError:
            return None

    def is_admin(self, jid: JID) -> bool:
        return self.ctx.accounts.is_admin(jid)
