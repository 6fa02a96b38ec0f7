"""What one host should look like: rendered files plus the runtime state they imply."""

from __future__ import annotations

import hashlib
import posixpath
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Network
from itertools import product

from cloudcast.bootstrap.paths import LIBIPSEC_IF, ROUTE_PROTO, TABLE, USERSPACE_ENV, Paths
from cloudcast.bootstrap.policy import policy_context
from cloudcast.bootstrap.render import render
from cloudcast.errors import BootstrapError, UnsafeValueError
from cloudcast.inventory.hosts import Inventory
from cloudcast.plan.model import NetworkPlan, NodePlan, ServicePlan, pair_id
from cloudcast.providers import HOST_ROUTED
from cloudcast.sinks import ip_or_none, is_hostname


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
class ChildSpec:
    """One IPsec CHILD_SA: a pair of traffic selectors."""

    name: str
    local_ts: str
    remote_ts: str


@dataclass(frozen=True, slots=True)
class ConnSpec:
    """One IKE connection (to one peer) of an IPsec node."""

    name: str
    peer: str
    remote_addr: str | None  # None: the peer is behind NAT and dials us
    local_id: str
    remote_id: str
    initiator: bool  # this side starts the SAs (and restarts them after a failure)
    children: tuple[ChildSpec, ...]
    psk: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class IpsecCert:
    """A gateway's certificate and its CA's (PEM): public, its key stays on the host."""

    cert: str
    ca: str


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
    transport: str = "wireguard"
    conns: tuple[ConnSpec, ...] = ()  # IPsec connections
    libipsec: bool = False  # IPsec in userspace (kernel-libipsec): the kernel has no ESP
    lo_addresses: tuple[str, ...] = ()  # addresses kept on lo (an IPsec node's overlay /32)
    systemd: bool = False

    @property
    def ipsec(self) -> bool:
        return self.vpn and self.transport == "ipsec"

    @property
    def initiated_children(self) -> tuple[tuple[str, str], ...]:
        """(connection, child) this node starts: the ones `apply` makes sure are up."""
        return tuple((c.name, ch.name) for c in self.conns if c.initiator for ch in c.children)

    def file(self, path: str) -> ManagedFile | None:
        return next((f for f in self.files if f.path == path), None)


#: a WireGuard key as `wg` prints it: 32 bytes of base64 (keys reach configs and commands)
WG_KEY = re.compile(r"[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=")


def _endpoint(address: str | None, port: int) -> str | None:
    if not address:
        return None
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _address(inventory: Inventory, name: str, kind: str | None) -> str | None:
    """The address peers dial for `name` (None: not in the inventory, or it dials out).

    An IP address (normalised) or a host name: anything else is refused, as it would be
    written into Endpoint and remote_addrs lines.
    """
    host = next((h for h in inventory.hosts if h.name == name), None)
    address = host.endpoint(kind) if host else None
    if not address:
        return None
    ip = ip_or_none(address)
    if ip is None and not is_hostname(address):
        raise UnsafeValueError(f"node {name}: address {address[:60]!r} is not an IP address or host name")
    return ip or address


def _names(node: NodePlan) -> NodePlan:
    """`node`, refused unless its name and FQDN are host names (they go into hosts lines and IDs)."""
    if not (is_hostname(node.name) and is_hostname(node.fqdn)):
        raise UnsafeValueError(f"node {node.name[:60]!r}: {node.fqdn[:80]!r} is not a host name")
    return node


def host_entries(plan: NetworkPlan, inventory: Inventory) -> tuple[HostEntry, ...]:
    """`overlay_ip fqdn name` for every VPN node; members by their private address when known."""
    entries = []
    known = {h.name: h for h in inventory.hosts}
    for node in map(_names, plan.nodes):
        address: str | None = node.overlay_ip
        if not node.vpn:
            host = known.get(node.name)
            address = node.private_ip or (host.private_ip if host else None)
        # a member known by a host name has no address to name it by
        address = ip_or_none(address)
        if address:
            entries.append(HostEntry(address, node.fqdn, node.name))
    return tuple(entries)


@dataclass(frozen=True, slots=True)
class _Inputs:
    """What every step rendering one node's state reads."""

    plan: NetworkPlan
    node: NodePlan
    inventory: Inventory
    paths: Paths
    public_keys: Mapping[str, str]  # WireGuard keys only
    psks: Mapping[str, str]
    systemd: bool
    userspace: bool  # wireguard-go
    libipsec: bool  # IPsec through kernel-libipsec
    cert: IpsecCert | None

    @property
    def common(self) -> dict[str, str]:
        """What every template names in its header."""
        return {"network": self.plan.name, "node": self.node.name}

    @property
    def services(self) -> tuple[ServicePlan, ...]:
        return tuple(s for s in self.plan.services if s.node == self.node.name) if self.node.vpn else ()


