"""Issue 10, point 3d: gateways with a standby, the failover agent as a systemd unit on a VM.

Site east: its primary gateway and one member are VMs, its standby gateway a namespace host;
site west: a gateway and a member, namespace hosts. In order: apply converges and verifies,
the member's failover agent runs as a systemd unit; then the primary gateway's VM is powered
off (a power cut, not a shutdown) and the member moves to the standby by itself, with no apply.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from cloudcast import lab
from tests.lab.labkit import LabNet

pytestmark = [pytest.mark.vm, pytest.mark.timeout(900)]

SPEC: dict[str, Any] = {
    "name": "vmfo",
    "network": {"overlay": "10.45.0.0/24", "topology": "gateways", "domain": "vmfo.internal"},
    "sites": [
        {"name": "east", "provider": "lab", "cidr": "10.23.0.0/24",
         "nodes": [{"name": "fgw-east", "role": "gateway", "machine": "vm"},
                   {"name": "fgw-east2", "role": "gateway"},
                   {"name": "feast1", "machine": "vm"}]},
        {"name": "west", "provider": "lab", "cidr": "10.24.0.0/24",
         "nodes": [{"name": "fgw-west", "role": "gateway"}, {"name": "fwest1"}]},
    ],
}  # fmt: skip
PAIRS = "20/20 pairs reachable over the overlay and site LANs"
STANDBY = "10.23.0.11"  # fgw-east2 on east's LAN (gateways first: .10, .11; then feast1 .12)
WEST_MEMBER = "10.24.0.11"
UNIT = "cloudcast-cc0-failover.service"


@pytest.fixture(scope="module")
def net(vm_prefix: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabNet]:
    yield LabNet(vm_prefix, tmp_path_factory.mktemp("vmfailover"), SPEC)


def test_a_member_runs_its_failover_agent_under_systemd(net: LabNet) -> None:
    res = net.apply()
    assert res.code == 0, res.err[-3000:]
    assert PAIRS in res.out, res.out
    out = net.sh(
        "feast1",
        f"echo pid1=$(cat /proc/1/comm); echo active=$(systemctl is-active {UNIT}); "
        f"echo enabled=$(systemctl is-enabled {UNIT}); ip -4 route show proto 241",
    ).stdout
    assert "pid1=systemd" in out and "active=active" in out and "enabled=enabled" in out, out
    assert "10.24.0.0/24 via 10.23.0.10 dev eth1" in out, out  # via the primary, on the guest's LAN NIC


def test_b_primary_powered_off_member_moves_to_the_standby(net: LabNet, capsys: pytest.CaptureFixture[str]) -> None:
    assert net.reaches("feast1", WEST_MEMBER, 30)
    started = time.monotonic()
    lab.kill_host("fgw-east", net.prefix)  # QEMU killed: the guest is gone at once, no goodbye
    assert net.reaches("feast1", WEST_MEMBER, 60), net.agent_state("feast1")
    with capsys.disabled():
        print(f"\n[vm] feast1: reached west through the standby {time.monotonic() - started:.1f} s after the power cut")
    routes = net.sh("feast1", "ip -4 route show proto 241").stdout
    assert f"10.24.0.0/24 via {STANDBY} dev eth1" in routes, routes
    hop = net.sh("feast1", f"ping -n -c 1 -W 3 -t 1 {WEST_MEMBER}").stdout
    assert f"From {STANDBY}" in hop, hop  # the first hop is the standby now
    assert net.sh("fwest1", "ping -n -c 1 -W 3 10.23.0.12").returncode == 0  # and back
