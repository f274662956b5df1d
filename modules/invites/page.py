# tests: tests/modules/test_invites.py, tests/integration/test_invites.py
"""The invitation landing page (XEP-0401 §3.2, XEP-0379 §3.3), served by the HTTP listener
under /invite/<token>: who invites, which apps to install, a button that opens the xmpp: link
in the app, and a form that creates the account in the browser.

- GET: the page (200), or "used or expired" (410), or "no such invitation" (404).
- POST (application/x-www-form-urlencoded: username, password, confirm): creates the account
  through `Invitations.sign_up` (single use, atomically); the answer page names the new
  address. Mistakes (passwords that differ or are too short, a taken or reserved name) show
  the form again with the reason (400/409).
- Plain HTML and CSS: no script, a Content-Security-Policy that allows nothing else, no
  caching, no referrer to other sites (the token is in the URL; same-origin, or the
  browser's form POST would carry `Origin: null` and be refused by the listener's origin
  check), and the token is never logged.
"""
from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.web.server import NOT_DONE_YET

from stanzas.errors import StanzaError
from storage.invites import Invite

if TYPE_CHECKING:
    from modules.invites.service import Invitations

APPS = (("Conversations", "Android", "https://conversations.im/"),
        ("Monal", "iPhone, iPad, Mac", "https://monal-im.org/"),
        ("Gajim", "Windows, Linux", "https://gajim.org/"),
        ("Dino", "Linux", "https://dino.im/"))
_CSP = ("default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'")
_STYLE = ("body{font-family:system-ui,sans-serif;max-width:34em;margin:2em auto;padding:0 1em;"
          "color:#222}h1{font-size:1.5em}.button{display:inline-block;padding:.6em 1.2em;"
          "background:#2a6;color:#fff;border-radius:.4em;text-decoration:none}"
          "label{display:block;margin:.8em 0 .2em}input{font-size:1em;padding:.4em;width:100%;"
          "box-sizing:border-box}button{margin-top:1em;font-size:1em;padding:.6em 1.2em}"
          ".error{color:#b00}.apps li{margin:.3em 0}")


class InvitePage:
    """Serves /invite/<token> for the HTTP listener (xmppd/listeners/http_services.py
    `HttpPages`)."""
    http_prefix = "/invite"

    def __init__(self, invitations: Invitations, min_password_length: int) -> None:
        self.invitations = invitations
        self.min_password_length = min_password_length

    def render_page(self, request: Any, rest: list[str]) -> bytes | int:
        method = request.method
        if len(rest) != 1 or not rest[0] or method not in (b"GET", b"HEAD", b"POST"):
            request.setResponseCode(404 if method in (b"GET", b"HEAD", b"POST") else 405)
            return b""
        d = defer.Deferred.fromCoroutine(self._answer(request, rest[0], method == b"POST"))
        d.addErrback(self._failed, request)
        return NOT_DONE_YET

    async def _answer(self, request: Any, token: str, post: bool) -> None:
        inv = self.invitations
        invite = await inv.store.get(token)
        if invite is None or invite.host not in inv.ctx.local_domains:
            return _finish(request, 404, _page("No such invitation",
                                               "<p>This invitation link is not valid.</p>"))
        if not invite.usable(inv.ctx.clock.now()):
            who = html.escape(invite.inviter or "the person who sent it")
            return _finish(request, 410, _page("Invitation used or expired", (
                f"<p>This invitation has been used or has expired. Ask {who} for a new "
                "one.</p>")))
        if not post:
            return _finish(request, 200, self._form(invite))
        args = request.args or {}

        def arg(name: str) -> str:
            values = args.get(name.encode()) or [b""]
            return str(values[0].decode("utf-8", "replace"))
        username = invite.username or arg("username").strip()
        password, confirm = arg("password"), arg("confirm")
        if not username:
            return _finish(request, 400, self._form(invite, "Choose a username.", username))
        if len(password) < self.min_password_length:
            return _finish(request, 400, self._form(invite, (
                f"The password needs at least {self.min_password_length} characters."),
                username))
        if password != confirm:
            return _finish(request, 400, self._form(invite, "The passwords differ.", username))
        try:
            jid = await inv.sign_up(invite.token, username, password)
        except StanzaError as e:
            code = 409 if e.condition == "conflict" else 400
            return _finish(request, code, self._form(invite, e.text or e.condition, username))
        contact = (f"<p>{html.escape(invite.inviter)} is in your contacts already.</p>"
                   if invite.inviter else "")
        _finish(request, 200, _page("Your account is ready", (
            f"<p>Your address is <strong id='jid'>{html.escape(str(jid))}</strong>.</p>"
            f"<p>Open your app and log in with it and the password you chose.</p>{contact}")))

    def _form(self, invite: Invite, error: str = "", username: str = "") -> bytes:
        host = html.escape(invite.host)
        uri = html.escape(self.invitations.links(invite).uri, quote=True)
        who = (f"{html.escape(invite.inviter)} invites you to chat on {host}."
               if invite.inviter else f"You are invited to create an account on {host}.")
        apps = "".join(f"<li><a href='{url}' rel='noreferrer'>{name}</a> ({where})</li>"
                       for name, where, url in APPS)
        name_field = (
            f"<input id='username' name='username' value='{html.escape(invite.username)}' "
            "readonly>" if invite.username else
            f"<input id='username' name='username' value='{html.escape(username, quote=True)}'"
            " autocomplete='username' required>")
        problem = f"<p class='error' id='error'>{html.escape(error)}</p>" if error else ""
        return _page(f"Join {host}", (
            f"<p id='who'>{who}</p>"
            f"<h2>1. Get an app</h2><ul class='apps'>{apps}</ul>"
            f"<h2>2. Open the invitation in it</h2>"
            f"<p><a class='button' id='open' href='{uri}'>Open in your app</a></p>"
            f"<h2>Or create your account here</h2>{problem}"
            f"<form method='post' id='register'>"
            f"<label for='username'>Username (your address will be name@{host})</label>"
            f"{name_field}"
            "<label for='password'>Password</label><input id='password' name='password' "
            "type='password' autocomplete='new-password' required>"
            "<label for='confirm'>Password again</label><input id='confirm' name='confirm' "
            "type='password' autocomplete='new-password' required>"
            "<button type='submit' id='create'>Create account</button></form>"))

    def _failed(self, failure: Any, request: Any) -> None:
        self.invitations.ctx.log.error("invitation page failed: %s", failure.getErrorMessage())
        _finish(request, 500, _page("Something went wrong", "<p>Please try again later.</p>"))


def _page(title: str, body: str) -> bytes:
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><meta name='viewport' "
            f"content='width=device-width, initial-scale=1'><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>{body}"
            f"</body></html>").encode()


def _finish(request: Any, code: int, body: bytes) -> None:
    if getattr(request, "_disconnected", False) or getattr(request, "finished", False):
        return
    request.setResponseCode(code)
    request.setHeader("content-type", "text/html; charset=utf-8")
    request.setHeader("content-security-policy", _CSP)
    request.setHeader("cache-control", "no-store")
    request.setHeader("referrer-policy", "same-origin")   # (no-referrer: Origin "null")
    request.setHeader("x-frame-options", "DENY")
    request.setHeader("content-length", str(len(body)))
    if request.method != b"HEAD":
        request.write(body)
    request.finish()
