"""Facts + desired state -> the list of actions for one host, AS DATA (pyinfra's habit).

Nothing here touches a host: the same inputs always give the same actions, so golden tests
pin them, `plan` can show them, and a host already in shape gets an empty list.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from cloudcast.bootstrap.desired import Desired, ManagedFile
from cloudcast.bootstrap.facts import Facts
from cloudcast.bootstrap.paths import TABLE, USERSPACE_ENV, Paths
from cloudcast.bootstrap.render import hosts_block, splice_hosts
from cloudcast.errors import BootstrapError

#: tool -> the Debian package that ships it
PACKAGES = {
    "wg": "wireguard-tools",
    "wg-quick": "wireguard-tools",
    "nft": "nftables",
    "ip": "iproute2",
    "ping": "iputils-ping",
    "wireguard-go": "wireguard-go",
}


@dataclass(frozen=True, slots=True)
class Action:
    """One change: a file to write (atomically, with its mode) or a shell command to run."""

    kind: str
    description: str
    command: str | None = None
    file: ManagedFile | None = None

    def golden(self) -> tuple[str, str, str | None, str | None]:
        """What golden tests pin (file contents are pinned by the render tests)."""
        return (self.kind, self.description, self.command, self.file.path if self.file else None)


def required_tools(facts: Facts, *, vpn: bool) -> tuple[str, ...]:
    if not vpn:
        return ("ip",)
    tools = ["wg", "wg-quick", "nft", "ip", "ping"]
    if not facts.kernel_wg:
        tools.append("wireguard-go")
    return tuple(tools)


def prepare_actions(facts: Facts, paths: Paths, *, vpn: bool) -> list[Action]:
    """Phase 1: missing packages, then the key pair (made on the host, only if missing)."""
    actions: list[Action] = []
    missing = [t for t in required_tools(facts, vpn=vpn) if not facts.has(t)]
    packages = sorted({PACKAGES[t] for t in missing})
    if packages:
        if not facts.has("apt-get"):
            raise BootstrapError(
                f"missing {', '.join(missing)} and no apt-get to install {' '.join(packages)}",
                hint=f"install {' '.join(packages)} on the host",
            )
        names = " ".join(packages)
        actions.append(
            Action(
                "package",
                f"install {names}",
                "export DEBIAN_FRONTEND=noninteractive; "
                "apt-get -q -o DPkg::Lock::Timeout=300 update >/dev/null && "
                f"apt-get -q -y -o DPkg::Lock::Timeout=300 install --no-install-recommends {names}",
            )
        )
    if vpn and facts.public_key is None:
        key = shlex.quote(paths.key)
        actions.append(
            Action(
                "keygen",
                f"generate the WireGuard key pair in {paths.key}",
                f"umask 077; mkdir -p /etc/wireguard; [ -s {key} ] || "
                f"{{ wg genkey > {key}.new && mv -f {key}.new {key}; }}",
            )
        )
    return actions


def syncconf_script(paths: Paths, peers: int) -> str:
    """`wg syncconf` from `wg-quick strip`, guarded so a failed strip never wipes the peers.

    `wg-quick strip` drops the PrivateKey (the config has none: PostUp loads it), and syncconf
    without one clears the interface's key, so the key file is put back into the input.
    """
    i = shlex.quote(paths.interface)
    key = shlex.quote(paths.key)
    keep = "peers left as they were"
    return f"""umask 077
s=$(mktemp /etc/wireguard/.{paths.interface}.sync.XXXXXX)
trap 'rm -f "$s" "$s.full"' EXIT
wg-quick strip {i} > "$s" || {{ echo 'wg-quick strip failed; {keep}' >&2; exit 3; }}
grep -qx '\\[Interface\\]' "$s" && [ "$(grep -cx '\\[Peer\\]' "$s")" -eq {peers} ] ||
  {{ echo 'the stripped config is not the one written; {keep}' >&2; exit 3; }}
{{ printf '[Interface]\\nPrivateKey = %s\\n' "$(cat {key})"
  grep -vx '\\[Interface\\]' "$s"; }} > "$s.full"
