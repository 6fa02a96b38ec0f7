"""What one host should look like: rendered files plus the runtime state they imply."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Network

from cloudcast.bootstrap.paths import TABLE, USERSPACE_ENV, Paths
from cloudcast.bootstrap.render import render
from cloudcast.errors import BootstrapError
from cloudcast.inventory.hosts import Inventory
from cloudcast.plan.model import NetworkPlan, NodePlan, ServicePlan, pair_id


@dataclass(frozen=True, slots=True)
class ManagedFile:
    path: str
    content: bytes = field(repr=False)  # may hold preshared keys: never printed
    mode: int = 0o600

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


@dataclass(frozen=True, slots=True)
class PeerSpec:
    name: str
    public_key: str
    allowed_ips: tuple[str, ...]
    endpoint: str | None
    keepalive: int | None
    psk: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class HostEntry:
    address: str
    fqdn: str
    name: str


@dataclass(frozen=True)
class Desired:
    """The target state of one node. Pure data, computed without touching the host."""

    node: str
    network: str
    paths: Paths
    vpn: bool
    address: str | None  # overlay address with the overlay's prefix, e.g. 10.15.0.1/16
    mtu: int
    port: int
    peers: tuple[PeerSpec, ...]
    left_out: tuple[str, ...]  # peers with no public key yet (never reached)
    forwards: bool
    services: tuple[ServicePlan, ...]
    routes: tuple[tuple[str, str], ...]  # (cidr, via) on gateway members
    hosts_block: str
    files: tuple[ManagedFile, ...]

    def file(self, path: str) -> ManagedFile | None:
        return next((f for f in self.files if f.path == path), None)


def _endpoint(address: str | None, port: int) -> str | None:
    if not address:
        return None
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _address(inventory: Inventory, name: str, kind: str | None) -> str | None:
    """The address peers dial for `name` (None: not in the inventory, or it dials out)."""
    host = next((h for h in inventory.hosts if h.name == name), None)
    return host.endpoint(kind) if host else None


def host_entries(plan: NetworkPlan, inventory: Inventory) -> tuple[HostEntry, ...]:
    """`overlay_ip fqdn name` for every VPN node; members by their private address when known."""
    entries = []
    known = {h.name: h for h in inventory.hosts}
    for node in plan.nodes:
        address: str | None = node.overlay_ip
        if not node.vpn:
            host = known.get(node.name)
            address = node.private_ip or (host.private_ip if host else None)
        if address:
            entries.append(HostEntry(address, node.fqdn, node.name))
    return tuple(entries)


def desired_state(
    plan: NetworkPlan,
    node: NodePlan,
    inventory: Inventory,
    public_keys: Mapping[str, str],
    psks: Mapping[str, str],
    *,
    systemd: bool = False,
    userspace: bool = False,
) -> Desired:
    """Render node's files. `public_keys`: every node's WireGuard public key known so far."""
    paths = Paths(plan.interface)
    common = {"network": plan.name, "node": node.name}
    hosts_block = render("hosts.j2", network=plan.name, entries=host_entries(plan, inventory))
    services = tuple(s for s in plan.services if s.node == node.name) if node.vpn else ()
    files: list[ManagedFile] = []
    peers: list[PeerSpec] = []
    left_out: list[str] = []
    routes: tuple[tuple[str, str], ...] = ()
    address = None
    if node.vpn:
        prefix = IPv4Network(plan.overlay).prefixlen
        address = f"{node.overlay_ip}/{prefix}"
        for link in node.peers:
            key = public_keys.get(link.peer)
            if not key:
                left_out.append(link.peer)
                continue
            pair = pair_id(node.name, link.peer)
            if pair not in psks:
                raise BootstrapError(f"node {node.name}: no preshared key for pair {pair}")
            peers.append(
                PeerSpec(
                    name=link.peer,
                    public_key=key,
                    allowed_ips=tuple(sorted(link.allowed_ips)),
                    endpoint=_endpoint(_address(inventory, link.peer, link.endpoint), plan.port),
                    keepalive=link.keepalive,
                    psk=psks[pair],
                )
            )
        host = inventory.host(node.name)
        site = plan.site(node.site)
        # a gateway's members reach its overlay address from the site's LAN
        lan = site.cidr if plan.topology != "mesh" and node.name in site.gateways else None
        ssh_ports = sorted({22, host.ssh_port})
        files.append(
            ManagedFile(
                paths.firewall,
                render(
                    "firewall.nft.j2",
                    **common,
                    table=TABLE,
                    interface=plan.interface,
                    port=plan.port,
                    ssh_ports=ssh_ports,
                    lan=lan,
                    overlay_ip=node.overlay_ip,
                    forwards=node.forwards,
                    services=services,
                ).encode(),
            )
        )
        files.append(
            ManagedFile(
                paths.wg_conf,
                render(
                    "wg.conf.j2",
                    **common,
                    key_path=paths.key,
                    address=address,
                    port=plan.port,
                    mtu=plan.mtu,
                    route_localnet=bool(services),
                    firewall=paths.firewall,
                    peers=peers,
                ).encode(),
            )
        )
        if node.forwards:
            files.append(ManagedFile(paths.sysctl, render("sysctl.conf.j2", **common).encode(), 0o644))
        if systemd and userspace:
            text = render("wg-quick-dropin.conf.j2", userspace_env=USERSPACE_ENV)
            files.append(ManagedFile(paths.dropin, text.encode(), 0o644))
    elif node.gateway and node.routes:
        gateway = next((h for h in inventory.hosts if h.name == node.gateway), None)
        via = gateway.private_ip if gateway else None
        if not via:
            raise BootstrapError(f"node {node.name}: gateway {node.gateway} has no private address")
        routes = tuple((cidr, via) for cidr in node.routes)
        text = render("routes.sh.j2", **common, gateway=node.gateway, via=via, routes=node.routes)
        files.append(ManagedFile(paths.routes, text.encode(), 0o700))
    return Desired(
        node=node.name,
        network=plan.name,
        paths=paths,
        vpn=node.vpn,
        address=address,
        mtu=plan.mtu,
        port=plan.port,
        peers=tuple(peers),
        left_out=tuple(left_out),
        forwards=node.forwards and node.vpn,
        services=services,
        routes=routes,
        hosts_block=hosts_block,
        files=tuple(files),
    )
