"""IPsec gateways that authenticate by certificates, on real lab hosts (issue 5, point 2).

examples/lab-ipsec.json with `network.ipsec_auth: certificates` and one member per site: each
gateway makes its own key pair (the private key never leaves it), cloudcast signs a
certificate for its public key with the network's CA, and charon authenticates every IKE SA
with those certificates. Re-apply changes nothing; a gateway whose key is replaced gets a new
certificate and its connections are reloaded.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest

from tests.conftest import EXAMPLES
from tests.lab.labkit import LabNet, lab_prefix_fixture

pytestmark = pytest.mark.lab

GATEWAYS = ("sgw-east", "sgw-west", "sgw-home")
KEY = "/etc/swanctl/private/cloudcast-cc0.pem"


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabNet]:
    doc = json.loads((EXAMPLES / "lab-ipsec.json").read_text())
    doc["network"]["ipsec_auth"] = "certificates"
    for site in doc["sites"]:
        site["nodes"] = site["nodes"][:2]  # the gateway and one member
    for prefix in lab_prefix_fixture():
        yield LabNet(prefix, tmp_path_factory.mktemp("ipsec-certs"), doc)


def test_a_gateways_authenticate_by_certificates_lan_to_lan(net: LabNet) -> None:
    res = net.apply()
    assert res.code == 0, res.err[-3000:]
    assert "30/30 pairs reachable over the overlay and site LANs" in res.out, res.out
    assert "new IPsec certificate authority" in res.err
    assert f"generate the IPsec key pair in {KEY}" in res.err
    assert "preshared keys" not in res.err
    for gw in GATEWAYS:
        assert len(net.ike_sas(gw)) == 2, net.sh(gw, "swanctl --list-sas").stdout
        conf = net.sh(gw, "cat /etc/swanctl/conf.d/cloudcast-cc0.conf").stdout
        assert "auth = pubkey" in conf and "secret" not in conf
        certs = net.sh(gw, "swanctl --list-certs").stdout
        assert f'subject:  "CN={gw}.ipsec.internal"' in certs, certs
        assert 'subject:  "CN=cloudcast labipsec CA"' in certs, certs
    log = net.sh("sgw-east", "cat /var/log/cloudcast-cc0-charon.log").stdout
    assert re.search(r"authentication of 'sgw-west\.ipsec\.internal' with ECDSA\S* successful", log), log[-3000:]


def test_b_the_private_keys_stay_on_the_gateways(net: LabNet) -> None:
    for gw in GATEWAYS:
        key = net.sh(gw, f"stat -c %a {KEY}; head -1 {KEY}").stdout.split()
        assert key[0] == "600" and "PRIVATE" in key[2], key
    found = [
        str(path)
        for path in net.tmp.rglob("*")
        if path.is_file() and "PRIVATE KEY" in path.read_text(errors="replace")
    ]
    # the only private key on the controller is the CA's, in the 0600 secrets file
    assert found == [str(net.workdir / "secrets.json")], found
    assert (net.workdir / "secrets.json").stat().st_mode & 0o777 == 0o600
    assert not any("PRIVATE KEY" in text for text in net.outputs)


def test_c_reapply_changes_nothing(net: LabNet) -> None:
    before = {gw: net.ike_sas(gw) for gw in GATEWAYS}
    certs = json.loads((net.workdir / "cloudcast.state.json").read_text())["certs"]
    res = net.apply()
    assert res.code == 0, res.err[-3000:]
    assert "already up to date; nothing changed" in res.err
    assert {gw: net.ike_sas(gw) for gw in GATEWAYS} == before
    assert json.loads((net.workdir / "cloudcast.state.json").read_text())["certs"] == certs


def test_d_a_new_gateway_key_gets_a_new_certificate(net: LabNet) -> None:
    state = net.workdir / "cloudcast.state.json"
    old = json.loads(state.read_text())["certs"]["sgw-west"]
    assert net.sh("sgw-west", f"rm -f {KEY}").returncode == 0
    res = net.apply()
    assert res.code == 0, res.err[-3000:]
    assert "sgw-west: generate the IPsec key pair" in res.err
    assert "sgw-west: reload 2 IPsec connections" in res.err, res.err[-3000:]
    certs = json.loads(state.read_text())["certs"]
    assert certs["sgw-west"] != old
    assert "30/30 pairs reachable" in res.out, res.out
    assert state.read_text().count("BEGIN CERTIFICATE") == len(GATEWAYS) + 1  # and the CA's
