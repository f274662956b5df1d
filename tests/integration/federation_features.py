# tests: tests/integration/test_federation_xmppd.py, tests/integration/test_federation_prosody.py, tests/integration/test_federation_ejabberd.py
"""Federation checks for the features users reach through a contact on another server (issue
15 §2): vCards, last activity, PEP notifications, upload links, invitations, and presence
probes after a restart. Each check takes fresh accounts from each side (`Side.take()`), so
no check depends on what another one left behind."""
from __future__ import annotations

import asyncio
import secrets
import sys
from typing import Any

from slixmpp.exceptions import IqError

from tests.integration.federation_checks import Client, Side, _presence_from

NICK = "http://jabber.org/protocol/nick"
EVENT = "http://jabber.org/protocol/pubsub#event"


async def friends(a: Client, b: Client) -> None:
    """A mutual subscription across the federation; done when each roster says 'both' and
    each side has the other's presence (slixmpp approves and subscribes back on its own)."""
    done = [_pushed_both(a, b.boundjid.bare), _pushed_both(b, a.boundjid.bare)]
    for c in (a, b):
        await c.get_roster(timeout=20)      # interested in roster pushes (RFC 6121 §2.1.6)
    a.send_presence_subscription(pto=b.boundjid.bare)
    await asyncio.wait_for(asyncio.gather(*done), 30)
    await _presence_from(a, b.boundjid.bare, 30)
    await _presence_from(b, a.boundjid.bare, 30)


def _pushed_both(client: Client, contact: str) -> asyncio.Future[None]:
    found: asyncio.Future[None] = asyncio.get_event_loop().create_future()
    path = "{jabber:iq:roster}query/{jabber:iq:roster}item"

    def watch(stanza: Any) -> Any:
        if stanza.name == "iq" and stanza["type"] == "set" and not found.done():
            for item in stanza.xml.findall(path):
                if item.get("jid") == contact and item.get("subscription") == "both":
                    found.set_result(None)
        return stanza
    client.add_filter("in", watch)
    return found


# -- XEP-0054 vCards --------------------------------------------------------------------
async def vcards_both_ways(ours: Side, theirs: Side) -> None:
    """Each side publishes a vCard; the other fetches it by bare JID (XEP-0054 §3.3: the
    user's server answers)."""
    a = await ours.client(ours.take(), plugins=("xep_0054",)).login()
    b = await theirs.client(theirs.take(), plugins=("xep_0054",)).login()
    try:
        for owner, reader in ((a, b), (b, a)):
            card = owner.plugin["xep_0054"].make_vcard()
            card["FN"] = f"{owner.boundjid.user} of {owner.boundjid.domain}"
            card["NICKNAME"] = owner.boundjid.user
            await owner.plugin["xep_0054"].publish_vcard(card, timeout=20)
            got = await reader.plugin["xep_0054"].get_vcard(owner.boundjid.bare, timeout=20)
            assert got["vcard_temp"]["FN"] == card["FN"], got
            assert str(got["from"]) == owner.boundjid.bare, got
    finally:
        await a.stop()
        await b.stop()


# -- XEP-0012 last activity -------------------------------------------------------------
async def last_activity_both_ways(ours: Side, theirs: Side) -> None:
    """A contact's 'last seen' across the federation, each way, with the status text of the
    goodbye; someone without a subscription gets <forbidden/> (XEP-0012 §3, §8)."""
    a = await ours.client(ours.take(), plugins=("xep_0012",)).login()
    b = await theirs.client(theirs.take(), plugins=("xep_0012",)).login()
    stranger = await theirs.client(theirs.take(), plugins=("xep_0012",)).login()
    try:
        await friends(a, b)
        b = await _leave_and_ask(b, theirs, asker=a)
        a = await _leave_and_ask(a, ours, asker=b)
        if ours.server.name == "xmppd":
            # ours answers for its users: a remote stranger may not see a's presence
            try:
                await stranger.plugin["xep_0012"].get_last_activity(a.boundjid.bare,
                                                                     timeout=20)
                raise AssertionError("a stranger saw last activity")
            except IqError as e:
                assert e.condition == "forbidden", e.iq
    finally:
        for c in (a, b, stranger):
            await c.stop()


async def _leave_and_ask(leaving: Client, side: Side, asker: Client) -> Client:
    """`leaving` says goodbye with a status and goes; `asker` sees both; `leaving` comes back
    (the returned client)."""
    user = leaving.boundjid.user
    status = f"{user} went fishing"
    leaving.send_presence(ptype="unavailable", pstatus=status)
    await leaving.stop()
    got = await _last_seen(asker, leaving.boundjid.bare, status)
    assert int(got["last_activity"]["seconds"]) < 120, got
    return await side.client(user, plugins=("xep_0012",)).login()


