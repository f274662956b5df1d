# tests: tests/modules/test_admin_commands.py, tests/integration/test_admin_commands_slixmpp.py
"""XEP-0133 account commands: add, delete, disable, re-enable, end sessions, change password,
user statistics, and the numbers and lists of registered, disabled and online users."""
from __future__ import annotations

from modules import adhoc
from modules.admin_commands.common import Admin, Field, jid_field, outcome
from modules.roster.service import RosterService
from stanzas.errors import StanzaError, StreamError
from stanzas.jid import JID

_MAX_ITEMS = ("25", "50", "75", "100", "150", "200", "none")     # §4.18


def commands(admin: Admin) -> list[adhoc.Command]:
    u = _Users(admin)
    c = admin.command
    return [
        c("add-user", "Add a user", u.add),
        c("delete-user", "Delete users", u.delete),
        c("disable-user", "Disable users", u.disable),
        c("reenable-user", "Re-enable users", u.reenable),
        c("end-user-session", "End user sessions", u.end_sessions),
        c("change-user-password", "Change a user's password", u.change_password),
        c("user-stats", "Get user statistics (sessions)", u.stats),
        c("get-registered-users-num", "Number of registered users", u.registered_num),
        c("get-disabled-users-num", "Number of disabled users", u.disabled_num),
        c("get-online-users-num", "Number of online users", u.online_num),
        c("get-registered-users-list", "List registered users", u.registered_list),
        c("get-disabled-users-list", "List disabled users", u.disabled_list),
        c("get-online-users-list", "List online users", u.online_list),
    ]


