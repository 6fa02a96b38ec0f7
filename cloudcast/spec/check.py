"""Cross-field rules the models alone cannot express. Each problem is `path: message (value)`."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from ipaddress import IPv4Network

from cloudcast.spec.models import (
    Backend,
    FlowProtocol,
    IpsecAuth,
    PortRange,
    Provider,
    Role,
    Spec,
    Topology,
    Transport,
)
from cloudcast.spec.policy import covers, directory, resolve, spans

CLOUD = {Provider.AWS, Provider.LINODE, Provider.VULTR}
# Ranges meant for private use: RFC 1918 and the carrier-grade NAT block.
_PRIVATE = [IPv4Network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10")]
# Linode's own private addresses (linode_instance.private_ip); Linode VPC subnets may not use it.
LINODE_PRIVATE = IPv4Network("192.168.128.0/17")

Rule = Callable[[Spec], Iterator[str]]


def check(spec: Spec) -> list[str]:
    """Every cross-field problem in `spec`, in a stable order."""
    return [problem for rule in RULES for problem in rule(spec)]


def _duplicates(spec: Spec) -> Iterator[str]:
    seen: dict[str, str] = {}
    for i, site in enumerate(spec.sites):
        key, path = site.name.lower(), f"sites[{i}].name"
        if key in seen:
            yield f"{path}: duplicate site name {site.name!r} (also {seen[key]})"
        seen.setdefault(key, path)
    nodes: dict[str, str] = {}
    for i, site in enumerate(spec.sites):
        for j, node in enumerate(site.nodes):
            key, path = node.name.lower(), f"sites[{i}].nodes[{j}].name"
            if key in nodes:
                yield f"{path}: duplicate node name {node.name!r} (also {nodes[key]})"
            nodes.setdefault(key, path)
    services: dict[str, str] = {}
    ports: dict[tuple[str, int, str], str] = {}
    for k, svc in enumerate(spec.services):
        key, path = svc.name.lower(), f"services[{k}].name"
        if key in services:
            yield f"{path}: duplicate service name {svc.name!r} (also {services[key]})"
        services.setdefault(key, path)
        pkey = (svc.node.lower(), svc.port, svc.protocol.value)
        if pkey in ports:
            yield (
                f"services[{k}].port: {svc.protocol.value}/{svc.port} on {svc.node!r} is already "
                f"taken by {ports[pkey]}"
            )
        ports.setdefault(pkey, f"services[{k}]")


def _private(net: IPv4Network) -> bool:
    return any(net.subnet_of(p) for p in _PRIVATE)


def _overlaps(cidrs: list[tuple[int, IPv4Network]]) -> dict[int, list[int]]:
    """For each spec index, the earlier sites its CIDR overlaps, in O(n log n).

    CIDRs either nest or are disjoint, so after sorting by first address (larger first on a
    tie) a CIDR overlaps an earlier one exactly when it lies inside the widest one still open.
    """
    found: dict[int, list[int]] = {}
    widest: tuple[int, IPv4Network] | None = None
    for i, net in sorted(cidrs, key=lambda c: (c[1].network_address, c[1].prefixlen, c[0])):
        if widest and net.subnet_of(widest[1]):
            later, earlier = max(i, widest[0]), min(i, widest[0])
            found.setdefault(later, []).append(earlier)
        else:
            widest = (i, net)
    return found


def _addresses(spec: Spec) -> Iterator[str]:
    overlay = spec.network.overlay
    if not _private(overlay):
        yield f"network.overlay: {overlay} is not a private range (10/8, 172.16/12, 192.168/16, 100.64/10)"
    vpn_nodes = sum(1 for _, node in spec.all_nodes())
    room = overlay.num_addresses - 2
    if room < vpn_nodes:
        yield f"network.overlay: {overlay} has room for {max(room, 0)} nodes, the spec has {vpn_nodes}"
    pool = spec.network.site_pool
    if pool.prefixlen > spec.network.site_prefix:
        yield (
            f"network.site_prefix: /{spec.network.site_prefix} sites do not fit in network.site_pool ({pool})"
        )
    clashes = _overlaps([(i, site.cidr) for i, site in enumerate(spec.sites) if site.cidr is not None])
    for i, site in enumerate(spec.sites):
        if site.cidr is None:
            continue
        path = f"sites[{i}].cidr"
        if not _private(site.cidr):
            yield f"{path}: {site.cidr} is not a private range"
        if site.cidr.overlaps(overlay):
            yield f"{path}: {site.cidr} overlaps network.overlay ({overlay})"
        for j in clashes.get(i, []):
            yield f"{path}: {site.cidr} overlaps sites[{j}].cidr ({spec.sites[j].cidr})"
        usable = site.cidr.num_addresses - (5 if site.provider is Provider.AWS else 2)
        if usable < len(site.nodes):
            yield (f"{path}: {site.cidr} has room for {max(usable, 0)} nodes, the site has {len(site.nodes)}")
        if site.provider is Provider.AWS and not 16 <= site.cidr.prefixlen <= 28:
            yield f"{path}: AWS VPCs take /16 to /28 ({site.cidr})"
        if site.provider is Provider.LINODE and site.cidr.overlaps(LINODE_PRIVATE):
            yield (
                f"{path}: {site.cidr} overlaps {LINODE_PRIVATE}, Linode's private network range "
                "(Linode VPC subnets cannot use it)"
            )


def _providers(spec: Spec) -> Iterator[str]:
    for i, site in enumerate(spec.sites):
        if site.provider in CLOUD and not site.region:
            yield f"sites[{i}].region: required for provider {site.provider.value}"
        if site.provider is not Provider.LAB and site.machine is not None:
            yield f"sites[{i}].machine: only lab sites choose their machine ({site.provider.value})"
        if site.provider is not Provider.LAB and site.lan is not None:
            yield f"sites[{i}].lan: only lab sites choose whether they have a LAN ({site.provider.value})"
        for j, node in enumerate(site.nodes):
            path = f"sites[{i}].nodes[{j}]"
            host = node.ssh.host if node.ssh else None
            if site.provider is Provider.STATIC and not host:
                yield f"{path}.ssh.host: required for static nodes (node {node.name!r})"
            if site.provider in CLOUD and host:
                yield (
                    f"{path}.ssh.host: the address of {site.provider.value} nodes comes from "
                    f"Terraform; remove it ({host!r})"
                )
            if site.provider is not Provider.LAB and node.machine is not None:
                yield (
                    f"{path}.machine: only lab nodes choose their machine "
                    f"({site.provider.value} site {site.name!r})"
                )
            if site.provider in CLOUD and node.behind_nat:
                yield (
                    f"{path}.behind_nat: {site.provider.value} instances have public addresses; "
                    "behind_nat is for static and lab nodes"
                )


def _topology(spec: Spec) -> Iterator[str]:
    net = spec.network
    if net.transport is Transport.IPSEC and net.topology is Topology.MESH:
        yield ("network.transport: ipsec runs between gateways; use topology 'gateways' or 'hub' (mesh)")
    if net.ipsec_auth is IpsecAuth.CERTIFICATES and net.transport is not Transport.IPSEC:
        yield (
            "network.ipsec_auth: certificates are for transport ipsec; WireGuard peers "
            f"authenticate by their keys ({net.transport.value})"
        )
    hubs: list[str] = []
    for i, site in enumerate(spec.sites):
        gateways = [n for n in site.nodes if n.role in (Role.GATEWAY, Role.HUB)]
        for j, node in enumerate(site.nodes):
            path = f"sites[{i}].nodes[{j}].role"
            if node.role is Role.HUB:
                hubs.append(node.name)
                if net.topology is not Topology.HUB:
                    yield f"{path}: role 'hub' needs topology 'hub' (topology is {net.topology.value})"
                if node.behind_nat:
                    yield f"sites[{i}].nodes[{j}].behind_nat: a hub must be reachable, not behind NAT"
            if node.role is Role.GATEWAY and net.topology is Topology.MESH:
                yield f"{path}: role 'gateway' needs topology 'gateways' or 'hub' (mesh)"
        if net.topology is Topology.GATEWAYS and not gateways:
            yield (
                f"sites[{i}].nodes: site {site.name!r} has no gateway "
                "(topology gateways needs one per site)"
            )
        if net.topology is Topology.HUB and net.transport is Transport.IPSEC and not gateways:
            yield f"sites[{i}].nodes: site {site.name!r} has no gateway or hub (ipsec runs between gateways)"
        if len(gateways) > 2:
            yield f"sites[{i}].nodes: site {site.name!r} has {len(gateways)} gateways; at most 2"
    if net.topology is Topology.HUB and not hubs:
        yield "network.topology: topology 'hub' needs a node with role 'hub'"
    if len(hubs) > 2:
        yield f"network.topology: {len(hubs)} hubs ({', '.join(hubs)}); at most 2 (a hub and its standby)"
    if net.topology is Topology.MESH:
        nodes = [node for _, node in spec.all_nodes()]
        if len(nodes) > 1 and all(node.behind_nat for node in nodes):
            yield "sites: every node is behind NAT; at least one must be reachable to relay for the others"


def _services(spec: Spec) -> Iterator[str]:
    names = {node.name.lower(): node.name for _, node in spec.all_nodes()}
    unknown = 0
    for k, svc in enumerate(spec.services):
        if svc.node.lower() not in names:
            unknown += 1
            # a hint costs a scan of every name: only for the problems the report will show
            close: list[str] = []
            if unknown <= 20:
                close = difflib.get_close_matches(svc.node.lower(), list(names), n=1, cutoff=0.5)
            hint = f"; did you mean {names[close[0]]!r}?" if close else ""
            yield f"services[{k}].node: unknown node {svc.node!r}{hint}"
        if svc.protocol.value == "udp" and svc.port == spec.network.port:
            yield f"services[{k}].port: {svc.port}/udp is the transport's own port"


def _state(spec: Spec) -> Iterator[str]:
    st = spec.state
    if st.backend is Backend.S3:
        if not st.bucket:
            yield "state.bucket: required for backend s3"
        if not st.region:
            yield "state.region: required for backend s3"
    else:
        for key in ("bucket", "key", "region", "dynamodb_table", "endpoint"):
            if getattr(st, key) is not None:
                yield f"state.{key}: only used with backend 's3' (backend is local)"


def _policy(spec: Spec) -> Iterator[str]:
    """Rules that name what the spec does not have, allow nothing, or allow only what an
    earlier rule allows already."""
    if spec.policy is None:
        return
    table = directory(spec)
    shown = 0
    resolved: list[tuple[frozenset[str], frozenset[str], tuple[tuple[int, int], ...]] | None] = []
    for r, rule in enumerate(spec.policy):
        path = f"policy[{r}]"
        bad = False
        for key, names in (("from", rule.sources), ("to", rule.to)):
            if not names:
                bad = True
                yield f"{path}.{key}: empty: the rule allows nothing (name tags, nodes or sites)"
            for k, name in enumerate(names):
                meanings = table.get(name.lower(), [])
                if not meanings:
                    bad, shown = True, shown + 1
                    close: list[str] = []
                    if shown <= 20:
                        close = difflib.get_close_matches(name.lower(), list(table), n=1, cutoff=0.6)
                    hint = f"; did you mean {table[close[0]][0].name!r}?" if close else ""
                    yield f"{path}.{key}[{k}]: unknown tag, node or site {name!r}{hint}"
                elif len({m.nodes for m in meanings}) > 1:
                    bad = True
                    kinds = " and a ".join(m.kind.value for m in meanings)
                    yield f"{path}.{key}[{k}]: {name!r} is both a {kinds}; rename one of them"
        for k, port in enumerate(rule.ports):
            if isinstance(port, PortRange) and port.first > port.last:
                bad = True
                yield f"{path}.ports[{k}]: first {port.first} is above last {port.last}"
        if rule.protocol is FlowProtocol.ICMP and rule.ports:
            bad = True
            yield f"{path}.ports: icmp rules allow echo and take no ports ({len(rule.ports)} given)"
        elif rule.protocol is not FlowProtocol.ICMP and not rule.ports:
            bad = True
            yield f"{path}.ports: empty: a {rule.protocol.value} rule allows nothing without ports"
        src, dst = frozenset(resolve(rule.sources, table)), frozenset(resolve(rule.to, table))
        if not bad and len(src | dst) == 1:
            bad = True
            yield f"{path}: allows nothing: from and to are only {next(iter(src))!r} itself"
        ports = spans(rule)
        resolved.append(None if bad else (src, dst, ports))
        if bad:
            continue
        for e, earlier in enumerate(resolved[:-1]):
            if earlier is None or spec.policy[e].protocol is not rule.protocol:
                continue
            e_src, e_dst, e_ports = earlier
            if src <= e_src and dst <= e_dst and covers(e_ports, ports):
                yield f"{path}: shadowed by policy[{e}], which allows everything this rule does"
                break


RULES: list[Rule] = [_duplicates, _addresses, _providers, _topology, _services, _policy, _state]