@dataclass(frozen=True, slots=True)
class _Part:
    """What the node's kind (WireGuard or IPsec node, member) adds to its state."""

    files: tuple[ManagedFile, ...] = ()
    address: str | None = None
    peers: tuple[PeerSpec, ...] = ()
    left_out: tuple[str, ...] = ()
    conns: tuple[ConnSpec, ...] = ()
    routes: tuple[tuple[str, str], ...] = ()
    lo_addresses: tuple[str, ...] = ()


def desired_state(
    plan: NetworkPlan,
    node: NodePlan,
    inventory: Inventory,
    public_keys: Mapping[str, str],
    psks: Mapping[str, str],
    *,
    systemd: bool = False,
    userspace: bool = False,
    kernel_esp: bool = False,
    cert: IpsecCert | None = None,
) -> Desired:
    """Render node's files. `public_keys`: every node's WireGuard public key known so far.

    `userspace`: the kernel has no WireGuard (wireguard-go); `kernel_esp`: the kernel does
    ESP itself (else IPsec runs through strongSwan's kernel-libipsec). `cert`: the node's IPsec
    certificate and the CA's (ipsec_auth certificates; without it, e.g. for teardown, the
    certificate files are not part of the state).
    """
    ipsec = plan.transport == "ipsec"
    ctx = _Inputs(
        plan=plan,
        node=node,
        inventory=inventory,
        paths=Paths(plan.interface),
        # keys come from hosts: one that is not a WireGuard key is no key (the peer is left out)
        public_keys={name: key for name, key in public_keys.items() if WG_KEY.fullmatch(key)},
        psks=psks,
        systemd=systemd,
        userspace=userspace,
        libipsec=ipsec and not kernel_esp,
        cert=cert,
    )
    hosts_block = render("hosts.j2", network=plan.name, entries=host_entries(plan, inventory))
    part = _member(ctx) if not node.vpn else (_ipsec_node(ctx) if ipsec else _wireguard_node(ctx))
    files = list(part.files)
    if node.failover and not ipsec and (node.vpn or part.routes):
        files += _failover_files(ctx, part.routes)
    return Desired(
        node=node.name,
        network=plan.name,
        paths=ctx.paths,
        vpn=node.vpn,
        address=part.address,
        mtu=plan.mtu,
        port=plan.port,
        peers=part.peers,
        left_out=part.left_out,
        forwards=node.forwards and node.vpn,
        services=ctx.services,
        routes=part.routes,
        hosts_block=hosts_block,
        files=tuple(files),
        transport=plan.transport,
        conns=part.conns,
        libipsec=ctx.libipsec and node.vpn,
        lo_addresses=part.lo_addresses,
        systemd=systemd,
    )


def _firewall_file(ctx: _Inputs) -> ManagedFile:
    plan, node = ctx.plan, ctx.node
    site = plan.site(node.site)
    # a gateway's members reach its overlay address from the site's LAN
    lan = site.cidr if plan.topology != "mesh" and node.name in site.gateways else None
    text = render(
        "firewall.nft.j2",
        **ctx.common,
        table=TABLE,
        interface=plan.interface,
        port=plan.port,
        ssh_ports=sorted({22, ctx.inventory.host(node.name).ssh_port}),
        lan=lan,
        lan_ip=_private_ip(plan, ctx.inventory, node.name) if lan else None,
        overlay_ip=node.overlay_ip,
        forwards=node.forwards,
        services=ctx.services,
        ipsec=plan.transport == "ipsec",
        libipsec=ctx.libipsec,
        libipsec_if=LIBIPSEC_IF,
        policy=policy_context(plan, node, lambda name: _private_ip(plan, ctx.inventory, name)),
    )
    return ManagedFile(ctx.paths.firewall, text.encode())


def _sysctl_files(ctx: _Inputs) -> list[ManagedFile]:
    """The forwarding sysctls, on a node that routes for others."""
    if not ctx.node.forwards:
        return []
    return [ManagedFile(ctx.paths.sysctl, render("sysctl.conf.j2", **ctx.common).encode(), 0o644)]


def _wireguard_node(ctx: _Inputs) -> _Part:
    """The firewall, wg-quick's config (its peers: those whose key is known), sysctls, drop-in."""
    plan, paths = ctx.plan, ctx.paths
    firewall = _firewall_file(ctx)
    address = f"{ctx.node.overlay_ip}/{IPv4Network(plan.overlay).prefixlen}"
    peers, left_out = _wg_peers(ctx)
    conf = render(
        "wg.conf.j2",
        **ctx.common,
        key_path=paths.key,
        address=address,
        port=plan.port,
        mtu=plan.mtu,
        route_localnet=bool(ctx.services),
        firewall=paths.firewall,
        peers=peers,
    )
    files = [firewall, ManagedFile(paths.wg_conf, conf.encode()), *_sysctl_files(ctx)]
    if ctx.systemd and ctx.userspace:
        text = render("wg-quick-dropin.conf.j2", userspace_env=USERSPACE_ENV)
        files.append(ManagedFile(paths.dropin, text.encode(), 0o644))
    return _Part(tuple(files), address=address, peers=tuple(peers), left_out=tuple(left_out))


