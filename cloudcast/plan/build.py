"""Turn a validated spec and its allocations into a `NetworkPlan` (pure: no I/O)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace
from operator import attrgetter

from cloudcast.plan.allocate import allocate, lab_ip
from cloudcast.plan.model import (
    Allocations,
    DownHost,
    EndpointKind,
    Failover,
    LabShape,
    Link,
    NatMode,
    NetworkPlan,
    NodePlan,
    PlanNote,
    Relay,
    ServicePlan,
    SitePlan,
    Unrelayed,
)
from cloudcast.plan.policy import with_policy
from cloudcast.spec.models import Node, Provider, Role, Site, Spec, Topology


@dataclass(frozen=True, slots=True)
class _N:
    """What the peer computation needs to know about one node."""

    name: str
    site: str
    nat: NatMode
    role: Role
    vpn: bool
    routed: tuple[str, ...]  # CIDRs this node carries besides its own /32
    down: bool = False  # known to be unreachable: never chosen to carry or relay for others


def build_plan(
    spec: Spec, previous: Allocations | None = None, *, down: Collection[str] = ()
) -> tuple[NetworkPlan, Allocations]:
    """Plan the network (see `_build`), with each node's automatic failover rules."""
    plan, alloc, relays = _build(spec, previous, down)
    plan = with_policy(spec, plan)
    if plan.transport != "wireguard":
        return plan, alloc
    rules: dict[str, list[Failover]] = {}
    # a relay with a standby fails over like a gateway
    primaries = dict.fromkeys(_primaries(plan, down) + ([relays[0]] if len(relays) > 1 else []))
    for primary in primaries:
        for node, rule in _changes(plan, _without(spec, alloc, {*down, primary}), primary):
            rules.setdefault(node, []).append(rule)
    if not rules:
        return plan, alloc
    nodes = tuple(replace(n, failover=tuple(rules.get(n.name, ()))) for n in plan.nodes)
    return replace(plan, nodes=nodes), alloc


def _primaries(plan: NetworkPlan, down: Collection[str]) -> list[str]:
    """Live primary gateways and hubs that have a live standby to take over."""
    if plan.topology == "hub":
        hubs = [n.name for n in plan.nodes if n.role == "hub" and n.name not in down]
        return hubs[:1] if len(hubs) > 1 else []
    out = []
    for site in plan.sites:
        live = [g for g in site.gateways if g not in down]
        if len(live) > 1:
            out.append(live[0])
    return out


@dataclass(frozen=True, slots=True)
class _After:
    """What `_changes` reads of one node in the plan made with more nodes down."""

    peers: tuple[Link, ...]
    gateway: str | None
    routes: tuple[str, ...]


def _without(spec: Spec, alloc: Allocations, down: Collection[str]) -> dict[str, _After]:
    """Each node's peers, gateway and routes as `_build` would plan them with `down` down.

    Only what can differ is computed: `alloc` is complete for `spec` (allocating again would
    give it back unchanged) and who runs the VPN does not depend on who is down.
    """
    layout = _layout(spec, alloc, frozenset(down), allocated=True)
    nodes = _peer_view(layout)
    links, _ = _links(spec, nodes, layout.alloc, layout.site_cidr, [])
    out: dict[str, _After] = {}
    for site in spec.sites:
        gateway = layout.primary(site.name)
        routes = layout.routes[site.name]
        for node in site.nodes:
            if nodes[node.name].vpn:
                out[node.name] = _After(tuple(links.get(node.name, ())), None, ())
            else:
                out[node.name] = _After((), gateway, routes)
    return out


