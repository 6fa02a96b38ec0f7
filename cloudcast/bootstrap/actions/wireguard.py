"""The WireGuard interface: brought up, or reconciled with its config without dropping tunnels."""

from __future__ import annotations

import shlex

from cloudcast.bootstrap.actions.model import Action, ActionKind, shell
from cloudcast.bootstrap.desired import Desired
from cloudcast.bootstrap.facts import Facts
from cloudcast.bootstrap.paths import USERSPACE_ENV, Paths


def syncconf_script(paths: Paths, peers: int) -> str:
    """`wg syncconf` from `wg-quick strip`, guarded so a failed strip never wipes the peers.

    `wg-quick strip` drops the PrivateKey (the config has none: PostUp loads it), and syncconf
    without one clears the interface's key, so the key file is put back into the input.
    """
    return shell("syncconf.sh.j2", interface=paths.interface, key=paths.key, peers=peers)


def wireguard_actions(desired: Desired, facts: Facts, changed: set[str]) -> list[Action]:
    """The interface up (or in line with its config), and wg-quick's unit enabled at boot."""
    p = desired.paths
    actions: list[Action] = []
    if not facts.iface:
        env = "" if facts.kernel_wg else f"{USERSPACE_ENV} "
        how = "" if facts.kernel_wg else " (wireguard-go)"
        command = f"{env}wg-quick up {shlex.quote(p.interface)}"
        actions.append(Action(ActionKind.UP, f"bring up {p.interface}{how}", command))
    else:
        actions.extend(_runtime_actions(desired, facts, changed))
    if facts.systemd:
        if p.dropin in changed and facts.enabled:
            actions.append(Action(ActionKind.SYSTEMD, "reload systemd units", "systemctl daemon-reload"))
        if not facts.enabled:
            unit = shlex.quote(f"wg-quick@{p.interface}")
            command = f"systemctl daemon-reload && systemctl enable -q {unit}"
            actions.append(Action(ActionKind.ENABLE, f"enable wg-quick@{p.interface} at boot", command))
    return actions


def _peer_rows(desired: Desired) -> set[tuple[str, tuple[str, ...], int | None]]:
    return {(p.public_key, tuple(sorted(p.allowed_ips)), p.keepalive) for p in desired.peers}


def _peers_note(desired: Desired, facts: Facts) -> str:
    now = {p.public_key for p in facts.peers}
    want = {p.public_key: p.name for p in desired.peers}
    added = sorted(name for key, name in want.items() if key not in now)
    removed = len(now - set(want))
    parts = [f"+{n}" for n in added] + ([f"-{removed} old"] if removed else [])
    return f" ({', '.join(parts)})" if parts else ""


def _runtime_actions(desired: Desired, facts: Facts, changed: set[str]) -> list[Action]:
    """The interface is up: reconcile it with the config without dropping tunnels."""
    p = desired.paths
    i = shlex.quote(p.interface)
    actions: list[Action] = []
    running = {(f.public_key, f.allowed_ips, f.keepalive) for f in facts.peers}
    drift = (
        running != _peer_rows(desired)
        or facts.listen_port != desired.port
        or facts.iface_public_key != facts.public_key
    )
    if p.wg_conf in changed or drift:
        what = f"sync {p.interface} peers{_peers_note(desired, facts)}"
        actions.append(Action(ActionKind.SYNCCONF, what, syncconf_script(p, len(desired.peers))))
    if desired.address and desired.address not in facts.addresses:
        command = f"ip -4 address flush dev {i} && ip address add {shlex.quote(desired.address)} dev {i}"
        actions.append(Action(ActionKind.ADDRESS, f"set {p.interface} address {desired.address}", command))
    if facts.mtu != desired.mtu:
        command = f"ip link set dev {i} mtu {desired.mtu}"
        actions.append(Action(ActionKind.MTU, f"set {p.interface} MTU {desired.mtu}", command))
    if desired.services and not facts.route_localnet:
        command = f"sysctl -q -w {shlex.quote(f'net.ipv4.conf.{p.interface}.route_localnet=1')}"
        what = f"allow DNAT to 127.0.0.1 from {p.interface} (route_localnet)"
        actions.append(Action(ActionKind.SYSCTL, what, command))
    return actions


def wireguard_teardown(desired: Desired, facts: Facts) -> list[Action]:
    """The interface down and wg-quick's unit no longer enabled."""
    p = desired.paths
    i = shlex.quote(p.interface)
    actions: list[Action] = []
    if facts.iface:
        env = "" if facts.kernel_wg else f"{USERSPACE_ENV} "
        command = f"{env}wg-quick down {i} || ip link del dev {i}"
        actions.append(Action(ActionKind.DOWN, f"take down {p.interface}", command))
    if facts.enabled:
        command = f"systemctl disable -q {shlex.quote(f'wg-quick@{p.interface}')}"
        actions.append(Action(ActionKind.DISABLE, f"disable wg-quick@{p.interface}", command))
    return actions
