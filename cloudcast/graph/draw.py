"""The network as a Graphviz graph: what `cloudcast graph` draws.

- each site is a cluster (`cluster_SITE`, titled with its provider, region and CIDR);
- each node is a graph node named after itself, labelled with its overlay address and role:
  gateways are boxes, hubs double octagons, relays drawn twice round, members ellipses;
- tunnels are plain lines, those of a standby gateway or hub dashed; a relayed pair is a
  dotted line labelled with its relay; members hang off their gateways (standby: dashed);
- the policy: each tag a tab (`tag_NAME`) linked to its nodes, and each rule a coloured arrow
  from its sources to its targets (tags, nodes, or sites: the arrow ends at the cluster);
- live (`--live`): each tunnel coloured by its state from `status` (green: a fresh
  handshake, red: stale or never; orange for relayed pairs whose relay's tunnels are up), and
  nodes that could not be reached red.

Every name drawn is a name the plan holds (hostname labels, addresses, fixed words); the
graphviz package quotes each one as a DOT string.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import graphviz

from cloudcast.errors import CloudcastError
from cloudcast.plan.model import NetworkPlan, Relay
from cloudcast.verify.status import StatusResult

FORMATS = ("svg", "png", "dot")
#: one colour per policy rule, in turn
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
FRESH, STALE, RELAYED = "#2ca02c", "#d62728", "#ff7f0e"


@dataclass(frozen=True, slots=True)
class TunnelState:
    """A pair's tunnel as `status` saw it."""

    up: bool
    age: int | None  # seconds since the latest handshake (IPsec: the IKE SA's age)


@dataclass(frozen=True, slots=True)
class Live:
    """What `--live` colours: tunnels by pair id (`a--b`), and the nodes status could not reach."""

    tunnels: dict[tuple[str, str], TunnelState]
    unreachable: frozenset[str]


def live_from_status(result: StatusResult) -> Live:
    """Pairs' tunnel states from a `status` run: up when neither side finds its peer stale."""
    tunnels: dict[tuple[str, str], TunnelState] = {}
    down = set()
    for node in result.nodes:
        if node.error or not node.up:
            down.add(node.name)
            continue
        for peer in node.peers:
            key = (min(node.name, peer.name), max(node.name, peer.name))
            seen = tunnels.get(key)
            state = TunnelState(not peer.stale, peer.handshake_age)
            tunnels[key] = state if seen is None else TunnelState(seen.up and state.up, seen.age)
    return Live(tunnels, frozenset(down))


def _standby(plan: NetworkPlan) -> set[str]:
    """Gateways and hubs that stand by (a site's second gateway, the second hub)."""
    out = {g for site in plan.sites for g in site.gateways[1:]}
    hubs = [n.name for n in plan.nodes if n.role == "hub"]
    return out | set(hubs[1:])


def _node_label(plan: NetworkPlan, name: str) -> tuple[str, dict[str, str]]:
    node = plan.node(name)
    role = node.role
    if name in plan.relays:
        role += ", relay"
    if node.behind_nat != "none":
        role += ", double NAT" if node.behind_nat == "double" else ", NAT"
    address = node.overlay_ip if node.vpn else f"{node.private_ip or 'LAN'} (via {node.gateway})"
    attrs = {"shape": "ellipse"}
    if node.role == "gateway":
        attrs = {"shape": "box", "style": "rounded,bold"}
    elif node.role == "hub":
        attrs = {"shape": "doubleoctagon"}
    if name in plan.relays:
        attrs["peripheries"] = "2"
    return f"{name}\\n{address}\\n{role}", attrs


