"""The plan's access policy as one node's nft rules: addresses in, checked values out.

The template (`firewall.nft.j2`) holds the rule text; this module decides which rules a node
carries and with which addresses: its own inbound rules (traffic arriving over the tunnel, or
from its site's LAN at its overlay address), and on a gateway the rules of its site's members
(its forward chain), since members run no firewall of their own. Sources are named by the
address they send from: a VPN node's overlay address, a member's LAN address (planned, else
observed; a member whose address is unknown is left out, so the rule fails closed).

Every value is checked again here, as at every sink: addresses are IPv4 addresses, protocols
one of three words, ports integers in range.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cloudcast.errors import UnsafeValueError
from cloudcast.plan.model import NetworkPlan, NodePlan
from cloudcast.plan.policy import Allow
from cloudcast.sinks import ip_or_none

PROTOCOLS = frozenset({"tcp", "udp", "icmp"})


@dataclass(frozen=True, slots=True)
class NftRule:
    """One accept rule: from these addresses, this protocol, these ports (nft spellings)."""

    saddrs: tuple[str, ...]
    protocol: str
    ports: tuple[str, ...]  # "8080", "8000-8099"; () for icmp echo
    comment: str


@dataclass(frozen=True, slots=True)
class NftMember:
    """A member's rules on its gateway: traffic to `address` from the tunnel."""

    name: str
    address: str
    rules: tuple[NftRule, ...]


def _ports(allow: Allow) -> tuple[str, ...]:
    out = []
    for first, last in allow.ports:
        if not (type(first) is int and type(last) is int and 1 <= first <= last <= 65535):
            raise UnsafeValueError(f"policy[{allow.rule}]: refusing port span {first!r}-{last!r}")
        out.append(str(first) if first == last else f"{first}-{last}")
    return tuple(out)


def _rules(
    allows: tuple[Allow, ...], addresses_of: Callable[[str], tuple[str, ...]], to: str
) -> tuple[NftRule, ...]:
    rules = []
    for allow in allows:
        if allow.protocol not in PROTOCOLS:
            raise UnsafeValueError(f"policy[{allow.rule}]: refusing protocol {allow.protocol[:20]!r}")
        saddrs = tuple(dict.fromkeys(a for name in allow.sources for a in addresses_of(name)))
        if not saddrs:
            continue  # no source with a known address: nothing to let in
        ports = _ports(allow) if allow.protocol != "icmp" else ()
        comment = f"policy[{allow.rule}]: {allow.what()} to {to}"
        rules.append(NftRule(saddrs, allow.protocol, ports, comment))
    return tuple(rules)


def policy_context(
    plan: NetworkPlan, node: NodePlan, private_ip: Callable[[str], str | None]
) -> dict[str, Any] | None:
    """What `firewall.nft.j2` needs of the policy on `node`; None without a policy.

    `private_ip(name)`: a node's address on its site's network (None when unknown).
    """
    policy = plan.policy
    if policy is None:
        return None
    nodes = {n.name: n for n in plan.nodes}

    def address_of(name: str) -> str | None:
        other = nodes.get(name)
        if other is None:
            return None
        return ip_or_none(other.overlay_ip if other.vpn else private_ip(name))

    def addresses_of(name: str) -> tuple[str, ...]:
        # an IPsec gateway may send to a remote site from its LAN address (strongSwan's routes
        # take their source from the local traffic selectors, which hold the site's CIDR too)
        lan = ip_or_none(private_ip(name)) if ipsec and name in nodes and nodes[name].vpn else None
        return tuple(a for a in (address_of(name), lan) if a)

    ipsec = plan.transport == "ipsec"
    inbound = _rules(policy.node(node.name).allow, addresses_of, node.name)
    members = []
    if node.forwards:
        for entry in policy.nodes:
            if entry.node != node.name and node.name in entry.enforced_by:
                address = address_of(entry.node)
                if address:
                    rules = _rules(entry.allow, addresses_of, entry.node)
                    members.append(NftMember(entry.node, address, rules))
    # nodes whose failover agent pings this one (its overlay address) keep doing so
    watchers = sorted(
        {a for n in plan.nodes for rule in n.failover if rule.watch == node.name if (a := address_of(n.name))}
    )
    return {"ping": policy.ping, "inbound": inbound, "members": members, "watchers": watchers}