async def _last_seen(asker: Client, bare: str, status: str) -> Any:
    """The last activity of `bare` once its server has the goodbye (it may still be taking
    the stream down when the first answer comes)."""
    for _ in range(50):
        got = await asker.plugin["xep_0012"].get_last_activity(bare, timeout=20)
        if got["last_activity"]["status"] == status:
            return got
        await asyncio.sleep(0.2)
    raise AssertionError(f"no last activity with {status!r} for {bare}: {got}")


# -- XEP-0163 PEP -----------------------------------------------------------------------
class PepClient(Client):
    """Entity caps (XEP-0115) with '+notify' for the nickname node (XEP-0172), registered
    before the initial presence, as Conversations and Gajim do; queues nick notifications."""

    def __init__(self, jid: str, password: str, address: str) -> None:
        super().__init__(jid, password, address, ("xep_0004", "xep_0060", "xep_0115",
                                                  "xep_0163", "xep_0172"))
        self.nicks: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self.add_event_handler("user_nick_publish", self._nick)

    def _started(self, _: Any) -> None:
        async def begin() -> None:
            self.plugin["xep_0163"].add_interest(NICK)
            await self.plugin["xep_0115"].update_caps(broadcast=False)
            self.send_presence()
            if not self._ready.done():
                self._ready.set_result(True)
        asyncio.ensure_future(begin())

    def _nick(self, msg: Any) -> None:
        nick = msg.xml.find(f"{{{EVENT}}}event/{{{EVENT}}}items/{{{EVENT}}}item/{{{NICK}}}nick")
        if nick is not None:
            self.nicks.put_nowait((str(msg["from"]), nick.text or ""))

    async def nick_from(self, bare: str, nick: str, timeout: float = 30.0) -> None:
        async def find() -> None:
            while True:
                got = await self.nicks.get()
                if got == (bare, nick):
                    return
        await asyncio.wait_for(find(), timeout)


def _pep_client(side: Side, user: str, resource: str = "pep") -> PepClient:
    return PepClient(f"{user}@{side.server.domain}/{resource}", side.server.users[user],
                     side.server.address)


async def pep_both_ways(ours: Side, theirs: Side) -> None:
    """Contacts on both servers with '+notify' caps for the nickname node: each one's publish
    reaches the other (XEP-0163 §4.3); a contact coming back online gets the last published
    nick (§4.3.2)."""
    ua, ub = ours.take(), theirs.take()
    a, b = await _pep_client(ours, ua).login(), await _pep_client(theirs, ub).login()
    try:
        await friends(a, b)
        for publisher, reader, nick in ((a, b, "Ann from afar"), (b, a, "Bob from afar")):
            await publisher.plugin["xep_0172"].publish_nick(nick, timeout=20)
            await reader.nick_from(publisher.boundjid.bare, nick)
        # each comes back with a new resource while the other stays online (ejabberd
        # learns a remote resource's caps only through a session of the owner)
        await b.stop()
        b = await _pep_client(theirs, ub, "again").login()
        await b.nick_from(a.boundjid.bare, "Ann from afar")
        await a.stop()
        a = await _pep_client(ours, ua, "again").login()
        await a.nick_from(b.boundjid.bare, "Bob from afar")
    finally:
        await a.stop()
        await b.stop()


# -- XEP-0363 upload links --------------------------------------------------------------
async def upload_link_across(sender_side: Side, reader_side: Side) -> None:
    """A file uploaded to the sender's server (XEP-0363) and sent as a link (XEP-0066) to a
    contact on the other server: the link arrives whole and a plain HTTP GET of it, made
    where the reader's server resolves names, returns the file."""
    sender = await sender_side.client(sender_side.take(), plugins=("xep_0066", "xep_0363"))\
        .login()
    reader = await reader_side.client(reader_side.take(), plugins=("xep_0066",)).login()
    lab = sender_side.server.lab
    try:
        service = await sender.plugin["xep_0363"].find_upload_service(timeout=20)
        assert service is not None, f"no upload service at {sender_side.server.domain}"
        data = secrets.token_bytes(3000)
        slot = await sender.plugin["xep_0363"].request_slot(
            service["from"], "photo.jpg", len(data), "image/jpeg", timeout=20)
        put_url = slot["http_upload_slot"]["put"]["url"]
        headers = [f"{h['name']}: {h['value']}" for h in slot["http_upload_slot"]["put"]["headers"]]
        get_url = slot["http_upload_slot"]["get"]["url"]
        status, _ = await lab_http(lab, "PUT", put_url, data,
                                   ["Content-Type: image/jpeg", *headers])
        assert status in (200, 201), (status, put_url)
        msg = sender.make_message(mto=reader.boundjid.full, mbody=get_url, mtype="chat")
        msg["oob"]["url"] = get_url
        msg.send()
        got = await reader.chat()
        assert (got["body"], got["oob"]["url"]) == (get_url, get_url), got
        status, body = await lab_http(reader_side.server.lab, "GET", got["oob"]["url"])
        assert (status, body) == (200, data), (status, len(body), get_url)
    finally:
        await sender.stop()
        await reader.stop()


