# tests: tests/integration/test_sasl2_clients.py, tests/integration/test_invites.py
"""`xmppctl` commands for devices and invitations:

- `xmppctl devices USER HOST`: the clients holding FAST tokens (XEP-0484), one per line:
  client id, expiry of its newest token, what it called itself.
- `xmppctl revoke USER HOST [CLIENT_ID]`: log that client (or every client) out of FAST: its
  tokens are deleted; it must log in with the password again.
- `xmppctl invite HOST [--user NAME] [--valid DURATION]`: an account invitation (XEP-0401
  §3.3) and the link to its registration page; with --user the name is reserved for it.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any, Callable

from stanzas.delay import stamp
from xmppd.config import parse_duration


def add_commands(sub: Any) -> None:
    d = sub.add_parser("devices", help="list the clients with FAST tokens (XEP-0484)")
    d.add_argument("user"), d.add_argument("host")
    r = sub.add_parser("revoke", help="revoke the FAST tokens of one client, or all")
    r.add_argument("user"), r.add_argument("host"), r.add_argument("client", nargs="?")
    i = sub.add_parser("invite", help="create an account invitation link (XEP-0401)")
    i.add_argument("host")
    i.add_argument("--user", default="", help="reserve this account name for the invitee")
    i.add_argument("--valid", default="", help='how long the link works, e.g. "7 d"')


def run(args: argparse.Namespace, server: Any, wait: Callable[[Any], Any]) -> int | None:
    """The command's exit code, or None if it is not one of these."""
    if args.command not in ("devices", "revoke", "invite"):
        return None
    if args.host not in server.hosts:
        print(f"xmppctl: {args.host!r} is not a virtual host", file=sys.stderr)
        return 2
    if args.command == "invite":
        return _invite(args, server, wait)
    jid = server.accounts.jid(args.user, args.host)
    store = server.stores.fast
    if args.command == "devices":
        for dev in wait(store.devices(args.host, jid.local)):
            print(f"{dev.client_id}\t{stamp(dev.expires_at)}\t{dev.device}")
        return 0
    n = wait(store.revoke(args.host, jid.local, args.client))
    print(f"revoked {n} token(s) of {jid}" + (f" for {args.client}" if args.client else ""))
    return 0 if n else 1


def _invite(args: argparse.Namespace, server: Any, wait: Callable[[Any], Any]) -> int:
    from modules.invites import Invitations
    service = server.hosts[args.host].services.get(Invitations)
    if service is None:
        print(f"xmppctl: the invites module is not enabled on {args.host}", file=sys.stderr)
        return 2
    valid = parse_duration(args.valid, "--valid") if args.valid else None
    invite, links = wait(service.create("account", inviter="", username=args.user,
                                        valid=valid))
    print(links.landing or links.uri)
    print(f"{links.uri}\texpires {stamp(invite.expires_at)}")
    return 0
