"""NAT to NAT in a mesh (issue 5, point 4): two nodes both behind NAT reach each other
through a relay (the first public node forwards for them); `verify` proves the pair.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli
from tests.lab.labkit import write_spec

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
    from cloudcast import lab

    spec = write_spec(tmp_path / "natnat.json", SPEC)
    env = {"CLOUDCAST_LAB_PREFIX": lab_prefix}
    res = run_cli("apply", str(spec), "--auto-approve", "--workdir", str(tmp_path / "state"), environ=env)
    assert res.code == 0, res.err[-3000:]
    assert "6/6 pairs reachable over the overlay" in res.out, res.out

    def sh(host: str, command: str) -> subprocess.CompletedProcess[str]:
        return lab.exec_in(host, ["sh", "-c", command], lab_prefix)

    # no direct tunnel between the NATed nodes: each has the relay as its only peer
    for host, other in (("home", "10.45.0.3"), ("cafe", "10.45.0.2")):
        peers = sh(host, "wg show cc0 allowed-ips").stdout.splitlines()
        assert len(peers) == 1 and f"{other}/32" in peers[0], peers
    hop = sh("home", "ping -n -c 1 -W 2 -t 1 cafe.nat.internal").stdout
    assert "From 10.45.0.1" in hop and "Time to live exceeded" in hop, hop
    assert sh("cafe", "ping -c 3 -i 0.2 -W 2 home.nat.internal").returncode == 0
    verify = run_cli("verify", str(spec), "--workdir", str(tmp_path / "state"), environ=env)
    assert verify.code == 0 and "6/6 pairs reachable" in verify.out, verify.out + verify.err
