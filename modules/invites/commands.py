# tests: tests/modules/test_invites.py
"""The XEP-0401 ad-hoc commands (XEP-0050) of the server: `urn:xmpp:invite#invite` for this
server's users, `urn:xmpp:invite#create-account` for its admins.

- Listed in disco#items of the commands node for those who may run them (XEP-0050 §2.2), each
  node described by disco#info (§2.3: automation/command-node).
- `invite` completes at once (XEP-0401 §3.1) with the urn:xmpp:invite#invitation form: uri,
  landing-url, expire. `create-account` answers its form (username, roster-subscription) in a
  session, unless the execute already carries a submitted form; submitting it completes the
  same way (§3.3). `cancel` ends a session (XEP-0050 §4.3).
- Others get <forbidden/>; an unknown node <item-not-found/>; an unknown session
  <bad-request/> with <bad-sessionid/> (XEP-0050 §4.6).
"""
from __future__ import annotations

import secrets
from collections import OrderedDict
from typing import TYPE_CHECKING

from lxml import etree

from stanzas import forms, iq, ns
from stanzas.delay import stamp
from stanzas.errors import StanzaError
from stanzas.jid import JID
from xmppd.hooks import DiscoQuery
from xmppd.module import IqRequest

if TYPE_CHECKING:
    from modules.invites.service import Invitations

NS = "http://jabber.org/protocol/commands"
INVITE = "urn:xmpp:invite#invite"
CREATE = "urn:xmpp:invite#create-account"
FORM = "urn:xmpp:invite#invitation"
_C = "{%s}" % NS
_E = etree._Element
_MAX_SESSIONS = 1000
NAMES = {INVITE: "Invite user", CREATE: "Create account"}


class Commands:
    def __init__(self, invitations: Invitations, *, users: bool,
                 admins: frozenset[JID]) -> None:
        self.inv = invitations
        self.users = users
        self.admins = admins
        self.sessions: OrderedDict[str, JID] = OrderedDict()

    def allowed(self, sender: JID) -> list[str]:
        nodes = []
        local = sender.local is not None and sender.domain in self.inv.ctx.local_domains
        if self.users and local:
            nodes.append(INVITE)
        if sender.bare in self.admins:
            nodes.append(CREATE)
        return nodes

    # -- discovery (XEP-0050 §2) ---------------------------------------------------------------
    def items(self, q: DiscoQuery, acc: _E | None) -> _E | None:
        if q.node != NS:
            return acc
        out = iq.empty(ns.DISCO_ITEMS, "query")
        out.set("node", NS)
        for node in self.allowed(q.asker):
            etree.SubElement(out, "{%s}item" % ns.DISCO_ITEMS, jid=self.inv.ctx.host,
                             node=node, name=NAMES[node])
        return out

    def info(self, q: DiscoQuery, acc: _E | None) -> _E | None:
        if q.node not in NAMES or q.node not in self.allowed(q.asker):
            return acc
        out = iq.empty(ns.DISCO_INFO, "query")
        out.set("node", q.node)
        etree.SubElement(out, "{%s}identity" % ns.DISCO_INFO, category="automation",
                         type="command-node", name=NAMES[q.node])
        for feature in (NS, ns.DATA_FORMS):
            etree.SubElement(out, "{%s}feature" % ns.DISCO_INFO, var=feature)
        return out

    # -- execution (XEP-0050 §4) ---------------------------------------------------------------
    async def execute(self, req: IqRequest) -> iq.Reply:
        cmd = req.payload
        node = cmd.get("node") or ""
        if node not in NAMES:
            raise StanzaError.item_not_found("no such command")
        if node not in self.allowed(req.sender):
            raise StanzaError.forbidden("you may not run this command")
        action = cmd.get("action") or "execute"
        session = cmd.get("sessionid")
        if session is not None:
            if self.sessions.pop(session, None) != req.sender.bare:
                raise StanzaError("bad-request", "unknown session", app=etree.Element(
                    _C + "bad-sessionid", nsmap={None: NS}))  # type: ignore[dict-item]
        if action == "cancel":
            return self._answer(req, node, session or "", "canceled")
        me = str(req.sender.bare)
        if node == INVITE:
            return await self._completed(req, node, session, "roster", me, "")
        x = forms.find(cmd)
        if x is None and action in ("execute", "next"):
            return self._ask(req, node)
        if x is None:
            raise StanzaError.bad_request("submit the form")
        form = forms.parse_submit(x)
        # with roster-subscription the admin becomes the new account's contact (§3.3)
        inviter = me if form.boolean("roster-subscription", False) else ""
        return await self._completed(req, node, session, "account", inviter,
                                     form.text("username").strip())

    async def _completed(self, req: IqRequest, node: str, session: str | None, kind: str,
                         inviter: str, username: str) -> iq.Reply:
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
        out = self._answer(req, node, session or secrets.token_hex(8), "completed")
        iq.payload(out).append(forms.build("result", fields, form_type=FORM))  # type: ignore[union-attr]
        return out

    def _ask(self, req: IqRequest, node: str) -> iq.Reply:
        session = secrets.token_hex(8)
        self.sessions[session] = req.sender.bare
        while len(self.sessions) > _MAX_SESSIONS:
            self.sessions.popitem(last=False)
        out = self._answer(req, node, session, "executing")
        cmd = iq.payload(out)
        assert cmd is not None
        actions = etree.SubElement(cmd, _C + "actions", execute="complete")
        etree.SubElement(actions, _C + "complete")
        cmd.append(forms.build("form", [
            forms.Field("username", "text-single", "Username (empty: the invitee chooses)"),
            forms.Field("roster-subscription", "boolean", "Add them to my contacts", ["0"])],
            title="Create an account invitation"))
        return out

    def _answer(self, req: IqRequest, node: str, session: str, status: str) -> _E:
        cmd = etree.Element(_C + "command", nsmap={None: NS},  # type: ignore[dict-item]
                            node=node, sessionid=session, status=status)
        return iq.result(req.stanza, cmd)
