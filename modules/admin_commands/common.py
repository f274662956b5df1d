# tests: tests/modules/test_admin_commands.py
"""What every XEP-0133 command uses: the admin check, forms with FORM_TYPE
http://jabber.org/protocol/admin (§6), and reading account JIDs of this host from a form."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lxml import etree

from modules import adhoc
from stanzas import forms, ns
from stanzas.errors import StanzaError
from stanzas.jid import JID, JIDError
from xmppd.module import ModuleContext

Field = forms.Field


class Admin:
    """The host's admin toolbox for the command modules."""

    def __init__(self, ctx: ModuleContext[Any]) -> None:
        self.ctx = ctx
        self.host = ctx.host

    def allowed(self, asker: JID) -> bool:
        """XEP-0133 §8: only the server's admins (`server.admins`)."""
        return self.ctx.accounts.is_admin(asker)

    def command(self, node: str, name: str, start: adhoc.Step) -> adhoc.Command:
        return adhoc.Command(f"{ns.ADMIN}#{node}", name, start, self.allowed)

    def form(self, title: str, instructions: str, fields: Sequence[Field]) -> etree._Element:
        return forms.build("form", fields, form_type=ns.ADMIN, title=title,
                           instructions=instructions)

    def result(self, fields: Sequence[Field], title: str = "") -> etree._Element:
        return forms.build("result", fields, form_type=ns.ADMIN, title=title)

    def submitted(self, data: adhoc.Input) -> forms.Submitted:
        if data.form is None:
            raise StanzaError.bad_request("the form is missing")
        if data.form.form_type not in (None, ns.ADMIN):
            raise StanzaError.bad_request(f"FORM_TYPE must be {ns.ADMIN}")
        return data.form

    def account(self, value: str, *, full: bool = False) -> JID:
        """An account of this host named in a form (bare, or full where `full`)."""
        try:
            jid = JID.parse(value.strip())
        except JIDError as e:
            raise StanzaError.jid_malformed(f"{value!r}: {e}") from None
        if jid.local is None or (jid.resource is not None and not full):
            raise StanzaError.jid_malformed(f"{value!r} is not an account's JID (user@{self.host})")
        if jid.domain != self.host:
            raise StanzaError.not_acceptable(f"{jid} is not an account of {self.host}")
        return jid

    def accounts(self, form: forms.Submitted, var: str, *, full: bool = False) -> list[JID]:
        values = form.strings(var)
        if not values:
            raise StanzaError.bad_request(f"field {var!r} needs at least one JID")
        return [self.account(v, full=full) for v in values]


def jid_field(var: str, label: str, *, multi: bool = False, values: Sequence[str] = ()) -> Field:
    return Field(var, "jid-multi" if multi else "jid-single", label, values)


def outcome(done: Sequence[str], failed: Sequence[str], what: str) -> adhoc.Done:
    """A completion that says what was done and, with an error note (XEP-0050 §4.4), what not."""
    notes: list[adhoc.Note] = []
    if done:
        notes.append(("info", f"{what}: {', '.join(done)}"))
    if failed:
        notes.append(("error", f"no such account: {', '.join(failed)}"))
    return adhoc.Done(tuple(notes))