wg syncconf {i} "$s.full"
"""


def _peer_rows(desired: Desired) -> set[tuple[str, tuple[str, ...], int | None]]:
    return {(p.public_key, tuple(sorted(p.allowed_ips)), p.keepalive) for p in desired.peers}


def _peers_note(desired: Desired, facts: Facts) -> str:
    now = {p.public_key for p in facts.peers}
    want = {p.public_key: p.name for p in desired.peers}
    added = sorted(name for key, name in want.items() if key not in now)
    removed = len(now - set(want))
    parts = [f"+{n}" for n in added] + ([f"-{removed} old"] if removed else [])
    return f" ({', '.join(parts)})" if parts else ""


def _file_actions(desired: Desired, facts: Facts) -> tuple[list[Action], set[str]]:
    actions: list[Action] = []
    changed: set[str] = set()
    wanted = {f.path for f in desired.files}
    for f in desired.files:
        if facts.hashes.get(f.path) != f.sha256:
            actions.append(Action("write", f"write {f.path}", file=f))
            changed.add(f.path)
    for path in desired.paths.managed:
        if path not in wanted and path in facts.hashes:
            actions.append(Action("remove", f"remove {path}", f"rm -f {shlex.quote(path)}"))
            changed.add(path)
    if hosts_block(facts.hosts, desired.network) != desired.hosts_block:
        text = splice_hosts(facts.hosts, desired.network, desired.hosts_block)
        hosts = ManagedFile(desired.paths.hosts, text.encode(), 0o644)
        actions.append(
            Action("write", f"update the cloudcast {desired.network} block in /etc/hosts", file=hosts)
        )
    return actions, changed


def apply_actions(desired: Desired, facts: Facts) -> list[Action]:
    """Phase 2: files first, then the runtime steps their change (or drift) calls for."""
    actions, changed = _file_actions(desired, facts)
    p = desired.paths
    i = shlex.quote(p.interface)
    if desired.vpn:
        if p.firewall in changed or not facts.table:
            actions.append(Action("firewall", f"load nftables table inet {TABLE}", f"nft -f {p.firewall}"))
        if desired.forwards and (p.sysctl in changed or not facts.ip_forward):
            actions.append(Action("sysctl", "enable IPv4 forwarding", f"sysctl -q -p {p.sysctl}"))
        if not facts.iface:
            env = "" if facts.kernel_wg else f"{USERSPACE_ENV} "
            how = "" if facts.kernel_wg else " (wireguard-go)"
            actions.append(Action("up", f"bring up {p.interface}{how}", f"{env}wg-quick up {i}"))
        else:
            actions.extend(_runtime_actions(desired, facts, changed))
        if facts.systemd:
            if p.dropin in changed and facts.enabled:
                actions.append(Action("systemd", "reload systemd units", "systemctl daemon-reload"))
            if not facts.enabled:
                actions.append(
                    Action(
                        "enable",
                        f"enable wg-quick@{p.interface} at boot",
                        f"systemctl daemon-reload && systemctl enable -q wg-quick@{i}",
                    )
                )
    elif desired.routes:
        present = all(any(r.startswith(f"{c} via {v} ") for r in facts.routes) for c, v in desired.routes)
        if p.routes in changed or not present:
            via = desired.routes[0][1]
            actions.append(Action("routes", f"route {len(desired.routes)} CIDRs via {via}", f"sh {p.routes}"))
    return actions


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
        note = _peers_note(desired, facts)
        actions.append(
            Action(
                "syncconf",
                f"sync {p.interface} peers{note}",
                syncconf_script(p, len(desired.peers)),
            )
        )
    if desired.address and desired.address not in facts.addresses:
        actions.append(
            Action(
                "address",
                f"set {p.interface} address {desired.address}",
                f"ip -4 address flush dev {i} && ip address add {desired.address} dev {i}",
            )
        )
    if facts.mtu != desired.mtu:
        actions.append(
            Action(
                "mtu",
                f"set {p.interface} MTU {desired.mtu}",
                f"ip link set dev {i} mtu {desired.mtu}",
            )
        )
    if desired.services and not facts.route_localnet:
        actions.append(
            Action(
                "sysctl",
                f"allow DNAT to 127.0.0.1 from {p.interface} (route_localnet)",
                f"sysctl -q -w net.ipv4.conf.{p.interface}.route_localnet=1",
            )
        )
    return actions


def teardown_actions(desired: Desired, facts: Facts) -> list[Action]:
    """Remove everything cloudcast put on the host (for `destroy`)."""
    p = desired.paths
    i = shlex.quote(p.interface)
    actions: list[Action] = []
    if facts.iface:
        env = "" if facts.kernel_wg else f"{USERSPACE_ENV} "
        actions.append(
            Action("down", f"take down {p.interface}", f"{env}wg-quick down {i} || ip link del dev {i}")
        )
    if facts.enabled:
        actions.append(
            Action("disable", f"disable wg-quick@{p.interface}", f"systemctl disable -q wg-quick@{i}")
        )
    for cidr, via in desired.routes:
        if any(r.startswith(f"{cidr} via {via} ") for r in facts.routes):
            actions.append(Action("route", f"remove route {cidr}", f"ip route del {cidr} via {via}"))
    if facts.table:
        actions.append(
            Action("firewall", f"delete nftables table inet {TABLE}", f"nft delete table inet {TABLE}")
        )
    for path in p.managed:
        if path in facts.hashes:
            actions.append(Action("remove", f"remove {path}", f"rm -f {shlex.quote(path)}"))
    if facts.public_key is not None:
        actions.append(Action("remove", f"remove {p.key}", f"rm -f {shlex.quote(p.key)}"))
    if facts.systemd and p.dropin in facts.hashes:
        actions.append(Action("systemd", "reload systemd units", "systemctl daemon-reload"))
    if hosts_block(facts.hosts, desired.network) is not None:
        text = splice_hosts(facts.hosts, desired.network, None)
        hosts = ManagedFile(p.hosts, text.encode(), 0o644)
        actions.append(
            Action("write", f"remove the cloudcast {desired.network} block from /etc/hosts", file=hosts)
        )
    return actions