def _ipsec_node(ctx: _Inputs) -> _Part:
    """The firewall, sysctls, strongSwan's configs, and the overlay address kept on lo."""
    files = [_firewall_file(ctx), *_sysctl_files(ctx)]
    conns = ipsec_conns(ctx.plan, ctx.node, ctx.inventory, ctx.psks)
    lo_addresses = (f"{ctx.node.overlay_ip}/32",)
    files += [*_ipsec_files(ctx, conns), *_routes_files(ctx, (), lo_addresses)]
    return _Part(tuple(files), conns=conns, lo_addresses=lo_addresses)


def _member(ctx: _Inputs) -> _Part:
    """A member routes through its gateway, with host routes where no provider does it."""
    plan, node, inventory = ctx.plan, ctx.node, ctx.inventory
    if not (node.gateway and node.routes and node.provider in HOST_ROUTED):
        return _Part()
    via = _private_ip(plan, inventory, node.gateway)
    if not via:
        raise BootstrapError(f"node {node.name}: gateway {node.gateway} has no private address")
    # the site's other VPN nodes (a standby gateway or hub) are reached on the LAN itself
    direct = [
        (f"{other.overlay_ip}/32", _private_ip(plan, inventory, other.name))
        for other in plan.nodes
        if other.site == node.site and other.vpn and other.name != node.gateway
    ]
    routes = tuple([(cidr, via) for cidr in node.routes] + [(c, v) for c, v in direct if v])
    return _Part(tuple(_routes_files(ctx, routes, ())), routes=routes)


IKE_PROPOSALS = "aes128gcm16-prfsha256-ecp256, aes256gcm16-prfsha384-ecp384, aes256gcm16-prfsha256-modp3072"
ESP_PROPOSALS = "aes128gcm16, aes256gcm16"


def route_dst(cidr: str) -> str:
    """A destination as `ip route show` prints it (a host route without its /32)."""
    return cidr.removesuffix("/32")


def _private_ip(plan: NetworkPlan, inventory: Inventory, name: str) -> str | None:
    """A node's IP address on its site's network: planned (AWS, Linode, lab LAN), else observed.

    None when unknown, or when it is not an IP address (a static node known by a host name).
    """
    planned = plan.node(name).private_ip
    if planned:
        return ip_or_none(planned)
    host = next((h for h in inventory.hosts if h.name == name), None)
    return ip_or_none(host.private_ip) if host else None


def _wg_peers(ctx: _Inputs) -> tuple[list[PeerSpec], list[str]]:
    """The peers whose public key is known, and the names of those left out."""
    node, psks = ctx.node, ctx.psks
    peers: list[PeerSpec] = []
    left_out: list[str] = []
    for link in node.peers:
        key = ctx.public_keys.get(link.peer)
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
                endpoint=_endpoint(_address(ctx.inventory, link.peer, link.endpoint), ctx.plan.port),
                keepalive=link.keepalive,
                psk=psks[pair],
            )
        )
    return peers, left_out


def _ts_name(cidr: str) -> str:
    return cidr.replace(".", "-").replace("/", "_")


def ipsec_conns(
    plan: NetworkPlan, node: NodePlan, inventory: Inventory, psks: Mapping[str, str]
) -> tuple[ConnSpec, ...]:
    """One connection per peer; a child per (local, remote) pair of carried CIDRs.

    The remote selectors are what this node's link to the peer carries (as WireGuard's
    AllowedIPs); the local ones are what the peer's link back carries. The side that can dial
    its peer starts the SAs; when both can, the one whose name sorts first does.
    """
    conns = []
    _names(node)
    for link in node.peers:
        peer = _names(plan.node(link.peer))
        back = next((x for x in peer.peers if x.peer == node.name), None)
        if back is None:
            raise BootstrapError(f"node {node.name}: {peer.name} does not peer with it")
        pair = pair_id(node.name, peer.name)
        if pair not in psks:
            raise BootstrapError(f"node {node.name}: no preshared key for pair {pair}")
        remote_addr = _address(inventory, peer.name, link.endpoint)
        dialled = back.endpoint is not None and _address(inventory, node.name, back.endpoint) is not None
        initiator = remote_addr is not None and (not dialled or node.name < peer.name)
        children = tuple(
            ChildSpec(f"{peer.name}--{_ts_name(local)}--{_ts_name(remote)}", local, remote)
            for local, remote in product(sorted(back.allowed_ips), sorted(link.allowed_ips))
        )
        conns.append(
            ConnSpec(
                name=f"cc-{peer.name}",
                peer=peer.name,
                remote_addr=remote_addr,
                local_id=node.fqdn,
                remote_id=peer.fqdn,
                initiator=initiator,
                children=children,
                psk=psks[pair],
            )
        )
    return tuple(conns)


