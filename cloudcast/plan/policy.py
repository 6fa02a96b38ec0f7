"""The access policy compiled: per node, which nodes may reach it on which ports (pure).

A spec without `policy` allows everything (the plan's `policy` is None). With one, each rule
`{from, to, ports, protocol}` becomes, on every node it names in `to`, one `Allow`: the source
nodes, the protocol and the port spans. Where traffic arrives decides who enforces it: a VPN
node on its own tunnel interface, a member of a gateways/hub site on its site's gateways
(their forward chain), since members run no cloudcast firewall of their own.

The records are data for later stages: bootstrap renders them into the nft table (with the
addresses the sources send from), verify probes the flows they allow and a sample of those they
do not, and graph draws the rules between tags.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

from cloudcast.spec.models import Spec
from cloudcast.spec.policy import directory, node_tags, resolve, spans

if TYPE_CHECKING:
    from cloudcast.plan.model import NetworkPlan

Spans = tuple[tuple[int, int], ...]


def port_text(ports: Spans) -> str:
    """`8080, 8000-8099`: spans as nft (and people) write them."""
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in ports)


@dataclass(frozen=True, slots=True)
class Allow:
    """What one rule lets into one node: from `sources`, over `protocol`, to `ports`."""

    rule: int  # index in the spec's policy
    protocol: str  # tcp | udp | icmp (echo)
    ports: Spans  # (first, last) spans; () for icmp
    sources: tuple[str, ...]  # node names, plan order

    def what(self) -> str:
        """`tcp/8080, 8443` or `icmp echo`."""
        return "icmp echo" if self.protocol == "icmp" else f"{self.protocol}/{port_text(self.ports)}"

    def __str__(self) -> str:
        return f"{self.what()} from {', '.join(self.sources)} (policy[{self.rule}])"


@dataclass(frozen=True, slots=True)
class NodePolicy:
    """Everything the policy lets into one node, and the nodes that enforce it."""

    node: str
    allow: tuple[Allow, ...]
    enforced_by: tuple[str, ...]  # the node itself (VPN node), or its site's gateways (member)


@dataclass(frozen=True, slots=True)
class RulePlan:
    """One rule as written (`sources`, `targets`: its names) and the nodes those cover."""

    index: int
    sources: tuple[str, ...]
    targets: tuple[str, ...]
    protocol: str
    ports: Spans
    src_nodes: tuple[str, ...]
    dst_nodes: tuple[str, ...]

    def what(self) -> str:
        return "icmp echo" if self.protocol == "icmp" else f"{self.protocol}/{port_text(self.ports)}"


@dataclass(frozen=True, slots=True)
class PolicyPlan:
    """The compiled policy: default deny on the overlay except these rules, replies and `ping`."""

    ping: bool  # ICMP echo between every pair stays allowed (verify's own probes)
    rules: tuple[RulePlan, ...]
    nodes: tuple[NodePolicy, ...]
    tags: tuple[tuple[str, tuple[str, ...]], ...]  # tag (lower-case) -> its nodes

    def node(self, name: str) -> NodePolicy:
        for entry in self.nodes:
            if entry.node == name:
                return entry
        raise KeyError(name)

    def rule_for(self, src: str, dst: str, protocol: str, port: int | None = None) -> int | None:
        """The first rule letting `src` reach `dst` (`port`: for tcp/udp), else None."""
        for allow in self.node(dst).allow:
            if allow.protocol != protocol or src not in allow.sources:
                continue
            if protocol == "icmp" or (port is not None and any(a <= port <= b for a, b in allow.ports)):
                return allow.rule
        return None

    def allows(self, src: str, dst: str, protocol: str, port: int | None = None) -> bool:
        if protocol == "icmp" and self.ping:
            return True
        return self.rule_for(src, dst, protocol, port) is not None


def compile_policy(spec: Spec, plan: NetworkPlan) -> PolicyPlan | None:
    """The spec's policy against the plan's nodes; None when the spec has no policy."""
    if spec.policy is None:
        return None
    table = directory(spec)
    order = [n.name for n in plan.nodes]
    rank = {name: i for i, name in enumerate(order)}
    rules: list[RulePlan] = []
    inbound: dict[str, list[Allow]] = {name: [] for name in order}
    for index, rule in enumerate(spec.policy):
        src = tuple(sorted(resolve(rule.sources, table), key=rank.__getitem__))
        dst = tuple(sorted(resolve(rule.to, table), key=rank.__getitem__))
        ports = spans(rule)
        protocol = rule.protocol.value
        rules.append(
            RulePlan(index, tuple(rule.sources), tuple(rule.to), protocol, ports, src, dst)
        )
        for target in dst:
            sources = tuple(s for s in src if s != target)
            if sources:
                inbound[target].append(Allow(index, protocol, ports, sources))
    gateways = {site.name: site.gateways for site in plan.sites}
    nodes = tuple(
        NodePolicy(
            node=n.name,
            allow=tuple(inbound[n.name]),
            enforced_by=(n.name,) if n.vpn else gateways.get(n.site, ()),
        )
        for n in plan.nodes
    )
    members: dict[str, list[str]] = {}
    for name, carried in node_tags(spec).items():
        for tag in carried:
            members.setdefault(tag, []).append(name)
    tags = tuple(
        (tag, tuple(sorted(names, key=rank.__getitem__))) for tag, names in sorted(members.items())
    )
    return PolicyPlan(ping=spec.network.ping, rules=tuple(rules), nodes=nodes, tags=tags)


def with_policy(spec: Spec, plan: NetworkPlan) -> NetworkPlan:
    """`plan` with its compiled policy (unchanged when the spec has none)."""
    policy = compile_policy(spec, plan)
    return plan if policy is None else replace(plan, policy=policy)


def _host_rules(policy: Mapping[str, Any] | None, host: str) -> dict[tuple[str, tuple[str, ...], str], int]:
    """(what, sources, to) -> rule index of every rule `host` enforces, from a plan's JSON form."""
    out: dict[tuple[str, tuple[str, ...], str], int] = {}
    for entry in (policy or {}).get("nodes", []):
        if host not in entry.get("enforced_by", []):
            continue
        for allow in entry.get("allow", []):
            ports = tuple((int(a), int(b)) for a, b in allow.get("ports", []))
            what = Allow(int(allow["rule"]), str(allow["protocol"]), ports, ()).what()
            out.setdefault((what, tuple(allow.get("sources", [])), str(entry["node"])), int(allow["rule"]))
    return out


def policy_changes(previous: Mapping[str, Any] | None, policy: PolicyPlan | None, host: str) -> list[str]:
    """The rules `host` enforces that change from the last applied plan's policy (its JSON form).

    Rules are compared by what they let in, not by their index, so inserting a rule shows one
    line. Empty when nothing changes on this host.
    """
    now = asdict(policy) if policy is not None else None
    if previous is None and now is None:
        return []
    lines: list[str] = []
    if previous is None:
        lines.append("policy on: default deny on the overlay")
    elif now is None:
        return ["policy off: everything allowed on the overlay"]
    elif bool(previous.get("ping")) != bool(now["ping"]):
        lines.append(f"policy ping {'on' if now['ping'] else 'off'}")
    old, new = _host_rules(previous, host), _host_rules(now, host)
    for (what, sources, to), rule in new.items():
        if (what, sources, to) not in old:
            lines.append(f"policy +{what} from {', '.join(sources)} to {to} (policy[{rule}])")
    for (what, sources, to), rule in old.items():
        if (what, sources, to) not in new:
            lines.append(f"policy -{what} from {', '.join(sources)} to {to} (was policy[{rule}])")
    return lines
