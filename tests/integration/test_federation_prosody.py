# tests: xmppd/s2s/, xmppd/listeners/s2s.py, xmppd/listeners/peertls.py
"""xmppd federating with a real Prosody (Debian package), each on its own loopback address and
domain in the federation lab (tests/harness/fedlab.py: the lab's DNS server, SRV records,
private mount namespaces). Two runs: certificates from a test CA (SASL EXTERNAL both ways,
Prosody with s2s_secure_auth), and self-signed certificates (Server Dialback both ways)."""
from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from tests.harness.backends import skip_or_fail
from tests.harness.fedlab import Lab, lab_available
from tests.harness.fedservers import ProsodyServer, XmppdServer, logs_of, wait_log
from tests.integration import federation_checks as checks
from tests.integration.federation_checks import Side

DOMAIN, THEIRS = "xmppd.example", "prosody.example"


@pytest.fixture(scope="module", params=["ca", "dialback"])
def fed(request: pytest.FixtureRequest) -> Iterator[tuple[Side, Side, str]]:
    why = lab_available() or (None if shutil.which("prosody") else "prosody is not installed")
    if why:
        skip_or_fail(why)
    lab = Lab(ca=request.param == "ca")
    ours = theirs = None
    try:
        ours = XmppdServer(lab, DOMAIN, lab.addr(1))
        theirs = ProsodyServer(lab, THEIRS, lab.addr(2))
        lab.add_domain(DOMAIN, lab.addr(1), srv=[(0, 5, 5269, DOMAIN)])
        lab.add_domain(THEIRS, lab.addr(2), srv=[(10, 5, 5269, THEIRS)])
        for user in ("alice", "carol"):
            ours.register(user, f"{user}-pw")
        for user in ("bob", "dave"):
            theirs.register(user, f"{user}-pw")
        ours.start()
        theirs.start()
        yield Side(ours, "alice", "carol"), Side(theirs, "bob", "dave"), request.param
    except BaseException:
        if ours is not None and theirs is not None:
            print(logs_of(ours, theirs))
        raise
    finally:
        lab.close()


def test_messages_cross_both_ways(fed: tuple[Side, Side, str]) -> None:
    ours, theirs, mode = fed
    checks.run(checks.messages_both_ways(ours, theirs))
    how = "sasl" if mode == "ca" else "dialback"
    assert wait_log(ours.server, f"xmppd.example -> prosody.example: ready ({how}")
    assert wait_log(ours.server, f"prosody.example -> xmppd.example: incoming stream "
                                 f"authenticated ({how})")


def test_receipts_cross_both_ways(fed: tuple[Side, Side, str]) -> None:
    checks.run(checks.receipts_both_ways(fed[0], fed[1]))


def test_offline_message_to_a_prosody_user(fed: tuple[Side, Side, str]) -> None:
    ours, theirs, mode = fed
    checks.run(checks.offline_across(ours, theirs, f"while you were away ({mode})"))


def test_offline_message_to_an_xmppd_user(fed: tuple[Side, Side, str]) -> None:
    ours, theirs, mode = fed
    checks.run(checks.offline_across(theirs, ours, f"stored by xmppd ({mode})"))


def test_presence_subscription_across(fed: tuple[Side, Side, str]) -> None:
    checks.run(checks.presence_subscription(fed[0], fed[1]))


def test_mutual_subscription_reaches_both(fed: tuple[Side, Side, str]) -> None:
    checks.run(checks.subscription_states(fed[0], fed[1]))


def test_xmppd_user_joins_a_prosody_room(fed: tuple[Side, Side, str]) -> None:
    checks.run(checks.muc_across(fed[1], fed[0], f"at-prosody-{fed[2]}"))


def test_prosody_user_joins_an_xmppd_room(fed: tuple[Side, Side, str]) -> None:
    checks.run(checks.muc_across(fed[0], fed[1], f"at-xmppd-{fed[2]}"))