def _changes(plan: NetworkPlan, without: dict[str, _After], primary: str) -> list[tuple[str, Failover]]:
    """Per node, what differs once `primary` is down: allowed IPs of its peers, member routes."""
    dead = plan.node(primary)
    out = []
    for node in plan.nodes:
        if node.name == primary:
            continue
        after = without[node.name]
        if node.vpn:
            before = {link.peer: link.allowed_ips for link in node.peers}
            moved = [link for link in after.peers if before.get(link.peer) != link.allowed_ips]
            peers = tuple((link.peer, link.allowed_ips) for link in moved)
            if peers:
                out.append((node.name, Failover(primary, dead.overlay_ip, peers=peers)))
        elif node.gateway != after.gateway and after.gateway:
            # probed at its overlay address: a gateway whose tunnel died still answers on its LAN
            rule = Failover(primary, dead.overlay_ip, gateway=after.gateway, routes=after.routes)
            out.append((node.name, rule))
    return out


@dataclass(frozen=True, slots=True)
class _Layout:
    """What every planning step reads: the spec, its addresses, and who carries each site."""

    spec: Spec
    alloc: Allocations
    site_cidr: dict[str, str]
    gateways: dict[str, tuple[str, ...]]  # site -> its hubs and gateways, live ones first
    down: frozenset[str]
    routes: dict[str, tuple[str, ...]]  # site -> what its members route via their gateway

    @property
    def topo(self) -> Topology:
        return self.spec.network.topology

    def primary(self, site: str) -> str | None:
        """The gateway (or hub) that carries `site`: its first live one."""
        gws = self.gateways[site]
        return gws[0] if gws else None


def _build(
    spec: Spec, previous: Allocations | None = None, down: Collection[str] = ()
) -> tuple[NetworkPlan, Allocations, tuple[str, ...]]:
    """Plan the network; returns the plan, the allocations to record for next time and the relays.

    `down`: nodes known to be unreachable (e.g. found so by the bootstrapper). A site's first
    live gateway (or hub) becomes its primary: it carries the site CIDR and routes the site's
    members, spokes route through the first live hub, and NAT-to-NAT pairs are relayed by the
    first live public node. Addresses and peers do not change, only who carries what.
    """
    layout = _layout(spec, previous or Allocations(), frozenset(down))
    notes = _down_notes(layout)
    nodes = _peer_view(layout)
    links, relays = _links(spec, nodes, layout.alloc, layout.site_cidr, notes)
    net = spec.network
    plan = NetworkPlan(
        name=spec.name,
        overlay=str(net.overlay),
        transport=net.transport.value,
        ipsec_auth=net.ipsec_auth.value,
        topology=net.topology.value,
        port=net.port,
        mtu=net.mtu,
        keepalive=net.keepalive,
        domain=net.domain,
        interface=net.interface,
        sites=_site_plans(layout),
        nodes=tuple(
            _node_plan(layout, site, node, nodes[node.name], links.get(node.name, []), relays)
            for site in spec.sites
            for node in site.nodes
        ),
        services=_service_plans(layout),
        notes=tuple(notes),
    )
    return plan, layout.alloc, relays


def _layout(spec: Spec, previous: Allocations, down: frozenset[str], allocated: bool = False) -> _Layout:
    """`allocated`: `previous` is already `allocate(spec, ...)`'s answer, taken as it is."""
    alloc = previous if allocated else allocate(spec, previous)
    topo = spec.network.topology
    site_cidr = {s.name: str(s.cidr) if s.cidr else alloc.sites[s.name] for s in spec.sites}
    every = sorted(site_cidr.items(), key=lambda item: item[1])
    overlay = str(spec.network.overlay)
    return _Layout(
        spec=spec,
        alloc=alloc,
        site_cidr=site_cidr,
        gateways={s.name: _gateways(s, topo, down) for s in spec.sites},
        down=down,
        # the overlay, then every other site's CIDR, sorted
        routes={s.name: (overlay, *(c for name, c in every if name != s.name)) for s in spec.sites},
    )


def _down_notes(layout: _Layout) -> list[PlanNote]:
    """A primary gateway or hub that is down while its standby is not."""
    notes: list[PlanNote] = []
    dead = layout.down
    for site in layout.spec.sites:
        gws = layout.gateways[site.name]
        if len(gws) > 1 and gws[-1] in dead and gws[0] not in dead:
            notes.append(DownHost(gws[-1], gws[0], site.name))
    if layout.topo is Topology.HUB:
        hubs = [n.name for _, n in layout.spec.all_nodes() if n.role is Role.HUB]
        if len(hubs) == 2 and hubs[0] in dead and hubs[1] not in dead:
            notes.append(DownHost(hubs[0], hubs[1]))
    return notes


