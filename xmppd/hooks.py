# tests: tests/core/test_hooks.py
"""The hooks, each declared once with who fires it, when, run or fold, and what STOP means
(STYLE §3). Payloads are frozen, slotted dataclasses, so a typo is an AttributeError at import.
The machinery (registry, priorities, STOP) is xmppd/hook_registry.py, re-exported here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lxml import etree
from twisted.internet import defer

from stanzas.errors import StanzaError
from stanzas.jid import JID
from xmppd.hook_registry import EARLY as EARLY
from xmppd.hook_registry import FIRST as FIRST
from xmppd.hook_registry import LAST as LAST
from xmppd.hook_registry import LATE as LATE
from xmppd.hook_registry import NORMAL as NORMAL
from xmppd.hook_registry import STOP as STOP
from xmppd.hook_registry import FoldHook as FoldHook
from xmppd.hook_registry import HookRegistry as HookRegistry
from xmppd.hook_registry import RunHook as RunHook
from xmppd.hook_registry import Stop as Stop
from xmppd.hook_registry import summary as summary

# -- payloads ---------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class StanzaEvent:
    """A stanza on its way. `session` is the sending client session, if any; `mutable` says
    whether handlers may rewrite `stanza` (documented per hook). `held` collects work the
    stanza's handling waits for without delaying its delivery (see `hold`)."""
    stanza: etree._Element
    sender: JID
    to: JID
    session: Any = None
    mutable: bool = False
    held: list[Any] | None = None

    def hold(self, work: defer.Deferred[Any]) -> bool:
        """Count the stanza as handled (XEP-0198 `<a h/>` to its sender) only once `work` has
        fired, e.g. the archive commit (DESIGN.md "Hot path"). Delivery does not wait for it.
        False, and a no-op, for stanzas nobody waits for (sent by the server itself); held
        work that fails is logged by the router, other work is the caller's to log."""
        if self.held is None:
            return False
        self.held.append(work)
        return True


@dataclass(frozen=True, slots=True)
class SessionEvent:
    session: Any          # xmppd.sessions.Session


@dataclass(frozen=True, slots=True)
class UserEvent:
    user: JID             # bare


@dataclass(frozen=True, slots=True)
class FeaturesQuery:
    session: Any          # the C2S shell's session, before or after binding
    host: str


# -- the catalogue ----------------------------------------------------------------------------

user_registered: RunHook[UserEvent] = RunHook("user_registered")
"""Fired after an account was created (CLI, XEP-0077 or admin). Cannot be stopped."""

user_deleted: RunHook[UserEvent] = RunHook("user_deleted")
"""Fired after an account was deleted; modules delete the user's data. Cannot be stopped."""

session_bound: RunHook[SessionEvent] = RunHook("session_bound")
"""Fired by the client session (xmppd/listeners/session.py) once a resource is bound
(RFC 6120 §7), before the bind result reaches the client. Cannot be stopped."""

session_closed: RunHook[SessionEvent] = RunHook("session_closed")
"""Fired after a bound session ended, cleanly or not, once it left the session table — unless
another session took its full JID meanwhile (replaced with <conflict/>): then only
`session_ended` fires. Presence goes unavailable here."""

session_ended: RunHook[SessionEvent] = RunHook("session_ended")
"""Fired for every bound session that ends, replaced or not, after `session_closed`. Per-
session state is released here (XEP-0198: what the client did not acknowledge goes to offline
storage). Not fired for a session resumed on a new connection (it lives on). Cannot be
stopped."""


@dataclass(frozen=True, slots=True)
class ServerStopping:
    host: str             # the virtual host whose modules are told


server_stopping: RunHook[ServerStopping] = RunHook("server_stopping")
"""Fired on every host when the server begins to stop, while clients are still connected:
modules say goodbye here (XEP-0045 §11.2: rooms tell their occupants, status 332). Client
streams close after it, then modules stop. Cannot be stopped."""


@dataclass(frozen=True, slots=True)
class ConnectionLost:
    session: Any          # the bound client session whose connection is gone
    clean: bool           # the stream was closed on purpose (not a dead or silent link)


connection_lost: FoldHook[ConnectionLost, bool] = FoldHook("connection_lost")
"""Fold, initial False, when a bound session's connection is gone: True keeps the session bound
without a connection (XEP-0198 waits for resumption, and ends it with `session.end()`);
otherwise the session ends at once."""

