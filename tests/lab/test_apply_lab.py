"""Issue 3's scenarios end to end: real Terraform (lab provider), real sshd, real wireguard-go.

One network is built once for the module and taken through the scenarios in order: converge,
idempotence, secret scan, host-key change, an unreachable host, add/remove under load, a dead node.
"""

from __future__ import annotations

import copy
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.lab.labkit import LabNet, lab_prefix_fixture, write_spec

pytestmark = pytest.mark.lab

SPEC: dict[str, Any] = {
    "name": "six",
    "network": {"overlay": "10.15.0.0/24", "domain": "lab.internal"},
    "sites": [
        {
            "name": "lab",
            "provider": "lab",
            "nodes": [
                {"name": "n1"},
                {"name": "n2"},
                {"name": "n3"},
                {"name": "n4"},
                {"name": "n5", "behind_nat": True},
                {"name": "n6", "behind_nat": "double"},
            ],
        }
    ],
}


class Net(LabNet):
    def set_nodes(self, nodes: list[dict[str, Any]]) -> None:
        doc = copy.deepcopy(SPEC)
        doc["sites"][0]["nodes"] = nodes
        write_spec(self.spec, doc)


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    for prefix in lab_prefix_fixture():
        yield Net(prefix, tmp_path_factory.mktemp("six"), SPEC)


def test_a_six_nodes_with_nat_and_double_nat_converge(net: Net) -> None:
    res = net.apply()
    assert res.code == 0, res.err[-3000:]
    matrix = res.out
    assert "30/30" in matrix or matrix.count("✗") == 0, matrix
    ping = net.sh("n1", "ping -c 1 -W 2 n6.lab.internal && ping -c 1 -W 2 n5")
    assert ping.returncode == 0, ping.stdout + ping.stderr
    verify = net.cli("verify", str(net.spec), "--workdir", str(net.workdir), "--json")
    assert verify.code == 0, verify.out + verify.err
    assert '"failed_pairs": []' in verify.out


def test_d_reapply_without_change_touches_nothing(net: Net) -> None:
    before = net.sh("n2", "stat -c %Y /etc/wireguard/cc0.conf; pgrep -x wireguard-go").stdout
    res = net.apply()
    assert res.code == 0, res.err[-3000:]
    assert "already up to date; nothing changed" in res.err
    after = net.sh("n2", "stat -c %Y /etc/wireguard/cc0.conf; pgrep -x wireguard-go").stdout
    assert before == after  # same file mtime, same wireguard-go process


def test_g_no_private_key_anywhere(net: Net) -> None:
    keys = [net.sh(f"n{i}", "cat /etc/wireguard/cc0.key").stdout.strip() for i in range(1, 7)]
    assert all(len(k) == 44 for k in keys)
    for path in net.workdir.rglob("*"):
        if path.is_file() and path.stat().st_size < 50_000_000:
            data = path.read_bytes()
            for key in keys:
                assert key.encode() not in data, f"private key found in {path}"
    for text in net.outputs:
        for key in keys:
            assert key not in text


def test_f_changed_host_key_is_refused(net: Net) -> None:
    known = net.workdir / "known_hosts"
    original = known.read_text()
    fake = net.tmp / "fake"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(fake)], check=True)
    fake_pub = fake.with_suffix(".pub").read_text().split()[1]
    lines = original.splitlines()
    n2_ip = "198.18.1.11"
    changed = [
        re.sub(r"(ssh-ed25519) \S+", rf"\1 {fake_pub}", ln) if n2_ip in ln.split()[0] else ln for ln in lines
    ]
    assert changed != lines
    known.write_text("\n".join(changed) + "\n")
    try:
        res = net.apply()
        assert res.code == 1
        assert "n2" in res.err and "ssh-keygen -f" in res.err, res.err[-2000:]
    finally:
        known.write_text(original)


def test_e_unreachable_host_keeps_config_and_converges_later(net: Net) -> None:
    from cloudcast import lab

    conf_before = net.sh("n3", "sha256sum /etc/wireguard/cc0.conf").stdout
    net.set_nodes([*SPEC["sites"][0]["nodes"], {"name": "n7"}])
    lab.cut("n3", net.prefix)
    try:
        res = net.apply()
        assert res.code == 1
        assert "n3" in res.err, res.err[-2000:]
        assert net.sh("n3", "sha256sum /etc/wireguard/cc0.conf").stdout == conf_before
        ok = net.sh("n1", "ping -c 1 -W 2 n7.lab.internal")
        assert ok.returncode == 0  # the others converged
    finally:
        lab.uncut("n3", net.prefix)
    res = net.apply()
    assert res.code == 0, res.err[-3000:]
    assert net.sh("n3", "ping -c 1 -W 2 n7.lab.internal").returncode == 0


def test_c_add_and_remove_under_load_loses_no_packet(net: Net) -> None:
    target = net.sh("n1", "getent hosts n2.lab.internal").stdout.split()[0]
    result: dict[str, str] = {}

    def pinger() -> None:
        out = net.sh("n1", f"ping -n -i 0.05 -c 300 -W 1 {target}", timeout=120)
        result["out"] = out.stdout
        result["end"] = str(time.monotonic())

    thread = threading.Thread(target=pinger)
    thread.start()
    time.sleep(1)
    nodes = [n for n in SPEC["sites"][0]["nodes"] if n["name"] != "n4"] + [{"name": "n7"}, {"name": "n8"}]
    net.set_nodes(nodes)
    res = net.apply()
    applied_at = time.monotonic()
    thread.join()
    assert res.code == 0, res.err[-3000:]
    assert float(result["end"]) > applied_at, "the ping ended before apply did; lengthen it"
    assert " 0% packet loss" in result["out"], result["out"][-400:]


def test_b_one_node_killed_others_still_pass(net: Net) -> None:
    from cloudcast import lab

    lab.kill_host("n6", net.prefix)
    res = net.cli("verify", str(net.spec), "--workdir", str(net.workdir), "--json")
    assert res.code == 1
    import json

    records = [json.loads(line) for line in res.out.splitlines()]
    assert records[-1]["type"] == "error" and records[-1]["exit_status"] == 1, records[-1]
    data = next(r for r in records if r["type"] == "verify")
    failed = {tuple(p) for p in data["failed_pairs"]}
    assert failed and all("n6" in pair for pair in failed), failed
