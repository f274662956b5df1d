"""Account operations (xmppd/accounts.py), shared by xmppctl, XEP-0077 and admin commands."""
from __future__ import annotations

import pytest

from stanzas.jid import JID
from tests.harness.server import Harness, resolve
from xmppd import hooks


def test_register_fires_the_hook_once_and_refuses_a_taken_name(harness: Harness) -> None:
    seen: list[str] = []
    harness.server.hosts["example.org"].hooks.add(hooks.user_registered,
                                                  lambda ev: seen.append(str(ev.user)))
    accounts = harness.server.accounts
    assert resolve(accounts.register("Juliet", "example.org", "pw")) is True
    assert resolve(accounts.register("juliet", "example.org", "other")) is False
    assert seen == ["juliet@example.org"]
    assert resolve(accounts.exists(JID.parse("juliet@example.org/balcony")))


@pytest.mark.parametrize("user,host,password", [("", "example.org", "pw"),
                                                ("a b", "example.org", "pw"),
                                                ("juliet", "elsewhere.org", "pw"),
                                                ("juliet", "example.org", "")])
def test_bad_names_hosts_and_passwords_are_value_errors(harness: Harness, user: str, host: str,
                                                        password: str) -> None:
    with pytest.raises(ValueError):
        resolve(harness.server.accounts.register(user, host, password))


def test_delete_closes_the_sessions_and_fires_the_hook(harness: Harness) -> None:
    romeo = harness.login("romeo@example.org/a")
    gone: list[str] = []
    harness.server.hosts["example.org"].hooks.add(hooks.user_deleted,
                                                  lambda ev: gone.append(str(ev.user)))
    assert resolve(harness.server.accounts.delete("romeo", "example.org")) is True
    assert romeo.closed_with == "not-authorized" and gone == ["romeo@example.org"]
    assert not resolve(harness.server.accounts.exists(JID.parse("romeo@example.org")))
    assert resolve(harness.server.accounts.delete("romeo", "example.org")) is False