message_offline: RunHook[StanzaEvent] = RunHook("message_offline")
"""A chat/normal message for a local user with no available resource (RFC 6121 §8.5.2.2).
A handler that stored it returns STOP, after the commit (the sender's XEP-0198 ack waits for
it); if none does, the sender gets <service-unavailable/>. Also fired by stream management for
the unacknowledged messages of a session that timed out without being resumed (XEP-0198 §4)."""

stanza_in: RunHook[StanzaEvent] = RunHook("stanza_in")
"""Every stanza from a local client session after `from` stamping, before routing.
STOP means a handler took it (blocking, rate limits): it is not routed. Handlers may rewrite
it (`mutable`): server-owned elements a client put in are stripped here (DESIGN.md "Facts":
XEP-0359 stanza-ids by our JIDs, carbons wrappers); MAM `hold`s the sender's archive write."""

presence_in: RunHook[StanzaEvent] = RunHook("presence_in")
"""Presence for the roster and presence modules. `session` is the sending client's session
for presence from a local client (outbound processing: broadcast, directed, subscriptions);
None for presence the server routes to a local user (inbound processing: stamped subscription
stanzas, probes, broadcast copies). STOP means handled; otherwise the router delivers directed
presence."""

nonza_in: RunHook[StanzaEvent] = RunHook("nonza_in")
"""A top-level element outside jabber:client from a bound session (XEP-0198 <r/>, XEP-0352
<active/>). STOP means a module took it; if none does, the stream closes with
<unsupported-stanza-type/>."""

user_inbound: RunHook[StanzaEvent] = RunHook("user_inbound")
"""Fired by the router for every stanza addressed to a local user (bare or full JID) by
someone else, before delivery, offline storage or the user's IQ handlers. STOP drops it; the
handler answers if the spec wants an answer (XEP-0191 §3.5: blocked senders). Handlers may
rewrite it (`mutable`): MAM stamps its XEP-0359 stanza-id (once per message, whatever the
number of deliveries) and `hold`s the recipient's archive write; carbons copies it here."""


@dataclass(frozen=True, slots=True)
class PresenceQuery:
    user: JID             # bare JID whose presence (or last activity) is asked about
    asker: JID            # bare JID asking


may_see_presence: FoldHook[PresenceQuery, bool] = FoldHook("may_see_presence")
"""Fold, initial False: may `asker` see `user`'s presence and last activity? The roster folds
the subscription (True if `asker` has a 'from'/'both' subscription... from `user`'s side);
blocking vetoes with Stop(False)."""

presence_broadcast: RunHook[StanzaEvent] = RunHook("presence_broadcast")
"""Fired by the presence module with a user's available presence before it is broadcast to
contacts and the user's other resources. May rewrite (`mutable`): vCard adds the XEP-0153
avatar hash. STOP is not allowed."""


@dataclass(frozen=True, slots=True)
class UserOffline:
    user: JID             # bare
    status: str           # <status/> of the unavailable presence; "" if none (or disconnected)


user_offline: RunHook[UserOffline] = RunHook("user_offline")
"""Fired by the presence module after a user's *last* available resource went unavailable
(RFC 6121 §4.5.2) or its session ended without a goodbye (§4.5.4: dropped, timed out). The
last module records "last seen" here. Handlers may not stop it."""


@dataclass(frozen=True, slots=True)
class IdleEvent:
    session: Any          # the client connection that has been silent
    idle: float           # seconds since the last byte arrived


c2s_idle: RunHook[IdleEvent] = RunHook("c2s_idle")
"""Fired by the client session when a bound client sent nothing (not even whitespace) for the
host's idle interval (`ModuleContext.on_idle`). The ping module pings, then closes the stream
if no answer comes."""


@dataclass(frozen=True, slots=True)
class CapsChanged:
    session: Any                  # the client session whose advertised features changed
    old: frozenset[str]           # disco#info features known before ("" when none)
    new: frozenset[str]           # features known now (empty: none advertised or not verified)
    initial: bool                 # True at the session's initial presence (RFC 6121 §4.2)


caps_changed: RunHook[CapsChanged] = RunHook("caps_changed")
"""Fired by the caps module (XEP-0115) at a session's initial available presence (`initial`,
with the features already known for its caps, possibly none yet), whenever a later presence or
a verified disco#info answer changes them, and at its unavailable presence (`new` empty). PEP
sends last published items here (XEP-0163 §4.3.2). Cannot be stopped."""


