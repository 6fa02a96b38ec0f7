"""Issue 10, point 3c: IPsec gateways on VMs use kernel ESP under charon-systemd.

Two site LANs, each with a strongSwan gateway that is a VM (its own kernel: xfrm, no
kernel-libipsec) and a member that is a namespace host on the same LAN bridge. In order: apply
installs strongSwan from the mirror and verifies LAN to LAN; a gateway reboots and its site
is back with no apply.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.lab.labkit import LabNet
from tests.vm.conftest import reboot_and_report

pytestmark = [pytest.mark.vm, pytest.mark.timeout(900)]

GATEWAYS = ("vgw-east", "vgw-west")
SPEC: dict[str, Any] = {
    "name": "vmipsec",
    "network": {"overlay": "10.44.0.0/24", "transport": "ipsec", "topology": "gateways", "domain": "vmipsec.internal"},
    "sites": [
        {"name": "east", "provider": "lab", "cidr": "10.21.0.0/24",
         "nodes": [{"name": "vgw-east", "role": "gateway", "machine": "vm"}, {"name": "veast1"}]},
        {"name": "west", "provider": "lab", "cidr": "10.22.0.0/24",
         "nodes": [{"name": "vgw-west", "role": "gateway", "machine": "vm"}, {"name": "vwest1"}]},
    ],
}  # fmt: skip
PAIRS = "12/12 pairs reachable over the overlay and site LANs"


@pytest.fixture(scope="module")
def net(vm_prefix: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabNet]:
    yield LabNet(vm_prefix, tmp_path_factory.mktemp("vmipsec"), SPEC)


def _datapath(net: LabNet, gateway: str) -> str:
    return net.sh(
        gateway,
        "echo xfrm=$(ip xfrm state | grep -c '^src'); ip link show dev ipsec0 >/dev/null 2>&1 && echo libipsec; "
        "echo unit=$(systemctl is-active strongswan); echo charon=$(pgrep -c -x charon-systemd); "
        "swanctl --list-sas",
    ).stdout


def test_a_gateways_on_vms_use_kernel_esp(net: LabNet) -> None:
    res = net.apply()
    assert res.code == 0, res.err[-3000:]
    assert PAIRS in res.out, res.out
    for gw in GATEWAYS:
        # installing charon-systemd starts charon; the bootstrapper restarts it with its config
        assert re.search(rf"bootstrap {gw}: (re)?start charon \(kernel ESP\)", res.err), res.err
        install = next(line for line in res.err.splitlines() if line.startswith(f"bootstrap {gw}: install "))
        assert "charon-systemd" in install and "strongswan-swanctl" in install, install
        out = _datapath(net, gw)
        assert "libipsec" not in out and "unit=active" in out and "charon=1" in out, out
        assert int(out.split("xfrm=")[1].split()[0]) >= 2, out  # SAs in the kernel, both ways
        # ESP in the guest's kernel, in UDP: cloudcast forces encapsulation (`encap = yes`) so
        # the SAs cross NAT and firewalls that pass only UDP
        assert "INSTALLED, TUNNEL-in-UDP, ESP:AES_GCM_16-128" in out, out
    # the members (namespace hosts) reach each other's LAN through the VM gateways
    ping = net.sh("veast1", "ping -n -c 3 -i 0.2 vwest1.vmipsec.internal")
    assert ping.returncode == 0, ping.stdout


def test_b_rebooted_gateway_brings_its_site_back(net: LabNet, capsys: pytest.CaptureFixture[str]) -> None:
    reboot_and_report(net.prefix, "vgw-east", capsys)
    net.sh("vgw-east", "systemctl is-system-running --wait", timeout=300)  # boot is over
    deadline = time.monotonic() + 90
    while "INSTALLED" not in (out := _datapath(net, "vgw-east")) and time.monotonic() < deadline:
        time.sleep(2)
    assert "unit=active" in out and "INSTALLED" in out, out
    res = net.cli("verify", str(net.spec), "--workdir", str(net.workdir))
    assert res.code == 0, res.out + res.err
    assert PAIRS in res.out
