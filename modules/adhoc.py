# tests: tests/modules/test_adhoc.py, tests/integration/test_admin_commands_slixmpp.py
"""XEP-0050: Ad-Hoc Commands — the framework other modules' commands run in (XEP-0133 service
administration: modules/admin_commands/).

- Discovery (§2): the host announces the commands feature; disco#items on the node
  `http://jabber.org/protocol/commands` lists the commands the asker may run (§2.2: "not
  required to send the same list ... to all requesters"); disco#info on a command's node gives
  identity automation/command-node with the commands and data forms features, <forbidden/>
  to an asker who may not run it (§2.3), <item-not-found/> for an unknown node.
- Execution (§3, §4): a command is a `Command` (node, name, who may run it, and its first
  step). A step returns a `Stage` (a data form to fill in: status executing, with <actions/>
  and a sessionid) or `Done` (status completed, with notes and an optional result form). A
  session remembers the stage it is at and the earlier ones for 'prev'; 'cancel' ends it
  (status canceled). Errors (§4.6): a missing node or an unknown action <bad-request/> +
  <malformed-action/>; an action the stage does not allow <bad-action/>; a missing form
  <bad-payload/>; an unknown or ended sessionid <not-allowed/> + <session-expired/>; sessions
  are per requester (full JID) and expire after `session_timeout`; at most `max_sessions` per
  requester (<not-allowed/> past it).
- Commands are contributed through the `commands` fold hook (declared here, the framework's
  extension point): a module appends its `Command`s; the framework filters by `allowed`.
Not here: the commands themselves.

Config ([modules.adhoc]):
  session_timeout  duration  default "10 min"  an unfinished command session is forgotten
  max_sessions     int       default 10        open sessions per requester
Storage: none (sessions live in memory).
"""
from __future__ import annotations

import secrets
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

from lxml import etree
from twisted.internet import defer

from stanzas import forms, iq, ns
from stanzas.errors import StanzaError
from stanzas.jid import JID
from xmppd import hooks
from xmppd.hooks import DiscoQuery, FoldHook
from xmppd.module import IqRequest, Module, ModuleContext, duration, number

NS = ns.COMMANDS
_C = "{%s}" % NS
_ACTIONS = ("execute", "cancel", "prev", "next", "complete")


@dataclass(frozen=True, slots=True)
class Input:
    """What a step gets: who asks, on which host, the submitted form (None at the start)."""
    asker: JID
    host: str
    form: forms.Submitted | None
    lang: str | None = None


Step = Callable[[Input], "Stage | Done | Awaitable[Stage | Done]"]
Note = tuple[Literal["info", "warn", "error"], str]


@dataclass(frozen=True, slots=True)
class Stage:
    """Ask for `form` (status executing); `then` gets what the requester submits."""
    form: etree._Element
    then: Step
    actions: tuple[str, ...] = ("complete",)      # allowed: "prev", "next", "complete"
    notes: tuple[Note, ...] = ()


@dataclass(frozen=True, slots=True)
class Done:
    """The command completed: notes (an 'error' one if it failed, §4.4) and/or a result form."""
    notes: tuple[Note, ...] = ()
    form: etree._Element | None = None


@dataclass(frozen=True, slots=True)
class Command:
    node: str
    name: str
    start: Step
    allowed: Callable[[JID], bool] = field(default=lambda asker: True)


@dataclass(frozen=True, slots=True)
class CommandsQuery:
    host: str


commands: FoldHook[CommandsQuery, list[Command]] = FoldHook("adhoc_commands")
"""Fold by the adhoc module whenever it needs the host's commands (listing, execution);
initial []. Each command module returns the list with its `Command`s appended."""


@dataclass(frozen=True, slots=True)
class AdhocOptions:
    session_timeout: float = duration(default="10 min", minimum=10)
    max_sessions: int = number(default=10, minimum=1, maximum=1000)


@dataclass(slots=True)
class _Session:
    node: str
    stage: Stage
    earlier: list[Stage]
    timer: Any


