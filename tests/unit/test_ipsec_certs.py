"""IPsec with certificates, without hosts: the CA, issuing and reusing certificates, the
swanctl config, the key made on the host, and the reload when a certificate changes."""

from __future__ import annotations

import base64
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from cloudcast.bootstrap.actions import apply_actions, prepare_actions, teardown_actions
from cloudcast.bootstrap.desired import IpsecCert, desired_state
from cloudcast.bootstrap.facts import Facts, parse_facts
from cloudcast.bootstrap.pki import ensure_ca, issue
from cloudcast.errors import BootstrapError
from cloudcast.plan import build_plan
from cloudcast.state.store import Secrets, State, WorkDir, load_secrets, load_state, save_secrets, save_state
from tests.unit.test_lans_units import P, inventory, ipsec_converged, lab_lan_spec, psks


def public_der_b64() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


def test_the_ca_is_made_once_and_certificates_are_reused_while_they_match() -> None:
    secrets, state = Secrets(), State()
    assert ensure_ca("net", secrets, state) is True
    assert "PRIVATE KEY" in secrets.ca_key and "PRIVATE KEY" not in state.ca_cert
    assert ensure_ca("net", secrets, state) is False  # kept
    pub = public_der_b64()
    pem = issue(secrets, state, "gwa", "gwa.vpc.internal", pub)
    cert = x509.load_pem_x509_certificate(pem.encode())
    ca = x509.load_pem_x509_certificate(state.ca_cert.encode())
    cert.verify_directly_issued_by(ca)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["gwa.vpc.internal"]
    assert issue(secrets, state, "gwa", "gwa.vpc.internal", pub) == pem  # same key: same bytes
    new_key = issue(secrets, state, "gwa", "gwa.vpc.internal", public_der_b64())
    assert new_key != pem  # the host made a new key: a new certificate
    renamed = issue(secrets, state, "gwa", "gwa.example.org", public_der_b64())
    assert "gwa.example.org" in str(x509.load_pem_x509_certificate(renamed.encode()).subject)
    assert repr(secrets).count("set") == 1 and "PRIVATE" not in repr(secrets)


def test_a_lost_ca_key_makes_a_new_ca_and_drops_the_old_certificates() -> None:
    secrets, state = Secrets(), State()
    ensure_ca("net", secrets, state)
    issue(secrets, state, "gwa", "gwa.vpc.internal", public_der_b64())
    old_ca = state.ca_cert
    lost = Secrets()
    assert ensure_ca("net", lost, state) is True
    assert state.ca_cert != old_ca and state.certs == {}
    with pytest.raises(BootstrapError, match="CA is missing"):
        issue(Secrets(), state, "gwa", "gwa.vpc.internal", public_der_b64())
    with pytest.raises(BootstrapError, match="cannot be read"):
        issue(lost, state, "gwa", "gwa.vpc.internal", base64.b64encode(b"junk").decode())


def test_the_ca_key_lives_in_the_secrets_file_and_the_certificates_in_the_state(tmp_path: Path) -> None:
    wd = WorkDir(tmp_path)
    secrets, state = Secrets(psk={"a|b": "x"}), State()
    ensure_ca("net", secrets, state)
    issue(secrets, state, "gwa", "gwa.vpc.internal", public_der_b64())
    save_secrets(wd, secrets)
    save_state(wd, state)
    assert (wd.secrets_file.stat().st_mode & 0o777) == 0o600
    assert "PRIVATE KEY" not in wd.state_file.read_text()
    assert load_secrets(wd).ca_key == secrets.ca_key
    assert load_state(wd).certs == state.certs and load_state(wd).ca_cert == state.ca_cert


def cert_setup() -> tuple[object, IpsecCert]:
    plan, _ = build_plan(lab_lan_spec(transport="ipsec", ipsec_auth="certificates"))
    secrets, state = Secrets(), State()
    ensure_ca(plan.name, secrets, state)
    pem = issue(secrets, state, "gwb", plan.node("gwb").fqdn, public_der_b64())
    return plan, IpsecCert(pem, state.ca_cert)


