# tests: tests/core/test_accounts.py, tests/integration/test_ctl.py
"""Account operations (create, password, delete, disable, exists), one implementation for
xmppctl, XEP-0077 in-band registration and admin commands: each derives SCRAM credentials the
same way, fires the same hooks (`user_registered`, `user_deleted`), closes the sessions of a
deleted or disabled account and revokes a changed password's FAST tokens (XEP-0484).
`is_admin` answers from `server.admins` (reloadable).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.internet import defer

from stanzas.errors import StreamError
from stanzas.jid import JID, JIDError, nodeprep
from storage.credentials import ScramCredentials
from xmppd import hooks
from xmppd.hooks import UserEvent
from xmppd.sasl import derive_all

if TYPE_CHECKING:
    from xmppd.server import Server


class Accounts:
    def __init__(self, server: Server) -> None:
        self._server = server

    def jid(self, username: str, host: str) -> JID:
        """The prepared bare JID for `username` on our `host`; raises ValueError if invalid."""
        if host not in self._server.hosts:
            raise ValueError(f"{host!r} is not a virtual host of this server")
        try:
            jid = JID.of(nodeprep(username), host)
        except JIDError as e:
            raise ValueError(f"invalid username {username!r}: {e}") from None
        if not jid.local:
            raise ValueError("the username must not be empty")
        return jid

    async def register(self, username: str, host: str, password: str) -> bool:
        """Create an account; False if it exists. Raises ValueError for a bad name/password."""
        jid = self.jid(username, host)
        creds = self._derive(password)
        assert jid.local is not None
        server = self._server
        created = await server.stores.accounts.create(jid.local, host, creds, server.clock.now())
        if created:
            await _settle(server.hosts[host].hooks.run(hooks.user_registered, UserEvent(jid)))
        return created

    async def set_password(self, username: str, host: str, password: str) -> bool:
        """Replace the credentials; False if there is no such account. Every FAST token of the
        account is revoked (XEP-0484: a device logged in with the old password is out)."""
        jid = self.jid(username, host)
        creds = self._derive(password)
        assert jid.local is not None
        stores = self._server.stores
        changed = await stores.accounts.set_credentials(jid.local, host, creds)
        if changed:
            await stores.fast.revoke(host, jid.local)
        return changed

    async def delete(self, username: str, host: str) -> bool:
        """Delete an account and its data; its sessions are closed with <not-authorized/>."""
        jid = self.jid(username, host)
        assert jid.local is not None
        server = self._server
        deleted = await server.stores.accounts.delete(jid.local, host)
        if deleted:
            for s in server.sessions.resources(jid):
                s.close(StreamError.not_authorized("this account was deleted"))
            await _settle(server.hosts[host].hooks.run(hooks.user_deleted, UserEvent(jid)))
        return deleted

    async def set_disabled(self, username: str, host: str, disabled: bool) -> bool:
        """Disable an account (its sessions close, its logins are refused, its data stays:
        XEP-0133 §4.3) or enable it again (§4.4); False if there is no such account."""
        jid = self.jid(username, host)
        assert jid.local is not None
        done = await self._server.stores.accounts.set_disabled(jid.local, host, disabled)
        if done and disabled:
            for s in self._server.sessions.resources(jid):
                s.close(StreamError.not_authorized("this account was disabled"))
        return done

    def is_admin(self, jid: JID) -> bool:
        """Whether the bare JID of `jid` is listed in `server.admins`."""
        return any(JID.parse(a).bare == jid.bare for a in self._server.config.server.admins)

    async def exists(self, jid: JID) -> bool:
        """Whether the bare JID of `jid` is an account of one of our hosts."""
        if jid.local is None or jid.domain not in self._server.hosts:
            return False
        if self._server.sessions.resources(jid.bare):
            return True
        return await self._server.stores.accounts.get(jid.local, jid.domain) is not None

    def _derive(self, password: str) -> dict[str, ScramCredentials]:
        if not password:
            raise ValueError("the password must not be empty")
        return derive_all(password, self._server.config.auth.scram_iterations)


async def _settle(result: bool | defer.Deferred[bool]) -> bool:
    if isinstance(result, defer.Deferred):
        return await result
    return result
