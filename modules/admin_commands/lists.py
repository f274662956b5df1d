# tests: tests/modules/test_admin_commands.py, tests/integration/test_admin_commands_slixmpp.py
"""XEP-0133 §4.11 edit blacklist and §4.12 edit whitelist, for in-band registration
(modules/register.py): the whitelist is who may register (IP addresses or networks), the
blacklist who may not even inside it. The forms come filled with the current lists (jid-multi:
"10.0.0.0/8" and "::1" are valid JIDs, a domain and a resource); what is submitted replaces
the list and is stored, so it survives a restart."""
from __future__ import annotations

from modules import adhoc
from modules.admin_commands.common import Admin, jid_field
from modules.register import RegistrationPolicy, parse_networks
from stanzas.errors import StanzaError


def commands(admin: Admin, policy: RegistrationPolicy) -> list[adhoc.Command]:
    def editor(which: str, var: str, title: str, label: str) -> adhoc.Step:
        def start(data: adhoc.Input) -> adhoc.Stage:
            current = [str(n) for n in getattr(policy, which)]
            return adhoc.Stage(admin.form(title, f"Fill out this form to edit the {label}.",
                                          [jid_field(var, label, multi=True, values=current)]),
                               submitted)

        async def submitted(data: adhoc.Input) -> adhoc.Done:
            form = admin.submitted(data)
            try:
                networks = parse_networks(list(form.strings(var)))
            except ValueError as e:
                raise StanzaError.not_acceptable(str(e)) from None
            await policy.set(which, networks)
            admin.ctx.log.info("admin %s set the registration %s list: %s", data.asker.bare,
                               which, [str(n) for n in networks])
            return adhoc.Done((("info", f"{label}: {', '.join(map(str, networks)) or 'empty'}"),))
        return start

    return [
        admin.command("edit-whitelist", "Edit who may register (whitelist)",
                      editor("allow", "whitelistjids", "Editing the Whitelist",
                             "networks allowed to register in-band")),
        admin.command("edit-blacklist", "Edit who may not register (blacklist)",
                      editor("deny", "blacklistjids", "Editing the Blacklist",
                             "networks refused in-band registration")),
    ]
