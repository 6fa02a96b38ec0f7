"""NAT to NAT in a mesh (issue 5, point 4): two nodes both behind NAT reach each other
through a relay (the first public node forwards for them); `verify` proves the pair. With a
second public node standing by, a dead relay is replaced by it with no `apply` (the NATed
nodes' failover agents).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from tests.lab.labkit import LabNet

pytestmark = pytest.mark.lab

SPEC: dict[str, Any] = {
    "name": "natnat",
    "network": {"overlay": "10.45.0.0/24", "domain": "nat.internal"},
    "sites": [
        {
            "name": "lab",
            "provider": "lab",
            "nodes": [
                {"name": "relay"},
                {"name": "home", "behind_nat": True},
                {"name": "cafe", "behind_nat": "double"},
            ],
        }
    ],
}


def test_nat_to_nat_pair_is_relayed_and_verified(lab_prefix: str, tmp_path: Path) -> None:
    net = LabNet(lab_prefix, tmp_path, SPEC)
    res = net.apply()
    assert res.code == 0, res.err[-3000:]
    assert "6/6 pairs reachable over the overlay" in res.out, res.out
    # no direct tunnel between the NATed nodes: each has the relay as its only peer
    for host, other in (("home", "10.45.0.3"), ("cafe", "10.45.0.2")):
        peers = net.sh(host, "wg show cc0 allowed-ips").stdout.splitlines()
        assert len(peers) == 1 and f"{other}/32" in peers[0], peers
    hop = net.sh("home", "ping -n -c 1 -W 2 -t 1 cafe.nat.internal").stdout
    assert "From 10.45.0.1" in hop and "Time to live exceeded" in hop, hop
    assert net.sh("cafe", "ping -c 3 -i 0.2 -W 2 home.nat.internal").returncode == 0
    verify = net.cli("verify", str(net.spec), "--workdir", str(net.workdir))
    assert verify.code == 0 and "6/6 pairs reachable" in verify.out, verify.out + verify.err


def test_a_dead_relay_is_replaced_by_the_standby_relay_without_apply(lab_prefix: str, tmp_path: Path) -> None:
    from cloudcast import lab

    doc = copy.deepcopy(SPEC)
    doc["sites"][0]["nodes"].insert(1, {"name": "relay2"})  # the next public node stands by
    net = LabNet(lab_prefix, tmp_path, doc)
    res = net.apply()
    assert res.code == 0, res.err[-3000:]
    assert "12/12 pairs reachable over the overlay" in res.out, res.out
    home, cafe = "10.45.0.3", "10.45.0.4"
    assert "From 10.45.0.1" in net.sh("home", f"ping -n -c 1 -W 2 -t 1 {cafe}").stdout
    lab.kill_host("relay", lab_prefix)
    # the NATed nodes' agents miss the relay and hand each other's address to relay2
    if not net.reaches("home", cafe, 20):
        pytest.fail("home -> cafe after relay died:\n" + "\n".join(net.agent_state(h) for h in ("home", "cafe")))
    assert net.reaches("cafe", home, 2)
    hop = net.sh("home", f"ping -n -c 1 -W 2 -t 1 {cafe}").stdout
    assert "From 10.45.0.2" in hop, hop  # relay2
