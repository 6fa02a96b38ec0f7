"""Hub and spoke over WireGuard on real lab hosts (issue 5, points 3 and 5).

examples/lab-hub.json: hub1 and a standby hub2, three spokes (spoke3 behind NAT). Spokes peer
only with the hubs; spoke-to-spoke traffic goes through hub1. When hub1 dies, each spoke's
failover agent moves what hub1 carried to hub2 within seconds, and the next `apply` plans
around hub1 (the bootstrapper cannot reach it) to the same state.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.lab.labkit import LabNet, lab_prefix_fixture

pytestmark = pytest.mark.lab

HUB1, HUB2 = "10.44.0.1", "10.44.0.2"
SPOKES = {"spoke1": "10.44.0.3", "spoke2": "10.44.0.4", "spoke3": "10.44.0.5"}


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabNet]:
    for prefix in lab_prefix_fixture():
        yield LabNet(prefix, tmp_path_factory.mktemp("hub"), "lab-hub.json")


def test_a_spokes_peer_only_with_the_hubs_and_reach_each_other_through_hub1(net: LabNet) -> None:
    res = net.apply()
    assert res.code == 0, res.err[-3000:]
    assert "20/20 pairs reachable over the overlay" in res.out, res.out
    for spoke in SPOKES:
        peers = net.sh(spoke, "wg show cc0 allowed-ips").stdout.splitlines()
        assert len(peers) == 2, peers  # hub1 (carrying the other spokes) and the standby hub2
        carried = {line.split("\t")[1] for line in peers}
        others = sorted(f"{ip}/32" for name, ip in SPOKES.items() if name != spoke)
        assert any(all(o in c for o in others) and f"{HUB1}/32" in c for c in carried), carried
        assert f"{HUB2}/32" in carried  # the standby carries only itself
    hop = net.sh("spoke1", f"ping -n -c 1 -W 2 -t 1 {SPOKES['spoke3']}").stdout
    assert f"From {HUB1}" in hop and "Time to live exceeded" in hop, hop
    assert net.sh("spoke3", "ping -c 1 -W 2 spoke2.hub.internal").returncode == 0


def agents(net: LabNet) -> dict[str, str]:
    """What each spoke's tunnel and failover agent look like (for a failure message)."""
    return {s: net.agent_state(s) for s in (*SPOKES, "hub2")}


def test_b_when_hub1_fails_the_spokes_fail_over_to_hub2(net: LabNet) -> None:
    from cloudcast import lab

    for spoke in SPOKES:  # every spoke runs the failover agent, watching hub1
        assert "hub1" in net.sh(spoke, "cat /etc/cloudcast/cc0-failover.sh").stdout
    lab.kill_host("hub1", net.prefix)
    # no apply yet: each spoke's agent misses hub1 and hands its addresses to hub2 by itself
    for src in SPOKES:
        for name, dst in SPOKES.items():
            if name != src and not net.reaches(src, dst, 20):
                pytest.fail(f"{src} -> {name} after hub1 died:\n" + "\n".join(agents(net).values()))
    hop = net.sh("spoke1", f"ping -n -c 1 -W 2 -t 1 {SPOKES['spoke3']}").stdout
    assert f"From {HUB2}" in hop, hop
    status = net.cli("status", str(net.spec), "--workdir", str(net.workdir))
    for spoke in SPOKES:
        assert f"{spoke}:  (failed over: hub1 down, its traffic on the standby)" in status.out, status.out
    res = net.apply()
    assert res.code == 1  # hub1 is down and apply says so
    assert "hub1 is down: spokes fail over to hub hub2" in res.err, res.err[-3000:]
    assert "hub1 (node hub1" in res.err
    for src in SPOKES:
        for name, dst in SPOKES.items():
            if name != src:
                assert net.reaches(src, dst), (src, name)
    hop = net.sh("spoke1", f"ping -n -c 1 -W 2 -t 1 {SPOKES['spoke3']}").stdout
    assert f"From {HUB2}" in hop, hop
    bad = next(ln for ln in res.out.splitlines() if ln.startswith("unreachable: "))
    assert all("hub1" in pair.split("->") for pair in bad.removeprefix("unreachable: ").split(", ")), bad
    # the failed pairs come with their tunnels' state: the spokes still dial the dead hub
    assert "tunnels of the unreachable pairs:" in res.out, res.out
    assert re.search(r"spoke1 -> hub1: endpoint 198\.18\.\d+\.\d+:\d+, handshake \d+s ago", res.out), res.out