def _peer_view(layout: _Layout) -> dict[str, _N]:
    """Every node as the peer computation sees it: does it tunnel, what does it carry."""
    topo = layout.topo
    nodes: dict[str, _N] = {}
    for site in layout.spec.sites:
        gws = layout.gateways[site.name]
        # outside mesh, the site's primary carries its CIDR
        carries = layout.primary(site.name) if topo is not Topology.MESH else None
        for node in site.nodes:
            vpn = topo is Topology.MESH or node.name in gws or not gws
            routed = (layout.site_cidr[site.name],) if node.name == carries else ()
            down = node.name in layout.down
            nodes[node.name] = _N(node.name, site.name, _nat(node), node.role, vpn, routed, down)
    return nodes


def _node_plan(
    layout: _Layout, site: Site, node: Node, n: _N, links: list[Link], relays: tuple[str, ...]
) -> NodePlan:
    """One node: where it runs, what it carries, whom it peers with or routes through."""
    spec = layout.spec
    member = not n.vpn
    standby = layout.topo is not Topology.MESH and node.name in layout.gateways[site.name][1:]
    return NodePlan(
        name=node.name,
        site=site.name,
        provider=site.provider.value,
        role=node.role.value,
        fqdn=f"{node.name}.{spec.network.domain}",
        overlay_ip=layout.alloc.overlay[node.name],
        vpn=n.vpn,
        behind_nat=n.nat,
        # a standby gateway forwards already, so taking over needs no change on it
        forwards=bool(n.routed) or node.role is Role.HUB or node.name in relays or standby,
        size=node.size,
        image=node.image,
        private_ip=layout.alloc.private.get(node.name),
        gateway=layout.primary(site.name) if member else None,
        routes=layout.routes[site.name] if member else (),
        lab=_lab_shape(layout.alloc, node, n.nat) if site.provider is Provider.LAB else None,
        peers=tuple(links),
    )


def _site_plans(layout: _Layout) -> tuple[SitePlan, ...]:
    return tuple(
        SitePlan(
            name=s.name,
            provider=s.provider.value,
            region=s.region,
            cidr=layout.site_cidr[s.name],
            cidr_allocated=s.cidr is None,
            gateways=layout.gateways[s.name],
            nodes=tuple(n.name for n in s.nodes),
        )
        for s in layout.spec.sites
    )


def _service_plans(layout: _Layout) -> tuple[ServicePlan, ...]:
    spec = layout.spec
    return tuple(
        ServicePlan(
            name=svc.name,
            node=_canonical(spec, svc.node),
            port=svc.port,
            protocol=svc.protocol.value,
            overlay_ip=layout.alloc.overlay[_canonical(spec, svc.node)],
        )
        for svc in spec.services
    )


def _canonical(spec: Spec, name: str) -> str:
    for _, node in spec.all_nodes():
        if node.name.lower() == name.lower():
            return node.name
    raise KeyError(name)


def _nat(node: Node) -> NatMode:
    if node.behind_nat == "double":
        return "double"
    return "nat" if node.behind_nat else "none"


def _gateways(site: Site, topo: Topology, down: frozenset[str] = frozenset()) -> tuple[str, ...]:
    """The site's hubs then gateways, live ones first: the first is the site's primary."""
    if topo is Topology.MESH:
        return ()
    hubs = [n.name for n in site.nodes if n.role is Role.HUB]
    gws = [n.name for n in site.nodes if n.role is Role.GATEWAY]
    return tuple(sorted(hubs + gws, key=lambda name: name in down))


def _lab_shape(alloc: Allocations, node: Node, nat: NatMode) -> LabShape:
    index = alloc.lab[node.name]
    return LabShape(index=index, public_ip=lab_ip(index), nat=nat)


def _endpoint(me: _N, peer: _N) -> EndpointKind | None:
    if peer.nat != "none":
        return None
    return "private" if me.site == peer.site else "public"