def _ipsec_files(ctx: _Inputs, conns: tuple[ConnSpec, ...]) -> list[ManagedFile]:
    paths, cert = ctx.paths, ctx.cert
    certs = ctx.plan.ipsec_auth == "certificates"
    swanctl = render(
        "swanctl.conf.j2",
        **ctx.common,
        conns=conns,
        ike_proposals=IKE_PROPOSALS,
        esp_proposals=ESP_PROPOSALS,
        cert=posixpath.basename(paths.ipsec_cert) if certs else None,
        cacert=posixpath.basename(paths.ipsec_ca) if certs else None,
    )
    charon = render("strongswan.conf.j2", **ctx.common, libipsec=ctx.libipsec, log=paths.charon_log)
    files = [
        ManagedFile(paths.strongswan_conf, charon.encode(), 0o644),
        ManagedFile(paths.swanctl_conf, swanctl.encode(), 0o600),  # holds the preshared keys
    ]
    if cert is not None:
        files += [
            ManagedFile(paths.ipsec_cert, cert.cert.encode(), 0o644),
            ManagedFile(paths.ipsec_ca, cert.ca.encode(), 0o644),
        ]
    return files


#: probes in a row a primary may miss (one a second) before its standby takes over
FAILOVER_MISSES = 3


def _failover_files(ctx: _Inputs, routes: tuple[tuple[str, str], ...]) -> list[ManagedFile]:
    """The failover agent (and its unit where systemd runs) from the plan's failover rules."""
    plan, node, paths, public_keys = ctx.plan, ctx.node, ctx.paths, ctx.public_keys
    q = shlex.quote
    i = q(paths.interface)
    planned = {link.peer: link.allowed_ips for link in node.peers}
    rules = []
    for rule in node.failover:
        fail: list[str] = []
        restore: list[str] = []
        # the side that gains addresses is set first: WireGuard moves them from the other peer
        for peer, ips in sorted(rule.peers, key=lambda p: p[0] == rule.watch):
            key = public_keys.get(peer)
            if key and peer in planned:
                k, now, back = (q(key), q(",".join(sorted(ips))), q(",".join(sorted(planned[peer]))))
                fail.append(f"wg set {i} peer {k} allowed-ips {now}")
                restore.insert(0, f"wg set {i} peer {k} allowed-ips {back}")
        standby = _private_ip(plan, ctx.inventory, rule.gateway) if rule.gateway else None
        if standby and rule.routes:
            fail += [f"ip route replace {q(c)} via {q(standby)} proto {ROUTE_PROTO}" for c in rule.routes]
            restore += [f"ip route replace {q(c)} via {q(v)} proto {ROUTE_PROTO}" for c, v in routes]
        if fail:
            key = public_keys.get(rule.watch) if node.vpn else None
            rules.append(
                {"watch": rule.watch, "address": rule.address, "key": key, "fail": fail, "restore": restore}
            )
    if not rules:
        return []
    script = render(
        "failover.sh.j2",
        **ctx.common,
        interface=paths.interface,
        rules=rules,
        misses=FAILOVER_MISSES,
        pidfile=paths.failover_pid,
        statefile=paths.failover_state,
    )
    files = [ManagedFile(paths.failover, script.encode(), 0o700)]
    if ctx.systemd:
        unit = render("failover.service.j2", **ctx.common, interface=paths.interface, script=paths.failover)
        files.append(ManagedFile(paths.failover_unit, unit.encode(), 0o644))
    return files


def _routes_files(
    ctx: _Inputs, routes: tuple[tuple[str, str], ...], lo_addresses: tuple[str, ...]
) -> list[ManagedFile]:
    """The routes (and lo addresses) script, and a unit that runs it at boot where systemd runs."""
    paths = ctx.paths
    text = render(
        "routes.sh.j2",
        **ctx.common,
        gateway=ctx.node.gateway,
        routes=routes,
        shown=[route_dst(c) for c, _ in routes],
        lo_addresses=lo_addresses,
        proto=ROUTE_PROTO,
    )
    files = [ManagedFile(paths.routes, text.encode(), 0o700)]
    if ctx.systemd:
        unit = render("routes.service.j2", **ctx.common, script=paths.routes)
        files.append(ManagedFile(paths.routes_unit, unit.encode(), 0o644))
    return files
