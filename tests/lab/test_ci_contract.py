"""Issue 12 on real lab hosts: verify's JUnit and Prometheus reports, status -detailed-exitcode,
`ssh -F` with the recorded host keys and StrictHostKeyChecking yes, `apply -target`, and destroy
showing what it removes. Real Terraform (lab provider), real lab hosts; run by the lead."""

from __future__ import annotations

import json
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import pytest

from tests.lab.labkit import LabNet, lab_prefix_fixture

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabNet]:
    for prefix in lab_prefix_fixture():
        network = LabNet(prefix, tmp_path_factory.mktemp("ci"), "lab.json")
        yield network
        network.cli("destroy", str(network.spec), "--workdir", str(network.workdir), "-auto-approve")


def records(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_a_apply_json_is_one_contract(net: LabNet) -> None:
    res = net.cli("apply", str(net.spec), "-auto-approve", "-json", "--workdir", str(net.workdir))
    assert res.code == 0, res.err[-3000:]
    kinds = [r["type"] for r in records(res.out)]  # run_cli validated each against the schema
    assert kinds[-2:] == ["verify", "apply"] and "plan" in kinds and "progress" in kinds


def test_b_verify_writes_junit_and_metrics(net: LabNet) -> None:
    junit, metrics = net.tmp / "verify.xml", net.tmp / "verify.prom"
    res = net.cli(
        "verify", str(net.spec), "--workdir", str(net.workdir), "-junit", str(junit), "-metrics", str(metrics)
    )
    assert res.code == 0, res.out + res.err
    root = ET.parse(junit).getroot()
    assert (root.get("tests"), root.get("failures")) == ("24", "0")  # 12 ordered pairs + 12 MTU probes
    text = metrics.read_text()
    assert text.count("cloudcast_pair_reachable{") == 12 and "} 0\n" not in text.split("# HELP cloudcast_pair_rtt")[0]
    assert 'cloudcast_pair_relayed{network="demo",src="charlie",dst="delta",path="relayed",via="alpha"} 1' in text
    assert 'cloudcast_pair_handshake_age_seconds{network="demo",src="alpha",dst="bravo"}' in text
    assert 'cloudcast_verify_ok{network="demo"} 1' in text


def test_c_status_detailed_exitcode_is_0_when_every_peer_is_fresh(net: LabNet) -> None:
    res = net.cli("status", str(net.spec), "--workdir", str(net.workdir), "-detailed-exitcode", "-json")
    assert res.code == 0, res.out + res.err
    [status] = records(res.out)
    assert status["stale"] == []


@pytest.mark.skipif(shutil.which("ssh") is None, reason="needs the OpenSSH client")
def test_d_ssh_config_checks_host_keys(net: LabNet) -> None:
    res = net.cli("output", str(net.spec), "--workdir", str(net.workdir), "--format", "ssh-config")
    assert res.code == 0, res.err
    assert "StrictHostKeyChecking yes" in res.out and "UserKnownHostsFile" in res.out
    config = net.tmp / "lab.ssh"
    config.write_text(res.out)
    for node in ("alpha", "delta"):
        ssh = subprocess.run(
            ["ssh", "-F", str(config), "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", node, "hostname"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert ssh.returncode == 0, ssh.stderr  # not "Host key verification failed"


def test_e_apply_target_bootstraps_only_those_hosts(net: LabNet) -> None:
    res = net.cli("apply", str(net.spec), "-auto-approve", "-target=alpha", "--workdir", str(net.workdir))
    assert res.code == 0, res.err[-3000:]
    assert "Resource targeting is in effect" in res.err
    assert "-target: only alpha" in res.err
    # "bootstrap NAME: what it did" lines (and "bootstrap -target: only alpha")
    words = [line.split() for line in res.err.splitlines() if line.strip().startswith("bootstrap ")]
    touched = {w[1].rstrip(":") for w in words if len(w) > 1 and w[1].endswith(":")}
    assert touched <= {"alpha", "-target"}, touched


def test_f_destroy_shows_what_it_removes_before_it_asks(net: LabNet) -> None:
    res = net.cli("destroy", str(net.spec), "--workdir", str(net.workdir))  # CI: no terminal
    assert res.code == 1
    assert "Destroy demo: 4 Terraform resources" in res.err
    assert "machines destroyed: alpha, bravo, charlie, delta" in res.err
    assert "confirmation needed" in res.err