def _links(
    spec: Spec,
    nodes: dict[str, _N],
    alloc: Allocations,
    site_cidr: dict[str, str],
    notes: list[PlanNote],
) -> tuple[dict[str, list[Link]], tuple[str, ...]]:
    """Peers of every VPN node per topology; NAT-to-NAT pairs go through a relay.

    Also returns the relays: none, or the relay in use and the public node standing by for it.
    """
    vpn = [n for n in nodes.values() if n.vpn]
    topo = spec.network.topology
    keepalive = spec.network.keepalive or None
    carried: dict[str, list[str]] = {n.name: [f"{alloc.overlay[n.name]}/32", *n.routed] for n in vpn}
    pairs: list[tuple[_N, _N]] = []
    if topo is Topology.HUB:
        # the first live hub is the primary; a standby hub carries only its own addresses
        hubs = sorted((n for n in vpn if n.role is Role.HUB), key=lambda n: n.down)
        spokes = [n for n in vpn if n.role is not Role.HUB]
        pairs = [(h, s) for h in hubs for s in spokes]
        pairs += [(a, b) for i, a in enumerate(hubs) for b in hubs[i + 1 :]]
    else:
        pairs = [(a, b) for i, a in enumerate(vpn) for b in vpn[i + 1 :]]

    relays: list[str] = []
    public = [n for n in sorted(vpn, key=lambda n: (n.down, n.name)) if n.nat == "none"]
    relay = public[0] if public else None
    # extra CIDRs a node's link to its relay (or a spoke's link to its hub) must carry
    via: dict[tuple[str, str], list[str]] = {}
    direct: list[tuple[_N, _N]] = []
    for a, b in pairs:
        if a.nat != "none" and b.nat != "none":
            if relay is None:
                notes.append(Unrelayed(a.name, b.name))
                continue
            # the next public node stands by to relay (and forwards already) should this one fail
            relays[:] = [relay.name] + [n.name for n in public[1:2] if not n.down]
            via.setdefault((a.name, relay.name), []).extend(carried[b.name])
            via.setdefault((b.name, relay.name), []).extend(carried[a.name])
            notes.append(Relay(a.name, b.name, relay.name))
        else:
            direct.append((a, b))
    if topo is Topology.HUB:
        # a spoke reaches every other spoke through the primary hub
        hubs = sorted((n for n in vpn if n.role is Role.HUB), key=lambda n: n.down)
        if hubs:
            for s in (n for n in vpn if n.role is not Role.HUB):
                others = [
                    c for o in vpn if o.role is not Role.HUB and o.name != s.name for c in carried[o.name]
                ]
                via.setdefault((s.name, hubs[0].name), []).extend(others)

    links: dict[str, list[Link]] = {n.name: [] for n in vpn}
    plain = {name: tuple(dict.fromkeys(cidrs)) for name, cidrs in carried.items()}
    # Links are frozen: one object serves every node that sees a peer the same way (a mesh of
    # n nodes has n(n-1) links but only a few distinct ones per peer)
    made: dict[tuple[str, EndpointKind | None, int | None, tuple[str, ...]], Link] = {}
    for a, b in direct:
        for me, peer in ((a, b), (b, a)):
            # a node is on its own site's network: it never routes that CIDR into the tunnel
            own = site_cidr[me.site]
            extra = via.get((me.name, peer.name))
            if extra is None and own not in plain[peer.name]:
                allowed = plain[peer.name]
            else:
                allowed = tuple(dict.fromkeys(c for c in (*carried[peer.name], *(extra or ())) if c != own))
            key = (peer.name, _endpoint(me, peer), keepalive if me.nat != "none" else None, allowed)
            link = made.get(key)
            if link is None:
                link = made[key] = Link(peer=key[0], endpoint=key[1], keepalive=key[2], allowed_ips=allowed)
            links[me.name].append(link)
    by_peer = attrgetter("peer")
    return {k: sorted(v, key=by_peer) for k, v in links.items()}, tuple(relays)
