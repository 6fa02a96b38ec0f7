"""`apply --lab`: cloud specs rehearsed on lab hosts of the same shape (issue 3, point 8)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.lab.labkit import rehearse

pytestmark = pytest.mark.lab


def test_weave_style_rehearsal(lab_prefix: str, tmp_path: Path) -> None:
    res = rehearse(lab_prefix, tmp_path, "weave-style.json", "apply", "--auto-approve")
    assert res.code == 0, res.err[-3000:]
    assert "20/20 pairs reachable" in res.out, res.out
    # the home workstation is behind double NAT in the rehearsal too
    out = rehearse(lab_prefix, tmp_path, "weave-style.json", "output", "--format", "json")
    hosts = {h["name"]: h for h in json.loads(out.out)["hosts"]}
    assert hosts["workstation"]["private_ip"].startswith("100.65.")
    gone = rehearse(lab_prefix, tmp_path, "weave-style.json", "destroy", "--auto-approve")
    assert gone.code == 0, gone.err[-2000:]


def test_fakevpc_rehearsal_with_overlay_only_echo_service(lab_prefix: str, tmp_path: Path) -> None:
    from cloudcast import lab

    res = rehearse(lab_prefix, tmp_path, "fakevpc.json", "apply", "--auto-approve")
    assert res.code == 0, res.err[-3000:]
    assert "20/20 pairs reachable" in res.out
    # the service listens on loopback only; the firewall forwards it from the overlay address
    lab.exec_in(
        "server2",
        ["sh", "-c", "setsid socat TCP-LISTEN:8888,bind=127.0.0.1,reuseaddr,fork EXEC:cat >/dev/null 2>&1 &"],
        lab_prefix,
        check=True,
    )
    for node in ("server1", "server2", "server3", "server4", "server5"):
        probe = lab.exec_in(
            node,
            ["sh", "-c", "echo hello-$(hostname) | timeout 5 socat -t 2 - TCP:server2.vpcdomain:8888"],
            lab_prefix,
        )
        assert probe.stdout.strip() == f"hello-{node}", (node, probe.stdout, probe.stderr)
    out = rehearse(lab_prefix, tmp_path, "fakevpc.json", "output", "--format", "json")
    server2 = next(h for h in json.loads(out.out)["hosts"] if h["name"] == "server2")
    # from the simulated internet (the root namespace's one link into it): refused or dropped
    outside = subprocess.run(
        ["timeout", "5", "socat", "-t", "2", "-", f"TCP:{server2['public_ip']}:8888,connect-timeout=3"],
        input="x\n", capture_output=True, text=True,
    )
    assert outside.stdout.strip() != "x"
    assert outside.returncode != 0
    gone = rehearse(lab_prefix, tmp_path, "fakevpc.json", "destroy", "--auto-approve")
    assert gone.code == 0, gone.err[-2000:]
