# tests: tests/modules/test_external_services.py, tests/integration/test_turn_coturn.py
"""XEP-0215: External Service Discovery — the STUN and TURN servers a calling client needs.

- `<services/>` (IQ get to the host, §3; optional 'type' filter, §4.2) lists the configured
  services; `<credentials><service host type [port]/></credentials>` (§4.3) returns
  credentials for the matching ones, or <item-not-found/>.
- TURN (and STUN) services with a `secret` get time-limited credentials minted per request by
  the TURN REST API convention (draft-uberti-behave-turn-rest-00 §2.2), which coturn's
  `use-auth-secret` / `static-auth-secret` checks: username "<expiry>:<bare JID>", password
  base64(HMAC-SHA1(secret, username)), `expires` the XEP-0082 time (§3). Nothing is stored.
- Only this server's users are answered (§3: <forbidden/> otherwise): the credentials are for
  its TURN relay, not for everyone on the federation.
Config ([modules.external_services]):
  services   list of tables  default []   each: type ("stun", "stuns", "turn", "turns"), host,
             port (3478), transport ("udp" or "tcp"), name (""), secret ("": no credentials)
  credentials_lifetime  duration  default "1 d"   how long minted credentials work
Storage: none.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from typing import Literal

from lxml import etree

from stanzas import iq
from stanzas.delay import stamp
from stanzas.errors import StanzaError
from stanzas.jid import JID
from xmppd.module import IqRequest, Module, ModuleContext, duration, number

NS = "urn:xmpp:extdisco:2"
_Q = "{%s}" % NS


@dataclass(frozen=True, slots=True)
class ExternalService:
    type: Literal["stun", "stuns", "turn", "turns"]
    host: str
    port: int = number(default=3478, minimum=1, maximum=65535)
    transport: Literal["udp", "tcp"] = "udp"
    name: str = ""
    secret: str = ""            # TURN REST API shared secret (coturn static-auth-secret)


@dataclass(frozen=True, slots=True)
class ExternalServicesOptions:
    services: tuple[ExternalService, ...] = ()
    credentials_lifetime: float = duration(default="1 d", minimum=1)


def turn_credentials(secret: str, user: JID, expires: float) -> tuple[str, str]:
    """TURN REST API (draft-uberti-behave-turn-rest-00 §2.2): the username carries its expiry,
    the password is the HMAC-SHA1 of the username under the shared secret."""
    username = f"{int(expires)}:{user.bare}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


class ExternalServices(Module[ExternalServicesOptions]):
    name = "external_services"
    xeps = (215,)
    Options = ExternalServicesOptions

    def __init__(self, ctx: ModuleContext[ExternalServicesOptions]) -> None:
        self.ctx = ctx
        self.services = ctx.options.services
        ctx.disco_feature(NS)
        ctx.iq_get(NS, "services", self.list_services, to="host")
        ctx.iq_get(NS, "credentials", self.credentials, to="host")

    def list_services(self, req: IqRequest) -> iq.Reply:
        self._check(req)
        wanted = req.payload.get("type")
        out = iq.empty(NS, "services")
        if wanted:
            out.set("type", wanted)
        for svc in self.services:
            if wanted is None or svc.type == wanted:
                out.append(self._element(svc, req.sender))
        return iq.result(req.stanza, out)

    def credentials(self, req: IqRequest) -> iq.Reply:
        self._check(req)
        asked = req.payload.find(_Q + "service")
        if asked is None or not asked.get("host") or not asked.get("type"):
            raise StanzaError.bad_request("a <service/> with host and type is needed")
        port = asked.get("port")
        found = [svc for svc in self.services
                 if svc.host == asked.get("host") and svc.type == asked.get("type")
                 and (port is None or str(svc.port) == port) and svc.secret]
        if not found:
            raise StanzaError.item_not_found("no credentials for such a service here")
        out = iq.empty(NS, "credentials")
        for svc in found:
            out.append(self._element(svc, req.sender))
        return iq.result(req.stanza, out)

    def _check(self, req: IqRequest) -> None:
        if req.sender.domain not in self.ctx.local_domains or req.sender.local is None:
            raise StanzaError.forbidden("external services are for this server's users")

    def _element(self, svc: ExternalService, user: JID) -> etree._Element:
        el = etree.Element(_Q + "service", host=svc.host, port=str(svc.port),
                           transport=svc.transport, type=svc.type)
        if svc.name:
            el.set("name", svc.name)
        if svc.secret:
            expires = self.ctx.clock.now() + self.ctx.options.credentials_lifetime
            username, password = turn_credentials(svc.secret, user, expires)
            el.set("username", username)
            el.set("password", password)
            el.set("expires", stamp(expires))
            el.set("restricted", "1")
        return el
