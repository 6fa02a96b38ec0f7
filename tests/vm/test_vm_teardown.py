"""Issue 10, point 3e: destroy leaves a machine as it was before apply.

Two VMs made with `lab host-up --machine vm` stand in for the user's own servers: a `static`
site of them is applied (packages installed, cc0 under systemd, nft table, hosts block, sysctl)
and destroyed, and what cloudcast may touch is listed before and after: units, files,
interfaces, nft tables, /etc/hosts. Only the installed packages stay, as they should.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cloudcast import lab
from cloudcast.lab.registry import LabPaths
from tests.lab.labkit import LabNet
from tests.vm.conftest import in_parallel

pytestmark = [pytest.mark.vm, pytest.mark.timeout(900)]

HOSTS = {"own1": "198.18.3.10", "own2": "198.18.3.11"}

#: everything of cloudcast's a host could keep, one listing per line
INVENTORY = (
    # loaded units, not unit files: the packages apply installs bring their templates
    # (wg-quick@.service), and those stay with the packages
    "systemctl list-units --all --plain --no-legend 'wg-quick@*' 'cloudcast-*' 'strongswan*' | cut -d' ' -f1 | sort; "
    # files, not directories: installing wireguard-tools makes /etc/wireguard itself
    "find /etc/wireguard /etc/cloudcast /etc/systemd/system /etc/sysctl.d ! -type d 2>/dev/null | sort; "
    "ip -br link | cut -d' ' -f1 | sort; "
    "command -v nft >/dev/null && nft list tables; "
    "cat /etc/hosts; sysctl -n net.ipv4.ip_forward"
)


@pytest.fixture(scope="module")
def net(vm_prefix: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabNet]:
    calls = [
        lambda name=name, ip=ip: lab.host_up(name, ip, machine="vm", prefix=vm_prefix)
        for name, ip in HOSTS.items()
    ]
    in_parallel(list(calls))
    key = str(LabPaths(vm_prefix).key_file)
    spec = {
        "name": "own",
        "network": {"overlay": "10.17.0.0/24", "domain": "own.internal"},
        "ssh": {"private_key": key},
        "sites": [
            {
                "name": "servers",
                "provider": "static",
                "nodes": [{"name": name, "ssh": {"host": ip}} for name, ip in HOSTS.items()],
            }
        ],
    }
    yield LabNet(vm_prefix, tmp_path_factory.mktemp("teardown"), spec)


def test_destroy_restores_each_vm(net: LabNet) -> None:
    before = {name: net.sh(name, INVENTORY).stdout for name in HOSTS}
    assert all("cc0" not in text for text in before.values()), before
    res = net.apply()
    assert res.code == 0, res.err[-3000:]
    assert "2/2 pairs reachable over the overlay" in res.out, res.out
    applied = net.sh("own1", INVENTORY).stdout
    for mark in ("wg-quick@cc0.service", "cc0.conf", "table inet cloudcast", "own2.own.internal"):
        assert mark in applied, applied
    res = net.cli("destroy", str(net.spec), "--auto-approve", "--workdir", str(net.workdir))
    assert res.code == 0, res.err[-3000:]
    for name in HOSTS:
        after = net.sh(name, INVENTORY).stdout
        assert after == before[name], f"{name}:\n--- before\n{before[name]}\n--- after\n{after}"
        # the packages apply installed stay: removing them is not cloudcast's to do
        assert net.sh(name, "command -v wg nft").returncode == 0
