"""Phase 1: the packages a node needs, and its key pair (made on the host)."""

from __future__ import annotations

import posixpath
import shlex

from cloudcast.bootstrap.actions.model import Action, ActionKind
from cloudcast.bootstrap.facts import Facts
from cloudcast.bootstrap.paths import Paths
from cloudcast.errors import BootstrapError

#: tool -> the Debian package that ships it
PACKAGES = {
    "wg": "wireguard-tools",
    "wg-quick": "wireguard-tools",
    "nft": "nftables",
    "ip": "iproute2",
    "ping": "iputils-ping",
    "wireguard-go": "wireguard-go",
    "swanctl": "strongswan-swanctl",
    "charon": "strongswan-charon",
    "charon-systemd": "charon-systemd",
    "plugin-gcm": "libstrongswan-standard-plugins",
    "plugin-openssl": "libstrongswan-standard-plugins",
    "plugin-kernel-libipsec": "libcharon-extra-plugins",
    "openssl": "openssl",
}


def required_tools(
    facts: Facts, *, vpn: bool, transport: str = "wireguard", certs: bool = False
) -> tuple[str, ...]:
    if not vpn:
        return ("ip",)
    if transport == "ipsec":
        tools = ["swanctl", "nft", "ip", "ping", "plugin-gcm", "plugin-openssl"]
        tools += ["openssl"] if certs else []
        tools.append("charon-systemd" if facts.systemd else "charon")
        if not facts.kernel_esp:
            tools.append("plugin-kernel-libipsec")
        return tuple(tools)
    tools = ["wg", "wg-quick", "nft", "ip", "ping"]
    if not facts.kernel_wg:
        tools.append("wireguard-go")
    return tuple(tools)


def prepare_actions(
    facts: Facts, paths: Paths, *, vpn: bool, transport: str = "wireguard", certs: bool = False
) -> list[Action]:
    """Missing packages, then the node's key pair (made on the host, only if missing).

    The key is WireGuard's, or with IPsec `certs` the gateway's own IPsec key (EC P-256).
    """
    actions = _package_actions(facts, required_tools(facts, vpn=vpn, transport=transport, certs=certs))
    if vpn and transport == "wireguard" and facts.public_key is None:
        key = shlex.quote(paths.key)
        actions.append(
            Action(
                ActionKind.KEYGEN,
                f"generate the WireGuard key pair in {paths.key}",
                f"umask 077; mkdir -p /etc/wireguard; [ -s {key} ] || "
                f"{{ wg genkey > {key}.new && mv -f {key}.new {key}; }}",
            )
        )
    if vpn and transport == "ipsec" and certs and facts.ipsec_public_key is None:
        key = shlex.quote(paths.ipsec_key)
        actions.append(
            Action(
                ActionKind.KEYGEN,
                f"generate the IPsec key pair in {paths.ipsec_key}",
                f"umask 077; mkdir -p {shlex.quote(posixpath.dirname(paths.ipsec_key))}; [ -s {key} ] || "
                f"{{ openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out {key}.new "
                f"&& mv -f {key}.new {key}; }}",
            )
        )
    return actions


def _package_actions(facts: Facts, needed: tuple[str, ...]) -> list[Action]:
    missing = [t for t in needed if not facts.has(t)]
    packages = sorted({PACKAGES[t] for t in missing})
    if not packages:
        return []
    if not facts.has("apt-get"):
        raise BootstrapError(
            f"missing {', '.join(missing)} and no apt-get to install {' '.join(packages)}",
            hint=f"install {' '.join(packages)} on the host",
        )
    names = " ".join(packages)
    command = (
        "export DEBIAN_FRONTEND=noninteractive; "
        "apt-get -q -o DPkg::Lock::Timeout=300 update >/dev/null && "
        f"apt-get -q -y -o DPkg::Lock::Timeout=300 install --no-install-recommends {names}"
    )
    return [Action(ActionKind.PACKAGE, f"install {names}", command)]
