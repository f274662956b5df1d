"""Rendezvous hashing (xmppd/cluster/placement.py): everybody agrees, and a change of the live
set moves only what it must."""
from __future__ import annotations

from xmppd.cluster.placement import Placement, owner

ROOMS = [f"room{i}@conference.localhost" for i in range(3000)]


def test_the_owner_depends_only_on_the_set_not_its_order() -> None:
    assert all(owner(["a", "b", "c"], r) == owner(["c", "a", "b"], r) for r in ROOMS[:200])
    assert owner([], "x") is None


def test_the_jids_spread_and_a_new_node_takes_only_its_share() -> None:
    before = {r: owner(["n1", "n2", "n3"], r) for r in ROOMS}
    counts = {n: sum(1 for o in before.values() if o == n) for n in ("n1", "n2", "n3")}
    assert all(800 < c < 1200 for c in counts.values()), counts
    after = {r: owner(["n1", "n2", "n3", "n4"], r) for r in ROOMS}
    moved = [r for r in ROOMS if before[r] != after[r]]
    assert all(after[r] == "n4" for r in moved)           # nothing moves between old nodes
    assert 600 < len(moved) < 900                          # about a quarter


def test_a_leaving_node_hands_over_only_what_it_held() -> None:
    before = {r: owner(["n1", "n2", "n3"], r) for r in ROOMS}
    after = {r: owner(["n1", "n3"], r) for r in ROOMS}
    assert all(before[r] == after[r] for r in ROOMS if before[r] != "n2")


def test_placement_remembers_until_the_live_set_changes() -> None:
    p = Placement("n1")
    assert p.owner("r@c") == "n1"                          # alone until told otherwise
    p.set_live(["n1", "n2"])
    assert p.owner("r@c") == owner(["n1", "n2"], "r@c")
    p.set_live([])
    assert p.live == ("n1",)