class AdHoc(Module[AdhocOptions]):
    name = "adhoc"
    xeps = (50,)
    depends = ("disco",)
    Options = AdhocOptions

    def __init__(self, ctx: ModuleContext[AdhocOptions]) -> None:
        self.ctx = ctx
        self.sessions: dict[tuple[str, str], _Session] = {}
        ctx.disco_feature(NS)
        ctx.iq_set(NS, "command", self.execute, to="host")
        ctx.hook(hooks.host_disco_info, self.node_info)
        ctx.hook(hooks.host_disco_items, self.node_items)

    # -- discovery ---------------------------------------------------------------------------
    async def _commands(self) -> list[Command]:
        found = self.ctx.fold(commands, CommandsQuery(self.ctx.host), [])
        if isinstance(found, defer.Deferred):
            found = await found
        return list(found)

    async def node_items(self, q: DiscoQuery, acc: Any) -> Any:
        if q.node != NS:
            return acc
        items = iq.empty(ns.DISCO_ITEMS, "query")
        items.set("node", NS)
        for cmd in await self._commands():
            if cmd.allowed(q.asker):
                etree.SubElement(items, "{%s}item" % ns.DISCO_ITEMS, jid=self.ctx.host,
                                 node=cmd.node, name=cmd.name)
        return items

    async def node_info(self, q: DiscoQuery, acc: Any) -> Any:
        if q.node == NS:
            return _info(NS, ("automation", "command-list", "Commands"), (ns.COMMANDS,))
        cmd = next((c for c in await self._commands() if c.node == q.node), None)
        if cmd is None:
            return acc
        if not cmd.allowed(q.asker):
            return StanzaError.forbidden()
        return _info(cmd.node, ("automation", "command-node", cmd.name),
                     (ns.COMMANDS, ns.DATA_FORMS))

    # -- execution ---------------------------------------------------------------------------
    async def execute(self, req: IqRequest) -> iq.Reply:
        el = req.payload
        node = el.get("node")
        action = el.get("action") or "execute"
        if not node or action not in _ACTIONS:
            raise _error("bad-request", "malformed-action")
        cmd = next((c for c in await self._commands() if c.node == node), None)
        if cmd is None:
            raise StanzaError.item_not_found("no such command")
        if not cmd.allowed(req.sender):
            raise StanzaError.forbidden("you may not run this command")      # XEP-0133 §5
        sid = el.get("sessionid")
        lang = req.stanza.get("{%s}lang" % ns.XML)
        if sid is None:
            if action == "cancel":
                return self._reply(req, node, None, "canceled")
            x = forms.find(el)      # a first execute may carry its form (XEP-0401 §3.3)
            first = forms.parse_submit(x) if x is not None and x.get("type") == "submit" \
                else None
            return await self._run(req, cmd.start,
                                   Input(req.sender, self.ctx.host, first, lang), node, None)
        key = (str(req.sender), sid)
        session = self.sessions.get(key)
        if session is None or session.node != node:
            raise _error("not-allowed", "session-expired")
        if action == "cancel":
            self._end(key)
            return self._reply(req, node, sid, "canceled")
        stage = session.stage
        if action == "prev":
            if not session.earlier:
                raise _error("bad-request", "bad-action")
            session.stage = session.earlier.pop()
            return self._reply(req, node, sid, "executing", session.stage,
                               back=bool(session.earlier))
        if action != "execute" and action not in stage.actions:
            raise _error("bad-request", "bad-action")
        x = forms.find(el)
        if x is None:
            raise _error("bad-request", "bad-payload")
        if x.get("type") == "cancel":       # §4.4: read as a submission
            x.set("type", "submit")
        return await self._run(req, stage.then,
                               Input(req.sender, self.ctx.host, forms.parse_submit(x), lang),
                               node, sid)

    async def _run(self, req: IqRequest, step: Step, data: Input, node: str,
                   sid: str | None) -> iq.Reply:
        result = step(data)
        outcome = await result if not isinstance(result, (Stage, Done)) else result
        if isinstance(outcome, Done):
            if sid is not None:
                self._end((str(req.sender), sid))
            return self._reply(req, node, sid, "completed", done=outcome)
        if sid is None:
            mine = sum(1 for who, _ in self.sessions if who == str(req.sender))
            if mine >= self.ctx.options.max_sessions:
                raise StanzaError.not_allowed("too many open command sessions")
            sid = secrets.token_hex(8)
            key = (str(req.sender), sid)
            timer = self.ctx.clock.call_later(self.ctx.options.session_timeout, self._end, key)
            self.sessions[key] = _Session(node, outcome, [], timer)
            return self._reply(req, node, sid, "executing", outcome)
        session = self.sessions.get((str(req.sender), sid))
        if session is None:             # expired while the step ran
            raise _error("not-allowed", "session-expired")
        session.earlier.append(session.stage)
        session.stage = outcome
        return self._reply(req, node, sid, "executing", outcome, back=True)

    def _end(self, key: tuple[str, str]) -> None:
        session = self.sessions.pop(key, None)
        if session is not None and session.timer.active():
            session.timer.cancel()

    def _reply(self, req: IqRequest, node: str, sid: str | None, status: str,
               stage: Stage | None = None, done: Done | None = None,
               back: bool = False) -> iq.Reply:
        el = etree.Element(_C + "command", nsmap={None: NS},  # type: ignore[dict-item]
                           node=node, status=status)
        if sid is None and status == "completed":
            sid = secrets.token_hex(8)      # §4.2: the responder SHOULD initialize it
        if sid is not None:
            el.set("sessionid", sid)
        notes: tuple[Note, ...] = ()
        if stage is not None:
            actions = etree.SubElement(el, _C + "actions")
            allowed: list[str] = [a for a in ("next", "complete") if a in stage.actions]
            if back or "prev" in stage.actions:
                allowed.insert(0, "prev")
            # §3.4: 'execute' names the default; without <next/> it must be 'complete'.
            actions.set("execute", "next" if "next" in allowed else "complete")
            for a in allowed:
                etree.SubElement(actions, _C + a)
            notes = stage.notes
        elif done is not None:
            notes = done.notes
        for kind, text in notes:
            etree.SubElement(el, _C + "note", type=kind).text = text
        form = stage.form if stage is not None else done.form if done is not None else None
        if form is not None:
            el.append(form)
        return iq.result(req.stanza, el)


def _error(condition: str, specific: str) -> StanzaError:
    """A stanza error with the XEP-0050 §4.6 condition `specific` next to it."""
    return StanzaError(condition, app=etree.Element(_C + specific,
                                                    nsmap={None: NS}))  # type: ignore[dict-item]


def _info(node: str, identity: tuple[str, str, str], features: tuple[str, ...]) -> etree._Element:
    q = iq.empty(ns.DISCO_INFO, "query")
    q.set("node", node)
    category, kind, name = identity
    etree.SubElement(q, "{%s}identity" % ns.DISCO_INFO, category=category, type=kind, name=name)
    for f in features:
        etree.SubElement(q, "{%s}feature" % ns.DISCO_INFO, var=f)
    return q