_HTTP = """
import sys, urllib.request, urllib.error
method, url = sys.argv[1], sys.argv[2]
req = urllib.request.Request(url, data=sys.stdin.buffer.read() if method == 'PUT' else None,
                             method=method)
for h in sys.argv[3:]:
    k, v = h.split(': ', 1)
    req.add_header(k, v)
try:
    with urllib.request.urlopen(req, timeout=20) as r:
        status, body = r.status, r.read()
except urllib.error.HTTPError as e:
    status, body = e.code, b''
sys.stdout.buffer.write(str(status).encode() + b'\\n' + body)
"""


async def lab_http(lab: Any, method: str, url: str, data: bytes = b"",
                   headers: list[str] | None = None) -> tuple[int, bytes]:
    """A plain HTTP request from inside the lab (its DNS, like the servers): (status, body)."""
    proc = await asyncio.create_subprocess_exec(
        *lab.wrap([sys.executable, "-c", _HTTP, method, url, *(headers or [])]),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=lab.env())
    out, err = await asyncio.wait_for(proc.communicate(data), 40)
    assert proc.returncode == 0, err.decode(errors="replace")
    status, _, body = out.partition(b"\n")
    return int(status), body


# -- invitations ------------------------------------------------------------------------
async def invitations_across(host: Side, guest: Side, room_name: str) -> None:
    """A user of `host` invites a user of `guest` to a room on `host`'s MUC service, once
    mediated by the room (XEP-0045 §7.8.2) and once directly (XEP-0249); the invitee gets
    both and joins."""
    owner = await host.client(host.take(), "muc", plugins=("xep_0045", "xep_0249")).login()
    invitee = await guest.client(guest.take(), "muc", plugins=("xep_0045", "xep_0249")).login()
    mediated: asyncio.Queue[Any] = asyncio.Queue()
    direct: asyncio.Queue[Any] = asyncio.Queue()
    invitee.add_event_handler("groupchat_invite", mediated.put_nowait)
    invitee.add_event_handler("groupchat_direct_invite", direct.put_nowait)
    room = f"{room_name}@{host.server.muc}"
    try:
        muc = owner.plugin["xep_0045"]
        pres, _, _, _ = await muc.join_muc_wait(room, "owner", timeout=20)
        if 201 in pres["muc"]["status_codes"]:
            form = await muc.get_room_config(room, timeout=20)
            await muc.set_room_config(room, form, timeout=20)
        muc.invite(room, invitee.boundjid.bare, "come in")
        got = await asyncio.wait_for(mediated.get(), 30)
        assert str(got["from"]) == room, got
        # §7.8.2: the inviter's bare, full or occupant JID (semi-anonymous rooms)
        assert str(got["muc"]["invite"]["from"]) in (
            owner.boundjid.bare, owner.boundjid.full, f"{room}/owner"), got
        assert got["muc"]["invite"]["reason"] == "come in", got
        owner.plugin["xep_0249"].send_invitation(invitee.boundjid.full, room,
                                                  reason="directly")
        got = await asyncio.wait_for(_from_inviter(direct, owner.boundjid.full), 30)
        assert str(got["groupchat_invite"]["jid"]) == room, got
        await invitee.plugin["xep_0045"].join_muc_wait(room, "invited", timeout=30)
    finally:
        await owner.stop()
        await invitee.stop()


async def _from_inviter(invites: asyncio.Queue[Any], inviter: str) -> Any:
    """The next direct invitation from `inviter` (Prosody adds a XEP-0249 copy to the room's
    mediated ones, which slixmpp also reports as direct)."""
    while True:
        got = await invites.get()
        if str(got["from"]) == inviter:
            return got


