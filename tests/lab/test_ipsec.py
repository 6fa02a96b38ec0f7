"""IPsec site gateways on real lab hosts (issue 5, points 2 and 5).

examples/lab-ipsec.json: three site LANs with two members each and one strongSwan gateway per
site (IKEv2, AES-GCM, a PSK per pair; the home gateway behind NAT starts its own SAs). This
kernel has no ESP, so charon runs kernel-libipsec (userspace ESP through the TUN ipsec0),
one charon per host with its own /etc and /run. One network for the module, in order:
converge and verify LAN to LAN, SAs in `status`, re-apply reloads nothing, adding a member
reloads nothing either, the PSKs are the pipeline's, a dead charon is started again.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.lab.labkit import LabNet, lab_prefix_fixture

pytestmark = pytest.mark.lab

GATEWAYS = ("sgw-east", "sgw-west", "sgw-home")


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabNet]:
    for prefix in lab_prefix_fixture():
        yield LabNet(prefix, tmp_path_factory.mktemp("ipsec"), "lab-ipsec.json")


def test_a_ipsec_gateways_converge_lan_to_lan(net: LabNet) -> None:
    res = net.apply()
    assert res.code == 0, res.err[-3000:]
    assert "72/72 pairs reachable over the overlay and site LANs" in res.out, res.out
    assert "don't-fragment probes at MTU 1400 passed" in res.out
    # no kernel ESP here: userspace ESP through kernel-libipsec's TUN device
    gw = net.sh("sgw-east", "ip -br link show dev ipsec0; cat /etc/strongswan.d/cloudcast-cc0.conf")
    assert gw.returncode == 0 and "load = yes" in gw.stdout, gw.stdout + gw.stderr
    assert "start charon (kernel-libipsec)" in res.err
    # one IKE SA per gateway pair, a child SA per pair of carried CIDRs, all installed
    sas = net.sh("sgw-east", "swanctl --list-sas").stdout
    assert len(net.ike_sas("sgw-east")) == 2, sas
    assert sas.count("INSTALLED, TUNNEL-in-UDP, ESP:AES_GCM_16-128") == 8, sas
    assert "local  10.11.0.0/24" in sas and "remote 10.12.0.0/24" in sas and "remote 10.13.0.0/24" in sas


def test_b_member_traffic_goes_through_the_sas_and_status_shows_them(net: LabNet) -> None:
    def lan_bytes() -> int:
        out = net.sh("sgw-east", "swanctl --list-sas").stdout
        block = out.split("--10-11-0-0_24--10-12-0-0_24:")[1].split("remote 10.12.0.0/24")[0]
        return sum(int(n) for n in re.findall(r"(\d+) bytes", block))

    before = lan_bytes()
    ping = net.sh("seast1", "ping -n -q -c 10 -i 0.01 -s 1000 swest2.ipsec.internal")
    assert ping.returncode == 0, ping.stdout
    assert lan_bytes() - before >= 10 * 1000 * 2
    status = net.cli("status", str(net.spec), "--workdir", str(net.workdir))
    assert status.code == 0, status.err
    lines = [ln for ln in status.out.splitlines() if ln.startswith("  sgw-")]
    assert len(lines) == 6 and "STALE" not in status.out, status.out
    assert all("ESTABLISHED" in ln and "4/4 child SAs" in ln and re.search(r"established \d+s ago", ln) for ln in lines)


def test_c_reapply_reloads_nothing(net: LabNet) -> None:
    before = {gw: net.ike_sas(gw) for gw in GATEWAYS}
    res = net.apply()
    assert res.code == 0, res.err[-3000:]
    assert "already up to date; nothing changed" in res.err
    assert {gw: net.ike_sas(gw) for gw in GATEWAYS} == before


def test_d_a_new_member_changes_no_gateway_config(net: LabNet) -> None:
    import json

    doc = json.loads(net.spec.read_text())
    doc["sites"][1]["nodes"].append({"name": "swest3"})
    net.spec.write_text(json.dumps(doc))
    before = {gw: net.ike_sas(gw) for gw in GATEWAYS}
    res = net.apply()
    assert res.code == 0, res.err[-3000:]
    assert "90/90 pairs reachable" in res.out, res.out
    assert "reload" not in res.err and "charon" not in res.err.replace("charon (kernel-libipsec) and", "")
    assert {gw: net.ike_sas(gw) for gw in GATEWAYS} == before
    assert net.sh("shome2", "ping -c 1 -W 2 swest3.ipsec.internal").returncode == 0


def test_e_each_pair_has_the_pipelines_own_psk(net: LabNet) -> None:
    from cloudcast.state import WorkDir, load_secrets

    psk = load_secrets(WorkDir(net.workdir)).psk
    conf = net.sh("sgw-east", "stat -c %a /etc/swanctl/conf.d/cloudcast-cc0.conf; cat /etc/swanctl/conf.d/*.conf")
    assert conf.stdout.startswith("600\n")
    assert f"secret = 0s{psk['sgw-east--sgw-west']}" in conf.stdout
    assert f"secret = 0s{psk['sgw-east--sgw-home']}" in conf.stdout
    assert psk["sgw-east--sgw-west"] != psk["sgw-east--sgw-home"]
    assert psk["sgw-east--sgw-west"] not in net.sh("sgw-home", "cat /etc/swanctl/conf.d/*.conf").stdout


def test_f_a_dead_charon_is_started_again(net: LabNet) -> None:
    net.sh("sgw-west", 'kill "$(cat /run/charon.pid)"; sleep 0.5')
    assert net.sh("swest1", "ping -c 1 -W 1 10.11.0.11").returncode != 0
    res = net.apply()
    assert res.code == 0, res.err[-3000:]
    assert "sgw-west: start charon (kernel-libipsec) and load the connections" in res.err, res.err[-3000:]
    assert "90/90 pairs reachable" in res.out, res.out
