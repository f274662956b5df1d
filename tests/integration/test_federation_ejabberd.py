# tests: xmppd/s2s/, xmppd/listeners/s2s.py, xmppd/listeners/peertls.py
"""xmppd federating with a real ejabberd (Debian package), each on its own loopback address and
domain in the federation lab (tests/harness/fedlab.py: the lab's DNS server, SRV records,
private mount namespaces). Two runs: certificates from a test CA (SASL EXTERNAL both ways,
ejabberd with ca_file and without mod_s2s_dialback), and self-signed certificates (Server
Dialback both ways)."""
from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from tests.harness.backends import skip_or_fail
from tests.harness.fedlab import Lab, lab_available
from tests.harness.fedservers import EjabberdServer, XmppdServer, logs_of, wait_log
from tests.harness.ports import free_port
from tests.integration import federation_checks as checks
from tests.integration import federation_features as features
from tests.integration.federation_checks import Side

DOMAIN, THEIRS = "xmppd.example", "ejabberd.example"
SPARE = 12          # fresh accounts per side for federation_features' checks

# The first test of each run also pays for its fixture: ejabberd's start and 14 accounts made
# with ejabberdctl, an Erlang VM each (1-2 s apiece, 10 s on a 2-core machine under full load:
# more than the suite's 120 s default in all).
pytestmark = pytest.mark.timeout(360)


@pytest.fixture(scope="module", params=["ca", "dialback"])
def fed(request: pytest.FixtureRequest) -> Iterator[tuple[Side, Side, str]]:
    why = lab_available() or (None if shutil.which("ejabberdctl") else "ejabberd is not installed")
    if why:
        skip_or_fail(why)
    lab = Lab(ca=request.param == "ca")
    ours = theirs = None
    try:
        ours = XmppdServer(lab, DOMAIN, lab.addr(1))
        # the port of its Erlang distribution (loopback only, no epmd)
        theirs = EjabberdServer(lab, THEIRS, lab.addr(3), free_port())
        lab.add_domain(DOMAIN, lab.addr(1), srv=[(0, 5, 5269, DOMAIN)])
        lab.add_domain(THEIRS, lab.addr(3))        # no SRV: xmppd falls back to A + 5269
        spare_ours, spare_theirs = [f"a{i}" for i in range(SPARE)], \
            [f"b{i}" for i in range(SPARE)]
        ours.register_many({u: f"{u}-pw" for u in ("alice", "carol", *spare_ours)})
        ours.start()
        theirs.start()
        for user in ("bob", "dave", *spare_theirs):
            theirs.register(user, f"{user}-pw")
        yield Side(ours, "alice", "carol", spare_ours), \
            Side(theirs, "bob", "dave", spare_theirs), request.param
    except BaseException:
        if ours is not None and theirs is not None:
            print(logs_of(ours, theirs))
        raise
    finally:
        if theirs is not None:
            theirs.stop()
        lab.close()


def test_messages_cross_both_ways(fed: tuple[Side, Side, str]) -> None:
    ours, theirs, mode = fed
    checks.run(checks.messages_both_ways(ours, theirs))
    how = "sasl" if mode == "ca" else "dialback"
    assert wait_log(ours.server, f"xmppd.example -> ejabberd.example: ready ({how}")
    assert wait_log(ours.server, f"ejabberd.example -> xmppd.example: incoming stream "
                                 f"authenticated ({how})")


def test_receipts_cross_both_ways(fed: tuple[Side, Side, str]) -> None:
    checks.run(checks.receipts_both_ways(fed[0], fed[1]))


def test_offline_message_to_an_ejabberd_user(fed: tuple[Side, Side, str]) -> None:
    ours, theirs, mode = fed
    checks.run(checks.offline_across(ours, theirs, f"while you were away ({mode})"))


def test_offline_message_to_an_xmppd_user(fed: tuple[Side, Side, str]) -> None:
    ours, theirs, mode = fed
    checks.run(checks.offline_across(theirs, ours, f"stored by xmppd ({mode})"))


def test_presence_subscription_across(fed: tuple[Side, Side, str]) -> None:
    checks.run(checks.presence_subscription(fed[0], fed[1]))


def test_mutual_subscription_reaches_both(fed: tuple[Side, Side, str]) -> None:
    checks.run(checks.subscription_states(fed[0], fed[1]))


def test_xmppd_user_joins_an_ejabberd_room(fed: tuple[Side, Side, str]) -> None:
    checks.run(checks.muc_across(fed[1], fed[0], f"at-ejabberd-{fed[2]}"))


def test_ejabberd_user_joins_an_xmppd_room(fed: tuple[Side, Side, str]) -> None:
    checks.run(checks.muc_across(fed[0], fed[1], f"at-xmppd-{fed[2]}"))


def test_vcards_both_ways(fed: tuple[Side, Side, str]) -> None:
    checks.run(features.vcards_both_ways(fed[0], fed[1]), *fed[:2])


def test_last_activity_of_remote_contacts(fed: tuple[Side, Side, str]) -> None:
    checks.run(features.last_activity_both_ways(fed[0], fed[1]), *fed[:2])


def test_pep_notifications_reach_remote_contacts(fed: tuple[Side, Side, str]) -> None:
    checks.run(features.pep_both_ways(fed[0], fed[1]), *fed[:2])


def test_xmppd_upload_links_work_from_ejabberd(fed: tuple[Side, Side, str]) -> None:
    checks.run(features.upload_link_across(fed[0], fed[1]), *fed[:2])


def test_ejabberd_upload_links_work_from_xmppd(fed: tuple[Side, Side, str]) -> None:
    checks.run(features.upload_link_across(fed[1], fed[0]), *fed[:2])


def test_invitations_to_an_xmppd_room(fed: tuple[Side, Side, str]) -> None:
    checks.run(features.invitations_across(fed[0], fed[1], f"inv-xmppd-{fed[2]}"), *fed[:2])


def test_invitations_to_a_ejabberd_room(fed: tuple[Side, Side, str]) -> None:
    checks.run(features.invitations_across(fed[1], fed[0], f"inv-ejabberd-{fed[2]}"), *fed[:2])


def test_presence_probes_after_xmppd_restarts(fed: tuple[Side, Side, str]) -> None:
    checks.run(features.probes_after_restart(fed[0], fed[1], restarted=fed[0]), *fed[:2])


def test_presence_probes_after_ejabberd_restarts(fed: tuple[Side, Side, str]) -> None:
    checks.run(features.probes_after_restart(fed[0], fed[1], restarted=fed[1]), *fed[:2])


def test_carbons_markers_and_archive_with_a_remote_contact(fed: tuple[Side, Side, str]) -> None:
    checks.run(features.carbons_markers_archive(fed[0], fed[1]), *fed[:2])


def test_blocking_a_remote_user(fed: tuple[Side, Side, str]) -> None:
    checks.run(features.blocking_a_remote_user(fed[0], fed[1]), *fed[:2])