class _Users:
    def __init__(self, admin: Admin) -> None:
        self.a = admin
        self.ctx = admin.ctx
        self.accounts = admin.ctx.accounts

    def _ask(self, title: str, instructions: str, fields: list[Field],
             then: adhoc.Step) -> adhoc.Stage:
        return adhoc.Stage(self.a.form(title, instructions, fields), then)

    def _jids(self, title: str, label: str, then: adhoc.Step) -> adhoc.Stage:
        return self._ask(title, f"Fill out this form to {title.lower()}.",
                         [jid_field("accountjids", label, multi=True)], then)

    # -- §4.1 add, §4.7 change password ------------------------------------------------------
    def add(self, data: adhoc.Input) -> adhoc.Stage:
        return self._ask("Adding a User", "Fill out this form to add a user.", [
            jid_field("accountjid", "The Jabber ID for the account to be added"),
            Field("password", "text-private", "The password for this account"),
            Field("password-verify", "text-private", "Retype password"),
        ], self._added)

    async def _added(self, data: adhoc.Input) -> adhoc.Done:
        form = self.a.submitted(data)
        jid = self.a.account(form.one("accountjid"))
        password = form.text("password")
        if not password:
            raise StanzaError.not_acceptable("a password is needed")
        verify = form.text("password-verify")
        if verify and verify != password:           # left blank: not asked to verify
            raise StanzaError.not_acceptable("the two passwords differ")
        assert jid.local is not None
        if not await self.accounts.register(jid.local, jid.domain, password):
            raise StanzaError.conflict(f"{jid} already exists")            # §5
        self.ctx.log.info("admin %s added %s", data.asker.bare, jid)
        return adhoc.Done((("info", f"added {jid}"),))

    def change_password(self, data: adhoc.Input) -> adhoc.Stage:
        return self._ask("Changing a User Password",
                         "Fill out this form to change a user's password.", [
                             jid_field("accountjid", "The Jabber ID for this account"),
                             Field("password", "text-private", "The password for this account"),
                         ], self._password_changed)

    async def _password_changed(self, data: adhoc.Input) -> adhoc.Done:
        form = self.a.submitted(data)
        jid = self.a.account(form.one("accountjid"))
        password = form.text("password")
        if not password:
            raise StanzaError.not_acceptable("a password is needed")
        assert jid.local is not None
        if not await self.accounts.set_password(jid.local, jid.domain, password):
            return outcome([], [str(jid)], "")
        self.ctx.log.info("admin %s changed the password of %s", data.asker.bare, jid)
        return adhoc.Done((("info", f"password changed for {jid}"),))

    # -- §4.2 delete, §4.3 disable, §4.4 re-enable ------------------------------------------
    def delete(self, data: adhoc.Input) -> adhoc.Stage:
        return self._jids("Deleting a User", "The Jabber ID(s) to delete", self._deleted)

    async def _deleted(self, data: adhoc.Input) -> adhoc.Done:
        done: list[str] = []
        failed: list[str] = []
        for jid in self.a.accounts(self.a.submitted(data), "accountjids"):
            assert jid.local is not None
            ok = await self.accounts.delete(jid.local, jid.domain)
            (done if ok else failed).append(str(jid))
        self.ctx.log.info("admin %s deleted %s", data.asker.bare, done)
        return outcome(done, failed, "deleted")

    def disable(self, data: adhoc.Input) -> adhoc.Stage:
        return self._jids("Disabling a User", "The Jabber ID(s) to disable",
                          lambda d: self._flagged(d, True))

    def reenable(self, data: adhoc.Input) -> adhoc.Stage:
        return self._jids("Re-Enable a User", "The Jabber ID(s) to re-enable",
                          lambda d: self._flagged(d, False))

    async def _flagged(self, data: adhoc.Input, disabled: bool) -> adhoc.Done:
        done: list[str] = []
        failed: list[str] = []
        for jid in self.a.accounts(self.a.submitted(data), "accountjids"):
            assert jid.local is not None
            ok = await self.accounts.set_disabled(jid.local, jid.domain, disabled)
            (done if ok else failed).append(str(jid))
        what = "disabled" if disabled else "re-enabled"
        self.ctx.log.info("admin %s %s %s", data.asker.bare, what, done)
        return outcome(done, failed, what)

    # -- §4.5 end sessions, §4.10 statistics -------------------------------------------------
    def end_sessions(self, data: adhoc.Input) -> adhoc.Stage:
        return self._jids("Ending a User Session", "The Jabber ID(s) for which to end sessions",
                          self._ended)

    def _ended(self, data: adhoc.Input) -> adhoc.Done:
        ended, none = [], []
        for jid in self.a.accounts(self.a.submitted(data), "accountjids", full=True):
            # §4.5: a bare JID ends all of the user's sessions, a full JID only that one.
            found = self.ctx.sessions.resources(jid.bare)
            targets = [s for s in found if jid.resource is None or s.jid == jid]
            for s in targets:
                s.close(StreamError.policy_violation("your session was ended by an administrator"))
                ended.append(str(s.jid))
            if not targets:
                none.append(str(jid))
        notes: list[adhoc.Note] = [("info", f"ended: {', '.join(ended)}")] if ended else []
        if none:
            notes.append(("warn", f"no session: {', '.join(none)}"))
        return adhoc.Done(tuple(notes))

    def stats(self, data: adhoc.Input) -> adhoc.Stage:
        return self._ask("Get User Statistics", "Fill out this form to gather user statistics.",
                         [jid_field("accountjid", "The Jabber ID for statistics")], self._stats)

    async def _stats(self, data: adhoc.Input) -> adhoc.Done:
        jid = self.a.account(self.a.submitted(data).one("accountjid"))
        if not await self.ctx.user_exists(jid):
            return outcome([], [str(jid)], "")
        sessions = self.ctx.sessions.resources(jid)
        fields = [jid_field("accountjid", "The Jabber ID", values=[str(jid)]),
                  Field("onlineresources", "text-multi", "Online resources",
                        [str(s.jid) for s in sessions]),
                  Field("ipaddresses", "text-multi", "IP addresses",
                        sorted({s.peer_ip for s in sessions if s.peer_ip}))]
        try:
            roster = self.ctx.service(RosterService)
        except LookupError:
            roster = None
        if roster is not None:
            fields.append(Field("rostersize", "text-single", "Roster size",
                                [str(len(await roster.get(jid)))]))
        return adhoc.Done(form=self.a.result(fields, "User statistics"))

    # -- §4.13-4.20 numbers and lists ---------------------------------------------------------
    def _online(self) -> list[JID]:
        return sorted((u for u in self.ctx.sessions.users() if u.domain == self.a.host), key=str)

    async def registered_num(self, data: adhoc.Input) -> adhoc.Done:
        n = await self.ctx.stores.accounts.count(self.a.host)
        return self._number("registeredusersnum", "The number of registered users", n)

    async def disabled_num(self, data: adhoc.Input) -> adhoc.Done:
        n = len(await self.ctx.stores.accounts.disabled_users(self.a.host))
        return self._number("disabledusersnum", "The number of disabled users", n)

    def online_num(self, data: adhoc.Input) -> adhoc.Done:
        return self._number("onlineusersnum", "The number of online users", len(self._online()))

    def _number(self, var: str, label: str, n: int) -> adhoc.Done:
        return adhoc.Done(form=self.a.result([Field(var, "text-single", label, [str(n)])]))

    def registered_list(self, data: adhoc.Input) -> adhoc.Stage:
        return self._list_form("registered", self._registered)

    def disabled_list(self, data: adhoc.Input) -> adhoc.Stage:
        return self._list_form("disabled", self._disabled)

    def online_list(self, data: adhoc.Input) -> adhoc.Stage:
        return self._list_form("online", self._online_list)

    def _list_form(self, which: str, then: adhoc.Step) -> adhoc.Stage:
        return self._ask(f"Requesting List of {which.title()} Users",
                         f"Fill out this form to request the {which} users of this service.",
                         [Field("max_items", "list-single", "Maximum number of items to show",
                                ("25",), options=[("", v) for v in _MAX_ITEMS])], then)

    async def _registered(self, data: adhoc.Input) -> adhoc.Done:
        names = await self.ctx.stores.accounts.list_users(self.a.host)
        return self._jid_list(data, "registereduserjids", "The list of all users",
                              [f"{n}@{self.a.host}" for n in names])

    async def _disabled(self, data: adhoc.Input) -> adhoc.Done:
        names = await self.ctx.stores.accounts.disabled_users(self.a.host)
        return self._jid_list(data, "disableduserjids", "The list of all disabled users",
                              [f"{n}@{self.a.host}" for n in names])

    def _online_list(self, data: adhoc.Input) -> adhoc.Done:
        return self._jid_list(data, "onlineuserjids", "The list of all online users",
                              [str(u) for u in self._online()])

    def _jid_list(self, data: adhoc.Input, var: str, label: str, jids: list[str]) -> adhoc.Done:
        form = self.a.submitted(data)
        limit = form.choice("max_items", "none", _MAX_ITEMS)
        shown = jids if limit == "none" else jids[:int(limit)]
        notes: tuple[adhoc.Note, ...] = ()
        if len(shown) < len(jids):
            notes = (("info", f"{len(shown)} of {len(jids)} shown"),)
        return adhoc.Done(notes, self.a.result([jid_field(var, label, multi=True, values=shown)]))