@dataclass(frozen=True, slots=True)
class PepEvent:
    owner: JID                    # bare JID of the account whose node changed
    node: str
    kind: str                     # "publish", "retract", "purge" or "delete"
    item_id: str | None           # the item published or retracted; None for purge/delete
    item: etree._Element | None   # the published <item/> (payload inside); None otherwise
    origin: str                   # "client", or the module that published ("vcard", "bookmarks")


pep_changed: RunHook[PepEvent] = RunHook("pep_changed")
"""Fired by the PEP module after a change to a user's node was stored and notified. XEP-0398
avatar conversion and XEP-0402 bookmark compatibility mirror changes here; `origin` lets them
ignore their own. Cannot be stopped."""


@dataclass(frozen=True, slots=True)
class DiscoQuery:
    user: JID                     # bare JID of the account asked
    asker: JID                    # full JID asking
    node: str | None              # the disco 'node', if any


account_disco_info: FoldHook[DiscoQuery, etree._Element | None] = FoldHook("account_disco_info")
"""Fold by the disco module for disco#info to an existing account (XEP-0030 §3.1). Initial: the
<query/> it built (account/registered and the `account` features) when `node` is None, else
None. Handlers add identities or features to the element (PEP: pubsub/pep), or answer a node
they own with their own <query node=.../>. None at the end: <item-not-found/>."""

account_disco_items: FoldHook[DiscoQuery, etree._Element | None] = FoldHook("account_disco_items")
"""Fold like `account_disco_info` for disco#items (XEP-0030 §4.1): initial an empty <query/>
without `node`; PEP adds the nodes the asker may see (XEP-0163 §6.2) and answers its nodes."""

@dataclass(frozen=True, slots=True)
class VCardEvent:
    user: JID                     # bare
    card: etree._Element          # the <vCard/> the user's client stored (empty: deleted)


vcard_published: RunHook[VCardEvent] = RunHook("vcard_published")
"""Fired by the vCard module after a user's client stored its vCard (XEP-0054 §3.2). PEP
publishes its photo as an XEP-0084 avatar here (XEP-0398 §3.2). Cannot be stopped."""


@dataclass(frozen=True, slots=True)
class PrivateQuery:
    user: JID                     # bare JID whose private XML storage is read or written
    namespace: str                # the namespace of the stored element(s) (XEP-0049)
    elements: tuple[etree._Element, ...]   # for private_set: what the client stores


private_get: FoldHook[PrivateQuery, tuple[etree._Element, ...]] = FoldHook("private_get")
"""Fold by the private module (XEP-0049) on a get; initial: the stored elements. A module that
owns the namespace answers with what the client should see (XEP-0402 compat builds
storage:bookmarks from the PEP node)."""

private_set: RunHook[PrivateQuery] = RunHook("private_set")
"""Fired by the private module after a set was stored (XEP-0049). XEP-0402 compat mirrors
storage:bookmarks into PEP here. Cannot be stopped."""


@dataclass(frozen=True, slots=True)
class AvailableEvent:
    session: Any                  # the client session that sent available presence
    initial: bool                 # its first available presence since binding (RFC 6121 §4.2)


session_available: RunHook[AvailableEvent] = RunHook("session_available")
"""Fired by the presence module after a session's available broadcast presence was handled
(for `initial`, after the presence of the user's other resources reached it). The offline
module delivers stored messages here (XEP-0160 §2: "when the recipient next sends
non-negative available presence"). Cannot be stopped."""

session_resumed: RunHook[SessionEvent] = RunHook("session_resumed")
"""Fired by the stream management module after a client resumed its session on a new
connection (XEP-0198 §5); `session` is the new connection's session, which took over the
bound JID, presence and the resumable `SessionKey` slots of the old one. Per-connection state
resets here (XEP-0352 §5: CSI starts active again). Cannot be stopped."""



host_disco_info: FoldHook[DiscoQuery, etree._Element | StanzaError | None] = \
    FoldHook("host_disco_info")
"""Fold by the disco module for disco#info to a virtual host *with a `node`* (XEP-0030 §3.2;
without a node the host's own features answer). `user` is the host's JID. Initial None; the
module that owns the node answers with its <query node=.../> (XEP-0050: the command list and
each command), or with a StanzaError to refuse (XEP-0050 §2.3: <forbidden/> for a command
the asker may not run). None at the end: <item-not-found/>."""

host_disco_items: FoldHook[DiscoQuery, etree._Element | StanzaError | None] = \
    FoldHook("host_disco_items")
"""Fold like `host_disco_info` for disco#items to a host with a `node` (XEP-0050 §2.2: the
commands node lists the commands the asker may run)."""


