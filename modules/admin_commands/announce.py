# tests: tests/modules/test_admin_commands.py, tests/integration/test_admin_commands_slixmpp.py
"""XEP-0133 §4.23 announcements to online users, §4.24-4.26 the message of the day.

The message of the day behaves as ejabberd's and Prosody's mod_announce: each change (set or
edit) is a new message of the day with its own id, sent at once to every online user and, to
everyone else, once, with their first available presence after it (hook `session_available`).
Who has seen which id is kept per user, so a user sees each version exactly once however many
resources or logins follow. Announcements are headlines (RFC 6121 §5.2.2: for every online
resource, never stored offline).

On a cluster (docs/CLUSTER.md) each node sends announcements and a new message of the day to
its own sessions, asked by the node that ran the command (`ClusterService.call`), and keeps
the message of the day each change tells it: a user who logged in on another node just before
the command gets it (the request reaches that node after the login), and nobody gets two.
"""
from __future__ import annotations

import json
import secrets
from typing import Any

from lxml import etree
from twisted.internet import defer

from modules import adhoc
from modules.admin_commands.common import Admin, Field
from stanzas import ns
from stanzas.jid import JID
from xmppd.cluster.api import cluster_of
from xmppd.hooks import AvailableEvent

_SEEN = "urn:xmppd:motd"          # key-value namespace: the id of the last MOTD a user got
_SETTING = "motd"                 # host setting: {"id": ..., "text": ...}
_C = "{%s}" % ns.CLIENT


def commands(admin: Admin, motd: MessageOfTheDay) -> list[adhoc.Command]:
    def announce(data: adhoc.Input) -> adhoc.Stage:
        return adhoc.Stage(admin.form(
            "Making an Announcement",
            "Fill out this form to make an announcement to all active users of this service.",
            [Field("subject", "text-single", "Subject"),
             Field("announcement", "text-multi", "Announcement")]), announced)

    async def announced(data: adhoc.Input) -> adhoc.Done:
        form = admin.submitted(data)
        text = form.text("announcement").strip()
        if not text:
            return adhoc.Done((("error", "the announcement is empty"),))
        n = await motd.everywhere("announce", {"text": text,
                                               "subject": form.text("subject").strip()})
        admin.ctx.log.info("admin %s made an announcement to %d sessions", data.asker.bare, n)
        return adhoc.Done((("info", f"sent to {n} online session(s)"),))

    def set_form(title: str, current: str) -> adhoc.Stage:
        return adhoc.Stage(admin.form(title, f"Fill out this form to {title.lower()}.",
                                      [Field("motd", "text-multi", "Message of the day",
                                             current.splitlines() if current else ())]),
                           motd.changed)

    async def edit(data: adhoc.Input) -> adhoc.Stage:
        # §4.25: the form SHOULD include the current message of the day.
        return set_form("Edit the Message of the Day", await motd.text())

    c = admin.command
    return [
        c("announce", "Send an announcement to online users", announce),
        c("set-motd", "Set the message of the day",
          lambda d: set_form("Set the Message of the Day", "")),
        c("edit-motd", "Edit the message of the day", edit),
        c("delete-motd", "Delete the message of the day", motd.deleted),
    ]


def broadcast(admin: Admin, text: str, subject: str, kind: str,
              only: set[JID] | None = None) -> int:
    """A message from the host to every session of its users (or of `only`) bound on this
    node (on a cluster, another node's sessions are that node's: `RemoteSession.node`)."""
    n = 0
    cluster = cluster_of(admin.ctx)
    here = cluster.node if cluster is not None else None
    for user in admin.ctx.sessions.users():
        if user.domain != admin.host or (only is not None and user not in only):
            continue
        for session in admin.ctx.sessions.resources(user):
            if getattr(session, "node", here) != here:
                continue
            admin.ctx.send(message(admin.host, str(session.jid), text, subject, kind))
            n += 1
    return n


def message(host: str, to: str, text: str, subject: str, kind: str) -> etree._Element:
    el = etree.Element(_C + "message", nsmap={None: ns.CLIENT},  # type: ignore[dict-item]
                       type=kind, to=to)
    el.set("from", host)
    if subject:
        etree.SubElement(el, _C + "subject").text = subject
    etree.SubElement(el, _C + "body").text = text
    return el