# -- presence probes --------------------------------------------------------------------
async def probes_after_restart(ours: Side, theirs: Side, restarted: Side) -> None:
    """Contacts on both servers; `restarted`'s server restarts; its user logs in again and
    sees the other contact online (its server probes the remote contact, RFC 6121 §4.3),
    and the other contact sees them come back."""
    ua, ub = ours.take(), theirs.take()
    a, b = await ours.client(ua).login(), await theirs.client(ub).login()
    try:
        await friends(a, b)
        stays, leaves, user = (b, a, ua) if restarted is ours else (a, b, ub)
        await leaves.stop()
        restarted.server.restart()
        back = await restarted.client(user, "back").login()
        if leaves is a:
            a = back
        else:
            b = back
        await _presence_of(back, stays.boundjid.full)     # the probe's answer
        await _presence_of(stays, back.boundjid.full)     # the broadcast
    finally:
        await a.stop()
        await b.stop()


async def _presence_of(client: Client, full: str, timeout: float = 60.0) -> None:
    async def find() -> None:
        while str((await client.presences.get())["from"]) != full:
            pass
    await asyncio.wait_for(find(), timeout)


# -- carbons, markers, archive, blocking (our server's side) ----------------------------
async def carbons_markers_archive(ours: Side, theirs: Side) -> None:
    """Our user on two devices chats with a remote contact: the other device gets carbons of
    both directions (XEP-0280), a chat marker crosses back (XEP-0333), and the archive holds
    the conversation with the remote contact (XEP-0313)."""
    user = ours.take()
    phone = await ours.client(user, "phone", plugins=("xep_0280", "xep_0313", "xep_0333"))\
        .login()
    laptop = await ours.client(user, "laptop", plugins=("xep_0280",)).login()
    remote = await theirs.client(theirs.take(), plugins=("xep_0333",)).login()
    carbons: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    markers: asyncio.Queue[Any] = asyncio.Queue()
    laptop.add_event_handler("carbon_received", lambda m: carbons.put_nowait(("received", m)))
    laptop.add_event_handler("carbon_sent", lambda m: carbons.put_nowait(("sent", m)))
    phone.add_event_handler("marker_displayed", markers.put_nowait)
    try:
        for c in (phone, laptop):
            await c.plugin["xep_0280"].enable(timeout=20)
        remote.send_message(mto=phone.boundjid.full, mbody="to your phone", mtype="chat")
        assert (await phone.chat())["body"] == "to your phone"
        kind, copy = await asyncio.wait_for(carbons.get(), 30)
        fwd = copy["carbon_received"]
        assert (kind, fwd["body"], str(fwd["from"])) == (
            "received", "to your phone", remote.boundjid.full), copy
        msg = phone.make_message(mto=remote.boundjid.bare, mbody="from my phone", mtype="chat")
        msg["id"] = "phone-1"
        msg["markable"] = True
        msg.send()
        got = await remote.chat()
        assert got["body"] == "from my phone"
        kind, copy = await asyncio.wait_for(carbons.get(), 30)
        assert (kind, copy["carbon_sent"]["body"]) == ("sent", "from my phone"), copy
        remote.plugin["xep_0333"].send_marker(got["from"], "phone-1", "displayed")
        marker = await asyncio.wait_for(markers.get(), 30)
        assert (str(marker["from"]), marker["displayed"]["id"]) == (
            remote.boundjid.full, "phone-1"), marker
        archived = []
        async for m in phone.plugin["xep_0313"].iterate(with_jid=remote.boundjid.bare,
                                                         rsm={"max": 10}):
            archived.append(m["mam_result"]["forwarded"]["stanza"]["body"])
        assert [b for b in archived if b] == ["to your phone", "from my phone"], archived
    finally:
        for c in (phone, laptop, remote):
            await c.stop()


async def blocking_a_remote_user(ours: Side, theirs: Side) -> None:
    """Our user blocks a remote JID (XEP-0191): its messages are not delivered and come back
    as errors (§3.3), ours to it are refused (§3.4 <not-acceptable/>); unblocked, they flow."""
    a = await ours.client(ours.take(), plugins=("xep_0191",)).login()
    b = await theirs.client(theirs.take()).login()
    try:
        await a.plugin["xep_0191"].block(b.boundjid.bare, timeout=20)
        b.send_message(mto=a.boundjid.bare, mbody="let me in", mtype="chat")
        bounce = await b.chat()
        assert (bounce["type"], bounce["error"]["condition"]) == (
            "error", "service-unavailable"), bounce
        a.send_message(mto=b.boundjid.bare, mbody="you are blocked", mtype="chat")
        refused = await a.chat()
        assert (refused["type"], refused["error"]["condition"]) == (
            "error", "not-acceptable"), refused
        await a.plugin["xep_0191"].unblock(b.boundjid.bare, timeout=20)
        b.send_message(mto=a.boundjid.bare, mbody="friends again", mtype="chat")
        got = await a.chat()
        assert got["body"] == "friends again", got
        assert b.inbox.empty(), b.inbox.get_nowait()
    finally:
        await a.stop()
        await b.stop()