def draw(plan: NetworkPlan, live: Live | None = None) -> graphviz.Digraph:
    """The graph of `plan` (see the module docstring)."""
    g = graphviz.Digraph(plan.name, graph_attr={
        "compound": "true", "rankdir": "LR", "fontname": "Helvetica", "fontsize": "11",
        "label": f"{plan.name}: overlay {plan.overlay}, {plan.transport}, {plan.topology}",
        "labelloc": "t",
    })
    g.attr("node", fontname="Helvetica", fontsize="10")
    g.attr("edge", fontname="Helvetica", fontsize="9")
    down = live.unreachable if live else frozenset()
    for site in plan.sites:
        with g.subgraph(name=f"cluster_{site.name}") as c:
            where = ", ".join(x for x in (site.provider, site.region or "", site.cidr) if x)
            c.attr(label=f"{site.name} ({where})", style="rounded", color="#777777")
            for name in site.nodes:
                label, attrs = _node_label(plan, name)
                if name in down:
                    attrs = {**attrs, "color": STALE, "fontcolor": STALE}
                c.node(name, label=label, **attrs)
    standby = _standby(plan)
    relayed = {(min(n.a, n.b), max(n.a, n.b)): n.via for n in plan.notes if isinstance(n, Relay)}
    for pair in plan.pairs():
        a, b = pair.split("--")
        style = "dashed" if {a, b} & standby else "solid"
        attrs = {"dir": "none", "style": style, "color": "#888888"}
        if live is not None:
            state = live.tunnels.get((min(a, b), max(a, b)))
            attrs["color"] = FRESH if state and state.up else STALE
            if state is not None and state.age is not None:
                attrs["label"] = f"{state.age}s"
        g.edge(a, b, **attrs)
    for (a, b), via in sorted(relayed.items()):
        attrs = {"dir": "none", "style": "dotted", "label": f"via {via}", "color": "#555555"}
        if live is not None:
            legs = [live.tunnels.get((min(x, via), max(x, via))) for x in (a, b)]
            attrs["color"] = RELAYED if all(t and t.up for t in legs) else STALE
        g.edge(a, b, **attrs)
    for node in plan.nodes:
        if node.vpn:
            continue
        for gw in plan.site(node.site).gateways:
            style = "dashed" if gw in standby else "solid"
            g.edge(node.name, gw, dir="none", style=style, color="#999999", label="LAN")
    _policy(g, plan)
    return g


def _policy(g: graphviz.Digraph, plan: NetworkPlan) -> None:
    policy = plan.policy
    if policy is None:
        return
    tags = dict(policy.tags)
    nodes = {n.name.lower(): n.name for n in plan.nodes}
    sites = {s.name.lower(): s for s in plan.sites}
    used = {name.lower() for rule in policy.rules for name in (*rule.sources, *rule.targets)}
    for tag in sorted(used & set(tags)):
        g.node(f"tag_{tag}", label=f"tag {tag}", shape="tab", style="filled", fillcolor="#f3f0d7")
        for member in tags[tag]:
            g.edge(f"tag_{tag}", member, dir="none", style="dotted", color="#bbbbbb", constraint="false")

    def end(name: str) -> tuple[str, str | None]:
        """The graph node an arrow ends at, and the cluster it stands for (a site)."""
        key = name.lower()
        if key in tags:
            return f"tag_{key}", None
        if key in nodes:
            return nodes[key], None
        site = sites[key]
        return site.nodes[0], f"cluster_{site.name}"

    for rule in policy.rules:
        colour = PALETTE[rule.index % len(PALETTE)]
        for source in rule.sources:
            tail, ltail = end(source)
            for target in rule.targets:
                head, lhead = end(target)
                attrs = {"color": colour, "fontcolor": colour, "penwidth": "2",
                         "label": f"{rule.what()} (policy[{rule.index}])", "constraint": "false"}
                if ltail:
                    attrs["ltail"] = ltail
                if lhead:
                    attrs["lhead"] = lhead
                g.edge(tail, head, **attrs)


def write_graph(plan: NetworkPlan, out: Path, live: Live | None = None) -> Path:
    """Write the graph to `out`; its suffix (.svg, .png, .dot) chooses the format."""
    fmt = out.suffix.lstrip(".").lower()
    if fmt not in FORMATS:
        raise CloudcastError(
            f"{out}: unknown picture format {out.suffix or '(none)'!r}",
            hint="name the output .svg, .png or .dot",
        )
    g = draw(plan, live)
    if fmt == "dot":
        out.write_text(g.source)
        return out
    try:
        data = g.pipe(format=fmt)
    except graphviz.ExecutableNotFound:
        raise CloudcastError(
            "graphviz's `dot` is not installed", hint="apt-get install graphviz (or write a .dot file)"
        ) from None
    out.write_bytes(data)
    return out