class MessageOfTheDay:
    """The host's message of the day: stored, versioned, delivered once per user."""

    def __init__(self, admin: Admin) -> None:
        self.admin = admin
        self.ctx = admin.ctx
        self._current: dict[str, str] | None = None
        self._loaded = False
        self._sending: set[JID] = set()         # two resources logging in at once: one copy
        self._changed_at = 0.0                  # when the change this node applied last was made
        self.cluster = cluster_of(self.ctx)
        self._unanswer = self.cluster.answer(
            f"admin.announce.{admin.host}", lambda args: defer.Deferred.fromCoroutine(
                self.here(args[0], args[1]))) if self.cluster is not None else None

    def close(self) -> None:
        if self._unanswer is not None:
            self._unanswer()

    async def everywhere(self, what: str, args: dict[str, Any]) -> int:
        """Do `what` on this node and every other live one; the sessions it reached."""
        n = await self.here(what, args)
        if self.cluster is None:
            return n
        asked = [self.cluster.call(node, f"admin.announce.{self.admin.host}", [what, args])
                 for node in sorted(self.cluster.live()) if node != self.cluster.node]
        for done in asked:
            try:
                n += int(await done or 0)
            except Exception as e:          # that node died meanwhile: its users are gone
                self.ctx.log.warning("announcement not confirmed by a node: %r", e)
        return n

    async def here(self, what: str, args: dict[str, Any]) -> int:
        """This node's part: an announcement, or a new message of the day (or none)."""
        if what == "announce":
            return broadcast(self.admin, args["text"], args["subject"], "headline")
        motd, at = args.get("motd"), float(args.get("at", 0.0))
        if at < self._changed_at:
            return 0                    # a later change got here first (a late request)
        self._changed_at = at
        self._current, self._loaded = motd, True
        if motd is None:
            return 0
        cluster = self.cluster
        online = {u for u in self.ctx.sessions.users() if u.domain == self.admin.host and any(
            s.available and s.priority >= 0
            and (cluster is None or getattr(s, "node", cluster.node) == cluster.node)
            for s in self.ctx.sessions.resources(u))}
        for user in online:
            await self._seen(user, motd["id"])
        return broadcast(self.admin, motd["text"], "Message of the day", "normal", online)

    async def current(self) -> dict[str, str] | None:
        if not self._loaded:
            raw = await self.ctx.stores.settings.get(self.admin.host, _SETTING)
            self._current = json.loads(raw) if raw is not None else None
            self._loaded = True
        return self._current

    async def text(self) -> str:
        found = await self.current()
        return found["text"] if found else ""

    async def changed(self, data: adhoc.Input) -> adhoc.Done:
        """§4.24/§4.25: store a new version, send it to whoever is online now."""
        text = self.admin.submitted(data).text("motd").strip()
        if not text:
            return adhoc.Done((("error", "the message of the day is empty; "
                                         "use delete-motd to remove it"),))
        motd = {"id": secrets.token_hex(8), "text": text}
        await self.ctx.stores.settings.put(self.admin.host, _SETTING, json.dumps(motd).encode(),
                                           self.ctx.clock.now())
        n = await self.everywhere("motd", {"motd": motd, "at": self.ctx.clock.now()})
        self.ctx.log.info("admin %s set the message of the day", data.asker.bare)
        return adhoc.Done((("info", f"message of the day set; sent to {n} online session(s)"),))

    async def deleted(self, data: adhoc.Input) -> adhoc.Done:
        """§4.26: nobody gets it any more."""
        gone = await self.ctx.stores.settings.delete(self.admin.host, _SETTING)
        await self.everywhere("motd", {"motd": None, "at": self.ctx.clock.now()})
        return adhoc.Done((("info", "message of the day deleted" if gone
                            else "there was no message of the day"),))

    def at_login(self, ev: AvailableEvent) -> Any:
        if not ev.initial or (self._loaded and self._current is None):
            return None
        return defer.Deferred.fromCoroutine(self._deliver(ev.session))

    async def _deliver(self, session: Any) -> None:
        motd = await self.current()
        if motd is None:
            return
        user = session.jid.bare
        if user in self._sending:
            return
        self._sending.add(user)
        try:
            seen = await self.ctx.stores.kv.get(user, _SEEN)
            if seen is not None and seen.decode() == motd["id"]:
                return
            await self._seen(user, motd["id"])
        finally:
            self._sending.discard(user)
        self.ctx.send(message(self.admin.host, str(session.jid), motd["text"],
                              "Message of the day", "normal"))

    async def _seen(self, user: JID, motd_id: str) -> None:
        await self.ctx.stores.kv.put(user, _SEEN, motd_id.encode(), self.ctx.clock.now())
