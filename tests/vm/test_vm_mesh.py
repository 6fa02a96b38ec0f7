"""Issue 10, points 1, 2, 3a and 3b: a mesh of VM and namespace hosts, made through Terraform.

examples/lab-vm.json: three VMs of the fresh lab image (vm3 behind NAT) and two namespace hosts
(ns2 behind NAT) on one simulated internet. One network for the module, in order: apply
installs WireGuard and nftables on the VMs from the lab's mirror and brings cc0 up with kernel
WireGuard under systemd, every ordered pair verifies; a re-apply changes nothing; a rebooted VM
is back in the mesh with no apply; destroy leaves no QEMU, tap, overlay or seed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cloudcast import lab
from cloudcast.lab import netns
from cloudcast.lab.registry import LabPaths
from tests.lab.labkit import LabNet
from tests.vm.conftest import qemu_pids, reboot_and_report

pytestmark = [pytest.mark.vm, pytest.mark.timeout(900)]

VMS = ("vm1", "vm2", "vm3")
NAMESPACES = ("ns1", "ns2")


@pytest.fixture(scope="module")
def net(vm_prefix: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabNet]:
    yield LabNet(vm_prefix, tmp_path_factory.mktemp("vmmesh"), "lab-vm.json")


def test_a_apply_installs_packages_and_runs_kernel_wireguard(net: LabNet) -> None:
    res = net.apply()
    assert res.code == 0, res.err[-3000:]
    assert "20/20 pairs reachable over the overlay" in res.out, res.out
    status = lab.status(net.prefix)
    assert {h.name: h.machine for h in status.hosts} == {
        "vm1": "vm", "vm2": "vm", "vm3": "vm", "ns1": "namespace", "ns2": "namespace",
    }  # fmt: skip
    for name in VMS:
        # the image has neither: the bootstrapper's real install ran, from the lab's mirror
        assert f"bootstrap {name}: install nftables wireguard-tools" in res.err, res.err
        assert f"bootstrap {name}: bring up cc0\n" in res.err
        assert f"bootstrap {name}: enable wg-quick@cc0 at boot" in res.err
        out = net.sh(
            name,
            "ip -d link show dev cc0; echo enabled=$(systemctl is-enabled wg-quick@cc0); "
            "echo wggo=$(pgrep -c -x wireguard-go); echo pid1=$(cat /proc/1/comm); "
            "cat /etc/apt/sources.list.d/*.list; nft list table inet cloudcast >/dev/null && echo nft=ok",
        ).stdout
        assert " wireguard " in out, out  # `ip -d link`: the kernel's WireGuard, not a TUN
        assert "enabled=enabled" in out and "wggo=0" in out and "pid1=systemd" in out, out
        assert "deb [trusted=yes] http://198.18.0.3/ ./" in out and "nft=ok" in out, out
    for name in NAMESPACES:  # beside them, namespace hosts keep userspace WireGuard
        assert f"bootstrap {name}: bring up cc0 (wireguard-go)" in res.err


def test_b_reapply_changes_nothing(net: LabNet) -> None:
    res = net.apply()
    assert res.code == 0, res.err[-3000:]
    assert "already up to date; nothing changed" in res.err, res.err
    assert "20/20 pairs reachable over the overlay" in res.out


def test_c_rebooted_vm_rejoins_without_apply(net: LabNet, capsys: pytest.CaptureFixture[str]) -> None:
    before = net.sh("vm3", "cat /proc/sys/kernel/random/boot_id").stdout
    reboot_and_report(net.prefix, "vm3", capsys)  # behind NAT: it must dial out again itself
    # SSH answers before boot is over: wait for systemd to finish starting the units
    net.sh("vm3", "systemctl is-system-running --wait", timeout=300)
    out = net.sh(
        "vm3",
        "cat /proc/sys/kernel/random/boot_id; systemctl is-active wg-quick@cc0; "
        "nft list tables; getent hosts vm1.vm.internal ns2.vm.internal; ip -4 route show dev cc0",
    ).stdout
    assert out.split()[0] != before.strip(), out
    assert "\nactive\n" in out and "table inet cloudcast" in out, out
    assert "10.16.0.1" in out and "10.16.0.5" in out and "10.16.0.0/24" in out, out
    res = net.cli("verify", str(net.spec), "--workdir", str(net.workdir))
    assert res.code == 0, res.out + res.err
    assert "20/20 pairs reachable over the overlay" in res.out


def test_d_destroy_leaves_no_vm_behind(net: LabNet) -> None:
    res = net.cli("destroy", str(net.spec), "--auto-approve", "--workdir", str(net.workdir))
    assert res.code == 0, res.err[-3000:]
    paths = LabPaths(net.prefix)
    assert lab.status(net.prefix).hosts == ()
    assert qemu_pids(net.prefix) == []
    hosts_dir = paths.state_dir / "hosts"
    assert not any(Path(hosts_dir).glob("*/disk.qcow2")) and not any(Path(hosts_dir).glob("*/seed"))
    left = [ns for ns in netns.names() if ns.startswith(paths.ns_prefix)]
    # only the lab's own internet and mirror remain (taps die with their host namespace)
    assert sorted(left) == sorted([paths.inet_ns, paths.mirror_ns]), left