@dataclass(frozen=True, slots=True)
class ControlRequest:
    command: str                  # an xmppctl command the core does not answer itself
    host: str                     # the virtual host whose modules are asked


control_command: FoldHook[ControlRequest, list[dict[str, Any]] | None] = \
    FoldHook("control_command")
"""Fold by the admin socket (xmppd/control.py) on every host for a live command that a module
owns (`xmppctl rooms`: the MUC module lists its rooms). Initial None; the owner returns a list
of JSON-ready records (one per room, ...), others return what they got. None on every host:
the command is not available."""


# -- SASL2 / Bind 2 inline features (XEP-0388, XEP-0386), fired by the client session -----------

@dataclass(frozen=True, slots=True)
class InlineQuery:
    stream: Any                   # the client stream (xmppd/c2s.py) being offered SASL2
    host: str


sasl2_inline: FoldHook[InlineQuery, list[etree._Element]] = FoldHook("sasl2_inline")
"""Fold, initial []: elements a module offers inside SASL2's <inline/> (XEP-0388 §2.1):
stream management's <sm/> (XEP-0198 resumption inside <authenticate/>). Must be synchronous."""

bind2_inline: FoldHook[InlineQuery, list[str]] = FoldHook("bind2_inline")
"""Fold, initial []: features a module can enable inside a Bind 2 request, by namespace
(XEP-0386 §2.1 <feature var/>: carbons, CSI, stream management). Must be synchronous."""


@dataclass(frozen=True, slots=True)
class InlineRequest:
    session: Any                  # the client session: authenticated (bound for bind2_enable)
    request: etree._Element       # Bind 2 <bind/>, or XEP-0198 <resume/> in SASL2
    after: list[Any]              # callables the session runs once <success/> is written


bind2_enable: FoldHook[InlineRequest, list[etree._Element]] = FoldHook("bind2_enable")
"""Fold, initial []: fired by the client session right after a Bind 2 bind (XEP-0386 §2.2),
before <success/> is sent: each module enables what `request` asks of it (a child in its
namespace) and adds its answer for <bound/> (XEP-0198 <enabled/> or <failed/>; carbons and
CSI answer nothing). May be async."""

sasl2_resume: FoldHook[InlineRequest, etree._Element | None] = FoldHook("sasl2_resume")
"""Fold, initial None: XEP-0198 resumption asked for inside SASL2 <authenticate/>: stream
management takes the session over (`session.take_over`) and answers <resumed/> (the stanzas to
resend go into `after`), or answers <failed/>; the answer goes into <success/>. May be async."""


# -- group chats, for members who are not there (XEP-0045 + XEP-0357) ---------------------------

@dataclass(frozen=True, slots=True)
class GroupchatEvent:
    room: JID                     # the room's bare JID
    stanza: etree._Element        # the message as occupants got it (from room/nick; no 'to')
    sender: JID                   # the sender's bare JID
    members_only: bool
    members: tuple[tuple[JID, str], ...]       # affiliated users (member and up): bare, nick
    occupants: tuple[tuple[JID, str], ...]     # sessions in the room: full JID, nick


groupchat_sent: RunHook[GroupchatEvent] = RunHook("groupchat_sent")
"""Fired by the MUC module on its host after a groupchat message with a body went to the
room's occupants. Push (XEP-0357) notifies the members of a members-only room, and anyone the
message mentions, whose devices sleep or who are not in the room. Cannot be stopped; handlers
must not change `stanza`."""


@dataclass(frozen=True, slots=True)
class UserDataChanged:
    user: JID                     # bare
    kind: str | None              # what changed ("roster", ...); None: the user's last session
                                  # left the cluster (forget everything kept for it)


user_data_changed: RunHook[UserDataChanged] = RunHook("user_data_changed")
"""Fired by a cluster node (xmppd/cluster/) on every host when another node wrote a user's data of `kind`
(`ClusterService.changed`), or with `kind` None when the user's last session anywhere is gone
from this node's view. Modules drop what they keep in memory for the user (it is read again
when needed). Never fired without a cluster. Cannot be stopped."""


@dataclass(frozen=True, slots=True)
class PlacementChanged:
    live: frozenset[str]          # the live nodes now
    gone: frozenset[str]          # nodes that left since the last change


placement_changed: RunHook[PlacementChanged] = RunHook("placement_changed")
"""Fired by a cluster node on every host when the live set changed: JIDs placed with
`ClusterService.owner` may have moved (MUC rooms leave memory here, their occupants hear
status 332 and join again on the new owner). Cannot be stopped."""