def test_swanctl_authenticates_by_certificate_and_holds_no_secret() -> None:
    plan, cert = cert_setup()
    assert plan.ipsec_auth == "certificates"  # type: ignore[attr-defined]
    gwb = desired_state(plan, plan.node("gwb"), inventory(plan), {}, psks(plan), cert=cert)  # type: ignore[arg-type]
    conf = gwb.file(P.swanctl_conf)
    assert conf is not None
    text = conf.content.decode()
    assert "auth = pubkey" in text and "certs = cloudcast-cc0.pem" in text
    assert "cacerts = cloudcast-cc0-ca.pem" in text and "send_cert = always" in text
    assert "auth = psk" not in text and "secrets {" not in text and "secret =" not in text
    assert gwb.file(P.ipsec_cert).content.decode() == cert.cert  # type: ignore[union-attr]
    assert gwb.file(P.ipsec_ca).content.decode() == cert.ca  # type: ignore[union-attr]
    assert gwb.file(P.ipsec_cert).mode == 0o644  # type: ignore[union-attr]
    assert all("PRIVATE KEY" not in f.content.decode() for f in gwb.files)
    # without a certificate (teardown): the same config, and no certificate files to write
    bare = desired_state(plan, plan.node("gwb"), inventory(plan), {}, psks(plan))  # type: ignore[arg-type]
    assert bare.file(P.swanctl_conf) == conf and bare.file(P.ipsec_cert) is None


def test_the_key_is_made_on_the_host_and_a_new_certificate_reloads_the_connections() -> None:
    plan, cert = cert_setup()
    tooled = Facts(tools=frozenset({"ip", "apt-get", "openssl"}))
    keygen = prepare_actions(tooled, P, vpn=True, transport="ipsec", certs=True)
    assert [a.kind for a in keygen][-1] == "keygen"
    assert "openssl genpkey -algorithm EC" in (keygen[-1].command or "") and "umask 077" in (keygen[-1].command or "")
    bare = prepare_actions(Facts(tools=frozenset({"ip", "apt-get"})), P, vpn=True, transport="ipsec", certs=True)
    assert " openssl" in (bare[0].command or "")  # the package
    has_key = replace(tooled, ipsec_public_key=public_der_b64())
    assert [a.kind for a in prepare_actions(has_key, P, vpn=True, transport="ipsec", certs=True)] == ["package"]
    gwb = desired_state(plan, plan.node("gwb"), inventory(plan), {}, psks(plan), cert=cert)  # type: ignore[arg-type]
    up = ipsec_converged(gwb, has_key)
    assert apply_actions(gwb, up) == []
    renewed = replace(up, hashes={**up.hashes, P.ipsec_cert: "0" * 64})
    assert [a.kind for a in apply_actions(gwb, renewed)] == ["write", "reload", "sas"]
    # teardown renders without certificates (it needs no secret nor CA), as `destroy` does
    bare = desired_state(plan, plan.node("gwb"), inventory(plan), {}, psks(plan))  # type: ignore[arg-type]
    gone = [a.description for a in teardown_actions(bare, up)]
    assert f"remove {P.ipsec_key}" in gone and f"remove {P.ipsec_cert}" in gone


def test_facts_report_the_ipsec_public_key_only(tmp_path: Path) -> None:
    key = tmp_path / "k.pem"
    subprocess.run(
        ["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(key)],
        check=True,
    )
    der = subprocess.run(
        ["openssl", "pkey", "-in", str(key), "-pubout", "-outform", "DER"], check=True, capture_output=True
    ).stdout
    facts = parse_facts(f"ipsec_pubkey={base64.b64encode(der).decode()}\nnow=1\n")
    assert facts.ipsec_public_key is not None
    loaded = serialization.load_der_public_key(base64.b64decode(facts.ipsec_public_key))
    assert isinstance(loaded, ec.EllipticCurvePublicKey)
