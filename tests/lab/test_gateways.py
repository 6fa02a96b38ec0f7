"""Site gateways over WireGuard on real lab hosts (issue 5, points 1 and 5).

examples/lab-gateways.json: three site LANs (bridges in 10.1-3.0.0/24), two members each that
run no VPN, one gateway per site (home's behind NAT) and a standby gateway in east. One
network is built for the module and taken through the scenarios in order: converge and
verify member to member, traffic really crosses the gateways, re-apply touches nothing, a
lost route comes back, then the primary east gateway dies: the other sites keep talking, east's
members recover through the standby by themselves (failover agents), and `apply` plans the same.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest

from tests.lab.labkit import LabNet, lab_prefix_fixture

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabNet]:
    for prefix in lab_prefix_fixture():
        yield LabNet(prefix, tmp_path_factory.mktemp("gateways"), "lab-gateways.json")


def test_a_three_sites_converge_and_members_reach_members(net: LabNet) -> None:
    res = net.apply()
    assert res.code == 0, res.err[-3000:]
    assert "90/90 pairs reachable over the overlay and site LANs" in res.out, res.out
    verify = net.cli("verify", str(net.spec), "--workdir", str(net.workdir), "--json")
    assert verify.code == 0, verify.out + verify.err
    doc = next(d for d in map(json.loads, verify.out.splitlines()) if d.get("type") == "verify")
    assert doc["failed_pairs"] == [] and "east1" in doc["nodes"] and "home2" in doc["nodes"]
    # members run no VPN; they are on their LAN (lan0) and keep eth0 for SSH only
    member = net.sh("east1", "ip -br link; ip route")
    assert "cc0" not in member.stdout and "lan0" in member.stdout
    assert re.search(r"10\.2\.0\.0/24 via 10\.1\.0\.10 dev lan0 proto 241", member.stdout), member.stdout
    assert net.sh("west1", "ping -c 1 -W 2 home2.gw.internal").returncode == 0


def test_b_member_traffic_crosses_both_gateways(net: LabNet) -> None:
    # TTL 1 dies at east's gateway (its LAN address), TTL 2 at west's gateway (over the tunnel)
    one = net.sh("east1", "ping -n -c 1 -W 2 -t 1 10.2.0.11")
    assert "From 10.1.0.10" in one.stdout and "Time to live exceeded" in one.stdout, one.stdout
    two = net.sh("east1", "ping -n -c 1 -W 2 -t 2 10.2.0.11")
    west_gw = net.sh("gw-west", "ip -4 -o addr show dev cc0").stdout.split()[3].split("/")[0]
    assert f"From {west_gw}" in two.stdout and "Time to live exceeded" in two.stdout, two.stdout

    def transfer() -> int:
        dump = net.sh("gw-east", "wg show cc0 transfer").stdout.split()
        return sum(int(x) for x in dump[1::3] + dump[2::3])

    before = transfer()
    assert net.sh("east1", "ping -n -q -c 20 -i 0.01 -s 1000 10.3.0.12").returncode == 0
    assert transfer() - before > 20 * 1000 * 2  # both ways, through gw-east's tunnel


def test_c_reapply_touches_nothing(net: LabNet) -> None:
    before = net.sh("east2", "stat -c %Y /etc/cloudcast/cc0-routes.sh").stdout
    res = net.apply()
    assert res.code == 0, res.err[-3000:]
    assert "already up to date; nothing changed" in res.err
    assert net.sh("east2", "stat -c %Y /etc/cloudcast/cc0-routes.sh").stdout == before


def test_d_a_lost_route_is_restored_and_a_foreign_one_left_alone(net: LabNet) -> None:
    net.sh("west2", "ip route del 10.1.0.0/24; ip route add 192.0.2.0/24 via 10.2.0.10")
    res = net.apply()
    assert res.code == 0, res.err[-3000:]
    assert "west2: route 3 CIDRs via 10.2.0.10" in res.err, res.err[-3000:]
    routes = net.sh("west2", "ip route").stdout
    assert "10.1.0.0/24 via 10.2.0.10" in routes and "192.0.2.0/24 via 10.2.0.10" in routes


def test_e_gateway_failure_others_keep_talking_and_the_standby_takes_over(net: LabNet) -> None:
    from cloudcast import lab

    assert net.reaches("east1", "10.2.0.11")
    lab.kill_host("gw-east", net.prefix)
    # the other sites never depended on east's gateway
    assert net.reaches("west1", "10.3.0.12", 3) and net.reaches("home1", "10.2.0.12", 3)
    standby = "10.1.0.11"  # gw-east2's LAN address (east1 and east2 are .12 and .13)
    # no apply yet: east's members re-route through the standby and the other gateways send
    # east's CIDR to it, each by its own failover agent, within seconds
    for src, dst in (("east1", "10.2.0.11"), ("east2", "10.3.0.12"), ("west2", "10.1.0.12")):
        assert net.reaches(src, dst, 20), (src, dst)
    assert f"10.2.0.0/24 via {standby} dev lan0 proto 241" in net.sh("east1", "ip route").stdout
    east = net.sh("gw-west", "wg show cc0 allowed-ips").stdout
    assert any("10.1.0.0/24" in line and "10.42.0.2/32" in line for line in east.splitlines()), east
    res = net.apply()
    assert res.code == 1  # gw-east is down, and apply says so
    assert "gw-east (node gw-east" in res.err, res.err[-3000:]
    assert "gw-east is down: site east fails over to gw-east2" in res.err, res.err[-3000:]
    assert net.sh("east1", "ip -4 -o addr show dev lan0").stdout.split()[3] == "10.1.0.12/24"
    routes = net.sh("east1", "ip route").stdout
    assert f"10.2.0.0/24 via {standby} dev lan0 proto 241" in routes, routes
    for src, dst in (("east1", "10.2.0.11"), ("east2", "10.3.0.12"), ("west2", "10.1.0.12")):
        assert net.reaches(src, dst), (src, dst)
    hop = net.sh("east1", "ping -n -c 1 -W 2 -t 1 10.2.0.11").stdout
    assert f"From {standby}" in hop, hop
    # every pair that does not involve the dead gateway passes
    matrix = res.out.splitlines()
    bad = next(line for line in matrix if line.startswith("unreachable: "))
    assert all("gw-east" in pair.split("->") for pair in bad.removeprefix("unreachable: ").split(", ")), bad

