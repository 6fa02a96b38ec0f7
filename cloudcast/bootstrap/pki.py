"""IPsec certificates: a CA cloudcast keeps, and a certificate for each gateway's own key.

Each gateway makes its key pair itself (the private key never leaves it); the controller only
sees the public key, and signs a certificate for it with the network's CA. Certificates are kept
in cloudcast's state and reused while they still match (same key, same CA, not near expiry), so a
re-apply writes nothing.
"""

from __future__ import annotations

import base64
import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cloudcast.errors import BootstrapError
from cloudcast.state.store import Secrets, State

CA_YEARS = 10
CERT_DAYS = 3 * 365
RENEW_DAYS = 30  # a certificate this close to expiry is replaced at the next apply


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _ca_pair(secrets: Secrets, state: State) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate] | None:
    if not (secrets.ca_key and state.ca_cert):
        return None
    key = serialization.load_pem_private_key(secrets.ca_key.encode(), password=None)
    cert = x509.load_pem_x509_certificate(state.ca_cert.encode())
    if not isinstance(key, ec.EllipticCurvePrivateKey) or cert.public_key() != key.public_key():
        return None
    if cert.not_valid_after_utc - _now() < dt.timedelta(days=CERT_DAYS + RENEW_DAYS):
        return None
    return key, cert


def ensure_ca(network: str, secrets: Secrets, state: State) -> bool:
    """Make the network's CA unless a valid one is kept; True when a new one was made.

    A new CA invalidates every certificate issued by the old one (they are issued again).
    """
    if _ca_pair(secrets, state) is not None:
        return False
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"cloudcast {network} CA")])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365 * CA_YEARS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .sign(key, hashes.SHA256())
    )
    secrets.ca_key = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    state.ca_cert = cert.public_bytes(serialization.Encoding.PEM).decode()
    state.certs.clear()
    return True


def issue(secrets: Secrets, state: State, node: str, fqdn: str, public_key_der_b64: str) -> str:
    """The certificate (PEM) of `node` for its public key: the kept one if still good, else a new one."""
    pair = _ca_pair(secrets, state)
    if pair is None:
        raise BootstrapError("the IPsec CA is missing or invalid", hint="run `cloudcast apply` again")
    ca_key, ca_cert = pair
    try:
        public = serialization.load_der_public_key(base64.b64decode(public_key_der_b64))
    except ValueError as exc:
        raise BootstrapError(f"node {node}: its IPsec public key cannot be read ({exc})") from exc
    if not isinstance(public, ec.EllipticCurvePublicKey):
        raise BootstrapError(f"node {node}: its IPsec key is not an EC key")
    kept = state.certs.get(node)
    if kept:
        cert = x509.load_pem_x509_certificate(kept.encode())
        if (
            cert.public_key() == public
            and cert.issuer == ca_cert.subject
            and _san(cert) == [fqdn]
            and cert.not_valid_after_utc - _now() > dt.timedelta(days=RENEW_DAYS)
        ):
            return kept
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, fqdn)]))
        .issuer_name(ca_cert.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CERT_DAYS))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(fqdn)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    state.certs[node] = pem
    return pem


def _san(cert: x509.Certificate) -> list[str]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return list(ext.value.get_values_for_type(x509.DNSName))
