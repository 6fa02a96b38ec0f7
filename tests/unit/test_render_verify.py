"""Verify and status output: probe parsing, the N x N matrix, the status table (no SSH)."""

from __future__ import annotations

import subprocess

from cloudcast.bootstrap.facts import parse_facts
from cloudcast.ssh.wgdump import PeerFact
from cloudcast.verify.probe import Probe, VerifyResult, parse_probes, probe_script
from cloudcast.verify.status import (
    NodeStatus,
    PeerStatus,
    StatusResult,
    explain_failed_pairs,
    peer_status,
    status_script,
)


def test_probe_script_is_posix_sh_and_probes_in_parallel() -> None:
    script = probe_script(["10.15.0.2", "10.15.0.3"], mtu=1420, retry_seconds=8)
    assert "-M do -s 1392" in script  # don't-fragment probe at MTU minus IPv4 + ICMP headers
    assert 'for t in 10.15.0.2 10.15.0.3; do probe "$t" & done' in script
    check = subprocess.run(["sh", "-n"], input=script, capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


def test_parse_probes() -> None:
    out = "ok 10.15.0.2 0.412 1\nfail 10.15.0.3\nok 10.15.0.4 x 0\nnoise\n"
    assert parse_probes(out) == {
        "10.15.0.2": Probe(True, 0.412, True),
        "10.15.0.3": Probe(False, error="no reply"),
        "10.15.0.4": Probe(True, None, False),
    }


def result() -> VerifyResult:
    r = VerifyResult(nodes=["alpha", "bravo", "charlie"], mtu=1420)
    r.matrix = {
        "alpha": {"bravo": Probe(True, 0.3, True), "charlie": Probe(True, 0.5, True)},
        "bravo": {"alpha": Probe(True, 0.3, True), "charlie": Probe(False, error="no reply")},
        "charlie": {"alpha": Probe(True, 0.5, False), "bravo": Probe(True, 0.4, True)},
    }
    return r


def test_failed_pairs_and_mtu_failures() -> None:
    r = result()
    assert r.failed_pairs == [("bravo", "charlie")]
    assert r.mtu_failed_pairs == [("charlie", "alpha")]
    assert not r.ok
    d = r.to_dict()
    assert d["failed_pairs"] == [["bravo", "charlie"]] and d["matrix"]["alpha"]["bravo"]["latency_ms"] == 0.3


def test_render_matrix() -> None:
    assert result().render_matrix() == (
        "         alpha   bravo  charlie\n"
        "alpha      ·       ✓       ✓\n"
        "bravo      ✓       ·       ✗\n"
        "charlie    ✓       ✓       ·\n"
        "5/6 pairs reachable over the overlay\n"
        "unreachable: bravo->charlie\n"
        "MTU 1420 does not fit (don't-fragment probe lost): charlie->alpha\n"
    )


def test_status_from_a_dump() -> None:
    script = status_script("cc0")
    assert "tail -n +2 | cut -f1,3-" in script  # neither the private key nor PSKs come back
    facts = parse_facts(
        "iface=1\n"
        "peer\tAAA=\t198.18.1.10:51871\t10.15.0.1/32\t1700000000\t2048\t4096\toff\n"
        "peer\tBBB=\t(none)\t10.15.0.4/32\t0\t0\t0\t25\n"
        "now=1700000030\n"
    )
    names = {"AAA=": "alpha"}
    a, b = (peer_status(p, facts.now, names) for p in facts.peers)
    assert a.name == "alpha" and a.handshake_age == 30 and not a.stale
    assert b.name.startswith("BBB=") and b.handshake_age is None and b.stale
    old = peer_status(PeerFact("AAA=", None, (), 1_700_000_000, 0, 0, None), 1_700_000_181, names)
    assert old.stale
    text = StatusResult(
        [NodeStatus("bravo", True, (a, b)), NodeStatus("delta", False, error="timed out")]
    ).render()
    assert "alpha" in text and "30s ago" in text and "STALE" in text and "delta: timed out" in text


def test_failed_pairs_are_explained_by_their_tunnels() -> None:
    r = result()
    live = StatusResult(
        [
            NodeStatus(
                "bravo",
                True,
                (
                    PeerStatus("alpha", "k1", "10.1.0.2:51820", 12, 4096, 4096),
                    PeerStatus("charlie", "k2", "10.1.0.3:51820", None, 0, 1480),
                ),
            ),
            NodeStatus("charlie", False, error="charon is not running"),
        ]
    )
    lines = explain_failed_pairs([*r.failed_pairs, ("charlie", "alpha"), ("alpha", "charlie")], live)
    assert lines == [
        "bravo -> charlie: endpoint 10.1.0.3:51820, handshake never, rx 0 B, tx 1.4 KiB",
        "charlie -> alpha: charon is not running on charlie",
    ]  # alpha has no status here: its pair has no tunnel to explain
    r.tunnels = lines
    text = r.render_matrix()
    assert "tunnels of the unreachable pairs:\n  bravo -> charlie: endpoint 10.1.0.3:51820" in text
    assert r.to_dict()["tunnels"] == lines


def test_status_shows_a_node_running_on_its_standby() -> None:
    facts = parse_facts("iface=1\nfailed_over=hub1\nnow=1700000000\n")
    assert facts.failed_over == ("hub1",)
    node = NodeStatus("spoke1", True, (), failed_over=facts.failed_over)
    text = StatusResult([node, NodeStatus("spoke2", True, ())]).render()
    assert "spoke1:  (failed over: hub1 down, its traffic on the standby)" in text
    assert "spoke2:\n" in text
    assert node.to_dict()["failed_over"] == ["hub1"]
    assert "failed_over=" in status_script("cc0") and "/run/cloudcast-cc0-failover.state" in status_script("cc0")
