"""`apply --lab` of the LAN examples (issue 5, point 5): each on lab hosts of the same shape.

p2p-lan-mesh.json: three static LANs with a WireGuard gateway each (one behind NAT).
cloudcaster-hub.json: two AWS regions, hub and spoke over IPsec, members behind each gateway.
Every site becomes a lab LAN in its CIDR; members reach the other LANs through the gateways.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.lab.labkit import rehearse

pytestmark = pytest.mark.lab


def test_p2p_lan_mesh_rehearsal(lab_prefix: str, tmp_path: Path) -> None:
    res = rehearse(lab_prefix, tmp_path, "p2p-lan-mesh.json", "apply", "--auto-approve")
    assert res.code == 0, res.err[-3000:]
    assert "30/30 pairs reachable over the overlay and site LANs" in res.out, res.out
    gone = rehearse(lab_prefix, tmp_path, "p2p-lan-mesh.json", "destroy", "--auto-approve")
    assert gone.code == 0, gone.err[-2000:]


def test_cloudcaster_ipsec_hub_rehearsal(lab_prefix: str, tmp_path: Path) -> None:
    from cloudcast import lab

    res = rehearse(lab_prefix, tmp_path, "cloudcaster-hub.json", "apply", "--auto-approve")
    assert res.code == 0, res.err[-3000:]
    assert "12/12 pairs reachable over the overlay and site LANs" in res.out, res.out
    # app-east (10.10.0.11) reaches app-west (10.20.0.11) through hub1 and gw-west over IPsec
    sas = lab.exec_in("hub1", ["swanctl", "--list-sas"], lab_prefix).stdout
    assert "ESTABLISHED" in sas and "local  10.10.0.0/16" in sas and "remote 10.20.0.0/16" in sas, sas
    ping = lab.exec_in("app-east", ["ping", "-c", "1", "-W", "2", "app-west.cloudcaster.internal"], lab_prefix)
    assert ping.returncode == 0, ping.stdout
    status = rehearse(lab_prefix, tmp_path, "cloudcaster-hub.json", "status")
    assert status.code == 0 and "ESTABLISHED" in status.out and "STALE" not in status.out, status.out
    gone = rehearse(lab_prefix, tmp_path, "cloudcaster-hub.json", "destroy", "--auto-approve")
    assert gone.code == 0, gone.err[-2000:]


def test_clique_rehearsal_peers_colocated_nodes_over_their_private_network(lab_prefix: str, tmp_path: Path) -> None:
    """As on Linode and Vultr, nodes of one cloud site share its private network (a lab LAN in
    the rehearsal) and their tunnels run over it; across sites they use public addresses."""
    import json

    res = rehearse(lab_prefix, tmp_path, "clique.json", "apply", "--auto-approve")
    assert res.code == 0, res.err[-3000:]
    assert "30/30 pairs reachable over the overlay" in res.out, res.out
    status = rehearse(lab_prefix, tmp_path, "clique.json", "status", "--json")
    assert status.code == 0, status.out + status.err
    doc = next(d for d in map(json.loads, status.out.splitlines()) if "nodes" in d)
    ln1 = next(n for n in doc["nodes"] if n["name"] == "ln1")
    endpoints = {p["name"]: p["endpoint"] for p in ln1["peers"]}
    # linode-newark is 10.16.0.0/24: ln2 and ln3 at .11 and .12 on its LAN
    assert endpoints["ln2"] == "10.16.0.11:51820" and endpoints["ln3"] == "10.16.0.12:51820", endpoints
    assert all(endpoints[f"vu{i}"].startswith("198.") for i in (1, 2, 3)), endpoints
    vu1 = next(n for n in doc["nodes"] if n["name"] == "vu1")
    assert {p["name"]: p["endpoint"] for p in vu1["peers"]}["vu2"] == "10.17.0.11:51820"
    gone = rehearse(lab_prefix, tmp_path, "clique.json", "destroy", "--auto-approve")
    assert gone.code == 0, gone.err[-2000:]
